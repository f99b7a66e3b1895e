"""Covariate-adjusted analyses of a binary endpoint: Mantel-Haenszel over strata and logistic regression.

Both take, besides the two arms' outcomes ``(n_trials, n_arm)`` (NaN = not analysable), the arms'
baseline covariates ``(n_trials, n_arm, k)`` (binary 0/1), and estimate the log odds ratio of the event,
treatment vs control, at fixed covariates (estimand ``log_conditional_odds_ratio``). Everything runs on
all trials at once: sums over strata with ``bincount``, Newton-Raphson steps as batched ``p x p`` solves.
"""
from __future__ import annotations

import numpy as np
from scipy import special

from trialsim.analysis.registry import TestSpec, TrialStats, register

ESTIMAND = "log_conditional_odds_ratio"
# Logistic fits (Newton-Raphson from zero): at most this many steps; converged when no coefficient moves
# by more than STEP_TOL. A fit whose design is rank deficient among the analysable patients (e.g. a
# covariate the same for all of them), which does not converge, or whose arm coefficient exceeds
# MAX_ABS_LOG_OR (an odds ratio beyond e^10 = 22,026: separation, the MLE does not exist) is not valid.
MAX_STEPS = 30
STEP_TOL = 1e-8
MAX_ABS_LOG_OR = 10.0
RANK_TOL = 1e-10


def _pooled(x_control, x_treatment, covariates):
    """Outcomes, arm (1 = treatment), covariates and analysable mask, the two arms side by side."""
    z_c, z_t = covariates
    y = np.concatenate([np.asarray(x_control, float), np.asarray(x_treatment, float)], axis=-1)
    arm = np.concatenate([np.zeros(np.shape(x_control)), np.ones(np.shape(x_treatment))], axis=-1)
    z = np.concatenate([np.asarray(z_c, float), np.asarray(z_t, float)], axis=-2)
    seen = ~np.isnan(y)
    return np.where(seen, y, 0.0), arm, np.where(seen[..., None], np.nan_to_num(z), 0.0), seen


def _strata(z: np.ndarray, seen: np.ndarray) -> tuple[np.ndarray, int]:
    """Each patient's stratum (a combination of the binary covariates) numbered 0..n_strata-1 over the batch;
    patients not analysable get stratum n_strata (dropped)."""
    code = (z > 0.5).astype(np.int64) @ (np.int64(1) << np.arange(z.shape[-1], dtype=np.int64))
    values, index = np.unique(np.where(seen, code, -1), return_inverse=True)
    index = index.reshape(code.shape)
    if values.size and values[0] == -1:
        return np.where(seen, index - 1, values.size - 1), values.size - 1
    return index, values.size


def mantel_haenszel(x_control, x_treatment, alpha: float, *, covariates) -> TrialStats:
    """Cochran-Mantel-Haenszel test and Mantel-Haenszel common odds ratio over covariate strata.

    Per stratum (a combination of the covariates), the 2x2 table has rows treatment / control and columns
    event / no event: a, b / c, d, total n. The common odds ratio is ``R / S`` with ``R = sum a d / n`` and
    ``S = sum b c / n``; its log has the Robins-Breslow-Greenland variance (Robins, Breslow & Greenland
    1986, Biometrics 42:311-323). The test is Cochran-Mantel-Haenszel's without continuity correction:
    ``(sum a - E a)^2 / sum Var a`` on 1 df, with E a and Var a those of the hypergeometric law given the
    stratum's margins (as statsmodels' ``StratifiedTable.test_null_odds(correction=False)``).

    Parameters
    ----------
    x_control, x_treatment : numpy.ndarray
        0/1 outcomes (n_trials, n_arm), NaN = not analysable.
    covariates : tuple of numpy.ndarray
        The arms' binary covariates, (n_trials, n_arm, k) each.
    alpha : float
        Two-sided level of the test and the interval.

    Returns
    -------
    TrialStats
        Not valid where no stratum has both arms and both outcomes (the test's variance is 0). The
        estimate is -inf / +inf where R or S is 0; its interval is then NaN.
    """
    y, arm, z, seen = _pooled(x_control, x_treatment, covariates)
    n_trials = y.shape[0]
    stratum, n_strata = _strata(z, seen)
    cell = np.arange(n_trials)[:, None] * (n_strata + 1) + stratum

    def total(w):
        return np.bincount(cell.ravel(), weights=w.ravel(), minlength=n_trials * (n_strata + 1)).reshape(
            n_trials, n_strata + 1)[:, :n_strata]

    one = seen.astype(float)
    n, n_t, m1, a = total(one), total(one * arm), total(y * seen), total(y * arm * seen)
    b, c = n_t - a, m1 - a
    d = n - n_t - c
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = np.where(n > 0, 1.0 / np.where(n > 0, n, 1.0), 0.0)
        r_k, s_k = a * d * inv, b * c * inv
        p_k, q_k = (a + d) * inv, (b + c) * inv
        r, s = r_k.sum(axis=1), s_k.sum(axis=1)
        estimate = np.log(r) - np.log(s)
        var_log = ((p_k * r_k).sum(1) / (2 * r * r) + (p_k * s_k + q_k * r_k).sum(1) / (2 * r * s)
                   + (q_k * s_k).sum(1) / (2 * s * s))
        expected = n_t * m1 * inv
        var_a = np.where(n > 1, n_t * (n - n_t) * m1 * (n - m1) * inv * inv / np.where(n > 1, n - 1, 1.0), 0.0)
        stat = (a - expected).sum(axis=1) ** 2 / var_a.sum(axis=1)
    valid = var_a.sum(axis=1) > 0
    pvalue = np.where(valid, special.chdtrc(1, np.where(valid, stat, 0.0)), np.nan)
    estimate = np.where(valid, estimate, np.nan)
    half = -special.ndtri(alpha / 2.0) * np.sqrt(np.where(valid & (r > 0) & (s > 0), var_log, np.nan))
    return TrialStats(reject=valid & (pvalue <= alpha), valid=valid, estimate=estimate, pvalue=pvalue, alpha=alpha,
                      ci=(estimate - half, estimate + half))


def logistic_fit(y: np.ndarray, x: np.ndarray, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum likelihood logistic regression of ``y`` on ``x`` for every trial at once (Newton-Raphson).

    Parameters
    ----------
    y : numpy.ndarray
        0/1 outcomes (n_trials, n).
    x : numpy.ndarray
        Design matrices (n_trials, n, p) with their intercept column.
    seen : numpy.ndarray
        Bool (n_trials, n): patients in the fit.

    Returns
    -------
    beta, covariance, ok : numpy.ndarray
        Coefficients (n_trials, p), their inverse-information covariance (n_trials, p, p), and whether
        the fit is full rank and converged (see the module's constants). ``beta`` is NaN where not ok.
    """
    w_seen = seen.astype(float)
    n_trials, _, p = x.shape
    xt = np.swapaxes(x, 1, 2)  # (n_trials, p, n): batched matrix products run on BLAS, einsum would not
    gram = xt @ (x * w_seen[..., None])
    # full rank among the analysable patients: smallest eigenvalue of the scaled Gram matrix above RANK_TOL
    scale = np.sqrt(np.maximum(np.einsum("tii->ti", gram), 1e-300))
    eig = np.linalg.eigvalsh(gram / scale[:, :, None] / scale[:, None, :])
    ok = eig[:, 0] > RANK_TOL
    beta = np.zeros((n_trials, p))
    eye = np.eye(p)
    converged = np.zeros(n_trials, dtype=bool)
    info = np.broadcast_to(eye, (n_trials, p, p)).copy()
    for _ in range(MAX_STEPS):
        mu = special.expit((x @ beta[..., None])[..., 0])
        # a floor on the weights keeps diverging (separated) fits' systems non-singular; they fail to converge
        weight = np.maximum(mu * (1.0 - mu), 1e-12) * w_seen
        info = np.where(ok[:, None, None], xt @ (x * weight[..., None]), eye)  # rank deficient: a dummy, not ok
        score = (xt @ ((y - mu) * w_seen)[..., None])[..., 0]
        try:
            step = np.linalg.solve(info, score[..., None])[..., 0]
        except np.linalg.LinAlgError:  # a system singular in floating point after all: the pseudo-inverse, batched
            step = np.einsum("tij,tj->ti", np.linalg.pinv(info), score)
        step = np.where(ok[:, None] & ~converged[:, None], step, 0.0)
        beta = beta + np.nan_to_num(step, nan=0.0)
        converged |= ok & (np.abs(step) <= STEP_TOL * (1.0 + np.abs(beta))).all(axis=1)
        if (converged | ~ok).all():
            break
    mu = special.expit((x @ beta[..., None])[..., 0])
    info = xt @ (x * (np.maximum(mu * (1.0 - mu), 1e-12) * w_seen)[..., None])
    ok = ok & converged
    info = np.where(ok[:, None, None], info, eye)
    cov = np.linalg.pinv(info)
    return np.where(ok[:, None], beta, np.nan), cov, ok


def logistic(x_control, x_treatment, alpha: float, *, covariates) -> TrialStats:
    """Logistic regression of the event on arm and the covariates (main effects); Wald test of the arm.

    ``logit P(event) = b0 + b_arm * treated + sum_j b_j z_j``, fitted by maximum likelihood per trial
    (as statsmodels' ``Logit``). The estimate is ``b_arm`` (the log odds ratio at fixed covariates), its
    standard error from the inverse information, the test ``z = b_arm / se`` and the interval
    ``b_arm +- z_(1-alpha/2) se``.

    Parameters
    ----------
    x_control, x_treatment : numpy.ndarray
        0/1 outcomes (n_trials, n_arm), NaN = not analysable.
    covariates : tuple of numpy.ndarray
        The arms' covariates, (n_trials, n_arm, k) each.
    alpha : float
        Two-sided level of the test and the interval.

    Returns
    -------
    TrialStats
        Not valid (counted in ``n_valid``, never rejecting) where the fit is rank deficient, does not
        converge in ``MAX_STEPS`` Newton steps, or gives ``|b_arm| > MAX_ABS_LOG_OR``: (quasi-)separation,
        where the maximum likelihood estimate does not exist and any number reported would be absurd.
    """
    y, arm, z, seen = _pooled(x_control, x_treatment, covariates)
    design = np.concatenate([np.ones(y.shape + (1,)), arm[..., None], z], axis=-1)
    beta, cov, ok = logistic_fit(y, design, seen)
    b_arm = beta[:, 1]
    se = np.sqrt(np.where(ok, cov[:, 1, 1], np.nan))
    valid = ok & (np.abs(np.nan_to_num(b_arm, nan=np.inf)) <= MAX_ABS_LOG_OR) & (se > 0)
    estimate = np.where(valid, b_arm, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        zstat = estimate / se
    pvalue = np.where(valid, 2.0 * special.ndtr(-np.abs(zstat)), np.nan)
    half = -special.ndtri(alpha / 2.0) * np.where(valid, se, np.nan)
    return TrialStats(reject=valid & (pvalue <= alpha), valid=valid, estimate=estimate, pvalue=pvalue, alpha=alpha,
                      ci=(estimate - half, estimate + half))


register(TestSpec("mantel_haenszel", "Mantel-Haenszel (adjusted)", ("binary",), mantel_haenszel, ESTIMAND,
                  "Mantel N, Haenszel W (1959) J Natl Cancer Inst 22:719-748; Robins J, Breslow N, Greenland S (1986) "
                  "Biometrics 42:311-323", needs_covariates=True))
register(TestSpec("logistic", "Logistic regression (adjusted)", ("binary",), logistic, ESTIMAND,
                  "Cox DR (1958) J R Stat Soc B 20:215-242 (logistic regression); Wald test of the arm coefficient",
                  needs_covariates=True))
