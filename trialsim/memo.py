"""A bounded per-process memo of one block's draws, for scenarios that share them (planning's grid points).

The grid points of an effect grid (minimal detectable effects, power against effect) share the seed and
the block layout, and every component draws from its own stream keyed by (seed, block, component id)
(:mod:`trialsim.rng`). So a component whose inputs do not depend on the varied parameter (the patients'
covariates, the allocation, an event the varied endpoint links to, the follow-up) gives bit-identical
values at every grid point of a block: drawn once per block and worker, not once per grid point.

A key must name everything the value is computed from (the caller's job: seed, block, shape, the config
sections read, and the keys of the values read), so that an entry is never returned for inputs that
differ in any way. Values are dicts, tuples or lists of NumPy arrays (and immutable scalars). A kept
value's arrays are made read-only and handed out as they are (copying them took a tenth of a grid's
time): whatever writes into one fails loudly instead of changing another scenario's numbers, and the
same array (same memory layout) gives the same bits in every later computation. Dicts and lists are
handed out as fresh containers, so adding a key to one changes no other.

The memo holds at most :data:`MEMO_BYTES` (least recently used entries go first) and no entry above a
quarter of that: large blocks (sample-size searches at hundreds of patients per arm) are not kept; they
would hold memory the engine's budget does not count.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

import cachetools
import numpy as np

MEMO_BYTES = 64 * 2**20  # per process, on top of the engine's memory budget (a worker's interpreter takes ~150 MB)
ENTRY_SHARE = 4  # an entry over MEMO_BYTES / ENTRY_SHARE is not kept


class BlockMemo:
    """Values computed from one block's streams, by key, least recently used first out.

    Thread-safe (the threading backend runs tasks of one process at once); a value is computed outside
    the lock, so two threads may compute the same one (the same bits either way).
    """

    def __init__(self, max_bytes: int = MEMO_BYTES):
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value of ``key``: the kept one, else ``make()`` (kept, read-only, when it may be)."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
        if found is not None:
            return _containers(found[0])
        value = make()
        size = _nbytes(value)
        if size is None or not self.fits(size):
            return value
        _freeze(value)
        self._put(key, value, size)
        return _containers(value)

    def fits(self, nbytes: int) -> bool:
        """Whether a value of ``nbytes`` would be kept (callers that build a value only to keep it ask first)."""
        return nbytes <= self.max_bytes // ENTRY_SHARE

    def _put(self, key: Hashable, value: Any, size: int) -> None:
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, gone) = self._entries.popitem(last=False)
                self._bytes -= gone

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)


def _nbytes(value: Any) -> int | None:
    """Bytes of the arrays in ``value``; None when it holds something that cannot be kept (an object array, a
    mutable object other than a dict or list)."""
    if isinstance(value, np.ndarray):
        return value.nbytes if value.dtype != object else None
    if isinstance(value, dict):
        parts = [_nbytes(v) for v in value.values()]
    elif isinstance(value, (tuple, list)):
        parts = [_nbytes(v) for v in value]
    elif value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return 0
    else:
        return None
    return None if any(p is None for p in parts) else sum(parts)


def _freeze(value: Any) -> None:
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, dict):
        for v in value.values():
            _freeze(v)
    elif isinstance(value, (tuple, list)):
        for v in value:
            _freeze(v)


def _containers(value: Any) -> Any:
    """``value`` with fresh dicts and lists around the same (read-only) arrays."""
    if isinstance(value, dict):
        return {k: _containers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_containers(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_containers(v) for v in value)
    return value


_PROCESS_MEMO = BlockMemo()


def process_memo() -> BlockMemo:
    """This process's memo (each worker process has its own)."""
    return _PROCESS_MEMO


def bytes_cache(max_bytes: int, size_of: Callable[[Any], int] = lambda value: value.nbytes) -> Callable:
    """A least-recently-used cache of a function's values bounded in bytes, not entries (thread-safe).

    For caches of arrays whose size grows with the patients per arm: a count bound that is harmless at 10
    per arm holds hundreds of MB at 1,000 (512 rejection regions of 1 MB). A value larger than the bound
    is returned, not kept. The decorated function keeps ``cache_clear()``.
    """
    return cachetools.cached(cachetools.LRUCache(maxsize=max_bytes, getsizeof=size_of), lock=threading.Lock())
