"""Power-curve data as tidy frames: power versus n per arm, versus effect, and over leak rate x reduction.

All curves are per analysable patient (the :func:`~trialsim.planning.model.complete_case` scenario),
like the sample sizes; binary endpoints are exact, the others simulated with common random numbers
(nested trials over n, shared streams over effects), each point with its Monte Carlo SE and 95%
Clopper-Pearson interval.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from trialsim.analysis.binary import exact_power, exact_power_curve
from trialsim.config.loader import with_values
from trialsim.config.schema import Scenario
from trialsim.endpoints import endpoints
from trialsim.planning.mde import effect_parameter
from trialsim.planning.model import (
    STREAM_CURVE_EFFECT,
    STREAM_CURVE_N,
    binary_rates,
    complete_case,
    get_endpoint,
    key_endpoints,
    n_treatment_for,
    resolve_seed,
)
from trialsim.planning.search import GridJob, effect_rejections, nested_rejections

CURVE_COLUMNS = ["endpoint", "test", "label", "family", "n_per_arm", "power", "mc_se", "ci_low", "ci_high", "method", "n_sims"]
EFFECT_COLUMNS = ["endpoint", "test", "label", "family", "parameter", "parameter_label", "effect", "relative_change",
                  "n_per_arm", "power", "mc_se", "ci_low", "ci_high", "method", "n_sims"]
GRID_COLUMNS = ["test", "rate_control", "effect", "relative_reduction", "n_per_arm", "p_control", "p_treatment", "power", "method"]

# Boschloo's exact power is drawn only up to this size per arm (a full table per size).
BOSCHLOO_CURVE_MAX_N = 60


def default_n_values(scenario: Scenario, n_max: int = 500) -> list[int]:
    """About 25 sizes, log-spaced from 4 to ``n_max`` per arm, plus the planned size."""
    ns = {int(round(v)) for v in np.geomspace(4, n_max, 25)} | {scenario.design.n_control}
    return sorted(n for n in ns if 2 <= n <= max(n_max, scenario.design.n_control))


def _mc_row(rejects: np.ndarray) -> dict:
    from trialsim.results import clopper_pearson

    n = rejects.size
    k = int(np.count_nonzero(rejects))
    p = k / n
    low, high = clopper_pearson(k, n)
    return {"power": p, "mc_se": math.sqrt(p * (1 - p) / n), "ci_low": low, "ci_high": high, "method": "monte_carlo", "n_sims": n}


def _exact_row(power: float) -> dict:
    return {"power": power, "mc_se": 0.0, "ci_low": power, "ci_high": power, "method": "exact", "n_sims": 0}


def power_vs_n(scenario: Scenario, *, pairs: Sequence[tuple[str, str]] | None = None, n_values: Sequence[int] | None = None,
               ratio: float | None = None, n_sims: int = 2000, seed: int | None = None, n_jobs: int = 1,
               progress: bool = False, simulate: bool = True) -> pd.DataFrame:
    """Power against analysable patients per arm, one series per (endpoint, test).

    Parameters
    ----------
    scenario : Scenario
    pairs : sequence of (endpoint, test), optional
        Default :func:`~trialsim.planning.model.key_endpoints`.
    n_values : sequence of int, optional
        Control-arm sizes (default :func:`default_n_values`). Exact binary series use every
        integer from 2 to the largest (their saw-tooth is real), Boschloo only up to 60.
    ratio : float, optional
        ``n_treatment / n_control`` (default: the design's).
    n_sims, seed, n_jobs, progress, simulate
        Simulation settings for non-binary endpoints; ``simulate=False`` leaves them out.

    Returns
    -------
    DataFrame with :data:`CURVE_COLUMNS`.
    """
    cc = complete_case(scenario)
    d = scenario.design
    ratio = ratio if ratio is not None else d.n_treatment / d.n_control
    pairs = list(pairs) if pairs is not None else key_endpoints(scenario)
    n_values = sorted(set(int(n) for n in (n_values if n_values is not None else default_n_values(scenario))))
    seed = resolve_seed(scenario, seed)
    rows = []
    sim_jobs = []
    for name, test in pairs:
        e = get_endpoint(scenario, name)
        base = {"endpoint": name, "test": test, "label": e.label, "family": e.family}
        if e.family == "binary":
            r = binary_rates(cc, name)
            if test == "boschloo":
                ns = [n for n in n_values if n <= BOSCHLOO_CURVE_MAX_N]
            else:
                ns = list(range(2, max(n_values) + 1))
            pw = exact_power_curve(test, r.p_control, r.p_treatment, ns, ratio=ratio, alpha=d.alpha) if ns else []
            rows += [base | {"n_per_arm": n} | _exact_row(float(p)) for n, p in zip(ns, pw)]
        elif simulate:
            sim_jobs.append(GridJob(name, test, tuple((n, n_treatment_for(n, ratio)) for n in n_values if n >= 2)))
    if sim_jobs:
        rej = nested_rejections(cc, sim_jobs, n_sims=n_sims, seed=seed, stream=STREAM_CURVE_N, n_jobs=n_jobs,
                                progress=progress, desc="curves: power vs n")
        for job in sim_jobs:
            e = get_endpoint(scenario, job.endpoint)
            base = {"endpoint": job.endpoint, "test": job.test, "label": e.label, "family": e.family}
            r = rej[(job.endpoint, job.test)]
            rows += [base | {"n_per_arm": c} | _mc_row(r[:, j]) for j, (c, _) in enumerate(job.sizes)]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def _exact_leak_power(cc: Scenario, endpoint: str, test: str, effect: float, n: int, ratio: float, *,
                      rate_control: float | None = None) -> tuple[float, float, float]:
    values = {"leak.effect": float(effect)}
    if rate_control is not None:
        values |= {"leak.rate_control": float(rate_control), "leak.effect_measure": "risk_ratio"}
    sc = with_values(cc, values, source="power curve")
    r = binary_rates(sc, endpoint)
    return r.p_control, r.p_treatment, exact_power(test, r.p_control, r.p_treatment, n, n_treatment_for(n, ratio), alpha=cc.design.alpha)


def power_vs_effect(scenario: Scenario, *, pairs: Sequence[tuple[str, str]] | None = None,
                    leak_n_values: Sequence[int] | None = None, n_per_arm: int | None = None, ratio: float | None = None,
                    n_sims: int = 2000, seed: int | None = None, n_jobs: int = 1, progress: bool = False,
                    simulate: bool = True) -> pd.DataFrame:
    """Power against the size of the treatment effect.

    The primary (binary) endpoint: exact power of each of its tests against the leak risk ratio
    (relative reduction 0-95%) at each size in ``leak_n_values`` (default: the planned size, 50,
    100, 200, 400). Other key endpoints: simulated power against their effect parameter
    (:func:`~trialsim.planning.mde.effect_parameter`) at the planned size (or ``n_per_arm``),
    from no effect to a ratio of 0.25 (or its inverse when the assumption is an increase).

    Returns
    -------
    DataFrame with :data:`EFFECT_COLUMNS`; ``relative_change`` is ``effect - 1``.
    """
    cc = complete_case(scenario)
    d = scenario.design
    ratio = ratio if ratio is not None else d.n_treatment / d.n_control
    n_plan = int(n_per_arm) if n_per_arm is not None else d.n_control
    pairs = list(pairs) if pairs is not None else key_endpoints(scenario)
    seed = resolve_seed(scenario, seed)
    leak_ns = sorted({n_plan, *(leak_n_values if leak_n_values is not None else (50, 100, 200, 400))})
    rows = []
    groups: dict[str, list[tuple[str, str]]] = {}
    for name, test in pairs:
        e = get_endpoint(scenario, name)
        parameter, plabel, assumed = effect_parameter(scenario, name)
        base = {"endpoint": name, "test": test, "label": e.label, "family": e.family, "parameter": parameter,
                "parameter_label": plabel}
        if e.family == "binary":
            if not e.primary or (test == "boschloo") or scenario.leak.effect_measure != "risk_ratio":
                continue  # the primary endpoint's exact tests against the risk ratio; Boschloo is too slow here
            effects = np.round(np.linspace(1.0, 0.05, 20), 4)
            for n in leak_ns:
                for rr in effects:
                    _, _, pw = _exact_leak_power(cc, name, test, rr, n, ratio)
                    rows.append(base | {"effect": float(rr), "relative_change": float(rr) - 1.0, "n_per_arm": n} | _exact_row(pw))
        elif simulate and parameter != "leak.effect":
            groups.setdefault(parameter, []).append((name, test))
    sc_n = with_values(cc, {"design.n_control": n_plan, "design.n_treatment": n_treatment_for(n_plan, ratio)})
    for parameter, group in groups.items():
        assumed = effect_parameter(scenario, group[0][0])[2]
        far = 0.25 if assumed <= 1.0 else 4.0
        effects = np.round(np.geomspace(1.0, far, 13), 4)
        rej = effect_rejections(sc_n, parameter, effects, group, n_sims=n_sims, seed=seed, stream=STREAM_CURVE_EFFECT,
                                n_jobs=n_jobs, progress=progress, desc=f"curves: {parameter}")
        for name, test in group:
            e = get_endpoint(scenario, name)
            plabel = effect_parameter(scenario, name)[1]
            base = {"endpoint": name, "test": test, "label": e.label, "family": e.family, "parameter": parameter,
                    "parameter_label": plabel}
            for j, v in enumerate(effects):
                rows.append(base | {"effect": float(v), "relative_change": float(v) - 1.0, "n_per_arm": n_plan}
                            | _mc_row(rej[(name, test)][:, j]))
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def leak_power_grid(scenario: Scenario, *, test: str | None = None, rate_control_values: Sequence[float] | None = None,
                    reduction_values: Sequence[float] | None = None, n_values: Sequence[int] | None = None,
                    ratio: float | None = None) -> pd.DataFrame:
    """Exact power of the primary endpoint over control leak rate x relative reduction x n per arm.

    ``leak.rate_control`` (grade B/C) and the risk ratio ``1 - relative reduction`` are set in the
    complete-case scenario; everything else (grade A detection, risk factors) is the scenario's.
    Defaults: rates 4-24% in steps of 2 points, reductions 0-80% in steps of 5, sizes the planned
    one, 50, 100, 200, 400 and 800 per arm.

    Returns
    -------
    DataFrame with :data:`GRID_COLUMNS`.
    """
    cc = complete_case(scenario)
    d = scenario.design
    primary = next(e for e in endpoints(scenario) if e.primary)
    test = test or primary.tests[0]
    ratio = ratio if ratio is not None else d.n_treatment / d.n_control
    rates = np.round(np.arange(0.04, 0.2401, 0.02), 4) if rate_control_values is None else np.asarray(rate_control_values, float)
    reductions = np.round(np.arange(0.0, 0.8001, 0.05), 4) if reduction_values is None else np.asarray(reduction_values, float)
    ns = sorted({d.n_control, *(n_values if n_values is not None else (50, 100, 200, 400, 800))})
    rows = []
    for rate in rates:
        for red in reductions:
            rr = 1.0 - float(red)
            sc = with_values(cc, {"leak.rate_control": float(rate), "leak.effect": rr, "leak.effect_measure": "risk_ratio"},
                             source="power grid")
            r = binary_rates(sc, primary.name)
            for n in ns:
                pw = exact_power(test, r.p_control, r.p_treatment, n, n_treatment_for(n, ratio), alpha=d.alpha)
                rows.append({"test": test, "rate_control": float(rate), "effect": rr, "relative_reduction": float(red),
                             "n_per_arm": n, "p_control": r.p_control, "p_treatment": r.p_treatment, "power": pw,
                             "method": "exact"})
    return pd.DataFrame(rows, columns=GRID_COLUMNS)
