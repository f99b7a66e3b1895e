"""The one runner for every command: tasks, joblib/Dask backends, memory budget, progress, run directory.

* :mod:`~trialsim.engine.runner`: :func:`run_specs` (blocks over workers, folded in block order) and
  :func:`simulate_block`, the unit of work;
* :mod:`~trialsim.engine.backends`: in-process, joblib (loky, threads) and Dask, pools reused; :func:`map_calls`
  for exact work that is not simulated blocks;
* :mod:`~trialsim.engine.memory`: block size and workers from a memory budget;
* :mod:`~trialsim.engine.rundir`: the run folder (lock, manifest, checksummed checkpoints, atomic files).
* :mod:`~trialsim.engine.malloc`: glibc's allocator set to reuse freed arrays within a task.
"""
from trialsim.engine.backends import BACKENDS, close_backends, dask_client, map_calls
from trialsim.engine.memory import DEFAULT_BLOCK_SIZE, Layout, MemoryBudgetError, blocks_per_task, plan_layout, trial_bytes
from trialsim.engine.rundir import Checkpoint, RunDir, RunDirError, atomic_write, checksum, scenario_hash
from trialsim.engine.runner import Fold, Task, layout_of, resolve_seed, run_specs, run_task, simulate_block

__all__ = [
    "BACKENDS", "DEFAULT_BLOCK_SIZE", "Checkpoint", "Fold", "Layout", "MemoryBudgetError", "RunDir", "RunDirError",
    "Task", "atomic_write", "blocks_per_task", "checksum", "close_backends", "dask_client", "layout_of", "map_calls", "plan_layout", "resolve_seed",
    "run_specs", "run_task", "scenario_hash", "simulate_block", "trial_bytes",
]
