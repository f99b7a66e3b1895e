"""The trial model of a scenario: its components in generation order, analysed endpoints and arm laws.

Built once per scenario (cached); everything downstream asks the model, never a section by name.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

from trialsim.config.schema import Scenario
from trialsim.endpoints.base import Analysed, BinaryLaw, EndpointFamily


@dataclass(frozen=True)
class Model:
    """A scenario seen as a model: ordered components and analysed endpoints, primary first."""

    scenario: Scenario
    order: tuple[str, ...]  # component ids, links before the components that read them
    analysed: tuple[Analysed, ...]  # primary first, then in declaration order
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    # -------------------------------------------------------------------------------- look-ups
    def section(self, cid: str) -> EndpointFamily:
        return self.scenario.endpoints[cid]

    def endpoint(self, name: str) -> Analysed:
        for a in self.analysed:
            if a.name == name:
                return a
        raise KeyError(f"unknown endpoint {name!r}; this scenario has: {', '.join(a.name for a in self.analysed)}")

    @property
    def primary(self) -> Analysed:
        return self.analysed[0]

    @property
    def prevalence(self) -> dict[str, float]:
        return {c.name: c.prevalence for c in self.scenario.population.covariates}

    @property
    def primary_covariates(self) -> tuple[str, ...]:
        """The covariates of the primary endpoint's risk model: the default strata and adjustment set."""
        return tuple(self.section(self.primary.component).covariates_used())

    @property
    def strata(self) -> tuple[str, ...]:
        """Covariates the allocation balances or selects on (``allocation.strata``, else the primary's)."""
        given = self.scenario.allocation.strata
        return self.primary_covariates if given is None else tuple(given)

    @property
    def adjust_for(self) -> tuple[str, ...]:
        """Covariates the adjusted analyses adjust for (``allocation.adjust_for``, else the primary's)."""
        given = self.scenario.allocation.adjust_for
        return self.primary_covariates if given is None else tuple(given)

    @property
    def selection_component(self) -> str:
        """The endpoint whose covariate risk score drives allocation by selection (default: the primary's)."""
        return self.scenario.allocation.selection_endpoint or self.primary.component

    def depends_on(self, cid: str) -> tuple[str, ...]:
        """Covariates the law of component ``cid`` reads: its own, its links' (transitively), and the death event's."""
        seen: list[str] = []
        todo = [cid] + ([self.scenario.follow_up.death_event] if self.scenario.follow_up.death_event else [])
        names: list[str] = []
        while todo:
            c = todo.pop()
            if c in seen:
                continue
            seen.append(c)
            names += [n for n in self.section(c).covariates_used() if n not in names]
            todo += list(self.section(c).links())
        return tuple(names)

    def pairs(self) -> tuple[tuple[Analysed, str], ...]:
        """Every (analysed endpoint, test) pair in report order."""
        return tuple((a, t) for a in self.analysed for t in a.tests)

    # ------------------------------------------------------------------------------------ laws
    def event_probability(self, cid: str, arm: str) -> float | None:
        return self.section(cid).event_probability(cid, arm, self)

    def alive_by_event(self, cid: str, arm: str) -> tuple[list[float], list[float]] | None:
        """P(event states) and P(alive at the visit | state) for the states of event ``cid``.

        ``([1 - p, p], [alive without, alive with])`` when death is linked to ``cid``; one state when
        death is linked to nothing; None when death is linked to another event (the joint law of two
        events is not known in closed form).
        """
        fu = self.scenario.follow_up
        if fu.death_event is None:
            return [1.0], [1.0 - fu.p_death]
        if fu.death_event != cid:
            return None
        p = self.event_probability(cid, arm)
        if p is None:
            return None
        return [1.0 - p, p], [1.0 - fu.p_death, 1.0 - fu.p_death_after_event]

    def binary_law(self, name: str, arm: str) -> BinaryLaw | None:
        a = self.endpoint(name)
        return self.section(a.component).binary_law(a.component, name, arm, self)

    def true_effect(self, name: str, estimand: str) -> float | None:
        """The true value of ``estimand`` for endpoint ``name`` (cached), None where unknown."""
        key = ("truth", name, estimand)
        if key not in self._cache:
            a = self.endpoint(name)
            self._cache[key] = self.section(a.component).true_effect(a.component, name, estimand, self)
        return self._cache[key]


def _order(scenario: Scenario) -> tuple[str, ...]:
    done: list[str] = []

    def visit(cid: str):
        if cid in done:
            return
        for link in scenario.endpoints[cid].links():
            visit(link)
        done.append(cid)

    for cid in scenario.endpoints:
        visit(cid)
    return tuple(done)


def build_model(scenario: Scenario) -> Model:
    """The model of ``scenario`` (cached on the scenario's JSON: scenarios with a sweep are not hashable)."""
    return _build(scenario.model_dump_json())


@lru_cache(maxsize=256)
def _build(scenario_json: str) -> Model:
    scenario = Scenario.model_validate_json(scenario_json)
    analysed = [a for cid, section in scenario.endpoints.items() for a in section.analysed(cid) if a.tests]
    primary = scenario.primary or analysed[0].name
    first = [a for a in analysed if a.name == primary]
    rest = [a for a in analysed if a.name != primary]
    ordered = tuple([replace(first[0], primary=True)] + rest)
    return Model(scenario=scenario, order=_order(scenario), analysed=ordered)
