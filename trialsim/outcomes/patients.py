"""One arm's patients: risk factors -> leak -> cytokines, colonoscopy, stay, death and follow-up."""
from __future__ import annotations

import numpy as np

from trialsim.config.schema import Scenario
from trialsim.outcomes.colonoscopy import colonoscopy_endpoints, simulate_colonoscopy
from trialsim.outcomes.cytokines import endpoint_names, simulate_cytokines
from trialsim.outcomes.leak import arm_rates, simulate_leak
from trialsim.outcomes.population import draw_risk_factors, leak_risk
from trialsim.outcomes.stay import simulate_stay

ARMS = ("control", "treatment")


def simulate_arm(scenario: Scenario, arm: str, n_sims: int, n_patients: int, *, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every patient-level quantity of one arm, arrays of shape (n_sims, n_patients), before missingness."""
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
    treated = arm == "treatment"
    shape = (n_sims, n_patients)
    factors = draw_risk_factors(scenario.population, shape, rng=rng)
    risk = leak_risk(scenario.population, factors, arm_rates(scenario.leak, arm).all_grade)
    data = simulate_leak(scenario.leak, risk, rng=rng)
    data.update(simulate_cytokines(scenario.cytokines, data["leak_day"], treated=treated, rng=rng))
    data.update(simulate_colonoscopy(scenario.colonoscopy, data["leak"], rng=rng))
    data.update(simulate_stay(scenario.los, data["leak_grade"], treated=treated, rng=rng))
    fu = scenario.follow_up
    p_death = np.where(data["leak"], fu.p_death_30d_leak, fu.p_death_30d_no_leak)
    died = rng.random(shape) < p_death
    horizon = scenario.leak.horizon_days
    start = np.where(data["leak"], data["leak_day"], 1.0)
    data["died"] = died
    data["death_day"] = np.where(died, start + rng.random(shape) * np.maximum(horizon - start, 0.0), np.nan)
    data["visit_missing_u"] = rng.random(shape)
    return data


def observe(
    scenario: Scenario,
    data: dict[str, np.ndarray],
    *,
    enrolled: np.ndarray | None = None,
    visit_attended: np.ndarray | None = None,
    colonoscopy_done: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Endpoint arrays as the protocol would analyse them: float, NaN where not observed.

    Without a flow model every patient is enrolled, misses the 1-month visit with probability
    ``follow_up.p_missing_1m_visit`` (the leak endpoint is then missing: complete-case analysis; a
    patient who died is analysed, the leak being known from the records) and misses the colonoscopy
    with probability ``colonoscopy.p_missing`` or by death. With a flow model, ``enrolled``,
    ``visit_attended`` and ``colonoscopy_done`` come from the simulated calendar instead.
    """
    died = data["died"]
    if visit_attended is None:
        lost = (data["visit_missing_u"] < scenario.follow_up.p_missing_1m_visit) & ~died
    else:
        lost = ~visit_attended & ~died
    if colonoscopy_done is None:
        colonoscopy_done = ~died & ~lost & (data["colonoscopy_missing_u"] >= scenario.colonoscopy.p_missing)
    if enrolled is not None:
        lost = lost | ~enrolled
        colonoscopy_done = enrolled & colonoscopy_done
    out: dict[str, np.ndarray] = {
        "leak_1m": np.where(lost, np.nan, data["leak_detected"]),
        "los_days": _enrolled_only(np.log(data["los_days"]), enrolled),
    }
    for name in endpoint_names(scenario.cytokines):
        out[name] = _enrolled_only(data[name], enrolled)
    out.update(colonoscopy_endpoints(scenario.colonoscopy, data, colonoscopy_done))
    return out


def _enrolled_only(x: np.ndarray, enrolled: np.ndarray | None) -> np.ndarray:
    """``x`` with NaN for patients not enrolled; without a flow model everyone is, and ``x`` is not copied."""
    return x if enrolled is None else np.where(enrolled, x, np.nan)
