"""Random streams: one root seed, one independent stream per (block, component).

Block ``b`` of a run draws the randomness of component ``c`` (``"population"``, ``"allocation"``,
``"endpoint/<id>"``, ``"endpoint/<id>/day/5"``, ...) from

    SeedSequence(seed, spawn_key=(b, component_key(c)))

where ``component_key`` is a stable 64-bit hash of the component's id. So:

* any block, and so any simulated trial, can be regenerated on its own (``trialsim replay``);
* results do not depend on how blocks are spread over workers (any ``n_jobs``, any chunking);
* adding, removing or re-ordering an endpoint, a test or a sampling day leaves the draws of every
  other component unchanged: each draws from its own stream, named by what it is, not by its place.

Within a component, patient-level draws are made patient-major (shape ``(n_patients, n_trials)``,
then transposed), so the first ``n`` patients of a trial are the same whatever the trial's size.
"""
from __future__ import annotations

import hashlib
import math
from functools import lru_cache

import numpy as np

from trialsim.kernels import compiled, standard_normals


def draw_seed() -> int:
    """A fresh root seed from the operating system's entropy (recorded in every result)."""
    return int(np.random.SeedSequence().entropy)


@lru_cache(maxsize=4096)
def component_key(component: str) -> int:
    """Stable 64-bit integer of a component id (the same on every machine and Python version)."""
    return int.from_bytes(hashlib.sha256(component.encode("utf-8")).digest()[:8], "little")


def component_rng(seed: int, block: int, component: str) -> np.random.Generator:
    """The Generator of ``component`` in block ``block`` of the run with root ``seed``."""
    ss = np.random.SeedSequence(seed, spawn_key=(block, component_key(component)))
    return np.random.Generator(np.random.PCG64(ss))


class Streams:
    """The random streams of one block: ``streams("endpoint", cid)`` -> its Generator (a :class:`BlockDraws` for the
    streams of several blocks, which makes the draws trialsim's components make).

    Each call returns a fresh Generator at the start of that component's stream, so a component that
    asks twice gets the same numbers twice; components ask once and keep it.

    ``memo``: where values computed from this block's streams may be kept for other scenarios of the run
    that draw the same ones (a :class:`trialsim.memo.BlockMemo`; None: nothing is kept).

    ``sizes``: the streams of the consecutive blocks ``block, block + 1, ...`` holding these many trials, drawn as
    one batch of their trials (:class:`BlockDraws`): each block's trials get the numbers they get on their own.
    """

    def __init__(self, seed: int, block: int, memo=None, sizes: tuple[int, ...] | None = None):
        self.seed = int(seed)
        self.block = int(block)
        self.memo = memo
        self.sizes = None if sizes is None else tuple(int(m) for m in sizes)

    @property
    def key(self) -> tuple:
        """What these streams are: the same key, the same numbers (for the memo's keys)."""
        return (self.seed, self.block, self.sizes)

    def __call__(self, *parts: str):
        component = "/".join(parts)
        if self.sizes is None:
            return component_rng(self.seed, self.block, component)
        return BlockDraws([component_rng(self.seed, self.block + i, component) for i in range(len(self.sizes))],
                          self.sizes)


# the position of ``size`` among the positional arguments of the Generator methods BlockDraws makes
_SIZE_AT = {"random": 0, "standard_normal": 0, "standard_exponential": 0, "normal": 2, "uniform": 2, "gumbel": 2,
            "exponential": 1}


class BlockDraws:
    """One component's Generators in consecutive blocks, drawn as one batch of their trials.

    A draw gives what each block's Generator gives for its own trials, concatenated along the trial axis:
    axis 1 of a patient-major draw (:func:`patient_major`), axis 0 of any other draw, whose ``size`` must then put
    the trials first (as every draw of trialsim's own components does). The copy costs about a tenth of the draw.
    """

    def __init__(self, generators: list[np.random.Generator], sizes: tuple[int, ...]):
        self.generators, self.sizes, self.n_trials = generators, sizes, sum(sizes)

    def patient_major(self, method: str, n_trials: int, n_patients: int, *args, extra: tuple = ()) -> np.ndarray:
        self._check(n_trials)
        if method == "standard_normal" and not args and compiled():
            return standard_normals(self.generators, self.sizes, n_patients, extra)
        return np.concatenate([getattr(g, method)(*args, size=(n_patients, m) + extra)
                               for g, m in zip(self.generators, self.sizes)], axis=1)

    def _check(self, n_trials) -> None:
        if n_trials != self.n_trials:
            raise ValueError(f"a draw for {n_trials} trials from the streams of blocks holding {self.n_trials}")

    def __getattr__(self, method: str):
        if method not in _SIZE_AT:
            raise AttributeError(f"{method!r} is not a draw the streams of several blocks make (they make "
                                 f"{', '.join(sorted(_SIZE_AT))})")
        at = _SIZE_AT[method]

        def draw(*args, size=None, **options):
            if len(args) > at:
                size, args = args[at], args[:at] + args[at + 1:]
            shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size or ())
            self._check(shape[0] if shape else None)
            if any(np.ndim(a) for a in (*args, *options.values()) if not isinstance(a, (str, type, np.dtype))):
                raise ValueError(f"{method}: parameters given per value cannot be split into blocks; give scalars")
            return np.concatenate([getattr(g, method)(*args, size=(m,) + shape[1:], **options)
                                   for g, m in zip(self.generators, self.sizes)], axis=0)

        return draw


def patient_draws(rng: np.random.Generator, method: str, n_trials: int, n_patients: int, *args, extra: tuple = ()) -> np.ndarray:
    """``rng.<method>`` drawn patient-major and returned as ``(n_trials, n_patients) + extra``.

    Patient ``j`` of trial ``s`` gets the same value whatever ``n_patients`` is (for ``j`` below it),
    which keeps a trial's first patients fixed when its size changes (nested sample sizes).
    """
    return trials_first(patient_major(rng, method, n_trials, n_patients, *args, extra=extra))


def patient_major(rng: np.random.Generator, method: str, n_trials: int, n_patients: int, *args, extra: tuple = ()) -> np.ndarray:
    """The draw of :func:`patient_draws` before its transposition: ``(n_patients, n_trials) + extra``.

    For callers that first take an element-wise step that shrinks the data (a comparison to a bool, one
    of the ``extra`` values) and then pass only what they keep to :func:`trials_first`: the same values,
    fewer bytes moved. Transposing one ``extra`` value at a time (``trials_first(draw[..., k])``) is also
    several times cheaper than moving the interleaved ``(n_trials, n_patients, k)`` array.
    """
    if isinstance(rng, BlockDraws):
        return rng.patient_major(method, n_trials, n_patients, *args, extra=extra)
    if method == "standard_normal" and not args and isinstance(rng, np.random.Generator) and compiled():
        return standard_normals([rng], [n_trials], n_patients, extra)  # numpy's numbers, drawn by a compiled loop
    return getattr(rng, method)(*args, size=(n_patients, n_trials) + extra)


TRANSPOSE_ROWS = 32  # patients per slab of the blocked transpose (measured best for float64, bool and strided planes)


def trials_first(draw: np.ndarray) -> np.ndarray:
    """``draw`` of shape ``(n_patients, n_trials) + extra`` as a C-contiguous ``(n_trials, n_patients) + extra`` copy.

    The same values as ``np.ascontiguousarray(np.swapaxes(draw, 0, 1))``, two to four times faster on large
    arrays: the copy goes in slabs of patients small enough for the cache (a plain strided copy of a
    large array misses the cache and TLB on every item). A C-contiguous ``draw`` moves each patient's
    ``extra`` values as one opaque item; a two-dimensional strided ``draw`` (one plane ``u[..., k]`` of
    a patient-major draw) is read in place, without a contiguous copy first.
    """
    n_patients, n_trials = draw.shape[:2]
    extra = draw.shape[2:]
    width = math.prod(extra)
    if draw.size == 0 or n_patients == 1 or n_trials == 1 or not (draw.flags.c_contiguous or draw.ndim == 2):
        return np.ascontiguousarray(np.swapaxes(draw, 0, 1))
    if draw.ndim == 2:
        items = draw
    else:
        items = draw.reshape(n_patients, n_trials, width).view(np.dtype((np.void, draw.itemsize * width)))[..., 0]
    out = np.empty((n_trials, n_patients), dtype=items.dtype)
    for start in range(0, n_patients, TRANSPOSE_ROWS):
        out[:, start:start + TRANSPOSE_ROWS] = items[start:start + TRANSPOSE_ROWS].T
    return out.view(draw.dtype).reshape((n_trials, n_patients) + extra)


def block_sizes(n_sims: int, block_size: int) -> list[int]:
    """Trials per block: full blocks then one partial block."""
    full, rest = divmod(n_sims, block_size)
    return [block_size] * full + ([rest] if rest else [])
