"""Exact power of binary endpoints, from each family's own law of the endpoint in each arm.

Patients are independent and identically distributed within an arm (fixed arm sizes, no flow), so a
binary endpoint observed on an analysable patient is Bernoulli with the probability the family's
``binary_law`` gives, and the number analysable is Binomial. Exact enumeration over both then gives
the power the simulation must reproduce. Any family with a ``binary_law`` and any test with an
``exact_power`` take part; nothing here knows an endpoint by name.
"""
from __future__ import annotations

from functools import lru_cache

from trialsim.analysis import registry as tests
from trialsim.analysis.binary import exact_power_cost
from trialsim.config.loader import with_values
from trialsim.config.schema import Scenario
from trialsim.designs.allocation import scheme
from trialsim.model import Model, build_model

# Exact figures that would enumerate more tables than this are left to the simulation (large arms
# with much missing data mix over thousands of analysable size pairs; minutes for one number).
EXACT_TABLE_BUDGET = 50_000_000


def exact_binary_power(model: Model, endpoint: str, test: str) -> float | None:
    """Exact power of ``test`` on binary ``endpoint`` at the design's sizes, or None when not available."""
    sc = model.scenario
    d = sc.design
    spec = tests.get(test)
    if spec.exact_power is None or sc.flow is not None:
        return None
    if not scheme(sc.allocation.scheme).fixed_sizes(sc.allocation, d.n_control, d.n_treatment):
        return None
    if not arms_exchangeable(model, endpoint):
        return None
    law_c, law_t = model.binary_law(endpoint, "control"), model.binary_law(endpoint, "treatment")
    if law_c is None or law_t is None:
        return None
    if exact_power_cost(d.n_control, d.n_treatment, (law_c.p_missing, law_t.p_missing)) > EXACT_TABLE_BUDGET:
        return None
    return spec.exact_power(law_c.p_event, law_t.p_event, d.n_control, d.n_treatment, d.alpha,
                            (law_c.p_missing, law_t.p_missing))


def allocation_covariates(model: Model) -> tuple[str, ...]:
    """Covariates a covariate-using scheme reads: its strata and, when it selects on a risk score, the score's."""
    chosen = scheme(model.scenario.allocation.scheme)
    if not chosen.uses_covariates:
        return ()
    score = model.section(model.selection_component).covariates_used() if chosen.uses_score else ()
    return tuple(dict.fromkeys(model.strata + tuple(score)))


def arms_exchangeable(model: Model, endpoint: str) -> bool:
    """False when the allocation reads covariates that the law of ``endpoint`` depends on: the arms' patients
    then differ in distribution (by design or by selection), and a law that treats them as one population's
    independent draws (exact power) does not hold."""
    shared = set(allocation_covariates(model)) & set(model.depends_on(model.endpoint(endpoint).component))
    return not shared


def exact_rows(scenario: Scenario) -> list[dict]:
    """One row per binary (endpoint, test) with an exact power; empty with a flow model (random arm sizes)."""
    return [dict(row) for row in _exact_rows(scenario.model_dump_json())]


@lru_cache(maxsize=1024)  # tables and reports ask for the same rows often
def _exact_rows(scenario_json: str) -> tuple[dict, ...]:
    model = build_model(Scenario.model_validate_json(scenario_json))
    rows = []
    for a in model.analysed:
        if a.kind != "binary":
            continue
        for test in a.tests:
            power = exact_binary_power(model, a.name, test)
            if power is not None:
                rows.append({"endpoint": a.name, "test": test, "power": power})
    return tuple(rows)


def no_effect(scenario: Scenario) -> Scenario:
    """``scenario`` with every analysed endpoint's effect parameter at its null (no treatment effect).

    Everything else stays, an unmasked assessor's bias included: the exact power of this scenario is
    the type I error the design would have.
    """
    values: dict = {}
    for a in build_model(scenario).analysed:
        e = a.effect
        if e is not None and e.assumed != e.null:
            values.update(scenario.endpoints[e.path.split(".")[1]].with_effect(e.path, float(e.null)))
    return with_values(scenario, values, source="no treatment effect") if values else scenario


def exact_sizes(scenario: Scenario) -> dict[tuple[str, str], float]:
    """(endpoint, test) -> exact type I error at the design's sizes and control rates (the exact power of
    :func:`no_effect`), for every binary pair with an exact power."""
    return {(r["endpoint"], r["test"]): r["power"] for r in _exact_rows(no_effect(scenario).model_dump_json())}
