"""Anastomosis integrity at the 1-month colonoscopy: an ordinal grade linked to leak, vs baseline."""
from __future__ import annotations

import numpy as np

from trialsim.config.schema import Colonoscopy


def _draw_categorical(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.cumsum(probs)[:-1], u, side="right")


def simulate_colonoscopy(colo: Colonoscopy, leak: np.ndarray, *, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Grade index at 1 month and at baseline (0 = best), before any missingness is applied."""
    shape = leak.shape
    u = rng.random(shape)
    grade = np.where(
        leak,
        _draw_categorical(np.asarray(colo.probs_leak), u),
        _draw_categorical(np.asarray(colo.probs_no_leak), u),
    )
    baseline = _draw_categorical(np.asarray(colo.baseline_probs), rng.random(shape))
    return {"colonoscopy_grade_raw": grade, "colonoscopy_baseline": baseline, "colonoscopy_missing_u": rng.random(shape)}


def colonoscopy_endpoints(colo: Colonoscopy, raw: dict[str, np.ndarray], observed: np.ndarray) -> dict[str, np.ndarray]:
    """Endpoints as float arrays with NaN where the colonoscopy was not done (``observed`` False)."""
    grade = np.where(observed, raw["colonoscopy_grade_raw"], np.nan)
    abnormal = np.where(observed, raw["colonoscopy_grade_raw"] >= colo.abnormal_index, np.nan)
    worse = np.where(observed, raw["colonoscopy_grade_raw"] > raw["colonoscopy_baseline"], np.nan)
    return {"colonoscopy_grade": grade, "colonoscopy_abnormal": abnormal, "colonoscopy_worse_than_baseline": worse}
