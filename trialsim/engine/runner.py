"""The runner: blocks of trials over workers, in any order, folded in block order as they arrive.

Work is cut into blocks of ``block_size`` trials, each on its own random streams (:mod:`trialsim.rng`),
so results are identical for any ``n_jobs``, chunking and backend; a task is a few consecutive
blocks of one scenario (at most ``chunk_blocks``, and small enough for 4 tasks per worker), handed out
the dearest first (:func:`dearest_first`); a worker simulates up to ``Layout.group`` consecutive blocks of a
task in one batch, each trial with its own block's numbers (:func:`simulate_blocks`). Each
finished block is written to the run folder's checkpoint (when there is one), then folded into its
scenario's running totals; blocks that arrive early wait for their turn, so memory stays flat in
the number of trials.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from trialsim import kernels
from trialsim.decide import decide
from trialsim.engine.backends import dask_client, execute
from trialsim.engine.malloc import tune_malloc
from trialsim.engine.memory import DEFAULT_BLOCK_SIZE, Layout, blocks_per_task, plan_layout, trial_bytes
from trialsim.engine.rundir import Checkpoint, RunDir
from trialsim.flow.run import TRIAL_FIELDS
from trialsim.memo import process_memo
from trialsim.model import build_model
from trialsim.registry import DECISION_RULES, MULTIPLICITY_METHODS
from trialsim.rng import Streams, draw_seed
from trialsim.scenarios import ScenarioSpec
from trialsim.simulate import SHIPPED, TrialBatch, groupable, simulate_trials
from trialsim.summarise import TRIAL_COLUMNS, BlockSummary, Totals, summarise_batch, summarise_blocks, trial_table


@dataclass(frozen=True)
class Task:
    spec_index: int
    blocks: tuple[tuple[int, int], ...]  # (block index, trials in block)
    block_size: int = DEFAULT_BLOCK_SIZE
    group: int = 1  # consecutive blocks simulated in one batch, where the scenario allows (simulate_blocks)
    compiled: bool = False  # the steps that have a compiled loop use it (trialsim.kernels; the same numbers either way)


# Trials per worker from which a run uses the compiled loops (trialsim.kernels): they save about 3 us of a
# default-design trial's 13 and cost 0.3 s of numba's start-up in each process (and their compilation on a machine's
# first long run, about 3.5 s), so shorter runs, a 1,000-trial command among them, keep numpy's passes.
COMPILED_FROM = 100_000


def simulate_block(scenario, seed: int, block: int, n_sims: int, *, block_size: int | None = None,
                   keep_trials: bool = False, nested: tuple[tuple[int, int], ...] = (),
                   share_draws: bool = False, trial_columns: Sequence[str] = TRIAL_COLUMNS,
                   ) -> tuple[BlockSummary, dict | None]:
    """The unit of work: block ``block`` of a run, on its own random streams, decided and summarised.

    With ``keep_trials`` also the block's per-trial table (trial index = block * block_size + row). ``nested``
    sizes (:func:`~trialsim.simulate.simulate_trials`) add their rows to that table, each decided as a trial of
    its own, with the columns ``n_control`` and ``n_treatment`` saying which size a row is. ``share_draws``: the
    block's generation steps go through this process's memo (:mod:`trialsim.memo`), for runs of several scenarios
    that share some (the same numbers either way). ``trial_columns``: the columns of the per-trial table.
    """
    tune_malloc()  # once per process: freed arrays kept for reuse within a task (no number changes)
    streams = Streams(seed, block, memo=process_memo() if share_draws else None)
    batch = simulate_trials(scenario, n_sims, streams=streams, nested=nested)
    return _decided(scenario, batch, block, block_size=block_size, keep_trials=keep_trials, nested=nested,
                    trial_columns=trial_columns)


def simulate_blocks(scenario, seed: int, blocks: Sequence[tuple[int, int]], *, group: int = 1,
                    block_size: int | None = None, keep_trials: bool = False, nested: tuple[tuple[int, int], ...] = (),
                    share_draws: bool = False, trial_columns: Sequence[str] = TRIAL_COLUMNS,
                    ) -> list[tuple[BlockSummary, dict | None]]:
    """:func:`simulate_block` of each of ``blocks`` ((block, trials) pairs), the same numbers, with up to ``group``
    consecutive blocks of equal size simulated and decided in one batch where the scenario allows (:func:`_may_batch`):
    each numpy call then does the work of several blocks (about 2 ms of a default-design block's 13 are calls' fixed
    costs). Each block is still summarised on its own trials, and its per-trial table is its own rows."""
    runs = _runs(blocks, group) if group > 1 and not nested and _may_batch(scenario) else [[b] for b in blocks]
    out = []
    for run in runs:
        if len(run) == 1:
            (block, n), = run
            out.append(simulate_block(scenario, seed, block, n, block_size=block_size, keep_trials=keep_trials,
                                      nested=nested, share_draws=share_draws, trial_columns=trial_columns))
            continue
        tune_malloc()
        sizes = tuple(n for _, n in run)
        streams = Streams(seed, run[0][0], memo=process_memo() if share_draws else None, sizes=sizes)
        batch = simulate_trials(scenario, sum(sizes), streams=streams)
        decisions = decide(batch)
        summaries = summarise_blocks(batch, decisions, run)
        tables: list[dict | None] = [None] * len(run)
        if keep_trials:
            first = run[0][0] * _block_size(scenario, block_size)
            tables = _per_block(trial_table(batch, decisions, first_trial=first, columns=trial_columns), sizes,
                                len(batch.stats))
        out.extend(zip(summaries, tables))
    return out


def _block_size(scenario, block_size: int | None) -> int:
    return block_size if block_size is not None else (scenario.run.block_size or DEFAULT_BLOCK_SIZE)


def _per_block(table: dict, sizes: tuple[int, ...], n_pairs: int) -> list[dict]:
    """A batch's per-trial table cut into its blocks' tables: each (endpoint, test) holds a row per trial of the batch."""
    position = np.tile(np.arange(sum(sizes)), n_pairs)
    out, start = [], 0
    for n in sizes:
        rows = (position >= start) & (position < start + n)
        start += n
        out.append({c: v[rows] for c, v in table.items()})
    return out


def _may_batch(scenario) -> bool:
    """Whether blocks of the scenario may be simulated and decided in one batch: :func:`~trialsim.simulate.groupable`,
    and every decision rule and the multiplicity method are trialsim's own (each trial decided on its own statistics)."""
    if not groupable(scenario):
        return False
    own = [rule.__module__ for _, rule in DECISION_RULES.items()]
    if scenario.multiplicity is not None:
        own.append(MULTIPLICITY_METHODS.get(scenario.multiplicity.method).reject.__module__)
    return all(m.startswith(SHIPPED) for m in own)


def _runs(blocks: Sequence[tuple[int, int]], group: int) -> list[list[tuple[int, int]]]:
    """``blocks`` cut into runs of at most ``group`` consecutive blocks of one size, in order."""
    runs: list[list[tuple[int, int]]] = []
    for block, n in blocks:
        last = runs[-1] if runs else None
        if last and len(last) < group and last[-1][0] + 1 == block and last[-1][1] == n:
            last.append((block, n))
        else:
            runs.append([(block, n)])
    return runs


def _decided(scenario, batch: TrialBatch, block: int, *, block_size: int | None, keep_trials: bool,
             nested: tuple[tuple[int, int], ...] = (), trial_columns: Sequence[str] = TRIAL_COLUMNS,
             ) -> tuple[BlockSummary, dict | None]:
    """A block's batch decided and summarised, and its per-trial table with ``keep_trials``."""
    decisions = decide(batch)
    summary = summarise_batch(batch, decisions, block=block)
    size = _block_size(scenario, block_size)
    table = trial_table(batch, decisions, first_trial=block * size, columns=trial_columns) if keep_trials else None
    if table is not None and nested:
        d = scenario.design
        parts = [_with_sizes(table, d.n_control, d.n_treatment)]
        for (n_c, n_t), stats in batch.nested.items():
            inner = TrialBatch(batch.model, batch.n_trials, stats, {})
            parts.append(_with_sizes(trial_table(inner, decide(inner), first_trial=block * size, columns=trial_columns),
                                     n_c, n_t))
        table = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
    return summary, table


def _with_sizes(table: dict, n_control: int, n_treatment: int) -> dict:
    rows = len(next(iter(table.values()))) if table else 0
    return table | {"n_control": np.full(rows, n_control), "n_treatment": np.full(rows, n_treatment)}


def run_task(spec: ScenarioSpec, seed: int, task: Task, keep_trials: bool = False, share_draws: bool = False,
             trial_columns: Sequence[str] = TRIAL_COLUMNS):
    """One task on a worker: its blocks' summaries (and per-trial tables with ``keep_trials``)."""
    with kernels.compiled_loops(task.compiled):
        out = simulate_blocks(spec.scenario, seed, task.blocks, group=task.group, block_size=task.block_size,
                              keep_trials=keep_trials, nested=spec.nested, share_draws=share_draws,
                              trial_columns=trial_columns)
    return task.spec_index, [s for s, _ in out], [t for _, t in out]


def resolve_seed(requested: int | None, run_dir: RunDir | None = None) -> tuple[int, bool]:
    """``(seed, given)``: the requested seed, else the one the run folder recorded (a drawn one
    included, so an unseeded run resumes), else a fresh draw."""
    if requested is not None:
        return int(requested), True
    recorded = run_dir.recorded_seed() if run_dir is not None else None
    if recorded is not None:
        return recorded, bool(run_dir.manifest.get("seed_given", False))
    return draw_seed(), False


class Fold:
    """One scenario's running totals: blocks added in any order, folded in block order.

    Blocks a checkpoint held before this run are read back from it when their turn comes; the
    others wait in memory for theirs (only those that arrive early).
    """

    def __init__(self, n_sims: int, n_blocks: int, block_size: int, stored: Checkpoint | None = None):
        self.totals = Totals(capacity=n_sims, block_size=block_size)
        self.n_blocks = n_blocks
        self.next = 0
        self.waiting: dict[int, BlockSummary] = {}
        self.stored = stored
        self.resumed = frozenset(stored.index) if stored is not None else frozenset()
        self.advance()

    def add(self, block: BlockSummary) -> None:
        self.waiting[block.block] = block
        self.advance()

    def advance(self) -> None:
        while self.next < self.n_blocks:
            if self.next in self.waiting:
                block = self.waiting.pop(self.next)
            elif self.next in self.resumed:
                block = self.stored.load(self.next)
            else:
                return
            self.totals.add(block)
            self.next += 1

    def result(self) -> Totals:
        self.advance()
        if self.next < self.n_blocks:
            raise RuntimeError(f"block {self.next} of {self.n_blocks} never arrived")
        return self.totals.finished()


def run_specs(
    specs: Sequence[ScenarioSpec],
    *,
    seed: int,
    n_sims: int,
    n_jobs: int = 1,
    chunk_blocks: int = 10,
    backend: str | None = None,
    scheduler: str | None = None,
    max_memory_mb: int | None = None,
    progress: bool = False,
    run_dir: RunDir | None = None,
    seed_given: bool = True,
    on_trials: Callable | None = None,
    trials_kept: Callable[[int, int, int, int], bool] | None = None,
    trial_columns: Sequence[str] = TRIAL_COLUMNS,
) -> list[Totals]:
    """Simulate every scenario and return its totals (blocks folded in block order).

    Every scenario uses the same root seed and block layout, so scenarios of a sweep share random
    streams (common random numbers): their differences are estimated more precisely than each on
    its own. ``backend``, ``scheduler`` and ``max_memory_mb`` default to the first scenario's
    ``[run]`` settings; the block size is ``run.block_size``, else chosen from the memory budget
    (:mod:`trialsim.engine.memory`; a run that cannot fit is refused before it starts).
    ``run_dir``, an open :class:`~trialsim.engine.rundir.RunDir`, gets the manifest and one
    checkpoint per scenario: blocks already there are not simulated again.
    ``on_trials(spec_index, block, table)``, when given, receives each block's per-trial table as it
    arrives (``--keep-trials``), before the block is checkpointed, with the columns ``trial_columns`` (of
    :data:`~trialsim.summarise.TRIAL_COLUMNS`). ``trials_kept(spec_index, block, first_trial, n_trials)``: whether that
    block's per-trial table is whole where ``on_trials`` keeps them; a checkpointed block whose table is not is simulated again.
    """
    cfg = specs[0].scenario.run
    if any(spec.nested for spec in specs) and (run_dir is not None or on_trials is None):
        raise ValueError("nested sizes are per-trial rows for on_trials, not part of a run folder")
    backend = backend or cfg.backend
    scheduler = scheduler if scheduler is not None else cfg.scheduler
    layout = plan_layout(specs, n_sims=n_sims, n_jobs=n_jobs,
                         max_memory_mb=max_memory_mb if max_memory_mb is not None else cfg.max_memory_mb,
                         block_size=cfg.block_size,
                         recorded_block_size=run_dir.recorded_block_size() if run_dir is not None else None)
    if backend == "dask" and scheduler:
        dask_client(scheduler, layout.n_workers)  # an unreachable scheduler is refused before anything is written
    size = layout.block_size
    n_blocks = -(-n_sims // size)
    checkpoints: list[Checkpoint | None] = [None] * len(specs)
    if run_dir is not None:
        run_dir.begin(specs, seed=seed, seed_given=seed_given, n_sims=n_sims, block_size=size,
                      block_size_chosen=layout.block_size_chosen)
        for i, spec in enumerate(specs):
            checkpoints[i] = run_dir.checkpoint(spec, n_blocks=n_blocks, keep_trials=on_trials is not None,
                                                check=_checker(spec, n_sims, size))
            if trials_kept is not None:
                lost = sorted(b for b in checkpoints[i].index if not trials_kept(i, b, b * size, _trials(b, size, n_sims)))
                if lost:
                    warnings.warn(f"scenario {spec.id!r}: the per-trial tables of {len(lost)} checkpointed block(s) are "
                                  f"missing or damaged (first: block {lost[0]}); those blocks are simulated again",
                                  RuntimeWarning, stacklevel=2)
                    for b in lost:
                        del checkpoints[i].index[b]
                    run_dir.blocks_resumed -= len(lost)
    folds = [Fold(n_sims, n_blocks, size, cp) for cp in checkpoints]
    todo = [[b for b in range(n_blocks) if cp is None or b not in cp.index] for cp in checkpoints]
    n_todo = sum(len(t) for t in todo)
    n_workers = layout.n_workers
    if backend == "dask" and scheduler and n_todo:  # tasks sized for the cluster's workers
        n_workers = max(1, sum(dask_client(scheduler, n_workers).nthreads().values()))
    per_task = blocks_per_task(n_todo, n_workers=n_workers, chunk_blocks=chunk_blocks)
    todo_trials = sum(_trials(b, size, n_sims) for t in todo for b in t)
    tasks = dearest_first(todo, per_task, size, n_sims, trial_costs=[trial_bytes(spec) for spec in specs],
                          group=layout.group, compiled=todo_trials >= COMPILED_FROM * n_workers and kernels.available())
    n_tasks = len(tasks)
    bar = _progress(progress, total=todo_trials, already=len(specs) * n_sims - todo_trials)
    keep = on_trials is not None
    # scenarios of one run share the seed and blocks: the steps they have in common are computed once per block and
    # worker (planning's effect grids, sweeps); a single scenario has nothing to share
    share = len(specs) > 1
    jobs = ((specs[i], seed, task, keep, share, tuple(trial_columns)) for i, task in tasks)
    try:
        for spec_index, blocks, tables in execute(run_task, jobs, n_tasks=n_tasks, backend=backend,
                                                  n_workers=layout.n_workers, scheduler=scheduler):
            if on_trials is not None:
                for block, table in zip(blocks, tables):
                    on_trials(spec_index, block.block, table)
            if checkpoints[spec_index] is not None:
                checkpoints[spec_index].append(blocks)
                run_dir.blocks_computed += len(blocks)
            for block in blocks:
                folds[spec_index].add(block)
            if bar is not None:
                bar.update(sum(b.n_sims for b in blocks))
    finally:
        if bar is not None:
            bar.close()
    return [f.result() for f in folds]


def layout_of(specs: Sequence[ScenarioSpec], *, n_sims: int, n_jobs: int = 1, max_memory_mb: int | None = None) -> Layout:
    """The block size and workers :func:`run_specs` would use (raises if the run cannot fit)."""
    cfg = specs[0].scenario.run
    return plan_layout(specs, n_sims=n_sims, n_jobs=n_jobs, block_size=cfg.block_size,
                       max_memory_mb=max_memory_mb if max_memory_mb is not None else cfg.max_memory_mb)


def _trials(block: int, size: int, n_sims: int) -> int:
    return min(size, n_sims - block * size)


def dearest_first(todo: list[list[int]], per_task: int, size: int, n_sims: int, *,
                  trial_costs: Sequence[float], group: int = 1, compiled: bool = False) -> list[tuple[int, Task]]:
    """The tasks of a run, ``(spec index, task)``: each scenario's blocks to do cut into tasks of ``per_task``
    blocks, handed out the dearest first.

    A task's cost is its trials times ``trial_costs`` of its scenario (its memory per trial,
    :func:`~trialsim.engine.memory.trial_bytes`: patients x endpoints; within a factor of two of the time per trial in
    planning's searches). In longest-processing-time order a search whose largest size costs 20 times its smallest
    no longer ends with one worker simulating the largest alone: the default config's refining pass of simulated
    sample sizes went from 6.8-7.3 to 4.7-5.5 s on 2 workers (measured alternately). Cutting the dear scenarios'
    tasks smaller as well was slower (5.9-6.4 s): two large blocks at once contend for memory, and each task's
    blocks start from released memory. Blocks are folded in block order whatever order they finish in, so the
    order changes no number. Equal costs keep their order (a single scenario's tasks run as before). ``group``:
    the consecutive blocks a worker may simulate in one batch (:func:`simulate_blocks`); ``compiled``: whether the
    tasks use the compiled loops (:data:`COMPILED_FROM`).
    """
    out: list[tuple[float, int, Task]] = []
    for i, blocks in enumerate(todo):
        for start in range(0, len(blocks), per_task):
            chunk = tuple((b, _trials(b, size, n_sims)) for b in blocks[start:start + per_task])
            out.append((trial_costs[i] * sum(n for _, n in chunk), i, Task(i, chunk, size, group, compiled)))
    out.sort(key=lambda item: -item[0])  # stable: equal costs keep their order
    return [(i, task) for _, i, task in out]


def _checker(spec: ScenarioSpec, n_sims: int, size: int) -> Callable[[BlockSummary], str | None]:
    """Why a stored block cannot be trusted (:meth:`BlockSummary.problem`), or None. The names of its per-arm
    estimates and decision outcomes must be those a block of this scenario has: taken, on the first stored block
    checked, from a block of two trials simulated here (a few milliseconds; a run without stored blocks never needs
    it), so a line with the right checksum but another model's or rule's names is simulated again, not folded in."""
    model = build_model(spec.scenario)
    tests = {f"{a.name}|{t}" for a, t in model.pairs()}
    flow_fields = TRIAL_FIELDS if spec.scenario.flow is not None else None
    @functools.cache
    def names() -> tuple[set[str], set[str]]:
        sample, _ = simulate_block(spec.scenario, 0, 0, min(2, n_sims), block_size=size)
        return set(sample.est_count), set(sample.outcomes)

    def check(block: BlockSummary) -> str | None:
        estimates, outcomes = names()
        return block.problem(n_sims=_trials(block.block, size, n_sims), tests=tests, flow_fields=flow_fields,
                             estimates=estimates, outcomes=outcomes)

    return check


def _progress(enabled: bool, *, total: int, already: int):
    if not enabled or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total + already, initial=already, unit="trial", unit_scale=True, desc="simulating", mininterval=0.5)
