"""A panel of log-normal markers sampled on set days (family ``log_normal_markers``): IL-6 and TNF-alpha.

Each marker is one substance (``group``) in one fluid (``compartment``). Its natural-log level on a
sampling day is normal with the configured median and log-SD; levels of one patient correlate

    corr = corr_days ** (|day difference| / corr_days_step)     (AR(1) in days)
         x corr_compartments   if the compartments differ
         x corr_groups         if the groups differ.

A patient whose linked event (``event``, e.g. the leak) occurred has the levels of every sampling day
from ``event_lead_days`` before its diagnosis on raised by the marker's ``event_gmr``; a treated
patient's levels are multiplied by ``treatment_gmr``; a sample is missing with ``p_missing``.
Analysed: each marker on each day (``<marker>_pod<day>``) and the per-patient mean of the log levels
over the days available (``<marker>_mean_log``), all on the log scale, measured in hospital.

Randomness: the standard normals of each sampling day come from the day's own stream and the
AR(1)-in-days law is built forward day by day, so adding a later sampling day, a marker's missingness
or another endpoint leaves every existing value bit-identical.

Defaults are the exosome/LAR trial's serum and drain cytokines with sources [n] = section n of
shared/clinical_evidence.md.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Collection, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from trialsim.config.base import MISSING_MAX, Identifier, StrictModel, Text
from trialsim.endpoints.base import Analysed, EffectParameter, EndpointFamily, PatientContext, Status
from trialsim.endpoints.registry import register
from trialsim.kernels import compiled, kernel, readonly, self_check
from trialsim.rng import Streams, patient_major, trials_first


# Levels a marker's median may take in its own unit (pg/mL to g/L spans 1e-3 to 1e9 pg/mL).
MEDIAN_MIN, MEDIAN_MAX = 1e-9, 1e12


class Marker(StrictModel):
    """One marker (a substance in a fluid), with one value per sampling day where it varies by day."""

    name: Identifier = Field(description="Identifier used in endpoint names, e.g. 'il6_drain'.")
    group: Identifier = Field(description="Substance, e.g. 'il6'; markers of different groups correlate by corr_groups.")
    compartment: Identifier = Field(
        description="Fluid or site, e.g. 'serum' or 'drain'; markers in different compartments correlate by corr_compartments.",
    )
    label: Text | None = Field(None, max_length=200, description="Label in tables; none = '<group> (<compartment>)'.")
    unit: Text = Field("pg/mL", max_length=30, description="Unit of the medians.")
    median: tuple[float, ...] = Field(description="Median per sampling day without the linked event and without treatment.")
    log_sd: float = Field(ge=0.001, le=5.0, description="SD of the natural log of the level.")
    event_gmr: tuple[float, ...] = Field(
        description="Geometric mean ratio with vs without the linked event, per sampling day, once the event has begun."
    )
    treatment_gmr: float = Field(ge=0.01, le=100.0, description="Geometric mean ratio treated vs not, in every patient and on every day.")
    p_missing: tuple[float, ...] = Field(description="Chance the sample is missing, per sampling day (drains removed by POD 4-5).")
    source: Text = Field("", max_length=500, description="Where the numbers come from.")

    @field_validator("median")
    @classmethod
    def _level(cls, v):
        if any(not MEDIAN_MIN <= x <= MEDIAN_MAX for x in v):
            raise ValueError(f"every value must be > 0, from {MEDIAN_MIN:g} to {MEDIAN_MAX:g}, got {list(v)}")
        return v

    @field_validator("event_gmr")
    @classmethod
    def _ratio(cls, v):
        if any(not 1e-3 <= x <= 1e3 for x in v):
            raise ValueError(f"every value must be > 0, from 0.001 to 1000, got {list(v)}")
        return v

    @field_validator("p_missing")
    @classmethod
    def _probabilities(cls, v):
        if any(not 0.0 <= x <= MISSING_MAX for x in v):
            raise ValueError(f"every value must be in [0, 1) and at most {MISSING_MAX:g}, got {list(v)}")
        return v

    @property
    def pretty(self) -> str:
        return self.label if self.label is not None else f"{self.group} ({self.compartment})"


def _marker(name, group, compartment, label, median, log_sd, event_gmr, treatment_gmr, p_missing, source):
    return Marker(name=name, group=group, compartment=compartment, label=label, median=median, log_sd=log_sd,
                  event_gmr=event_gmr, treatment_gmr=treatment_gmr, p_missing=p_missing, source=source)


DEFAULT_MARKERS = (
    _marker("il6_serum", "il6", "serum", "IL-6 (serum)", (60.0, 25.0, 12.0), 0.8, (1.3, 2.0, 2.5), 0.85, (0.0, 0.0, 0.0),
            "Prochazka 2023 cut-offs, Zawadzki 2018 [3a]; table 3b ASSUMPTION; treatment GMR 0.85 ASSUMPTION [8]"),
    _marker("tnf_serum", "tnf", "serum", "TNF-alpha (serum)", (6.0, 6.0, 5.0), 0.6, (1.1, 1.3, 1.5), 0.85, (0.0, 0.0, 0.0),
            "Liu cut-offs [3a]; table 3b ASSUMPTION; treatment GMR 0.85 ASSUMPTION [8]"),
    _marker("il6_drain", "il6", "drain", "IL-6 (drain)", (35000.0, 22000.0, 12000.0), 0.8, (1.9, 2.5, 3.0), 0.7, (0.0, 0.0, 0.2),
            "BMC Surg 2015 scale, Sammour 2016 AUROC 0.72 [3a]; table 3b ASSUMPTION; treatment GMR 0.7 ASSUMPTION [8]"),
    _marker("tnf_drain", "tnf", "drain", "TNF-alpha (drain)", (60.0, 50.0, 50.0), 0.8, (1.3, 1.8, 2.5), 0.7, (0.0, 0.0, 0.2),
            "Sparreboom 2016, Surg Infect 2017 [3a]; table 3b ASSUMPTION; treatment GMR 0.7 ASSUMPTION [8]"),
)


@register
class LogNormalMarkers(EndpointFamily):
    """Correlated log-normal markers on postoperative days, raised by a linked event, scaled by treatment."""

    family: Literal["log_normal_markers"] = "log_normal_markers"

    label: Text = Field("IL-6 and TNF-alpha in serum and drain fluid", min_length=1, max_length=200,
                       description="Label of the panel [0], [3].")
    days: tuple[int, ...] = Field((1, 3, 5), min_length=1, max_length=60, description="Postoperative sampling days [0], [3b].")
    markers: tuple[Marker, ...] = Field(DEFAULT_MARKERS, min_length=1, max_length=50, description="Markers [3b].")
    corr_days: float = Field(
        0.6, ge=0.0, le=0.99,
        description="Log-scale correlation of samples corr_days_step days apart (AR(1) in days); ASSUMPTION [3b].",
    )
    corr_days_step: float = Field(2.0, ge=0.01, le=3650.0, description="Day distance at which the correlation equals corr_days [3b].")
    corr_compartments: float = Field(
        0.3, ge=0.0, le=0.99, description="Correlation of two compartments, same group, same day (serum vs drain); ASSUMPTION [3b]."
    )
    corr_groups: float = Field(
        0.4, ge=0.0, le=0.99, description="Correlation of two groups, same compartment, same day (IL-6 vs TNF); ASSUMPTION [3b]."
    )
    event: str | None = Field(None, min_length=1, description="Id of the event endpoint that raises the levels (e.g. 'leak_1m'); none = no link.")
    event_lead_days: float = Field(
        2.0, ge=0.0, le=3650.0, description="The event raises levels from this many days before its diagnosis on; ASSUMPTION [3b]."
    )
    summaries: tuple[Literal["per_day", "mean_log"], ...] = Field(
        ("per_day", "mean_log"), min_length=1, max_length=2,
        description="Endpoints per marker: each day, and the per-patient mean of log levels over the available days.",
    )
    tests: tuple[str, ...] = Field(("welch_log", "mann_whitney"), max_length=10, description="Analyses of each marker endpoint.")
    analysed_markers: tuple[Identifier, ...] | None = Field(
        None, min_length=1, max_length=50,
        description="Names of the markers whose endpoints are analysed; none = every marker. The others are still drawn "
                    "(the markers are drawn jointly), so leaving one out changes no value of another; planning narrows "
                    "its searches to the markers they need this way.",
    )

    @field_validator("days")
    @classmethod
    def _days(cls, v):
        if any(not 0 <= d <= 3650 for d in v) or len(set(v)) != len(v) or list(v) != sorted(v):
            raise ValueError(f"days must be distinct and increasing, from 0 to 3650, got {list(v)}")
        return v

    @field_validator("summaries")
    @classmethod
    def _distinct(cls, v):
        if len(set(v)) != len(v):
            raise ValueError(f"each summary may appear once, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _shapes(self):
        k = len(self.days)
        names = [m.name for m in self.markers]
        if len(set(names)) != len(names):
            raise ValueError(f"markers: names must be unique, got {names}")
        for i, m in enumerate(self.markers):
            for field in ("median", "event_gmr", "p_missing"):
                values = getattr(m, field)
                if len(values) != k:
                    raise ValueError(f"markers[{i}] ({m.name!r}): {field} has {len(values)} values but there are "
                                     f"{k} days {list(self.days)}")
        if self.analysed_markers is not None:
            unknown = [a for a in self.analysed_markers if a not in names]
            if unknown or len(set(self.analysed_markers)) != len(self.analysed_markers):
                raise ValueError(f"analysed_markers: {list(self.analysed_markers)} must be distinct names of markers "
                                 f"{names}" + (f" ({', '.join(map(repr, unknown))} is not one)" if unknown else ""))
        seen: dict[tuple[str, str], str] = {}
        for m in self.markers:
            key = (m.group, m.compartment)
            if key in seen:
                raise ValueError(f"markers: {seen[key]!r} and {m.name!r} are both group {m.group!r} in compartment "
                                 f"{m.compartment!r}; their correlation would be 1 (give them different groups)")
            seen[key] = m.name
        if np.linalg.eigvalsh(marker_correlation(self)).min() <= 1e-10:  # pragma: no cover - unique pairs are PD
            raise ValueError("markers, corr_compartments, corr_groups: the correlation of the markers on a day is not positive definite")
        return self

    # ------------------------------------------------------------------------------ structure
    def links(self) -> tuple[str, ...]:
        return (self.event,) if self.event is not None else ()

    def analysed(self, cid: str) -> tuple[Analysed, ...]:
        out = []
        for i in self.kept():
            m = self.markers[i]
            effect = EffectParameter(f"endpoints.{cid}.markers[{i}].treatment_gmr", f"{m.pretty} geometric mean ratio",
                                     "ratio", 1.0, m.treatment_gmr)
            if "per_day" in self.summaries:
                out += [Analysed(f"{m.name}_pod{d}", cid, "continuous", f"{m.pretty}, POD {d}", m.unit, "log", self.tests, effect)
                        for d in self.days]
            if "mean_log" in self.summaries:
                out.append(Analysed(f"{m.name}_mean_log", cid, "continuous",
                                    f"{m.pretty}, mean of log over POD {', '.join(map(str, self.days))}", m.unit, "log",
                                    self.tests, effect))
        return tuple(out)

    def narrowed(self, cid: str, names: Collection[str]) -> dict[str, Any]:
        """Only the summaries ``names`` use (per day, mean of logs) of only the markers they name: every day and
        marker is still drawn (the mean needs every day, the joint draw every marker), but the per-day endpoints
        are not observed, stacked and tested when only means are wanted, and the other markers not computed."""
        index = _endpoint_index(self)
        used = {"mean_log" if index[n][1] is None else "per_day" for n in names if n in index}
        keep = tuple(s for s in self.summaries if s in used)
        out: dict[str, Any] = {"summaries": list(keep)} if keep and keep != tuple(self.summaries) else {}
        markers = [self.markers[j].name for j in self.kept() if any(index[n][0] == j for n in names if n in index)]
        if markers and len(markers) < len(self.kept()):  # and only the markers asked for are computed
            out["analysed_markers"] = markers
        return out

    def kept(self) -> tuple[int, ...]:
        """Indices of the analysed markers (``analysed_markers``; all when not set), in the markers' order."""
        if self.analysed_markers is None:
            return tuple(range(len(self.markers)))
        return tuple(j for j, m in enumerate(self.markers) if m.name in self.analysed_markers)

    # ------------------------------------------------------------------------------- patients
    def generate(self, cid: str, ctx: PatientContext, streams: Streams) -> dict[str, np.ndarray]:
        """Natural-log levels ``<marker>_pod<day>`` (NaN = sample missing) and ``<marker>_mean_log``.

        Every step is element-wise per patient, so it runs on the patient-major draws (no transposition of
        the normals), a day at a time, so that each patient's values of the day go through every step (AR(1)
        state, level, event raise, treatment, missing samples, and after the last day the mean) while they are
        in the cache: in one compiled loop (:func:`_marker_day`, where :func:`~trialsim.kernels.compiled`) or in
        numpy passes over slabs of patients (:class:`_Slabs`), each value through the same operations in the same
        order either way, and as in the plain formulation (tests/test_generation_fast_paths.py). The results are transposed views
        ``(n_trials, n_patients)`` of these patient-major values, not copies: the analysis reads each arm back
        patient-major (``simulate._ArmsInStackOrder.patient_major``), which from such a view is a contiguous copy,
        and every test and summary gives the same bits for any layout.
        """
        p = _parameters(self)
        s, n = ctx.shape
        n_days, n_markers = len(self.days), len(self.markers)
        keep = self.kept()  # computed markers; every marker is drawn (z has a column for each)
        # one (computed marker, day or mean, patient, trial) array, patient-major like the draws
        levels = np.empty((len(keep), n_days + 1, n, s))
        state = np.empty((len(keep), n, s))  # standardised levels of the previous day (the AR(1) state)
        raised_from = self._raised_from(ctx)  # patient-major first raised day (NaN: no event), or None
        treated = np.asarray(ctx.treated, dtype=bool)
        treated = trials_first(treated) if p.any_treatment and treated.any() else None
        base = self._shared_base(cid, p, keep, s, n, streams)
        steps = (_Steps if compiled() else _Slabs)(p, keep, raised_from, treated, "mean_log" in self.summaries)
        for k, day in enumerate(self.days):
            z = _NONE_Z if base is not None else \
                patient_major(streams("endpoint", cid, "day", str(day)), "standard_normal", s, n, extra=(n_markers,))
            # only the samples that can be missing draw (each from its own stream, so when does not matter)
            missing = [patient_major(streams("endpoint", cid, "missing", self.markers[j].name, str(day)), "random", s, n)
                       for j in keep if p.p_missing[k, j]]
            steps.day(k, z, base, missing, state, levels)
        out: dict[str, np.ndarray] = {}
        for i, j in enumerate(keep):
            m = self.markers[j]
            for k, d in enumerate(self.days):
                out[f"{m.name}_pod{d}"] = np.transpose(levels[i, k])
            if "mean_log" in self.summaries:
                out[f"{m.name}_mean_log"] = np.transpose(levels[i, n_days])
        return out

    def _shared_base(self, cid: str, p: "_Parameters", keep: tuple[int, ...], s: int, n: int,
                     streams: Streams) -> np.ndarray | None:
        """Patient-major ``(computed markers, days, n_patients, n_trials)`` levels before the event's raise, the treatment
        and missing samples, from the streams' memo (:mod:`trialsim.memo`) when there is one and they fit in it; else
        None (:meth:`generate` computes them day by day). They read the day draws and the parameters in the key only:
        an effect grid over ``treatment_gmr`` (or ``event_gmr``, ``p_missing``) draws and correlates them once per block."""
        memo = streams.memo
        if memo is None or not memo.fits(len(keep) * len(self.days) * n * s * 8):
            return None
        key = ("markers_base", streams.key, cid, s, n, self.days, len(self.markers), keep,
               *(a.tobytes() for a in (p.chol, p.rho, p.innovation, p.log_sd, p.log_median)))
        return memo.get(key, lambda: _base_levels(p, self.days, keep, cid, s, n, len(self.markers), streams))

    def _raised_from(self, ctx: PatientContext) -> np.ndarray | None:
        """Patient-major ``(n_patients, n_trials)`` day from which the linked event raises the levels (its diagnosis day
        minus ``event_lead_days``), NaN without the event; None without a linked event."""
        if self.event is None:
            return None
        try:
            linked = ctx.latent[self.event]
        except KeyError:
            raise KeyError(f"{self.event!r} (the event linked to these markers) has not been generated yet") from None
        occurred = np.asarray(linked["event"]).astype(bool)
        return trials_first(np.where(occurred, np.asarray(linked["day"]) - self.event_lead_days, np.nan))

    def observe(self, cid: str, ctx: PatientContext, latent: dict[str, np.ndarray], status: Status) -> dict[str, np.ndarray]:
        return {a.name: status.in_hospital(latent[a.name]) for a in self.analysed(cid)}

    # ----------------------------------------------------------------------------------- laws
    def true_effect(self, cid: str, name: str, estimand: str, model) -> float | None:
        """Treatment minus control difference in the expected log level of ``name`` (``estimand="difference"``).

        The event raises day ``d`` by ``log(event_gmr_d)`` with probability P(event diagnosed by
        ``d + event_lead_days``) in the arm; the mean of logs averages the days available, missingness
        being independent of the levels, among patients with at least one sample.
        """
        if estimand != "difference":
            return None
        where = _endpoint_index(self).get(name)
        if where is None:
            return None
        j, k = where
        m = self.markers[j]
        p = _parameters(self)
        if self.event is None:
            return float(np.log(m.treatment_gmr))
        linked = model.section(self.event)
        gaps = []
        for d in self.days:
            by_arm = [linked.event_by_day(self.event, arm, d + self.event_lead_days, model) for arm in ("treatment", "control")]
            if by_arm[0] is None or by_arm[1] is None:
                return None
            gaps.append(by_arm[0] - by_arm[1])
        weights = np.eye(len(self.days))[k] if k is not None else mean_weights(tuple(p.p_missing[:, j]))
        return float(np.log(m.treatment_gmr) + np.sum(weights * p.log_event_gmr[:, j] * np.array(gaps)))


def mean_weights(p_missing: tuple[float, ...]) -> np.ndarray:
    """Weight of each day in E[mean of the available days | at least one available].

    Days are missing independently with ``p_missing``. Summing over the subsets ``S`` of available
    days (probability ``prod_S (1 - p) prod_notS p``, weight ``1 / |S|`` for each of its days), day
    ``k`` gets ``(1 - p_k) E[1 / (1 + N_k)]`` with ``N_k`` the number of other days available (a
    Poisson-binomial count, built exactly by convolution), divided by P(at least one available).
    """
    p = np.asarray(p_missing, dtype=float)
    n = len(p)
    if not p.any():
        return np.full(n, 1.0 / n)
    weights = np.empty(n)
    for k in range(n):
        pmf = np.ones(1)  # law of the number of other days available
        for i in range(n):
            if i != k:
                pmf = np.convolve(pmf, [p[i], 1.0 - p[i]])
        weights[k] = (1.0 - p[k]) * float(pmf @ (1.0 / np.arange(1, len(pmf) + 1)))
    return weights / (1.0 - np.prod(p))


def marker_correlation(section: LogNormalMarkers) -> np.ndarray:
    """Correlation of the markers' log levels on one day."""
    comp = np.array([m.compartment for m in section.markers])
    group = np.array([m.group for m in section.markers])
    return (np.where(comp[:, None] != comp[None, :], section.corr_compartments, 1.0)
            * np.where(group[:, None] != group[None, :], section.corr_groups, 1.0))


def correlation_matrix(section: LogNormalMarkers) -> np.ndarray:
    """Correlation of log levels over (day, marker) pairs, day-major: a Kronecker product of days and markers."""
    days = np.asarray(section.days, dtype=float)
    day_corr = section.corr_days ** (np.abs(days[:, None] - days[None, :]) / section.corr_days_step)
    return np.kron(day_corr, marker_correlation(section))


_NONE_Z = np.empty((1, 1, 1))  # no normals (levels from the memo), or no uniforms (no sample can miss that day)
_NONE_BASE = np.empty((1, 1, 1, 1))
_NONE_DAYS = np.empty((1, 1))
_NONE_TREATED = np.zeros((1, 1), dtype=bool)


class _Steps:
    """What :func:`_marker_day` applies to the levels of each day of one generated batch: the event's raise where
    ``raised_from`` is given, the treatment where ``treated`` is, missing samples unless ``missing`` is False (the
    levels before them, :func:`_base_levels`), the mean of logs after the last day with ``mean_log``."""

    def __init__(self, p: "_Parameters", keep: tuple[int, ...], raised_from: np.ndarray | None,
                 treated: np.ndarray | None, mean_log: bool, missing: bool = True):
        rows = list(keep)
        self.p, self.keep = p, np.asarray(keep, dtype=np.intp)
        self.raised_from = _NONE_DAYS if raised_from is None else np.ascontiguousarray(raised_from, dtype=float)
        self.raise_on = raised_from is not None
        self.treated = _NONE_TREATED if treated is None else np.ascontiguousarray(treated)
        self.treat_on = treated is not None
        # contiguous float64 copies (the compiled loop is compiled for one layout of each argument)
        self.log_event_gmr = np.ascontiguousarray(p.log_event_gmr[:, rows])  # (days, computed markers)
        self.log_treatment_gmr = np.ascontiguousarray(p.log_treatment_gmr[rows])
        self.log_median = np.ascontiguousarray(p.log_median)  # (days, markers)
        self.chol, self.log_sd = np.ascontiguousarray(p.chol), np.ascontiguousarray(p.log_sd)
        self.mean_log = mean_log
        p_missing = p.p_missing[:, rows] if missing else np.zeros((len(p.days), len(rows)))
        self.p_missing = np.ascontiguousarray(p_missing)  # (days, computed markers)
        self.can_miss = self.p_missing.any(axis=0)

    def day(self, k: int, z: np.ndarray, base: np.ndarray | None, missing: list[np.ndarray], state: np.ndarray,
            levels: np.ndarray) -> None:
        """Day ``k``'s levels into ``levels[:, k]`` (and the means after the last day): from the normals ``z``
        (patients, trials, markers) and the AR(1) ``state``, or from ``base`` (:meth:`LogNormalMarkers._shared_base`);
        ``missing``: the uniforms of the computed markers that can miss a sample that day, in their order."""
        p = self.p
        chance = self.p_missing[k]
        which = np.full(len(self.keep), -1, dtype=np.intp)
        which[np.nonzero(chance)[0]] = np.arange(len(missing))
        u = np.stack(missing) if missing else _NONE_Z
        last = k == len(p.days) - 1
        _marker_day(k, z, _NONE_BASE if base is None else base, base is not None, self.chol, self.keep,
                    float(p.innovation[k]), float(p.rho[k]), self.log_sd, self.log_median[k], self.raise_on,
                    float(p.days[k]), self.raised_from, self.log_event_gmr[k], self.treat_on, self.treated,
                    self.log_treatment_gmr, u, which, chance, state, levels, self.mean_log and last, self.can_miss)


SLAB_VALUES = 1 << 14  # values per (patients x trials) plane in one slab of _Slabs


class _Slabs(_Steps):
    """:class:`_Steps` in numpy passes over slabs of patients small enough for the cache: the same numbers, without
    numba's start-up (for runs too short to pay for it, :func:`~trialsim.kernels.compiled`)."""

    def day(self, k: int, z: np.ndarray, base: np.ndarray | None, missing: list[np.ndarray], state: np.ndarray,
            levels: np.ndarray) -> None:
        p, keep = self.p, tuple(int(m) for m in self.keep)
        n, s = levels.shape[2:]
        slab = max(1, SLAB_VALUES // max(s, 1))  # patients per slab
        scratch = np.empty((2, min(slab, n), s))
        mask = np.empty((min(slab, n), s), dtype=bool)
        drawn = iter(missing)
        misses = [(i, next(drawn), chance) for i, chance in enumerate(self.p_missing[k]) if chance]
        for a in range(0, n, slab):
            part = slice(a, a + slab)
            size = len(range(n)[part])
            day_levels = levels[:, k, part]
            if base is None:
                _day_levels(p, k, keep, z[part], state[:, part], day_levels, *scratch[:, :size])
            else:
                np.copyto(day_levels, base[:, k, part])
            flags = mask[:size]
            if self.raise_on:
                # the event's log GMR from event_lead_days before its diagnosis on (added to levels, never -0.0,
                # only where raised: the same as adding 0.0 on the other days)
                np.greater_equal(p.days[k], self.raised_from[part], out=flags)
                for i in range(len(keep)):
                    np.add(day_levels[i], self.log_event_gmr[k, i], out=day_levels[i], where=flags)
            if self.treat_on:  # in place where treated (a masked ufunc: no gather and scatter)
                for i in range(len(keep)):
                    np.add(day_levels[i], self.log_treatment_gmr[i], out=day_levels[i], where=self.treated[part])
            for i, u, chance in misses:
                np.copyto(day_levels[i], np.nan, where=np.less(u[part], chance, out=flags))
            if k == len(p.days) - 1 and self.mean_log:
                _mean_log(levels[:, :, part], self.p_missing)


def _mean_log(levels: np.ndarray, p_missing: np.ndarray) -> None:
    """Per-patient mean of the log levels over the available days (NaN when none is) into ``levels[:, -1]``;
    ``p_missing``: (days, markers). Element-wise per patient (the days of one patient are summed in day order, and
    those available of a patient missing one pairwise, as numpy sums them), so for any patient layout."""
    n_days = levels.shape[1] - 1
    means = levels[:, n_days]
    np.sum(levels[:, :n_days], axis=1, out=means)
    means /= n_days
    for j in np.nonzero(p_missing.any(axis=0))[0]:  # markers that can miss a sample
        gap = np.nonzero(np.isnan(means[j]))
        if gap[0].size:
            values = levels[j, :n_days][:, gap[0], gap[1]]
            observed = ~np.isnan(values)
            counts = observed.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                means[j][gap] = np.where(counts > 0, np.where(observed, values, 0.0).sum(axis=0) / counts, np.nan)


def _day_levels(p: "_Parameters", k: int, keep: tuple[int, ...], z: np.ndarray, state: np.ndarray, levels: np.ndarray,
                w: np.ndarray, term: np.ndarray) -> None:
    """Day ``k``'s log levels of the ``keep`` markers for one slab of patients, from its normals ``z`` (patients,
    trials, markers); ``state`` (markers, patients, trials) is the AR(1) state, read and updated; ``levels``
    (markers, patients, trials) is written; ``w`` and ``term`` are scratch. Element-wise (no BLAS) so a patient's
    bits never depend on how many others there are, nor on the slab."""
    for i, m in enumerate(keep):
        # w = chol[m, 0] z_0 + chol[m, 1] z_1 + ... + chol[m, m] z_m, summed in that order
        target = w if k else state[i]
        np.multiply(z[..., 0], p.chol[m, 0], out=target)
        for j in range(1, m + 1):
            target += np.multiply(z[..., j], p.chol[m, j], out=term)
        if k:  # state = w * innovation + rho * state (as rho * state + w * innovation: sums and products commute exactly)
            w *= p.innovation[k]
            state[i] *= p.rho[k]
            state[i] += w
        np.multiply(state[i], p.log_sd[m], out=levels[i])  # log median + log SD * state
        levels[i] += p.log_median[k, m]


@kernel("void(" + ", ".join([
    "int64", readonly("float64", 3, "C"), readonly("float64", 4, "C"), "boolean",  # k, z, base, use_base
    readonly("float64", 2, "C"), readonly("intp", 1, "C"), "float64", "float64",  # chol, keep, innovation, rho
    readonly("float64", 1, "C"), readonly("float64", 1, "C"), "boolean", "float64",  # log_sd, log_median, raise_on, day
    readonly("float64", 2, "C"), readonly("float64", 1, "C"), "boolean",  # raised_from, event_gmr, treat_on
    readonly("bool", 2, "C"), readonly("float64", 1, "C"), readonly("float64", 3, "C"),  # treated, treatment_gmr, u
    readonly("intp", 1, "C"), readonly("float64", 1, "C"), "float64[:, :, ::1]",  # which, chance, state
    "float64[:, :, :, ::1]", "boolean", readonly("bool", 1, "C")]) + ")")  # levels, mean_on, can_miss
def _marker_day(k, z, base, use_base, chol, keep, innovation, rho, log_sd, log_median, raise_on, day, raised_from,
                event_gmr, treat_on, treated, treatment_gmr, u, which, chance, state, levels, mean_on,
                can_miss):  # pragma: no cover - compiled
    """Day ``k`` of every computed marker (``keep``), patient by patient: the level before the event's raise, the
    treatment and missing samples (``chol[m, 0] z_0 + ... + chol[m, m] z_m``, times ``innovation`` plus ``rho``
    times the previous day's state from the second day on, then ``log_median + log_sd * state``; or ``base``), the
    event's log GMR where the day is at or after ``raised_from``, the treatment's where ``treated``, NaN where
    the sample's uniform is below its ``chance``; with ``mean_on`` (the last day), the mean of the days into
    ``levels[:, -1]``, over the available days where one is missing."""
    n_markers_kept = keep.shape[0]
    n_days = levels.shape[1] - 1
    n = levels.shape[2]
    s = levels.shape[3]
    row = np.empty(max(n_days, 8))  # one patient's days, and the running sums of their pairwise sum
    partial = np.empty(8)
    for i in range(n):
        for r in range(n_markers_kept):
            m = keep[r]
            out = levels[r, k, i]
            if use_base:
                out[:] = base[r, k, i]
            else:
                previous = state[r, i]
                zi = z[i]
                for t in range(s):
                    w = zi[t, 0] * chol[m, 0]
                    for j in range(1, m + 1):
                        w += zi[t, j] * chol[m, j]
                    if k:  # state = rho * state + innovation * w (products and sums commute exactly)
                        w *= innovation
                        v = previous[t] * rho
                        v += w
                    else:
                        v = w
                    previous[t] = v
                    level = v * log_sd[m]
                    out[t] = level + log_median[m]
            if raise_on:  # the event's log GMR from event_lead_days before its diagnosis on (never where NaN)
                g = event_gmr[r]
                since = raised_from[i]
                for t in range(s):
                    if day >= since[t]:
                        out[t] += g
            if treat_on:
                g = treatment_gmr[r]
                on = treated[i]
                for t in range(s):
                    if on[t]:
                        out[t] += g
            if which[r] >= 0:
                c = chance[r]
                draw = u[which[r], i]
                for t in range(s):
                    if draw[t] < c:
                        out[t] = np.nan
            if mean_on:  # the mean of the days, in day order; over the available ones where one is missing
                mean = levels[r, n_days, i]
                for t in range(s):
                    total = levels[r, 0, i, t]
                    for d in range(1, n_days):
                        total += levels[r, d, i, t]
                    mean[t] = total / n_days
                    if can_miss[r] and mean[t] != mean[t]:
                        # numpy's sum of the available days (0 for a missing one), which is pairwise: eight
                        # running sums from eight days on, as for one contiguous row (days are at most 60)
                        seen = 0
                        for d in range(n_days):
                            x = levels[r, d, i, t]
                            seen += x == x
                            row[d] = x if x == x else 0.0
                        if n_days < 8:
                            total = row[0]
                            for d in range(1, n_days):
                                total += row[d]
                        else:
                            end = n_days - n_days % 8
                            for d in range(8):
                                partial[d] = row[d]
                            for d in range(8, end):
                                partial[d % 8] += row[d]
                            total = (partial[0] + partial[1]) + (partial[2] + partial[3])
                            total += (partial[4] + partial[5]) + (partial[6] + partial[7])
                            for d in range(end, n_days):
                                total += row[d]
                        total += 0.0
                        mean[t] = total / seen if seen > 0 else np.nan


@self_check
def _marker_loop_is_numpys() -> bool:
    """The compiled day loop against numpy's slabs on a panel of four markers over ten days (pairwise means of the
    available days), with an event, treatment and missing samples."""
    rng = np.random.default_rng(20240831)
    days = (1, 2, 3, 5, 6, 8, 9, 10, 12, 14)
    markers = [m.model_copy(update={"median": (m.median[0],) * len(days), "event_gmr": (m.event_gmr[-1],) * len(days),
                                    "p_missing": (0.1,) * (len(days) - 2) + (0.5, 0.9)}) for m in DEFAULT_MARKERS]
    p = _Parameters(LogNormalMarkers(days=days, markers=tuple(markers)))
    n, s, keep = 7, 300, (0, 1, 2, 3)
    raised_from = np.where(rng.random((n, s)) < 0.3, rng.integers(0, 15, (n, s)).astype(float), np.nan)
    treated = rng.random((n, s)) < 0.5
    results = []
    for steps in (_Steps, _Slabs):
        draws = np.random.default_rng(7)
        day_steps = steps(p, keep, raised_from, treated, mean_log=True)
        levels, state = np.empty((len(keep), len(days) + 1, n, s)), np.empty((len(keep), n, s))
        for k in range(len(days)):
            missing = [draws.random((n, s)) for chance in day_steps.p_missing[k] if chance]
            day_steps.day(k, draws.standard_normal((n, s, len(DEFAULT_MARKERS))), None, missing, state, levels)
        results.append(levels.tobytes())
    return results[0] == results[1]


def _base_levels(p: "_Parameters", days: tuple[int, ...], keep: tuple[int, ...], cid: str, s: int, n: int,
                 n_markers: int, streams: Streams) -> np.ndarray:
    """The levels :meth:`LogNormalMarkers._shared_base` describes, day by day as in ``generate``."""
    out = np.empty((len(keep), len(days), n, s))  # no plane for the mean: it is not taken here
    state = np.empty((len(keep), n, s))
    steps = (_Steps if compiled() else _Slabs)(p, keep, None, None, mean_log=False, missing=False)
    for k, day in enumerate(days):
        z = patient_major(streams("endpoint", cid, "day", str(day)), "standard_normal", s, n, extra=(n_markers,))
        steps.day(k, z, None, [], state, out)
    return out


class _Parameters:
    """Per (day, marker) arrays of a config, built once per config."""

    def __init__(self, section: LogNormalMarkers):
        ms = section.markers
        self.days = np.asarray(section.days, dtype=float)
        self.log_median = np.log(np.array([m.median for m in ms])).T  # (days, markers)
        self.log_sd = np.array([m.log_sd for m in ms])
        self.log_event_gmr = np.log(np.array([m.event_gmr for m in ms])).T
        self.log_treatment_gmr = np.log(np.array([m.treatment_gmr for m in ms]))
        self.any_treatment = bool(np.any(self.log_treatment_gmr != 0.0))
        self.p_missing = np.array([m.p_missing for m in ms]).T
        # the day-major Cholesky factor of kron(AR(1) days, markers) applied forward in days: day k is
        # rho_k * (day k-1) + sqrt(1 - rho_k^2) * (chol(markers) @ z_k), so it reads days <= k only
        self.chol = np.linalg.cholesky(marker_correlation(section))
        gaps = np.diff(self.days, prepend=self.days[0])
        self.rho = section.corr_days ** (gaps / section.corr_days_step)
        self.innovation = np.sqrt(1.0 - self.rho**2)


@lru_cache(maxsize=64)
def _parameters(section: LogNormalMarkers) -> _Parameters:
    return _Parameters(section)


@lru_cache(maxsize=64)
def _endpoint_index(section: LogNormalMarkers) -> dict[str, tuple[int, int | None]]:
    """Analysed name -> (marker index, day index or None for the mean of logs)."""
    out: dict[str, tuple[int, int | None]] = {}
    for j, m in enumerate(section.markers):
        for k, d in enumerate(section.days):
            out[f"{m.name}_pod{d}"] = (j, k)
        out[f"{m.name}_mean_log"] = (j, None)
    return out
