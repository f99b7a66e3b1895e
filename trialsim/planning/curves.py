"""Power-curve data as tidy frames: power versus n per arm, versus the effect, and over effect x n.

All curves are per analysable patient (the :func:`~trialsim.planning.model.complete_case` scenario),
like the sample sizes. A pair with an exact answer (a binary endpoint with a law, a test with a
registered exact power) is exact; every other pair is simulated through the engine with the run's
seed and block layout, on common random numbers across the grid (:mod:`trialsim.planning.search`),
each point with its Monte Carlo SE and 95% Clopper-Pearson interval.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from trialsim.analysis import registry as tests
from trialsim.config.schema import Scenario
from trialsim.endpoints.base import Analysed
from trialsim.model import Model, build_model
from trialsim.planning.mde import EffectAxis, effect_axis
from trialsim.planning.model import (
    Pair,
    binary_rates,
    complete_case,
    effect_values,
    exact_available,
    exact_power,
    key_pairs,
    n_treatment_for,
    reduced,
    resolve_seed,
    valid_effect,
    with_effect,
)
from trialsim.planning.search import Job, exact_row, mc_row, rejections, size_point

CURVE_COLUMNS = ["endpoint", "test", "label", "short", "family", "primary", "n_per_arm", "power", "mc_se", "ci_low", "ci_high",
                 "method", "n_sims"]
EFFECT_COLUMNS = ["endpoint", "test", "label", "short", "family", "primary", "parameter", "parameter_label", "parameter_kind",
                  "no_effect", "assumed", "effect", "relative_change", "n_per_arm", "power", "mc_se", "ci_low", "ci_high",
                  "method", "n_sims"]
GRID_COLUMNS = ["endpoint", "test", "parameter", "parameter_label", "parameter_kind", "no_effect", "assumed", "effect",
                "relative_change", "n_per_arm", "p_control", "p_treatment", "power", "method"]

# Tests with a size limit (TestSpec.max_n) build a full exact table per size: their exact curves are
# drawn only at the requested sizes up to this one, and left out of the effect curves.
LIMITED_CURVE_MAX_N = 60
PRIMARY_EFFECT_N = (50, 100, 200, 400)
GRID_N = tuple(sorted({int(round(v)) for v in np.geomspace(10, 1000, 25)}))


def default_n_values(scenario: Scenario, n_max: int = 500) -> list[int]:
    """About 25 sizes, log-spaced from 4 to ``n_max`` per arm, plus the planned size."""
    ns = {int(round(v)) for v in np.geomspace(4, n_max, 25)} | {scenario.design.n_control}
    return sorted(n for n in ns if 2 <= n <= max(n_max, scenario.design.n_control))


def _base(a: Analysed, test: str) -> dict:
    return {"endpoint": a.name, "test": test, "label": a.label, "short": a.short or a.label, "family": a.kind,
            "primary": a.primary}


def _effect_base(a: Analysed, test: str) -> dict:
    e = a.effect
    return _base(a, test) | {"parameter": e.path, "parameter_label": e.label, "parameter_kind": e.kind,
                             "no_effect": e.null, "assumed": e.assumed}


def relative_change(kind: str, null: float, value: float) -> float:
    """``value / null - 1`` for ratios and rates (-0.5 = halved), NaN for differences."""
    return value / null - 1.0 if kind != "difference" and null else math.nan


def _pairs(model: Model, pairs) -> list[tuple[Analysed, str]]:
    chosen = list(pairs) if pairs is not None else key_pairs(model)
    return [(model.endpoint(name), test) for name, test in chosen]


def power_vs_n(scenario: Scenario, *, pairs: Sequence[Pair] | None = None, n_values: Sequence[int] | None = None,
               ratio: float | None = None, n_sims: int = 2000, seed: int | None = None, n_jobs: int = 1,
               progress: bool = False, simulate: bool = True) -> pd.DataFrame:
    """Power against analysable patients per arm, one series per (endpoint, test).

    Parameters
    ----------
    scenario : Scenario
    pairs : sequence of (endpoint, test), optional
        Default :func:`~trialsim.planning.model.key_pairs`.
    n_values : sequence of int, optional
        Control-arm sizes (default :func:`default_n_values`). Exact series use every integer from 2
        to the largest (their saw-tooth is real); tests with a size limit only the given sizes up to
        :data:`LIMITED_CURVE_MAX_N`; simulated series the given sizes up to the test's limit.
    ratio : float, optional
        ``n_treatment / n_control`` (default: the design's).
    n_sims, seed, n_jobs, progress, simulate
        Simulation settings; ``simulate=False`` leaves simulated series out.

    Returns
    -------
    DataFrame with :data:`CURVE_COLUMNS`; ``frame.attrs["seed"]`` is the root seed used.
    """
    cc = complete_case(scenario)
    model = build_model(cc)
    d = scenario.design
    ratio = ratio if ratio is not None else d.n_treatment / d.n_control
    n_values = sorted(set(int(n) for n in (n_values if n_values is not None else default_n_values(scenario))))
    seed = resolve_seed(scenario, seed)
    rows, jobs, sim = [], [], []
    for a, test in _pairs(model, pairs):
        limit = tests.get(test).max_n
        if exact_available(model, a.name, test):
            r = binary_rates(model, a.name)
            ns = ([n for n in n_values if n <= min(limit, LIMITED_CURVE_MAX_N)] if limit is not None
                  else list(range(2, max(n_values) + 1)))
            rows += [_base(a, test) | {"n_per_arm": n}
                     | exact_row(exact_power(test, r.p_control, r.p_treatment, n, n_treatment_for(n, ratio), alpha=d.alpha))
                     for n in ns]
        elif simulate:
            ns = [n for n in n_values if n >= 2 and (limit is None or max(n, n_treatment_for(n, ratio)) <= limit)]
            jobs.append(Job(a.name, test, tuple(size_point(n, n_treatment_for(n, ratio)) for n in ns)))
            sim.append((a, test, ns))
    done = rejections(cc, jobs, n_sims=n_sims, seed=seed, n_jobs=n_jobs, progress=progress) if jobs else []
    for (a, test, ns), r in zip(sim, done):
        rows += [_base(a, test) | {"n_per_arm": n} | mc_row(r[:, j]) for j, n in enumerate(ns)]
    frame = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    frame.attrs["seed"] = seed  # the root seed of the simulated series (drawn when none was given)
    return frame


def effect_grid(axis: EffectAxis, points: int, *, linear: bool) -> list[float]:
    """Effect values from no effect towards the assumed side, as a planner reads them.

    Ratios and rates (relative to no effect): down to 0.05 (``linear``, exact curves) or 0.25, or up
    to 4; differences: out to twice the assumed one (a quarter of the search bound when none is
    assumed). Values beyond the parameter's most extreme valid value are left out.
    """
    e = axis.effect
    if axis.multiplicative:
        if axis.direction < 0:
            rel = np.linspace(1.0, 0.05, points) if linear else np.geomspace(1.0, 0.25, points)
        else:
            rel = np.geomspace(1.0, 4.0, points)
        values = e.null * rel
    else:
        span = 2 * abs(e.assumed - e.null) if e.assumed != e.null else abs(axis.extreme - e.null) / 4
        values = e.null + axis.direction * np.linspace(0.0, span, points)
    limit = axis.x_extreme
    return [float(round(v, 4)) for v in values if axis.distance(round(v, 4)) <= limit + 1e-12]


def power_vs_effect(scenario: Scenario, *, pairs: Sequence[Pair] | None = None,
                    primary_n_values: Sequence[int] | None = None, n_per_arm: int | None = None,
                    ratio: float | None = None, n_sims: int = 2000, seed: int | None = None, n_jobs: int = 1,
                    progress: bool = False, simulate: bool = True) -> pd.DataFrame:
    """Power against the size of each endpoint's treatment effect (its family's effect parameter).

    The primary endpoint at several analysable sizes per arm (the planned one and
    ``primary_n_values``, default 50, 100, 200, 400), the other key endpoints at the planned size
    (or ``n_per_arm``). Exact where the pair has an exact answer (tests with a size limit are left
    out: a full table per size), simulated otherwise (common random numbers across effect values).
    The exact primary series runs over 20 evenly spaced values (to 0.05 of no effect for ratios), a
    simulated primary over 20 and the others over 13 log-spaced ones (to a quarter, or four times, no
    effect; see :func:`effect_grid`).

    Returns
    -------
    DataFrame with :data:`EFFECT_COLUMNS`; ``relative_change`` is ``effect / no_effect - 1`` for
    ratios and rates.
    """
    cc = complete_case(scenario)
    model = build_model(cc)
    d = scenario.design
    ratio = ratio if ratio is not None else d.n_treatment / d.n_control
    n_plan = int(n_per_arm) if n_per_arm is not None else d.n_control
    seed = resolve_seed(scenario, seed)
    primary_ns = sorted({n_plan, *(primary_n_values if primary_n_values is not None else PRIMARY_EFFECT_N)})
    rows, jobs, sim = [], [], []
    for a, test in _pairs(model, pairs):
        if a.effect is None:
            continue
        ns = primary_ns if a.primary else [n_plan]
        axis = effect_axis(cc, a.effect)
        if exact_available(model, a.name, test):
            if tests.get(test).max_n is not None:
                continue
            grid = effect_grid(axis, 20, linear=True) if a.primary else effect_grid(axis, 13, linear=False)
            small = reduced(cc, [(a.name, test)])  # the same law, a cheaper scenario to vary
            for v in grid:
                r = binary_rates(build_model(with_effect(small, a.effect, v)), a.name)
                for n in ns:
                    pw = exact_power(test, r.p_control, r.p_treatment, n, n_treatment_for(n, ratio), alpha=d.alpha)
                    rows.append(_effect_base(a, test) | {"effect": v, "relative_change": relative_change(a.effect.kind, a.effect.null, v),
                                                         "n_per_arm": n} | exact_row(pw))
        elif simulate:
            limit = tests.get(test).max_n
            ns = [n for n in ns if limit is None or max(n, n_treatment_for(n, ratio)) <= limit]
            values = [v for v in effect_grid(axis, 20 if a.primary else 13, linear=False) if valid_effect(cc, a.effect, v)]
            combos = [(n, v) for n in ns for v in values]
            jobs.append(Job(a.name, test, tuple(size_point(n, n_treatment_for(n, ratio)) | effect_values(cc, a.effect, v)
                                                for n, v in combos)))
            sim.append((a, test, combos))
    done = rejections(cc, jobs, n_sims=n_sims, seed=seed, n_jobs=n_jobs, progress=progress) if jobs else []
    for (a, test, combos), r in zip(sim, done):
        rows += [_effect_base(a, test) | {"effect": v, "relative_change": relative_change(a.effect.kind, a.effect.null, v),
                                          "n_per_arm": n} | mc_row(r[:, j]) for j, (n, v) in enumerate(combos)]
    frame = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    frame.attrs["seed"] = seed  # the root seed of the simulated series (drawn when none was given)
    return frame


def power_grid(scenario: Scenario, *, test: str | None = None, effects: Sequence[float] | None = None,
               n_values: Sequence[int] | None = None, ratio: float | None = None) -> pd.DataFrame:
    """Exact power of the primary endpoint over its effect x analysable patients per arm.

    Only for a primary endpoint with an exact answer (else an empty frame): its effect parameter from
    no effect towards the assumed side (:func:`effect_grid`, or ``effects``), at the planned size and
    about 25 sizes log-spaced from 10 to 1000 per arm (or ``n_values``).

    Returns
    -------
    DataFrame with :data:`GRID_COLUMNS`.
    """
    cc = complete_case(scenario)
    model = build_model(cc)
    a = model.primary
    test = test or a.tests[0]
    d = scenario.design
    if a.effect is None or not exact_available(model, a.name, test) or tests.get(test).max_n is not None:
        return pd.DataFrame(columns=GRID_COLUMNS)
    ratio = ratio if ratio is not None else d.n_treatment / d.n_control
    axis = effect_axis(cc, a.effect)
    values = list(effects) if effects is not None else effect_grid(axis, 20, linear=True)
    ns = sorted({d.n_control, *(n_values if n_values is not None else GRID_N)})
    rows = []
    base = {"endpoint": a.name, "test": test, "parameter": a.effect.path, "parameter_label": a.effect.label,
            "parameter_kind": a.effect.kind, "no_effect": a.effect.null, "assumed": a.effect.assumed}
    small = reduced(cc, [(a.name, test)])  # the same law, a cheaper scenario to vary
    for v in values:
        r = binary_rates(build_model(with_effect(small, a.effect, v)), a.name)
        for n in ns:
            pw = exact_power(test, r.p_control, r.p_treatment, n, n_treatment_for(n, ratio), alpha=d.alpha)
            rows.append(base | {"effect": float(v), "relative_change": relative_change(a.effect.kind, a.effect.null, v),
                                "n_per_arm": n, "p_control": r.p_control, "p_treatment": r.p_treatment, "power": pw,
                                "method": "exact"})
    return pd.DataFrame(rows, columns=GRID_COLUMNS)
