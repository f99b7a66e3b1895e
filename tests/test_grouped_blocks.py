"""Several blocks simulated in one batch give each trial the numbers of its block simulated alone.

A worker simulates up to ``GROUP_BLOCKS`` consecutive blocks at once (fewer numpy calls for the same work):
each block keeps its own random streams (:class:`trialsim.rng.BlockDraws`), each trial's statistics are its
own (tests that do not promise that run one block per call), and each block is summarised on its own
trials. Checked to the last bit on every shipped config, on whole runs and on a plug-in test whose values
depend on the other trials of its call.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import trialsim.engine.memory as memory
from trialsim.analysis import registry
from trialsim.analysis.registry import TrialStats
from trialsim.api import run
from trialsim.config.loader import load_scenario
from trialsim.decide import decide, multiplicity
from trialsim.engine.memory import plan_layout
from trialsim.engine.runner import _runs
from trialsim.rng import BlockDraws, Streams, patient_major
from trialsim.scenarios import ScenarioSpec
from trialsim.simulate import groupable, simulate_trials
from trialsim.summarise import summarise_batch, summarise_blocks

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in [*ROOT.glob("configs/*.toml"), *ROOT.glob("configs/designs/*.toml")])


def _same(a, b) -> bool:
    """Equal to the last bit (dtype, shape and bytes; NaN equal to the same NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def _joined(parts) -> np.ndarray:
    return np.concatenate([np.asarray(p) for p in parts], axis=-1)


# ------------------------------------------------------------------------------------------ draws
def test_block_draws_are_each_blocks_own_draws_side_by_side(loops):
    sizes = (5, 3, 5)
    joined = Streams(7, 4, sizes=sizes)("endpoint", "x")
    alone = [Streams(7, 4 + i)("endpoint", "x") for i in range(len(sizes))]
    got = patient_major(joined, "standard_normal", sum(sizes), 6, extra=(2,))
    want = np.concatenate([patient_major(g, "standard_normal", m, 6, extra=(2,)) for g, m in zip(alone, sizes)], axis=1)
    assert got.shape == (6, 13, 2) and _same(got, want)
    got = joined.normal(1.0, 2.0, (13, 4))  # trials first, size positional
    want = np.concatenate([g.normal(1.0, 2.0, (m, 4)) for g, m in zip(alone, sizes)])
    assert _same(got, want)


def test_block_draws_refuse_what_they_cannot_place():
    draws = Streams(1, 0, sizes=(4, 4))("population")
    assert isinstance(draws, BlockDraws)
    with pytest.raises(ValueError, match="8"):
        draws.random((3, 8))  # the trials must come first
    with pytest.raises(ValueError, match="8"):
        patient_major(draws, "random", 9, 3)
    with pytest.raises(AttributeError, match="binomial"):
        draws.binomial(3, 0.5, 8)


def test_runs_are_consecutive_blocks_of_one_size_at_most_group_long():
    blocks = [(0, 10), (1, 10), (2, 10), (3, 10), (4, 10), (6, 10), (7, 10), (8, 4)]
    assert _runs(blocks, 3) == [[(0, 10), (1, 10), (2, 10)], [(3, 10), (4, 10)], [(6, 10), (7, 10)], [(8, 4)]]
    assert _runs(blocks, 1) == [[b] for b in blocks]


# ------------------------------------------------------------------------------ every shipped config
def _fields(stats: TrialStats) -> list[np.ndarray]:
    return [stats.reject, stats.valid, stats.estimate, stats.pvalue, *stats.ci(), stats.widths()]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_a_batch_of_blocks_gives_every_block_its_own_bits(config, loops):
    scenario = load_scenario(config)
    if scenario.flow is not None:
        assert not groupable(scenario)
        return
    sizes = (150, 150, 150)
    batch = simulate_trials(scenario, sum(sizes), streams=Streams(11, 3, sizes=sizes))
    alone = [simulate_trials(scenario, m, streams=Streams(11, 3 + i)) for i, m in enumerate(sizes)]
    for key, stats in batch.stats.items():
        parts = [_fields(b.stats[key]) for b in alone]
        for i, got in enumerate(_fields(stats)):
            assert _same(got, _joined(p[i] for p in parts)), (config.stem, key, i)
    for key, values in batch.arm_estimates.items():
        assert _same(values, _joined(b.arm_estimates[key] for b in alone)), (config.stem, key)
    blocks = [(3 + i, m) for i, m in enumerate(sizes)]
    if groupable(scenario):  # decided at once, summarised per block: each block's own summary
        together = summarise_blocks(batch, decide(batch), blocks)
        for summary, b, (block, _) in zip(together, alone, blocks):
            assert summary == summarise_batch(b, decide(b), block=block), (config.stem, block)


# ------------------------------------------------------------------------------------------- runs
def _run_tables(config, tmp_path: Path, group: int, monkeypatch, overrides=(), *, block_size: int = 200,
                n_sims: int = 2900) -> tuple:
    monkeypatch.setattr(memory, "GROUP_BLOCKS", group)
    kept = tmp_path / f"trials-{group}"
    result = run(config, overrides=[f"run.block_size={block_size}", *overrides], n_sims=n_sims, seed=8, n_jobs=1,
                 keep_trials=kept, sweep=False)
    tables = {p.relative_to(kept).as_posix(): pq.read_table(p).to_pydict() for p in sorted(kept.rglob("*.parquet"))}
    return result.power_rows(), result.estimate_rows(), result.decision_rows(), tables


@pytest.mark.parametrize("name", ["exosome_lar_20", "designs/stratified_40", "leak_powered"])
def test_a_run_is_the_same_with_blocks_simulated_together_or_alone(name, tmp_path, monkeypatch):
    """15 blocks of 200 (the last of 100) in tasks of 4: runs of up to 4 blocks, then each block alone. The
    stratified design's adjusted tests and the 400-patient design's Fisher test (p-values and odds ratios per
    distinct table of a call) are run one block per call; everything else once per run of blocks."""
    config = ROOT / "configs" / f"{name}.toml"
    together = _run_tables(config, tmp_path, 4, monkeypatch)
    alone = _run_tables(config, tmp_path, 1, monkeypatch)
    assert len(together[3]) == 15
    assert repr(together) == repr(alone)  # floats to the last digit, NaN included


def _batch_dependent(spec):
    """A test whose estimate is centred on the mean of its call's trials: not trial-wise."""
    def run_it(x_control, x_treatment, alpha, **kwargs):
        s = spec.run(x_control, x_treatment, alpha, **kwargs)
        estimate = s.estimate - np.nanmean(s.estimate, axis=-1, keepdims=True)
        return TrialStats(reject=s.reject, valid=s.valid, estimate=estimate, pvalue=s.pvalue, alpha=alpha)
    return run_it


@pytest.mark.parametrize("promised", [0, np.inf])
def test_a_test_that_promises_nothing_is_called_one_block_at_a_time(promised, tmp_path, monkeypatch):
    """A plug-in's default (trialwise_up_to = 0) keeps each block's values its own; the same test claiming
    trial-wise values would be given several blocks at once, and its numbers would change: the check is sharp."""
    welch = registry.TESTS.get("welch_log")
    plug_in = dataclasses.replace(welch, run=_batch_dependent(welch), trialwise_up_to=promised)
    original = registry.TESTS.get
    monkeypatch.setattr(registry.TESTS, "get", lambda name: plug_in if name == "welch_log" else original(name))
    config = ROOT / "configs" / "cytokine_pilot.toml"
    together = _run_tables(config, tmp_path, 4, monkeypatch)
    alone = _run_tables(config, tmp_path, 1, monkeypatch)
    assert (repr(together) == repr(alone)) == (promised == 0)


def test_the_group_shrinks_to_what_the_memory_budget_holds():
    spec = ScenarioSpec("base", load_scenario(ROOT / "configs" / "exosome_lar_20.toml"), {})
    roomy = plan_layout([spec], n_sims=10**6, n_jobs=2, max_memory_mb=2048, block_size=1000)
    assert roomy.group == memory.GROUP_BLOCKS
    tight = plan_layout([spec], n_sims=10**6, n_jobs=2, max_memory_mb=int(2.5 * roomy.block_mb) + 1, block_size=1000)
    assert tight.n_workers == 2 and tight.group == 1


@pytest.mark.parametrize("name, overrides", [("exosome_lar_20", ["allocation.scheme=simple"]),
                                              ("designs/stratified_40", []), ("designs/minimisation_40", [])])
def test_blocks_of_one_trial_are_the_same_together_or_alone(name, overrides, tmp_path, monkeypatch):
    """A block of one trial of a randomised scheme has the same arms in "every" trial; its arms are still laid out
    as the scheme's (not as fixed columns), so that batching four such blocks changes no bit (it changed the last
    bits of sums, and so results with n_jobs, before the layout was taken from the scheme)."""
    config = ROOT / "configs" / f"{name}.toml"
    together = _run_tables(config, tmp_path, 4, monkeypatch, overrides, block_size=1, n_sims=40)
    alone = _run_tables(config, tmp_path, 1, monkeypatch, overrides, block_size=1, n_sims=40)
    assert repr(together) == repr(alone)


class _OwnCoverage(TrialStats):
    """A plug-in's statistics with an interval judged its own way (here: never covering below the median)."""

    def covers(self, truth):
        return super().covers(truth) & (self.estimate >= np.nanmedian(self.estimate))


def test_a_plug_in_tests_own_statistics_class_keeps_its_behaviour_in_a_batch(tmp_path, monkeypatch):
    """Run one block per call, a plug-in test's results are joined so that each block's own object still answers
    (its coverage here depends on its call's trials: the same numbers only if each block answers for itself)."""
    chi2 = registry.TESTS.get("chi2")

    def run_it(x_control, x_treatment, alpha, **kwargs):
        s = chi2.run(x_control, x_treatment, alpha, **kwargs)
        return _OwnCoverage(reject=s.reject, valid=s.valid, estimate=s.estimate, pvalue=s.pvalue, alpha=alpha, ci=s.ci())

    plug_in = dataclasses.replace(chi2, run=run_it, trialwise_up_to=0)
    original = registry.TESTS.get
    monkeypatch.setattr(registry.TESTS, "get", lambda name: plug_in if name == "chi2" else original(name))
    config = ROOT / "configs" / "exosome_lar_20.toml"
    together = _run_tables(config, tmp_path, 4, monkeypatch)
    alone = _run_tables(config, tmp_path, 1, monkeypatch)
    assert repr(together) == repr(alone)


def test_a_plug_in_multiplicity_method_keeps_blocks_apart(tmp_path, monkeypatch):
    """A multiplicity method of a plug-in could judge each trial against the others of its call: with one, blocks are
    decided one at a time."""
    holm = multiplicity.MULTIPLICITY_METHODS.get("holm")
    plug_in = dataclasses.replace(holm, reject=lambda p, alpha: p <= np.quantile(p, 0.05))
    original = multiplicity.MULTIPLICITY_METHODS.get
    monkeypatch.setattr(multiplicity.MULTIPLICITY_METHODS, "get", lambda name: plug_in if name == "holm" else original(name))
    config = ROOT / "configs" / "designs" / "holm_secondaries_20.toml"
    together = _run_tables(config, tmp_path, 4, monkeypatch)
    alone = _run_tables(config, tmp_path, 1, monkeypatch)
    assert repr(together) == repr(alone)
