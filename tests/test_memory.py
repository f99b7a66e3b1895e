"""Bounded memory: block size from a memory budget (never silently changing a user's block size),
runs that cannot fit refused before they start, and resident memory flat in the number of trials."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from trialsim.api import flow, run
from tests.conftest import DEFAULT_CONFIG
from trialsim.config.loader import load_scenario, with_values
from trialsim.engine import MemoryBudgetError, blocks_per_task, plan_layout, trial_bytes
from trialsim.engine.backends import execute
from trialsim.scenarios import ScenarioSpec
from trialsim.summarise import BlockSummary, Totals
from joblib.externals.loky import get_reusable_executor

ROOT = Path(__file__).resolve().parents[1]


def _spec(scenario, **values):
    return ScenarioSpec("base", with_values(scenario, values) if values else scenario, {})


def _big(default_scenario, per_arm):
    return _spec(default_scenario, **{"design.n_control": per_arm, "design.n_treatment": per_arm,
                                      "endpoints.leak_1m.tests": ["fisher", "chi2"], "run.block_size": None})


def test_ten_million_trials_of_the_default_design_fit_the_default_budget(default_scenario):
    layout = plan_layout([_spec(default_scenario)], n_sims=10_000_000, n_jobs=2, max_memory_mb=2048, block_size=1000)
    assert layout.block_size == 1000 and layout.n_workers == 2 and 2 * layout.block_mb < 2048 / 4
    unset = plan_layout([_spec(default_scenario)], n_sims=10_000_000, n_jobs=2, max_memory_mb=2048)
    assert unset.block_size == 1000 and unset.block_size_chosen


def test_two_thousand_per_arm_gets_a_block_size_from_the_budget_and_a_set_one_is_refused(default_scenario):
    spec = _big(default_scenario, 2000)
    layout = plan_layout([spec], n_sims=100_000, n_jobs=2, max_memory_mb=2048)
    assert layout.block_size_chosen and layout.block_size < 1000
    assert layout.block_mb <= 2048 / 4 and layout.n_workers == 2
    assert trial_bytes(spec) * layout.block_size <= 512 * 2**20
    # chosen from the design and the budget alone: the same for any number of workers or trials
    assert plan_layout([spec], n_sims=10, n_jobs=1, max_memory_mb=2048).block_size == layout.block_size
    with pytest.raises(MemoryBudgetError, match=r"run.block_size = 1,000: one block of this design \(4,000 patients\) "
                                                r"needs about [\d,]+ MB, over the memory budget run.max_memory_mb = 2,048 MB"):
        plan_layout([spec], n_sims=100_000, n_jobs=2, max_memory_mb=2048, block_size=1000)
    # a set block size that fits is kept, with fewer workers at once if need be
    kept = plan_layout([spec], n_sims=100_000, n_jobs=8, max_memory_mb=2048, block_size=200)
    assert kept.block_size == 200 and not kept.block_size_chosen and 1 <= kept.n_workers < 8


def test_a_run_that_cannot_fit_says_so_before_it_starts(default_scenario, tmp_path):
    sc = _big(default_scenario, 2000).scenario
    with pytest.raises(MemoryBudgetError, match="run.block_size = 1,000"):
        run(with_values(sc, {"run.block_size": 1000}), n_sims=100_000, seed=1, out=tmp_path / "a")
    assert not (tmp_path / "a" / "checkpoints").exists()
    with pytest.raises(MemoryBudgetError, match=r"the flow keeps 16 numbers per simulated trial .* 100,000,000 trials"):
        flow(default_scenario, n_sims=100_000_000, seed=1)


def test_the_block_size_chosen_is_recorded_and_resumed(default_scenario, tmp_path):
    sc = with_values(default_scenario, {"run.block_size": None})
    res = run(sc, n_sims=300, seed=1, n_jobs=1, max_memory_mb=64, out=tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["block_size"] == res.provenance["block_size"] == 100 and manifest["block_size_chosen"]
    assert res.provenance["block_size_chosen"]
    # the folder keeps its block size when resumed with another budget (it is part of the seed's meaning)
    again = run(sc, n_sims=300, seed=1, n_jobs=1, max_memory_mb=2048, out=tmp_path)
    assert again.provenance["block_size"] == 100 and again.provenance["blocks_computed"] == 0


def test_blocks_fold_in_block_order_whatever_order_they_arrive_in():
    blocks = [BlockSummary(b, 10, {"e|t": {"rejects": b, "valid": 10, "est_n": 10, "est_sum": 0.1 * b, "est_sumsq": 0.3,
                                           "err_sum": 1e-17 * b, "err_sumsq": 0.0, "covered": 1, "coverable": 2,
                                           "width_n": 2, "width_sum": 0.5 + 1e-17 * b, "width_sumsq": 0.2}},
                           {"e|a|m": 0.1 + b}, {"e|a|m": 1.0}, {"e|a|m": 10}, {"t_last": [float(b)] * 10})
              for b in range(7)]
    in_order = Totals.combine(blocks)
    shuffled = Totals.combine(blocks[::-1])
    for attr in ("n_sims", "tests", "est_sum", "est_sumsq", "est_count"):
        assert getattr(in_order, attr) == getattr(shuffled, attr)
    assert in_order.flow["t_last"].tolist() == shuffled.flow["t_last"].tolist()
    assert in_order.n_sims == 70 and list(in_order.flow["t_last"][::10]) == list(range(7))
    grown = Totals(capacity=5)  # fewer trials announced than added: the flow arrays grow
    for b in blocks:
        grown.add(b)
    assert grown.finished().flow["t_last"].tolist() == in_order.flow["t_last"].tolist()


PROFILE = """
import json, sys
from trialsim.api import run
from trialsim.config.loader import load_scenario, with_values

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # MB

sc = with_values(load_scenario(sys.argv[1]), {"run.block_size": None})
out = {}
for n_sims in (200, 2_000, 60_000):
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current resident size
    res = run(sc, n_sims=n_sims, seed=1, n_jobs=1, max_memory_mb=64, out=sys.argv[2] + str(n_sims))
    out[n_sims] = {"peak_mb": status("VmHWM"), "block_size": res.provenance["block_size"]}
print(json.dumps(out))
"""


def test_a_run_under_a_small_budget_completes_with_flat_memory(tmp_path):
    proc = subprocess.run([sys.executable, "-c", PROFILE, str(ROOT / "configs" / "exosome_lar_20.toml"), str(tmp_path / "r")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    profile = {int(k): v for k, v in json.loads(proc.stdout).items()}
    assert {p["block_size"] for p in profile.values()} == {100}  # chosen from the 64 MB budget
    # 20 blocks, then 600: the peak resident memory does not grow with the trials (it did: every block's
    # summary was kept to the end)
    growth = profile[60_000]["peak_mb"] - profile[2_000]["peak_mb"]
    assert growth < 5, profile


def test_tasks_are_small_enough_to_keep_every_worker_busy():
    # 10,000 trials in blocks of 1,000 on 2 workers: 5 tasks of 2 blocks, not one task of 10
    assert blocks_per_task(10, n_workers=2, chunk_blocks=10) == 2
    assert blocks_per_task(10_000, n_workers=2, chunk_blocks=10) == 10  # chunk_blocks stays the ceiling
    assert blocks_per_task(1, n_workers=8, chunk_blocks=10) == 1


def test_the_flow_estimate_grows_with_referrals_per_enrolment():
    """The flow's arrays scale with referrals (screened, clocks, masks): fewer consents, more memory per trial."""
    base = load_scenario(DEFAULT_CONFIG)
    easy, hard = (ScenarioSpec("s", with_values(base, {"flow": {"p_eligible": 0.75, "p_consent": c}}), {}) for c in (0.65, 0.1))
    assert trial_bytes(hard) - trial_bytes(easy) == pytest.approx(20 * (75 / (0.75 * 0.1) - 512), abs=2)


@pytest.mark.parametrize("config", sorted(p.name for p in (Path(DEFAULT_CONFIG).parent).glob("*.toml"))
                         + sorted("designs/" + p.name for p in (Path(DEFAULT_CONFIG).parent / "designs").glob("*.toml")))
def test_every_shipped_config_with_the_default_flow_fits_its_budget(config):
    """`trialsim compare` adds the default [flow] to each design: every shipped block size must still fit."""
    sc = load_scenario(Path(DEFAULT_CONFIG).parent / config)
    if sc.flow is None and any(getattr(e, "gives_stays", False) for e in sc.endpoints.values()):
        sc = with_values(sc, {"flow": {}})
    plan_layout([ScenarioSpec("s", sc, {})], n_sims=10_000, n_jobs=2, max_memory_mb=sc.run.max_memory_mb,
                block_size=sc.run.block_size)


# ---------------------------------------------------------------------------------------------------
# worker processes: kept for the whole command while their memory is bounded
# ---------------------------------------------------------------------------------------------------
_HELD: list[np.ndarray] = []  # in a worker: what its tasks keep, as caches do
HELD_MB = 80


def _hold_and_fragment(seconds: float) -> int:
    """Keep HELD_MB (as a cache would) and free many mid-sized arrays (as tables do), in a loky worker."""
    _HELD.append(np.ones(HELD_MB * 2**17))
    for _ in range(200):
        np.ones(2**17)  # 1 MB each, freed at once
    time.sleep(seconds)  # loky checks a worker's memory at most once a second
    return os.getpid()


def test_loky_workers_growing_by_bounded_caches_are_not_replaced():
    """Loky replaces a worker grown by 300 MB since its first task; trialsim's workers grow by their caches and
    imports (bounded), so they are kept: six tasks keeping 80 MB each per worker (320 MB over the first by the
    fifth) would otherwise have both workers replaced, each importing its libraries again and losing its caches."""
    get_reusable_executor().shutdown(wait=True)  # fresh workers, whose first task sets the reference
    try:
        pids = list(execute(_hold_and_fragment, [(1.1,)] * 12, n_tasks=12, backend="loky", n_workers=2, batch_size=1))
        assert len(pids) == 12
        assert len(set(pids)) <= 2, f"workers replaced: {len(set(pids))} processes served 12 tasks on 2 workers"
    finally:
        get_reusable_executor().shutdown(wait=True)  # the held memory goes with them


def test_free_memory_is_kept_up_to_the_bound_and_handed_back_above_it():
    """A task's end keeps the allocator's free memory while the process has grown by at most ``keep`` since it last
    handed memory back (the next task reuses it instead of faulting fresh pages in), and hands all of it back once it
    has grown more; with the default bound too. In a fresh process: the allocator's state is its own."""
    code = """
import numpy as np
from trialsim.engine.malloc import KEEP_FREE_BYTES, release_memory, resident_bytes, tune_malloc

if not tune_malloc() or resident_bytes() is None:
    print("unsupported")
    raise SystemExit

def churn(mb):  # arrays of 8 MB (from the heap: below the tuned mmap threshold), freed at once
    arrays = [np.ones(2**20) for _ in range(mb // 8)]
    del arrays

release_memory()  # the first hand-back: sizes are measured from here
base = resident_bytes()
churn(128)
grown = resident_bytes()
release_memory()  # grown by 128 MB, under the default 256 MB: kept
kept = resident_bytes()
churn(512)
release_memory(keep=KEEP_FREE_BYTES)  # grown by 512 MB: handed back
print(base, grown, kept, resident_bytes())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    if out == ["unsupported"]:
        pytest.skip("the allocator is not glibc, or the system does not say a process's resident size")
    base, grown, kept, after = (int(v) for v in out)
    assert grown >= base + 100 * 2**20  # the freed arrays, held for reuse
    assert kept >= grown - 8 * 2**20  # under the bound: nothing handed back
    assert after <= base + 64 * 2**20  # over it: handed back
