"""Allocation schemes: the arm of the k-th enrolled patient, as a pure function of (k, rng).

Every scheme returns a bool array of shape (n_trials, len(position)), True = treatment, for the
0-based enrolment positions ``position`` (usually ``np.arange(n_control + n_treatment)``). The
deterministic schemes ignore ``rng``; the randomised ones draw one sequence per simulated trial.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from trialsim.config.schema import AllocationConfig
from trialsim.registry import ALLOCATION_SCHEMES


def _positions(position) -> np.ndarray:
    position = np.asarray(position)
    if position.ndim != 1 or (position.size and position.min() < 0) or not np.issubdtype(position.dtype, np.integer):
        raise ValueError("position must be a 1-D array of non-negative integer enrolment positions")
    return position


def sequential(position, *, n_trials: int, n_control: int, n_treatment: int, rng=None) -> np.ndarray:
    """First ``n_control`` patients to control, the rest to treatment (one reading of a non-randomised design)."""
    position = _positions(position)
    return np.broadcast_to(position >= n_control, (n_trials, position.size)).copy()


def alternating(position, *, n_trials: int, n_control: int, n_treatment: int, rng=None) -> np.ndarray:
    """Control, treatment, control, ... until the smaller arm is full; then the other arm."""
    position = _positions(position)
    pairs = min(n_control, n_treatment)
    alternate = position % 2 == 1
    rest = np.full(position.shape, n_treatment > n_control)  # positions after the alternating part
    return np.broadcast_to(np.where(position < 2 * pairs, alternate, rest), (n_trials, position.size)).copy()


def permuted_block(position, *, n_trials: int, block_size: int, ratio: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Randomised permuted blocks: each block of ``block_size`` holds control:treatment in ``ratio``."""
    position = _positions(position)
    if block_size % sum(ratio):
        raise ValueError(f"block_size {block_size} must be a multiple of sum(ratio) = {sum(ratio)}")
    n_blocks = int(position.max()) // block_size + 1 if position.size else 0
    pattern = np.arange(block_size) >= block_size * ratio[0] // sum(ratio)
    # argsort of uniforms = an independent uniform permutation of each block
    order = np.argsort(rng.random((n_trials, n_blocks, block_size)), axis=-1)
    sequence = pattern[order].reshape(n_trials, n_blocks * block_size)
    return sequence[:, position]


def simple(position, *, n_trials: int, p_treatment: float, rng: np.random.Generator) -> np.ndarray:
    """Simple randomisation: an independent coin with P(treatment) = ``p_treatment`` for each patient."""
    position = _positions(position)
    if not 0.0 <= p_treatment <= 1.0:
        raise ValueError(f"p_treatment must be in [0, 1], got {p_treatment}")
    n_positions = int(position.max()) + 1 if position.size else 0
    return (rng.random((n_trials, n_positions)) < p_treatment)[:, position]


@dataclass(frozen=True)
class Scheme:
    """A registered allocation scheme.

    ``sequence(config, *, n_trials, n_control, n_treatment, covariates, rng)`` gives the arms of enrolment
    positions 0..n_control+n_treatment-1 (bool, True = treatment). ``randomised`` says whether chance
    decides; ``fixed_sizes(config, n_control, n_treatment)`` whether every trial has exactly the target
    arm sizes (exact power needs it).

    ``uses_covariates``: the arms depend on the patients' baseline covariates; ``sequence`` then also gets
    ``strata`` (the covariate names it balances or selects on). ``uses_score``: it also gets ``score``, each
    patient's baseline risk score (n_trials, n_patients). Either makes the arms and the covariates
    dependent, so laws that assume exchangeable patients (exact power) no longer apply. ``uses_blocks``:
    it fills blocks of ``block_size`` in the ratio, so the config must make the two fit. ``settings``: the
    ``[allocation]`` values it reads besides ``scheme`` (the others are not part of a design that uses it).
    """

    name: str
    label: str
    randomised: bool
    sequence: Callable[..., np.ndarray]
    fixed_sizes: Callable[[AllocationConfig, int, int], bool]
    uses_covariates: bool = False
    uses_score: bool = False
    uses_blocks: bool = False
    settings: tuple[str, ...] = ()

    @property
    def same_arms(self) -> bool:
        """Whether every trial has the same arms by construction (neither chance nor the patients decide)."""
        return not (self.randomised or self.uses_covariates or self.uses_score)


def register(scheme: Scheme) -> Scheme:
    return ALLOCATION_SCHEMES.register(scheme.name, scheme)


def always(config, n_control, n_treatment) -> bool:
    """A `fixed_sizes` predicate: every trial has exactly the target arm sizes."""
    return True


def _blocks_fill_exactly(config: AllocationConfig, n_control: int, n_treatment: int) -> bool:
    n = n_control + n_treatment
    return n % config.block_size == 0 and n_control * sum(config.ratio) == n * config.ratio[0]


register(Scheme("sequential", "sequential (first patients control, then treatment; not randomised)", False,
                lambda config, *, n_trials, n_control, n_treatment, covariates=None, rng=None:
                sequential(np.arange(n_control + n_treatment), n_trials=n_trials, n_control=n_control, n_treatment=n_treatment),
                always))
register(Scheme("alternating", "alternating (not randomised)", False,
                lambda config, *, n_trials, n_control, n_treatment, covariates=None, rng=None:
                alternating(np.arange(n_control + n_treatment), n_trials=n_trials, n_control=n_control, n_treatment=n_treatment),
                always))
register(Scheme("permuted_block", "randomised, permuted blocks", True,
                lambda config, *, n_trials, n_control, n_treatment, covariates=None, rng:
                permuted_block(np.arange(n_control + n_treatment), n_trials=n_trials, block_size=config.block_size,
                               ratio=config.ratio, rng=rng),
                _blocks_fill_exactly, uses_blocks=True, settings=("block_size", "ratio")))
register(Scheme("simple", "randomised, simple (a coin for each patient)", True,
                lambda config, *, n_trials, n_control, n_treatment, covariates=None, rng:
                simple(np.arange(n_control + n_treatment), n_trials=n_trials, p_treatment=config.p_treatment, rng=rng),
                lambda config, n_control, n_treatment: False, settings=("ratio",)))


def scheme(name: str) -> Scheme:
    return ALLOCATION_SCHEMES.get(name)


def allocation_sequence(
    config: AllocationConfig, *, n_trials: int, n_control: int, n_treatment: int, rng: np.random.Generator,
    covariates: dict[str, np.ndarray] | None = None, strata: tuple[str, ...] = (), score: np.ndarray | None = None,
) -> np.ndarray:
    """Arms of enrolment positions 0..n_control+n_treatment-1 for ``n_trials`` trials (True = treatment).

    Parameters
    ----------
    config : AllocationConfig
        Scheme, block size and ratio.
    n_trials : int
        Simulated trials (rows).
    n_control, n_treatment : int
        Target arm sizes. The deterministic schemes fill them exactly; the randomised schemes only
        aim at them (their arm sizes vary, the total is ``n_control + n_treatment``).
    rng : numpy.random.Generator
        Used by the randomised schemes only.
    covariates : dict, optional
        Baseline covariates per position, for schemes that use them.
    strata : tuple of str
        The covariates a scheme with ``uses_covariates`` balances (resolved by the model from
        ``config.strata``).
    score : numpy.ndarray, optional
        Baseline risk score per position (n_trials, n_patients), for schemes with ``uses_score``.

    Returns
    -------
    numpy.ndarray
        Bool array (n_trials, n_control + n_treatment).
    """
    chosen = scheme(config.scheme)
    extra: dict = {}
    if chosen.uses_covariates:
        extra["strata"] = tuple(strata)
    if chosen.uses_score:
        if score is None:
            raise ValueError(f"allocation scheme {config.scheme!r} needs each patient's risk score")
        extra["score"] = score
    return chosen.sequence(config, n_trials=n_trials, n_control=n_control, n_treatment=n_treatment,
                           covariates=covariates, rng=rng, **extra)
