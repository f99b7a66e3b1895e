"""Command line: ``trialsim <command>``. Bad input exits with status 2 and no traceback.

Each module of this package adds its subcommands (``add_parsers``) and maps them to functions
(``COMMANDS``); every command is a thin wrapper over a Python API call. Every numeric flag is
checked like the config value it stands for (:mod:`trialsim.cli.common`). Ctrl-C exits with status
130 and SIGTERM with 143, each after one line on stderr.
"""
from __future__ import annotations

import argparse
import faulthandler
import importlib
import os
import signal
import sys
import tempfile
import threading
import warnings
from multiprocessing import resource_tracker

from trialsim.cli.common import check_numbers
from trialsim.config.loader import ConfigError
from trialsim.files import DamagedFileError
from trialsim.version import __version__


class _Parser(argparse.ArgumentParser):
    """Usage problems as one line, like config errors (subcommand parsers are of this class too)."""

    def error(self, message: str):
        self.exit(2, f"trialsim: error: {message} (see `{self.prog} --help`)\n")


# subcommand -> the module of this package that parses and runs it. A command imports only its own module:
# `trialsim run` does not pay for planning's imports (a test keeps this table equal to the modules' COMMANDS).
SUBCOMMANDS = {
    "run": "run", "flow": "run", "show": "run", "replay": "replay",
    "samplesize": "planning", "curves": "planning", "report": "planning",
    "solve": "solve", "init": "solve",
    "compare": "compare",
}


def command_modules(argv: list[str] | None = None) -> list:
    """The subcommand modules a command line needs: its own, or all (help, a typo, no command)."""
    first = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), None)
    names = [SUBCOMMANDS[first]] if first in SUBCOMMANDS else list(dict.fromkeys(SUBCOMMANDS.values()))
    return [importlib.import_module(f"trialsim.cli.{name}") for name in names]


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand (or, given the command line ``argv``, only of its own)."""
    parser = _Parser(prog="trialsim", description="Monte Carlo operating characteristics of a clinical trial.")
    parser.add_argument("--version", action="version", version=f"trialsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in command_modules(argv if argv is not None else []):
        module.add_parsers(sub)
    return check_numbers(parser)


def commands(argv: list[str] | None = None) -> dict:
    """Subcommand name -> function, of the modules ``argv`` needs (every module without it)."""
    return {name: fn for module in command_modules(argv if argv is not None else []) for name, fn in module.COMMANDS.items()}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a run stops as it does on Ctrl-C."""


# Seconds the command may take to wind down after Ctrl-C or SIGTERM (stop the workers, close the pool) before it
# ends without waiting for them; a wind-down takes well under a second, a local Dask cluster a few seconds.
WIND_DOWN_SECONDS = 30.0


class _Signals:
    """Ctrl-C and SIGTERM for the length of one command: each raises once in the main thread.

    On POSIX, SIGINT is blocked in this thread and so in every thread and process it starts: the
    workers (loky, Dask) never see a Ctrl-C, which the terminal sends to the whole process group,
    and cannot print a traceback from the middle of an import; a listener thread takes the signal
    and interrupts the main thread with SIGUSR1, which also breaks a blocking wait. SIGTERM keeps
    its usual delivery (workers must still die of it when the pool is shut down). A second signal
    while the command winds down is ignored, and pending ones are dropped at the end.

    An exception raised at an arbitrary point can leave a lock of the worker pool's machinery taken, so that
    the wind-down waits for ever (seen about once in a few hundred interrupted runs of the test suite's busy
    machine, never reproduced on its own). So the signal also starts a watchdog: if the command has not
    wound down within :data:`WIND_DOWN_SECONDS`, it writes ``stopped(signum)``'s line (saying so, and where the
    stacks it waited on are), and ends the process. Nothing is lost: finished blocks are in the run folder's
    checkpoints already, and the workers stop when their pool's pipes close.
    """

    def __init__(self, stopped=None):
        self.stopped = stopped  # signum -> (the line to print, exit status)
        self.watchdog: threading.Timer | None = None
        self.ending = threading.Lock()  # held by the watchdog while it ends the process, and by __exit__

    def __enter__(self):
        self.handlers: dict = {}
        self.mask = None
        if threading.current_thread() is not threading.main_thread():
            return self
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
            self.handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._raise)
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # the caller ignores Ctrl-C (a background job): so does
            return self  # the command, and its workers inherit that
        # Threads started before this (OpenBLAS's, at numpy's import) still take SIGINT: the kernel may hand a
        # Ctrl-C to one of them, and CPython then raises it in the main thread through this handler, the same
        # way as the listener's SIGUSR1 (it used to be Python's default handler: no watchdog, not ignored after)
        self.handlers[signal.SIGINT] = signal.signal(signal.SIGINT, self._raise)
        if hasattr(signal, "pthread_sigmask") and hasattr(signal, "sigtimedwait"):
            # Started later, multiprocessing's resource tracker would unblock SIGINT in this thread (it
            # ends its own blocking with SIG_UNBLOCK), before the worker pool starts: start it now.
            resource_tracker.ensure_running()
            self.handlers[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, self._raise)
            self.mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            self.main = threading.get_ident()
            self.done = threading.Event()
            self.listener = threading.Thread(target=self._listen, name="trialsim-signals", daemon=True)
            self.listener.start()
        return self

    def _listen(self) -> None:
        while not self.done.is_set():
            if signal.sigtimedwait({signal.SIGINT}, 0.1) is not None:
                signal.pthread_kill(self.main, signal.SIGUSR1)
                return

    def _raise(self, signum, frame):
        for sig in self.handlers:  # once: the wind-down must not be interrupted again
            signal.signal(sig, signal.SIG_IGN)
        if self.mask is not None:
            self.done.set()
        if self.stopped is not None and self.watchdog is None:
            ending = signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT  # SIGUSR1 is the listener's Ctrl-C
            self.watchdog = threading.Timer(WIND_DOWN_SECONDS, self._give_up, args=(ending,))
            self.watchdog.daemon = True
            self.watchdog.start()
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    def _give_up(self, signum) -> None:
        if not self.ending.acquire(blocking=False):  # the command has wound down after all
            return
        line, status = self.stopped(signum)
        try:
            with tempfile.NamedTemporaryFile("w", prefix="trialsim-wind-down-", suffix=".txt", delete=False) as f:
                faulthandler.dump_traceback(f, all_threads=True)
            where = f"; where it waited: {f.name}"
        except OSError:
            where = ""
        os.write(2, f"\n{line} (the workers did not stop within {WIND_DOWN_SECONDS:g} s: ended without them{where})\n"
                 .encode("utf-8", "replace"))
        os._exit(status)

    def __exit__(self, *exc) -> None:
        if self.watchdog is not None:
            self.ending.acquire()  # blocks only while the watchdog is ending the process
            self.watchdog.cancel()
        if self.mask is not None:
            self.done.set()
            self.listener.join()
            pending = signal.sigtimedwait({signal.SIGINT}, 0)
            while pending is not None:  # drop the Ctrl-Cs of the wind-down
                pending = signal.sigtimedwait({signal.SIGINT}, 0)
            signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)
        for sig, previous in self.handlers.items():
            signal.signal(sig, previous)


def _stopped(args, how: str) -> str:
    if args.command in ("run", "flow") and getattr(args, "out", None) is not None:
        return f"trialsim: {how}; finished blocks are kept in {args.out} and the same command resumes from them"
    return f"trialsim: {how}; nothing was saved" + (" (use --out DIR to keep finished blocks)" if args.command in ("run", "flow") else "")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line for the user (no source file and line of trialsim's code under it)."""
    print(f"trialsim: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage and the problem (or --help / --version)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        with _Signals(lambda signum: (_stopped(args, "terminated (SIGTERM)"), 143) if signum == signal.SIGTERM
                      else (_stopped(args, "interrupted"), 130)), warnings.catch_warnings():
            warnings.showwarning = _show_warning
            # loky restarts a worker it finds idle or leaking; nothing is lost and nothing for the user to do
            warnings.filterwarnings("ignore", message="A worker stopped while some jobs were given", category=UserWarning)
            return commands(argv)[args.command](args)
    except (ConfigError, DamagedFileError) as exc:  # bad input, or a results folder not as trialsim wrote it
        print(f"trialsim: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Terminated:
        print("\n" + _stopped(args, "terminated (SIGTERM)"), file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("\n" + _stopped(args, "interrupted"), file=sys.stderr)
        return 130
    except MemoryError:
        print("trialsim: error: out of memory; lower --sims or the arm sizes, or give the run a smaller --max-memory "
              "so that it works in smaller blocks", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder that cannot be written, a full disk, ...
        print(f"trialsim: error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
