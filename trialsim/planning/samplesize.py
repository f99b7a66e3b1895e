"""Smallest n per arm reaching a target power, for every endpoint and test.

Binary endpoints: exact enumeration. Exact power of a discrete test saw-tooths in n (the attainable
significance levels jump), so two answers are reported: the first n whose power reaches the target,
and the smallest n from which power never drops below it again, checked up to a stated horizon.

Other endpoints: stochastic root-finding on simulated power (:mod:`trialsim.planning.search`):
start from the analytic answer on the model's own effect, locate the root on a coarse grid with
few trials, then refine on a narrow grid with more trials on fresh streams. The answer comes with
a 95% Monte Carlo interval.

Every answer is per analysable patient; ``n_enrolled = ceil(n / (1 - dropout))`` allows for loss
to follow-up. The analytic (normal-approximation or noncentral t) answer is reported alongside and
labelled as such.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from trialsim.analysis.binary import exact_power_curve
from trialsim.config.schema import Scenario
from trialsim.planning.model import (
    STREAM_LOCATE,
    STREAM_REFINE,
    analytic_sample_size,
    binary_rates,
    complete_case,
    dropout as endpoint_dropout,
    endpoint_tests,
    inflate,
    model_moments,
    model_start,
    n_treatment_for,
    resolve_seed,
)
from trialsim.planning.search import GridJob, fit_probit, nested_rejections

# Boschloo builds a full table per size (memory grows as n^4): enumerate only up to this n.
BOSCHLOO_MAX_N = 100
# The exact scan checks power up to max(HORIZON_FACTOR * n_first, n_first + HORIZON_MIN_EXTRA).
HORIZON_FACTOR = 1.5
HORIZON_MIN_EXTRA = 20
# Smallest size a simulated search considers (a t test needs 2 per arm, Mann-Whitney 4 for p < 0.05).
N_MIN_SIMULATED = 3

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
    """Scan exact power from ``n_min`` per arm upward (no missing data).

    Returns the first n reaching ``power`` and the smallest n from which power stays at or above
    it up to the horizon ``max(horizon_factor * n_first, n_first + 20)``; both None when ``power``
    is not reached by ``n_max``.
    """
    ns: list[np.ndarray] = []
    ps: list[np.ndarray] = []
    start, step, n_first = n_min, 100, None
    while start <= n_max:
        block = np.arange(start, min(n_max, start + step - 1) + 1)
        pw = exact_power_curve(test, p_control, p_treatment, block, ratio=ratio, alpha=alpha)
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
            ps.append(exact_power_curve(test, p_control, p_treatment, block, ratio=ratio, alpha=alpha))
    n_all, p_all = np.concatenate(ns), np.concatenate(ps)
    n_stable = None
    if n_first is not None:
        below = np.flatnonzero(p_all < power)
        n_stable = int(n_all[below[-1]] + 1) if below.size else int(n_all[0])
    return ExactScan(n_all, p_all, power, n_first, n_stable)


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
    family: str
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
    from trialsim.labels import pct, test_label

    head = f"{row['endpoint']} / {test_label(row['test'])}: {pct(row['target_power'], 0)} power"
    if not row["reachable"]:
        text = f"{head}: not reached by {row['n_max']:,} per arm. {row['note'].rstrip('.')}".strip()
    elif row["method"] == "exact":
        text = (f"{head}: n = {row['n']:,} per arm (exact; power first reaches the target at n = {row['n_first']:,}"
                + (f" but saw-tooths below it again until n = {row['n_stable']:,}" if row["n_stable"] != row["n_first"] else
                   " and stays above it")
                + f", checked up to n = {row['horizon']:,}; exact power at n {pct(row['power_at_n'], 1)})")
    elif row["method"] == "monte_carlo":
        text = (f"{head}: n = {row['n']:,} per arm (simulated, 95% MC interval {row['n_low']:,}-{row['n_high']:,}; "
                f"fitted power at n {pct(row['power_at_n'], 1)} ± {pct(row['power_at_n_se'], 1)})")
    else:
        text = f"{head}: not simulated. {row['note'].rstrip('.')}".strip()
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
        """The exact scans behind the binary answers: endpoint, test, n_per_arm, power."""
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
    from trialsim.planning.model import get_endpoint

    test = test or get_endpoint(scenario, endpoint).tests[0]
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
    simulate: bool = True,
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
        Simulated trials of the refining pass (the locating pass uses a quarter).
    seed : int, optional
        Root seed of the simulated searches; default ``run.seed``, else drawn (recorded in ``.seed``).
    n_jobs : int
        Parallel workers for the simulated searches (results do not depend on it).
    progress : bool
        Show progress bars.
    simulate : bool
        False: exact and analytic answers only (no simulation); simulated endpoints get method "analytic".

    Returns
    -------
    SampleSizeTable
    """
    targets = tuple(sorted({float(p) for p in np.atleast_1d(power)}))
    for p in targets:
        if not 0.0 < p < 1.0:
            raise ValueError(f"power must lie in (0, 1), got {p}")
    if not ratio > 0:
        raise ValueError(f"ratio must be positive, got {ratio}")
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    seed = resolve_seed(scenario, seed)
    pairs = endpoint_tests(scenario, endpoint, test)
    alpha = scenario.design.alpha
    cc = complete_case(scenario)

    def drop(name: str) -> float:
        if dropout is not None:
            return float(dropout)
        return max(endpoint_dropout(scenario, name, "control"), endpoint_dropout(scenario, name, "treatment"))

    sim_pairs = [(e, t) for e, t in pairs if e.family != "binary"]
    moments = model_moments(cc, seed=seed) if sim_pairs else None
    results: dict[tuple[str, str, float], SampleSizeResult] = {}

    for e, t in pairs:
        if e.family != "binary":
            continue
        rates = binary_rates(scenario, e.name)
        cap = min(n_max, BOSCHLOO_MAX_N) if t == "boschloo" else n_max
        for target in targets:
            an = analytic_sample_size(scenario, e.name, t, power=target, ratio=ratio, moments=None)
            common = dict(endpoint=e.name, test=t, label=e.label, family=e.family, primary=e.primary, target_power=target,
                          alpha=alpha, ratio=ratio, n_analytic=an.n, analytic_method=an.method, dropout=drop(e.name),
                          p_control=rates.p_control, p_treatment=rates.p_treatment)
            if t == "boschloo" and an.n is not None and an.n > 1.2 * cap:
                results[(e.name, t, target)] = SampleSizeResult(
                    **common, method="exact", reachable=False, n_first=None, n_stable=None, n_low=None, n_high=None,
                    horizon=None, power_at_n=math.nan, power_at_n_se=math.nan, n_max=cap,
                    note=f"Boschloo's exact power is enumerated only up to {cap} per arm (its cost grows as n^4); it is "
                         "uniformly at least as powerful as Fisher's test, so Fisher's n is an upper bound.")
                continue
            scan = exact_scan(t, rates.p_control, rates.p_treatment, power=target, alpha=alpha, ratio=ratio, n_max=cap)
            curve = pd.DataFrame({"n_per_arm": scan.n, "power": scan.power})
            if scan.n_first is None:
                results[(e.name, t, target)] = SampleSizeResult(
                    **common, method="exact", reachable=False, n_first=None, n_stable=None, n_low=None, n_high=None,
                    horizon=scan.horizon, power_at_n=float(scan.power[-1]), power_at_n_se=0.0, n_max=cap, curve=curve,
                    note=f"Exact power at {cap} per arm is {scan.power[-1]:.3f}.")
                continue
            p_at = float(scan.power[scan.n == scan.n_stable][0])
            results[(e.name, t, target)] = SampleSizeResult(
                **common, method="exact", reachable=True, n_first=scan.n_first, n_stable=scan.n_stable,
                n_low=scan.n_stable, n_high=scan.n_stable, horizon=scan.horizon, power_at_n=p_at, power_at_n_se=0.0,
                n_max=cap, curve=curve,
                note="Exact power saw-tooths in n: it first reaches the target at n_first and stays at or above it from "
                     "n_stable on, checked up to the horizon.")

    if sim_pairs:
        results.update(_simulated(scenario, cc, sim_pairs, targets, ratio=ratio, n_max=n_max, n_sims=n_sims, seed=seed,
                                  n_jobs=n_jobs, progress=progress, simulate=simulate, moments=moments, drop=drop))
    ordered = tuple(results[(e.name, t, p)] for e, t in pairs for p in targets)
    return SampleSizeTable(ordered, seed=seed, n_sims=n_sims,
                           settings={"power": list(targets), "ratio": ratio, "n_max": n_max, "n_sims": n_sims,
                                     "locate_sims": _locate_sims(n_sims), "dropout": dropout, "seed": seed})


def _locate_sims(n_sims: int) -> int:
    return max(200, n_sims // 4)


def _grid(lo: float, hi: float, points: int, n_max: int) -> tuple[int, ...]:
    lo = max(N_MIN_SIMULATED, math.floor(lo))
    hi = min(n_max, max(math.ceil(hi), lo + 1))
    return tuple(sorted({int(round(v)) for v in np.geomspace(lo, hi, points)}))


def _simulated(scenario, cc, pairs, targets, *, ratio, n_max, n_sims, seed, n_jobs, progress, simulate, moments, drop):
    alpha = scenario.design.alpha
    out = {}
    starts = {}
    for e, t in pairs:
        starts[(e.name, t)] = [model_start(cc, e.name, t, power=p, ratio=ratio, moments=moments) for p in targets]

    def base(e, t, target):
        an = analytic_sample_size(cc, e.name, t, power=target, ratio=ratio, moments=moments)
        return dict(endpoint=e.name, test=t, label=e.label, family=e.family, primary=e.primary, target_power=target,
                    alpha=alpha, ratio=ratio, n_analytic=an.n, analytic_method=an.method, dropout=drop(e.name), n_max=n_max)

    def unreached(e, t, target, note, power_at=math.nan, se=math.nan, method="monte_carlo"):
        return SampleSizeResult(**base(e, t, target), method=method, reachable=False, n_first=None, n_stable=None,
                                n_low=None, n_high=None, horizon=None, power_at_n=power_at, power_at_n_se=se, note=note)

    searchable = []
    for e, t in pairs:
        lo, hi = starts[(e.name, t)][0], starts[(e.name, t)][-1]
        if not simulate:
            for target in targets:
                out[(e.name, t, target)] = unreached(e, t, target, "Simulation skipped; see the analytic answer.", method="analytic")
        elif not math.isfinite(lo) or lo > 3 * n_max:
            for target in targets:
                out[(e.name, t, target)] = unreached(
                    e, t, target, f"The model's effect needs about {lo:,.0f} per arm (normal approximation), far above "
                                  f"the search limit of {n_max:,}." if math.isfinite(lo) else "The model has no effect on this endpoint.")
        else:
            searchable.append((e, t, lo, hi))
    if not searchable:
        return out

    # pass 1: locate on a wide grid with few trials
    jobs1 = [GridJob(e.name, t, tuple((n, n_treatment_for(n, ratio)) for n in _grid(lo / 3, 3 * hi, 10, n_max)))
             for e, t, lo, hi in searchable]
    rej1 = nested_rejections(cc, jobs1, n_sims=_locate_sims(n_sims), seed=seed, stream=STREAM_LOCATE, n_jobs=n_jobs,
                             progress=progress, desc="sample size: locating")
    jobs2 = []
    for (e, t, lo, hi), job in zip(searchable, jobs1):
        ns = np.array([c for c, _ in job.sizes])
        r = rej1[(e.name, t)]
        observed = r.mean(axis=0)
        fit = fit_probit(np.sqrt(ns), r)
        roots = []
        for target in targets:
            if fit is not None:
                roots.append(fit.root(target)[0] ** 2)
            else:  # fall back to the first grid size reaching the target
                hit = np.flatnonzero(observed >= target)
                roots.append(float(ns[hit[0]]) if hit.size else math.inf)
        finite = []
        for target, root in zip(targets, roots):
            if root <= n_max:
                finite.append(root)
                continue
            p_end = float(observed[-1])
            out[(e.name, t, target)] = unreached(
                e, t, target, f"Simulated power at {ns[-1]:,} per arm is {p_end:.3f}"
                              + (f"; the fitted curve reaches the target near {root:,.0f} per arm." if math.isfinite(root) else "."),
                power_at=p_end, se=math.sqrt(p_end * (1 - p_end) / r.shape[0]))
        if not finite:
            continue
        sizes = _grid(0.8 * min(finite), 1.25 * max(finite), 10, n_max)
        jobs2.append(GridJob(e.name, t, tuple((n, n_treatment_for(n, ratio)) for n in sizes)))

    # pass 2: refine on a narrow grid with fresh streams and all the trials
    rej2 = nested_rejections(cc, jobs2, n_sims=n_sims, seed=seed, stream=STREAM_REFINE, n_jobs=n_jobs, progress=progress,
                             desc="sample size: refining")
    by_name = {(e.name, t): e for e, t, _, _ in searchable}
    for job in jobs2:
        e, t = by_name[(job.endpoint, job.test)], job.test
        ns = np.array([c for c, _ in job.sizes])
        r = rej2[(e.name, t)]
        fit = fit_probit(np.sqrt(ns), r)
        for target in targets:
            if (e.name, t, target) in out:
                continue
            if fit is None:
                out[(e.name, t, target)] = unreached(e, t, target, "The probit fit of simulated power failed.")
                continue
            xs, xlo, xhi = fit.root(target)
            n_point = max(N_MIN_SIMULATED, math.ceil(round(xs**2, 9)))
            n_low = max(N_MIN_SIMULATED, math.ceil(round(max(xlo, 0.0) ** 2, 9)))
            n_high = max(N_MIN_SIMULATED, math.ceil(round(xhi**2, 9)))
            note = (f"Probit fit of simulated power on sqrt(n) over n = {ns[0]}-{ns[-1]} ({len(ns)} sizes x {r.shape[0]:,} "
                    f"nested trials); largest |residual| {fit.max_abs_residual_z():.1f} SE.")
            if n_point > n_max:
                out[(e.name, t, target)] = unreached(
                    e, t, target, f"The fitted curve reaches the target near {n_point:,} per arm, beyond the search limit. " + note,
                    power_at=fit.power(math.sqrt(n_max)), se=fit.power_se(math.sqrt(n_max)))
                continue
            out[(e.name, t, target)] = SampleSizeResult(
                **base(e, t, target), method="monte_carlo", reachable=True, n_first=n_point, n_stable=n_point,
                n_low=n_low, n_high=n_high, horizon=None, power_at_n=fit.power(math.sqrt(n_point)),
                power_at_n_se=fit.power_se(math.sqrt(n_point)), note=note)
    for e, t, _, _ in searchable:
        for target in targets:
            if (e.name, t, target) not in out:
                out[(e.name, t, target)] = unreached(e, t, target, f"Simulated power stays below the target up to {n_max:,}.")
    return out
