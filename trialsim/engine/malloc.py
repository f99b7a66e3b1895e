"""glibc's allocator set for what a simulation does: allocate and free arrays of tens of MB, again and again.

By default glibc returns every freed block above its mmap threshold (adaptive, at most 32 MB) and
the heap's free top above 128 kB to the operating system, so the next block's arrays start on fresh
pages (100,000 minor page faults per 4,000 trials at 900 patients per arm). Keeping freed memory for
reuse cut a block's time by a fifth to a quarter there (0.67-0.74 s -> 0.53-0.55 s; the Mann-Whitney
search of the default config's length of stay, 1,000 trials per block).

Memory is kept within a task (a few consecutive blocks) and, up to :data:`KEEP_FREE_BYTES`, between
tasks; when more is free at a task's end, all of it is returned (:func:`release_memory`, after every task
on every backend, simulated or not: :mod:`trialsim.engine.backends`). So a worker between tasks holds
what it held before plus at most that much free memory, well inside the growth a loky worker is allowed
(:data:`trialsim.engine.backends.WORKER_GROWTH_BYTES`; loky replaces a worker whose memory it takes for
a leak), and the peak that the memory budget sizes is the same. Where each task is one block the gain
is about half (0.70 s -> 0.62 s a block in the same measurement).

Only where the allocator is glibc's (Linux); elsewhere, or with ``TRIALSIM_MALLOC=0``, nothing is
changed. The settings change no number: only where memory comes from. Peak resident memory (what
``--max-memory`` budgets) is unchanged.
"""
from __future__ import annotations

import ctypes
import os
import sys

ENV_SWITCH = "TRIALSIM_MALLOC"
M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # the largest glibc accepts on 64-bit systems: arrays below it come from the heap
TRIM_THRESHOLD = 2**30  # free memory at the heap's top kept for reuse, up to this much

_state: dict[str, object] = {}


def _glibc() -> tuple | None:
    """``(mallopt, malloc_trim)`` of glibc, or None (another platform or allocator, or ``TRIALSIM_MALLOC=0``)."""
    if "libc" not in _state:
        found = None
        if sys.platform.startswith("linux") and os.environ.get(ENV_SWITCH, "1") != "0":
            try:
                libc = ctypes.CDLL("libc.so.6")
                found = (libc.mallopt, libc.malloc_trim)
            except (OSError, AttributeError):  # not glibc (musl has no mallopt)
                found = None
        _state["libc"] = found
    return _state["libc"]


def tune_malloc() -> bool:
    """Set the thresholds once per process; True when they are in force."""
    if "done" in _state:
        return _state["done"]
    ok = False
    libc = _glibc()
    if libc is not None:
        mallopt = libc[0]
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    _state["done"] = ok
    return ok


# Free memory a process may keep between tasks. Handing back every freed page at each task's end made the next
# task fault them in again: the default config's planning on one core took 380,000-400,000 minor page faults and
# 2.5-2.7 s of system time that way, against 80,000 and 1.0 s keeping everything (and its peak resident memory
# the same, 820-870 MB). Kept up to this much, reused by the next task; above it, all of it is handed back.
KEEP_FREE_BYTES = 256 * 2**20


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33 and later): the allocator's totals, in bytes."""

    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def free_bytes() -> int | None:
    """Bytes the allocator holds free for reuse (glibc's ``mallinfo2().fordblks``, every arena); None where it does
    not say (not glibc, or a glibc older than 2.33)."""
    if "mallinfo2" not in _state:
        found = None
        if _glibc() is not None:
            try:
                found = ctypes.CDLL("libc.so.6").mallinfo2
                found.restype, found.argtypes = _MallInfo2, ()
            except (OSError, AttributeError):
                found = None
        _state["mallinfo2"] = found
    info = _state["mallinfo2"]
    return None if info is None else int(info().fordblks)


def release_memory(keep: int = KEEP_FREE_BYTES) -> None:
    """At the end of a task: return the allocator's free memory to the operating system when it holds more than
    ``keep`` bytes of it (where it does not say how much, always), tuned or not: with glibc's own thresholds too,
    freed arrays stay resident (its mmap threshold rises as large arrays are freed, so later ones come from the
    heap). Nothing where the allocator is not glibc's."""
    libc = _glibc()
    if libc is None:
        return
    free = free_bytes()
    if free is None or free > keep:
        libc[1](0)
