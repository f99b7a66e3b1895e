"""Postoperative length of stay: log-normal without leak, plus gamma-distributed extra days by leak grade."""
from __future__ import annotations

import numpy as np

from trialsim.config.schema import LengthOfStay


def simulate_stay(los: LengthOfStay, leak_grade: np.ndarray, *, treated: bool, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``los_base_days`` (index stay as if no leak), ``leak_extra_days`` and ``los_days`` (their sum).

    ``los_days`` counts every postoperative hospital day within the month, the index stay plus a
    readmission for a leak found after discharge; the flow model splits the two.
    """
    shape = leak_grade.shape
    median = los.median_no_leak * (los.treatment_ratio if treated else 1.0)
    base = median * np.exp(los.log_sd * rng.standard_normal(shape))
    mean_extra = np.where(leak_grade >= 0, np.asarray(los.extra_days_by_grade)[np.clip(leak_grade, 0, 2)], 0.0)
    if los.extra_days_cv > 0:
        shape_k = 1.0 / los.extra_days_cv**2
        extra = rng.gamma(shape_k, 1.0, size=shape) * mean_extra / shape_k
    else:
        extra = mean_extra
    return {"los_base_days": base, "leak_extra_days": extra, "los_days": base + extra}
