"""Patients and their baseline covariates, drawn once per simulated trial, before allocation.

Each covariate has its own random stream (``population/<name>``) and is drawn patient-major, so adding a
covariate, or patients, leaves every other draw unchanged.
"""
from __future__ import annotations

import numpy as np

from trialsim.config.schema import Population
from trialsim.rng import Streams, patient_major, trials_first


def draw_covariates(population: Population, n_trials: int, n_patients: int, *, streams: Streams) -> dict[str, np.ndarray]:
    """``{name: float array (n_trials, n_patients) of 0/1}`` for every declared covariate."""
    out = {}
    for c in population.covariates:
        u = patient_major(streams("population", c.name), "random", n_trials, n_patients)
        # compared patient-major (element-wise, so the same bools) and transposed as bools: 1/8 of the bytes
        out[c.name] = trials_first(u < c.prevalence).astype(float)
    return out
