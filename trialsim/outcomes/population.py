"""Baseline risk factors and the calibrated logistic leak risk."""
from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, logit

from trialsim.config.schema import Population


def draw_risk_factors(population: Population, shape: tuple[int, int], *, rng: np.random.Generator) -> np.ndarray:
    """Independent Bernoulli risk factors, boolean array of shape ``shape + (n_factors,)``."""
    prevalence = np.array([f.prevalence for f in population.risk_factors])
    return rng.random(shape + (len(prevalence),)) < prevalence


def log_odds_ratios(population: Population) -> np.ndarray:
    return np.log(np.array([f.odds_ratio for f in population.risk_factors], dtype=float))


@lru_cache(maxsize=256)
def calibrate_intercept(population: Population, marginal_rate: float) -> float:
    """Intercept b0 with E[expit(b0 + x . log OR)] = ``marginal_rate`` over the population.

    The expectation is exact: it enumerates all 2^k combinations of the k binary risk factors with
    their probabilities, so the simulated arm's marginal leak rate is the configured one and the exact
    binomial power applies to the simulated endpoint.
    """
    factors = population.risk_factors
    if not factors:
        return float(logit(marginal_rate))
    combos = np.array(list(itertools.product((0, 1), repeat=len(factors))), dtype=float)
    prevalence = np.array([f.prevalence for f in factors])
    weights = np.prod(np.where(combos == 1, prevalence, 1 - prevalence), axis=1)
    linear = combos @ log_odds_ratios(population)

    def gap(b0: float) -> float:
        return float(weights @ expit(b0 + linear)) - marginal_rate

    return float(brentq(gap, -60.0, 60.0, xtol=1e-13, rtol=1e-13))


def leak_risk(population: Population, factors: np.ndarray, marginal_rate: float) -> np.ndarray:
    """Per-patient leak probability for an arm whose marginal rate is ``marginal_rate``."""
    b0 = calibrate_intercept(population, float(marginal_rate))
    return expit(b0 + factors @ log_odds_ratios(population))
