"""The block memo: grid points that share draws give, bit for bit, what each gives on its own, and a changed
upstream config value never reads a kept entry."""
from __future__ import annotations

import numpy as np
import pytest

from trialsim.config.loader import with_values
from trialsim.engine import run_specs
from trialsim.analysis import binary
from trialsim.memo import BlockMemo, bytes_cache
from trialsim.rng import Streams
from trialsim.scenarios import ScenarioSpec
from trialsim.simulate import simulate_trials

N_TRIALS = 200


def _batch(scenario, memo, *, block=1, seed=7):
    return simulate_trials(scenario, N_TRIALS, streams=Streams(seed, block, memo=memo), keep_patients=True)


def _assert_same(a, b):
    """Two batches with the same statistics, estimates and patients, bit for bit."""
    assert a.stats.keys() == b.stats.keys()
    for key, s in a.stats.items():
        t = b.stats[key]
        for x, y in ((s.reject, t.reject), (s.pvalue, t.pvalue), (s.estimate, t.estimate), *zip(s.ci(), t.ci())):
            np.testing.assert_array_equal(x, y, err_msg=str(key))
    assert a.arm_estimates.keys() == b.arm_estimates.keys()
    for key, x in a.arm_estimates.items():
        np.testing.assert_array_equal(x, b.arm_estimates[key], err_msg=str(key))
    for name, x in a.patients.observed.items():
        np.testing.assert_array_equal(x, b.patients.observed[name], err_msg=name)
    for cid, values in a.patients.latent.items():
        for name, x in values.items():
            np.testing.assert_array_equal(x, b.patients.latent[cid][name], err_msg=f"{cid}.{name}")


def _stats_equal(a, b) -> bool:
    return all(np.array_equal(s.pvalue, b.stats[k].pvalue, equal_nan=True) for k, s in a.stats.items() if k in b.stats)


# ---------------------------------------------------------------------------------------------- the memo itself
def test_kept_values_are_read_only_and_containers_fresh():
    memo = BlockMemo()
    calls = []

    def make():
        calls.append(1)
        return {"a": np.arange(5.0), "b": (np.ones(3, dtype=bool), 2)}

    first = memo.get("k", make)
    again = memo.get("k", make)
    assert len(calls) == 1 and memo.hits == 1 and memo.misses == 1
    np.testing.assert_array_equal(first["a"], again["a"])
    assert first is not again  # a fresh dict: a key added to one is not in the other
    again["c"] = 1
    assert "c" not in memo.get("k", make)
    with pytest.raises(ValueError):
        again["a"][0] = 9.0  # a kept array cannot be changed by whoever holds it
    assert memo.get("k", make)["a"][0] == 0.0


def test_memo_is_bounded_and_keeps_no_entry_above_a_quarter():
    memo = BlockMemo(max_bytes=8 * 100)
    big = memo.get("big", lambda: np.zeros(26))  # 208 bytes > 800 / 4: computed, not kept
    assert big.flags.writeable and len(memo) == 0
    for i in range(10):
        memo.get(i, lambda: np.zeros(20))  # 160 bytes each: at most 5 kept, the least recently used go first
    assert len(memo) == 5 and memo._bytes <= memo.max_bytes
    made = []
    memo.get(9, lambda: made.append(9))
    memo.get(0, lambda: made.append(0) or np.zeros(20))
    assert made == [0]  # 9 was kept, 0 was dropped


def test_values_with_other_objects_are_not_kept():
    memo = BlockMemo()
    memo.get("obj", lambda: {"x": np.array(["a"], dtype=object)})
    memo.get("set", lambda: {1, 2})
    assert len(memo) == 0


# ---------------------------------------------------------------------------------------------- in a simulation
EFFECT_GRID = [
    {"endpoints.cytokines.markers[2].treatment_gmr": v} for v in (0.5, 0.7, 1.0)
] + [{"endpoints.colonoscopy.treatment_odds_ratio": v} for v in (0.5, 2.0)] + [
    {"endpoints.los_days.treatment_ratio": 0.8}, {"endpoints.leak_1m.effect": 0.7}]


def test_grid_points_sharing_a_memo_give_what_each_gives_alone(default_scenario, loops):
    memo = BlockMemo()
    for values in [{}] + EFFECT_GRID + [{}]:
        sc = with_values(default_scenario, values)
        _assert_same(_batch(sc, memo), _batch(sc, None))
    assert memo.hits > 0


# Every value upstream of some step, changed: with a memo filled by the unchanged scenario, the changed one gives what
# it gives without a memo (no kept entry read for it), and differs from the unchanged one (so the check can fail).
UPSTREAM = [
    {"population.covariates[0].prevalence": 0.3},  # covariates -> everything
    {"allocation.scheme": "alternating"},  # arms -> every component
    {"design.n_control": 9, "design.n_treatment": 11},  # shape and arms
    {"design.masking": "none", "endpoints.leak_1m.assessor_bias.p_undercall_treatment": 0.3},  # the assessor's masking
    {"design.masking": "none"},  # the same scenario but for the assessor's masking: the leak's key differs
    {"endpoints.leak_1m.risk_factors[0].odds_ratio": 3.0},  # the leak -> markers, grades, stay, deaths
    {"endpoints.leak_1m.day_median": 4.0},  # the leak's day -> markers raised earlier
    {"endpoints.leak_1m.grade_split": [0.1, 0.3, 0.6]},  # grades -> stay, colonoscopy
    {"follow_up.p_death": 0.2},  # follow-up -> who is observed
    {"endpoints.cytokines.corr_days": 0.2},  # the markers' correlation (their shared levels)
    {"endpoints.cytokines.corr_days_step": 1.0},
    {"endpoints.cytokines.corr_groups": 0.1},
    {"endpoints.cytokines.markers[2].log_sd": 1.2},
    {"endpoints.cytokines.markers[2].median": [1000.0, 800.0, 600.0]},
    {"endpoints.cytokines.markers[2].event_gmr": [4.0, 5.0, 6.0]},
    {"endpoints.cytokines.days": [1, 2, 5], "endpoints.cytokines.markers[0].median": [60.0, 25.0, 12.0]},
]


@pytest.mark.parametrize("values", UPSTREAM, ids=lambda v: ",".join(v))
def test_a_changed_upstream_value_reads_no_kept_entry(default_scenario, values):
    memo = BlockMemo()
    before = _batch(default_scenario, memo)
    changed = with_values(default_scenario, values)
    got = _batch(changed, memo)
    _assert_same(got, _batch(changed, None))
    if values != {"design.masking": "none"}:  # (without an assessor bias an unmasked assessor changes nothing)
        assert not _stats_equal(got, before)


def test_another_block_or_seed_reads_no_kept_entry(default_scenario):
    memo = BlockMemo()
    _batch(default_scenario, memo)
    for block, seed in ((2, 7), (1, 8)):
        _assert_same(_batch(default_scenario, memo, block=block, seed=seed),
                     _batch(default_scenario, None, block=block, seed=seed))


def test_runs_of_several_scenarios_are_identical_to_each_alone(default_scenario):
    """Several scenarios in one run share draws through the memo; each one's totals are those of its run alone."""
    specs = [ScenarioSpec(f"p{i}", with_values(default_scenario, values), values)
             for i, values in enumerate(EFFECT_GRID[:4])]
    together = run_specs(specs, seed=3, n_sims=300, n_jobs=1)
    for spec, totals in zip(specs, together):
        alone = run_specs([spec], seed=3, n_sims=300, n_jobs=1)[0]
        for name, value in vars(totals).items():
            other = vars(alone)[name]
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(value, other, err_msg=name)
            elif isinstance(value, dict):
                assert value.keys() == other.keys()


def test_sections_holding_a_dict_are_keyed_by_their_values(crp_scenario):
    """A section pydantic cannot hash (a dict of covariate effects) is keyed by its JSON: a changed value is no hit."""
    memo = BlockMemo()
    _batch(crp_scenario, memo)
    cid, section = next((c, s) for c, s in crp_scenario.endpoints.items() if s.family == "plain_continuous")
    with pytest.raises(TypeError):
        hash(section)
    again = _batch(crp_scenario, memo)
    _assert_same(again, _batch(crp_scenario, None))
    changed = with_values(crp_scenario, {f"endpoints.{cid}.p_missing": 0.3})
    _assert_same(_batch(changed, memo), _batch(changed, None))


def test_bytes_cache_is_bounded_in_bytes_least_recent_first_and_keeps_nothing_too_large():
    calls = []

    @bytes_cache(30 * 2**20)
    def block(key: int, mb: int) -> np.ndarray:
        calls.append(key)
        return np.zeros(mb * 2**17)

    for key in range(4):  # 4 x 10 MB: the first goes
        block(key, 10)
    assert block.cache.currsize <= 30 * 2**20
    block(3, 10)
    block(0, 10)
    assert calls == [0, 1, 2, 3, 0]  # 3 was kept, 0 was not
    big = block(9, 40)
    assert big.size == 40 * 2**17 and block.cache.currsize <= 30 * 2**20  # returned, not kept
    block(9, 40)
    assert calls[-2:] == [9, 9]
    block.cache_clear()
    assert block.cache.currsize == 0


def test_exact_tables_are_cached_by_bytes_not_entries():
    """512 rejection regions at 1,000 per arm would hold 512 MB in every worker: the in-memory caches of tables,
    regions and Boschloo's statistics and grids are bounded in bytes."""
    for cached in (binary._pvalue_table_cached, binary._rejection_region_cached, binary._less_statistic,
                   binary._nuisance_grid, binary._banded_nuisance_grid):
        assert cached.cache.maxsize == binary._CACHE_BYTES
    binary._nuisance_grid.cache_clear()
    for n_total in range(600, 610):  # 10 grids of about 3.7 MB: 37 MB in all
        binary._nuisance_grid(n_total)
    assert 0 < binary._nuisance_grid.cache.currsize <= binary._CACHE_BYTES
    assert 1 < len(binary._nuisance_grid.cache) < 10  # several kept, the least recent gone
    binary._nuisance_grid.cache_clear()
