"""Covariate-dependent event risk: a logistic model whose intercept is calibrated to an arm's marginal rate."""
from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np
from pydantic import Field
from scipy.special import expit, logit

from trialsim.config.base import Identifier, StrictModel, Text

# Event rates the logistic calibration handles (its intercept is searched in [-60, 60]): configured and
# implied marginal rates within [RATE_MIN, 1 - RATE_MIN], and risk factors whose |log odds ratio| add
# up to at most MAX_TOTAL_LOG_OR, so the intercept of any rate lies well inside the bracket.
RATE_MIN = 1e-6
MAX_TOTAL_LOG_OR = 40.0


class RiskFactor(StrictModel):
    """A covariate's odds ratio on the event (the covariate is declared in ``population.covariates``)."""

    covariate: Identifier = Field(description="Name of a population covariate.")
    odds_ratio: float = Field(1.0, ge=0.01, le=100.0, description="Odds ratio of the event with vs without the covariate.")
    source: Text = Field("", max_length=500, description="Where the number comes from.")


def check_unique(factors: tuple[RiskFactor, ...]) -> tuple[RiskFactor, ...]:
    names = [f.covariate for f in factors]
    if len(set(names)) != len(names):
        raise ValueError(f"each covariate may appear once, got {names}")
    total = sum(abs(math.log(f.odds_ratio)) for f in factors)
    if total > MAX_TOTAL_LOG_OR:
        raise ValueError(f"the odds ratios together span a factor of exp({total:.1f}) in the odds; at most "
                         f"exp({MAX_TOTAL_LOG_OR:g}) (sum of |log odds ratio|): use fewer or milder risk factors")
    return factors


def check_rate(name: str, rate: float) -> None:
    """Refuse a marginal event rate outside [RATE_MIN, 1 - RATE_MIN] (the calibration's range)."""
    if not RATE_MIN <= rate <= 1.0 - RATE_MIN:
        raise ValueError(f"{name} is {rate:.6g}; it must lie in [{RATE_MIN:g}, 1 - {RATE_MIN:g}]")


@lru_cache(maxsize=1024)
def calibrate_intercept(prevalence: tuple[float, ...], log_or: tuple[float, ...], marginal_rate: float) -> float:
    """Intercept b0 with E[expit(b0 + x . log OR)] = ``marginal_rate`` over independent binary covariates.

    The expectation is exact: it enumerates all 2^k combinations of the k covariates with their
    probabilities, so the arm's marginal event rate is the configured one and exact binomial power
    applies to the simulated endpoint.
    """
    if not prevalence:
        return float(logit(marginal_rate))
    combos = np.array(list(itertools.product((0, 1), repeat=len(prevalence))), dtype=float)
    p = np.asarray(prevalence)
    weights = np.prod(np.where(combos == 1, p, 1 - p), axis=1)
    linear = combos @ np.asarray(log_or)

    return _solve_intercept(weights, linear, float(marginal_rate))


def _solve_intercept(weights: np.ndarray, linear: np.ndarray, rate: float) -> float:
    """The b0 in [-60, 60] with ``weights @ expit(b0 + linear) = rate``.

    The left side increases with b0 (its slope ``weights @ p(1 - p)`` is positive), so Newton's method kept
    inside a bracket that shrinks around the root (a bisection whenever a step would leave it) converges
    from any start, to the last bits: it stops when a step is a few units in the last place. A test holds it to
    scipy's brentq (xtol = rtol = 1e-13), used here before: the rate it gives is as close to the target. Not brentq
    itself: scipy.optimize costs 0.3 s to import, in every command and every worker process, for these two numbers.
    """
    lo, hi = -60.0, 60.0
    if not float(weights @ expit(lo + linear)) <= rate <= float(weights @ expit(hi + linear)):
        raise ValueError(f"no intercept in [{lo:g}, {hi:g}] gives the event rate {rate!r}")
    b0 = float(np.clip(logit(rate) - weights @ linear, lo, hi))  # the root when every log odds ratio is small
    best, best_gap = b0, math.inf  # the point whose rate is nearest the target so far
    for _ in range(400):  # Newton needs a handful; bisection alone would need about 60
        p = expit(b0 + linear)
        gap = float(weights @ p) - rate
        if abs(gap) < best_gap:
            best, best_gap = b0, abs(gap)
        if gap == 0.0:
            return b0
        lo, hi = (lo, b0) if gap > 0 else (b0, hi)
        slope = float(weights @ (p * (1.0 - p)))
        step = b0 - gap / slope if slope > 0 else math.nan
        if not lo < step < hi:
            step = 0.5 * (lo + hi)
        if abs(step - b0) <= 4e-16 * (1.0 + abs(b0)):  # within rounding: keep the nearer of the last two points
            return step if abs(float(weights @ expit(step + linear)) - rate) < best_gap else best
        b0 = step
    return best


def patient_risk(factors: tuple[RiskFactor, ...], covariates: dict[str, np.ndarray], prevalence: dict[str, float],
                 treated: np.ndarray, rate_control: float, rate_treatment: float) -> np.ndarray:
    """Per-patient event probability, each arm calibrated to its marginal rate."""
    names = tuple(f.covariate for f in factors)
    prev = tuple(float(prevalence[n]) for n in names)
    log_or = tuple(float(np.log(f.odds_ratio)) for f in factors)
    b0_c = calibrate_intercept(prev, log_or, float(rate_control))
    b0_t = calibrate_intercept(prev, log_or, float(rate_treatment))
    linear = np.where(treated, b0_t, b0_c)
    for name, beta in zip(names, log_or):
        linear = linear + beta * covariates[name]
    return expit(linear)


def linear_score(factors: tuple[RiskFactor, ...], covariates: dict[str, np.ndarray]) -> np.ndarray:
    """sum_j log(OR_j) * x_j per patient: the risk model's linear predictor without its intercept."""
    shape = np.shape(next(iter(covariates.values()))) if covariates else ()
    score = np.zeros(shape)
    for f in factors:
        score = score + math.log(f.odds_ratio) * covariates[f.covariate]
    return score


def conditional_log_or(factors: tuple[RiskFactor, ...], prevalence: dict[str, float], rate_control: float,
                       rate_treatment: float) -> float:
    """The log odds ratio treatment vs control at fixed covariates: the difference of the arms' calibrated intercepts
    (the model has no arm x covariate interaction, so it is the same in every covariate pattern)."""
    prev = tuple(float(prevalence[f.covariate]) for f in factors)
    log_or = tuple(math.log(f.odds_ratio) for f in factors)
    return calibrate_intercept(prev, log_or, float(rate_treatment)) - calibrate_intercept(prev, log_or, float(rate_control))

