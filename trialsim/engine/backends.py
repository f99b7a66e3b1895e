"""Where tasks run: in this process, on joblib workers (loky processes, threads), or on a Dask cluster.

Every backend yields task results as they finish, in any order; the runner puts blocks back in
order, so the numbers are the same on every backend. Worker pools are reused: joblib's loky
executor is kept between calls, and a Dask client (with the local cluster trialsim started for it)
is kept for the life of the process and closed at exit (or by :func:`close_backends`).

Dask
    ``backend = "dask"`` without a scheduler address starts a ``dask.distributed.LocalCluster`` on
    127.0.0.1 (one single-threaded worker process per job, no dashboard); with an address
    (``tcp://host:8786``) trialsim connects to that scheduler and uses its workers, which must be
    able to import trialsim (the same version).
"""
from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import sys
import threading
import time
from typing import Any, Callable, Iterable, Iterator

from trialsim.config.loader import ConfigError
from trialsim.config.schema import check_scheduler_address
from trialsim.engine.malloc import release_memory
from trialsim.engine.memory import workers

BACKENDS = ("loky", "threading", "sequential", "dask")
CONNECT_TIMEOUT = "10s"  # to reach a Dask scheduler given by its address
_clients: dict[tuple, Any] = {}  # (scheduler address or None, local workers) -> dask.distributed.Client


def execute(fn: Callable, jobs: Iterable[tuple], *, n_tasks: int, backend: str, n_workers: int,
            scheduler: str | None = None, batch_size: int | str = "auto") -> Iterator[Any]:
    """``fn(*args)`` for every ``args`` in ``jobs``, yielded as they finish (in any order).

    ``batch_size``: calls joblib sends a worker at once ("auto": joblib's adaptive batching; 1 for calls
    whose costs differ widely, so that a long call never waits behind another in a batch)."""
    if n_tasks == 0:
        return
    if backend == "dask" and (scheduler or (n_workers > 1 and n_tasks > 1)):
        yield from _on_dask(_released, ((fn, args) for args in jobs), client=dask_client(scheduler, n_workers))
        return
    if backend not in BACKENDS:
        raise ConfigError(f"run.backend = {backend!r} is not allowed: allowed: {', '.join(BACKENDS)}")
    if n_workers <= 1 or backend in ("sequential", "dask") or n_tasks == 1:
        for args in jobs:
            yield _released(fn, args)
        return
    from joblib import Parallel, delayed, parallel_config

    if backend == "loky":  # each worker watches this process from its start (idle ones too): :func:`_watch_parent`
        calls = (delayed(_in_loky_worker)(fn, args, os.getpid()) for args in jobs)
        config = parallel_config(backend="loky", initializer=_watch_parent, initargs=(os.getpid(),))
    else:
        calls = (delayed(_released)(fn, args) for args in jobs)
        config = contextlib.nullcontext()
    with config:
        yield from Parallel(n_jobs=n_workers, backend=backend, return_as="generator_unordered",
                            batch_size=batch_size)(calls)


def _released(fn: Callable, args: tuple) -> Any:
    """``fn(*args)``, then the allocator's free memory handed back to the system once the process has grown by more
    than :data:`~trialsim.engine.malloc.KEEP_FREE_BYTES` since it last did (:func:`trialsim.engine.malloc.release_memory`):
    every task ends so on every backend, simulated or not, so that a process between tasks holds its libraries and
    caches and at most that much of what its tasks freed (kept for the next task to reuse)."""
    try:
        return fn(*args)
    finally:
        release_memory()


def _in_loky_worker(fn: Callable, args: tuple, parent: int) -> Any:
    """:func:`_released` in a loky worker, whose leak check is then told the worker's growth is bounded, and which ends
    itself once ``parent`` (the process that started the pool) is gone (:func:`_watch_parent`).

    Loky replaces a worker whose resident memory has grown by more than 300 MB since its first task (its
    leak check), and a machine's first report had both workers replaced mid-way, each replacement
    importing its libraries again and losing its caches. Two things looked like a leak there. Arrays
    freed by an exact scan's tasks stayed resident (only simulation tasks released them, and the
    allocator they had tuned keeps up to 1 GB): 370-400 MB per worker, 260-340 MB of it live after a
    release. And what is live is bounded, not leaking: the libraries a worker imports on its first
    tasks of each kind, and its caches (bounded in bytes: :mod:`trialsim.memo`). So the free memory is
    released after a task once the worker has grown by more than
    :data:`~trialsim.engine.malloc.KEEP_FREE_BYTES`, and the leak check of this worker allows
    :data:`WORKER_GROWTH_BYTES`: the same workers serve the whole command.
    """
    _watch_parent(parent)
    try:
        return _released(fn, args)
    finally:
        _allow_bounded_growth()


PARENT_CHECK_SECONDS = 0.5
_watching: list[int] = []  # the parent this worker watches (started once per process)


def _watch_parent(parent: int) -> None:
    """End this worker process when ``parent`` is no longer its parent (it was killed: SIGKILL runs no clean-up).

    Loky's workers otherwise wait for work forever after their parent's death, holding its terminal and pipes open
    (``trialsim run ... | tee log`` never ended), about 120 MB each. A daemon thread polls ``os.getppid()``: a worker
    whose parent died has been handed to another process."""
    if _watching or os.getppid() != parent:
        return
    _watching.append(parent)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="trialsim-parent-watch", daemon=True).start()


# What a worker's resident memory may grow by before loky replaces it: its imports and caches (about 300 MB measured
# over a report) and one task's arrays (the engine's memory budget bounds a block).
WORKER_GROWTH_BYTES = 2 * 2**30


def _allow_bounded_growth() -> None:
    executor = sys.modules.get("joblib.externals.loky.process_executor")  # loaded: this runs in its worker
    if executor is not None and getattr(executor, "_MAX_MEMORY_LEAK_SIZE", WORKER_GROWTH_BYTES) < WORKER_GROWTH_BYTES:
        executor._MAX_MEMORY_LEAK_SIZE = WORKER_GROWTH_BYTES


def map_calls(fn: Callable, jobs: Iterable[tuple], *, n_jobs: int, backend: str = "loky",
              scheduler: str | None = None) -> list[Any]:
    """``[fn(*args) for args in jobs]``, the calls spread over the backend's workers (results in input order).

    For work that is not simulated blocks (exact power scans); each call must be a pure function of its
    arguments, so the results do not depend on ``n_jobs`` or the backend. Calls go to the workers one at
    a time, in the order given: put the longest first.
    """
    jobs = list(jobs)
    out: list[Any] = [None] * len(jobs)
    for i, value in execute(_indexed, ((fn, i, args) for i, args in enumerate(jobs)), n_tasks=len(jobs),
                            backend=backend, n_workers=min(workers(n_jobs), max(1, len(jobs))), scheduler=scheduler,
                            batch_size=1):
        out[i] = value
    return out


def _indexed(fn: Callable, i: int, args: tuple) -> tuple[int, Any]:
    return i, fn(*args)


def dask_client(scheduler: str | None, n_workers: int):
    """The Dask client of this process for ``scheduler`` (None: a local cluster of ``n_workers``), reused."""
    key = (scheduler, None if scheduler else n_workers)
    client = _clients.get(key)
    if client is not None and client.status == "running":
        return client
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("run.backend = 'dask' needs dask.distributed: pip install 'trialsim[dask]'") from None
    if scheduler:
        try:
            check_scheduler_address(scheduler)
        except ValueError as exc:
            raise ConfigError(f"run.scheduler (--scheduler): {exc}") from None
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at run.scheduler = {scheduler!r} ({exc}); start one with "
                              f"`dask scheduler` and workers with `dask worker {scheduler}`, or leave the address out "
                              f"for a local cluster") from None
    else:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    if not _clients:
        atexit.register(close_backends)
    _clients[key] = client
    return client


def close_backends() -> None:
    """Close the Dask clients of this process, and the local clusters trialsim started."""
    while _clients:
        _, client = _clients.popitem()
        cluster = client.cluster
        client.close()
        if cluster is not None:
            cluster.close()


def _on_dask(fn: Callable, jobs: Iterable[tuple], *, client) -> Iterator[Any]:
    """Submit a window of tasks (twice the cluster's threads), one more as each finishes."""
    from dask.distributed import as_completed

    jobs = iter(jobs)
    window = 2 * max(1, sum(client.nthreads().values()))
    futures = as_completed([client.submit(fn, *args, pure=False) for args in itertools.islice(jobs, window)],
                           with_results=True)
    try:
        for _, result in futures:
            yield result
            args = next(jobs, None)
            if args is not None:
                futures.add(client.submit(fn, *args, pure=False))
    finally:
        futures.clear()
