"""What planning needs to know about a scenario: endpoints, arm laws, dropout, effect sizes.

Every planning number (sample size, minimal detectable effect, pilot precision, curves) is computed
per *analysable* patient and then inflated for loss to follow-up, as a grant application states it:
"n evaluable per arm; N = n / (1 - dropout) to recruit". :func:`complete_case` is the scenario
without patient-level loss (missed 1-month visit, death, missed colonoscopy) used for that; missing
*samples* (drains removed before POD 5) are part of how the endpoint is measured and stay in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from trialsim.analysis.analytic import (
    t_test_power,
    t_test_sample_size,
    two_proportions_power_normal,
    two_proportions_sample_size_normal,
)
from trialsim.analysis.binary import exact_power
from trialsim.config.loader import with_values
from trialsim.config.schema import Scenario
from trialsim.endpoints import Endpoint, endpoints
from trialsim.exact import binary_law

# Separate random streams for each planning step: SeedSequence(seed, spawn_key=(STREAM, block)).
# A run's blocks use spawn_key=(block,), so these never coincide with a run's streams.
STREAM_MOMENTS = 7_001
STREAM_LOCATE = 7_002
STREAM_REFINE = 7_003
STREAM_MDE = 7_004
STREAM_CURVE_N = 7_005
STREAM_CURVE_EFFECT = 7_006


def stream_rng(seed: int, stream: int, block: int) -> np.random.Generator:
    """The Generator of block ``block`` of planning stream ``stream`` (independent of every other)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream, block))))


def resolve_seed(scenario: Scenario, seed: int | None) -> int:
    """The seed given, else the config's ``run.seed``, else a fresh one (every result records it)."""
    from trialsim.rng import draw_seed

    if seed is not None:
        return int(seed)
    return scenario.run.seed if scenario.run.seed is not None else draw_seed()


def n_treatment_for(n_control: int, ratio: float) -> int:
    """Treatment-arm size for a control-arm size: ``ratio * n_control`` rounded half up.

    The same rule as :func:`trialsim.analysis.binary.exact_power_curve`, so exact and simulated
    answers describe the same designs.
    """
    return max(1, math.floor(ratio * n_control + 0.5))


def get_endpoint(scenario: Scenario, name: str) -> Endpoint:
    found = {e.name: e for e in endpoints(scenario)}
    if name not in found:
        raise ValueError(f"unknown endpoint {name!r}; this scenario has: {', '.join(found)}")
    return found[name]


def endpoint_tests(scenario: Scenario, endpoint: str | None = None, test: str | None = None) -> list[tuple[Endpoint, str]]:
    """(endpoint, test) pairs: every one, those of one endpoint, or one pair (validated)."""
    eps = list(endpoints(scenario)) if endpoint in (None, "all") else [get_endpoint(scenario, endpoint)]
    pairs = []
    for e in eps:
        if test is not None and test not in e.tests:
            if endpoint in (None, "all"):
                continue
            raise ValueError(f"endpoint {e.name!r} is analysed with {', '.join(e.tests)}, not {test!r}")
        pairs.extend((e, t) for t in e.tests if test is None or t == test)
    if not pairs:
        raise ValueError(f"no endpoint of this scenario is analysed with {test!r}")
    return pairs


def key_endpoints(scenario: Scenario) -> list[tuple[str, str]]:
    """The (endpoint, test) pairs shown in figures and short tables.

    The primary endpoint with every test; per marker the mean of logs over the sampling days
    (or its last day) with the first test; the stay; the colonoscopy grade and its dichotomy.
    """
    eps = {e.name: e for e in endpoints(scenario)}
    out: list[tuple[str, str]] = []
    primary = next(e for e in eps.values() if e.primary)
    out += [(primary.name, t) for t in primary.tests]
    cyto = scenario.cytokines
    for m in cyto.markers:
        name = f"{m.name}_mean_log" if f"{m.name}_mean_log" in eps else f"{m.name}_pod{cyto.days[-1]}"
        if name in eps:
            out.append((name, eps[name].tests[0]))
    for name in ("los_days", "colonoscopy_grade", "colonoscopy_abnormal"):
        if name in eps:
            out.append((name, eps[name].tests[0]))
    return out


def complete_case(scenario: Scenario) -> Scenario:
    """The scenario without patient-level loss: nobody misses the visit or the colonoscopy, nobody dies.

    Sample-level missingness (``cytokines.markers[*].p_missing``) is kept: it is how the endpoint
    is measured, not dropout.
    """
    return with_values(scenario, {
        "follow_up.p_missing_1m_visit": 0.0,
        "follow_up.p_death_30d_no_leak": 0.0,
        "follow_up.p_death_30d_leak": 0.0,
        "colonoscopy.p_missing": 0.0,
    }, source="complete-case planning scenario")


def dropout(scenario: Scenario, endpoint: str, arm: str = "control") -> float:
    """Expected fraction of enrolled patients not analysable for ``endpoint`` through loss or death.

    Leak and colonoscopy endpoints: from the exact law (missed visit, death, missed colonoscopy).
    Cytokines and stay are measured in hospital: 0.
    """
    e = get_endpoint(scenario, endpoint)
    if e.family == "binary":
        return float(binary_law(scenario, endpoint, arm).p_missing)
    if endpoint == "colonoscopy_grade":
        return float(binary_law(scenario, "colonoscopy_abnormal", arm).p_missing)
    return 0.0


def inflate(n: int | None, dropout_fraction: float) -> int | None:
    """Patients to enrol so that ``n`` remain analysable on average: ``ceil(n / (1 - dropout))``."""
    if n is None:
        return None
    return int(math.ceil(round(n / (1.0 - dropout_fraction), 9)))


@dataclass(frozen=True)
class BinaryRates:
    """Event probability among analysable patients and probability of not being analysable, per arm."""

    p_control: float
    p_treatment: float
    missing_control: float
    missing_treatment: float


def binary_rates(scenario: Scenario, endpoint: str) -> BinaryRates:
    c, t = binary_law(scenario, endpoint, "control"), binary_law(scenario, endpoint, "treatment")
    return BinaryRates(c.p_event, t.p_event, c.p_missing, t.p_missing)


def exact_power_enrolled(test: str, rates: BinaryRates, n_control: int, n_treatment: int, *, alpha: float) -> float:
    """Exact power at enrolled sizes, mixing over the Binomial number analysable in each arm."""
    if rates.missing_control == rates.missing_treatment:
        missing: float | tuple[float, float] = rates.missing_control
    else:
        missing = (rates.missing_control, rates.missing_treatment)
    return exact_power(test, rates.p_control, rates.p_treatment, n_control, n_treatment, alpha=alpha, p_missing=missing)


# ---------------------------------------------------------------------------------------------------
# analytic answers (labelled: they are normal-theory approximations of the simulated model)
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnalyticEffect:
    """A closed-form effect size for a continuous or ordinal endpoint.

    ``kind`` is ``"d"`` (standardised mean difference, for the t test) or ``"p_superiority"``
    (P(X_t < X_c) + P(tie) / 2, for Noether's Mann-Whitney formula); ``sd`` is the SD the
    standardisation used (log scale for log endpoints); ``basis`` says where it comes from.
    """

    kind: str
    value: float
    sd: float
    basis: str


def _marker_of(scenario: Scenario, endpoint: str):
    for i, m in enumerate(scenario.cytokines.markers):
        if endpoint.startswith(m.name + "_"):
            return i, m
    return None, None


def cytokine_sd(scenario: Scenario, endpoint: str) -> float | None:
    """SD of the analysed log level from the config (no leak): log_sd, or that of the mean of days.

    The mean of K correlated logs has SD ``log_sd * sqrt(mean of the K x K day correlations)``.
    """
    i, m = _marker_of(scenario, endpoint)
    if m is None:
        return None
    if endpoint.endswith("_mean_log"):
        cyto = scenario.cytokines
        days = np.asarray(cyto.days, dtype=float)
        corr = cyto.corr_days ** (np.abs(days[:, None] - days[None, :]) / cyto.corr_days_step)
        return float(m.log_sd * math.sqrt(corr.mean()))
    return float(m.log_sd)


def config_effect(scenario: Scenario, endpoint: str) -> AnalyticEffect | None:
    """The standardised effect a grant writer computes from the config alone (direct effect, no leak).

    Cytokines: ``d = |log(treatment_gmr)| / SD`` with the SD of :func:`cytokine_sd`; stay:
    ``|log(los.treatment_ratio)| / los.log_sd``. None when the config gives no direct effect.
    """
    i, m = _marker_of(scenario, endpoint)
    if m is not None:
        sd = cytokine_sd(scenario, endpoint)
        what = "mean of log over the sampling days" if endpoint.endswith("_mean_log") else "log level"
        return AnalyticEffect("d", abs(math.log(m.treatment_gmr)) / sd, sd,
                              f"treatment GMR {m.treatment_gmr:g}, SD of the {what} {sd:.3g}; direct effect only (leaks ignored)")
    if endpoint == "los_days" and scenario.los.treatment_ratio != 1.0:
        sd = scenario.los.log_sd
        return AnalyticEffect("d", abs(math.log(scenario.los.treatment_ratio)) / sd, sd,
                              f"stay ratio {scenario.los.treatment_ratio:g}, log-SD {sd:g}; direct effect only (leaks ignored)")
    return None


@dataclass(frozen=True)
class Moments:
    """Large-sample moments of one analysed endpoint in each arm of the simulated model."""

    mean_control: float
    mean_treatment: float
    sd_control: float
    sd_treatment: float
    missing_control: float
    missing_treatment: float
    p_superiority: float  # P(X_t < X_c) + P(X_t = X_c) / 2

    @property
    def sd_pooled(self) -> float:
        return math.sqrt((self.sd_control**2 + self.sd_treatment**2) / 2)

    @property
    def d(self) -> float:
        return abs(self.mean_control - self.mean_treatment) / self.sd_pooled if self.sd_pooled > 0 else 0.0


def model_moments(scenario: Scenario, *, seed: int, n_patients: int = 100_000) -> dict[str, Moments]:
    """Moments of every non-binary endpoint from ``n_patients`` simulated patients per arm.

    These carry everything the model does (leaks raising cytokines, stays lengthened by leaks,
    missing samples), unlike :func:`config_effect`. Used as the simulated searches' starting points,
    for the endpoints whose effect exists only through leaks (stay, colonoscopy grade), and for
    pilot precision. Deterministic for a given seed.
    """
    from trialsim.config.loader import config_hash

    key = (config_hash(scenario), seed, n_patients)  # a scenario with a sweep table is not hashable itself
    if key not in _MOMENTS_CACHE:
        if len(_MOMENTS_CACHE) >= 16:
            _MOMENTS_CACHE.pop(next(iter(_MOMENTS_CACHE)))
        _MOMENTS_CACHE[key] = _model_moments(scenario, seed, n_patients)
    return _MOMENTS_CACHE[key]


_MOMENTS_CACHE: dict[tuple, dict[str, Moments]] = {}


def _model_moments(scenario: Scenario, seed: int, n_patients: int) -> dict[str, Moments]:
    from trialsim.outcomes.patients import observe, simulate_arm

    rng = stream_rng(seed, STREAM_MOMENTS, 0)
    obs = {arm: observe(scenario, simulate_arm(scenario, arm, 1, n_patients, rng=rng)) for arm in ("control", "treatment")}
    out = {}
    sub = np.random.default_rng(0)  # subsample for P(X_t < X_c): a fixed choice, not a random quantity
    for e in endpoints(scenario):
        if e.family == "binary":
            continue
        xc, xt = obs["control"][e.name][0], obs["treatment"][e.name][0]
        miss_c, miss_t = float(np.mean(np.isnan(xc))), float(np.mean(np.isnan(xt)))
        xc, xt = xc[~np.isnan(xc)], xt[~np.isnan(xt)]
        k = min(20_000, xc.size, xt.size)
        u = stats.mannwhitneyu(sub.choice(xt, k, replace=False), sub.choice(xc, k, replace=False), method="asymptotic").statistic
        out[e.name] = Moments(float(xc.mean()), float(xt.mean()), float(xc.std(ddof=1)), float(xt.std(ddof=1)),
                              miss_c, miss_t, 1.0 - float(u) / (k * k))
    return out


def noether_sample_size(p_superiority: float, *, power: float, alpha: float, ratio: float = 1.0) -> float:
    """Control-arm size for the two-sided Mann-Whitney test, Noether (1987), unrounded.

    ``N = (z_{1-alpha/2} + z_power)^2 / (12 c (1 - c) (p - 1/2)^2)`` with ``c = 1 / (1 + ratio)``
    the control share and ``p`` = P(X_t < X_c) + P(tie)/2; ``n_control = c N``.
    """
    if p_superiority == 0.5:
        return math.inf
    z = stats.norm.isf(alpha / 2) + stats.norm.ppf(power)
    c = 1.0 / (1.0 + ratio)
    return c * z**2 / (12 * c * (1 - c) * (p_superiority - 0.5) ** 2)


@dataclass(frozen=True)
class AnalyticAnswer:
    n: int | None
    method: str


def analytic_sample_size(scenario: Scenario, endpoint: str, test: str, *, power: float, ratio: float,
                         moments: dict[str, Moments] | None) -> AnalyticAnswer:
    """The closed-form sample size per analysable patient, labelled with its method.

    Binary: normal approximation for two proportions (pooled z, no continuity correction; Fleiss,
    as ``Hmisc::bsamsize``). Welch on logs: noncentral t for the pooled t test with the effect of
    :func:`config_effect` (or the model's moments when the config has no direct effect). Mann-Whitney:
    Noether (1987).
    """
    e = get_endpoint(scenario, endpoint)
    alpha = scenario.design.alpha
    if e.family == "binary":
        r = binary_rates(scenario, endpoint)
        if r.p_control == r.p_treatment:
            return AnalyticAnswer(None, "normal approximation: no difference between the arms")
        n = two_proportions_sample_size_normal(r.p_control, r.p_treatment, power=power, alpha=alpha, ratio=ratio)
        return AnalyticAnswer(_ceil(n), f"normal approximation, two proportions {r.p_control:.3g} vs {r.p_treatment:.3g} "
                                        "(pooled z test, no continuity correction)")
    cfg = config_effect(scenario, endpoint)
    mom = moments.get(endpoint) if moments else None
    if test == "welch_log":
        if cfg is not None and cfg.value > 0:
            d, basis = cfg.value, cfg.basis
        elif mom is not None and mom.d > 0:
            d, basis = mom.d, "model moments (effect only through leaks)"
        else:
            return AnalyticAnswer(None, "noncentral t: no effect to detect")
        n = t_test_sample_size(d, power=power, alpha=alpha, ratio=ratio) if d > 1e-3 else None
        return AnalyticAnswer(n, f"noncentral t (pooled t test), d = {d:.3g} from {basis}")
    if test == "mann_whitney":
        if cfg is not None and cfg.value > 0:
            p, basis = float(stats.norm.cdf(cfg.value / math.sqrt(2))), cfg.basis
        elif mom is not None:
            p, basis = mom.p_superiority, "model moments"
        else:
            return AnalyticAnswer(None, "Noether: no effect to detect")
        n = noether_sample_size(p, power=power, alpha=alpha, ratio=ratio)
        ties = "; its variance ignores ties, so it overstates n for grades with many ties" if e.family == "ordinal" else ""
        return AnalyticAnswer(_ceil(n) if math.isfinite(n) and n < 1e7 else None,
                              f"Noether (1987) normal approximation, P(treatment < control) = {p:.3g} from {basis}{ties}")
    return AnalyticAnswer(None, "no analytic formula")


def model_start(scenario: Scenario, endpoint: str, test: str, *, power: float, ratio: float,
                moments: dict[str, Moments]) -> float:
    """Starting point of a simulated search: the analytic n on the model's own effect (leaks included)."""
    mom = moments[endpoint]
    alpha = scenario.design.alpha
    if test == "mann_whitney":
        return noether_sample_size(mom.p_superiority, power=power, alpha=alpha, ratio=ratio)
    if mom.d <= 1e-3:
        return math.inf
    z = stats.norm.isf(alpha / 2) + stats.norm.ppf(power)
    return (1 + 1 / ratio) * (z / mom.d) ** 2


def _ceil(x: float) -> int:
    return int(math.ceil(round(x, 9)))


def analytic_t_mde(n_control: float, n_treatment: float, *, power: float, alpha: float) -> float:
    """Standardised effect d with ``power`` for the pooled t test at the given sizes (noncentral t)."""
    if n_control + n_treatment <= 2:
        return math.nan
    f = lambda d: t_test_power(d, n_control, n_treatment, alpha=alpha) - power  # noqa: E731
    hi = 1.0
    while f(hi) < 0:
        hi *= 2
        if hi > 1e3:
            return math.nan
    return float(optimize.brentq(f, 1e-9, hi, xtol=1e-10))


def analytic_binary_mde(p_control: float, n_control: float, n_treatment: float, *, power: float, alpha: float) -> float:
    """Treatment probability below ``p_control`` with ``power`` by the normal approximation (NaN if none)."""
    f = lambda p: two_proportions_power_normal(p_control, p, n_control, n_treatment, alpha=alpha) - power  # noqa: E731
    lo = 1e-9
    if f(lo) < 0:
        return math.nan
    return float(optimize.brentq(f, lo, p_control * (1 - 1e-9), xtol=1e-12))
