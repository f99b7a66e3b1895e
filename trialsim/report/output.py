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
"""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Iterator

from trialsim.config.loader import ConfigError
from trialsim.files import replace_file

MARKER = ".trialsim-report"


class FolderNotOursError(ConfigError):
    """The output folder holds files that trialsim's report or planning did not write."""


def claim_folder(out: str | Path, *, ours: tuple[str, ...] = ()) -> Path:
    """Create ``out`` (or take it when empty or already ours) and mark it as written by trialsim.

    Parameters
    ----------
    out : path
        The output folder.
    ours : tuple of str
        File names that also show the folder was written by trialsim (e.g. planning.json of
        folders written before the marker existed).

    Raises
    ------
    FolderNotOursError
        ``out`` exists and holds files, but neither the marker nor one of ``ours``.
    """
    out = check_folder(out, ours=ours)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FolderNotOursError(f"cannot make the folder {str(out)!r}: {exc.strerror or exc}") from None
    if read_marker(out) is None:
        _write_marker(out, {"status": "complete", "files": []})
    return out


def read_marker(out: str | Path) -> dict | None:
    """The folder's marker: ``{"status": "writing" | "complete", "files": [...]}``; None without one. A marker of
    an older trialsim (a line of text) reads as a complete report whose files are not listed."""
    path = Path(out) / MARKER
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        marker = json.loads(text)
    except ValueError:
        return {"status": "complete", "files": []}
    if not isinstance(marker, dict) or marker.get("status") not in ("writing", "complete"):
        return {"status": "complete", "files": []}
    files = marker.get("files")
    marker["files"] = [f for f in files if isinstance(f, str)] if isinstance(files, list) else []
    return marker


def _write_marker(out: Path, marker: dict) -> None:
    note = "written by trialsim report / planning; the files listed are its own and may be replaced by it"
    replace_file(out / MARKER, lambda tmp: tmp.write_text(json.dumps({"note": note, **marker}, indent=1) + "\n",
                                                          encoding="utf-8"))


def check_complete(folder: str | Path) -> None:
    """Refuse a report folder whose writing was interrupted (its marker still says "writing")."""
    marker = read_marker(folder)
    if marker is not None and marker["status"] == "writing":
        raise ConfigError(f"{str(folder)!r} holds a report whose writing was interrupted: its files may be a mix of "
                          "two reports; write the report again into it (trialsim report CONFIG --out ...)")


@contextlib.contextmanager
def report_session(out: str | Path, *, ours: tuple[str, ...] = (), keep_earlier: bool = False) -> Iterator[Path]:
    """Write a whole report into ``out`` (see the module's docstring).

    While the body runs the marker says "writing"; when it returns, the files the earlier report listed and
    this one did not write again are removed (``keep_earlier``: kept, for a report rewritten from its own folder,
    whose results it does not write again), and the marker lists every file of the report. On an exception
    the marker keeps saying "writing".
    """
    out = claim_folder(out, ours=ours)
    earlier = read_marker(out) or {"status": "complete", "files": []}
    started = time.time_ns()
    _write_marker(out, {"status": "writing", "files": earlier["files"]})
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
    _write_marker(out, {"status": "complete", "files": listed})


def check_folder(out: str | Path, *, ours: tuple[str, ...] = ()) -> Path:
    """``out`` if :func:`claim_folder` would take it (nothing is created); see there for what raises."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FolderNotOursError(f"{str(out)!r} is a file, not a folder; give a new folder with --out")
    if any(parent.exists() and not parent.is_dir() for parent in out.parents):
        raise FolderNotOursError(f"cannot make the folder {str(out)!r}: a part of its path is a file")
    if out.is_dir() and any(out.iterdir()):
        if not ((out / MARKER).is_file() or any((out / name).is_file() for name in ours)):
            raise FolderNotOursError(
                f"{str(out)!r} already holds files that trialsim report did not write (for example a run's results); "
                "nothing in it is overwritten: give a new folder with --out")
    return out
