"""The vectorised flow against SimPy: the same numbers, bit for bit, trial by trial, ties included."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trialsim.flow.run as flow_run
from trialsim.config.flow import FlowConfig
from trialsim.config.loader import load_scenario, with_values
from trialsim.designs.allocation import AllocationConfig, allocation_sequence
from trialsim.flow import FlowDraws, draw_flow, run_flow
from trialsim.flow.run import PER_PATIENT, TRIAL_FIELDS
from trialsim.rng import Streams
from trialsim.simulate import simulate_trials

MISSING = dict(p_missing_visit=0.03, p_missing_procedure=0.10)


def outcomes(rng, n_trials, n_max, *, whole_days, p_event=0.4, p_death=0.1, long_extra=False):
    """Stays, events and deaths; with ``whole_days`` every time is a whole day, so events often coincide with slots."""
    out = {}
    for arm in ("control", "treatment"):
        shape = (n_trials, n_max)
        event, died = rng.random(shape) < p_event, rng.random(shape) < p_death
        if whole_days:
            stay, day = rng.integers(1, 10, shape).astype(float), rng.integers(1, 20, shape).astype(float)
            extra, death = rng.integers(0, 8, shape).astype(float), rng.integers(1, 30, shape).astype(float)
        else:
            stay, day = 7.0 * np.exp(0.4 * rng.standard_normal(shape)), rng.uniform(1.0, 25.0, shape)
            extra = rng.uniform(0.0, 60.0 if long_extra else 10.0, shape)
            death = rng.uniform(1.0, 30.0, shape)
        out[arm] = {"stay_days": stay, "event_day": np.where(event, day, np.nan),
                    "event_extra_days": np.where(event, extra, 0.0), "died": died.astype(float),
                    "death_day": np.where(died, death, np.nan)}
    return out


def both(flow, n_control, n_treatment, seed, *, n_trials=60, whole_days=False, long_extra=False, scheme="simple"):
    rng = np.random.default_rng(seed)
    n = n_control + n_treatment
    out = outcomes(rng, n_trials, n, whole_days=whole_days, long_extra=long_extra)
    arms = allocation_sequence(AllocationConfig(scheme=scheme, block_size=2), n_trials=n_trials, n_control=n_control,
                               n_treatment=n_treatment, rng=rng)
    draws = draw_flow(flow, n_trials=n_trials, n_control=n_control, n_treatment=n_treatment, **MISSING,
                      is_treatment=arms, rng=rng)
    if whole_days:  # referrals on whole days too (several on one day)
        draws = FlowDraws(**{**draws.__dict__, "referral_days": np.floor(draws.referral_days)})
    kw = dict(n_control=n_control, n_treatment=n_treatment, outcomes=out)
    return run_flow(flow, draws, engine="simpy", **kw), run_flow(flow, draws, engine="vectorised", **kw)


def assert_same(a, b):
    for name in PER_PATIENT:
        for arm in ("control", "treatment"):
            np.testing.assert_array_equal(getattr(a, name)[arm], getattr(b, name)[arm], err_msg=f"{name} {arm}")
    for name in TRIAL_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@given(rate=st.floats(1.0, 60.0), beds=st.integers(1, 5), slots=st.integers(1, 12),
       deadline=st.one_of(st.none(), st.floats(20.0, 300.0)), screening=st.sampled_from([0.0, 3.0]),
       surgery=st.sampled_from([3.0, 7.0, 14.0]), n_control=st.integers(1, 12), n_treatment=st.integers(1, 12),
       whole_days=st.booleans(), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_vectorised_flow_equals_simpy_bit_for_bit(rate, beds, slots, deadline, screening, surgery, n_control,
                                                  n_treatment, whole_days, seed):
    flow = FlowConfig(referrals_per_month=rate, beds=beds, or_slots_per_week=slots, deadline_days=deadline,
                      days_referral_to_screening=screening, days_referral_to_surgery=surgery)
    assert_same(*both(flow, n_control, n_treatment, seed, whole_days=whole_days))


@pytest.mark.parametrize("beds, slots, n, long_extra", [(1, 10, 150, True), (5, 70, 120, True), (3, 4, 200, False)])
def test_large_trials_and_a_full_ward_agree(beds, slots, n, long_extra):
    # many patients: the bed count's window must widen (readmissions long after surgery), and a full ward
    # with many slots makes the walk skip lost slots
    flow = FlowConfig(referrals_per_month=300.0, p_eligible=1.0, p_consent=1.0, beds=beds, or_slots_per_week=slots)
    simpy_batch, vectorised = both(flow, n, n, seed=beds * 100 + slots, n_trials=12, long_extra=long_extra)
    assert_same(simpy_batch, vectorised)
    assert vectorised.readmissions.sum() > 0


def test_a_disagreement_with_simpy_on_trial_0_stops_the_run(monkeypatch):
    walk = flow_run.walk_flow

    def off_by_a_day(*args, **kwargs):
        fields = walk(*args, **kwargs)
        fields["t_surgery"]["control"][0, 0] += 1.0
        return fields

    monkeypatch.setattr(flow_run, "walk_flow", off_by_a_day)
    with pytest.raises(RuntimeError, match="disagree on trial 0 .t_surgery"):
        both(FlowConfig(), 5, 5, seed=1)


def test_the_engine_gives_the_same_trials_with_either_flow_engine():
    base = with_values(load_scenario("configs/exosome_lar_20.toml"), {"flow": {}})  # the default [flow]
    batches = [simulate_trials(with_values(base, {"run.flow_engine": engine}), 300, streams=Streams(11, 0))
               for engine in ("simpy", "vectorised")]
    a, b = batches
    assert a.flow.keys() == b.flow.keys() and a.stats.keys() == b.stats.keys()
    for key in a.flow:
        np.testing.assert_array_equal(a.flow[key], b.flow[key], err_msg=key)
    for key in a.arm_estimates:
        np.testing.assert_array_equal(a.arm_estimates[key], b.arm_estimates[key], err_msg=str(key))
    for key, stats in a.stats.items():
        for field, value in vars(stats).items():
            if not isinstance(value, np.ndarray):  # interval routines and links to other statistics
                continue
            np.testing.assert_array_equal(value, vars(b.stats[key])[field], err_msg=f"{key} {field}")


def test_surgery_ready_the_day_of_screening_runs_in_simpy():
    # the clock reaches a screening by a sum that can round up past referral + delay: SimPy refused the
    # negative wait ("Negative delay -1.4e-14") before processes.until
    flow = FlowConfig(referrals_per_month=1.0, beds=1, or_slots_per_week=1, days_referral_to_screening=3.0,
                      days_referral_to_surgery=3.0)
    assert_same(*both(flow, 1, 1, seed=0))


def test_hand_made_referrals_out_of_order_or_none_are_refused():
    rng = np.random.default_rng(0)
    draws = draw_flow(FlowConfig(), n_trials=3, n_control=2, n_treatment=2, **MISSING,
                      is_treatment=np.tile([False, False, True, True], (3, 1)), rng=rng)
    out = outcomes(rng, 3, 4, whole_days=False)
    shuffled = FlowDraws(**{**draws.__dict__, "referral_days": draws.referral_days[:, ::-1].copy()})
    with pytest.raises(ValueError, match="in time order"):
        run_flow(FlowConfig(), shuffled, n_control=2, n_treatment=2, outcomes=out)
    empty = FlowDraws(**{**draws.__dict__, "referral_days": draws.referral_days[:, :0]})
    with pytest.raises(ValueError, match="K >= 1"):
        run_flow(FlowConfig(), empty, n_control=2, n_treatment=2, outcomes=out)
