"""Minimal detectable effect: the smallest effect with a target power at a given size.

The effect of an endpoint is its family's effect parameter (``Analysed.effect``: a key path, what
no effect is, the assumed value and search bounds), varied alone with everything else fixed:

* exact (a binary endpoint with a law and a test with a registered exact power): bisection on the
  exact power at the enrolled sizes, mixing over the number analysable;
* otherwise by a probit fit of simulated power on the effect's distance from no effect
  (``|log(value / null)|`` for ratios and rates, ``|value - null|`` for differences), with common
  random numbers across effect values (:mod:`trialsim.planning.search`), and a 95% Monte Carlo
  interval.

The effect is searched on the side of "no effect" where the assumed effect lies (a reduction when
the assumption is a reduction; when it is no effect, the side where the treatment helps,
``EffectParameter.benefit``) up to the parameter's bound (or the most extreme value the config
accepts). When even that does not reach the target the result says so (``reachable = False``) with
the power it does reach. The power at the assumed effect is the design's own power: simulated on
the scenario itself (the number ``trialsim run`` gives with the same seed and trials), or taken
from a finished run (``power_at_assumed``).
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable, Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from trialsim.analysis import registry as tests
from trialsim.analysis.analytic import two_proportions_power_normal
from trialsim.analysis.binary import exact_power_cost
from trialsim.cache import cached_array
from trialsim.config.schema import Scenario
from trialsim.endpoints.base import Analysed, EffectParameter
from trialsim.exact import EXACT_TABLE_BUDGET, plain, shipped_exact_power
from trialsim.labels import pct, target_pct, test_label
from trialsim.model import Model, build_model
from trialsim.planning.analytic import Moments, analytic_power, model_moments
from trialsim.planning.model import (
    Pair,
    binary_rates,
    design_ratio,
    effect_values,
    endpoint_tests,
    exact_available,
    exact_power,
    exact_power_enrolled,
    n_treatment_for,
    reduced,
    resized,
    resolve_seed,
    valid_effect,
    with_effect,
)
from trialsim.planning.samplesize import locate_sims
from trialsim.planning.search import Job, fit_probit, rejections

MDE_COLUMNS = [
    "endpoint", "test", "label", "family", "primary", "parameter", "parameter_label", "parameter_kind", "no_effect",
    "assumed", "n_control", "n_treatment", "target_power", "alpha", "method", "reachable", "effect", "effect_low",
    "effect_high", "relative_change", "best_effect", "best_power", "power_at_assumed", "analytic_effect",
    "analytic_method", "note",
]

# Largest enrolled size per arm at which tests with a size limit (costly exact tables) mix exact
# power over the number analysable.
MIXTURE_MAX_N_LIMITED = 20
COARSE_POINTS = 20
MDE_TOLERANCE = 1e-4  # bisections stop once the bracket is within 0.01% of the effect (exact and closed-form)
FINE_POINTS = 10


@dataclass(frozen=True)
class MDEResult:
    """The minimal detectable effect of one (endpoint, test) at one size.

    ``effect`` is the value of ``parameter`` with ``target_power`` (NaN when not reachable);
    ``relative_change`` is ``effect / no_effect - 1`` for ratios and rates (e.g. -0.65 = a 65%
    reduction), NaN for differences.
    """

    endpoint: str
    test: str
    label: str
    family: str
    primary: bool
    parameter: str
    parameter_label: str
    parameter_kind: str
    no_effect: float
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
        if self.parameter_kind == "difference" or not self.no_effect:
            return math.nan
        return self.effect / self.no_effect - 1.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["relative_change"] = self.relative_change
        return {k: out[k] for k in MDE_COLUMNS}

    def summary(self) -> str:
        head = (f"{self.endpoint} / {test_label(self.test)} at {self.n_control} vs {self.n_treatment}: "
                f"smallest {self.parameter_label} with {target_pct(self.target_power)} power")
        if self.method == "skipped":
            return f"{head}: not computed. {self.note}"
        if self.method == "analytic":
            return f"{head}: not simulated; analytic {self.analytic_effect:.3g} ({self.analytic_method})."
        if not self.reachable:
            return (f"{head}: none. Even {self.parameter_label} {self.best_effect:.3g} gives {pct(self.best_power, 1)} "
                    f"power (assumed {self.assumed:g}: {pct(self.power_at_assumed, 1)}).")
        interval = ("" if self.method == "exact" or math.isnan(self.effect_low)
                    else f" (95% MC interval {self.effect_low:.3g}-{self.effect_high:.3g})")
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


# ---------------------------------------------------------------------------------------------------
# the effect's axis: distance from no effect
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EffectAxis:
    """An effect parameter seen as a distance ``x >= 0`` from no effect, towards the assumed side.

    ``x = |log(value / null)|`` for ratios and rates, ``|value - null|`` for differences; ``extreme``
    is the most extreme value searched (the parameter's bound, or the most extreme the config accepts).
    """

    effect: EffectParameter
    direction: float
    extreme: float

    @property
    def multiplicative(self) -> bool:
        return self.effect.kind != "difference"

    def value(self, x: float) -> float:
        null = self.effect.null
        if x >= self.x_extreme:  # the extreme itself (exp(log(100)) is 100.00000000000004, past a bound of 100)
            return float(self.extreme)
        return float(null * math.exp(self.direction * x)) if self.multiplicative else float(null + self.direction * x)

    def distance(self, value: float) -> float:
        null = self.effect.null
        return abs(math.log(value / null)) if self.multiplicative else abs(value - null)

    @property
    def x_extreme(self) -> float:
        return self.distance(self.extreme)


def effect_axis(scenario: Scenario, effect: EffectParameter) -> EffectAxis:
    """The search axis of ``effect`` in ``scenario``: the assumed side, up to the most extreme valid value."""
    direction = effect.benefit if effect.assumed == effect.null else -1.0 if effect.assumed < effect.null else 1.0
    bound = effect.lower if direction < 0 else effect.upper
    axis = EffectAxis(effect, direction, bound)
    if effect.kind != "difference" and bound <= 0:
        raise ValueError(f"{effect.path}: a {effect.kind} needs positive bounds, got {bound}")
    if valid_effect(scenario, effect, bound):
        return axis
    lo, hi = 0.0, axis.x_extreme  # valid, invalid: the largest valid distance, to 1e-6 of the range
    while hi - lo > 1e-6 * axis.x_extreme:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if valid_effect(scenario, effect, axis.value(mid)) else (lo, mid)
    return EffectAxis(effect, direction, axis.value(lo))


def _bisect_distance(axis: EffectAxis, power_at: Callable[[float], float], target: float) -> float:
    """Smallest distance with ``power_at >= target`` (power rising in x), NaN when the extreme misses it."""
    if not power_at(axis.x_extreme) >= target:
        return math.nan
    lo, hi = 0.0, axis.x_extreme
    for _ in range(60):
        if hi - lo <= MDE_TOLERANCE * max(hi, 1e-12):  # 0.01% of the effect: closed forms need no more
            break
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if power_at(mid) >= target else (mid, hi)
    return hi


# ---------------------------------------------------------------------------------------------------
def minimal_detectable_effect(scenario: Scenario, endpoint: str, test: str | None = None, *, power: float = 0.8,
                              n_per_arm: int | None = None, ratio: float | None = None, n_sims: int = 2000,
                              seed: int | None = None, n_jobs: int = 1, progress: bool = False) -> MDEResult:
    """The minimal detectable effect for one endpoint (default test: its first). See :func:`minimal_detectable_effects`."""
    test = test or build_model(scenario).endpoint(endpoint).tests[0]
    return minimal_detectable_effects(scenario, endpoint=endpoint, test=test, power=power, n_per_arm=n_per_arm, ratio=ratio,
                                      n_sims=n_sims, seed=seed, n_jobs=n_jobs, progress=progress).results[0]


def minimal_detectable_effects(
    scenario: Scenario,
    *,
    endpoint: str | None = None,
    test: str | None = None,
    pairs: Sequence[Pair] | None = None,
    power: float = 0.8,
    n_per_arm: int | None = None,
    ratio: float | None = None,
    n_sims: int = 2000,
    seed: int | None = None,
    n_jobs: int = 1,
    progress: bool = False,
    simulate: bool | Collection[Pair] = True,
    power_at_assumed: Mapping[Pair, float] | None = None,
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
        Simulation settings (the coarse pass uses a quarter of ``n_sims``; results do not depend on
        ``n_jobs``).
    simulate : bool or collection of (endpoint, test)
        False: exact and analytic answers only; a collection: simulate only those pairs.
    power_at_assumed : mapping, optional
        (endpoint, test) -> simulated power at the assumed effect from a finished run of the same
        design (the report passes its power table's, so both tables quote one number).

    Returns
    -------
    MDETable
    """
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must lie in (0, 1), got {power}")
    model = build_model(scenario)
    if pairs is None:
        pairs = [(a.name, t) for a, t in endpoint_tests(model, endpoint, test)]
    pairs = [tuple(p) for p in pairs]
    d = scenario.design
    if n_per_arm is not None:
        ratio = ratio if ratio is not None else design_ratio(scenario)
        n_c, n_t = int(n_per_arm), n_treatment_for(int(n_per_arm), ratio)
        fits = [p for p in pairs if _fits(p[1], n_c, n_t)]
        scenario = resized(scenario, n_c, n_t)
        model = build_model(scenario)
        d = scenario.design
    else:
        fits = list(pairs)
    seed = resolve_seed(scenario, seed)
    chosen = simulate if isinstance(simulate, bool) else {tuple(p) for p in simulate}
    given = dict(power_at_assumed or {})
    results: dict[Pair, MDEResult] = {}
    groups: dict[str, list[Pair]] = {}
    exact: list[Pair] = []
    for name, t in pairs:
        if (name, t) not in fits:
            results[(name, t)] = _skipped(scenario, build_model(scenario), name, t, power)
            continue
        a = model.endpoint(name)
        if a.effect is None:
            results[(name, t)] = _no_parameter(scenario, a, t, power)
        elif exact_available(model, name, t):
            exact.append((name, t))
        else:
            groups.setdefault(a.effect.path, []).append((name, t))
    simulated = [p for group in groups.values() for p in group]

    def closed_forms() -> tuple[dict[Pair, MDEResult], dict[Pair, tuple[float, str]]]:
        """The exact answers, then the model's moments (one large simulated trial) and the closed-form answers that
        need them: in a thread while the workers simulate (this process mostly waits for them meanwhile)."""
        exact_results = {(name, t): _binary_mde(scenario, model, model.endpoint(name), t, power) for name, t in exact}
        moments = model_moments(scenario, seed=seed) if simulated else None
        analytic = {(name, t): _analytic(scenario, model, model.endpoint(name), t,
                                         effect_axis(scenario, model.endpoint(name).effect), power, moments)
                    for name, t in simulated}
        return exact_results, analytic

    with ThreadPoolExecutor(max_workers=1) as thread:
        later = thread.submit(closed_forms)
        found = _simulated(scenario, model, groups, power, chosen, given, n_sims=n_sims, seed=seed, n_jobs=n_jobs,
                           progress=progress) if groups else {}
        exact_results, analytic = later.result()
    results.update(exact_results)
    for pair, fields in found.items():
        effect, method = analytic[pair]
        fields = fields | dict(analytic_effect=effect, analytic_method=method)
        if fields["method"] == "analytic":
            fields.update(reachable=not math.isnan(effect), effect=effect)
        results[pair] = MDEResult(**fields)
    return MDETable(tuple(results[p] for p in pairs), seed=seed, n_sims=n_sims,
                    settings={"power": power, "n_control": d.n_control, "n_treatment": d.n_treatment, "n_sims": n_sims})


def _fits(test: str, n_control: int, n_treatment: int) -> bool:
    limit = tests.get(test).max_n
    return limit is None or max(n_control, n_treatment) <= limit


def _common(scenario: Scenario, a: Analysed, t: str, power: float, axis: EffectAxis | None) -> dict:
    d = scenario.design
    e = a.effect
    return dict(endpoint=a.name, test=t, label=a.label, family=a.kind, primary=a.primary,
                parameter=e.path if e else "", parameter_label=e.label if e else "", parameter_kind=e.kind if e else "",
                no_effect=e.null if e else math.nan, assumed=e.assumed if e else math.nan, n_control=d.n_control,
                n_treatment=d.n_treatment, target_power=power, alpha=d.alpha,
                best_effect=axis.extreme if axis else math.nan)


def _no_parameter(scenario, a, t, power) -> MDEResult:
    return MDEResult(**_common(scenario, a, t, power, None), method="skipped", reachable=False, effect=math.nan,
                     effect_low=math.nan, effect_high=math.nan, best_power=math.nan, power_at_assumed=math.nan,
                     analytic_effect=math.nan, analytic_method="n/a", note="The endpoint's family names no effect parameter.")


def _skipped(scenario, model, name, t, power) -> MDEResult:
    a = model.endpoint(name)
    limit = tests.get(t).max_n
    return MDEResult(**_common(scenario, a, t, power, None), method="skipped", reachable=False, effect=math.nan,
                     effect_low=math.nan, effect_high=math.nan, best_power=math.nan, power_at_assumed=math.nan,
                     analytic_effect=math.nan, analytic_method="n/a",
                     note=f"{test_label(t)} runs only up to {limit} per arm (its size limit in the test registry).")


def _mixture_affordable(test: str, n_control: int, n_treatment: int, missing: tuple[float, float]) -> bool:
    """Whether exact power mixed over the number analysable is cheap enough to bisect on.

    The power table's budget (:data:`trialsim.exact.EXACT_TABLE_BUDGET`); tests with a size limit
    build a table per pair of analysable sizes (about a second at 100 per arm), so they mix only
    for small arms.
    """
    if tests.get(test).max_n is not None:
        return max(n_control, n_treatment) <= MIXTURE_MAX_N_LIMITED
    return exact_power_cost(n_control, n_treatment, missing) <= EXACT_TABLE_BUDGET


def _binary_mde(scenario: Scenario, model: Model, a: Analysed, t: str, power: float) -> MDEResult:
    d = scenario.design
    axis = effect_axis(scenario, a.effect)
    small = reduced(scenario, [(a.name, t)])  # the same law, a cheaper scenario to vary
    rates0 = binary_rates(model, a.name)
    missing = (rates0.missing_control, rates0.missing_treatment)
    mixture = _mixture_affordable(t, d.n_control, d.n_treatment, missing)
    # without the mixture: complete-case power at the expected analysable sizes, rounded
    n_c_a = max(1, round(d.n_control * (1 - rates0.missing_control)))
    n_t_a = max(1, round(d.n_treatment * (1 - rates0.missing_treatment)))

    def rates_at(v: float):
        return binary_rates(build_model(with_effect(small, a.effect, v)), a.name)

    def power_at(v: float) -> float:
        r = rates_at(v)
        if mixture:
            return exact_power_enrolled(t, r, d.n_control, d.n_treatment, alpha=d.alpha)
        return exact_power(t, r.p_control, r.p_treatment, n_c_a, n_t_a, alpha=d.alpha)

    null, extreme = a.effect.null, axis.extreme
    n_a_c, n_a_t = d.n_control * (1 - rates0.missing_control), d.n_treatment * (1 - rates0.missing_treatment)

    def analytic_at(x: float) -> float:
        r = rates_at(axis.value(x))
        return float(two_proportions_power_normal(r.p_control, r.p_treatment, n_a_c, n_a_t, alpha=d.alpha))

    def numbers() -> np.ndarray:
        """Power at the extreme and at the assumed effect, the closed-form distance, and the exact MDE (NaN: not
        reached): the bisections, which a later command on the same law, sizes and test reads from the disk cache."""
        best = power_at(extreme)
        effect = math.nan
        if best >= power:
            lo, hi = (extreme, null) if extreme < null else (null, extreme)
            # power rises towards `extreme`: bisect (geometrically for ratios and rates) until the bracket is
            # within MDE_TOLERANCE of the effect
            while hi - lo > MDE_TOLERANCE * max(abs(hi), abs(lo)):
                mid = math.sqrt(lo * hi) if axis.multiplicative else (lo + hi) / 2
                inside = power_at(mid) >= power
                if extreme < null:
                    lo, hi = (mid, hi) if inside else (lo, mid)
                else:
                    lo, hi = (lo, mid) if inside else (mid, hi)
            effect = lo if extreme < null else hi  # the side that reaches the target
        return np.array([best, power_at(a.effect.assumed), _bisect_distance(axis, analytic_at, power), effect])

    # kept on disk only when the test and every family that gives the law are this package's code (a plug-in's can
    # change under the same package version); the key holds the law's whole config and every choice made here
    shipped = shipped_exact_power(t) and all(type(section).__module__.startswith("trialsim.")
                                             for section in small.endpoints.values())
    if shipped:
        law = small.model_dump(mode="json")
        for irrelevant in ("run", "sweep"):  # never change an exact power (seed, trials, workers, other scenarios)
            law.pop(irrelevant, None)
        key = {"scenario": law, "endpoint": a.name, "test": t, "parameter": a.effect.path,
               "numbers": plain([power, extreme, axis.direction, mixture, n_c_a, n_t_a]),
               "settings": plain([MDE_TOLERANCE, MIXTURE_MAX_N_LIMITED, EXACT_TABLE_BUDGET])}
        kept_numbers = cached_array("exact-mde", key, numbers, dtype=np.float64, shape=(4,))
    else:
        kept_numbers = numbers()
    best, at_assumed, x_an, effect = (float(v) for v in kept_numbers)
    common = _common(scenario, a, t, power, axis) | dict(
        method="exact", best_power=best, power_at_assumed=at_assumed,
        analytic_effect=axis.value(x_an) if not math.isnan(x_an) else math.nan,
        analytic_method=f"normal approximation on the endpoint's rates at the expected analysable sizes {n_a_c:.1f} vs {n_a_t:.1f}")
    if math.isnan(effect):
        return MDEResult(**common, reachable=False, effect=math.nan, effect_low=math.nan, effect_high=math.nan,
                         note="Even the most extreme effect searched does not reach the target power.")
    how = ("exact power at the enrolled sizes, mixed over the number analysable" if mixture else
           f"exact power at the expected analysable sizes {n_c_a} vs {n_t_a} (the mixture over analysable sizes is "
           "too costly at this size)")
    return MDEResult(**common, reachable=True, effect=effect, effect_low=effect, effect_high=effect,
                     note=f"Bisection on the effect; {how}.")


def _analytic(scenario: Scenario, model: Model, a: Analysed, t: str, axis: EffectAxis, power: float,
              moments: dict[str, Moments]) -> tuple[float, str]:
    """The closed-form MDE: the effect value whose closed-form power (the test's estimand) is ``power``."""
    mom = moments.get(a.name)
    d = scenario.design
    if mom is None:
        return math.nan, "n/a"
    n_c, n_t = d.n_control * (1 - mom.missing_control), d.n_treatment * (1 - mom.missing_treatment)
    small = reduced(scenario, [(a.name, t)])  # the same laws, a cheaper scenario to vary

    def power_at(x: float) -> float:
        sc = with_effect(small, a.effect, axis.value(x)) if x > 0 else small
        value = analytic_power(build_model(sc), a.name, t, n_c, n_t, moments=moments)
        return 0.0 if math.isnan(value) else value

    estimand = tests.get(t).estimand
    if a.kind != "binary" and model.true_effect(a.name, estimand) is None:
        return math.nan, f"n/a (the model's {estimand.replace('_', ' ')} is not known in closed form)"
    if math.isnan(analytic_power(model, a.name, t, n_c, n_t, moments=moments)):
        return math.nan, "n/a (no closed form for this test or endpoint)"
    x = _bisect_distance(axis, power_at, power)
    what = {"difference": f"noncentral t on the model's exact difference and simulated SD {mom.sd_pooled:.3g}",
            "p_treatment_lower": "Noether (1987) on the model's exact P(treatment < control)"}.get(
        estimand, "normal approximation")
    return (axis.value(x) if not math.isnan(x) else math.nan), f"{what}, at {n_c:.1f} vs {n_t:.1f} analysable"


def _simulated(scenario, model, groups, power, chosen, given, *, n_sims, seed, n_jobs, progress) -> dict[Pair, dict]:
    """Each pair's :class:`MDEResult` fields but the closed-form answer's (``analytic_effect``, ``analytic_method``;
    and ``effect``, ``reachable`` of a pair not simulated, whose ``method`` is "analytic")."""
    out: dict[Pair, dict] = {}
    coarse_jobs, plans = [], []
    for path, group in groups.items():
        a0 = model.endpoint(group[0][0])
        axis = effect_axis(scenario, a0.effect)
        x_ext = axis.x_extreme
        xs = np.concatenate([[0.0], np.geomspace(0.002 * x_ext, x_ext, COARSE_POINTS - 1)])
        points = tuple(_point(scenario, a0.effect, axis, x) for x in xs)
        for name, t in group:
            a = model.endpoint(name)
            if not (chosen is True or (chosen is not False and (name, t) in chosen)):
                out[(name, t)] = dict(**_common(scenario, a, t, power, axis), method="analytic", effect_low=math.nan,
                                      effect_high=math.nan, best_power=math.nan,
                                      power_at_assumed=given.get((name, t), math.nan), note="Not simulated; analytic answer only.")
                continue
            coarse_jobs.append(Job(name, t, points))
            plans.append((a, t, axis, xs))
    if not coarse_jobs:
        return out
    rej1 = rejections(scenario, coarse_jobs, n_sims=locate_sims(n_sims), seed=seed, n_jobs=n_jobs, progress=progress)
    fine_jobs, fine_plans = [], []
    for (a, t, axis, xs), r in zip(plans, rej1):
        observed = r.mean(axis=0)
        hit = np.flatnonzero(observed >= power)
        common = _common(scenario, a, t, power, axis) | dict(best_power=float(observed[-1]))
        if not hit.size or hit[0] == 0:
            reached = bool(hit.size)
            note = ("The target power is reached without any effect of this parameter (the endpoint also depends on "
                    "other effects)." if reached else "Even the most extreme effect searched does not reach the target power.")
            fine = ()
            result = dict(common, method="monte_carlo", reachable=reached, effect=a.effect.null if reached else math.nan,
                          effect_low=math.nan, effect_high=math.nan, note=note)
        else:
            j = hit[0]
            fine = np.linspace(xs[j - 1], xs[min(j + 1, len(xs) - 1)], FINE_POINTS)
            result = dict(common)
        points = tuple(_point(scenario, a.effect, axis, x) for x in fine)
        if (a.name, t) not in given:
            points += ({},)  # the design itself: the power at the assumed effect
        fine_jobs.append(Job(a.name, t, points))
        fine_plans.append((a, t, axis, fine, result))
    rej2 = rejections(scenario, fine_jobs, n_sims=n_sims, seed=seed, n_jobs=n_jobs, progress=progress)
    for (a, t, axis, fine, result), r in zip(fine_plans, rej2):
        at_assumed = given[(a.name, t)] if (a.name, t) in given else float(r[:, -1].mean())
        if "method" in result:
            out[(a.name, t)] = dict(result, power_at_assumed=at_assumed)
            continue
        fit = fit_probit(fine, r[:, :len(fine)])
        if fit is None:
            out[(a.name, t)] = dict(result, method="monte_carlo", reachable=True, effect=math.nan, effect_low=math.nan,
                                    effect_high=math.nan, power_at_assumed=at_assumed,
                                    note="The probit fit of simulated power failed.")
            continue
        x_star, x_lo, x_hi = fit.root(power)
        ends = sorted([axis.value(max(x_lo, 0.0)), axis.value(x_hi)])
        out[(a.name, t)] = dict(result, method="monte_carlo", reachable=True, effect=axis.value(x_star),
                                effect_low=ends[0], effect_high=ends[1], power_at_assumed=at_assumed,
                                note=f"Probit fit of simulated power on the distance from no effect ({len(fine)} values x "
                                     f"{r.shape[0]:,} trials, common random numbers).")
    return out


def _point(scenario: Scenario, effect: EffectParameter, axis: EffectAxis, x: float) -> dict:
    return effect_values(scenario, effect, axis.value(float(x))) if x > 0 else effect_values(scenario, effect, effect.null)
