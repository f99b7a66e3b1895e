"""Command line: ``trialsim <command>``. Config errors exit with status 2 and no traceback.

Each module of this package adds its subcommands (``add_parsers``) and maps them to functions
(``COMMANDS``); every command is a thin wrapper over a Python API call.
"""
from __future__ import annotations

import argparse
import os
import sys

from trialsim.cli import planning, run
from trialsim.config.loader import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trialsim", description="Monte Carlo operating characteristics of a clinical trial.")
    sub = parser.add_subparsers(dest="command", required=True)
    run.add_parsers(sub)
    planning.add_parsers(sub)
    return parser


COMMANDS = {**run.COMMANDS, **planning.COMMANDS}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("sims", "jobs", "chunk_blocks"):
        value = getattr(args, name, None)
        if value is not None and (value < 1 and not (name == "jobs" and value == -1)):
            print(f"trialsim: error: --{name.replace('_', '-')} = {value} is not allowed: must be a positive whole number"
                  + (" (or -1 for all cores)" if name == "jobs" else ""), file=sys.stderr)
            return 2
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"trialsim: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("\ntrialsim: interrupted; finished blocks are kept in the --out checkpoint and resume on the next run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
