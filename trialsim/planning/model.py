"""What planning needs to know about a scenario, asked of its model and of the test registry.

Nothing here knows an endpoint, a family or a test by name: endpoints, their kind, scale, label and
effect parameter come from :func:`trialsim.model.build_model`, exact laws from the families
(``Model.binary_law``, ``Model.true_effect``), and what a test can do from its
:class:`~trialsim.analysis.registry.TestSpec` (``estimand``, ``exact_power``, ``max_n``).

Sizes are per *analysable* patient and inflated for loss to follow-up, as a grant application
states them: "n evaluable per arm; N = n / (1 - dropout) to recruit".

* :func:`complete_case` is the scenario without the loss every endpoint shares (death and the missed
  follow-up visit, the ``follow_up`` section) and without the loss a family declares at the visit
  itself (``EndpointFamily.without_visit_loss``, e.g. a procedure not done). What a family loses
  as part of how it measures (a missing sample) stays in: it is the endpoint, not dropout.
* :func:`dropout` is the expected fraction not analysable through that loss: from the exact law of
  a binary endpoint (``BinaryLaw.p_missing``); for others, zero unless ``measured_at_visit``, then
  death before the visit, the missed visit and the family's procedure loss from the follow-up
  section and the laws of the death event.
* :func:`reduced` keeps only what some (endpoint, test) pairs need; :func:`resized` changes the arm
  sizes and drops the tests whose registered ``max_n`` the new arms exceed.
"""
from __future__ import annotations

from functools import lru_cache

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from trialsim.analysis import registry as tests
from trialsim.config.loader import ConfigError, to_raw, validate, with_values
from trialsim.config.schema import Scenario
from trialsim.designs.allocation import scheme
from trialsim.endpoints.base import Analysed, EffectParameter
from trialsim.engine import map_calls
from trialsim.exact import arms_exchangeable
from trialsim.model import Model, build_model
from trialsim.rng import draw_seed

Pair = tuple[str, str]  # (analysed endpoint, test)


def resolve_seed(scenario: Scenario, seed: int | None) -> int:
    """The seed given, else the config's ``run.seed``, else a fresh one (as ``trialsim run``; recorded)."""
    if seed is not None:
        return int(seed)
    return scenario.run.seed if scenario.run.seed is not None else draw_seed()


def design_ratio(scenario: Scenario) -> float:
    """The design's allocation ratio ``n_treatment / n_control``: the default of every planning command."""
    return scenario.design.n_treatment / scenario.design.n_control


def n_treatment_for(n_control: int, ratio: float) -> int:
    """Treatment-arm size for a control-arm size: ``ratio * n_control`` rounded half up.

    The same rule as :func:`trialsim.analysis.binary.exact_power_curve`, so exact and simulated
    answers describe the same designs.
    """
    return max(1, math.floor(ratio * n_control + 0.5))


# ----------------------------------------------------------------------------------------- endpoints
def endpoint_tests(model: Model, endpoint: str | None = None, test: str | None = None) -> list[tuple[Analysed, str]]:
    """(endpoint, test) pairs of the model: every one, those of one endpoint, or one pair (validated)."""
    every = endpoint in (None, "all")
    eps = list(model.analysed) if every else [_endpoint(model, endpoint)]
    pairs = []
    for a in eps:
        if test is not None and test not in a.tests:
            if every:
                continue
            raise ValueError(f"endpoint {a.name!r} is analysed with {', '.join(a.tests)}, not {test!r}")
        pairs.extend((a, t) for t in a.tests if test is None or t == test)
    if not pairs:
        raise ValueError(f"no endpoint of this scenario is analysed with {test!r}")
    return pairs


def _endpoint(model: Model, name: str) -> Analysed:
    try:
        return model.endpoint(name)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None


def key_pairs(model: Model) -> list[Pair]:
    """The (endpoint, test) pairs shown in figures and short tables.

    The primary endpoint with every test; then, for every other effect parameter and endpoint kind,
    the last endpoint analysed with it, with its first test. Families list their summary endpoints
    after the per-visit ones (a marker's mean over the sampling days after each day), so that is the
    one shown.
    """
    primary = model.primary
    out: list[Pair] = [(primary.name, t) for t in primary.tests]
    last: dict[tuple, Analysed] = {}
    for a in model.analysed:
        if a.name == primary.name:
            continue
        group = (a.effect.path if a.effect is not None else a.name, a.kind)
        last.pop(group, None)  # keep declaration order of the last member
        last[group] = a
    out += [(a.name, a.tests[0]) for a in last.values()]
    return out


def endpoint_rows(model: Model) -> list[dict]:
    """One row per analysed endpoint: what tables and figures need to name and read it (no planning)."""
    keys = {name for name, _ in key_pairs(model)}
    rows = []
    for a in model.analysed:
        e = a.effect
        rows.append({"endpoint": a.name, "component": a.component, "label": a.label, "short": a.short or a.label,
                     "kind": a.kind, "scale": a.scale, "unit": a.unit, "primary": a.primary, "key": a.name in keys,
                     "tests": " ".join(a.tests), "measured_at_visit": a.measured_at_visit,
                     "effect_path": e.path if e else "", "effect_label": e.label if e else "",
                     "effect_kind": e.kind if e else "", "effect_null": e.null if e else math.nan,
                     "effect_assumed": e.assumed if e else math.nan})
    return rows


def is_null(model: Model) -> bool:
    """Every effect parameter of the scenario at its null (rejection rates are then type I errors)."""
    effects = [a.effect for a in model.analysed if a.effect is not None]
    return bool(effects) and all(e.assumed == e.null for e in effects)


# ------------------------------------------------------------------------------------- binary laws
@dataclass(frozen=True)
class BinaryRates:
    """Event probability among analysable patients and probability of not being analysable, per arm."""

    p_control: float
    p_treatment: float
    missing_control: float
    missing_treatment: float


def binary_rates(model: Model, endpoint: str) -> BinaryRates | None:
    """The exact law of a binary endpoint in each arm (its family's ``binary_law``), None where unknown."""
    if model.endpoint(endpoint).kind != "binary":
        return None
    c, t = model.binary_law(endpoint, "control"), model.binary_law(endpoint, "treatment")
    if c is None or t is None:
        return None
    return BinaryRates(c.p_event, t.p_event, c.p_missing, t.p_missing)


def exact_available(model: Model, endpoint: str, test: str) -> bool:
    """Whether the pair has an exact answer: a binary law, a registered exact power, and arms whose patients are
    exchangeable (an allocation on the endpoint's covariates, e.g. selection by risk, leaves it to simulation)."""
    return (tests.get(test).exact_power is not None and binary_rates(model, endpoint) is not None
            and arms_exchangeable(model, endpoint))


@lru_cache(maxsize=65536)  # sample sizes, MDEs, curves and the heat map of one report ask for the same points
def exact_power(test: str, p_control: float, p_treatment: float, n_control: int, n_treatment: int, *, alpha: float,
                missing: tuple[float, float] = (0.0, 0.0)) -> float:
    """The registered exact power of ``test`` (mixed over the analysable counts when ``missing``; cached)."""
    p_missing: float | tuple[float, float] = missing[0] if missing[0] == missing[1] else missing
    return float(tests.get(test).exact_power(p_control, p_treatment, n_control, n_treatment, alpha, p_missing))


def exact_powers(test: str, p_control: float, p_treatment: float, ns: Sequence[int], ratio: float,
                 alpha: float) -> list[float]:
    """Exact power of ``test`` at each control size of ``ns`` (treatment ``n_treatment_for(n, ratio)``): one call of
    exact work for the workers (:func:`trialsim.engine.map_calls`)."""
    return [exact_power(test, p_control, p_treatment, int(n), n_treatment_for(int(n), ratio), alpha=alpha) for n in ns]


def exact_powers_in_pieces(laws: Sequence[tuple[str, float, float, float, float]], sizes: Sequence[Sequence[int]], *,
                           pieces: int, min_sizes: int = 1, n_jobs: int, backend: str,
                           scheduler: str | None) -> list[list[float]]:
    """:func:`exact_powers` of each ``(test, p_control, p_treatment, ratio, alpha)`` law at its ``sizes``, on the workers.

    Each law's sizes are cut into at most ``pieces`` calls of about equal work (:func:`balanced`; at least
    ``min_sizes`` sizes a call), dealt out in turn (the first piece of every law, then the second ...) so that no
    law's pieces come last together: a Boschloo size costs ten to twenty Fisher sizes, and shares of the pieces by
    sizes alone left Boschloo's in one. Powers come back in the order of ``sizes``.
    """
    turns = sorted((k, j, part) for j, ns in enumerate(sizes)
                   for k, part in enumerate(balanced(ns, min(pieces, -(-len(ns) // min_sizes)))))
    values = map_calls(exact_powers, [(*laws[j][:3], part, *laws[j][3:]) for _, j, part in turns],
                       n_jobs=n_jobs, backend=backend, scheduler=scheduler)
    by_law: list[dict[int, float]] = [{} for _ in sizes]
    for (_, j, part), powers in zip(turns, values):
        by_law[j].update(zip(part, powers))
    return [[by_law[j][int(n)] for n in ns] for j, ns in enumerate(sizes)]


def exact_power_enrolled(test: str, rates: BinaryRates, n_control: int, n_treatment: int, *, alpha: float) -> float:
    """Exact power at enrolled sizes, mixing over the Binomial number analysable in each arm."""
    return exact_power(test, rates.p_control, rates.p_treatment, n_control, n_treatment, alpha=alpha,
                       missing=(rates.missing_control, rates.missing_treatment))


# ------------------------------------------------------------------------------------------ dropout
def complete_case(scenario: Scenario) -> Scenario:
    """The scenario without patient-level loss: nobody dies or misses the visit, no visit procedure is missed.

    The follow-up section's chances of death and of a missed visit are set to 0, and each family
    removes the loss it declares at the visit (``without_visit_loss``). Sample-level missingness
    stays: it is how the endpoint is measured, not dropout.
    """
    values: dict[str, Any] = {"follow_up.p_missing_visit": 0.0, "follow_up.p_death": 0.0,
                              "follow_up.p_death_after_event": 0.0}
    for cid, section in scenario.endpoints.items():
        values.update(section.without_visit_loss(cid))
    return with_values(scenario, values, source="complete-case planning scenario")


def dropout(model: Model, endpoint: str, arm: str | None = None) -> float:
    """Expected fraction of enrolled patients not analysable for ``endpoint`` (the larger arm's, by default).

    Binary endpoints with an exact law: its ``p_missing`` (death, missed visit, the family's own
    loss). Others: 0 when measured in hospital; when ``measured_at_visit``, 1 - P(alive at the
    visit) x (1 - p_missing_visit) x (1 - the family's visit-procedure loss), with P(alive) from the
    death event's law (the larger death risk when that law is not known in closed form).
    """
    if arm is None:
        return max(dropout(model, endpoint, "control"), dropout(model, endpoint, "treatment"))
    a = model.endpoint(endpoint)
    law = model.binary_law(endpoint, arm) if a.kind == "binary" else None
    if law is not None:
        return float(law.p_missing)
    if not a.measured_at_visit:
        return 0.0
    fu = model.scenario.follow_up
    if fu.death_event is None:
        alive = 1.0 - fu.p_death
    else:
        states = model.alive_by_event(fu.death_event, arm)
        alive = float(np.dot(*states)) if states is not None else 1.0 - max(fu.p_death, fu.p_death_after_event)
    procedure = model.section(a.component).visit_procedure_missing() or 0.0
    return float(1.0 - alive * (1.0 - fu.p_missing_visit) * (1.0 - procedure))


def inflate(n: int | None, dropout_fraction: float) -> int | None:
    """Patients to enrol so that ``n`` remain analysable on average: ``ceil(n / (1 - dropout))``."""
    if n is None:
        return None
    return int(math.ceil(round(n / (1.0 - dropout_fraction), 9)))


# -------------------------------------------------------------------------------- scenario variants
def test_fields(section) -> dict[str, tuple[str, ...]]:
    """A section's lists of tests: its fields whose values are all registered test names."""
    out = {}
    for name in type(section).model_fields:
        value = getattr(section, name)
        if isinstance(value, (tuple, list)) and value and all(isinstance(v, str) and v in tests.names() for v in value):
            out[name] = tuple(value)
    return out


def components_for(model: Model, endpoints: Iterable[str]) -> set[str]:
    """The components that generating ``endpoints`` needs: theirs, their links (recursively) and death's event.

    With a flow model every component is needed (the flow reads the stay and the event day).
    """
    scenario = model.scenario
    if scenario.flow is not None:
        return set(scenario.endpoints)
    todo = [model.endpoint(name).component for name in endpoints]
    if scenario.follow_up.death_event is not None:
        todo.append(scenario.follow_up.death_event)
    return _with_links(scenario, *todo)


def _with_links(scenario: Scenario, *cids: str) -> set[str]:
    """Components ``cids`` and the components they link to (recursively)."""
    keep: set[str] = set()
    todo = list(cids)
    while todo:
        c = todo.pop()
        if c not in keep:
            keep.add(c)
            todo.extend(scenario.endpoints[c].links())
    return keep


def reduced(scenario: Scenario, pairs: Sequence[Pair]) -> Scenario:
    """The scenario reduced to what ``pairs`` need: their components (with links and the death event),
    only their tests and, where a family can leave them out, only their endpoints
    (:meth:`~trialsim.endpoints.base.EndpointFamily.narrowed`); no sweep, no interim looks, harm reviews or
    multiplicity family.

    Every component draws from its own random stream, so each pair's per-trial statistics are
    bit-identical to those of the full scenario at the same seed (tests/test_planning.py checks it). The first
    pair becomes the primary; what the allocation and the adjusted tests would take from the primary (strata,
    adjustment covariates, selection endpoint) is set to the full scenario's.
    """
    model = build_model(scenario)
    keep = components_for(model, [e for e, _ in pairs])
    alloc = scenario.allocation
    selects = alloc.selection_endpoint is not None or scheme(alloc.scheme).uses_score
    if selects:  # the allocation reads the selection endpoint's risk model (the endpoint is kept, not tested)
        keep |= _with_links(scenario, model.selection_component)
    wanted: dict[str, set[str]] = {}
    names: dict[str, set[str]] = {}
    for e, t in pairs:
        wanted.setdefault(model.endpoint(e).component, set()).add(t)
        names.setdefault(model.endpoint(e).component, set()).add(e)
    raw = to_raw(scenario)
    raw["endpoints"] = {cid: section for cid, section in raw["endpoints"].items() if cid in keep}
    for cid in keep:
        for name, listed in test_fields(scenario.endpoints[cid]).items():
            raw["endpoints"][cid][name] = [t for t in listed if t in wanted.get(cid, ())]
        if cid in names:  # e.g. only the markers' means: their per-day endpoints are not observed or tested
            raw["endpoints"][cid].update(scenario.endpoints[cid].narrowed(cid, names[cid]))
    raw["primary"] = pairs[0][0]
    # what defaults to the primary's (the strata the allocation balances, the adjusted tests' covariates, the
    # selection endpoint) stays the full scenario's: another primary would allocate or adjust otherwise
    raw["allocation"]["strata"] = list(model.strata)
    raw["allocation"]["adjust_for"] = list(model.adjust_for)
    if selects:
        raw["allocation"]["selection_endpoint"] = model.selection_component
    raw["sweep"] = None
    # sizes, curves and effects are searched for the fixed design, each pair's test unadjusted: interim looks, harm
    # reviews and a multiplicity family (which name endpoints and tests that may be reduced away) are not part of it
    raw["interim"] = raw["safety"] = raw["multiplicity"] = None
    return validate(raw, source=f"planning: reduced to {', '.join(f'{e}/{t}' for e, t in pairs)}")


def flow_only(scenario: Scenario) -> Scenario:
    """The scenario with one test left, for its patient flow alone: the first test of the endpoint that gives the
    flow its hospital stays (else the primary's). Every component is still generated, each from its own stream, so
    the flow is the full scenario's, bit for bit, without the cost of its analyses (tests/test_documents.py checks
    it); no sweep, decision rules, interim looks or harm reviews."""
    model = build_model(scenario)
    stays = next((c for c in model.order if getattr(model.section(c), "gives_stays", False)), None)
    keep = next((a for a in model.analysed if a.component == stays), model.primary)
    raw = to_raw(scenario)
    for cid, section in scenario.endpoints.items():
        for name, listed in test_fields(section).items():
            raw["endpoints"][cid][name] = [keep.tests[0]] if cid == keep.component and keep.tests[0] in listed else []
    raw["primary"] = keep.name
    raw["sweep"] = raw["interim"] = raw["safety"] = raw["multiplicity"] = raw["bayes"] = None
    return validate(raw, source="planning: the patient flow alone")


def size_values(scenario: Scenario, n_control: int, n_treatment: int) -> dict[str, Any] | None:
    """Raw values (key path -> value) that resize ``scenario``, or None when no analysed endpoint is left.

    Tests whose registered ``max_n`` the larger arm exceeds are dropped from every test list; the
    primary endpoint moves to the first endpoint still analysed when it loses all of its tests.
    """
    values: dict[str, Any] = {"design.n_control": int(n_control), "design.n_treatment": int(n_treatment)}
    largest = max(n_control, n_treatment)
    too_big = {t for t in tests.names() if tests.get(t).max_n is not None and largest > tests.get(t).max_n}
    if not too_big:
        return values
    model = build_model(scenario)
    for cid, section in scenario.endpoints.items():
        for name, listed in test_fields(section).items():
            if too_big & set(listed):
                values[f"endpoints.{cid}.{name}"] = [t for t in listed if t not in too_big]
    left = [a.name for a in model.analysed if set(a.tests) - too_big]
    if not left:
        return None
    if model.primary.name not in left:
        values["primary"] = left[0]
    return values


def resized(scenario: Scenario, n_control: int, n_treatment: int) -> Scenario:
    """The scenario at other arm sizes (tests beyond their size limit dropped, see :func:`size_values`)."""
    values = size_values(scenario, n_control, n_treatment)
    if values is None:
        raise ValueError(f"no test of this scenario runs at {n_control} + {n_treatment} patients")
    return with_values(scenario, values, source=f"{n_control} + {n_treatment} patients")


def effect_values(scenario: Scenario, effect: EffectParameter, value: float) -> dict[str, Any]:
    """Raw values that set ``effect`` to ``value`` (the owning family decides, usually ``{path: value}``)."""
    cid = effect.path.split(".")[1]
    return scenario.endpoints[cid].with_effect(effect.path, float(value))


def with_effect(scenario: Scenario, effect: EffectParameter, value: float) -> Scenario:
    return with_values(scenario, effect_values(scenario, effect, value), source=f"{effect.path} = {value:g}")


def valid_effect(scenario: Scenario, effect: EffectParameter, value: float) -> bool:
    try:
        with_effect(scenario, effect, value)
    except ConfigError:
        return False
    return True


def balanced(ns: Sequence[int], pieces: int) -> list[list[int]]:
    """``ns`` cut into up to ``pieces`` consecutive runs of about equal total size (exact work grows with n), for
    spreading exact computations over workers."""
    if not len(ns):
        return []
    bounds = np.searchsorted(np.cumsum(ns), np.linspace(0, sum(ns), pieces + 1)[1:-1], side="right")
    return [[int(n) for n in part] for part in np.split(np.asarray(ns, dtype=int), bounds) if len(part)]
