"""Simulated power on grids of sizes or effects, and stochastic root-finding on it.

Nested trials (common random numbers over n)
    Patients are independent and identically distributed within an arm (without a flow model), so
    the first ``n`` patients of a simulated trial of ``N >= n`` per arm are themselves a trial of
    ``n`` per arm. One simulation of ``N`` patients per arm therefore gives the power at every
    ``n <= N`` on the same random numbers: the estimated curve is smooth in ``n`` and differences
    between sizes are estimated far more precisely than with independent runs. With a flow model
    (random arm sizes, calendar) each size is simulated on its own from the same streams instead.

Common random numbers over effects
    For a grid of effect values at a fixed size every value reuses the same streams, so a
    treatment GMR only shifts the same log levels: simulated power is monotone in the effect.

Root
    Power is modelled as ``Phi(a + b x)`` with ``x = sqrt(n)`` (or ``|log effect|``), the shape of a
    two-sided z test's power; ``(a, b)`` are fitted by binomial maximum likelihood (probit link)
    to the rejections at every grid point. The root ``x*`` solves ``a + b x* = Phi^-1(target)``.
    Its standard error uses the sandwich covariance with the simulated trial as the cluster (a
    trial's rejections at different grid points are correlated), then the delta method; the
    interval is computed on the x scale and transformed back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats

from trialsim.analyse import run_test
from trialsim.config.loader import with_values
from trialsim.config.schema import Scenario
from trialsim.endpoints import endpoints
from trialsim.planning.model import stream_rng

# Patients per arm held in memory by one chunk (trials x patients); sets chunk sizes, which are
# part of the seed's meaning (results are identical for any n_jobs, not for another chunk size).
_CHUNK_PATIENTS = 200_000


@dataclass(frozen=True)
class GridJob:
    """Sizes (control, treatment) at which one (endpoint, test) is analysed."""

    endpoint: str
    test: str
    sizes: tuple[tuple[int, int], ...]


def chunk_layout(n_sims: int, n_patients: int) -> list[int]:
    """Trials per chunk: as many as fit in ``_CHUNK_PATIENTS`` patients, at least 20, at most 1000."""
    per = int(min(1000, max(20, _CHUNK_PATIENTS // max(n_patients, 1))))
    full, rest = divmod(n_sims, per)
    return [per] * full + ([rest] if rest else [])


def _nested_chunk(scenario: Scenario, seed: int, stream: int, block: int, n_trials: int,
                  jobs: tuple[GridJob, ...]) -> dict[tuple[str, str], np.ndarray]:
    from trialsim.outcomes.patients import observe, simulate_arm

    eps = {e.name: e for e in endpoints(scenario)}
    alpha = scenario.design.alpha
    rng = stream_rng(seed, stream, block)
    out: dict[tuple[str, str], np.ndarray] = {}
    if scenario.flow is None:
        n_c = max(c for j in jobs for c, _ in j.sizes)
        n_t = max(t for j in jobs for _, t in j.sizes)
        obs_c = observe(scenario, simulate_arm(scenario, "control", n_trials, n_c, rng=rng))
        obs_t = observe(scenario, simulate_arm(scenario, "treatment", n_trials, n_t, rng=rng))
        for job in jobs:
            e = eps[job.endpoint]
            xc, xt = obs_c[job.endpoint], obs_t[job.endpoint]
            out[(job.endpoint, job.test)] = np.stack(
                [run_test(e, job.test, xc[:, :c], xt[:, :t], alpha=alpha).reject for c, t in job.sizes], axis=1)
        return out
    # flow model: arm sizes are random and patients arrive in calendar order; simulate each size
    from trialsim.simulate import simulate_trials

    sizes = sorted({s for j in jobs for s in j.sizes})
    batches = {}
    for c, t in sizes:
        batches[(c, t)] = simulate_trials(resized(scenario, c, t), n_trials, rng=stream_rng(seed, stream, block))
    for job in jobs:
        out[(job.endpoint, job.test)] = np.stack([batches[s].tests[(job.endpoint, job.test)].reject for s in job.sizes], axis=1)
    return out


def resized(scenario: Scenario, n_control: int, n_treatment: int) -> Scenario:
    """The scenario at other arm sizes; Boschloo is dropped from tests beyond its size limit (none of
    the searched jobs can use it there: its sample sizes stop at that limit)."""
    from trialsim.config.schema import BOSCHLOO_MAX_N

    values: dict = {"design.n_control": n_control, "design.n_treatment": n_treatment}
    if max(n_control, n_treatment) > BOSCHLOO_MAX_N:
        for key, tests in (("leak.tests", scenario.leak.tests),
                           ("colonoscopy.dichotomised_tests", scenario.colonoscopy.dichotomised_tests)):
            if "boschloo" in tests:
                values[key] = [t for t in tests if t != "boschloo"] or ["fisher"]
    return with_values(scenario, values, source=f"{n_control} + {n_treatment} patients")


def nested_rejections(scenario: Scenario, jobs: Sequence[GridJob], *, n_sims: int, seed: int, stream: int,
                      n_jobs: int = 1, progress: bool = False, desc: str = "simulating") -> dict[tuple[str, str], np.ndarray]:
    """Per-trial rejections ``(n_sims, len(job.sizes))`` for every job, on common random numbers.

    Identical for any ``n_jobs``: chunks depend only on ``n_sims`` and the largest size.
    """
    jobs = tuple(jobs)
    if not jobs:
        return {}
    n_max = max(max(c, t) for j in jobs for c, t in j.sizes)
    layout = chunk_layout(n_sims, 2 * n_max)
    tasks = list(enumerate(layout))
    parts: dict[int, dict] = {}
    for block, res in _execute(_nested_chunk, [(scenario, seed, stream, b, n, jobs) for b, n in tasks], tasks,
                               n_jobs=n_jobs, progress=progress, desc=desc):
        parts[block] = res
    return {(j.endpoint, j.test): np.concatenate([parts[b][(j.endpoint, j.test)] for b, _ in tasks], axis=0) for j in jobs}


def _effect_chunk(scenario: Scenario, parameter: str, values: tuple[float, ...], seed: int, stream: int, block: int,
                  n_trials: int, pairs: tuple[tuple[str, str], ...]) -> dict[tuple[str, str], np.ndarray]:
    out = {p: np.empty((n_trials, len(values)), dtype=bool) for p in pairs}
    if scenario.flow is not None:
        from trialsim.simulate import simulate_trials

        for j, v in enumerate(values):
            sc = with_values(scenario, {parameter: v}, source=f"{parameter} = {v}")
            batch = simulate_trials(sc, n_trials, rng=stream_rng(seed, stream, block))
            for p in pairs:
                out[p][:, j] = batch.tests[p].reject
        return out
    from trialsim.outcomes.patients import observe, simulate_arm

    # Effect parameters act on the treatment arm only: its control arm is drawn once per block, and
    # every value redraws the treatment arm from the same stream (common random numbers).
    d = scenario.design
    eps = {e.name: e for e in endpoints(scenario)}
    obs_c = observe(scenario, simulate_arm(scenario, "control", n_trials, d.n_control, rng=stream_rng(seed, stream, 2 * block)))
    for j, v in enumerate(values):
        sc = with_values(scenario, {parameter: v}, source=f"{parameter} = {v}")
        raw_t = simulate_arm(sc, "treatment", n_trials, d.n_treatment, rng=stream_rng(seed, stream, 2 * block + 1))
        obs_t = observe(sc, raw_t)
        for name, test in pairs:
            out[(name, test)][:, j] = run_test(eps[name], test, obs_c[name], obs_t[name], alpha=d.alpha).reject
    return out


def effect_rejections(scenario: Scenario, parameter: str, values: Sequence[float], pairs: Sequence[tuple[str, str]], *,
                      n_sims: int, seed: int, stream: int, n_jobs: int = 1, progress: bool = False,
                      desc: str = "simulating") -> dict[tuple[str, str], np.ndarray]:
    """Per-trial rejections ``(n_sims, len(values))`` with ``parameter`` set to each value, same streams.

    ``parameter`` must act on the treatment arm only (every effect parameter does: a marker's
    ``treatment_gmr``, ``los.treatment_ratio``, ``leak.effect``); only the tests in ``pairs`` are run.
    """
    values, pairs = tuple(float(v) for v in values), tuple(pairs)
    d = scenario.design
    layout = chunk_layout(n_sims, d.n_control + d.n_treatment * len(values))
    tasks = list(enumerate(layout))
    parts = {}
    for block, res in _execute(_effect_chunk, [(scenario, parameter, values, seed, stream, b, n, pairs) for b, n in tasks],
                               tasks, n_jobs=n_jobs, progress=progress, desc=desc):
        parts[block] = res
    return {p: np.concatenate([parts[b][p] for b, _ in tasks], axis=0) for p in pairs}


def _execute(func: Callable, args: list[tuple], tasks: list[tuple[int, int]], *, n_jobs: int, progress: bool, desc: str):
    """Run ``func(*args[i])`` for every task, yielding (block, result) in any order, with a progress bar."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(n for _, n in tasks), unit="trial", unit_scale=True, desc=desc, mininterval=0.5, leave=False)
    try:
        if n_jobs == 1 or len(tasks) == 1:
            results = ((tasks[i][0], func(*a)) for i, a in enumerate(args))
        else:
            from joblib import Parallel, delayed

            gen = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
                delayed(_tagged)(func, tasks[i][0], a) for i, a in enumerate(args))
            results = iter(gen)
        sizes = dict(tasks)
        for block, res in results:
            if bar is not None:
                bar.update(sizes[block])
            yield block, res
    finally:
        if bar is not None:
            bar.close()


def _tagged(func, block, args):
    return block, func(*args)


# ---------------------------------------------------------------------------------------------------
# probit fit and root
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbitFit:
    """``power(x) = Phi(a + b x)`` fitted to per-trial rejections at grid points ``x``."""

    a: float
    b: float
    cov: np.ndarray  # sandwich covariance of (a, b), trials as clusters
    x: np.ndarray
    power_observed: np.ndarray
    n_sims: int

    def power(self, x: float) -> float:
        return float(stats.norm.cdf(self.a + self.b * x))

    def power_se(self, x: float) -> float:
        g = stats.norm.pdf(self.a + self.b * x) * np.array([1.0, x])
        return float(math.sqrt(max(g @ self.cov @ g, 0.0)))

    def root(self, target: float, level: float = 0.95) -> tuple[float, float, float]:
        """``x*`` with fitted power ``target`` and its ``level`` interval (delta method)."""
        z = stats.norm.ppf(target)
        xs = (z - self.a) / self.b
        g = np.array([-1.0 / self.b, -xs / self.b])
        se = math.sqrt(max(g @ self.cov @ g, 0.0))
        q = stats.norm.ppf(0.5 + level / 2)
        return xs, xs - q * se, xs + q * se

    def max_abs_residual_z(self) -> float:
        """Largest |observed - fitted| / binomial SE over the grid: a lack-of-fit check."""
        p = stats.norm.cdf(self.a + self.b * self.x)
        se = np.sqrt(np.clip(p * (1 - p), 1e-12, None) / self.n_sims)
        return float(np.max(np.abs(self.power_observed - p) / se))


def fit_probit(x: Sequence[float], rejects: np.ndarray) -> ProbitFit | None:
    """Binomial maximum likelihood (Fisher scoring) of ``Phi(a + b x)``; None if it fails or ``b <= 0``.

    Parameters
    ----------
    x : sequence of float, length J
        Grid points on the fitting scale (``sqrt(n)``, ``|log effect|``).
    rejects : ndarray of bool, shape (n_sims, J)
        Whether each simulated trial rejected at each grid point.
    """
    x = np.asarray(x, dtype=float)
    r = np.asarray(rejects, dtype=float)
    m = r.shape[0]
    k = r.sum(axis=0)
    phat = k / m
    if len(x) < 2 or np.ptp(x) == 0 or k.sum() == 0 or k.sum() == m * len(x):
        return None
    X = np.column_stack([np.ones_like(x), x])
    y0 = stats.norm.ppf(np.clip(phat, 0.5 / m, 1 - 0.5 / m))
    theta = np.linalg.lstsq(X, y0, rcond=None)[0]
    for _ in range(100):
        eta = np.clip(X @ theta, -8, 8)
        p = np.clip(stats.norm.cdf(eta), 1e-12, 1 - 1e-12)
        phi = stats.norm.pdf(eta)
        w = phi / (p * (1 - p))
        score = X.T @ ((k - m * p) * w)
        info = (X * (m * phi * w)[:, None]).T @ X
        try:
            step = np.linalg.solve(info, score)
        except np.linalg.LinAlgError:
            return None
        theta = theta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    a, b = float(theta[0]), float(theta[1])
    if not (np.isfinite(a) and np.isfinite(b)) or b <= 0:
        return None
    eta = X @ theta
    p = np.clip(stats.norm.cdf(eta), 1e-12, 1 - 1e-12)
    phi = stats.norm.pdf(eta)
    w = phi / (p * (1 - p))
    info = (X * (m * phi * w)[:, None]).T @ X
    psi = ((r - p[None, :]) * w[None, :]) @ X  # per-trial scores (n_sims, 2): trials are the clusters
    meat = psi.T @ psi
    bread = np.linalg.inv(info)
    return ProbitFit(a, b, bread @ meat @ bread, x, phat, m)
