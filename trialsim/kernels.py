"""Compiled loops (numba) for the few steps that numpy can only do as several passes over memory.

A trial's statistics are computed vectorised over trials: each numpy call is one pass over a
``(patients, trials)`` array, and a step such as "count the pairs ``x > y`` and look for an equal pair"
takes a comparison pass, a reduction pass and a temporary array per pair of patients. A kernel does the
same operations in one loop, a tile of trials at a time, trials innermost (contiguous, vectorised by the
compiler), so the values stay in the cache. Each kernel does exactly the floating-point operations of the
numpy code it replaces, in the same order (numba keeps IEEE semantics: no fast-math, no contraction into
fused multiply-adds), so results are bit for bit those of numpy, on every machine; tests compare them with
the numpy formulations (tests/test_kernels.py, tests/test_generation_fast_paths.py).

Here: the Mann-Whitney pair counts and tie search, the sums over patients of the mean and t tests, and the
standard normals of patient-major draws (numpy's algorithm, compiled: the same numbers at a quarter of the cost).
The marker panel's day-by-day levels (``endpoints.markers._marker_day``) use :func:`kernel` too.

Costs outside the loops: numba's import (about 0.1 s) and its compiler's start (0.2 s) in a process's first
kernel call, never at import (the command line and the workers import this module without numba); each
kernel's one signature is compiled once per machine (about 4 s for all of them, on the first run) and then
read from numba's on-disk cache (``cache=True``: ``__pycache__`` beside the source, or the user's cache
folder where that is read-only; ``NUMBA_CACHE_DIR`` moves it).
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import threading
import warnings
from collections.abc import Callable, Iterator

import numpy as np

__all__ = ["available", "compiled", "compiled_loops", "kernel", "readonly", "self_check", "standard_normals",
           "pair_counts_and_ties", "sums_over_patients", "MAX_SUMMED"]


_COMPILED = contextvars.ContextVar("trialsim_compiled_loops", default=False)


def available() -> bool:
    """Whether numba is installed (found, not imported): without it, every step keeps its numpy formulation."""
    return importlib.util.find_spec("numba") is not None


def compiled() -> bool:
    """Whether the steps that have a compiled loop use it here (else their numpy formulation: the same bits): where
    :func:`compiled_loops` turned them on and every :func:`self_check` passed in this process."""
    return _COMPILED.get() and _verified()


_CHECKS: list[Callable[[], bool]] = []
_failed: list[str] = []
_n_checked = 0
_check_lock = threading.Lock()


def self_check(check: Callable[[], bool]) -> Callable[[], bool]:
    """Decorator registering ``check() -> bool``: whether a compiled loop gives, on a small fixed input, the very bits
    of its numpy formulation. Each runs once per process, before its module's loops are first used; one that fails
    (a platform whose compiler or maths library rounds differently) turns the loops off in that process, with a
    warning, so that a seed gives the same numbers on every machine."""
    _CHECKS.append(check)
    return check


def _verified() -> bool:
    global _n_checked
    if _n_checked < len(_CHECKS):  # checks registered since (their modules imported since)
        with _check_lock:
            while _n_checked < len(_CHECKS):
                check = _CHECKS[_n_checked]
                if not check():
                    _failed.append(f"{check.__module__}.{check.__qualname__}")
                    _warn_once(f"a compiled loop gives other numbers than numpy on this machine ({_failed[-1]}); "
                               "trialsim uses numpy's passes instead (the same numbers, slower)")
                _n_checked += 1
    return not _failed


@contextlib.contextmanager
def compiled_loops(on: bool = True) -> Iterator[None]:
    """Within the block (this thread or task), the steps that have a compiled loop use it (``on``) or their numpy
    formulation. Either gives the same numbers; the loops are faster, after numba's start-up (0.3 s a process, and
    the compilation on a machine's first run): the runner turns them on for runs long enough to pay for it."""
    token = _COMPILED.set(bool(on))
    try:
        yield
    finally:
        _COMPILED.reset(token)


class _Kernel:
    """A function compiled by numba on its first call, for one signature (``njit(signature, cache=True, nogil=True)``,
    numpy's floating-point error model: 0/0 is NaN, as in numpy). One signature, with inputs of any strides where
    the loops copy them first, makes one compilation per machine (about half a second each) and never another in
    the middle of a run. Where numba finds no folder to cache it in (a read-only install without a writable home;
    ``NUMBA_CACHE_DIR`` names one), it is compiled in each process instead, with a warning."""

    def __init__(self, fn: Callable, signature: str | None):
        self.py_func, self.signature = fn, signature
        self.__doc__, self.__name__ = fn.__doc__, fn.__name__
        self._compiled: Callable | None = None
        self._lock = threading.Lock()

    def _jit(self, cache: bool) -> Callable:
        import numba  # heavy (about 0.1 s, and 0.2 s more for the first kernel): only where one runs

        options = dict(cache=cache, nogil=True, error_model="numpy")
        return (numba.njit(self.signature, **options) if self.signature else numba.njit(**options))(self.py_func)

    def __call__(self, *args):
        compiled = self._compiled
        if compiled is not None:
            return compiled(*args)
        with self._lock:
            if self._compiled is not None:
                return self._compiled(*args)
            try:  # compiled here (with a signature) or by the first call (without one)
                jitted = self._jit(cache=True)
                result = jitted(*args)
            except RuntimeError as exc:
                if "cannot cache" not in str(exc):
                    raise
                _warn_once(f"numba has no folder to cache trialsim's compiled loops in ({exc}); they are compiled in "
                           "every process instead (about 4 s each): set NUMBA_CACHE_DIR to a writable folder")
                jitted = self._jit(cache=False)
                result = jitted(*args)
            self._compiled = jitted
            return result


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def readonly(dtype: str, ndim: int, layout: str = "A") -> str:
    """A signature's type of an array the kernel only reads (writable arrays are accepted too)."""
    return f"Array({dtype}, {ndim}, {layout!r}, readonly=True)"


def kernel(signature: str | None) -> Callable[[Callable], _Kernel]:
    """Decorator: the function compiled by numba for ``signature`` on its first call (None: for the types of its
    first call's arguments, for arguments a signature cannot name); ``.py_func`` is the plain Python function."""
    return lambda fn: _Kernel(fn, signature)


TILE = 512  # trials per tile of a kernel's loops: every patient's values of a tile stay in the L1/L2 cache


@kernel(f"void({readonly('float64', 2)}, {readonly('float64', 2)}, boolean, uint16[::1], boolean[::1])")
def _pair_counts_and_ties(small, large, small_first, counts, tied):  # pragma: no cover - compiled
    n_small, n_trials = small.shape
    n_large = large.shape[0]
    xs = np.empty((n_small, TILE))  # the tile's values, contiguous whatever the inputs' strides (vectorised loops)
    xl = np.empty((n_large, TILE))
    for start in range(0, n_trials, TILE):
        stop = min(start + TILE, n_trials)
        m = stop - start
        for i in range(n_small):
            xs[i, :m] = small[i, start:stop]
        for j in range(n_large):
            xl[j, :m] = large[j, start:stop]
        c = counts[start:stop]
        e = tied[start:stop]
        for t in range(m):
            c[t] = 0
            e[t] = False
        for i in range(n_small):
            a = xs[i]
            for j in range(n_large):
                b = xl[j]
                if small_first:
                    for t in range(m):
                        c[t] += a[t] > b[t]
                        e[t] |= a[t] == b[t]
                else:
                    for t in range(m):
                        c[t] += b[t] > a[t]
                        e[t] |= a[t] == b[t]
        for x in (xs, xl):
            for i in range(x.shape[0]):
                a = x[i]
                for j in range(i + 1, x.shape[0]):
                    b = x[j]
                    for t in range(m):
                        e[t] |= a[t] == b[t]


def pair_counts_and_ties(xc: np.ndarray, xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``#{(i, j): xc[i] > xt[j]}`` per trial, and whether any two of the pooled values are equal, for
    patient-major float arrays ``(patients, trials)`` (NaN is neither greater nor equal). At most 65,535
    pairs (the counts are uint16, as numpy's)."""
    xc, xt = np.asarray(xc, dtype=np.float64), np.asarray(xt, dtype=np.float64)
    if xc.shape[0] * xt.shape[0] > np.iinfo(np.uint16).max:
        raise ValueError(f"{xc.shape[0]} x {xt.shape[0]} pairs: more than the 65,535 a count holds")
    counts = np.empty(xc.shape[1:], dtype=np.uint16)
    tied = np.empty(xc.shape[1:], dtype=bool)
    small_first = xc.shape[0] <= xt.shape[0]
    small, large = (xc, xt) if small_first else (xt, xc)
    _pair_counts_and_ties(small, large, small_first, counts, tied)
    return counts, tied


MAX_SUMMED = 128  # patients a kernel sums as numpy does (eight running sums); longer arms take numpy's path


@kernel(f"void({readonly('float64', 2)}, {readonly('float64', 1, 'C')}, boolean, intp[::1], float64[::1])")
def _sums_over_patients(columns, mean, squares, counts, totals):  # pragma: no cover - compiled
    n, n_trials = columns.shape
    partial = np.empty((8, TILE))
    row = np.empty(TILE)
    tile = np.empty(TILE)
    for start in range(0, n_trials, TILE):
        stop = min(start + TILE, n_trials)
        m = stop - start
        total = totals[start:stop]
        count = counts[start:stop]
        centre = mean[start:stop]
        for t in range(m):
            total[t] = 0.0
            count[t] = 0
        for i in range(n):
            tile[:m] = columns[i, start:stop]  # contiguous, whatever the input's strides (vectorised loops)
            if squares:  # squared deviations from the mean, 0 where the value (or the mean) is NaN
                for t in range(m):
                    d = tile[t] - centre[t]
                    row[t] = d * d if d == d else 0.0
                    count[t] += tile[t] == tile[t]
            else:  # the value, 0 where it is missing; counted where it is not
                for t in range(m):
                    seen = tile[t] == tile[t]
                    row[t] = tile[t] if seen else 0.0
                    count[t] += seen
            # the additions of numpy's pairwise sum of a row of n <= 128 values (see continuous.sum_patients)
            if n < 8:
                if i == 0:
                    for t in range(m):
                        total[t] = row[t]
                else:
                    for t in range(m):
                        total[t] += row[t]
            elif i < 8:
                for t in range(m):
                    partial[i, t] = row[t]
            elif i < n - n % 8:
                k = i % 8
                for t in range(m):
                    partial[k, t] += row[t]
            else:
                for t in range(m):
                    total[t] += row[t]
            if n >= 8 and i == n - n % 8 - 1:  # the eight running sums are complete: fold them
                for t in range(m):
                    total[t] = (partial[0, t] + partial[1, t]) + (partial[2, t] + partial[3, t])
                    total[t] += (partial[4, t] + partial[5, t]) + (partial[6, t] + partial[7, t])
        for t in range(m):
            total[t] += 0.0  # numpy adds a row's sum to its identity: -0.0 becomes 0.0


def sums_over_patients(columns: np.ndarray, mean: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per trial of a patient-major float array ``(patients, trials)`` of at most :data:`MAX_SUMMED` patients: the
    count of observed (non-NaN) values and their sum (0 for each missing one), or with ``mean`` (one per trial) the
    count and the sum of squared deviations from it (0 for each NaN deviation). Bit for bit
    ``continuous.sum_patients`` of the same values: numpy's pairwise additions, in numpy's order, per trial."""
    if columns.ndim != 2 or columns.shape[0] > MAX_SUMMED:
        raise ValueError(f"sums over patients need (patients <= {MAX_SUMMED}, trials) arrays, got {columns.shape}")
    columns = np.asarray(columns, dtype=np.float64)  # any strides: a copy would cost more than the sums
    squares = mean is not None
    centre = np.ascontiguousarray(mean, dtype=np.float64) if squares else np.empty(columns.shape[1])
    counts = np.empty(columns.shape[1], dtype=np.intp)
    totals = np.empty(columns.shape[1])
    _sums_over_patients(columns, centre, squares, counts, totals)
    return counts, totals


@kernel(None)  # a numpy Generator has no type a signature string names
def _normals_into(generator, out, start, stop):  # pragma: no cover - compiled
    n, _, width = out.shape
    for p in range(n):
        for t in range(start, stop):
            for k in range(width):
                out[p, t, k] = generator.standard_normal()


def standard_normals(generators, sizes, n_patients: int, extra: tuple[int, ...] = ()) -> np.ndarray:
    """``np.concatenate([g.standard_normal((n_patients, m) + extra) for g, m in zip(generators, sizes)], axis=1)``:
    the same numbers (numba draws with numpy's own algorithm from the same bit generator, whose state it advances
    as numpy does) at about a quarter of numpy's cost (2.4 ns a normal against 8.2 here), written in place."""
    width = int(np.prod(extra, dtype=np.int64))
    out = np.empty((n_patients, sum(sizes)) + tuple(extra))
    view = out.reshape(n_patients, sum(sizes), width)
    start = 0
    for generator, m in zip(generators, sizes):
        if m and width and n_patients:
            _normals_into(generator, view, start, start + m)
        start += m
    return out


@self_check
def _normals_are_numpys() -> bool:
    def generators():
        return [np.random.Generator(np.random.PCG64(np.random.SeedSequence(20240831, spawn_key=(b,)))) for b in (0, 1)]

    got = standard_normals(generators(), (300, 7), 5, (4,))
    expected = np.concatenate([g.standard_normal((5, m, 4)) for g, m in zip(generators(), (300, 7))], axis=1)
    return got.tobytes() == expected.tobytes()
