"""How many trials a block holds and how many blocks run at once, from a memory budget.

A block's arrays are ``(trials, patients)`` per simulated quantity, so its memory grows with both.
:func:`trial_bytes` estimates the peak memory of one simulated trial from the design alone (patients,
analysed endpoints, tests, flow): deterministic, so the block size chosen from it depends only on the
config and the budget, never on the machine or on ``n_jobs`` (the block size is part of the seed's
meaning: results are identical for any ``n_jobs`` and chunking, not for another block size).

* ``run.block_size`` set: kept if one block fits the budget, else the run is refused before it
  starts, with the largest block size that would fit.
* ``run.block_size`` not set: the largest size of :data:`LADDER` (at most 1,000) whose block takes at
  most a quarter of the budget; recorded in the run directory's manifest and the provenance.
* Then as many workers run at once as blocks fit in the budget (at most ``n_jobs``), and each simulates
  up to :data:`GROUP_BLOCKS` consecutive blocks in one batch as far as the budget holds them all
  (:func:`trialsim.engine.runner.simulate_blocks`: the same numbers, fewer numpy calls).

The budget is for the simulation's arrays and the flow's per-trial values; each Python process adds
its interpreter and libraries (about 150-200 MB, and about 90 MB more for numba's compiler in runs that use the
compiled loops, :mod:`trialsim.kernels`) on top, and up to
:data:`trialsim.engine.malloc.KEEP_FREE_BYTES` of free memory kept between its tasks.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence

from trialsim.analysis import registry as tests
from trialsim.config.loader import ConfigError
from trialsim.flow.run import TRIAL_FIELDS
from trialsim.model import build_model
from trialsim.scenarios import ScenarioSpec

DEFAULT_BLOCK_SIZE = 1000
LADDER = (1000, 800, 500, 400, 250, 200, 100, 80, 50, 40, 25, 20, 10, 8, 5, 4, 2, 1)
BLOCK_SHARE = 4  # a chosen block takes at most 1/4 of the budget, so several run at once
# Blocks simulated in one batch by a worker, at most: a default-design block of 1,000 trials costs 12.9-13.0 us a trial
# on its own, 11.7-12.1 with 2,000 or 4,000 trials in a batch and 12.3 with 8,000 (measured alternately, 1 core)
GROUP_BLOCKS = 4
MB = 2**20

# Peak bytes per patient per simulated trial, for each analysed endpoint (plus one for the patients'
# own draws): measured 87 to 100 on every shipped design at 50 to 2,000 patients per arm (tracemalloc);
# 100 per endpoint plus one leaves a margin of 10-50%. The flow (draws and their walk on arrays) peaks at
# about 500 bytes per patient with the default 2.1 referrals per enrolment, 710 at 10 and 2,370 at 33
# (tracemalloc, 200 trials of 100 per arm): the larger of 512 and 75 per referral per enrolment assumed
# (512 at the default, as for the SimPy processes before). Each (endpoint, test) pair keeps its p-value,
# estimate, interval and decision per trial.
BYTES_PER_PATIENT_ENDPOINT = 100
BYTES_PER_PATIENT_FLOW = 512
BYTES_PER_REFERRAL = 75
BYTES_PER_PAIR = 1024
# Adjusted tests (TestSpec.needs_covariates) hold per patient a design row of p = adjust_for + 2 terms and
# its weighted copy: peak 28 (logistic) and 21 (Mantel-Haenszel) bytes per patient per term measured with
# tracemalloc at 356 per arm and 6 covariates; 32 assumed. They run one after another, so one counts.
BYTES_PER_PATIENT_ADJUSTED_TERM = 32
FLOW_BYTES_PER_TRIAL = 8 * len(TRIAL_FIELDS)  # the per-trial flow values kept to the end of the run


class MemoryBudgetError(ConfigError):
    """The run cannot fit in the memory budget: said before it starts."""


@dataclass(frozen=True)
class Layout:
    """How a run is cut: trials per block, workers at once, and what that costs."""

    block_size: int
    block_size_chosen: bool  # True when picked from the budget (``run.block_size`` not set)
    block_mb: float  # estimated peak memory of one block
    flow_mb: float  # the flow's per-trial values kept by the main process
    n_workers: int
    budget_mb: int
    group: int = 1  # consecutive blocks a worker simulates in one batch (where the scenario allows)


def trial_bytes(spec: ScenarioSpec) -> int:
    """Estimated peak memory (bytes) of one simulated trial of a scenario, from its design alone."""
    sc = spec.scenario
    model = build_model(sc)
    patients = sc.design.n_control + sc.design.n_treatment
    per_patient = BYTES_PER_PATIENT_ENDPOINT * (len(model.analysed) + 1)
    if sc.flow is not None:
        per_patient += max(BYTES_PER_PATIENT_FLOW, BYTES_PER_REFERRAL / (sc.flow.p_eligible * sc.flow.p_consent))
    if any(tests.get(t).needs_covariates for a in model.analysed for t in a.tests):
        per_patient += BYTES_PER_PATIENT_ADJUSTED_TERM * (len(model.adjust_for) + 2)
    return math.ceil(patients * per_patient) + BYTES_PER_PAIR * len(model.pairs())


def workers(n_jobs: int) -> int:
    """``n_jobs`` as a number of processes (-1: every core)."""
    return max(1, os.cpu_count() or 1) if n_jobs == -1 else max(1, n_jobs)


def plan_layout(specs: Sequence[ScenarioSpec], *, n_sims: int, n_jobs: int, max_memory_mb: int,
                block_size: int | None = None, recorded_block_size: int | None = None) -> Layout:
    """The block size and number of concurrent workers of a run, or a :class:`MemoryBudgetError`.

    ``block_size`` is the user's (``run.block_size``); ``recorded_block_size`` the one a run
    directory's manifest holds (an interrupted run resumes with it).
    """
    per_trial = max(trial_bytes(s) for s in specs)
    flow_mb = FLOW_BYTES_PER_TRIAL * n_sims * sum(s.scenario.flow is not None for s in specs) / MB
    room = max_memory_mb - flow_mb
    fit = int(room * MB // per_trial) if room > 0 else 0  # trials in one block that fit at all
    if flow_mb and fit < 1:
        raise MemoryBudgetError(
            f"the flow keeps {len(TRIAL_FIELDS)} numbers per simulated trial (its quantiles and flow_trials.csv need "
            f"them): {n_sims:,} trials need about {flow_mb:,.0f} MB, over the memory budget run.max_memory_mb = "
            f"{max_memory_mb:,} MB; simulate fewer trials (--sims) or raise --max-memory")
    fixed = block_size if block_size is not None else recorded_block_size
    if fixed is not None:
        need = per_trial * min(fixed, n_sims) / MB
        if need > room:
            what = ("run.block_size" if block_size is not None
                    else "the block size recorded in the run folder (run.block_size unset)")
            raise MemoryBudgetError(
                f"{what} = {fixed:,}: one block of this design ({_patients(specs)} patients) needs about {need:,.0f} MB, "
                f"over the memory budget run.max_memory_mb = {max_memory_mb:,} MB"
                + (f" (of which the flow's per-trial values take {flow_mb:,.0f} MB)" if flow_mb else "")
                + (f". Set run.block_size to {fit:,} or less (the block size is part of the seed's meaning: "
                   f"results then differ from block_size {fixed:,}), or raise --max-memory (run.max_memory_mb)" if fit >= 1
                   else f". Not even one trial fits (about {per_trial / MB:,.0f} MB each): raise --max-memory "
                        f"(run.max_memory_mb) to at least {math.ceil(flow_mb + 2 * per_trial / MB):,} MB"))
        chosen = False
    else:
        share = min(room, max_memory_mb / BLOCK_SHARE)
        fixed = next((size for size in LADDER if per_trial * size <= share * MB), None)
        if fixed is None:
            raise MemoryBudgetError(
                f"one simulated trial of this design ({_patients(specs)} patients) needs about {per_trial / MB:,.0f} MB, "
                f"more than a quarter of the memory budget run.max_memory_mb = {max_memory_mb:,} MB; raise --max-memory")
        chosen = True
    block_mb = per_trial * min(fixed, n_sims) / MB
    at_once = max(1, int(room // block_mb)) if block_mb > 0 else workers(n_jobs)
    n_workers = min(workers(n_jobs), at_once)
    group = max(1, min(GROUP_BLOCKS, int(room // (n_workers * block_mb)))) if block_mb > 0 else GROUP_BLOCKS
    return Layout(fixed, chosen, block_mb, flow_mb, n_workers, max_memory_mb, group)


def blocks_per_task(n_blocks: int, *, n_workers: int, chunk_blocks: int) -> int:
    """At most ``chunk_blocks`` blocks per task, and at least 4 tasks per worker when there are blocks enough."""
    return max(1, min(chunk_blocks, math.ceil(n_blocks / (4 * n_workers))))


def _patients(specs: Sequence[ScenarioSpec]) -> str:
    sizes = sorted({s.scenario.design.n_control + s.scenario.design.n_treatment for s in specs})
    return f"{sizes[0]:,}" if len(sizes) == 1 else f"up to {sizes[-1]:,}"
