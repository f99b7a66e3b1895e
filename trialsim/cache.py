"""Arrays that are slow to build and never change, kept on disk once per machine.

Boschloo p-value tables and rejection regions take from milliseconds to seconds per pair of arm
sizes and are the same on every run, in every worker process, for every user of the machine. So are
the exact answers of the shipped tests that a command computes again and again on an unchanged design:
a design's exact power and size rows (:mod:`trialsim.exact`), the exact sample-size scans and the exact
MDE bisections of planning (never a plug-in's, whose code can change under the same package version). They are
kept in the user cache folder (``platformdirs.user_cache_dir("trialsim")``), one ``.npz`` file per
array, named by a hash of what the array depends on (its kind, the builder's parameters, the package
version and :data:`FORMAT`).

Trust nothing read back
    A file is used only when it loads without error, holds the key it was written for (so a hash
    collision or a renamed file cannot pass), has the expected dtype and shape, and its SHA-256 matches
    the data. Anything else (a truncated file, flipped bits, a file of another version) is ignored, and
    the array is rebuilt and written again.

Concurrent writers
    Each writer writes a temporary file in the cache folder and renames it into place (atomic on POSIX
    and Windows); two processes building the same array write the same bytes, so the last rename wins
    and a reader never sees half a file. No lock is needed.

Switches (environment, read on every call so that tests and workers follow them)
    ``TRIALSIM_CACHE_DIR``: use this folder instead of the user cache folder.
    ``TRIALSIM_CACHE=0`` (or ``off``, ``false``, ``no``): never read or write the cache.
    A folder that cannot be created or written is not an error: the array is built and not kept.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import platformdirs

from trialsim.files import replace_file
from trialsim.version import __version__

__all__ = ["FORMAT", "ENV_DIR", "ENV_SWITCH", "cache_dir", "cached_array", "cache_path", "kept", "keep"]

# Bump when a cached builder changes what it computes (the package version alone does not change
# between development commits): the tables' builders, exact power, the scans' and the MDE's searches, and the
# shipped families' binary laws (the exact MDE keeps the law's config, not the code that turns it into rates).
FORMAT = 3
ENV_DIR = "TRIALSIM_CACHE_DIR"
ENV_SWITCH = "TRIALSIM_CACHE"
_OFF = {"0", "off", "false", "no"}


def cache_dir() -> Path | None:
    """The folder of cached arrays, or None when the cache is switched off (``TRIALSIM_CACHE=0``)."""
    if os.environ.get(ENV_SWITCH, "").strip().lower() in _OFF:
        return None
    where = os.environ.get(ENV_DIR)
    return Path(where) if where else Path(platformdirs.user_cache_dir("trialsim")) / "tables"


def _key_text(kind: str, key: dict[str, Any]) -> str:
    return json.dumps({"kind": kind, "key": key, "version": __version__, "format": FORMAT}, sort_keys=True)


def cache_path(kind: str, key: dict[str, Any]) -> Path | None:
    """Where the array of ``kind`` with parameters ``key`` is kept (None when the cache is off)."""
    folder = cache_dir()
    if folder is None:
        return None
    digest = hashlib.sha256(_key_text(kind, key).encode()).hexdigest()[:32]
    return folder / f"{kind}-{digest}.npz"


def _checksum(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _read(path: Path, key_text: str, dtype: np.dtype, shape: tuple[int, ...] | None) -> np.ndarray | None:
    """The array kept at ``path`` if it passes every check, else None."""
    try:
        with np.load(path, allow_pickle=False) as f:
            data = f["data"]
            stored_key = str(f["key"])
            stored_sum = str(f["sha256"])
    except Exception:  # missing, truncated, not a zip, bad CRC, wrong members: rebuild (never trust it)
        return None
    if stored_key != key_text or data.dtype != dtype or (shape is not None and data.shape != shape) \
            or stored_sum != _checksum(data):
        return None
    return data


def _write(path: Path, key_text: str, array: np.ndarray) -> None:
    """Written whole (:func:`trialsim.files.replace_file`); failures are ignored."""
    buffer = io.BytesIO()
    np.savez(buffer, data=array, key=np.array(key_text), sha256=np.array(_checksum(array)))
    # a read-only folder or a full disk is no error: the array is still returned, just not kept
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, buffer.getvalue())


def cached_array(kind: str, key: dict[str, Any], build: Callable[[], np.ndarray], *, dtype,
                 shape: tuple[int, ...] | None) -> np.ndarray:
    """The array ``build()`` returns, read from the disk cache when a valid copy is there.

    Parameters
    ----------
    kind : str
        What the array is (a file-name prefix, e.g. ``"boschloo-pvalues"``).
    key : dict
        Every parameter the array depends on (JSON-serialisable); the package version and
        :data:`FORMAT` are added.
    build : callable
        Computes the array when no valid copy is kept.
    dtype, shape
        What a valid array looks like; a kept file that differs is rebuilt. ``shape=None``: any shape (a
        result whose length is only known once computed; its checksum and key are still checked).

    Returns
    -------
    ndarray
        Read-only.
    """
    dtype = np.dtype(dtype)
    shape = None if shape is None else tuple(int(s) for s in shape)
    path = cache_path(kind, key)
    text = _key_text(kind, key)
    array = _read(path, text, dtype, shape) if path is not None else None
    if array is None:
        array = np.asarray(build())
        if array.dtype != dtype or (shape is not None and array.shape != shape):
            raise ValueError(f"{kind}: built an array of {array.dtype} {array.shape}, expected {dtype} {shape}")
        if path is not None:
            _write(path, text, array)
    array.flags.writeable = False
    return array


def kept(kind: str, key: dict[str, Any], *, dtype, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
    """The valid kept array of ``kind`` and ``key`` (read-only), or None: for callers that compute what is missing
    together (in parallel) and then :func:`keep` each result; :func:`cached_array` does both for one array."""
    path = cache_path(kind, key)
    if path is None:
        return None
    array = _read(path, _key_text(kind, key), np.dtype(dtype), None if shape is None else tuple(int(s) for s in shape))
    if array is not None:
        array.flags.writeable = False
    return array


def keep(kind: str, key: dict[str, Any], array: np.ndarray) -> None:
    """Write ``array`` as the kept array of ``kind`` and ``key`` (atomically; nothing when the cache is off or the
    folder cannot be written)."""
    path = cache_path(kind, key)
    if path is not None:
        _write(path, _key_text(kind, key), np.asarray(array))
