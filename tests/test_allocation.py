"""Allocation schemes: exact sequences for the deterministic ones, balance and randomness for the others."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trialsim.config.loader import ConfigError, with_values
from trialsim.config.schema import AllocationConfig
from trialsim.designs import Scheme, allocation_sequence, alternating, permuted_block, register, sequential, simple
from trialsim.registry import ALLOCATION_SCHEMES
from trialsim.rng import Streams
from trialsim.simulate import simulate_trials


def test_sequential_is_control_first():
    seq = sequential(np.arange(6), n_trials=2, n_control=2, n_treatment=4)
    assert seq.astype(int).tolist() == [[0, 0, 1, 1, 1, 1]] * 2


def test_alternating_until_the_smaller_arm_is_full():
    pos = np.arange(7)
    assert alternating(pos, n_trials=1, n_control=2, n_treatment=5).astype(int).tolist() == [[0, 1, 0, 1, 1, 1, 1]]
    assert alternating(pos, n_trials=1, n_control=5, n_treatment=2).astype(int).tolist() == [[0, 1, 0, 1, 0, 0, 0]]


@given(n_control=st.integers(0, 30), n_treatment=st.integers(0, 30), scheme=st.sampled_from(["sequential", "alternating"]))
@settings(max_examples=60, deadline=None)
def test_deterministic_schemes_fill_the_target_sizes_exactly(n_control, n_treatment, scheme):
    seq = allocation_sequence(AllocationConfig(scheme=scheme), n_trials=3, n_control=n_control, n_treatment=n_treatment,
                              rng=np.random.default_rng(0))
    assert seq.shape == (3, n_control + n_treatment)
    assert (seq.sum(axis=1) == n_treatment).all()


@given(block=st.integers(1, 6), ratio=st.tuples(st.integers(1, 3), st.integers(1, 3)), n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_permuted_blocks_hold_the_ratio_in_every_complete_block(block, ratio, n, seed):
    size = block * sum(ratio)
    seq = permuted_block(np.arange(n), n_trials=5, block_size=size, ratio=ratio, rng=np.random.default_rng(seed))
    complete = n // size
    per_block = seq[:, : complete * size].reshape(5, complete, size).sum(axis=2)
    assert (per_block == block * ratio[1]).all()
    # an incomplete last block can never be off by more than the block's own composition
    tail = seq[:, complete * size:].sum(axis=1)
    assert (tail <= block * ratio[1]).all() and (n - complete * size - tail <= block * ratio[0]).all()


def test_permuted_blocks_are_random_and_uniform_within_a_block():
    seq = permuted_block(np.arange(4), n_trials=20_000, block_size=4, ratio=(1, 1), rng=np.random.default_rng(1))
    # each of the 6 arrangements of 2 control + 2 treatment is equally likely
    codes = seq.astype(int) @ np.array([8, 4, 2, 1])
    counts = np.bincount(codes, minlength=16)[[3, 5, 6, 9, 10, 12]]
    expected = 20_000 / 6
    assert counts.sum() == 20_000
    assert np.all(np.abs(counts - expected) < 4 * math.sqrt(expected * (1 - 1 / 6)))


def test_simple_randomisation_has_the_allocation_probability():
    cfg = AllocationConfig(scheme="simple", ratio=(1, 3))
    seq = allocation_sequence(cfg, n_trials=5000, n_control=10, n_treatment=10, rng=np.random.default_rng(2))
    assert cfg.p_treatment == 0.75
    assert abs(seq.mean() - 0.75) < 4 * math.sqrt(0.75 * 0.25 / seq.size)
    assert len(np.unique(seq.sum(axis=1))) > 5  # arm sizes vary from trial to trial


@pytest.mark.parametrize("scheme", ["permuted_block", "simple"])
def test_an_arm_depends_only_on_position_and_the_rng_state(scheme):
    fn = {"permuted_block": lambda p, rng: permuted_block(p, n_trials=4, block_size=4, ratio=(1, 1), rng=rng),
          "simple": lambda p, rng: simple(p, n_trials=4, p_treatment=0.5, rng=rng)}[scheme]
    full = fn(np.arange(12), np.random.default_rng(3))
    some = fn(np.array([0, 5, 11]), np.random.default_rng(3))
    np.testing.assert_array_equal(some, full[:, [0, 5, 11]])
    np.testing.assert_array_equal(full, fn(np.arange(12), np.random.default_rng(3)))


def test_deterministic_schemes_do_not_touch_the_rng():
    rng = np.random.default_rng(4)
    state = rng.bit_generator.state
    allocation_sequence(AllocationConfig(), n_trials=2, n_control=3, n_treatment=3, rng=rng)
    assert rng.bit_generator.state == state


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="multiple"):
        permuted_block(np.arange(4), n_trials=1, block_size=3, ratio=(1, 1), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="p_treatment"):
        simple(np.arange(4), n_trials=1, p_treatment=1.5, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="position"):
        sequential(np.array([-1, 0]), n_trials=1, n_control=1, n_treatment=1)


def test_allocation_is_a_top_level_section_not_part_of_the_flow(default_scenario):
    assert default_scenario.allocation.scheme == "sequential"
    with pytest.raises(ConfigError, match="unknown key 'flow.allocation'"):
        with_values(default_scenario, {"flow": {"allocation": {"scheme": "simple"}}})


def _treatment_first(config, *, n_trials, n_control, n_treatment, covariates=None, rng=None):
    return np.broadcast_to(np.arange(n_control + n_treatment) < n_treatment, (n_trials, n_control + n_treatment)).copy()


register(Scheme("treatment_first", "treatment arm first (a test's own scheme)", False, _treatment_first,
                lambda config, n_control, n_treatment: True))


def test_a_scheme_registered_elsewhere_allocates_a_simulated_trial(default_scenario):
    sc = with_values(default_scenario, {"allocation.scheme": "treatment_first", "design.n_treatment": 6})
    batch = simulate_trials(sc, 5, streams=Streams(1, 0), keep_patients=True)
    assert batch.patients.treated.astype(int).tolist() == [[1] * 6 + [0] * 10] * 5
    assert {"sequential", "alternating", "permuted_block", "simple", "treatment_first"} <= set(ALLOCATION_SCHEMES.names())
