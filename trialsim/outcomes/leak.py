"""Early anastomotic leak: occurrence (calibrated to the arm's marginal rate), ISREC grade, day, detection."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from trialsim.config.schema import Leak

GRADES = ("A", "B", "C")


@dataclass(frozen=True)
class LeakRates:
    """Marginal per-arm rates implied by the config.

    ``all_grade`` counts every leak; ``clinical`` only grade B/C; ``endpoint`` is what the primary
    endpoint records: every B/C leak plus the grade A leaks that interview and examination find.
    """

    all_grade: float
    clinical: float
    endpoint: float


def arm_rates(leak: Leak, arm: str) -> LeakRates:
    """Marginal rates of the ``"control"`` or ``"treatment"`` arm."""
    share_a = leak.grade_split[0]
    all_control = leak.rate_control / (1.0 - share_a)
    if arm == "control":
        all_grade = all_control
    elif leak.effect_measure == "risk_ratio":
        all_grade = leak.effect * all_control
    elif leak.effect_measure == "odds_ratio":
        odds = leak.effect * all_control / (1.0 - all_control)
        all_grade = odds / (1.0 + odds)
    else:  # "rate": effect is the treatment arm's B/C rate
        all_grade = leak.effect / (1.0 - share_a)
    clinical = all_grade * (1.0 - share_a)
    endpoint = all_grade * (1.0 - share_a + share_a * leak.p_detect_grade_a)
    return LeakRates(all_grade=all_grade, clinical=clinical, endpoint=endpoint)


def draw_leak_day(leak: Leak, shape: tuple[int, ...], *, rng: np.random.Generator) -> np.ndarray:
    """Day of diagnosis: log-normal truncated to the endpoint horizon (inverse-CDF sampling)."""
    mu, sd = np.log(leak.day_median), leak.day_log_sd
    upper = ndtr((np.log(leak.horizon_days) - mu) / sd)
    u = rng.random(shape) * upper
    return np.exp(mu + sd * ndtri(u))


def simulate_leak(leak: Leak, risk: np.ndarray, *, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Leak (bool), grade index 0/1/2 = A/B/C (-1 none), diagnosis day (NaN none), detected at 1 month (bool)."""
    shape = risk.shape
    occurred = rng.random(shape) < risk
    grade = np.searchsorted(np.cumsum(leak.grade_split)[:-1], rng.random(shape), side="right")
    grade = np.where(occurred, grade, -1)
    day = np.where(occurred, draw_leak_day(leak, shape, rng=rng), np.nan)
    found_a = rng.random(shape) < leak.p_detect_grade_a
    detected = occurred & ((grade > 0) | found_a)
    return {"leak": occurred, "leak_grade": grade, "leak_day": day, "leak_detected": detected}
