"""Bayesian analyses of two arms, registered as tests: ``beta_binomial`` (binary) and ``normal_log`` (continuous).

Both return :class:`~trialsim.analysis.registry.TrialStats` with, per trial:

* ``estimate``: the posterior mean of the effect (treatment - control: the risk difference, or the
  difference in means, of natural logs for log-scale endpoints), so bias and coverage are judged
  against the same truth as the frequentist tests;
* ``ci()``: the equal-tailed (1 - alpha) credible interval of that effect;
* ``pvalue``: the two-sided posterior tail probability ``2 min(P(effect < 0), P(effect > 0))``, and
  ``reject = pvalue <= alpha``, i.e. the credible interval excludes 0 (with a flat prior and the
  normal model this is the two-sided Wald test);
* ``extra``: ``p_benefit`` = P(effect in the direction of benefit), ``p_meaningful`` =
  P(a clinically meaningful benefit), ``ppos`` = the predictive probability that a confirmatory trial
  succeeds (assurance, O'Hagan et al. 2005).

Priors, the direction of benefit, the meaningful effects and the confirmatory trial come from the
scenario's ``[bayes]`` section (:class:`trialsim.config.bayes.BayesConfig`; its defaults without one).

Binary posterior probabilities are one-dimensional integrals ``P(p_t < g(p_c)) = int_0^1 F_t(g(Q_c(u))) du``
over the quantiles of one arm's Beta posterior (``Q`` the quantile, ``F`` the distribution function), by
a fixed tanh-sinh rule (Takahasi & Mori 1974), which copes with the algebraic end-point behaviour
of Beta quantiles: 90 nodes give ~1e-13 against the closed form of Cook (2003) for integer
parameters. They are computed once per distinct observed table (a 10 vs 10 trial has a few hundred),
vectorised, never a per-trial numerical integration.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import special

from trialsim.analysis.continuous import welch_t
from trialsim.analysis.registry import TestSpec, TrialStats, register
from trialsim.config.bayes import BayesConfig

DEFAULT = BayesConfig()
ROOT_STEPS, ROOT_TOL = 60, 1e-12  # credible-interval ends: at most 60 steps, stop at 1e-12
POLISH_STEPS, POLISH_H = 2, 1e-6  # then secant steps on the kink-aware probability


def tanh_sinh(h: float, t_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the tanh-sinh (double exponential) rule on (0, 1) (Takahasi & Mori 1974).

    ``u = (1 + tanh(pi/2 sinh t)) / 2`` at ``t = -t_max, -t_max + h, ..., t_max``; nodes that round
    to 0 or 1 are dropped (their weights are below 1e-16).
    """
    t = np.arange(-t_max, t_max + h / 2, h)
    s = np.pi / 2 * np.sinh(t)
    u = (1.0 + np.tanh(s)) / 2.0
    w = h * np.pi / 4 * np.cosh(t) / np.cosh(s) ** 2
    keep = (u > 0.0) & (u < 1.0)
    return u[keep], w[keep]


NODES, WEIGHTS = tanh_sinh(0.07, 3.2)  # 90 nodes: ~1e-13 on P(p_t < p_c) (tests/test_bayes.py)
# PPoS is an expectation of a smooth power function over two posteriors: a coarser rule per axis
# (it agrees with 400,000 Monte Carlo draws from the posterior within their error, tests/test_bayes.py).
PPOS_NODES, PPOS_WEIGHTS = tanh_sinh(0.2, 3.0)


# ---------------------------------------------------------------------------------- Beta posteriors
def beta_quantiles(a, b, u: np.ndarray) -> np.ndarray:
    """Beta(a, b) quantiles at ``u`` for arrays of parameters: shape ``a.shape + u.shape``.

    Computed once per distinct (a, b): the posteriors of one arm repeat across tables and trials.
    """
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    pairs, inverse = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1, return_inverse=True)
    q = special.betaincinv(pairs[0][:, None], pairs[1][:, None], u)
    return q[inverse.reshape(-1)].reshape(a.shape + u.shape)


class BetaPair:
    """Independent posteriors ``p_t ~ Beta(a_t, b_t)`` and ``p_c ~ Beta(a_c, b_c)`` (arrays broadcasting together).

    Probabilities ``P(p_t < ratio * p_c + shift)`` are integrals over the quantiles of the arm with
    the narrower posterior (that keeps the integrand smooth when one arm is much better known than
    the other), by the tanh-sinh rule; the quantiles at its nodes are computed once.
    """

    def __init__(self, a_t, b_t, a_c, b_c):
        a_t, b_t, a_c, b_c = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (a_t, b_t, a_c, b_c)))
        self.params = (a_t, b_t, a_c, b_c)
        var_t = a_t * b_t / ((a_t + b_t) ** 2 * (a_t + b_t + 1))
        var_c = a_c * b_c / ((a_c + b_c) ** 2 * (a_c + b_c + 1))
        self.over_t = (var_t < var_c)[..., None]
        # integrate over one arm's quantiles, evaluate the other arm's distribution function
        self.q = beta_quantiles(np.where(self.over_t[..., 0], a_t, a_c), np.where(self.over_t[..., 0], b_t, b_c), NODES)
        self.other = (np.where(self.over_t, a_c[..., None], a_t[..., None]),
                      np.where(self.over_t, b_c[..., None], b_t[..., None]))

    def prob_below(self, *, ratio=1.0, shift=0.0) -> np.ndarray:
        """``P(p_t < ratio * p_c + shift)``; ``ratio`` > 0 and ``shift`` broadcast against the pair's shape.

        The integrand is constant (0 or 1) where the other arm's argument leaves [0, 1]; the rule runs
        only between those kinks (a kink inside would cost it its accuracy), the rest is added exactly.
        """
        a_t, b_t, a_c, b_c = self.params
        ratio, shift = np.asarray(ratio, dtype=float), np.asarray(shift, dtype=float)
        over_t = self.over_t[..., 0]
        a, b = np.where(over_t, a_t, a_c), np.where(over_t, b_t, b_c)
        k1 = np.where(over_t, shift, -shift / ratio)  # below: 1 (over t) or 0 (over c)
        k2 = np.where(over_t, ratio + shift, (1.0 - shift) / ratio)  # above: 0 (over t) or 1 (over c)
        u_a = special.betainc(a, b, np.clip(k1, 0.0, 1.0))
        u_b = special.betainc(a, b, np.clip(k2, 0.0, 1.0))
        u = u_a[..., None] + (u_b - u_a)[..., None] * NODES
        q = special.betaincinv(a[..., None], b[..., None], u)
        r, sh = ratio[..., None], shift[..., None]
        x = np.where(self.over_t, (q - sh) / r, r * q + sh)
        f = special.betainc(*self.other, np.clip(x, 0.0, 1.0))
        inner = (np.where(self.over_t, 1.0 - f, f) @ WEIGHTS) * (u_b - u_a)
        return inner + np.where(over_t, u_a, 1.0 - u_b)

    def _fast_below(self, shift) -> np.ndarray:
        """``P(p_t < p_c + shift)`` on the fixed nodes (quantiles computed once; ~1e-5 near kinks): for root finding."""
        sh = np.asarray(shift, dtype=float)[..., None]
        x = np.where(self.over_t, self.q - sh, self.q + sh)
        f = special.betainc(*self.other, np.clip(x, 0.0, 1.0))
        return np.where(self.over_t, 1.0 - f, f) @ WEIGHTS

    def difference_quantile(self, q: float) -> np.ndarray:
        """The ``q`` quantile of ``p_t - p_c``: the root of its distribution function minus ``q`` on [-1, 1].

        The Illinois variant of regula falsi (Dowell & Jarratt 1971), vectorised: bracketing like
        bisection, superlinear like the secant method (about a dozen steps instead of 45).
        """
        shape = self.q.shape[:-1]
        lo, hi = np.full(shape, -1.0), np.full(shape, 1.0)
        f_lo, f_hi = np.full(shape, -q), np.full(shape, 1.0 - q)  # P(p_t - p_c < -1) = 0, < 1 is 1
        last = np.zeros(shape, dtype=np.int8)
        x = lo
        for _ in range(ROOT_STEPS):
            x = np.clip((lo * f_hi - hi * f_lo) / (f_hi - f_lo), lo, hi)
            f = self._fast_below(x) - q
            right = f < 0.0  # the root lies above x
            f_hi = np.where(right & (last == 1), f_hi / 2.0, f_hi)  # the same end kept twice: halve it (Illinois)
            f_lo = np.where(~right & (last == -1), f_lo / 2.0, f_lo)
            lo, f_lo = np.where(right, x, lo), np.where(right, f, f_lo)
            hi, f_hi = np.where(right, hi, x), np.where(right, f_hi, f)
            last = np.where(right, 1, -1).astype(np.int8)
            if np.all((np.abs(f) < ROOT_TOL) | (hi - lo < ROOT_TOL)):
                break
        for _ in range(POLISH_STEPS):  # secant steps on the accurate probability from the near root
            f0, f1 = self.prob_below(shift=x) - q, self.prob_below(shift=x + POLISH_H) - q
            with np.errstate(invalid="ignore", divide="ignore"):
                step = np.where(f1 != f0, f0 * POLISH_H / (f1 - f0), 0.0)
            x = np.clip(x - np.nan_to_num(step), -1.0, 1.0)
        return x


def beta_prob_below(a_t, b_t, a_c, b_c, *, ratio=1.0, shift=0.0) -> np.ndarray:
    """``P(p_t < ratio * p_c + shift)`` for independent ``p_t ~ Beta(a_t, b_t)``, ``p_c ~ Beta(a_c, b_c)``.

    Parameters
    ----------
    a_t, b_t, a_c, b_c : array_like
        Beta parameters, broadcasting together (one value per trial or table).
    ratio : float or array_like, > 0
    shift : float or array_like

    Returns
    -------
    ndarray
        The probability (see :class:`BetaPair`).
    """
    return BetaPair(a_t, b_t, a_c, b_c).prob_below(ratio=ratio, shift=shift)


def z_test_power(p_control, p_treatment, n_per_arm: int, alpha: float, sign: float) -> np.ndarray:
    """Power of the two-sided two-proportion z test (pooled variance) to find a difference in the direction ``sign``.

    ``sign = -1``: success when the treatment rate is significantly lower. The normal approximation
    of Fleiss, Levin & Paik (2003, Statistical Methods for Rates and Proportions, 3rd ed., ch. 4:
    its sample-size formula solved for the power): ``Phi((gain - z sqrt(2 pbar (1 - pbar) / n)) / sqrt((p_c q_c + p_t q_t) / n))``.
    """
    z = -special.ndtri(alpha / 2.0)
    gain = sign * (p_treatment - p_control)
    p_bar = (p_control + p_treatment) / 2.0
    null_se = np.sqrt(2.0 * p_bar * (1.0 - p_bar) / n_per_arm)
    alt_se = np.sqrt((p_control * (1.0 - p_control) + p_treatment * (1.0 - p_treatment)) / n_per_arm)
    with np.errstate(invalid="ignore", divide="ignore"):
        power = special.ndtr((gain - z * null_se) / alt_se)
    return np.where(alt_se > 0.0, power, (gain > z * null_se).astype(float))  # both rates 0 or 1: no variance


def beta_ppos(a_t, b_t, a_c, b_c, config: BayesConfig) -> np.ndarray:
    """Predictive probability that the confirmatory trial's z test succeeds: E over both posteriors of its power."""
    a_t, b_t, a_c, b_c = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (a_t, b_t, a_c, b_c)))
    p_c = beta_quantiles(a_c, b_c, PPOS_NODES)[..., :, None]
    p_t = beta_quantiles(a_t, b_t, PPOS_NODES)[..., None, :]
    power = z_test_power(p_c, p_t, config.confirmatory_n_per_arm, config.confirmatory_alpha, config.sign)
    return np.einsum("...ij,i,j->...", power, PPOS_WEIGHTS, PPOS_WEIGHTS)


@dataclass(frozen=True)
class Posterior:
    """Per-trial posterior summaries of one endpoint (arrays of the same shape)."""

    mean: np.ndarray  # posterior mean of the effect (treatment - control)
    p_lower: np.ndarray  # P(effect < 0)
    p_benefit: np.ndarray
    p_meaningful: np.ndarray
    ppos: np.ndarray
    interval: Callable[[], tuple[np.ndarray, np.ndarray]]  # the equal-tailed credible interval, on demand

    def stats(self, valid: np.ndarray, alpha: float) -> TrialStats:
        pvalue = 2.0 * np.minimum(self.p_lower, 1.0 - self.p_lower)
        return TrialStats(reject=pvalue <= alpha, valid=valid, estimate=self.mean, pvalue=pvalue, alpha=alpha,
                          ci=self.interval,
                          extra={"p_benefit": self.p_benefit, "p_meaningful": self.p_meaningful, "ppos": self.ppos})


def beta_binomial_posterior(events_control, n_control, events_treatment, n_treatment, *, config: BayesConfig = DEFAULT,
                            alpha: float = 0.05) -> Posterior:
    """Posterior summaries of the risk difference from event counts, with independent Beta priors per arm.

    Parameters
    ----------
    events_control, n_control, events_treatment, n_treatment : array_like of int
        Events and analysable patients per arm, one entry per trial (any shape).
    config : BayesConfig
        Priors ``prior_control``/``prior_treatment``, the direction of benefit, the meaningful risk
        ratio and the confirmatory trial.
    alpha : float
        The credible interval is the equal-tailed (1 - alpha) one.

    Returns
    -------
    Posterior
        Posteriors ``Beta(a + x, b + n - x)`` per arm; P(benefit) = P(p_t < p_c) (or >), P(meaningful) =
        P(p_t < rr p_c) (or > for 'higher'), PPoS from :func:`beta_ppos`. Each distinct table is
        computed once.
    """
    counts = np.stack(np.broadcast_arrays(*(np.asarray(v, dtype=np.int64)
                                            for v in (events_control, n_control, events_treatment, n_treatment))))
    shape = counts.shape[1:]
    tables, inverse = np.unique(counts.reshape(4, -1), axis=1, return_inverse=True)
    e_c, n_c, e_t, n_t = tables.astype(float)
    (a0c, b0c), (a0t, b0t) = config.prior_control, config.prior_treatment
    a_c, b_c, a_t, b_t = a0c + e_c, b0c + n_c - e_c, a0t + e_t, b0t + n_t - e_t
    pair = BetaPair(a_t, b_t, a_c, b_c)
    p_lower = pair.prob_below()
    p_lower_rr = pair.prob_below(ratio=config.meaningful_risk_ratio)
    lower = config.benefit == "lower"
    inverse = inverse.reshape(-1)

    def per_trial(values: np.ndarray) -> np.ndarray:
        return values[inverse].reshape(shape)

    def interval():  # root finding per table: only when a report asks for the interval
        return (per_trial(pair.difference_quantile(alpha / 2.0)), per_trial(pair.difference_quantile(1.0 - alpha / 2.0)))

    return Posterior(
        mean=per_trial(a_t / (a_t + b_t) - a_c / (a_c + b_c)),
        p_lower=per_trial(p_lower),
        p_benefit=per_trial(p_lower if lower else 1.0 - p_lower),
        p_meaningful=per_trial(p_lower_rr if lower else 1.0 - p_lower_rr),
        ppos=per_trial(beta_ppos(a_t, b_t, a_c, b_c, config)),
        interval=interval,
    )


def _counts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    seen = ~np.isnan(x)
    return np.where(seen, x, 0.0).sum(axis=-1).astype(np.int64), seen.sum(axis=-1)


def _beta_binomial_run(x_control, x_treatment, alpha: float, *, config: BayesConfig = DEFAULT) -> TrialStats:
    (e_c, n_c), (e_t, n_t) = _counts(np.asarray(x_control, dtype=float)), _counts(np.asarray(x_treatment, dtype=float))
    post = beta_binomial_posterior(e_c, n_c, e_t, n_t, config=config, alpha=alpha)
    # an empty arm leaves its prior as the posterior: the posterior is still defined, the comparison not "valid"
    return post.stats((n_c > 0) & (n_t > 0), alpha)


# --------------------------------------------------------------------------------- normal posterior
def normal_posterior(difference, se, n_control, n_treatment, *, config: BayesConfig = DEFAULT,
                     alpha: float = 0.05) -> Posterior:
    """Conjugate normal update of the difference in means, with the observed standard error taken as known.

    Parameters
    ----------
    difference, se : array_like
        Observed difference in means (treatment - control) and its standard error per trial; where
        the SE is not a positive number (fewer than 2 values in an arm) the data add nothing and the
        posterior is the prior.
    n_control, n_treatment : array_like
        Analysable patients per arm: the per-patient variance ``se^2 / (1/n_c + 1/n_t)`` scales the
        SE to the confirmatory trial's ``sqrt(2 / n)``.
    config : BayesConfig
        Prior ``N(normal_prior_mean, normal_prior_sd^2)``, direction of benefit, meaningful difference
        and the confirmatory trial.
    alpha : float
        Level of the equal-tailed credible interval.

    Returns
    -------
    Posterior
        Precision ``1/tau^2 + 1/se^2``, mean ``(mu0/tau^2 + d/se^2) / precision`` (Spiegelhalter, Abrams &
        Myles 2004, ch. 3); PPoS in closed form (Spiegelhalter et al. 2004, ch. 6; O'Hagan, Stevens
        & Campbell 2005): ``Phi((sign m - z se_new) / sqrt(s^2 + se_new^2))``.

    Notes
    -----
    A plug-in normal likelihood: the SE's own uncertainty is ignored, so with a handful of patients
    per arm the posterior is a little too narrow (a t likelihood would widen it).
    """
    d, se = np.asarray(difference, dtype=float), np.asarray(se, dtype=float)
    n_c, n_t = np.asarray(n_control, dtype=float), np.asarray(n_treatment, dtype=float)
    informative = np.isfinite(se) & (se > 0.0) & np.isfinite(d)
    mu0, tau = config.normal_prior_mean, config.normal_prior_sd
    with np.errstate(invalid="ignore", divide="ignore"):
        data_precision = np.where(informative, 1.0 / np.where(informative, se, 1.0) ** 2, 0.0)
        precision = 1.0 / tau**2 + data_precision
        mean = (mu0 / tau**2 + np.where(informative, d, 0.0) * data_precision) / precision
        sd = 1.0 / np.sqrt(precision)
        se_new = np.where(informative, se / np.sqrt(1.0 / n_c + 1.0 / n_t) * np.sqrt(2.0 / config.confirmatory_n_per_arm),
                          np.nan)
    z = -special.ndtri(config.confirmatory_alpha / 2.0)
    s = config.sign
    p_lower = special.ndtr(-mean / sd)
    z_half = -special.ndtri(alpha / 2.0)
    return Posterior(
        mean=mean, interval=lambda: (mean - z_half * sd, mean + z_half * sd), p_lower=p_lower,
        p_benefit=special.ndtr(s * mean / sd),
        p_meaningful=special.ndtr(s * (mean - config.meaningful_difference) / sd),
        ppos=special.ndtr((s * mean - z * se_new) / np.sqrt(sd**2 + se_new**2)),
    )


def _normal_run(x_control, x_treatment, alpha: float, *, config: BayesConfig = DEFAULT) -> TrialStats:
    res = welch_t(x_control, x_treatment)
    post = normal_posterior(res.difference, res.se, res.n_control, res.n_treatment, config=config, alpha=alpha)
    return post.stats(res.valid(), alpha)


def scenario_config(model, analysed) -> dict:
    """The keyword arguments of the Bayesian tests: the scenario's ``[bayes]`` section, or its defaults."""
    return {"config": model.scenario.bayes or DEFAULT}


COOK = "Cook JD (2003) Exact calculation of beta inequalities. UT MD Anderson Cancer Center technical report"
SPIEGELHALTER = "Spiegelhalter DJ, Abrams KR, Myles JP (2004) Bayesian approaches to clinical trials and health-care evaluation. Wiley"
register(TestSpec("beta_binomial", "Beta-binomial (Bayes)", ("binary",), _beta_binomial_run, "risk_difference",
                  f"{COOK}; {SPIEGELHALTER}", options=scenario_config))
register(TestSpec("normal_log", "Normal (Bayes)", ("continuous",), _normal_run, "difference",
                  SPIEGELHALTER, options=scenario_config, trialwise_up_to=math.inf))
