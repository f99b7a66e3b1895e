"""The runner: blocks of trials over joblib workers, in any order, combined in block order.

Work is cut into blocks of ``run.block_size`` trials, each on its own random stream
(:mod:`trialsim.rng`); a task is ``run.chunk_blocks`` consecutive blocks. Completed blocks are
appended to a checkpoint file as they finish, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from trialsim.config.loader import ConfigError, config_hash
from trialsim.decide import decide
from trialsim.rng import Streams, block_sizes
from trialsim.scenarios import ScenarioSpec
from trialsim.simulate import simulate_trials
from trialsim.summarise import BlockSummary, summarise_batch, trial_table


@dataclass(frozen=True)
class Task:
    spec_index: int
    blocks: tuple[tuple[int, int], ...]  # (block index, trials in block)


def simulate_block(scenario, seed: int, block: int, n_sims: int, *, block_size: int | None = None,
                   keep_trials: bool = False) -> tuple[BlockSummary, dict | None]:
    """The unit of work: block ``block`` of a run, on its own random streams, decided and summarised.

    With ``keep_trials`` also the block's per-trial table (trial index = block * block_size + row).
    """
    batch = simulate_trials(scenario, n_sims, streams=Streams(seed, block))
    decisions = decide(batch)
    summary = summarise_batch(batch, decisions, block=block)
    size = scenario.run.block_size if block_size is None else block_size
    table = trial_table(batch, decisions, first_trial=block * size) if keep_trials else None
    return summary, table


def _run_task(spec: ScenarioSpec, seed: int, task: Task, keep_trials: bool = False):
    out = [simulate_block(spec.scenario, seed, b, n, keep_trials=keep_trials) for b, n in task.blocks]
    return task.spec_index, [s for s, _ in out], [t for _, t in out]


class Checkpoint:
    """An append-only JSON-lines file of finished blocks for one scenario."""

    def __init__(self, path: Path, header: dict):
        self.path = path
        self.header = header
        self.done: dict[int, BlockSummary] = {}
        if path.exists():
            lines = path.read_text().splitlines()
            if lines:
                found = json.loads(lines[0])
                if found != header:
                    raise ConfigError(
                        f"checkpoint {str(path)!r} belongs to another run ({found}); use another --out folder or delete it"
                    )
                for line in lines[1:]:
                    try:
                        block = BlockSummary.from_json(json.loads(line))
                    except (json.JSONDecodeError, TypeError):
                        break  # a line cut short by an interruption: that block is simply run again
                    self.done[block.block] = block
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        # rewrite header and the complete lines (drops a torn last line)
        with path.open("w") as fh:
            fh.write(json.dumps(header) + "\n")
            for block in self.done.values():
                fh.write(json.dumps(block.to_json()) + "\n")

    def append(self, blocks: Iterable[BlockSummary]) -> None:
        with self.path.open("a") as fh:
            for block in blocks:
                fh.write(json.dumps(block.to_json()) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def run_specs(
    specs: Sequence[ScenarioSpec],
    *,
    seed: int,
    n_sims: int,
    n_jobs: int = 1,
    chunk_blocks: int = 10,
    backend: str = "loky",
    progress: bool = False,
    checkpoint_dir: Path | None = None,
    on_trials=None,
) -> list[list[BlockSummary]]:
    """Simulate every scenario and return its block summaries in block order.

    Every scenario uses the same root seed, so scenarios of a sweep share random streams (common
    random numbers): their differences are estimated more precisely than each on its own.
    ``on_trials(spec_index, block, table)``, when given, receives each block's per-trial table as it
    arrives (``--keep-trials``).
    """
    block_size = specs[0].scenario.run.block_size
    sizes = block_sizes(n_sims, block_size)
    done: list[dict[int, BlockSummary]] = [{} for _ in specs]
    checkpoints: list[Checkpoint | None] = [None] * len(specs)
    if checkpoint_dir is not None:
        for i, spec in enumerate(specs):
            header = {"scenario": spec.id, "config_hash": config_hash(spec.scenario), "seed": seed,
                      "n_sims": n_sims, "block_size": block_size}
            checkpoints[i] = Checkpoint(Path(checkpoint_dir) / f"{_safe(spec.id)}.jsonl", header)
            done[i] = dict(checkpoints[i].done)
    tasks = []
    for i in range(len(specs)):
        todo = [(b, n) for b, n in enumerate(sizes) if b not in done[i]]
        for start in range(0, len(todo), chunk_blocks):
            tasks.append(Task(i, tuple(todo[start:start + chunk_blocks])))
    todo_trials = sum(n for t in tasks for _, n in t.blocks)
    bar = _progress(progress, total=todo_trials, already=len(specs) * n_sims - todo_trials)
    try:
        for spec_index, blocks, tables in _execute(specs, seed, tasks, n_jobs=n_jobs, backend=backend,
                                                   keep_trials=on_trials is not None):
            for block, table in zip(blocks, tables):
                done[spec_index][block.block] = block
                if on_trials is not None:
                    on_trials(spec_index, block.block, table)
            if checkpoints[spec_index] is not None:
                checkpoints[spec_index].append(blocks)
            if bar is not None:
                bar.update(sum(b.n_sims for b in blocks))
    finally:
        if bar is not None:
            bar.close()
    return [[d[b] for b in sorted(d)] for d in done]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=," else "_" for c in name)[:150]


def _execute(specs, seed, tasks, *, n_jobs: int, backend: str, keep_trials: bool = False):
    if not tasks:
        return
    if n_jobs == 1 or backend == "sequential" or len(tasks) == 1:
        for task in tasks:
            yield _run_task(specs[task.spec_index], seed, task, keep_trials)
        return
    from joblib import Parallel, delayed, parallel_config

    if backend == "dask":
        try:
            import distributed  # noqa: F401  (registers joblib's dask backend)
        except ImportError:
            raise ConfigError("run.backend = 'dask' needs dask.distributed: pip install 'trialsim[dask]'") from None
    with parallel_config(backend=backend, n_jobs=n_jobs):
        yield from Parallel(return_as="generator_unordered")(
            delayed(_run_task)(specs[t.spec_index], seed, t, keep_trials) for t in tasks
        )


def _progress(enabled: bool, *, total: int, already: int):
    if not enabled or total == 0:
        return None
    from tqdm.auto import tqdm

    bar = tqdm(total=total + already, initial=already, unit="trial", unit_scale=True, desc="simulating", mininterval=0.5)
    return bar
