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
    Each returned array is contiguous, of shape ``leak_day.shape``.
    """
    shape = leak_day.shape
    n_days, n_markers = len(cyto.days), len(cyto.markers)
    p = _parameters(cyto)
    log_level = rng.standard_normal(shape + (n_days * n_markers,)) @ _cholesky(cyto).T
    log_level = log_level.reshape(shape + (n_days, n_markers))
    log_level *= p.log_sd
    log_level += p.log_median
    # only patients who leak (leak_day not NaN) are raised; adding the zeros of the others is skipped
    leaked = np.nonzero(~np.isnan(leak_day))
    if leaked[0].size:
        raised = p.days >= (leak_day[leaked][:, None] - cyto.leak_lead_days)
        log_level[leaked] += raised[..., None] * p.log_leak_gmr
    if treated:
        log_level += p.log_treatment_gmr
    # one (marker, day or mean, trial, patient) array, so every endpoint is a contiguous block
    levels = np.empty((n_markers, n_days + 1) + shape)
    by_day = levels[:, :n_days]
    by_day[...] = np.moveaxis(log_level, (-1, -2), (0, 1))
    if p.any_missing:
        u = rng.random(shape + (n_days, n_markers))
        for k, j in zip(*np.nonzero(p.p_missing)):  # the samples that can be missing
            by_day[j, k][u[..., k, j] < p.p_missing[k, j]] = np.nan
    if "mean_log" in cyto.summaries:
        # plain means for markers never missing, NaN-aware ones for the others (same bits as np.nanmean)
        complete = ~p.p_missing.any(axis=0)
        means = by_day.sum(axis=1)
        means[complete] /= n_days
        if not complete.all():
            partial = by_day[~complete]
            observed = ~np.isnan(partial)
            counts = observed.sum(axis=1)
            sums = np.where(observed, partial, 0.0).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                means[~complete] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        levels[:, n_days] = means
    out: dict[str, np.ndarray] = {}
    for j, m in enumerate(cyto.markers):
        if "per_day" in cyto.summaries:
            for k, d in enumerate(cyto.days):
                out[f"{m.name}_pod{d}"] = levels[j, k]
        if "mean_log" in cyto.summaries:
            out[f"{m.name}_mean_log"] = levels[j, n_days]
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
        self.days = np.asarray(cyto.days, dtype=float)


@lru_cache(maxsize=64)
def _parameters(cyto: Cytokines) -> _Parameters:
    return _Parameters(cyto)
