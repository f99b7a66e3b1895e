"""Files written whole: through a temporary file beside the target and an atomic rename.

Every file trialsim writes (run folders, reports, figures, the exact-table cache) goes through
:func:`replace_file`, so a kill, an error or a full disk while writing leaves the earlier file (or none),
never a part of the new one.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

# files are created as open() creates them (mkstemp's are private): read once, restored at once
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def replace_file(path: str | Path, content: str | bytes | Callable[[Path], Any], *, sync: bool = False,
                 written: Callable[[Path], Any] | None = None) -> Path:
    """Write ``path`` whole: ``content`` (text as UTF-8, bytes, or a function writing to the path it is given,
    e.g. ``lambda tmp: frame.to_csv(tmp)``) goes to a uniquely named temporary file in the same folder, which is
    renamed over ``path`` when complete. The temporary name keeps the suffix (writers such as matplotlib choose
    the format by it). ``sync``: flushed to the disk before the rename (a run's manifest and checkpoints).
    ``written``: called with the complete temporary file before the rename (a :class:`Ledger` takes its checksum).

    Raises whatever the writing raised (``OSError`` for a full disk or a read-only folder), after removing the
    temporary file.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".partial{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        if isinstance(content, str):
            tmp.write_text(content, encoding="utf-8")
        elif isinstance(content, bytes):
            tmp.write_bytes(content)
        else:
            content(tmp)
        if sync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        if written is not None:
            written(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# ----------------------------------------------------------------------------------- checksums
# A result is never trusted unchecked: each file written into a results or report folder has its SHA-256 recorded
# (a :class:`Ledger`) in the folder's sealed JSON file (provenance.json, planning.json, compare.json), whose own
# checksum covers its content; readers check both before parsing anything.
SEAL = "sha256"  # the key of a sealed JSON file's own checksum
RERUN = "run the command again to rebuild it"


class DamagedFileError(ValueError):
    """A file of a results folder is missing, unreadable, or not what trialsim wrote (one line naming it)."""


def sha256_file(path: str | Path) -> str:
    """The SHA-256 (hex) of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class Ledger:
    """The SHA-256 of each file written into ``folder``, by its path relative to it (``/`` separated)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.files: dict[str, str] = {}

    def name(self, path: str | Path) -> str:
        return Path(path).relative_to(self.folder).as_posix()

    def write(self, path: str | Path, content: str | bytes | Callable[[Path], Any], *, sync: bool = False) -> Path:
        """:func:`replace_file`, recording the checksum of what was written (taken before the rename)."""
        return replace_file(path, content, sync=sync,
                            written=lambda tmp: self.files.__setitem__(self.name(path), sha256_file(tmp)))

    def forget(self, path: str | Path) -> None:
        self.files.pop(self.name(path), None)


def canonical_json(data: Any) -> bytes:
    """A JSON value as bytes that do not depend on key order or spacing (what checksums of JSON values hash)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _canonical_sha(data: dict) -> str:
    return hashlib.sha256(canonical_json({k: v for k, v in data.items() if k != SEAL})).hexdigest()


def sealed_json(data: dict, *, default: Callable[[Any], Any] | None = None) -> str:
    """``data`` as JSON text with its own checksum under :data:`SEAL` (see :func:`read_sealed`)."""
    plain = json.loads(json.dumps(data, default=default))  # the values as they read back
    return json.dumps({**plain, SEAL: _canonical_sha(plain)}, indent=1) + "\n"


def read_sealed(path: str | Path) -> dict:
    """A file written with :func:`sealed_json`, checked against its checksum.

    Raises
    ------
    DamagedFileError
        The file is missing, not UTF-8 JSON, carries no checksum (an earlier trialsim's), or its
        content does not match it.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise DamagedFileError(f"{path} is missing: {RERUN}") from None
    except OSError as exc:
        raise DamagedFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise DamagedFileError(f"{path} is damaged (not the JSON trialsim wrote: {str(exc).splitlines()[0]}): "
                               f"{RERUN}") from None
    if not isinstance(data, dict) or not isinstance(data.get(SEAL), str):
        raise DamagedFileError(f"{path} carries no checksum (written by an earlier trialsim, or not by trialsim), so "
                               f"its folder cannot be trusted: {RERUN}")
    if data[SEAL] != _canonical_sha(data):
        raise DamagedFileError(f"{path} was changed after trialsim wrote it (its content does not match its "
                               f"checksum): {RERUN}")
    return data


def verify_files(folder: str | Path, names: Iterable[str], files: Any, *, listed_in: str) -> None:
    """Check that each of ``names`` (paths relative to ``folder``) is the file whose SHA-256 ``files`` records.

    Raises
    ------
    DamagedFileError
        A file is not recorded in ``listed_in`` (``files`` maps name -> SHA-256), is missing, or differs.
    """
    folder = Path(folder)
    if not isinstance(files, dict):
        raise DamagedFileError(f"{folder / listed_in} records no checksums (written by an earlier trialsim), so its "
                               f"folder cannot be trusted: {RERUN}")
    for name in names:
        path = folder / name
        if name not in files:
            raise DamagedFileError(f"{path} is not one of the files trialsim wrote into {folder} ({listed_in} does not "
                                   f"list it): {RERUN}")
        try:
            found = sha256_file(path)
        except FileNotFoundError:
            raise DamagedFileError(f"{path} is missing ({listed_in} lists it): {RERUN}") from None
        except OSError as exc:
            raise DamagedFileError(f"cannot read {path}: {exc.strerror or exc}") from None
        if found != files[name]:
            raise DamagedFileError(f"{path} was changed after trialsim wrote it (its SHA-256 differs from {listed_in}'s): "
                                   f"{RERUN}")
