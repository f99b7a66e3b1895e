"""Files written whole: through a temporary file beside the target and an atomic rename.

Every file trialsim writes (run folders, reports, figures, the exact-table cache) goes through
:func:`replace_file`, so a kill, an error or a full disk while writing leaves the earlier file (or none),
never a part of the new one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

# files are created as open() creates them (mkstemp's are private): read once, restored at once
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def replace_file(path: str | Path, content: str | bytes | Callable[[Path], Any], *, sync: bool = False) -> Path:
    """Write ``path`` whole: ``content`` (text as UTF-8, bytes, or a function writing to the path it is given,
    e.g. ``lambda tmp: frame.to_csv(tmp)``) goes to a uniquely named temporary file in the same folder, which is
    renamed over ``path`` when complete. The temporary name keeps the suffix (writers such as matplotlib choose
    the format by it). ``sync``: flushed to the disk before the rename (a run's manifest and checkpoints).

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
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
