"""IL-6 and TNF-alpha in serum and drain fluid: correlated log-normal levels on postoperative days."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from trialsim.config.schema import Cytokines


@lru_cache(maxsize=64)
def correlation_matrix(cyto: Cytokines) -> np.ndarray:
    """Correlation of log levels over (day, marker) pairs, day-major.

    corr = corr_days ** (|day difference| / corr_days_step)        (AR(1) in days)
         x corr_compartments if the compartments differ
         x corr_cytokines    if the cytokines differ.
    With every marker of a full cytokine x compartment grid this is a Kronecker product of three
    correlation matrices, hence positive definite; a partial grid is a principal submatrix of it.
    """
    days = np.asarray(cyto.days, dtype=float)
    day_corr = cyto.corr_days ** (np.abs(days[:, None] - days[None, :]) / cyto.corr_days_step)
    comp = np.array([m.compartment for m in cyto.markers])
    cyt = np.array([m.cytokine for m in cyto.markers])
    marker_corr = np.where(comp[:, None] != comp[None, :], cyto.corr_compartments, 1.0) * np.where(
        cyt[:, None] != cyt[None, :], cyto.corr_cytokines, 1.0
    )
    return np.kron(day_corr, marker_corr)


@lru_cache(maxsize=64)
def _cholesky(cyto: Cytokines) -> np.ndarray:
    return np.linalg.cholesky(correlation_matrix(cyto))


def endpoint_names(cyto: Cytokines) -> list[str]:
    names = []
    for m in cyto.markers:
        if "per_day" in cyto.summaries:
            names += [f"{m.name}_pod{d}" for d in cyto.days]
        if "mean_log" in cyto.summaries:
            names.append(f"{m.name}_mean_log")
    return names


def simulate_cytokines(
    cyto: Cytokines, leak_day: np.ndarray, *, treated: bool, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Natural-log levels per marker and day (NaN = sample missing), plus per-patient mean log level.

    A patient who leaks has levels raised by the marker's leak GMR on every sampling day from
    ``leak_lead_days`` before the diagnosis on; treatment multiplies every level by the marker's GMR.
    """
    shape = leak_day.shape
    n_days, n_markers = len(cyto.days), len(cyto.markers)
    z = rng.standard_normal(shape + (n_days * n_markers,)) @ _cholesky(cyto).T
    z = z.reshape(shape + (n_days, n_markers))
    p = _parameters(cyto)
    log_level = p.log_median + p.log_sd * z
    days = np.asarray(cyto.days, dtype=float)
    # NaN leak_day (no leak) compares False: no leak effect
    raised = days >= (leak_day[..., None] - cyto.leak_lead_days)
    log_level += raised[..., None] * p.log_leak_gmr
    if treated:
        log_level += p.log_treatment_gmr
    if p.any_missing:
        missing = rng.random(shape + (n_days, n_markers)) < p.p_missing
        log_level[missing] = np.nan
    out: dict[str, np.ndarray] = {}
    for j, m in enumerate(cyto.markers):
        if "per_day" in cyto.summaries:
            for k, d in enumerate(cyto.days):
                out[f"{m.name}_pod{d}"] = log_level[..., k, j]
    if "mean_log" in cyto.summaries:
        if p.any_missing:
            counts = np.sum(~np.isnan(log_level), axis=-2)
            sums = np.nansum(log_level, axis=-2)
            with np.errstate(invalid="ignore", divide="ignore"):
                means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        else:
            means = log_level.mean(axis=-2)
        for j, m in enumerate(cyto.markers):
            out[f"{m.name}_mean_log"] = means[..., j]
    return out


class _Parameters:
    """Per (day, marker) arrays of the config, built once per config."""

    def __init__(self, cyto: Cytokines):
        ms = cyto.markers
        self.log_median = np.log(np.array([m.median_no_leak for m in ms])).T  # (days, markers)
        self.log_sd = np.array([m.log_sd for m in ms])
        self.log_leak_gmr = np.log(np.array([m.leak_gmr for m in ms])).T
        self.log_treatment_gmr = np.log(np.array([m.treatment_gmr for m in ms]))
        self.p_missing = np.array([m.p_missing for m in ms]).T
        self.any_missing = bool(np.any(self.p_missing > 0))


@lru_cache(maxsize=64)
def _parameters(cyto: Cytokines) -> _Parameters:
    return _Parameters(cyto)
