"""Output folders: reports and planning results are written only into folders trialsim created.

:func:`claim_folder` creates the folder (or takes an empty one) and leaves a marker file in it; a
folder that already holds files but no marker (a run folder, a user's own folder) is refused, so
``trialsim report --from RUN --out RUN`` cannot overwrite what the run wrote. :func:`staged_folder`
writes a whole report beside its folder and puts it in place when it is complete: an earlier report's
files never stay next to a later one's, and an interrupted report leaves the earlier one as it was.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from trialsim.config.loader import ConfigError

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
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by trialsim report / planning; files here may be overwritten by it\n",
                              encoding="utf-8")
    return out


def check_folder(out: str | Path, *, ours: tuple[str, ...] = ()) -> Path:
    """``out`` if :func:`claim_folder` would take it (nothing is created); see there for what raises."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FolderNotOursError(f"{str(out)!r} is a file, not a folder; give a new folder with --out")
    if out.is_dir() and any(out.iterdir()):
        if not ((out / MARKER).is_file() or any((out / name).is_file() for name in ours)):
            raise FolderNotOursError(
                f"{str(out)!r} already holds files that trialsim report did not write (for example a run's results); "
                "nothing in it is overwritten: give a new folder with --out")
    return out


@contextlib.contextmanager
def staged_folder(out: str | Path, *, ours: tuple[str, ...] = ()) -> Iterator[Path]:
    """A new folder beside ``out`` to write a whole result into; on success it replaces ``out``.

    ``out`` is checked first (:func:`check_folder`: before any work is done). On an exception or
    interruption the staging folder is removed and ``out`` is left as it was. A report written again
    into its folder replaces the folder whole, so no file of the earlier report (another design's sweep,
    a format not asked for this time) stays next to the new one.
    """
    out = check_folder(out, ours=ours)
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
    except (FileExistsError, NotADirectoryError):
        raise FolderNotOursError(f"cannot make the folder {str(out)!r}: a part of its path is a file") from None
    except OSError as exc:
        raise FolderNotOursError(f"cannot write beside {str(out)!r}: {exc.strerror or exc}") from None
    stage.chmod(0o777 & ~_umask())  # as mkdir makes folders (mkdtemp's are private)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
        os.replace(out, old / out.name)
        os.replace(stage, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(stage, out)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def replace_file(path: str | Path, write) -> Path:
    """``write(tmp)`` into a temporary file beside ``path``, then renamed over it: a kill or an error while writing
    leaves the earlier file (or none), never a part of the new one. The temporary name keeps the suffix (writers
    such as matplotlib choose the format by it)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
