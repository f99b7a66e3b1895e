"""Smallest n per arm reaching a target power, for every endpoint and test.

Exact (a binary endpoint whose family gives its law, a test with a registered exact power): exact
power of a discrete test saw-tooths in n (the attainable significance levels jump), so two answers
are reported: the first n whose power reaches the target, and the smallest n from which power never
drops below it again, checked up to a stated horizon. Tests with a size limit (``TestSpec.max_n``)
are enumerated up to it.

Simulated (every other pair): stochastic root-finding on simulated power
(:mod:`trialsim.planning.search`) in the complete-case scenario resized to each grid size, through
the engine with the run's seed and block layout. A locating pass (a quarter of the trials, a wide
grid around the normal approximation on the model's own effect) and, for each target power, a
refining pass (all the trials, the sizes of a fixed ladder within -15%/+18% of the located root)
with a probit fit and a 95% Monte Carlo interval. The grids depend only on the pair, the target and
the settings, so the same pair, target, seed and trials give the same n in every command.

Every answer is per analysable patient; ``n_enrolled = ceil(n / (1 - dropout))`` allows for loss
to follow-up (:func:`trialsim.planning.model.dropout`). The closed-form answer
(:mod:`trialsim.planning.analytic`) is reported alongside and labelled as such.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Collection, Sequence

import numpy as np
import pandas as pd

from trialsim.analysis import registry as tests
from trialsim.config.schema import Scenario
from trialsim.labels import pct, test_label
from trialsim.model import build_model
from trialsim.planning.analytic import analytic_sample_size, model_moments, start_size
from trialsim.planning.model import (
    Pair,
    binary_rates,
    complete_case,
    dropout as endpoint_dropout,
    endpoint_tests,
    exact_available,
    exact_power,
    inflate,
    n_treatment_for,
    resolve_seed,
)
from trialsim.planning.search import Job, fit_probit, rejections, size_point

# The exact scan checks power up to max(HORIZON_FACTOR * n_first, n_first + HORIZON_MIN_EXTRA).
HORIZON_FACTOR = 1.5
HORIZON_MIN_EXTRA = 20
# Smallest size a simulated search considers (a t test needs 2 per arm, Mann-Whitney 4 for p < 0.05).
N_MIN_SIMULATED = 3
# The sizes simulated searches use: every integer up to LADDER_START, then steps of LADDER_STEP (5%).
# A fixed ladder makes the grids of different pairs share sizes (each size is simulated once).
LADDER_START = 20
LADDER_STEP = 1.05
LOCATE_POINTS = 10
LOCATE_RANGE = (0.5, 1.5)  # x the normal approximation's n for 50% power, and for 95%
REFINE_RANGE = (0.85, 1.18)

SAMPLE_SIZE_COLUMNS = [
    "endpoint", "test", "label", "family", "primary", "target_power", "alpha", "ratio", "method", "reachable",
    "n", "n_treatment", "n_first", "n_stable", "n_low", "n_high", "horizon", "power_at_n", "power_at_n_se",
    "n_analytic", "analytic_method", "dropout", "n_enrolled", "n_enrolled_treatment", "n_max", "p_control",
    "p_treatment", "note",
]


@dataclass(frozen=True)
class ExactScan:
    """Exact power at every n per arm from ``n[0]`` to the horizon ``n[-1]``."""

    n: np.ndarray
    power: np.ndarray
    target: float
    n_first: int | None
    n_stable: int | None

    @property
    def horizon(self) -> int:
        return int(self.n[-1])


def exact_scan(test: str, p_control: float, p_treatment: float, *, power: float, alpha: float, ratio: float = 1.0,
               n_max: int = 5000, n_min: int = 2, horizon_factor: float = HORIZON_FACTOR) -> ExactScan:
    """Scan the registered exact power of ``test`` from ``n_min`` per arm upward (no missing data).

    Returns the first n reaching ``power`` and the smallest n from which power stays at or above
    it up to the horizon ``max(horizon_factor * n_first, n_first + 20)``; both None when ``power``
    is not reached by ``n_max``.
    """
    def curve(ns: np.ndarray) -> np.ndarray:
        return np.array([_exact_point(test, p_control, p_treatment, int(n), n_treatment_for(int(n), ratio), alpha)
                         for n in ns])

    ns: list[np.ndarray] = []
    ps: list[np.ndarray] = []
    start, step, n_first = n_min, 100, None
    while start <= n_max:
        block = np.arange(start, min(n_max, start + step - 1) + 1)
        pw = curve(block)
        ns.append(block)
        ps.append(pw)
        hit = np.flatnonzero(pw >= power)
        if hit.size:
            n_first = int(block[hit[0]])
            break
        start, step = int(block[-1]) + 1, int(step * 1.5)
    if n_first is not None:
        horizon = max(math.ceil(horizon_factor * n_first), n_first + HORIZON_MIN_EXTRA)
        done = int(ns[-1][-1])
        if horizon > done:
            block = np.arange(done + 1, horizon + 1)
            ns.append(block)
            ps.append(curve(block))
    n_all, p_all = np.concatenate(ns), np.concatenate(ps)
    n_stable = None
    if n_first is not None:
        below = np.flatnonzero(p_all < power)
        n_stable = int(n_all[below[-1]] + 1) if below.size else int(n_all[0])
    return ExactScan(n_all, p_all, power, n_first, n_stable)


@lru_cache(maxsize=65536)  # scans for several targets share their sizes
def _exact_point(test: str, p_control: float, p_treatment: float, n_control: int, n_treatment: int, alpha: float) -> float:
    return exact_power(test, p_control, p_treatment, n_control, n_treatment, alpha=alpha)


@dataclass(frozen=True)
class SampleSizeResult:
    """The sample size of one (endpoint, test) for one target power.

    ``n`` is the recommended analysable size of the control arm: for exact answers the n from
    which power stays above the target (``n_stable``), for simulated answers the estimated root
    (``n_first``, with the 95% Monte Carlo interval ``n_low``-``n_high``). ``n_enrolled`` inflates
    ``n`` for the expected ``dropout``. ``n_analytic`` is the closed-form answer (``analytic_method``).
    """

    endpoint: str
    test: str
    label: str
    family: str  # the endpoint's kind: binary, continuous, ordinal
    primary: bool
    target_power: float
    alpha: float
    ratio: float
    method: str  # "exact" | "monte_carlo" | "analytic" (not simulated)
    reachable: bool
    n_first: int | None
    n_stable: int | None
    n_low: int | None
    n_high: int | None
    horizon: int | None
    power_at_n: float
    power_at_n_se: float
    n_analytic: int | None
    analytic_method: str
    dropout: float
    n_max: int
    p_control: float = math.nan
    p_treatment: float = math.nan
    note: str = ""
    curve: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def n(self) -> int | None:
        return self.n_stable if self.method == "exact" else self.n_first

    @property
    def n_treatment(self) -> int | None:
        return None if self.n is None else n_treatment_for(self.n, self.ratio)

    @property
    def n_enrolled(self) -> int | None:
        return inflate(self.n, self.dropout)

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "curve"}
        out.update(n=self.n, n_treatment=self.n_treatment, n_enrolled=self.n_enrolled,
                   n_enrolled_treatment=inflate(self.n_treatment, self.dropout))
        return {k: out[k] for k in SAMPLE_SIZE_COLUMNS}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.to_dict()], columns=SAMPLE_SIZE_COLUMNS)

    def summary(self) -> str:
        return describe(self.to_dict())


def describe(row: dict) -> str:
    """One plain-language line for a sample-size row (a dict of :data:`SAMPLE_SIZE_COLUMNS`)."""
    head = f"{row['endpoint']} / {test_label(row['test'])}: {pct(row['target_power'], 0)} power"
    if not row["reachable"]:
        what = "not simulated" if row["method"] == "analytic" else f"not reached by {row['n_max']:,} per arm"
        text = f"{head}: {what}. {row['note'].rstrip('.')}".strip()
    elif row["method"] == "exact":
        text = (f"{head}: n = {row['n']:,} per arm (exact; power first reaches the target at n = {row['n_first']:,}"
                + (f" but saw-tooths below it again until n = {row['n_stable']:,}" if row["n_stable"] != row["n_first"] else
                   " and stays above it")
                + f", checked up to n = {row['horizon']:,}; exact power at n {pct(row['power_at_n'], 1)})")
    else:
        text = (f"{head}: n = {row['n']:,} per arm (simulated, 95% MC interval {row['n_low']:,}-{row['n_high']:,}; "
                f"fitted power at n {pct(row['power_at_n'], 1)} ± {pct(row['power_at_n_se'], 1)})")
    if row["reachable"] and row["n"] is not None:
        text += f"; enrol {row['n_enrolled']:,} per arm for {pct(row['dropout'], 1)} expected loss"
    analytic = f"{row['n_analytic']:,}" if row["n_analytic"] is not None and not _isnan(row["n_analytic"]) else "n/a"
    text += f". Analytic: {analytic} ({row['analytic_method']})."
    return text


def _isnan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


@dataclass(frozen=True)
class SampleSizeTable:
    """Sample sizes for several (endpoint, test, target) combinations, with the settings used."""

    results: tuple[SampleSizeResult, ...]
    seed: int
    n_sims: int
    settings: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.to_dict() for r in self.results], columns=SAMPLE_SIZE_COLUMNS)

    def curves_frame(self) -> pd.DataFrame:
        """The exact scans behind the exact answers: endpoint, test, n_per_arm, power."""
        frames = [r.curve.assign(endpoint=r.endpoint, test=r.test) for r in self.results
                  if r.curve is not None and r.target_power == max(x.target_power for x in self.results
                                                                    if (x.endpoint, x.test) == (r.endpoint, r.test))]
        if not frames:
            return pd.DataFrame(columns=["endpoint", "test", "n_per_arm", "power"])
        return pd.concat(frames, ignore_index=True)[["endpoint", "test", "n_per_arm", "power"]]

    def get(self, endpoint: str, test: str, power: float) -> SampleSizeResult:
        for r in self.results:
            if (r.endpoint, r.test) == (endpoint, test) and abs(r.target_power - power) < 1e-9:
                return r
        raise KeyError((endpoint, test, power))

    def summary(self) -> str:
        return "\n".join(r.summary() for r in self.results)


def sample_size(scenario: Scenario, endpoint: str, test: str | None = None, *, power: float = 0.8, ratio: float = 1.0,
                dropout: float | None = None, n_max: int = 1500, n_sims: int = 2000, seed: int | None = None,
                n_jobs: int = 1, progress: bool = False) -> SampleSizeResult:
    """The smallest n per arm with ``power`` for one endpoint and test (default: the endpoint's first test).

    See :func:`sample_sizes` for the parameters.
    """
    test = test or build_model(scenario).endpoint(endpoint).tests[0]
    table = sample_sizes(scenario, endpoint=endpoint, test=test, power=(power,), ratio=ratio, dropout=dropout, n_max=n_max,
                         n_sims=n_sims, seed=seed, n_jobs=n_jobs, progress=progress)
    return table.results[0]


def sample_sizes(
    scenario: Scenario,
    *,
    endpoint: str | None = None,
    test: str | None = None,
    power: float | Sequence[float] = (0.8, 0.9),
    ratio: float = 1.0,
    dropout: float | None = None,
    n_max: int = 1500,
    n_sims: int = 2000,
    seed: int | None = None,
    n_jobs: int = 1,
    progress: bool = False,
    simulate: bool | Collection[Pair] = True,
) -> SampleSizeTable:
    """Sample sizes per analysable patient for every endpoint and test (or one), for each target power.

    Parameters
    ----------
    scenario : Scenario
        The design and assumptions; ``design.alpha`` is the two-sided level.
    endpoint, test : str, optional
        Restrict to one endpoint (``"all"`` or None: every endpoint) and one test.
    power : float or sequence of float
        Target power(s) in (0, 1).
    ratio : float
        ``n_treatment / n_control`` (treatment size rounded half up).
    dropout : float, optional
        Expected fraction lost to follow-up; default: from the scenario, per endpoint
        (:func:`trialsim.planning.model.dropout`, the larger of the two arms).
    n_max : int
        Largest n per arm searched.
    n_sims : int
        Simulated trials of each refining pass (the locating pass uses a quarter, at least 200).
    seed : int, optional
        Root seed; default ``run.seed``, else drawn (recorded in ``.seed``).
    n_jobs : int
        Parallel workers for the simulated searches (results do not depend on it).
    progress : bool
        Show progress bars.
    simulate : bool or collection of (endpoint, test)
        False: exact and analytic answers only (the others get method "analytic"); a collection:
        simulate only those pairs.

    Returns
    -------
    SampleSizeTable
    """
    targets = tuple(sorted({float(p) for p in np.atleast_1d(power)}))
    for p in targets:
        if not 0.0 < p < 1.0:
            raise ValueError(f"power must lie in (0, 1), got {p}")
    if not ratio > 0:
        raise ValueError(f"ratio must be positive, got {ratio!r}")
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    seed = resolve_seed(scenario, seed)
    model = build_model(scenario)
    pairs = endpoint_tests(model, endpoint, test)
    alpha = scenario.design.alpha

    def base(a, t, target, an, cap) -> dict:
        drop = float(dropout) if dropout is not None else endpoint_dropout(model, a.name)
        return dict(endpoint=a.name, test=t, label=a.label, family=a.kind, primary=a.primary, target_power=target,
                    alpha=alpha, ratio=ratio, n_analytic=an.n, analytic_method=an.method, dropout=drop, n_max=cap)

    results: dict[tuple[str, str, float], SampleSizeResult] = {}
    searched = []
    for a, t in pairs:
        cap = _cap(t, n_max)
        if exact_available(model, a.name, t):
            for target in targets:
                an = analytic_sample_size(model, a.name, t, power=target, ratio=ratio, moments=None)
                results[(a.name, t, target)] = _exact(model, a.name, t, target, ratio, cap, base(a, t, target, an, cap))
        else:
            searched.append((a, t, cap))
    if searched:
        cc = complete_case(scenario)
        cc_model = build_model(cc)
        moments = model_moments(cc, seed=seed)
        chosen = simulate if isinstance(simulate, bool) else {tuple(p) for p in simulate}

        def common(a, t, target, cap):
            an = analytic_sample_size(cc_model, a.name, t, power=target, ratio=ratio, moments=moments)
            return base(a, t, target, an, cap)

        results.update(_simulated(cc, cc_model, searched, targets, chosen, common, moments=moments, ratio=ratio,
                                  n_max=n_max, n_sims=n_sims, seed=seed, n_jobs=n_jobs, progress=progress))
    ordered = tuple(results[(a.name, t, p)] for a, t in pairs for p in targets)
    return SampleSizeTable(ordered, seed=seed, n_sims=n_sims,
                           settings={"power": list(targets), "ratio": ratio, "n_max": n_max, "n_sims": n_sims,
                                     "locate_sims": locate_sims(n_sims), "dropout": dropout, "seed": seed})


def _cap(test: str, n_max: int) -> int:
    limit = tests.get(test).max_n
    return min(n_max, limit) if limit is not None else n_max


def _exact(model, endpoint: str, test: str, target: float, ratio: float, cap: int, common: dict) -> SampleSizeResult:
    rates = binary_rates(model, endpoint)
    common = common | dict(p_control=rates.p_control, p_treatment=rates.p_treatment)
    none = dict(n_first=None, n_stable=None, n_low=None, n_high=None)
    limit = tests.get(test).max_n
    n_analytic = common["n_analytic"]
    if rates.p_control == rates.p_treatment:
        return SampleSizeResult(**common, method="exact", reachable=False, **none, horizon=None, power_at_n=math.nan,
                                power_at_n_se=math.nan, note="The endpoint's rate is the same in both arms: no n reaches "
                                                             "the target (power is the type I error).")
    if limit is not None and cap == limit and n_analytic is not None and n_analytic > 1.2 * cap:
        return SampleSizeResult(**common, method="exact", reachable=False, **none, horizon=None, power_at_n=math.nan,
                                power_at_n_se=math.nan,
                                note=f"{test_label(test)} runs only up to {limit} per arm (its size limit in the test "
                                     f"registry), well below the normal approximation's {n_analytic:,}; the n of another "
                                     "exact test of this endpoint is an upper bound for a test at least as powerful.")
    scan = exact_scan(test, rates.p_control, rates.p_treatment, power=target, alpha=model.scenario.design.alpha,
                      ratio=ratio, n_max=cap)
    curve = pd.DataFrame({"n_per_arm": scan.n, "power": scan.power})
    if scan.n_first is None:
        return SampleSizeResult(**common, method="exact", reachable=False, **none, horizon=scan.horizon,
                                power_at_n=float(scan.power[-1]), power_at_n_se=0.0, curve=curve,
                                note=f"Exact power at {cap} per arm is {scan.power[-1]:.3f}.")
    p_at = float(scan.power[scan.n == scan.n_stable][0])
    return SampleSizeResult(**common, method="exact", reachable=True, n_first=scan.n_first, n_stable=scan.n_stable,
                            n_low=scan.n_stable, n_high=scan.n_stable, horizon=scan.horizon, power_at_n=p_at,
                            power_at_n_se=0.0, curve=curve,
                            note="Exact power saw-tooths in n: it first reaches the target at n_first and stays at or "
                                 "above it from n_stable on, checked up to the horizon.")


# ---------------------------------------------------------------------------------------------------
# simulated searches
# ---------------------------------------------------------------------------------------------------
def locate_sims(n_sims: int) -> int:
    return max(200, n_sims // 4)


def ladder(lo: float, hi: float) -> list[int]:
    """The fixed ladder's sizes in ``[lo, hi]``: every integer up to 20, then steps of 5%."""
    out = [n for n in range(N_MIN_SIMULATED, LADDER_START + 1) if lo <= n <= hi]
    k_lo = max(0, math.floor(math.log(max(lo, 1) / LADDER_START) / math.log(LADDER_STEP)))
    k = k_lo
    while True:
        n = int(round(LADDER_START * LADDER_STEP**k))
        if n > hi:
            break
        if n > LADDER_START and n >= lo:
            out.append(n)
        k += 1
    return sorted(set(out))


def snap(x: float, cap: int) -> int:
    """The ladder size nearest to ``x`` (on the log scale), within ``[N_MIN_SIMULATED, cap]``."""
    x = min(max(x, N_MIN_SIMULATED), cap)
    if x <= LADDER_START:
        return int(round(x))
    k = math.log(x / LADDER_START) / math.log(LADDER_STEP)
    return min(cap, int(round(LADDER_START * LADDER_STEP ** round(k))))


def locate_grid(lo: float, hi: float, cap: int) -> tuple[int, ...]:
    """About :data:`LOCATE_POINTS` ladder sizes, log-spaced from ``lo`` to ``hi``."""
    lo, hi = max(N_MIN_SIMULATED, lo), min(cap, max(hi, lo + 1))
    return tuple(sorted({snap(v, cap) for v in np.geomspace(lo, hi, LOCATE_POINTS)}))


def refine_grid(root: float, cap: int) -> tuple[int, ...]:
    """Every ladder size within :data:`REFINE_RANGE` of ``root`` (at least three)."""
    sizes = [n for n in ladder(REFINE_RANGE[0] * root, REFINE_RANGE[1] * root) if n <= cap]
    if len(sizes) < 3:
        centre = snap(root, cap)
        sizes = sorted({max(N_MIN_SIMULATED, centre - 1), centre, min(cap, centre + 1)} | set(sizes))
    return tuple(sizes)


def _simulated(cc, cc_model, searched, targets, chosen, common, *, moments, ratio, n_max, n_sims, seed, n_jobs, progress):
    out: dict[tuple[str, str, float], SampleSizeResult] = {}

    def unreached(a, t, target, cap, note, power_at=math.nan, se=math.nan, method="monte_carlo"):
        return SampleSizeResult(**common(a, t, target, cap), method=method, reachable=False, n_first=None, n_stable=None,
                                n_low=None, n_high=None, horizon=None, power_at_n=power_at, power_at_n_se=se, note=note)

    def sizes(grid):
        return tuple(size_point(n, n_treatment_for(n, ratio)) for n in grid)

    locate: list[tuple] = []
    for a, t, cap in searched:
        if not (chosen is True or (chosen is not False and (a.name, t) in chosen)):
            for target in targets:
                out[(a.name, t, target)] = unreached(a, t, target, cap, "Not simulated; see the analytic answer.",
                                                     method="analytic")
            continue
        lo = start_size(cc_model, a.name, t, power=0.5, ratio=ratio, moments=moments)
        hi = start_size(cc_model, a.name, t, power=0.95, ratio=ratio, moments=moments)
        if not math.isfinite(lo) or lo > 3 * n_max:
            note = (f"The model's effect needs about {lo:,.0f} per arm for 50% power (normal approximation), far above "
                    f"the search limit of {n_max:,}." if math.isfinite(lo) else "The model has no effect on this endpoint.")
            for target in targets:
                out[(a.name, t, target)] = unreached(a, t, target, cap, note)
            continue
        locate.append((a, t, cap, locate_grid(LOCATE_RANGE[0] * lo, LOCATE_RANGE[1] * hi, cap)))
    if not locate:
        return out

    # pass 1: locate each pair's root on a wide grid with a quarter of the trials
    rej1 = rejections(cc, [Job(a.name, t, sizes(grid)) for a, t, _, grid in locate], n_sims=locate_sims(n_sims),
                      seed=seed, n_jobs=n_jobs, progress=progress)
    refine: list[tuple] = []
    for (a, t, cap, grid), r in zip(locate, rej1):
        ns = np.array(grid)
        observed = r.mean(axis=0)
        fit = fit_probit(np.sqrt(ns), r)
        for target in targets:
            if fit is not None:
                root = fit.root(target)[0] ** 2
            else:  # fall back to the first grid size reaching the target
                hit = np.flatnonzero(observed >= target)
                root = float(ns[hit[0]]) if hit.size else math.inf
            if root <= cap:
                refine.append((a, t, cap, target, refine_grid(root, cap)))
                continue
            p_end = float(observed[-1])
            out[(a.name, t, target)] = unreached(
                a, t, target, cap, f"Simulated power at {ns[-1]:,} per arm is {p_end:.3f}"
                                   + (f"; the fitted curve reaches the target near {root:,.0f} per arm." if math.isfinite(root) else "."),
                power_at=p_end, se=math.sqrt(p_end * (1 - p_end) / r.shape[0]))

    # pass 2: for each target, refine on the ladder sizes around its root with all the trials
    rej2 = rejections(cc, [Job(a.name, t, sizes(grid)) for a, t, _, _, grid in refine], n_sims=n_sims, seed=seed,
                      n_jobs=n_jobs, progress=progress) if refine else []
    for (a, t, cap, target, grid), r in zip(refine, rej2):
        ns = np.array(grid)
        fit = fit_probit(np.sqrt(ns), r)
        if fit is None:
            out[(a.name, t, target)] = unreached(a, t, target, cap, "The probit fit of simulated power failed.")
            continue
        xs, xlo, xhi = fit.root(target)
        n_point = max(N_MIN_SIMULATED, math.ceil(round(xs**2, 9)))
        n_low = max(N_MIN_SIMULATED, math.ceil(round(max(xlo, 0.0) ** 2, 9)))
        n_high = max(N_MIN_SIMULATED, math.ceil(round(xhi**2, 9)))
        note = (f"Probit fit of simulated power on sqrt(n) over n = {ns[0]}-{ns[-1]} ({len(ns)} sizes x {r.shape[0]:,} "
                f"trials, common random numbers); largest |residual| {fit.max_abs_residual_z():.1f} SE.")
        if n_point > cap:
            out[(a.name, t, target)] = unreached(
                a, t, target, cap, f"The fitted curve reaches the target near {n_point:,} per arm, beyond the search limit. " + note,
                power_at=fit.power(math.sqrt(cap)), se=fit.power_se(math.sqrt(cap)))
            continue
        out[(a.name, t, target)] = SampleSizeResult(
            **common(a, t, target, cap), method="monte_carlo", reachable=True, n_first=n_point, n_stable=n_point,
            n_low=n_low, n_high=n_high, horizon=None, power_at_n=fit.power(math.sqrt(n_point)),
            power_at_n_se=fit.power_se(math.sqrt(n_point)), note=note)
    for a, t, cap, _ in locate:
        for target in targets:
            if (a.name, t, target) not in out:
                out[(a.name, t, target)] = unreached(a, t, target, cap, f"Simulated power stays below the target up to {cap:,}.")
    return out
