"""glibc's allocator set for what a simulation does: allocate and free arrays of tens of MB, again and again.

By default glibc returns every freed block above its mmap threshold (adaptive, at most 32 MB) and
the heap's free top above 128 kB to the operating system, so the next block's arrays start on fresh
pages (100,000 minor page faults per 4,000 trials at 900 patients per arm). Keeping freed memory for
reuse cut a block's time by a fifth to a quarter there (0.67-0.74 s -> 0.53-0.55 s; the Mann-Whitney
search of the default config's length of stay, 1,000 trials per block).

Memory is kept within a task (a few consecutive blocks) and between tasks until the process has grown by
more than :data:`KEEP_FREE_BYTES` since it last handed its free memory back; then all of it is returned
(:func:`release_memory`, after every task on every backend, simulated or not: :mod:`trialsim.engine.backends`).
So a worker between tasks holds at most that much more than after its last hand-back, well inside the
growth a loky worker is allowed (:data:`trialsim.engine.backends.WORKER_GROWTH_BYTES`; loky replaces a
worker whose memory it takes for a leak). A task's peak can be up to that much higher where the kept free
memory does not fit its arrays: like the interpreter and its libraries, it comes on top of the memory budget
(:mod:`trialsim.engine.memory`). Where each task is one block the gain is about half (0.70 s -> 0.62 s a
block in the same measurement).

Only where the allocator is glibc's (Linux); elsewhere, or with ``TRIALSIM_MALLOC=0``, nothing is
changed. The settings change no number: only where memory comes from.
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


# Resident memory a process may gain between two hand-backs. Handing back every freed page at each task's end made
# the next task fault them in again: the default config's planning on one core took 380,000-400,000 minor page
# faults and 2.5-2.7 s of system time that way, against 80,000 and 1.0 s keeping everything (its peak resident
# memory about the same, 820-870 MB). So free memory is handed back only once the process has grown by more than
# this since the last hand-back (its resident size, which counts only pages really held: glibc's own count of free
# bytes also counts pages it has already handed back, and would then never let memory be kept again).
KEEP_FREE_BYTES = 256 * 2**20


def resident_bytes() -> int | None:
    """This process's resident memory (Linux's /proc/self/statm); None where the system does not say."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def release_memory(keep: int = KEEP_FREE_BYTES) -> None:
    """At the end of a task: return the allocator's free memory to the operating system, unless the process has
    grown by at most ``keep`` bytes since it last did (where its size is unknown, always), tuned or not: with glibc's
    own thresholds too, freed arrays stay resident (its mmap threshold rises as large arrays are freed, so later
    ones come from the heap). Nothing where the allocator is not glibc's."""
    libc = _glibc()
    if libc is None:
        return
    now, after_last = resident_bytes(), _state.get("resident")
    if now is not None and after_last is not None and now - after_last <= keep:
        return
    libc[1](0)
    _state["resident"] = resident_bytes()
