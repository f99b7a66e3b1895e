"""Output folders: reports and planning results are written only into folders trialsim created.

:func:`claim_folder` creates the folder (or takes an empty one) and leaves a marker file in it; a
folder that already holds files but no marker (a run folder, a user's own folder) is refused, so
``trialsim report --from RUN --out RUN`` cannot overwrite what the run wrote.
"""
from __future__ import annotations

from pathlib import Path

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
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FolderNotOursError(f"{str(out)!r} is a file, not a folder; give a new folder with --out")
    if out.is_dir() and any(out.iterdir()):
        if not ((out / MARKER).is_file() or any((out / name).is_file() for name in ours)):
            raise FolderNotOursError(
                f"{str(out)!r} already holds files that trialsim report did not write (for example a run's results); "
                "nothing in it is overwritten: give a new folder with --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by trialsim report / planning; files here may be overwritten by it\n",
                              encoding="utf-8")
    return out
