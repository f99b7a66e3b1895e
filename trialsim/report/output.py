"""Output folders: reports and planning results are written only into folders trialsim created.

:func:`claim_folder` creates the folder (or takes an empty one) and leaves a marker file in it; a
folder that already holds files but no marker (a run folder, a user's own folder) is refused, so
``trialsim report --from RUN --out RUN`` cannot overwrite what the run wrote.

:func:`report_session` writes a whole report into its folder: the marker says "writing" until the
report is complete, so an interrupted report is never read back as a finished one (``report --from``
refuses it), and when it is complete the files of the folder's earlier report that this one did not
write again (another design's sweep, a format not asked for this time) are removed. The marker lists
the files trialsim wrote: nothing else in the folder (the user's notes, a run folder inside it) is
ever removed.

The marker also records which command wrote the folder (``"command": "report"``, ``"samplesize"``, ...): a folder
of one command is refused by every other (:class:`FolderOfAnotherCommandError`), before any work, so no folder holds
the files of two commands (``trialsim compare --out R`` into a report's folder R, then ``report --from R``) and no
reader reads such a mix. The same command writes its own folder again, as before.
"""
from __future__ import annotations

import contextlib
import fnmatch
import json
import time
from pathlib import Path
from typing import Iterator

from trialsim.config.loader import ConfigError
from trialsim.files import replace_file

MARKER = ".trialsim-report"
# The command a folder is marked with by the Python API (PlanningResult.save, write_report, report_session): what they
# write is what `trialsim report` writes, and `report --from` reads it back.
REPORT = "report"
PLANNING_JSON = "planning.json"
# The files `trialsim curves` writes and `trialsim report` never does (report draws its figures into figures/): its
# power ranges, a sweep's own grid, and a planning result's figures drawn at the top of the folder.
CURVES_OWN = ("power_ranges*", "sweep_grid*", "power_vs_n.*", "power_vs_effect.*", "power_heatmap.*",
              "sample_size_sawtooth.*")
# Which files (names or fnmatch patterns, at the top of the folder) each command writes: the evidence by which a
# folder whose marker does not name its command (an earlier trialsim's) shows which command wrote it (see
# check_folder). A file several commands write (sample_sizes.csv: report's and samplesize's) counts for each of them;
# files not listed (scenario.toml, curves.csv, the user's own) count for none. planning.json is curves's too only when
# it holds nothing but the curves part (see _writers).
COMMAND_FILES: dict[str, tuple[str, ...]] = {
    REPORT: (PLANNING_JSON, "report.*", "justification.txt", "references_to_check.txt", "sample_sizes.csv", "mde.csv"),
    "samplesize": ("sample_sizes.csv", "mde.csv", "size_sensitivity.csv"),
    "curves": (*CURVES_OWN, PLANNING_JSON),
    "compare": ("compare.*",),
    "replay": ("trial*_patients.csv", "trial*_analyses.csv"),
}


class FolderNotOursError(ConfigError):
    """The output folder holds files that trialsim's report or planning did not write."""


class FolderOfAnotherCommandError(FolderNotOursError):
    """The output folder's marker says another trialsim command wrote it (or, an older marker, cannot say which)."""


def claim_folder(out: str | Path, *, ours: tuple[str, ...] = (), command: str = REPORT) -> Path:
    """Create ``out`` (or take it when empty or already ours) and mark it as written by trialsim.

    Parameters
    ----------
    out : path
        The output folder.
    ours : tuple of str
        File names (or fnmatch patterns, e.g. ``trial*_patients.csv``) that also show the folder was written by this
        command (e.g. planning.json of folders written before the marker existed, or before it named its command).
    command : str
        The trialsim command writing the folder ("report", "samplesize", "curves", "compare", "replay"), recorded in
        the marker.

    Raises
    ------
    FolderNotOursError
        ``out`` exists and holds files, but neither the marker nor one of ``ours``.
    FolderOfAnotherCommandError
        ``out``'s marker names another command (see :func:`check_folder`).
    """
    out = check_folder(out, ours=ours, command=command)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FolderNotOursError(f"cannot make the folder {str(out)!r}: {exc.strerror or exc}") from None
    marker = read_marker(out)
    if marker is None or marker["command"] != command:
        # a new folder; an older marker without its command (taken by check_folder's rule), now named; or a folder
        # holding nothing but another command's marker: none of that command's files is listed as this one's
        earlier = {"status": marker["status"], "files": marker["files"]} if marker and marker["command"] is None else {}
        _write_marker(out, {"status": "complete", "files": [], **earlier, "command": command})
    return out


def read_marker(out: str | Path) -> dict | None:
    """The folder's marker: ``{"status": "writing" | "complete", "files": [...], "command": str | None}``; None
    without one.

    A marker of an older trialsim (a line of text) reads as complete, with no files listed and command None: it
    could be any command's (:func:`check_folder` decides by the folder's files). A JSON marker written before markers
    named their command reads with command None too, unless it lists files: only ``trialsim report``
    (:func:`report_session`) ever listed them, so it is "report".
    """
    path = Path(out) / MARKER
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        marker = json.loads(text)
    except ValueError:
        return {"status": "complete", "files": [], "command": None}
    if not isinstance(marker, dict) or marker.get("status") not in ("writing", "complete"):
        return {"status": "complete", "files": [], "command": None}
    files = marker.get("files")
    marker["files"] = [f for f in files if isinstance(f, str)] if isinstance(files, list) else []
    command = marker.get("command")
    marker["command"] = command if isinstance(command, str) and command else (REPORT if marker["files"] else None)
    return marker


def _write_marker(out: Path, marker: dict) -> None:
    note = (f"written by trialsim {marker['command']}; the files listed are its own and may be replaced by it; "
            "no other trialsim command writes into this folder")
    replace_file(out / MARKER, lambda tmp: tmp.write_text(json.dumps({"note": note, **marker}, indent=1) + "\n",
                                                          encoding="utf-8"))


def check_complete(folder: str | Path) -> None:
    """Refuse a report folder whose writing was interrupted (its marker still says "writing")."""
    marker = read_marker(folder)
    if marker is not None and marker["status"] == "writing":
        raise ConfigError(f"{str(folder)!r} holds a report whose writing was interrupted: its files may be a mix of "
                          "two reports; write the report again into it (trialsim report CONFIG --out ...)")


@contextlib.contextmanager
def report_session(out: str | Path, *, ours: tuple[str, ...] = (), keep_earlier: bool = False,
                   command: str = REPORT) -> Iterator[Path]:
    """Write a whole report into ``out`` (see the module's docstring).

    While the body runs the marker says "writing"; when it returns, the files the earlier report listed and
    this one did not write again are removed (``keep_earlier``: kept, for a report rewritten from its own folder,
    whose results it does not write again), and the marker lists every file of the report. On an exception
    the marker keeps saying "writing".
    """
    out = claim_folder(out, ours=ours, command=command)
    earlier = read_marker(out) or {"status": "complete", "files": []}
    started = time.time_ns()
    _write_marker(out, {"status": "writing", "files": earlier["files"], "command": command})
    yield out
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*")
                     if p.is_file() and p.name != MARKER and p.stat().st_mtime_ns >= started)
    keep = set(written)
    for name in earlier["files"]:
        path = out / name
        if name in keep or keep_earlier or ".." in Path(name).parts or Path(name).is_absolute():
            continue
        if path.is_file() and not path.is_symlink():
            path.unlink()
            if path.parent != out:
                with contextlib.suppress(OSError):  # a folder of the earlier report left empty (e.g. its figures)
                    path.parent.rmdir()
    listed = sorted(keep | set(earlier["files"])) if keep_earlier else written
    _write_marker(out, {"status": "complete", "files": listed, "command": command})


def check_folder(out: str | Path, *, ours: tuple[str, ...] = (), command: str = REPORT) -> Path:
    """``out`` if :func:`claim_folder` would take it for ``command`` (nothing is created); see there for what raises.

    A folder whose marker names another command is refused, unless the marker is all it holds (nothing to mix). A
    marker of an older trialsim that does not name its command (:func:`read_marker`) could be any command's: its
    folder is taken only when it holds one of ``ours`` (the command's own files, the same evidence that takes a folder
    written before markers existed) and nothing that only other commands write (:data:`COMMAND_FILES`). That second
    rule matters because commands share file names: a report's folder holds sample_sizes.csv and mde.csv,
    ``samplesize``'s files, but also planning.json and report.md, which samplesize never writes; and ``curves`` takes
    an older folder only by the files report never writes (:data:`CURVES_OWN`), not by planning.json, which a report's
    folder holds too. The folder is then marked with ``command``; refusing every older folder outright would also
    refuse a report rewriting its own documents.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FolderNotOursError(f"{str(out)!r} is a file, not a folder; give a new folder with --out")
    if any(parent.exists() and not parent.is_dir() for parent in out.parents):
        raise FolderNotOursError(f"cannot make the folder {str(out)!r}: a part of its path is a file")
    if out.is_dir() and any(p.name != MARKER for p in out.iterdir()):
        if (out / MARKER).is_file():
            marker = read_marker(out) or {"command": None}
            if marker["command"] is None:
                own = _holds(out, ours)
                others = sorted(p.name for p in out.iterdir() if p.is_file() and command not in _writers(p))
                if not own or others:
                    held = (f"it holds {', '.join(others[:3])}, which `trialsim {command}` does not write"
                            if own else f"it does not hold `trialsim {command}`'s own results")
                    raise FolderOfAnotherCommandError(
                        f"{str(out)!r} was written by an earlier trialsim, whose marker does not say which command "
                        f"wrote it, and {held}; nothing in it is overwritten: give a new or empty folder")
            elif marker["command"] != command:
                raise FolderOfAnotherCommandError(
                    f"{str(out)!r} holds the results of `trialsim {marker['command']}`; `trialsim {command}` does not "
                    "write into another command's folder: give a new or empty folder")
        elif not _holds(out, ours):
            raise FolderNotOursError(
                f"{str(out)!r} already holds files that trialsim report did not write (for example a run's results); "
                "nothing in it is overwritten: give a new folder with --out")
    return out


def _named(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``name`` is one of ``patterns`` (names or fnmatch patterns)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _holds(out: Path, patterns: tuple[str, ...]) -> bool:
    """Whether ``out`` holds a file named by one of ``patterns``."""
    return any(p.is_file() and _named(p.name, patterns) for p in out.iterdir())


def _writers(path: Path) -> set[str]:
    """The commands that write a file of this name (:data:`COMMAND_FILES`); all of them for a file none lists."""
    writers = {command for command, patterns in COMMAND_FILES.items() if _named(path.name, patterns)}
    if path.name == PLANNING_JSON and "curves" in writers:
        # curves saves a planning result of its curves part alone; one with other parts (a run, sample sizes) is a
        # report's, and curves writing over it would leave the report's documents and tables beside a curves result
        try:
            parts = json.loads(path.read_text(encoding="utf-8"))["settings"]["parts"]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            parts = None
        if not isinstance(parts, list) or set(parts) - {"curves"}:
            writers.discard("curves")
    return writers or set(COMMAND_FILES)
