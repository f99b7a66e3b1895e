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
A helper whose warm-up is part of the first one's (the report's second helper: figures only) is not
started from scratch: the first forks it once warmed up (on Linux), so the libraries are imported once,
not twice (3 s of CPU of a report's 50; the forked helper is ready the moment the first one is). It
is then the first one's child, not this process's: it is told apart by its pid (sent when it is
ready) and waited for through a pidfd.
Without helpers (``enabled=False``, one usable core, or no process can be started) every job runs in this process
when it is submitted; a helper that dies (killed, out of memory) or falls silent for :data:`SILENCE_SECONDS` has its
unfinished jobs run here.
"""
from __future__ import annotations

import contextlib
import gc
import importlib
import multiprocessing
import multiprocessing.util
import os
import pickle
import queue
import signal
import sys
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


def serve(conn, warm: Sequence[str], nice: int = 0, forks: Sequence = ()) -> None:
    """A helper process: lower its priority to ``nice``, warm up (each ``"module:function"`` of ``warm`` imported and
    called: named, not pickled, so that their imports too run at that priority), fork a warmed helper for each
    connection of ``forks`` (:func:`_fork_helper`) and say :data:`READY`, then run every ``(function, args)`` received
    and send back ``(result, None)`` or ``(None, exception)``, until ``None`` or EOF."""
    if nice:
        _lower_priority(nice)
    for step in warm:
        with contextlib.suppress(Exception):  # a failed warm-up: the real job fails the same way and says why
            module, name = step.split(":")
            getattr(importlib.import_module(module), name)()
    gc.freeze()  # the libraries just imported: never walked again by the collector (as trialsim's launch does)
    children = [pid for k, own in enumerate(forks) if (pid := _fork_helper(own, [conn, *forks[:k], *forks[k + 1:]]))]
    if children:  # stopped (SIGTERM), this helper first reaps its forked ones, stopped just before it
        signal.signal(signal.SIGTERM, lambda signum, frame: _end_on_sigterm(children))
    try:
        try:
            conn.send(READY)
        except OSError:  # the parent is gone
            return
        _run_jobs(conn, children)
    finally:
        _reap(children, wait=REAP_SECONDS)


REAP_SECONDS = 1.0  # how long a helper ending waits for its forked helpers (closed before it) to have ended


def _reap(children: list[int], wait: float = 0.0) -> None:
    """Collect the exit status of the forked helpers that have ended, waiting up to ``wait`` seconds for them (those
    still running are kept in ``children``). They are closed or stopped before this helper, so it reaps them; one still
    running when it ends is left to the system (to whoever adopts it)."""
    deadline = time.monotonic() + wait
    while True:
        for pid in list(children):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            children.remove(pid)
        if not children or time.monotonic() >= deadline:
            return
        time.sleep(0.005)


def _end_on_sigterm(children: list[int]) -> None:
    """SIGTERM in a helper with forked helpers: reap them (stopped just before it), then end by the signal as it would."""
    _reap(children, wait=REAP_SECONDS)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _fork_helper(conn, others: Sequence) -> int | None:
    """Fork a helper serving ``conn`` with what this one has warmed up (the child says ``(READY, its pid, its start
    time)``, then runs jobs until ``None`` or EOF, then ends without running this process's exit handlers); ``others``
    are closed in it. Here ``conn`` is closed: the child holds the only copy, so the caller's end reads EOF once the
    child has ended. Returns the child's pid; None where the fork failed (``conn`` closed unanswered: the caller runs
    that helper's jobs itself)."""
    _flush_streams()  # else the child would write this helper's buffered output again
    try:
        pid = os.fork()
    except OSError:
        conn.close()
        return None
    if pid:
        conn.close()
        return pid
    code = 0
    try:
        for other in others:
            other.close()
        _close_inherited_pipes(keep=conn.fileno())
        conn.send((READY, os.getpid(), _start_time(os.getpid())))
        _run_jobs(conn)
    except BaseException:  # noqa: BLE001 - the parent is gone (a broken pipe), or a signal: end here either way
        code = 1
    finally:
        _flush_streams()
        os._exit(code)  # never back into the parent helper's code (its loop, its exit handlers)


def _flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken stream: nothing to keep
            stream.flush()


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot: the 22nd field of /proc/PID/stat); None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:  # bytes: a process name need not be ASCII
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _close_inherited_pipes(keep: int) -> None:
    """Close the pipes a forked helper inherited from its parent helper but the standard streams, ``keep`` and
    multiprocessing's resource tracker (which a job creating a lock still uses): multiprocessing's sentinel of the
    parent helper (whose end the caller waits for to know that the parent has ended: held open here too, it would make
    the caller wait for this helper as well) and the parent's own sentinel. A helper's libraries open no pipes (their
    files and sockets are left alone)."""
    from multiprocessing import resource_tracker  # noqa: PLC0415 - only in a forked helper

    kept = {keep, getattr(getattr(resource_tracker, "_resource_tracker", None), "_fd", None)}
    with contextlib.suppress(OSError):  # no /proc: nothing to close here (only Linux forks helpers)
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 2 and fd not in kept:
                with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
                    if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                        os.close(fd)


def _run_jobs(conn, children: list[int] | None = None) -> None:
    """Run the jobs received on ``conn`` until ``None`` or EOF (reaping the ``children`` that have ended between jobs)."""
    while True:
        if children:
            _reap(children)
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

    def __init__(self, warm: Sequence[str], *, nice: int = 0, name: str = "trialsim-helper",
                 forks: Sequence[tuple[Sequence[str], str]] = ()):
        """``forks``: the ``(warm, name)`` of helpers this one forks once it has warmed up (each ``warm`` a part of its
        own, as it is not done again), in :attr:`forked`."""
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no locks or threads copied from here
        self._conn, child = ctx.Pipe()
        pipes: list = []
        try:
            pipes += [ctx.Pipe() for _ in forks]
            self._process: Any = ctx.Process(target=serve, args=(child, tuple(warm), nice, tuple(c for _, c in pipes)),
                                             name=name, daemon=True)
            self._process.start()
        except BaseException:
            self._conn.close()
            for ours, _ in pipes:
                ours.close()
            raise
        finally:
            child.close()
            for _, theirs in pipes:
                theirs.close()  # the helper holds them now (and passes each to its fork)
        self._setup(warm, nice, name, is_forked=False)
        self.forked = [Helper._forked(ours, w, nice, n) for (ours, _), (w, n) in zip(pipes, forks)]

    @classmethod
    def _forked(cls, conn, warm: Sequence[str], nice: int, name: str) -> "Helper":
        """The helper another one forks (see ``forks``), served on ``conn``."""
        self = cls.__new__(cls)
        self._conn = conn
        self._process = _Forked(conn)
        self._setup(warm, nice, name, is_forked=True)
        self.forked = []
        # a command that ends without closing its helpers: stopped with the first helper (which multiprocessing stops)
        self._at_exit = multiprocessing.util.Finalize(None, self._process.terminate, exitpriority=10)
        return self

    def _setup(self, warm: Sequence[str], nice: int, name: str, *, is_forked: bool) -> None:
        self.is_forked = is_forked  # forked by another helper (its process a _Forked), not started by this process
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
        """The helper's process id (None once closed). A forked helper's is known when it is ready: waited for."""
        if self.is_forked and self._process is not None and self._process.pid is None:
            while not self._ready and self._process is not None:
                self.step()
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
        if not self._ready:  # the first message is READY (a forked helper's with its pid and start time)
            self._ready = True
            if self.is_forked:
                self._process.known_from(message)
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
            self.ready()  # a forked helper's pid comes with its READY
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
        if self.is_forked:
            self._process.release()
            self._at_exit.cancel()
        self._process = None


class _Forked:
    """What :class:`Helper` uses of a ``multiprocessing.Process``, for a helper forked by another one (so not this
    process's child): its pid comes with its READY (:meth:`known`); it is signalled through a pidfd (never another
    process that took its pid after it ended) and waited for until its end of the pipe closes."""

    exitcode = None  # not this process's child: its exit status is not ours to read

    def __init__(self, conn):
        self._conn = conn
        self.pid: int | None = None
        self._fd: int | None = None
        self._ended = False

    def known(self, pid: int, start: int | None = None) -> None:
        """The helper's pid and start time (from its READY). Its pidfd is opened only if the process with that pid
        now is the one that started then: one that ended before its READY was read may have given its pid away."""
        self.pid = int(pid)
        try:
            fd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # no pidfd here (an old kernel, a sandbox refusing it): it cannot be
            self._ended = True  # signalled, so it is let go when closed (it ends at its next read or answer)
            return
        if start is not None and _start_time(self.pid) == start:
            self._fd = fd
        else:
            os.close(fd)
            self._ended = True

    def known_from(self, message) -> None:
        """:meth:`known` from the helper's READY message ``(READY, pid, start time)``; anything else says nothing."""
        if isinstance(message, tuple) and message[:1] == (READY,):
            self.known(*message[1:3])

    def release(self) -> None:
        """Close the pidfd (the helper is not signalled any more)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _signal(self, sig: int) -> None:
        if self._fd is not None and not self._ended:
            with contextlib.suppress(OSError):  # it has ended
                signal.pidfd_send_signal(self._fd, sig)

    def terminate(self) -> None:
        """SIGTERM; a helper not known yet (its READY unread, or not forked yet) is let go without waiting: once this
        end of its pipe is closed it ends at its next read or answer."""
        if self.pid is None:
            self._ended = True
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def join(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` seconds for the helper to end: its end of the pipe closes (what it still sends is
        dropped; a READY still unread gives its pid)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ended:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                if not self._conn.poll(left):
                    return
                data = self._conn.recv_bytes()
            except (EOFError, OSError):
                self._ended = True
                break
            if self.pid is None:
                with contextlib.suppress(Exception):
                    self.known_from(pickle.loads(data))

    def is_alive(self) -> bool:
        return not self._ended


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


# Linux: a helper forked from a warmed one runs the same libraries as a fresh one (tests compare their files). Elsewhere
# every helper is started from scratch (no fork on Windows; macOS's system libraries are not safe to fork with).
CAN_FORK = sys.platform.startswith("linux") and hasattr(os, "fork")


def _started(warm: Sequence[Sequence[str]], *, nice: int, names: Sequence[str]) -> list[Helper]:
    """Helpers warming up with each of ``warm``: the first started from scratch and forking, once warmed up, those whose
    steps are part of its own (where :data:`CAN_FORK`); the others (if any) started from scratch, likewise. In the
    order of ``warm``; as many as could be started, from the first (none where no process can be started)."""
    out: dict[int, Helper] = {}
    todo = list(range(len(warm)))
    while todo:
        head, rest = todo[0], todo[1:]
        forks = [k for k in rest if CAN_FORK and set(warm[k]) <= set(warm[head])]
        try:
            helper = Helper(warm[head], nice=nice, name=names[head], forks=[(warm[k], names[k]) for k in forks])
        except Exception:  # noqa: BLE001 - no process can be started here (limits, a daemonic parent)
            break  # work with those there are, or in this process
        out[head] = helper
        out.update(zip(forks, helper.forked))
        todo = [k for k in rest if k not in forks]
    n = 0  # a gap ends the list (helper k stays helper k): those forked beyond it are let go
    while n in out:
        n += 1
    for k in sorted(set(out) - set(range(n))):
        out[k].close()
    return [out[k] for k in range(n)]


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
            self._helpers = _started(warm, nice=IDLE_NICE if early else 0,
                                     names=[f"trialsim-helper-{k}" for k in range(len(warm))])

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
        # a forked helper is ready the moment its parent has warmed up (until then it does not exist)
        warming = sum(not h.ready() for h in early if not h.is_forked)
        if not (busy or others_running)(warming):
            return 0
        stale = [k for k, h in enumerate(self._helpers) if h.alive and h.nice]
        for k in reversed(stale):  # forked helpers (after their parent in the list) first: their parent reaps them
            self._helpers[k].close(kill=True)
        fresh = _started([self._helpers[k].warm for k in stale], nice=0,
                         names=[f"trialsim-helper-{k}" for k in stale])
        for k, new in zip(stale, fresh):
            self._helpers[k] = new
        self._helpers = [h for h in self._helpers if h.alive]
        return len(fresh)

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
        for h in reversed(self._helpers):  # forked helpers (after their parent in the list) first: their parent reaps them
            h.close(kill=kill)

    def __enter__(self) -> "Helpers":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(kill=exc_type is not None)
