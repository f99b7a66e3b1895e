"""Exact power of binary endpoints, from each family's own law of the endpoint in each arm.

Patients are independent and identically distributed within an arm (fixed arm sizes, no flow), so a
binary endpoint observed on an analysable patient is Bernoulli with the probability the family's
``binary_law`` gives, and the number analysable is Binomial. Exact enumeration over both then gives
the power the simulation must reproduce. Any family with a ``binary_law`` and any test with an
``exact_power`` take part; nothing here knows an endpoint by name.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from trialsim.analysis import registry as tests
from trialsim.analysis.binary import exact_power_cost
from trialsim.cache import cached_array
from trialsim.config.loader import with_values
from trialsim.config.schema import Scenario
from trialsim.designs.allocation import scheme
from trialsim.model import Model, build_model

# Exact figures that would enumerate more tables than this are left to the simulation (large arms
# with much missing data mix over thousands of analysable size pairs; minutes for one number).
EXACT_TABLE_BUDGET = 50_000_000


def exact_inputs(model: Model, endpoint: str, test: str) -> tuple | None:
    """The arguments of ``test``'s exact power on binary ``endpoint`` at the design's sizes
    (``p_control, p_treatment, n_control, n_treatment, alpha, (p_missing_control, p_missing_treatment)``),
    or None when there is no exact power (no formula, a flow, random arm sizes, arms chosen on the endpoint's
    covariates, no binary law, or more tables than :data:`EXACT_TABLE_BUDGET`)."""
    sc = model.scenario
    d = sc.design
    if tests.get(test).exact_power is None or sc.flow is not None:
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
    return (law_c.p_event, law_t.p_event, d.n_control, d.n_treatment, d.alpha, (law_c.p_missing, law_t.p_missing))


def exact_binary_power(model: Model, endpoint: str, test: str) -> float | None:
    """Exact power of ``test`` on binary ``endpoint`` at the design's sizes, or None when not available."""
    args = exact_inputs(model, endpoint, test)
    return None if args is None else tests.get(test).exact_power(*args)


def shipped_exact_power(test: str) -> bool:
    """Whether ``test``'s exact power is this package's own code (whose results the disk cache may keep: its key
    holds the package version; a plug-in's code can change under the same version)."""
    return tests.is_shipped(test) and tests.get(test).exact_power is not None


def plain(value):
    """``value`` as JSON-ready Python numbers (a cache key's text must not depend on numpy scalar types)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (tuple, list, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    return float(value)


def exact_powers(items: list[tuple[str, tuple]]) -> list[float | None]:
    """The exact power of each ``(test, exact_inputs)``; the shipped tests' values kept in the disk cache together
    (:func:`trialsim.cache.cached_array`, one small file per set of rows), so that a later command on the same
    design reads them instead of mixing hundreds of tables again (a third of a short run's time)."""
    out: list[float | None] = [None] * len(items)
    shipped = [i for i, (test, _) in enumerate(items) if shipped_exact_power(test)]
    for i, (test, args) in enumerate(items):
        if i not in set(shipped):
            out[i] = tests.get(test).exact_power(*args)
    if shipped:
        def build():
            values = (tests.get(items[i][0]).exact_power(*items[i][1]) for i in shipped)
            return np.array([np.nan if v is None else float(v) for v in values])

        key = {"rows": [[items[i][0], *plain(items[i][1])] for i in shipped]}
        values = cached_array("exact-power", key, build, dtype=np.float64, shape=(len(shipped),))
        for i, v in zip(shipped, values):
            out[i] = None if np.isnan(v) else float(v)
    return out


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
    wanted = [(a.name, test, exact_inputs(model, a.name, test)) for a in model.analysed if a.kind == "binary"
              for test in a.tests]
    wanted = [(name, test, args) for name, test, args in wanted if args is not None]
    powers = exact_powers([(test, args) for _, test, args in wanted])
    return tuple({"endpoint": name, "test": test, "power": power}
                 for (name, test, _), power in zip(wanted, powers) if power is not None)


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
