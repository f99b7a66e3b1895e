"""Random streams: one root seed, one independent stream per block of simulated trials.

Block ``b`` of a run always uses ``SeedSequence(seed, spawn_key=(b,))`` -- the same child that
``SeedSequence(seed).spawn(b + 1)[b]`` gives -- so any block (and so any single simulated trial) can
be regenerated on its own, and results do not depend on how blocks are spread over workers.
"""
from __future__ import annotations

import numpy as np


def draw_seed() -> int:
    """A fresh root seed from the operating system's entropy (recorded in every result)."""
    return int(np.random.SeedSequence().entropy)


def block_rng(seed: int, block_index: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(block_index,))))


def block_sizes(n_sims: int, block_size: int) -> list[int]:
    """Trials per block: full blocks then one partial block."""
    full, rest = divmod(n_sims, block_size)
    return [block_size] * full + ([rest] if rest else [])
