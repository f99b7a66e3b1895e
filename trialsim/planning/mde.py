"""Minimal detectable effect: the smallest effect with a target power at a given size.

The effect is a config value, varied with everything else fixed:

* the leak endpoint and its dichotomised colonoscopy cousins: ``leak.effect`` (the risk ratio, odds
  ratio or treatment rate, as the config's ``leak.effect_measure`` says), exactly by bisection on
  the exact power at the enrolled sizes (mixing over the number analysable);
* a cytokine endpoint: its marker's ``treatment_gmr``; the stay: ``los.treatment_ratio``; the
  colonoscopy grade: ``leak.effect``. These by a probit fit of simulated power on ``|log effect|``
  with common random numbers across effect values (:mod:`trialsim.planning.search`), with a 95%
  Monte Carlo interval.

The effect is searched on the side of "no effect" where the config's assumed effect lies (a
reduction when the assumption is a reduction). When even the most extreme effect searched does not
reach the target the result says so (``reachable = False``) with the power it does reach.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from trialsim.config.loader import with_values
from trialsim.config.schema import Scenario
from trialsim.outcomes.leak import arm_rates
from trialsim.planning.model import (
    STREAM_MDE,
    analytic_binary_mde,
    analytic_t_mde,
    binary_rates,
    cytokine_sd,
    endpoint_tests,
    exact_power_enrolled,
    model_moments,
    resolve_seed,
)
from trialsim.planning.samplesize import BOSCHLOO_MAX_N
from trialsim.planning.search import effect_rejections, fit_probit

MDE_COLUMNS = [
    "endpoint", "test", "label", "family", "primary", "parameter", "parameter_label", "assumed", "n_control", "n_treatment",
    "target_power", "alpha", "method", "reachable", "effect", "effect_low", "effect_high", "relative_change",
    "best_effect", "best_power", "power_at_assumed", "analytic_effect", "analytic_method", "note",
]

# Largest enrolled size per arm at which Boschloo MDEs mix exact power over the number analysable.
MIXTURE_MAX_N_BOSCHLOO = 20
# The most extreme effects searched (ratios): beyond these the question is moot.
_MIN_RATIO = 0.01
_MAX_RATIO = 100.0


@dataclass(frozen=True)
class MDEResult:
    """The minimal detectable effect of one (endpoint, test) at one size.

    ``effect`` is the value of ``parameter`` with ``target_power`` (NaN when not reachable);
    ``relative_change`` is ``effect - 1`` for ratios (e.g. -0.65 = a 65% reduction).
    """

    endpoint: str
    test: str
    label: str
    family: str
    primary: bool
    parameter: str
    parameter_label: str
    assumed: float
    n_control: int
    n_treatment: int
    target_power: float
    alpha: float
    method: str
    reachable: bool
    effect: float
    effect_low: float
    effect_high: float
    best_effect: float
    best_power: float
    power_at_assumed: float
    analytic_effect: float
    analytic_method: str
    note: str = ""

    @property
    def relative_change(self) -> float:
        return self.effect - 1.0 if self.parameter_label != "treatment B/C leak rate" else math.nan

    def to_dict(self) -> dict:
        out = asdict(self)
        out["relative_change"] = self.relative_change
        return {k: out[k] for k in MDE_COLUMNS}

    def summary(self) -> str:
        from trialsim.labels import pct, test_label

        head = (f"{self.endpoint} / {test_label(self.test)} at {self.n_control} vs {self.n_treatment}: "
                f"smallest {self.parameter_label} with {pct(self.target_power, 0)} power")
        if self.method == "skipped":
            return f"{head}: not computed. {self.note}"
        if not self.reachable:
            return (f"{head}: none. Even {self.parameter_label} {self.best_effect:.3g} gives {pct(self.best_power, 1)} "
                    f"power (assumed {self.assumed:g}: {pct(self.power_at_assumed, 1)}).")
        interval = "" if self.method == "exact" else f" (95% MC interval {self.effect_low:.3g}-{self.effect_high:.3g})"
        return (f"{head}: {self.effect:.3g}{interval}, {self.method}; assumed {self.assumed:g} has "
                f"{pct(self.power_at_assumed, 1)} power. Analytic: {self.analytic_effect:.3g} ({self.analytic_method}).")


@dataclass(frozen=True)
class MDETable:
    results: tuple[MDEResult, ...]
    seed: int
    n_sims: int
    settings: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.to_dict() for r in self.results], columns=MDE_COLUMNS)

    def summary(self) -> str:
        return "\n".join(r.summary() for r in self.results)


def effect_parameter(scenario: Scenario, endpoint: str) -> tuple[str, str, float]:
    """(key path, label, assumed value) of the config value that carries the treatment effect on ``endpoint``."""
    for i, m in enumerate(scenario.cytokines.markers):
        if endpoint.startswith(m.name + "_"):
            return f"cytokines.markers[{i}].treatment_gmr", "treatment GMR", m.treatment_gmr
    if endpoint == "los_days":
        return "los.treatment_ratio", "stay ratio (direct effect)", scenario.los.treatment_ratio
    label = {"risk_ratio": "leak risk ratio", "odds_ratio": "leak odds ratio", "rate": "treatment B/C leak rate"}
    return "leak.effect", label[scenario.leak.effect_measure], scenario.leak.effect


def _effect_bounds(scenario: Scenario, parameter: str, assumed: float) -> tuple[float, float, float]:
    """(no-effect value, most extreme value searched, direction) for a parameter."""
    if parameter == "leak.effect":
        leak = scenario.leak
        all_control = arm_rates(leak, "control").all_grade
        if leak.effect_measure == "rate":
            return leak.rate_control, 1e-4 * leak.rate_control, -1.0
        if assumed <= 1.0 or leak.effect_measure == "odds_ratio":
            null, extreme = 1.0, (_MIN_RATIO if assumed <= 1.0 else _MAX_RATIO)
        else:  # a harmful risk ratio: bounded by a treatment rate below 1
            null, extreme = 1.0, min(_MAX_RATIO, 0.999 / all_control)
        return null, extreme, (-1.0 if extreme < null else 1.0)
    return 1.0, (_MIN_RATIO if assumed <= 1.0 else _MAX_RATIO), (-1.0 if assumed <= 1.0 else 1.0)


def minimal_detectable_effect(scenario: Scenario, endpoint: str, test: str | None = None, *, power: float = 0.8,
                              n_per_arm: int | None = None, ratio: float | None = None, n_sims: int = 2000,
                              seed: int | None = None, n_jobs: int = 1, progress: bool = False) -> MDEResult:
    """The minimal detectable effect for one endpoint (default test: its first). See :func:`minimal_detectable_effects`."""
    from trialsim.planning.model import get_endpoint

    test = test or get_endpoint(scenario, endpoint).tests[0]
    return minimal_detectable_effects(scenario, endpoint=endpoint, test=test, power=power, n_per_arm=n_per_arm, ratio=ratio,
                                      n_sims=n_sims, seed=seed, n_jobs=n_jobs, progress=progress).results[0]


def minimal_detectable_effects(
    scenario: Scenario,
    *,
    endpoint: str | None = None,
    test: str | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    power: float = 0.8,
    n_per_arm: int | None = None,
    ratio: float | None = None,
    n_sims: int = 2000,
    seed: int | None = None,
    n_jobs: int = 1,
    progress: bool = False,
    simulate: bool = True,
) -> MDETable:
    """Minimal detectable effects at the scenario's sizes (or ``n_per_arm`` in the control arm).

    Parameters
    ----------
    scenario : Scenario
    endpoint, test : str, optional
        Restrict to one endpoint / test; ``pairs`` gives an explicit list of (endpoint, test).
    power : float
        Target power.
    n_per_arm : int, optional
        Enrolled control-arm size (default ``design.n_control``); the treatment arm is
        ``ratio * n_per_arm`` rounded half up (default ratio: the design's).
    n_sims, seed, n_jobs, progress
        Simulation settings for the non-binary endpoints (results do not depend on ``n_jobs``).
    simulate : bool
        False: exact and analytic answers only.

    Returns
    -------
    MDETable
    """
    from trialsim.planning.model import get_endpoint, n_treatment_for
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must lie in (0, 1), got {power}")
    d = scenario.design
    if n_per_arm is not None:
        ratio = ratio if ratio is not None else d.n_treatment / d.n_control
        scenario = with_values(scenario, {"design.n_control": int(n_per_arm),
                                          "design.n_treatment": n_treatment_for(int(n_per_arm), ratio)})
        d = scenario.design
    seed = resolve_seed(scenario, seed)
    if pairs is None:
        pairs = [(e.name, t) for e, t in endpoint_tests(scenario, endpoint, test)]
    eps = {name: get_endpoint(scenario, name) for name, _ in pairs}
    results: dict[tuple[str, str], MDEResult] = {}
    by_parameter: dict[str, list[tuple[str, str]]] = {}
    for name, t in pairs:
        e = eps[name]
        if e.family == "binary":
            results[(name, t)] = _binary_mde(scenario, e, t, power)
        else:
            by_parameter.setdefault(effect_parameter(scenario, name)[0], []).append((name, t))
    moments = model_moments(scenario, seed=seed) if by_parameter else {}
    for parameter, group in by_parameter.items():
        results.update(_simulated_mde(scenario, parameter, group, eps, power, n_sims=n_sims, seed=seed, n_jobs=n_jobs,
                                      progress=progress, simulate=simulate, moments=moments))
    return MDETable(tuple(results[p] for p in pairs), seed=seed, n_sims=n_sims,
                    settings={"power": power, "n_control": d.n_control, "n_treatment": d.n_treatment, "n_sims": n_sims})


def _common(scenario, e, t, power, parameter, label, assumed):
    d = scenario.design
    return dict(endpoint=e.name, test=t, label=e.label, family=e.family, primary=e.primary, parameter=parameter,
                parameter_label=label, assumed=assumed, n_control=d.n_control, n_treatment=d.n_treatment,
                target_power=power, alpha=d.alpha)


def _mixture_affordable(test: str, n_control: int, n_treatment: int, rates) -> bool:
    """Whether exact power mixed over the number analysable is cheap enough to bisect on.

    The same budget as the power table's exact rows (:data:`trialsim.exact.EXACT_TABLE_BUDGET`);
    Boschloo builds a table per pair of analysable sizes (about a second at 100 per arm), so it mixes
    only for small arms.
    """
    from trialsim.analysis.binary import exact_power_cost
    from trialsim.exact import EXACT_TABLE_BUDGET

    if test == "boschloo":
        return max(n_control, n_treatment) <= MIXTURE_MAX_N_BOSCHLOO
    cost = exact_power_cost(n_control, n_treatment, (rates.missing_control, rates.missing_treatment))
    return cost <= EXACT_TABLE_BUDGET


def _binary_mde(scenario: Scenario, e, t: str, power: float) -> MDEResult:
    from trialsim.analysis.binary import exact_power

    d = scenario.design
    parameter, label, assumed = effect_parameter(scenario, e.name)
    null, extreme, _ = _effect_bounds(scenario, parameter, assumed)
    rates0 = binary_rates(scenario, e.name)
    if t == "boschloo" and max(d.n_control, d.n_treatment) > BOSCHLOO_MAX_N:
        return MDEResult(**_common(scenario, e, t, power, parameter, label, assumed), method="skipped", reachable=False,
                         effect=math.nan, effect_low=math.nan, effect_high=math.nan, best_effect=extreme,
                         best_power=math.nan, power_at_assumed=math.nan, analytic_effect=math.nan, analytic_method="n/a",
                         note=f"Boschloo's exact power is not enumerated above {BOSCHLOO_MAX_N} per arm; it is at least "
                              "Fisher's, so Fisher's minimal detectable effect is a conservative bound.")
    mixture = _mixture_affordable(t, d.n_control, d.n_treatment, rates0)
    # without the mixture: complete-case power at the expected analysable sizes, rounded
    n_c_a = max(1, round(d.n_control * (1 - rates0.missing_control)))
    n_t_a = max(1, round(d.n_treatment * (1 - rates0.missing_treatment)))

    def power_at(v: float) -> float:
        sc = with_values(scenario, {parameter: float(v)}, source="minimal detectable effect")
        r = binary_rates(sc, e.name)
        if mixture:
            return exact_power_enrolled(t, r, d.n_control, d.n_treatment, alpha=d.alpha)
        return exact_power(t, r.p_control, r.p_treatment, n_c_a, n_t_a, alpha=d.alpha)

    best = power_at(extreme)
    at_assumed = power_at(assumed)
    rates = binary_rates(scenario, e.name)
    n_a_c = d.n_control * (1 - rates.missing_control)
    n_a_t = d.n_treatment * (1 - rates.missing_treatment)
    p_t = analytic_binary_mde(rates.p_control, n_a_c, n_a_t, power=power, alpha=d.alpha)
    # the leak endpoint's rates scale with the all-grade leak rate, so their ratio is the risk ratio; other
    # binary endpoints (colonoscopy) depend on leaks only in part, and have no such closed form
    direct = e.name == "leak_1m" and scenario.leak.effect_measure == "risk_ratio"
    analytic = p_t / rates.p_control if direct else math.nan
    common = _common(scenario, e, t, power, parameter, label, assumed) | dict(
        method="exact", best_effect=extreme, best_power=best, power_at_assumed=at_assumed, analytic_effect=analytic,
        analytic_method=("normal approximation on the endpoint's rates at the expected analysable sizes "
                         f"{n_a_c:.1f} vs {n_a_t:.1f}" if direct else "n/a (the endpoint depends on leaks only in part)"))
    if best < power:
        return MDEResult(**common, reachable=False, effect=math.nan, effect_low=math.nan, effect_high=math.nan,
                         note="Even the most extreme effect searched does not reach the target power.")
    lo, hi = (extreme, null) if extreme < null else (null, extreme)
    # power rises towards `extreme`: bisect (geometrically) until the bracket is within 0.01% of the effect
    while hi - lo > 1e-4 * hi:
        mid = math.sqrt(lo * hi)
        inside = power_at(mid) >= power
        if extreme < null:
            lo, hi = (mid, hi) if inside else (lo, mid)
        else:
            lo, hi = (lo, mid) if inside else (mid, hi)
    effect = lo if extreme < null else hi  # the side that reaches the target
    how = ("exact power at the enrolled sizes, mixed over the number analysable" if mixture else
           f"exact power at the expected analysable sizes {n_c_a} vs {n_t_a} (the mixture over analysable sizes is "
           "too costly at this size)")
    return MDEResult(**common, reachable=True, effect=effect, effect_low=effect, effect_high=effect,
                     note=f"Bisection on the effect; {how}.")


def _analytic_continuous(scenario, name, parameter, direction, power, moments) -> tuple[float, str]:
    d = scenario.design
    mom = moments.get(name)
    n_c = d.n_control * (1 - (mom.missing_control if mom else 0.0))
    n_t = d.n_treatment * (1 - (mom.missing_treatment if mom else 0.0))
    dd = analytic_t_mde(n_c, n_t, power=power, alpha=d.alpha)
    if parameter.startswith("cytokines."):
        sd = cytokine_sd(scenario, name)
        return math.exp(direction * dd * sd), f"noncentral t, d = {dd:.3g} at {n_c:.1f} vs {n_t:.1f} analysable, SD {sd:.3g} (no leaks)"
    if parameter == "los.treatment_ratio" and mom is not None:
        return math.exp(direction * dd * mom.sd_pooled), f"noncentral t, d = {dd:.3g} on the model's log-stay SD {mom.sd_pooled:.3g} (direct effect alone; the leak effect ignored)"
    return math.nan, "n/a"


def _simulated_mde(scenario, parameter, group, eps, power, *, n_sims, seed, n_jobs, progress, simulate, moments):
    _, label, assumed = effect_parameter(scenario, group[0][0])
    null, extreme, direction = _effect_bounds(scenario, parameter, assumed)
    out = {}
    analytic = {name: _analytic_continuous(scenario, name, parameter, direction, power, moments) for name, _ in group}
    # coarse grid from no effect (x = 0) to the extreme, log-spaced in the effect's distance from the null
    x_ext = abs(math.log(extreme / null))
    xs = np.concatenate([[0.0], np.geomspace(0.002 * x_ext, x_ext, 19)])
    values = null * np.exp(direction * xs)
    with_assumed = np.append(values, assumed)
    if not simulate:
        for name, t in group:
            out[(name, t)] = MDEResult(**_common(scenario, eps[name], t, power, parameter, label, assumed), method="analytic",
                                       reachable=not math.isnan(analytic[name][0]), effect=analytic[name][0],
                                       effect_low=math.nan, effect_high=math.nan, best_effect=extreme, best_power=math.nan,
                                       power_at_assumed=math.nan, analytic_effect=analytic[name][0],
                                       analytic_method=analytic[name][1], note="Simulation skipped; analytic answer only.")
        return out
    rej = effect_rejections(scenario, parameter, with_assumed, group, n_sims=max(200, n_sims // 4), seed=seed,
                            stream=STREAM_MDE, n_jobs=n_jobs, progress=progress, desc=f"MDE: {parameter}")
    refine: dict[tuple[str, str], tuple[float, float]] = {}
    for name, t in group:
        r = rej[(name, t)]
        observed = r[:, :-1].mean(axis=0)
        common = _common(scenario, eps[name], t, power, parameter, label, assumed) | dict(
            best_effect=extreme, best_power=float(observed[-1]), power_at_assumed=math.nan,
            analytic_effect=analytic[name][0], analytic_method=analytic[name][1])
        hit = np.flatnonzero(observed >= power)
        if not hit.size:
            out[(name, t)] = MDEResult(**common, method="monte_carlo", reachable=False, effect=math.nan, effect_low=math.nan,
                                       effect_high=math.nan, note="Even the most extreme effect searched does not reach the target power.")
            continue
        j = hit[0]
        if j == 0:  # the target is reached with no effect of this parameter at all (e.g. through fewer leaks)
            out[(name, t)] = MDEResult(**common, method="monte_carlo", reachable=True, effect=null, effect_low=math.nan,
                                       effect_high=math.nan, note="The target power is reached without any effect of this "
                                                                  "parameter (the endpoint also depends on the leak effect).")
            continue
        refine[(name, t)] = (xs[j - 1], xs[min(j + 1, len(xs) - 1)])
    if refine:
        lo = min(a for a, _ in refine.values())
        hi = max(b for _, b in refine.values())
        fine = np.linspace(lo, hi, 10)
        vals = np.append(null * np.exp(direction * fine), assumed)
        pairs = list(refine)
        rej2 = effect_rejections(scenario, parameter, vals, pairs, n_sims=n_sims, seed=seed, stream=STREAM_MDE + 100,
                                 n_jobs=n_jobs, progress=progress, desc=f"MDE: {parameter} (refine)")
        for name, t in pairs:
            r = rej2[(name, t)]
            a, b = refine[(name, t)]
            keep = (fine >= a - 1e-12) & (fine <= b + 1e-12)
            fit = fit_probit(fine[keep], r[:, :-1][:, keep])
            p_assumed = float(r[:, -1].mean())
            common = _common(scenario, eps[name], t, power, parameter, label, assumed) | dict(
                best_effect=extreme, best_power=float(rej[(name, t)][:, -2].mean()), power_at_assumed=p_assumed,
                analytic_effect=analytic[name][0], analytic_method=analytic[name][1])
            if fit is None:
                out[(name, t)] = MDEResult(**common, method="monte_carlo", reachable=True, effect=math.nan, effect_low=math.nan,
                                           effect_high=math.nan, note="The probit fit of simulated power failed.")
                continue
            x_star, x_lo, x_hi = fit.root(power)
            to_effect = lambda x: float(null * math.exp(direction * x))  # noqa: E731
            ends = sorted([to_effect(x_lo), to_effect(x_hi)])
            out[(name, t)] = MDEResult(**common, method="monte_carlo", reachable=True, effect=to_effect(x_star),
                                       effect_low=ends[0], effect_high=ends[1],
                                       note=f"Probit fit of simulated power on |log effect| ({keep.sum()} values x {r.shape[0]:,} "
                                            "trials, common random numbers).")
    # power at the assumed effect for the unreachable ones (from the coarse pass)
    for name, t in group:
        res = out[(name, t)]
        if math.isnan(res.power_at_assumed):
            out[(name, t)] = MDEResult(**{**asdict(res), "power_at_assumed": float(rej[(name, t)][:, -1].mean())})
    return out
