"""The ``trialsim`` command's entry point: a Ctrl-C while the package is still importing ends cleanly.

Importing numpy, scipy, pandas and the package takes about a second, before :mod:`trialsim.cli`
installs its own signal handling. A KeyboardInterrupt raised in that window surfaces from the middle
of some import, and not always as a KeyboardInterrupt (numpy turns it into an ImportError that tells
the user to reinstall numpy). So until the command line is imported, Ctrl-C is handled at the signal
level: nothing has been done yet, so the process prints one line and exits with status 130 at once.
This module imports nothing of the package at load time (the package's ``__init__`` is lazy).
"""
from __future__ import annotations

import gc
import importlib
import os
import signal
import sys

INTERRUPTED = 130  # 128 + SIGINT, as shells report it
TERMINATED = 143  # 128 + SIGTERM
MESSAGE = b"\ntrialsim: interrupted while starting; nothing was done\n"
TERM_MESSAGE = b"\ntrialsim: terminated (SIGTERM) while starting; nothing was done\n"
AFTER_MESSAGES = {True: b"\ntrialsim: terminated (SIGTERM) while exiting; the command had finished and written its output\n",
                  False: b"\ntrialsim: terminated (SIGTERM) while exiting; the command had ended with an error\n"}


def _while_importing(signum, frame) -> None:
    os.write(2, MESSAGE if signum == signal.SIGINT else TERM_MESSAGE)  # async-signal-safe, unlike print
    os._exit(INTERRUPTED if signum == signal.SIGINT else TERMINATED)  # nothing to clean up: no file, worker or thread yet


def _while_exiting(message: bytes):
    def handler(signum, frame) -> None:
        os.write(2, message)
        os._exit(TERMINATED)  # what is left is the worker pool's shut-down: its workers end with their parent
    return handler


def main(argv: list[str] | None = None) -> int:
    """Run the command line (:func:`trialsim.cli.main`); one line and status 130 on an early Ctrl-C."""
    if (sys.argv[1:] if argv is None else argv) == ["--version"]:  # needs nothing heavy imported (the parser
        print(f"trialsim {importlib.import_module('trialsim.version').__version__}")  # imports every command: 2 s)
        return 0
    previous = {}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when the caller ignores Ctrl-C
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _while_importing)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # (its default ends the process without a word)
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _while_importing)
    try:
        cli = importlib.import_module("trialsim.cli")
        cli.command_modules(sys.argv[1:] if argv is None else argv)  # the command's own (heavy) imports, here too
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # The imported modules, classes and functions (about 100,000 tracked objects) live as long as the process.
    # Frozen out of the collector's generations, they are no longer walked by every full collection and once more
    # at exit: that walk cost 0.3 s of a 2 s command here. Frozen objects are never collected, so any reference
    # cycle left over from the imports stays until exit: main() is the command's entry point, and exit is near.
    gc.freeze()
    status = 1
    try:
        status = cli.main(argv)
        return status
    except KeyboardInterrupt:  # between here and the command's own handling (argument parsing)
        sys.stderr.write(MESSAGE.decode())
        status = INTERRUPTED
        return status
    finally:
        # the command's own handling has ended; the interpreter's exit (the worker pool's shut-down) may still take a
        # moment, and a SIGTERM in it would end the process without a word. Only as the program (no argv given): a
        # caller running commands in its own process keeps its own SIGTERM handling
        if argv is None and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _while_exiting(AFTER_MESSAGES[status == 0]))


def run() -> None:
    """``python -m trialsim``: exit with :func:`main`'s status."""
    sys.exit(main())
