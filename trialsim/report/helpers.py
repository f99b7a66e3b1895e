"""Helper processes that draw a report's figures and render its PDF while this process writes the rest.

Writing the registered trial's documents takes about 13 s of CPU: the figures (about 5 s, most of it
matplotlib's layout and PNG/SVG writing), the PDF (about 4 s of WeasyPrint laying out every line in
Python), the Word document (2 s) and the imports of matplotlib, seaborn and WeasyPrint. Done one after
the other in one process, that left the second core idle. :class:`Helpers` starts up to two helper
processes; each runs the jobs it is sent, in order, and sends back their results.

Each helper imports its libraries and warms up (:func:`trialsim.report.figures.warm_up`,
:func:`trialsim.report.pdf_process.warm_up`) as soon as it starts, then says it is ready. Started
early (``Helpers(early=True)``: ``trialsim report`` starts them before it simulates), they run at the
lowest priority (nice 19) and warm up on what the simulation leaves of the cores, so the documents do
not wait for 3-4 s of imports (those still warming up then finish at full speed). On a machine that is
busy when the documents start, where they would crawl through their jobs, they are replaced by fresh
ones at the caller's priority (:meth:`Helpers.keep_up`). The same files come out whichever process writes them (tests
compare them).

This module imports no other trialsim module, so a helper (a fresh interpreter: ``spawn``, as joblib's
workers) starts in a fraction of a second; the functions it runs are imported when their jobs arrive.
Without helpers (``enabled=False``, one usable core, or no process can be started) every job runs in this process
when it is submitted; a helper that dies (killed, out of memory) or falls silent for :data:`SILENCE_SECONDS` has its
unfinished jobs run here.
"""
from __future__ import annotations

import contextlib
import gc
import importlib
import multiprocessing
import os
import pickle
import queue
import threading
import time
import warnings
from collections import deque
from multiprocessing import connection as mp_connection
from multiprocessing.reduction import ForkingPickler
from typing import Any, Callable, Sequence

JOIN_SECONDS = 10.0  # how long close() waits for a helper to end before stopping it
READY = "ready"  # what a helper sends when it has warmed up
IDLE_NICE = 19  # the priority of helpers started early (Helpers(early=True)): warming up on what other work leaves
# How long this process waits for a word from a helper that owes it a result before it stops the helper and runs its
# unfinished jobs itself. A job takes seconds (a figure well under one, the registered trial's PDF 4-6 s); a helper
# silent for minutes is stuck (a deadlock, a library looping), and the command must not hang on it.
SILENCE_SECONDS = 300.0


def usable_cores() -> int:
    """Cores this process may run on (its affinity where the system tells it, else every core)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _lower_priority(nice: int) -> None:
    with contextlib.suppress(AttributeError, OSError):  # no os.nice (Windows), or not allowed: run as we are
        os.nice(max(0, nice - os.nice(0)))


def serve(conn, warm: Sequence[str], nice: int = 0) -> None:
    """A helper process: lower its priority to ``nice``, warm up (each ``"module:function"`` of ``warm`` imported and
    called: named, not pickled, so that their imports too run at that priority) and say :data:`READY`, then run every
    ``(function, args)`` received and send back ``(result, None)`` or ``(None, exception)``, until ``None`` or EOF."""
    if nice:
        _lower_priority(nice)
    for step in warm:
        with contextlib.suppress(Exception):  # a failed warm-up: the real job fails the same way and says why
            module, name = step.split(":")
            getattr(importlib.import_module(module), name)()
    gc.freeze()  # the libraries just imported: never walked again by the collector (as trialsim's launch does)
    try:
        conn.send(READY)
    except OSError:  # the parent is gone
        return
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the parent is gone
            return
        if job is None:
            return
        function, args = job
        try:
            conn.send((function(*args), None))
        except Exception as exc:  # noqa: BLE001 - raised again in the parent by Job.result()
            conn.send((None, _portable(exc)))


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if the parent can rebuild it from its pickle (some exceptions pickle but cannot be rebuilt: an
    ``__init__`` with other arguments than it passes on), else a RuntimeError with its text."""
    try:
        pickle.loads(ForkingPickler.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - anything that does not travel
        return RuntimeError(f"{type(exc).__name__}: {exc}")


class Job:
    """A job sent to a helper (or run here): :meth:`result` is its return value, or raises its exception."""

    def __init__(self, helper: "Helper | None", function: Callable, args: tuple):
        self._helper = helper
        self._function, self._args = function, args
        self.done = False
        self._value: Any = None
        self._error: BaseException | None = None

    @classmethod
    def here(cls, function: Callable, args: tuple) -> "Job":
        """``function(*args)`` run in this process now, as a finished job."""
        job = cls(None, function, args)
        job._run_here()
        return job

    def _finish(self, value: Any, error: BaseException | None) -> None:
        self._value, self._error, self.done = value, error, True

    def _run_here(self) -> None:
        try:
            self._finish(self._function(*self._args), None)
        except Exception as exc:  # noqa: BLE001 - kept for result(), as a helper's would be
            self._finish(None, exc)

    def result(self) -> Any:
        while not self.done:
            self._helper.receive()
        if self._error is not None:
            raise self._error
        return self._value


class Helper:
    """One helper process (:func:`serve`); jobs run in the order they are sent.

    Jobs are pickled here (an argument that cannot be pickled raises in :meth:`submit`) and written to the pipe by a
    sender thread: a job larger than the pipe's buffer (a report's HTML) would otherwise hold this process until the
    helper reads it, which it does only after its warm-up and the jobs before it.
    """

    def __init__(self, warm: Sequence[str], *, nice: int = 0, name: str = "trialsim-helper"):
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no locks or threads copied from here
        self._conn, child = ctx.Pipe()
        try:
            self._process = ctx.Process(target=serve, args=(child, tuple(warm), nice), name=name, daemon=True)
            self._process.start()
        except BaseException:
            self._conn.close()
            raise
        finally:
            child.close()
        self._pending: deque[Job] = deque()
        self._ready = False
        self.warm, self.nice = tuple(warm), nice
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send_all, name=f"{name}-sender", daemon=True)
        self._sender.start()

    def _send_all(self) -> None:
        while (data := self._outbox.get()) is not None:
            try:
                self._conn.send_bytes(data)
            except OSError:  # the helper is gone: receive() finds out and runs its jobs here
                return

    def ready(self) -> bool:
        """Whether the helper has warmed up (never waits)."""
        with contextlib.suppress(EOFError, OSError):  # a dead helper is not ready
            while not self._ready and self._process is not None and self._conn.poll():
                self._take()
        return self._ready

    @property
    def alive(self) -> bool:
        return self._process is not None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def connection(self):
        return self._conn

    def submit(self, function: Callable, *args) -> Job:
        if self._process is None:
            return Job.here(function, args)
        job = Job(self, function, args)
        data = bytes(ForkingPickler.dumps((function, args)))
        self._pending.append(job)
        self._outbox.put(data)
        return job

    def _take(self) -> None:
        """Read one message: the helper's READY, or the oldest unfinished job's result (a result that cannot be
        unpickled here finishes its job with that error: the next message is the next job's)."""
        data = self._conn.recv_bytes()
        try:
            message = pickle.loads(data)
        except Exception as exc:  # noqa: BLE001 - kept for the job's result()
            message = (None, RuntimeError(f"a helper's result could not be read here: {type(exc).__name__}: {exc}"))
        if not self._ready and message == READY:
            self._ready = True
            return
        value, error = message
        self._pending.popleft()._finish(value, error)  # noqa: SLF001

    def step(self) -> None:
        """Read one message (:meth:`_take`); if the helper died, or sent nothing for :data:`SILENCE_SECONDS`, run its
        unfinished jobs here."""
        try:
            if not self._conn.poll(SILENCE_SECONDS):
                self.give_up()
                return
            self._take()
        except (EOFError, OSError):  # the helper died (killed, out of memory)
            self._fail()

    def give_up(self) -> None:
        """Stop a helper that has sent nothing for :data:`SILENCE_SECONDS` and run its unfinished jobs here (saying so)."""
        warnings.warn(f"a helper process sent nothing for {SILENCE_SECONDS:g} s: it was stopped, and what it had left "
                      "to do runs in this process", stacklevel=2)
        self._fail()

    def receive(self) -> None:
        """Wait for the oldest unfinished job's result (run the unfinished jobs here if the helper died)."""
        waiting = len(self._pending)
        while self._pending and len(self._pending) == waiting:
            self.step()

    def _fail(self) -> None:
        self.close(kill=True)
        while self._pending:
            self._pending.popleft()._run_here()  # noqa: SLF001

    def close(self, *, kill: bool = False) -> None:
        """Let the helper end after its jobs (``kill``: stop it now, mid-job)."""
        if self._process is None:
            return
        if kill:
            self._process.terminate()
        else:
            while self._pending and self._process is not None:  # its results read: it may be blocked sending one
                self.step()
            if self._process is None:  # it died meanwhile (its jobs ran here)
                return
            self._outbox.put(bytes(ForkingPickler.dumps(None)))  # after the jobs sent before it
        self._outbox.put(None)
        self._process.join(JOIN_SECONDS)
        if self._process.is_alive():  # stuck: do not hang the command on it
            self._process.terminate()
            self._process.join(JOIN_SECONDS)
        self._sender.join(JOIN_SECONDS)  # the pipe is broken now: the sender has stopped
        self._conn.close()
        self._process = None


class Batch:
    """``function(*item)`` for each of ``items``, each sent to whichever of ``helpers`` is free first (or run here without
    any): started at once, :meth:`results` waits for them (in the order of ``items``)."""

    def __init__(self, helpers: Sequence[Helper], function: Callable, items: Sequence[tuple]):
        self._function = function
        self._todo = deque(enumerate(items))
        self._jobs: list[Job | None] = [None] * len(items)
        self._running: dict[Helper, Job] = {}
        for helper in helpers:
            if helper.alive and self._todo:
                self._next(helper)

    def _next(self, helper: Helper) -> None:
        i, item = self._todo.popleft()
        self._jobs[i] = job = helper.submit(self._function, *item)
        if job.done:  # the helper is gone: run here
            return
        self._running[helper] = job

    def results(self) -> list:
        while self._running:
            by_connection = {h.connection: h for h in self._running}
            ready = mp_connection.wait(list(by_connection), timeout=SILENCE_SECONDS)
            for helper in [by_connection[c] for c in ready] if ready else list(self._running):
                if ready:
                    helper.step()
                else:  # none of them has said anything for that long: stuck
                    helper.give_up()
                if self._running[helper].done:
                    del self._running[helper]
                    if self._todo and helper.alive:
                        self._next(helper)
        while self._todo:  # no helper left
            i, item = self._todo.popleft()
            self._jobs[i] = Job.here(self._function, item)
        return [job.result() for job in self._jobs]


LOADAVG = "/proc/loadavg"


def others_running(ours: int = 0, *, samples: int = 3, gap: float = 0.005, path: str = LOADAVG) -> bool:
    """Whether other processes want the cores now: the kernel's count of runnable tasks (the fourth field of
    /proc/loadavg, this process included) stays above this process plus ``ours`` runnable helpers in each of
    ``samples`` readings ``gap`` seconds apart. False where the system does not say (not Linux)."""
    for k in range(samples):
        try:
            with open(path, encoding="ascii") as f:
                running = int(f.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return False
        if running <= 1 + ours:
            return False
        if k + 1 < samples:
            time.sleep(gap)
    return True


def _started(warm, *, nice: int, name: str) -> Helper | None:
    try:
        return Helper(warm, nice=nice, name=name)
    except Exception:  # noqa: BLE001 - no process can be started here (limits, a daemonic parent)
        return None


class Helpers:
    """Up to ``len(warm)`` helper processes, the k-th warming up with the ``"module:function"`` steps of ``warm[k]``;
    a context manager.

    ``enabled=False``, a single usable core, or a system where no process can be started: no helpers,
    and :meth:`submit` runs each job here before it returns. Leaving the ``with`` block normally lets the
    helpers finish their jobs; leaving it by an exception (Ctrl-C) stops them at once.
    """

    def __init__(self, warm: Sequence[Sequence[str]], *, enabled: bool = True, early: bool = False):
        self._helpers: list[Helper] = []
        if enabled and usable_cores() > 1:
            for k, steps in enumerate(warm):
                helper = _started(steps, nice=IDLE_NICE if early else 0, name=f"trialsim-helper-{k}")
                if helper is None:
                    break  # work with those there are, or in this process
                self._helpers.append(helper)

    def keep_up(self, *, busy: Callable[[int], bool] | None = None) -> int:
        """Make sure helpers started early (``early=True``) will not crawl through their jobs; returns how many
        were replaced.

        They run at the lowest priority. On a machine where nothing else wants the cores (:func:`others_running`)
        that costs nothing, and those still warming up finish at full speed. On a busy one they would hardly run:
        each is replaced by a fresh helper at this process's priority. ``busy(n_warming)`` tells whether the machine
        is busy, given how many of our helpers are still warming up (and so runnable themselves)."""
        early = [h for h in self._helpers if h.alive and h.nice]
        if not early:
            return 0
        warming = sum(not h.ready() for h in early)
        if not (busy or others_running)(warming):
            return 0
        replaced = 0
        for k, old in enumerate(self._helpers):
            if old.alive and old.nice:
                old.close(kill=True)
                new = _started(old.warm, nice=0, name=f"trialsim-helper-{k}")
                if new is not None:
                    self._helpers[k] = new
                    replaced += 1
        self._helpers = [h for h in self._helpers if h.alive]
        return replaced

    def __len__(self) -> int:
        return len(self._live())

    def _live(self) -> list[Helper]:
        return [h for h in self._helpers if h.alive]

    def submit(self, k: int, function: Callable, *args) -> Job:
        """Run ``function(*args)`` in helper ``k`` (modulo the live helpers), or here without any."""
        live = self._live()
        if not live:
            return Job.here(function, args)
        return live[k % len(live)].submit(function, *args)

    def batch(self, function: Callable, items: Sequence[tuple], *, among: Sequence[int] | None = None) -> Batch:
        """Start ``function(*item)`` for every item on the helpers ``among`` (indices, modulo the live helpers;
        default all), each job going to whichever is free first: :meth:`Batch.results` waits for them."""
        live = self._live()
        if among is not None and live:
            live = list(dict.fromkeys(live[k % len(live)] for k in among))
        return Batch(live, function, items)

    def pids(self) -> list[int]:
        return [h.pid for h in self._helpers if h.pid is not None]

    def close(self, *, kill: bool = False) -> None:
        for h in self._helpers:
            h.close(kill=kill)

    def __enter__(self) -> "Helpers":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(kill=exc_type is not None)
