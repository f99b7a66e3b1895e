"""Exact power of the binary endpoints, from the model's own marginal probabilities.

Patients are independent and identically distributed within an arm, so a binary endpoint observed on
an analysable patient is Bernoulli with the probability computed here, and the number analysable is
Binomial. Exact enumeration over both then gives the power the simulation must reproduce.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from trialsim.analysis.binary import exact_power, exact_power_cost
from trialsim.config.schema import Scenario
from trialsim.endpoints import endpoints
from trialsim.outcomes.leak import arm_rates


@dataclass(frozen=True)
class BinaryLaw:
    """An arm's binary endpoint: P(event | analysable) and P(not analysable)."""

    p_event: float
    p_missing: float


def _status_weights(scenario: Scenario, arm: str) -> tuple[np.ndarray, np.ndarray]:
    """P(no leak), P(leak) and the chance of being alive at 30 days in each state."""
    leak = arm_rates(scenario.leak, arm).all_grade
    fu = scenario.follow_up
    return np.array([1.0 - leak, leak]), np.array([1.0 - fu.p_death_30d_no_leak, 1.0 - fu.p_death_30d_leak])


def binary_law(scenario: Scenario, endpoint: str, arm: str) -> BinaryLaw:
    """The exact law of a binary endpoint in an arm (no flow model: fixed arm sizes)."""
    weights, alive = _status_weights(scenario, arm)
    miss_visit = scenario.follow_up.p_missing_1m_visit
    if endpoint == "leak_1m":
        detected = arm_rates(scenario.leak, arm).endpoint
        # lost = visit missed and alive; a death is analysed from the records
        p_analysable = 1.0 - miss_visit * float(weights @ alive)
        p_joint = detected * (1.0 - miss_visit * alive[1])
        return BinaryLaw(p_joint / p_analysable, 1.0 - p_analysable)
    colo = scenario.colonoscopy
    probs = np.array([colo.probs_no_leak, colo.probs_leak])
    if endpoint == "colonoscopy_abnormal":
        p_event_by_state = probs[:, colo.abnormal_index:].sum(axis=1)
    elif endpoint == "colonoscopy_worse_than_baseline":
        k = len(colo.grades)
        worse = np.greater.outer(np.arange(k), np.arange(k))  # [grade, baseline]
        p_event_by_state = np.array([p @ worse @ np.asarray(colo.baseline_probs) for p in probs])
    else:
        raise ValueError(f"no exact law for endpoint {endpoint!r}")
    done = weights * alive * (1.0 - miss_visit) * (1.0 - colo.p_missing)
    p_done = float(done.sum())
    return BinaryLaw(float(done @ p_event_by_state) / p_done, 1.0 - p_done)


# Exact figures that would enumerate more tables than this are left to the simulation (large arms
# with much missing data mix over thousands of analysable size pairs; minutes for one number).
EXACT_TABLE_BUDGET = 50_000_000


def exact_binary_power(scenario: Scenario, endpoint: str, test: str) -> float | None:
    """Exact power, or None when it would enumerate more than EXACT_TABLE_BUDGET tables."""
    law_c, law_t = binary_law(scenario, endpoint, "control"), binary_law(scenario, endpoint, "treatment")
    d = scenario.design
    if exact_power_cost(d.n_control, d.n_treatment, (law_c.p_missing, law_t.p_missing)) > EXACT_TABLE_BUDGET:
        return None
    return exact_power(test, law_c.p_event, law_t.p_event, d.n_control, d.n_treatment, alpha=d.alpha,
                       p_missing=(law_c.p_missing, law_t.p_missing))


def exact_rows(scenario: Scenario) -> list[dict]:
    """One row per binary (endpoint, test) with its exact power; empty with a flow model (random arm sizes)."""
    # keyed by the scenario's JSON: a scenario with a sweep holds a dict and is not hashable
    return [dict(row) for row in _exact_rows(scenario.model_dump_json())]


@lru_cache(maxsize=1024)  # tables and reports ask for the same rows often
def _exact_rows(scenario_json: str) -> tuple[dict, ...]:
    scenario = Scenario.model_validate_json(scenario_json)
    if scenario.flow is not None:
        return ()
    rows = []
    for e in endpoints(scenario):
        if e.family != "binary":
            continue
        for test in e.tests:
            power = exact_binary_power(scenario, e.name, test)
            if power is not None:
                rows.append({"endpoint": e.name, "test": test, "power": power})
    return tuple(rows)
