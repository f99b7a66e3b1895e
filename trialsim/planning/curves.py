"""Power-curve data as tidy frames: power versus n per arm, versus the effect, and over effect x n.

All curves are per analysable patient (the :func:`~trialsim.planning.model.complete_case` scenario),
like the sample sizes. A pair with an exact answer (a binary endpoint with a law, a test with a
registered exact power) is exact; every other pair is simulated through the engine with the run's
seed and block layout, on common random numbers across the grid (:mod:`trialsim.planning.search`;
a curve over n simulates its largest n once and reads the smaller ones off each trial's first patients),
each point with its Monte Carlo SE and 95% Clopper-Pearson interval.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from trialsim.analysis import registry as tests
from trialsim.cache import keep, kept
from trialsim.config.loader import flatten, to_raw, with_values
from trialsim.config.schema import Scenario
from trialsim.endpoints.base import Analysed
from trialsim.exact import shipped_exact_power
from trialsim.labels import key_label, pct
from trialsim.model import Model, build_model
from trialsim.planning.mde import EffectAxis, effect_axis
from trialsim.planning.model import (
    Pair,
    binary_rates,
    complete_case,
    design_ratio,
    effect_values,
    exact_available,
    exact_power,
    exact_powers_in_pieces,
    key_pairs,
    n_treatment_for,
    reduced,
    resolve_seed,
    valid_effect,
    with_effect,
)
from trialsim.planning.search import Job, exact_row, mc_row, rejections, size_point
from trialsim.results import PROVENANCE, check_run_files, read_run_folder, read_table, run_scenario

CURVE_COLUMNS = ["endpoint", "test", "label", "short", "family", "primary", "n_per_arm", "power", "mc_se", "ci_low", "ci_high",
                 "method", "n_sims"]
EFFECT_COLUMNS = ["endpoint", "test", "label", "short", "family", "primary", "parameter", "parameter_label", "parameter_kind",
                  "no_effect", "assumed", "effect", "relative_change", "n_per_arm", "power", "mc_se", "ci_low", "ci_high",
                  "method", "n_sims"]
GRID_COLUMNS = ["endpoint", "test", "parameter", "parameter_label", "parameter_kind", "no_effect", "assumed", "effect",
                "relative_change", "n_per_arm", "p_control", "p_treatment", "power", "method"]

# Tests with a size limit (TestSpec.max_n) build a full exact table per size: their exact curves are
# drawn only at the requested sizes (up to the limit), and left out of the effect curves.
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
        to the largest (their saw-tooth is real); tests with a size limit (a full exact table per
        size) and simulated series the given sizes, up to the test's limit.
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
    ratio = ratio if ratio is not None else design_ratio(scenario)
    n_values = sorted(set(int(n) for n in (n_values if n_values is not None else default_n_values(scenario))))
    seed = resolve_seed(scenario, seed)
    rows, jobs, sim, exact = [], [], [], []
    for a, test in _pairs(model, pairs):
        limit = tests.get(test).max_n
        if exact_available(model, a.name, test):
            r = binary_rates(model, a.name)
            ns = ([n for n in n_values if max(n, n_treatment_for(n, ratio)) <= limit] if limit is not None
                  else list(range(2, max(n_values) + 1)))
            exact.append((a, test, r, ns))
        elif simulate:
            ns = [n for n in n_values if n >= 2 and (limit is None or max(n, n_treatment_for(n, ratio)) <= limit)]
            jobs.append(Job(a.name, test, tuple(size_point(n, n_treatment_for(n, ratio)) for n in ns)))
            sim.append((a, test, ns))
    series = exact_series([(test, r.p_control, r.p_treatment, ns, ratio, d.alpha) for _, test, r, ns in exact],
                          n_jobs=n_jobs, backend=cc.run.backend, scheduler=cc.run.scheduler)
    for (a, test, _, ns), values in zip(exact, series):
        rows += [_base(a, test) | {"n_per_arm": n} | exact_row(float(p)) for n, p in zip(ns, values)]
    done = rejections(cc, jobs, n_sims=n_sims, seed=seed, n_jobs=n_jobs, progress=progress) if jobs else []
    for (a, test, ns), r in zip(sim, done):
        rows += [_base(a, test) | {"n_per_arm": n} | mc_row(r[:, j]) for j, n in enumerate(ns)]
    frame = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    frame.attrs["seed"] = seed  # the root seed of the simulated series (drawn when none was given)
    return frame


EXACT_PIECES = 4  # calls per exact series computed on the workers
CURVE_KIND = "exact-curve"


def exact_series(series: Sequence[tuple], *, n_jobs: int = 1, backend: str = "loky",
                 scheduler: str | None = None) -> list[np.ndarray]:
    """Exact power of each ``(test, p_control, p_treatment, ns, ratio, alpha)`` at every control size of ``ns``.

    A series of a shipped test is read from the disk cache when a command computed it on this machine before
    (:mod:`trialsim.cache`, kind ``"exact-curve"``: keyed by the whole tuple and the package version, checked before
    use): the default config's power-versus-n curves cost 1.1-1.7 s of both cores each time otherwise. The others
    are computed on the workers, each cut into :data:`EXACT_PIECES` pieces of about equal work (larger sizes cost
    more), and kept.
    """
    out: list[np.ndarray | None] = [
        kept(CURVE_KIND, _series_key(job), dtype=np.float64, shape=(len(job[3]),)) if shipped_exact_power(job[0]) else None
        for job in series]
    missing = [i for i, values in enumerate(out) if values is None and len(series[i][3])]
    powers = exact_powers_in_pieces([(*series[i][:3], *series[i][4:]) for i in missing], [series[i][3] for i in missing],
                                    pieces=EXACT_PIECES, n_jobs=n_jobs, backend=backend, scheduler=scheduler)
    for i, values in zip(missing, powers):
        out[i] = np.asarray(values, dtype=np.float64)
        if shipped_exact_power(series[i][0]):
            keep(CURVE_KIND, _series_key(series[i]), out[i])
    return [np.empty(0) if values is None else values for values in out]


def _series_key(job: tuple) -> dict:
    test, p_c, p_t, ns, ratio, alpha = job
    return {"test": test, "p_control": float(p_c), "p_treatment": float(p_t), "n": [int(n) for n in ns],
            "ratio": float(ratio), "alpha": float(alpha)}


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
    ratio = ratio if ratio is not None else design_ratio(scenario)
    n_plan = int(n_per_arm) if n_per_arm is not None else d.n_control
    seed = resolve_seed(scenario, seed)
    primary_ns = sorted({n_plan, *(primary_n_values if primary_n_values is not None else PRIMARY_EFFECT_N)})
    rows, jobs, sim, exact = [], [], [], []
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
            exact += [(a, test, v, binary_rates(build_model(with_effect(small, a.effect, v)), a.name), ns) for v in grid]
        elif simulate:
            limit = tests.get(test).max_n
            ns = [n for n in ns if limit is None or max(n, n_treatment_for(n, ratio)) <= limit]
            values = [v for v in effect_grid(axis, 20 if a.primary else 13, linear=False) if valid_effect(cc, a.effect, v)]
            combos = [(n, v) for n in ns for v in values]
            jobs.append(Job(a.name, test, tuple(size_point(n, n_treatment_for(n, ratio)) | effect_values(cc, a.effect, v)
                                                for n, v in combos)))
            sim.append((a, test, combos))
    series = exact_series([(test, r.p_control, r.p_treatment, ns, ratio, d.alpha) for _, test, _, r, ns in exact],
                          n_jobs=n_jobs, backend=cc.run.backend, scheduler=cc.run.scheduler)
    for (a, test, v, _, ns), powers in zip(exact, series):
        rows += [_effect_base(a, test) | {"effect": v, "relative_change": relative_change(a.effect.kind, a.effect.null, v),
                                          "n_per_arm": n} | exact_row(float(pw)) for n, pw in zip(ns, powers)]
    done = rejections(cc, jobs, n_sims=n_sims, seed=seed, n_jobs=n_jobs, progress=progress) if jobs else []
    for (a, test, combos), r in zip(sim, done):
        rows += [_effect_base(a, test) | {"effect": v, "relative_change": relative_change(a.effect.kind, a.effect.null, v),
                                          "n_per_arm": n} | mc_row(r[:, j]) for j, (n, v) in enumerate(combos)]
    frame = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    frame.attrs["seed"] = seed  # the root seed of the simulated series (drawn when none was given)
    return frame


def power_grid(scenario: Scenario, *, test: str | None = None, effects: Sequence[float] | None = None,
               n_values: Sequence[int] | None = None, ratio: float | None = None, n_jobs: int = 1) -> pd.DataFrame:
    """Exact power of the primary endpoint over its effect x analysable patients per arm.

    Only for a primary endpoint with an exact answer (else an empty frame): its effect parameter from
    no effect towards the assumed side (:func:`effect_grid`, or ``effects``), at the planned size and
    about 25 sizes log-spaced from 10 to 1000 per arm (or ``n_values``); one :func:`exact_series` per effect value
    (on ``n_jobs`` workers, or from the disk cache).

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
    ratio = ratio if ratio is not None else design_ratio(scenario)
    axis = effect_axis(cc, a.effect)
    values = list(effects) if effects is not None else effect_grid(axis, 20, linear=True)
    ns = sorted({d.n_control, *(n_values if n_values is not None else GRID_N)})
    rows = []
    base = {"endpoint": a.name, "test": test, "parameter": a.effect.path, "parameter_label": a.effect.label,
            "parameter_kind": a.effect.kind, "no_effect": a.effect.null, "assumed": a.effect.assumed}
    small = reduced(cc, [(a.name, test)])  # the same law, a cheaper scenario to vary
    rates = [binary_rates(build_model(with_effect(small, a.effect, v)), a.name) for v in values]
    series = exact_series([(test, r.p_control, r.p_treatment, ns, ratio, d.alpha) for r in rates], n_jobs=n_jobs,
                          backend=cc.run.backend, scheduler=cc.run.scheduler)
    for v, r, powers in zip(values, rates, series):
        for n, pw in zip(ns, powers):
            rows.append(base | {"effect": float(v), "relative_change": relative_change(a.effect.kind, a.effect.null, v),
                                "n_per_arm": n, "p_control": r.p_control, "p_treatment": r.p_treatment, "power": float(pw),
                                "method": "exact"})
    return pd.DataFrame(rows, columns=GRID_COLUMNS)


# ---------------------------------------------------------------------------------------------------
# the user's own ranges: n per arm x effect x control rate x allocation ratio
# ---------------------------------------------------------------------------------------------------
RANGE_COLUMNS = ["endpoint", "test", "label", "short", "family", "parameter", "parameter_label", "parameter_kind",
                 "no_effect", "assumed", "effect", "relative_change", "rate_key", "control_rate", "ratio", "facet",
                 "n_per_arm", "n_treatment", "p_control", "p_treatment", "power", "mc_se", "ci_low", "ci_high", "method",
                 "n_sims", "basis", "alpha"]
SIMULATED_RANGE_POINTS = 12  # sizes per simulated series (spread over the requested ones)
N_GRID_MAX = 200  # sizes of a range without a step: every integer up to this many, else log-spaced


def n_grid(low: int, high: int, step: int | None = None) -> list[int]:
    """Sizes from ``low`` to ``high``: by ``step``, else every integer (at most :data:`N_GRID_MAX`, else log-spaced)."""
    low, high = int(low), int(high)
    if not 2 <= low <= high:
        raise ValueError(f"a range of sizes needs 2 <= low <= high, got {low}:{high}")
    if step is not None:
        return list(range(low, high + 1, int(step))) + ([] if (high - low) % int(step) == 0 else [high])
    if high - low < N_GRID_MAX:
        return list(range(low, high + 1))
    return sorted({int(round(v)) for v in np.geomspace(low, high, N_GRID_MAX)})


def control_rate_key(scenario: Scenario, endpoint: str) -> str | None:
    """The key path of the endpoint's control-arm event rate (a binary family's ``rate_control``), None without one."""
    a = build_model(scenario).endpoint(endpoint)
    section = scenario.endpoints[a.component]
    return f"endpoints.{a.component}.rate_control" if "rate_control" in type(section).model_fields else None


def ranges_from_sweep(scenario: Scenario, endpoint: str | None = None) -> dict | None:
    """The ranges a config's ``[sweep]`` spans for :func:`power_ranges` (None without a sweep over them).

    ``design.n_control`` gives the sizes (every integer from its smallest to its largest value, see
    :func:`n_grid`), ``design.n_treatment`` with it the allocation ratios, the endpoint's effect
    parameter the effects and its control rate the control rates. Other swept keys are listed in
    ``"ignored"``.
    """
    sweep = scenario.sweep
    if sweep is None or not sweep.values:
        return None
    model = build_model(scenario)
    a = model.endpoint(endpoint) if endpoint else model.primary
    values = sweep.values
    rate_key = control_rate_key(scenario, a.name)
    out: dict = {"n_values": None, "effects": None, "control_rates": None, "ratios": None, "ignored": []}
    if "design.n_control" in values:
        ns = [int(n) for n in values["design.n_control"]]
        out["n_values"] = n_grid(max(2, min(ns)), max(ns))
        if "design.n_treatment" in values:
            nt = [int(n) for n in values["design.n_treatment"]]
            zipped = len(nt) == len(ns) and (sweep.mode == "zip" or any({"design.n_control", "design.n_treatment"} <= set(g)
                                                                         for g in sweep.zip_groups))
            pairs = zip(ns, nt) if zipped else ((c, t) for c in ns for t in nt)
            out["ratios"] = sorted({round(t / c, 6) for c, t in pairs})
    if a.effect is not None and a.effect.path in values:
        out["effects"] = [float(v) for v in values[a.effect.path]]
    if rate_key is not None and rate_key in values:
        out["control_rates"] = [float(v) for v in values[rate_key]]
    used = {"design.n_control", "design.n_treatment", a.effect.path if a.effect else "", rate_key or ""}
    out["ignored"] = [k for k in values if k not in used]
    if all(out[k] is None for k in ("n_values", "effects", "control_rates", "ratios")):
        return None
    return out


def _facet(rate_key: str | None, rate: float | None, ratio: float, several_rates: bool, several_ratios: bool,
           analysed: float | None = None) -> str:
    """The panel's name: the config's control rate (and the analysed endpoint's own rate where the two differ, e.g.
    the rate of the severe grades that the endpoint's detected mild grade raises), the allocation ratio."""
    parts = []
    if several_rates and rate is not None:
        whole = abs(100 * rate - round(100 * rate)) < 1e-9  # 0.14 is 14.000000000000002% in binary: still "14%"
        text = f"{key_label(rate_key)} {pct(rate, 0 if whole else 1)}"
        if analysed is not None and math.isfinite(analysed) and abs(analysed - rate) >= 5e-4:
            text += f" (analysed {pct(analysed, 1)})"
        parts.append(text)
    if several_ratios:
        parts.append(f"allocation 1:{ratio:g}")
    return ", ".join(parts)


def _thin(values: list[int], k: int) -> list[int]:
    if len(values) <= k:
        return values
    return [values[i] for i in sorted({int(round(j)) for j in np.linspace(0, len(values) - 1, k)})]


def power_ranges(scenario: Scenario, *, endpoint: str | None = None, test: str | Sequence[str] | None = None,
                 n_values: Sequence[int] | None = None, effects: Sequence[float] | None = None,
                 control_rates: Sequence[float] | None = None, ratios: Sequence[float] | None = None,
                 n_sims: int = 2000, seed: int | None = None, n_jobs: int = 1, progress: bool = False) -> pd.DataFrame:
    """Power of one endpoint over the user's ranges: n per arm x effect x control rate x allocation ratio.

    Exact wherever the endpoint has an exact law (binary endpoints; every size asked for, in
    seconds), simulated otherwise (through the engine, common random numbers across the grid, at
    most :data:`SIMULATED_RANGE_POINTS` sizes per series spread over those asked for). Sizes are per
    analysable patient (the complete-case scenario), as every planning curve.

    Parameters
    ----------
    scenario : Scenario
    endpoint : str, optional
        An analysed endpoint (default: the primary).
    test : str or sequence of str, optional
        Its test(s) (default: its first, the primary analysis).
    n_values : sequence of int, optional
        Control-arm sizes (default :func:`default_n_values`).
    effects : sequence of float, optional
        Values of the endpoint's effect parameter (default: the assumed one).
    control_rates : sequence of float, optional
        Control-arm event rates (binary families with ``rate_control``; default: the config's).
    ratios : sequence of float, optional
        Allocation ratios ``n_treatment / n_control`` (default: the design's).
    n_sims, seed, n_jobs, progress
        Simulation settings of simulated series.

    Returns
    -------
    DataFrame with :data:`RANGE_COLUMNS`; ``facet`` names the panel (control rate, ratio) a row belongs to.
    """
    cc = complete_case(scenario)
    model = build_model(cc)
    a = model.endpoint(endpoint) if endpoint else model.primary
    chosen = [test] if isinstance(test, str) else list(test) if test else [a.tests[0]]
    for t in chosen:
        if t not in a.tests:
            raise ValueError(f"endpoint {a.name!r} is analysed with {', '.join(a.tests)}, not {t!r}")
    d = scenario.design
    ratios = sorted({float(r) for r in ratios}) if ratios else [design_ratio(scenario)]
    if any(r <= 0 for r in ratios):
        raise ValueError(f"allocation ratios must be positive, got {ratios}")
    n_values = sorted({int(n) for n in n_values}) if n_values else default_n_values(scenario)
    if n_values[0] < 2:
        raise ValueError(f"sizes per arm start at 2, got {n_values[0]}")
    if effects and a.effect is None:
        raise ValueError(f"endpoint {a.name!r} has no effect parameter to vary")
    effects = [float(v) for v in effects] if effects else ([a.effect.assumed] if a.effect is not None else [None])
    rate_key = control_rate_key(cc, a.name)
    if control_rates and rate_key is None:
        raise ValueError(f"endpoint {a.name!r} has no control event rate to vary (its family has no rate_control)")
    rates = [float(r) for r in control_rates] if control_rates else [None]
    seed = resolve_seed(scenario, seed)
    small = reduced(cc, [(a.name, t) for t in chosen])
    e = a.effect
    rows, jobs, sim = [], [], []
    for rate in rates:
        for v in effects:
            values = ({rate_key: rate} if rate is not None else {}) | (effect_values(small, e, v) if v is not None else {})
            variant = with_values(small, values, source="planning range point") if values else small
            vmodel = build_model(variant)
            law = binary_rates(vmodel, a.name)
            shown_rate = rate if rate is not None else (getattr(variant.endpoints[a.component], "rate_control", None))
            for t in chosen:
                limit = tests.get(t).max_n
                for r in ratios:
                    ns = [n for n in n_values if limit is None or max(n, n_treatment_for(n, r)) <= limit]
                    base = _base(a, t) | {
                        "parameter": e.path if e else "", "parameter_label": e.label if e else "",
                        "parameter_kind": e.kind if e else "", "no_effect": e.null if e else math.nan,
                        "assumed": e.assumed if e else math.nan, "effect": v if v is not None else math.nan,
                        "relative_change": relative_change(e.kind, e.null, v) if e and v is not None else math.nan,
                        "rate_key": rate_key or "", "control_rate": shown_rate if shown_rate is not None else math.nan,
                        "ratio": r, "facet": _facet(rate_key, rate, r, len(rates) > 1, len(ratios) > 1,
                                                    law.p_control if law else None),
                        "p_control": law.p_control if law else math.nan, "p_treatment": law.p_treatment if law else math.nan,
                        "basis": "analysable", "alpha": variant.design.alpha}
                    base.pop("primary")
                    if exact_available(vmodel, a.name, t):
                        rows += [base | {"n_per_arm": n, "n_treatment": n_treatment_for(n, r)}
                                 | exact_row(exact_power(t, law.p_control, law.p_treatment, n, n_treatment_for(n, r), alpha=d.alpha))
                                 for n in ns]
                    else:
                        ns = _thin(ns, SIMULATED_RANGE_POINTS)
                        jobs.append(Job(a.name, t, tuple(size_point(n, n_treatment_for(n, r)) | values for n in ns)))
                        sim.append((base, ns, r))
    done = rejections(cc, jobs, n_sims=n_sims, seed=seed, n_jobs=n_jobs, progress=progress) if jobs else []
    for (base, ns, r), rej in zip(sim, done):
        rows += [base | {"n_per_arm": n, "n_treatment": n_treatment_for(n, r)} | mc_row(rej[:, j]) for j, n in enumerate(ns)]
    frame = pd.DataFrame(rows, columns=RANGE_COLUMNS)
    frame.attrs["seed"] = seed
    return frame


def sweep_grid(power: pd.DataFrame, scenarios: dict[str, Scenario], *, endpoint: str | None = None) -> pd.DataFrame:
    """A finished sweep's own grid (power.csv of ``trialsim run CONFIG --out DIR``) as :data:`RANGE_COLUMNS`.

    ``scenarios`` maps each scenario id to its resolved scenario (``DIR/scenarios/<id>.toml``); the
    swept values are read from them: the arm sizes, the endpoint's effect parameter and control rate,
    and any other key that differs between scenarios (named in ``facet``). Exact rows where the run
    has them, else its Monte Carlo rows. Sizes are enrolled patients (the run's own design, dropout
    included).
    """
    if not scenarios:
        raise ValueError("no scenarios to read the sweep's values from")
    flat = {sid: flatten(to_raw(sc)) for sid, sc in scenarios.items()}
    keys = sorted({k for f in flat.values() for k in f})
    swept = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat.values()}) > 1]
    first = next(iter(scenarios.values()))
    model = build_model(first)
    a = model.endpoint(endpoint) if endpoint else model.primary
    e = a.effect
    rate_key = control_rate_key(first, a.name)
    shown = {"design.n_control", "design.n_treatment", e.path if e else "", rate_key or ""}
    others = [k for k in swept if k not in shown]
    rows = []
    rows_of = power[power["endpoint"] == a.name]
    ratios = {sid: sc.design.n_treatment / sc.design.n_control for sid, sc in scenarios.items()}
    rates = {sid: flat[sid].get(rate_key) for sid in scenarios} if rate_key else {}
    several_rates = len(set(rates.values())) > 1
    several_ratios = len(set(ratios.values())) > 1
    for sid, sc in scenarios.items():
        f = flat[sid]
        law = binary_rates(build_model(sc), a.name)
        facet = _facet(rate_key, rates.get(sid), ratios[sid], several_rates, several_ratios, law.p_control if law else None)
        extra = ", ".join(f"{key_label(k)} {f.get(k)}" for k in others)
        for t, g in rows_of[rows_of["scenario"].astype(str) == sid].groupby("test", sort=False):
            r = g[g["method"] == "exact"] if (g["method"] == "exact").any() else g[g["method"] == "monte_carlo"]
            r = r.iloc[0]
            v = f.get(e.path) if e else None
            rows.append(_base(a, t) | {
                "parameter": e.path if e else "", "parameter_label": e.label if e else "", "parameter_kind": e.kind if e else "",
                "no_effect": e.null if e else math.nan, "assumed": e.assumed if e else math.nan,
                "effect": float(v) if v is not None else math.nan,
                "relative_change": relative_change(e.kind, e.null, float(v)) if e and v is not None else math.nan,
                "rate_key": rate_key or "", "control_rate": rates.get(sid, math.nan), "ratio": ratios[sid],
                "facet": ", ".join(x for x in (facet, extra) if x), "n_per_arm": sc.design.n_control, "alpha": sc.design.alpha,
                "n_treatment": sc.design.n_treatment, "p_control": law.p_control if law else math.nan,
                "p_treatment": law.p_treatment if law else math.nan, "power": float(r["power"]),
                "mc_se": float(r["mc_se"]), "ci_low": float(r["ci_low"]), "ci_high": float(r["ci_high"]),
                "method": r["method"], "n_sims": int(r["n_sims"]), "basis": "enrolled"})
    for row in rows:
        row.pop("primary")
    frame = pd.DataFrame(rows, columns=RANGE_COLUMNS)
    return frame.sort_values(["test", "control_rate", "ratio", "facet", "effect", "n_per_arm"], kind="stable").reset_index(drop=True)


def load_sweep_grid(run_dir: str | Path, *, endpoint: str | None = None) -> pd.DataFrame:
    """:func:`sweep_grid` of a run folder (power.csv and scenarios/<id>.toml); empty for a run of one scenario."""
    folder = Path(run_dir)
    if (folder / "planning.json").exists() or not (folder / PROVENANCE).exists():
        return pd.DataFrame(columns=RANGE_COLUMNS)  # a report's folder (or none): drawn from what load_planning checks
    prov = read_run_folder(folder)
    check_run_files(folder, prov, ["power.csv"])
    power = read_table(folder / "power.csv")
    ids = [str(s) for s in dict.fromkeys(power["scenario"])]
    if len(ids) < 2:
        return pd.DataFrame(columns=RANGE_COLUMNS)
    scenarios = {sid: run_scenario(folder, prov, sid) for sid in ids}
    return sweep_grid(power, scenarios, endpoint=endpoint)
