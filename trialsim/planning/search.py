"""Simulated power through the one engine, and stochastic root-finding on it.

Every simulated number of planning is a rejection rate of some (endpoint, test) pair in scenarios
derived from the user's: other arm sizes (:func:`~trialsim.planning.model.size_values`) or another
value of an effect parameter. :func:`rejections` builds one scenario per grid point and runs them
all through the engine's block runner (:func:`trialsim.engine.run_specs`), with the run's seed and
block layout (block ``b`` holds trials ``b * run.block_size ...``, random streams
``trialsim.rng.Streams(seed, b)``), keeping each trial's decision from the per-trial table.

Cheap and identical
    Each scenario is first :func:`~trialsim.planning.model.reduced` to the components and tests the
    pairs need. Every component draws from its own stream, so a pair's per-trial results there are
    bit-identical to those of the full scenario: the power of a pair at the planned design is the
    number ``trialsim run`` gives with the same seed and number of trials.

Common random numbers
    Grid points share the seed, so they share patients: draws are patient-major (patient ``j`` has
    the same values whatever the arm sizes) and an effect parameter only changes what it acts on.
    Simulated power is then smooth across the grid and differences between points are estimated far
    more precisely than with independent runs.

Nested sizes
    A job whose points are arm sizes only costs one simulation: the scenario at its largest size,
    with every smaller size analysed on each trial's first patients of each arm (in enrolment order)
    where those are a trial of that size (fixed arm sizes, arms that do not depend on the patients,
    no calendar or looks: :func:`trialsim.simulate.nesting_problem`; otherwise each size is simulated
    on its own). A search over ten sizes then costs one simulation at the largest size and ten
    analyses (every pair of the scenario is tested at every size): the default config's sample
    sizes in 29 s instead of 40, where simulating dominates; little gain where testing does (many
    endpoints of one cheap component). The validity rests on every endpoint family drawing each
    patient from that patient's own draws, arm and covariates, nothing depending on enrolment
    position or other patients of the trial (true of every family shipped). The smaller trials agree
    in law with trials simulated at their size, not in bits (other positions fall in each arm); the
    largest size is the one ``trialsim run`` simulates.

Root
    Power is modelled as ``Phi(a + b x)`` with ``x = sqrt(n)`` (or the effect's distance from no
    effect), the shape of a two-sided z test's power; ``(a, b)`` are fitted by binomial maximum
    likelihood (probit link) to the rejections at every grid point. The root ``x*`` solves
    ``a + b x* = Phi^-1(target)``. Its standard error uses the sandwich covariance with the simulated
    trial as the cluster (a trial's rejections at different grid points are correlated), then the
    delta method; the interval is computed on the x scale and transformed back.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import special

from trialsim.config.loader import with_values
from trialsim.config.schema import Scenario
from trialsim.engine import run_specs
from trialsim.model import build_model
from trialsim.planning.model import Pair, components_for, reduced, size_values
from trialsim.results import clopper_pearson
from trialsim.scenarios import ScenarioSpec
from trialsim.simulate import nesting_problem

SIZE_KEYS = ("design.n_control", "design.n_treatment")


def _norm_pdf(x):
    """The standard normal density, as scipy.stats.norm.pdf computes it (the normal law comes from scipy.special
    here: importing scipy.stats costs half a second of every command's start-up)."""
    return np.exp(-np.square(x) / 2.0) / math.sqrt(2 * math.pi)


@dataclass(frozen=True)
class Job:
    """The grid points at which one (endpoint, test) pair is simulated.

    A point is a dict of raw config values (key path -> value) laid over the scenario; arm sizes are
    given as ``design.n_control`` / ``design.n_treatment`` (tests beyond their size limit are then
    dropped by :func:`~trialsim.planning.model.size_values`).
    """

    endpoint: str
    test: str
    points: tuple[dict[str, Any], ...] = field(hash=False)

    @property
    def pair(self) -> Pair:
        return (self.endpoint, self.test)


def size_point(n_control: int, n_treatment: int) -> dict[str, Any]:
    return {SIZE_KEYS[0]: int(n_control), SIZE_KEYS[1]: int(n_treatment)}


def _key(point: Mapping[str, Any]) -> str:
    return json.dumps(point, sort_keys=True)


def _scenario_at(base: Scenario, point: Mapping[str, Any]) -> Scenario | None:
    values = dict(point)
    if SIZE_KEYS[0] in values or SIZE_KEYS[1] in values:
        d = base.design
        sizes = size_values(base, values.pop(SIZE_KEYS[0], d.n_control), values.pop(SIZE_KEYS[1], d.n_treatment))
        if sizes is None:
            return None
        values.update(sizes)
    if not values:
        return base
    return with_values(base, values, source="planning grid point")


def rejections(scenario: Scenario, jobs: Sequence[Job], *, n_sims: int, seed: int, n_jobs: int = 1,
               progress: bool = False) -> list[np.ndarray]:
    """Per-trial rejections ``(n_sims, len(job.points))`` of each job (in order), through the engine.

    Jobs whose endpoints need the same components share one reduced scenario per grid point (each
    point is simulated once for all of them), or per largest size for jobs over arm sizes (the others are
    nested: see the module's notes); all scenarios go to one :func:`trialsim.engine.run_specs`
    call, so workers stay busy. Identical for any ``n_jobs`` and ``run.chunk_blocks``.
    """
    jobs = list(jobs)
    if not jobs:
        return []
    model = build_model(scenario)
    groups: dict[frozenset, list[tuple[int, Job]]] = {}  # jobs (with their place) by the components they need
    for j, job in enumerate(jobs):
        groups.setdefault(frozenset(components_for(model, [job.endpoint])), []).append((j, job))
    specs: list[ScenarioSpec] = []
    where: dict[tuple[int, str], tuple[int, tuple[int, int] | None]] = {}  # (job, point key) -> (spec, nested size)
    for members in groups.values():
        pairs = list(dict.fromkeys(job.pair for _, job in members))
        base = reduced(scenario, pairs)
        narrowed: dict[tuple[Pair, ...], Scenario] = {tuple(pairs): base}

        def only(readers: Sequence[tuple[int, Job]]) -> Scenario:
            # the group's scenario reduced to the pairs of the jobs that read a simulation: their per-trial statistics
            # are the same bits (see reduced), without generating and testing the group's other endpoints (the
            # jobs of four markers' means, each at its own largest size, each generated and tested all four)
            own = tuple(dict.fromkeys(job.pair for _, job in readers))
            if own not in narrowed:
                narrowed[own] = reduced(scenario, list(own))
            return narrowed[own]

        for top, (sc, same) in _by_largest_size(base, members).items():
            if top is not None:
                # one scenario at the jobs' largest size, their other sizes its trials' first patients: a job's
                # trials depend on its own largest size only, whichever other jobs share the scenario
                inner = tuple(sorted({_size_of(point) for _, job in same for point in job.points} - {top}))
                for j, job in same:
                    for point in job.points:
                        where[(j, _key(point))] = (len(specs), None if _size_of(point) == top else _size_of(point))
                own = only(same)
                specs.append(ScenarioSpec(f"grid-{len(specs)}", sc if own is base else _scenario_at(own, size_point(*top)),
                                          size_point(*top), nested=inner))
                continue
            readers: dict[str, tuple[Mapping[str, Any], list[tuple[int, Job]]]] = {}  # point key -> its jobs
            for j, job in same:
                for point in job.points:
                    readers.setdefault(_key(point), (point, []))[1].append((j, job))
            for k, (point, jobs_at) in readers.items():  # each point simulated once, for the jobs that read it
                i = len(specs)
                specs.append(ScenarioSpec(f"grid-{i}", _scenario_at(only(jobs_at), point), dict(point)))
                for j, job in jobs_at:
                    where[(j, k)] = (i, None)
                    if not _runs(specs[i].scenario, job):
                        raise ValueError(f"{job.endpoint} / {job.test} cannot run at {point} (beyond the test's size limit?)")
    wanted: dict[int, set] = {i: set() for i in range(len(specs))}
    for j, job in enumerate(jobs):
        for point in job.points:
            i, size = where[(j, _key(point))]
            wanted[i].add((job.pair, size))
    kept: dict[tuple[int, Pair, tuple[int, int] | None], dict[int, np.ndarray]] = {}

    def collect(spec_index: int, block: int, table: dict | None) -> None:
        # the rows of each (endpoint, test) found once per block, then each size picked among them: comparing the
        # table's text columns once per wanted size took 2.8 s of a report's searches
        rows_of = {pair: np.flatnonzero((table["endpoint"] == pair[0]) & (table["test"] == pair[1]))
                   for pair in {pair for pair, _ in wanted[spec_index]}}
        for pair, size in wanted[spec_index]:
            rows = rows_of[pair]
            if specs[spec_index].nested:
                d = specs[spec_index].scenario.design
                n_c, n_t = size or (d.n_control, d.n_treatment)
                rows = rows[(table["n_control"][rows] == n_c) & (table["n_treatment"][rows] == n_t)]
            kept.setdefault((spec_index, pair, size), {})[block] = np.asarray(table["reject"][rows], dtype=bool)

    run = scenario.run
    if specs:
        run_specs(specs, seed=seed, n_sims=n_sims, n_jobs=n_jobs, chunk_blocks=run.chunk_blocks, backend=run.backend,
                  progress=progress, on_trials=collect, trial_columns=("endpoint", "test", "reject"))
    out = []
    for j, job in enumerate(jobs):
        columns = []
        for point in job.points:
            i, size = where[(j, _key(point))]
            blocks = kept[(i, job.pair, size)]
            columns.append(np.concatenate([blocks[b] for b in sorted(blocks)]))
        out.append(np.stack(columns, axis=1) if columns else np.zeros((n_sims, 0), dtype=bool))
    return out


def _size_of(point: Mapping[str, Any]) -> tuple[int, int]:
    return int(point[SIZE_KEYS[0]]), int(point[SIZE_KEYS[1]])


def _runs(sc: Scenario | None, job: Job) -> bool:
    """Whether ``job``'s test is analysed in ``sc`` (None: no test runs at that size)."""
    return sc is not None and job.test in {a.name: a.tests for a in build_model(sc).analysed}.get(job.endpoint, ())


def _by_largest_size(base: Scenario, members: Sequence[tuple[int, Job]]
                     ) -> dict[tuple[int, int] | None, tuple[Scenario | None, list[tuple[int, Job]]]]:
    """The jobs whose points are arm sizes, by their largest size (with the scenario at that size), where every
    smaller size can be read off the largest one's trials (:func:`~trialsim.simulate.nesting_problem`); the others
    under None (each point is simulated on its own)."""
    out: dict[tuple[int, int] | None, tuple[Scenario | None, list[tuple[int, Job]]]] = {}
    at: dict[tuple[int, int], Scenario | None] = {}  # the scenario at each largest size, validated once
    for j, job in members:
        top = None
        if len(job.points) > 1 and all(set(point) == set(SIZE_KEYS) for point in job.points):
            sizes = {_size_of(point) for point in job.points}
            top = (max(c for c, _ in sizes), max(t for _, t in sizes))
            if top not in at:
                at[top] = _scenario_at(base, size_point(*top))
            if not _runs(at[top], job) or nesting_problem(at[top], sorted(sizes - {top})) is not None:
                top = None
        out.setdefault(top, (at.get(top), []))[1].append((j, job))
    return out


def mc_row(rejects: np.ndarray) -> dict:
    """Monte Carlo power of one grid point: estimate, SE, 95% Clopper-Pearson interval, trials."""
    n = rejects.size
    k = int(np.count_nonzero(rejects))
    p = k / n
    low, high = clopper_pearson(k, n)
    return {"power": p, "mc_se": math.sqrt(p * (1 - p) / n), "ci_low": low, "ci_high": high, "method": "monte_carlo",
            "n_sims": n}


def exact_row(power: float) -> dict:
    return {"power": power, "mc_se": 0.0, "ci_low": power, "ci_high": power, "method": "exact", "n_sims": 0}


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
        return float(special.ndtr(self.a + self.b * x))

    def power_se(self, x: float) -> float:
        g = _norm_pdf(self.a + self.b * x) * np.array([1.0, x])
        return float(math.sqrt(max(g @ self.cov @ g, 0.0)))

    def root(self, target: float, level: float = 0.95) -> tuple[float, float, float]:
        """``x*`` with fitted power ``target`` and its ``level`` interval (delta method)."""
        z = special.ndtri(target)
        xs = (z - self.a) / self.b
        g = np.array([-1.0 / self.b, -xs / self.b])
        se = math.sqrt(max(g @ self.cov @ g, 0.0))
        q = special.ndtri(0.5 + level / 2)
        return xs, xs - q * se, xs + q * se

    def max_abs_residual_z(self) -> float:
        """Largest |observed - fitted| / binomial SE over the grid: a lack-of-fit check."""
        p = special.ndtr(self.a + self.b * self.x)
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
    y0 = special.ndtri(np.clip(phat, 0.5 / m, 1 - 0.5 / m))
    theta = np.linalg.lstsq(X, y0, rcond=None)[0]
    for _ in range(100):
        eta = np.clip(X @ theta, -8, 8)
        p = np.clip(special.ndtr(eta), 1e-12, 1 - 1e-12)
        phi = _norm_pdf(eta)
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
    p = np.clip(special.ndtr(eta), 1e-12, 1 - 1e-12)
    phi = _norm_pdf(eta)
    w = phi / (p * (1 - p))
    info = (X * (m * phi * w)[:, None]).T @ X
    psi = ((r - p[None, :]) * w[None, :]) @ X  # per-trial scores (n_sims, 2): trials are the clusters
    meat = psi.T @ psi
    bread = np.linalg.inv(info)
    return ProbitFit(a, b, bread @ meat @ bread, x, phat, m)
