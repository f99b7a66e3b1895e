"""Simulate one batch of trials end to end: patients -> (flow) -> observed endpoints -> tests -> block summary."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trialsim.analyse import TestOutcome, analyse, estimates
from trialsim.config.schema import Scenario
from trialsim.outcomes.patients import observe, simulate_arm
from trialsim.rng import block_rng

FLOW_TRIAL_FIELDS = (
    "t_first_enrolment", "t_last_enrolment", "t_last_followup", "n_referred", "n_screened", "n_eligible",
    "n_consented", "n_enrolled_control", "n_enrolled_treatment", "n_analysable_control", "n_analysable_treatment",
    "bed_days", "readmissions", "visit_window_misses", "reached_target", "closed_by_deadline",
)


@dataclass(frozen=True)
class TrialBatch:
    """Per-trial results of one batch: test outcomes, estimates and (with a flow model) the calendar."""

    tests: dict[tuple[str, str], TestOutcome]
    estimates: dict[tuple[str, str, str], np.ndarray]
    flow: dict[str, np.ndarray] | None = None
    event_log: object | None = None


def simulate_trials(scenario: Scenario, n_sims: int, *, rng: np.random.Generator, event_log: bool = False) -> TrialBatch:
    """Simulate ``n_sims`` trials of ``scenario`` with one Generator (vectorised over trials)."""
    n_c, n_t = scenario.design.n_control, scenario.design.n_treatment
    if scenario.flow is None:
        raw = {"control": simulate_arm(scenario, "control", n_sims, n_c, rng=rng),
               "treatment": simulate_arm(scenario, "treatment", n_sims, n_t, rng=rng)}
        obs = {arm: observe(scenario, raw[arm]) for arm in raw}
        flow_out, log = None, None
    else:
        from trialsim.flow.run import simulate_flow  # SimPy only when a flow is configured

        capacity = n_c + n_t  # random allocation can put more patients in one arm
        raw = {arm: simulate_arm(scenario, arm, n_sims, capacity, rng=rng) for arm in ("control", "treatment")}
        flow_inputs = {
            arm: {
                "los_days": raw[arm]["los_base_days"],
                "leak_day": raw[arm]["leak_day"],
                "leak_extra_days": raw[arm]["leak_extra_days"],
                "died": raw[arm]["died"].astype(float),
                "death_day": raw[arm]["death_day"],
            }
            for arm in raw
        }
        batch = simulate_flow(scenario.flow, n_control=n_c, n_treatment=n_t, outcomes=flow_inputs, rng=rng, event_log=event_log)
        obs = {
            arm: observe(scenario, raw[arm], enrolled=batch.enrolled[arm], visit_attended=batch.visit_attended[arm],
                         colonoscopy_done=batch.colonoscopy_done[arm])
            for arm in raw
        }
        flow_out = {name: np.asarray(getattr(batch, name), dtype=float) for name in FLOW_TRIAL_FIELDS}
        log = batch.event_log
    tests = analyse(scenario, obs["control"], obs["treatment"])
    est = estimates(scenario, obs["control"], obs["treatment"])
    return TrialBatch(tests=tests, estimates=est, flow=flow_out, event_log=log)


def key(*parts: str) -> str:
    return "|".join(parts)


@dataclass
class BlockSummary:
    """Sums over one block of trials: enough to combine blocks exactly, in block order."""

    block: int
    n_sims: int
    rejects: dict[str, int] = field(default_factory=dict)
    valid: dict[str, int] = field(default_factory=dict)
    est_sum: dict[str, float] = field(default_factory=dict)
    est_sumsq: dict[str, float] = field(default_factory=dict)
    est_count: dict[str, int] = field(default_factory=dict)
    flow: dict[str, list[float]] | None = None

    def to_json(self) -> dict:
        return self.__dict__.copy()

    @classmethod
    def from_json(cls, data: dict) -> "BlockSummary":
        return cls(**data)


def summarise_batch(batch: TrialBatch, *, block: int, n_sims: int) -> BlockSummary:
    out = BlockSummary(block=block, n_sims=n_sims)
    for (ep, test), res in batch.tests.items():
        out.rejects[key(ep, test)] = int(np.count_nonzero(res.reject))
        out.valid[key(ep, test)] = int(np.count_nonzero(~np.isnan(res.pvalue)))
    for parts, values in batch.estimates.items():
        ok = ~np.isnan(values) & np.isfinite(values)
        k = key(*parts)
        out.est_sum[k] = float(np.sum(values[ok]))
        out.est_sumsq[k] = float(np.sum(values[ok] ** 2))
        out.est_count[k] = int(np.count_nonzero(ok))
    if batch.flow is not None:
        out.flow = {name: values.tolist() for name, values in batch.flow.items()}
    return out


def simulate_block(scenario: Scenario, seed: int, block: int, n_sims: int) -> BlockSummary:
    """The unit of work: block ``block`` of a run, on its own random stream."""
    batch = simulate_trials(scenario, n_sims, rng=block_rng(seed, block))
    return summarise_batch(batch, block=block, n_sims=n_sims)
