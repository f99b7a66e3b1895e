"""Simulate one batch of trials end to end: patients -> (flow) -> observed endpoints -> tests -> block summary."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trialsim.analyse import TestOutcome, analyse_batch
from trialsim.config.schema import Scenario
from trialsim.outcomes.patients import observe, simulate_arm
from trialsim.rng import block_rng



@dataclass(frozen=True)
class TrialBatch:
    """Per-trial results of one batch: test outcomes, estimates and (with a flow model) the calendar."""

    tests: dict[tuple[str, str], TestOutcome]
    estimates: dict[tuple[str, str, str], np.ndarray]
    flow: dict[str, np.ndarray] | None = None
    flow_batch: object | None = None  # trialsim.flow.run.FlowBatch: per-patient calendar, event log

    @property
    def event_log(self):
        return None if self.flow_batch is None else self.flow_batch.event_log


def simulate_trials(scenario: Scenario, n_sims: int, *, rng: np.random.Generator, event_log: bool = False) -> TrialBatch:
    """Simulate ``n_sims`` trials of ``scenario`` with one Generator (vectorised over trials)."""
    n_c, n_t = scenario.design.n_control, scenario.design.n_treatment
    if scenario.flow is None:
        raw = {"control": simulate_arm(scenario, "control", n_sims, n_c, rng=rng),
               "treatment": simulate_arm(scenario, "treatment", n_sims, n_t, rng=rng)}
        obs = {arm: observe(scenario, raw[arm]) for arm in raw}
        flow_out, log = None, None
    else:
        obs, batch = observe_with_flow(scenario, n_sims, rng=rng, event_log=event_log)
        flow_out = {name: np.asarray(values, dtype=float) for name, values in batch.per_trial().items()}
        log = batch
    tests, est = analyse_batch(scenario, obs["control"], obs["treatment"])
    return TrialBatch(tests=tests, estimates=est, flow=flow_out, flow_batch=log)


def observe_with_flow(scenario: Scenario, n_sims: int, *, rng: np.random.Generator, event_log: bool = False):
    """Patients of both arms through the SimPy flow: observed endpoints per arm and the FlowBatch.

    Outcomes are generated for ``n_control + n_treatment`` patients per arm (random allocation
    can put more in one arm); the k-th patient the flow allocates to an arm takes row k. Patients
    not enrolled, lost or out of the visit window have missing outcomes, as the protocol defines.
    """
    from trialsim.flow.run import simulate_flow  # SimPy only when a flow is configured

    n_c, n_t = scenario.design.n_control, scenario.design.n_treatment
    raw = {arm: simulate_arm(scenario, arm, n_sims, n_c + n_t, rng=rng) for arm in ("control", "treatment")}
    inputs = {
        arm: {"los_days": raw[arm]["los_base_days"], "leak_day": raw[arm]["leak_day"],
              "leak_extra_days": raw[arm]["leak_extra_days"], "died": raw[arm]["died"].astype(float),
              "death_day": raw[arm]["death_day"]}
        for arm in raw
    }
    batch = simulate_flow(scenario.flow, n_control=n_c, n_treatment=n_t, outcomes=inputs,
                          p_missing_visit=scenario.follow_up.p_missing_1m_visit,
                          p_missing_colonoscopy=scenario.colonoscopy.p_missing, rng=rng, event_log=event_log)
    obs = {
        arm: observe(scenario, raw[arm], enrolled=batch.enrolled[arm], visit_attended=batch.visit_attended[arm],
                     colonoscopy_done=batch.colonoscopy_done[arm])
        for arm in raw
    }
    return obs, batch


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
    # one (n_tests, n_sims) and one (n_estimates, n_sims) array: a few reductions instead of hundreds
    test_keys = [key(*parts) for parts in batch.tests]
    rejects = np.count_nonzero(_rows([res.reject for res in batch.tests.values()], n_sims), axis=1)
    valid = np.count_nonzero(_rows([res.valid for res in batch.tests.values()], n_sims), axis=1)
    out.rejects = dict(zip(test_keys, rejects.tolist()))
    out.valid = dict(zip(test_keys, valid.tolist()))
    values = _rows(list(batch.estimates.values()), n_sims)
    ok = np.isfinite(values)
    count = np.count_nonzero(ok, axis=1)
    total = values.sum(axis=1)  # the same pairwise sums as each row on its own
    total_sq = (values * values).sum(axis=1)
    for i in np.flatnonzero(count < n_sims):  # rows with a NaN or infinite estimate
        kept = values[i][ok[i]]
        total[i], total_sq[i] = np.sum(kept), np.sum(kept**2)
    est_keys = [key(*parts) for parts in batch.estimates]
    out.est_sum = dict(zip(est_keys, total.tolist()))
    out.est_sumsq = dict(zip(est_keys, total_sq.tolist()))
    out.est_count = dict(zip(est_keys, count.tolist()))
    if batch.flow is not None:
        out.flow = {name: values.tolist() for name, values in batch.flow.items()}
    return out


def _rows(arrays: list[np.ndarray], n_sims: int) -> np.ndarray:
    return np.stack(arrays) if arrays else np.zeros((0, n_sims))


def simulate_block(scenario: Scenario, seed: int, block: int, n_sims: int) -> BlockSummary:
    """The unit of work: block ``block`` of a run, on its own random stream."""
    batch = simulate_trials(scenario, n_sims, rng=block_rng(seed, block))
    return summarise_batch(batch, block=block, n_sims=n_sims)
