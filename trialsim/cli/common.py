"""Options shared by every subcommand (the CLI is thin: parse, call the API, print), and the checks of numeric flags.

Every numeric flag of every subcommand is parsed by a rule of :data:`FLAG_RULES` (matched by the
flag's destination name, or named by :func:`add_sim_options`' ``sims_as``), so a flag is refused like the config value it stands for, naming the flag,
the value and what is allowed; whole numbers may be written ``100000``, ``100_000`` or ``1e5``.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable

from trialsim.config.loader import ConfigError
from trialsim.config.schema import MAX_RATIO_PART, MAX_TARGET_POWER, Design, Run
from trialsim.report.output import FolderNotOursError, FolderOfAnotherCommandError, check_folder, claim_folder

RUN_MANIFEST = "manifest.json"  # what marks a `trialsim run` folder (trialsim.engine.rundir.MANIFEST)


def add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="scenario TOML file, e.g. configs/exosome_lar_20.toml")
    add_overrides(p)


def add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a config value, e.g. --set design.n_control=30 or --set endpoints.<id>.effect=0.7 (repeatable; see `trialsim show`)")


def add_sim_options(p: argparse.ArgumentParser, *, sims_help: str | None = None, sims_as: str | None = None) -> None:
    """``--sims``, ``--seed``, ``--jobs``, ``--chunk-blocks``. ``sims_as``: the flag whose rule (and so whose
    message) ``--sims`` shares, where it counts other trials than run.n_sims (``samplesize --sims`` is
    ``report --search-sims``)."""
    p.add_argument("--sims", type=int if sims_as is None else FLAG_RULES[sims_as], default=None,
                   help=sims_help or f"simulated trials per scenario, 1 to {_limit(Run, 'n_sims', 'le'):,} (default: run.n_sims)")
    p.add_argument("--seed", type=int, default=None, help="root seed, a whole number >= 0 (default: run.seed, else drawn and recorded)")
    p.add_argument("--jobs", type=int, default=None, help="parallel workers, -1 = all cores (default: run.n_jobs)")
    p.add_argument("--chunk-blocks", type=int, default=None, help="blocks per parallel task (does not change results)")


# ------------------------------------------------------------------------------------------ flag rules
def _limit(model, field: str, kind: str):
    """The bound ``kind`` ("ge", "le", ...) of a config field, so a flag and its config key share it."""
    for item in model.model_fields[field].metadata:
        if hasattr(item, kind):
            return getattr(item, kind)
    raise KeyError(f"{model.__name__}.{field} has no {kind} bound")


def _whole(text: str) -> int:
    try:
        value = Decimal(text.strip().replace("_", ""))
    except InvalidOperation:
        raise ValueError from None
    if not value.is_finite() or value != value.to_integral_value():
        raise ValueError
    return int(value)


def whole_number(low: int, high: int | None = None, *, what: str = "", forbid_zero: str = "") -> Callable[[str], int]:
    """A flag parser for whole numbers in [low, high] (``1e5`` and ``100_000`` accepted)."""
    span = f"from {low:,} to {high:,}" if high is not None else f">= {low:,}"

    def parse(text: str) -> int:
        try:
            value = _whole(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use a whole number {span}{what}") from None
        if value == 0 and forbid_zero:
            raise argparse.ArgumentTypeError(f"0 is not allowed: {forbid_zero}")
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value:,} is not allowed: use a whole number {span}{what}")
        return value

    return parse


def real_number(low: float, high: float, *, low_open: bool = False, high_open: bool = False,
                what: str = "") -> Callable[[str], float]:
    """A flag parser for finite numbers in an interval."""
    span = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use a number in {span}{what}") from None
        ok = math.isfinite(value) and (low < value if low_open else low <= value) and \
            (value < high if high_open else value <= high)
        if not ok:
            raise argparse.ArgumentTypeError(f"{text} is not allowed: use a number in {span}{what}")
        return value

    return parse


_N_SIMS_MAX = _limit(Run, "n_sims", "le")
N_PER_ARM_MAX = _limit(Design, "n_control", "le")

# dest -> parser. Flags that set a config key share its bounds.
FLAG_RULES: dict[str, Callable[[str], object]] = {
    "sims": whole_number(1, _N_SIMS_MAX, what=" (simulated trials per scenario; run.n_sims has the same cap)"),
    "seed": whole_number(_limit(Run, "seed", "ge"), what=" (the root seed)"),
    "jobs": whole_number(-1, _limit(Run, "n_jobs", "le"), what=", or -1 for all cores",
                         forbid_zero="0 workers run nothing; use 1 or more, or -1 for all cores"),
    "chunk_blocks": whole_number(1, _limit(Run, "chunk_blocks", "le")),
    "max_memory": whole_number(_limit(Run, "max_memory_mb", "ge"), _limit(Run, "max_memory_mb", "le"),
                               what=" (MB; run.max_memory_mb has the same bounds)"),
    "search_sims": whole_number(1, _N_SIMS_MAX, what=" (simulated trials per refining pass of the sample-size and "
                                                     "MDE searches; their locating pass uses a quarter)"),
    "curve_sims": whole_number(1, _N_SIMS_MAX, what=" (simulated trials per curve point)"),
    "n_max": whole_number(2, N_PER_ARM_MAX, what=" (patients per arm)"),
    "n": whole_number(1, N_PER_ARM_MAX, what=" (patients per arm)"),
    "power": real_number(0.0, MAX_TARGET_POWER, low_open=True, what=" (a target power; it must also exceed the design's alpha)"),
    "ratio": real_number(1.0 / MAX_RATIO_PART, MAX_RATIO_PART, what=" (n_treatment / n_control)"),
    "dropout": real_number(0.0, 1.0, high_open=True, what=" (a share of patients)"),
    "alpha": real_number(_limit(Design, "alpha", "ge"), _limit(Design, "alpha", "lt"), high_open=True,
                         what=" (two-sided significance level)"),
    "p_control": real_number(1e-6, 1.0 - 1e-6, what=" (an event rate)"),
    "p_treatment": real_number(1e-6, 1.0 - 1e-6, what=" (an event rate)"),
    "risk_ratio": real_number(0.0, 1000.0, low_open=True),
    "gmr": real_number(0.0, 1e6, low_open=True, what=" (a ratio of geometric means)"),
    "difference": real_number(-1e12, 1e12),
    "sd": real_number(1e-100, 1e100, what=" (an SD, in any unit)"),
    "sd_treatment": real_number(1e-100, 1e100, what=" (an SD, in any unit)"),
    "log_sd": real_number(1e-100, 10.0, what=" (the SD of the natural logs)"),
    "cv": real_number(0.0, 100.0, low_open=True, what=" (a coefficient of variation)"),
}
# a numeric flag without a rule above is still refused when it is not a finite number
_ANY_WHOLE = whole_number(-(2**63), 2**63 - 1)
_ANY_REAL = real_number(-1e300, 1e300)


def folder(text: str) -> Path:
    """An output folder's path (``--out``): not empty (an unset shell variable would write into the current
    folder), no NUL or control character."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: give a folder name (an empty path would write into "
                                         "the current folder)")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: a folder name without control characters")
    return Path(text)


def check_out(out: Path | None, *, command: str, ours: tuple[str, ...] = ()) -> Path | None:
    """Refuse ``--out`` before any work, as ``report`` does, when the command could not write its files there.

    The folder must be one trialsim's report/planning outputs own (:func:`trialsim.report.output.check_folder`:
    new, empty, or marked; ``ours`` are the command's own file names, which also mark folders written before the
    marker existed), its marker must not name another command (a folder holds one command's results: `compare --out`
    into a report's folder is refused), and it must be possible to make it and write into it: that is tried, and what
    the trial made is removed again, so a command that fails later leaves nothing behind. Write into it through
    :func:`claim_out`.
    """
    if out is None:
        return None
    out = Path(out)
    try:
        check_folder(out, ours=ours, command=command)
    except FolderNotOursError as exc:
        raise _refused(out, exc, command) from None
    made = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()  # can a file be made there (a read-only folder, a full disk)
    except OSError as exc:
        raise ConfigError(f"--out {str(out)!r}: cannot make or write into the folder: {exc.strerror or exc}") from None
    finally:
        for p in made:  # the innermost first
            with contextlib.suppress(OSError):
                p.rmdir()
    return out


def claim_out(out: Path, *, command: str, ours: tuple[str, ...] = ()) -> Path:
    """Make ``out`` (checked by :func:`check_out`) and mark it as ``command``'s, just before its files are written."""
    try:
        return claim_folder(out, ours=ours, command=command)
    except FolderNotOursError as exc:
        raise _refused(out, exc, command) from None


def _refused(out: Path, exc: FolderNotOursError, command: str) -> ConfigError:
    """The error of ``--out`` for a folder :func:`check_folder` or :func:`claim_folder` refused (the same words from
    :func:`check_out` and :func:`claim_out`)."""
    if isinstance(exc, FolderOfAnotherCommandError):  # its message begins with the folder
        return ConfigError(f"--out {exc}")
    if not out.is_dir():
        return ConfigError(f"--out {str(out)!r}: {exc}")
    kind = " (a `trialsim run` folder)" if (out / RUN_MANIFEST).is_file() else ""
    return ConfigError(f"--out {str(out)!r} already holds files that `trialsim {command}` did not write{kind}; "
                       "nothing in it is overwritten: give a new or empty folder")


def check_numbers(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every numeric flag of ``parser`` and its subcommands its rule from :data:`FLAG_RULES`.

    A numeric flag without a rule still gets a finite whole or real number.
    """
    for action in parser._actions:  # argparse keeps no public list of actions
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                check_numbers(sub)
        elif action.type in (int, float):
            action.type = FLAG_RULES.get(action.dest, _ANY_WHOLE if action.type is int else _ANY_REAL)
    return parser
