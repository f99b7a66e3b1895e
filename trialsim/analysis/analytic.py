"""Closed-form power and sample size, for planning and for checking the simulations.

All tests are two-sided; ``ratio`` is always ``n_treatment / n_control``.
"""
from __future__ import annotations

import math

from scipy import special

from trialsim.analysis.laws import nct_sf

# Normal and t quantiles through scipy.special: bit for bit what scipy.stats.norm / t give
# (norm.isf(q) = -ndtri(q), norm.sf(x) = ndtr(-x), t.isf(q, df) = -stdtrit(df, q)), without importing
# scipy.stats, which costs half a second of every command's start-up; the noncentral t likewise (laws).

__all__ = [
    "t_test_power",
    "t_test_sample_size",
    "two_proportions_power_normal",
    "two_proportions_sample_size_normal",
]


def _check_level(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie in (0, 1), got {value!r}")
    return value


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return value


def _treatment_size(n_control: int, ratio: float) -> int:
    # round first so that e.g. 1.1 * 10 = 11.000000000000002 gives 11, not 12
    return math.ceil(round(ratio * n_control, 9))


def t_test_power(effect_size: float, n_control: float, n_treatment: float, *, alpha: float = 0.05) -> float:
    """Power of the two-sided pooled two-sample t test.

    Parameters
    ----------
    effect_size : float
        Standardised difference (mean difference / common SD), either sign.
    n_control, n_treatment : float
        Patients per arm, with ``n_control + n_treatment > 2``.
    alpha : float, default 0.05
        Two-sided significance level.

    Returns
    -------
    float
        ``P(T > t_crit) + P(T < -t_crit)`` with ``T`` noncentral t on ``n_c + n_t - 2`` df and
        noncentrality ``d sqrt(n_c n_t / (n_c + n_t))``. Both tails are counted, as
        ``pwr::pwr.t.test`` and ``power.t.test(strict = TRUE)`` do (R's ``power.t.test``
        default drops the far tail).
    """
    alpha = _check_level("alpha", alpha)
    n_control = _check_positive("n_control", n_control)
    n_treatment = _check_positive("n_treatment", n_treatment)
    df = n_control + n_treatment - 2
    if df <= 0:
        raise ValueError("n_control + n_treatment must exceed 2")
    ncp = abs(effect_size) * math.sqrt(n_control * n_treatment / (n_control + n_treatment))
    t_crit = -special.stdtrit(df, alpha / 2)
    # far tail P(T < -t_crit; ncp) written as P(T > t_crit; -ncp): scipy 1.17's nct.cdf returns
    # NaN for some large noncentralities (e.g. df = 46, ncp = 6.93), its sf does not
    return float(nct_sf(t_crit, df, ncp) + nct_sf(t_crit, df, -ncp))


def t_test_sample_size(effect_size: float, *, power: float, alpha: float = 0.05, ratio: float = 1.0) -> int:
    """Smallest control-arm size whose pooled t test reaches ``power``.

    Parameters
    ----------
    effect_size : float
        Standardised difference, non-zero.
    power : float
        Target power in (0, 1).
    alpha : float, default 0.05
        Two-sided significance level.
    ratio : float, default 1
        ``n_treatment = ceil(ratio * n_control)``.

    Returns
    -------
    int
        ``n_control`` (at least 2). The power of the t test increases with n, so a bracketing
        search on integers gives the smallest size.
    """
    power = _check_level("power", power)
    alpha = _check_level("alpha", alpha)
    ratio = _check_positive("ratio", ratio)
    if effect_size == 0:
        raise ValueError("effect_size must be non-zero")

    def reaches(n: int) -> bool:
        return t_test_power(effect_size, n, _treatment_size(n, ratio), alpha=alpha) >= power

    # searched from the z test's n, which the t test needs one or two more than: 2-4 powers instead of about 17
    z = special.ndtri(1 - alpha / 2) + special.ndtri(power)
    return smallest_reaching(reaches, start=math.ceil(min(z * z * (1 + 1 / ratio) / effect_size**2, 2.0**40)))


def smallest_reaching(reaches, n_max: float = math.inf, n_min: int = 2, start: int | None = None) -> int | None:
    """The smallest integer n in [n_min, n_max] with ``reaches(n)``, for a monotone ``reaches`` (None if none).

    From ``start`` (a guess; default ``n_min``) the steps double away, down while ``reaches`` holds, else up, until
    they bracket the answer, which a bisection then finds: any guess gives the same answer, a near one in fewer
    calls."""
    if math.isfinite(n_max):  # whole sizes only (a fractional n_max would never let the bisection end)
        n_max = math.floor(n_max)
    if n_max < n_min:
        return None
    start = int(min(max(n_min if start is None else start, n_min), n_max))
    step = 1
    if reaches(start):
        hi = start
        while hi > n_min:
            lo = max(n_min, hi - step)
            if not reaches(lo):
                return _bisect_reaching(reaches, lo, hi)
            hi, step = lo, step * 2
        return hi
    lo = start
    while lo < n_max:
        hi = min(n_max, lo + step)
        if reaches(hi):
            return _bisect_reaching(reaches, lo, hi)
        lo, step = hi, step * 2
    return None


def _bisect_reaching(reaches, lo: int, hi: int) -> int:
    while hi - lo > 1:  # invariant: reaches(hi) and not reaches(lo)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if reaches(mid) else (mid, hi)
    return hi


def _check_proportions(p_control: float, p_treatment: float) -> tuple[float, float]:
    p1, p2 = float(p_control), float(p_treatment)
    if not (0 < p1 < 1 and 0 < p2 < 1):
        raise ValueError(f"proportions must lie in (0, 1), got {p1!r} and {p2!r}")
    return p1, p2


def two_proportions_power_normal(
    p_control: float, p_treatment: float, n_control: float, n_treatment: float, *, alpha: float = 0.05
) -> float:
    """Normal-approximation power of the two-sided two-proportion z test (= Pearson chi-square).

    The null variance uses the pooled proportion ``(n_c p_c + n_t p_t) / (n_c + n_t)``, the
    alternative variance the unpooled one; both tails are counted. This is ``Hmisc::bpower``
    and ``statsmodels.stats.proportion.power_proportions_2indep``; no continuity correction.

    Parameters
    ----------
    p_control, p_treatment : float
        True event probabilities in (0, 1).
    n_control, n_treatment : float
        Patients per arm.
    alpha : float, default 0.05
        Two-sided significance level.

    Returns
    -------
    float
    """
    p1, p2 = _check_proportions(p_control, p_treatment)
    n1 = _check_positive("n_control", n_control)
    n2 = _check_positive("n_treatment", n_treatment)
    alpha = _check_level("alpha", alpha)
    z = -special.ndtri(alpha / 2)
    pooled = (n1 * p1 + n2 * p2) / (n1 + n2)
    sd_null = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    sd_alt = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    diff = abs(p1 - p2)
    near = special.ndtr(-(z * sd_null - diff) / sd_alt)
    far = special.ndtr((-z * sd_null - diff) / sd_alt)
    return float(near + far)


def two_proportions_sample_size_normal(
    p_control: float, p_treatment: float, *, power: float, alpha: float = 0.05, ratio: float = 1.0
) -> float:
    """Unrounded control-arm size for the two-sided two-proportion z test (normal formula).

    Fleiss' formula without continuity correction, as ``Hmisc::bsamsize`` and
    ``statsmodels.stats.proportion.samplesize_proportions_2indep_onetail``: pooled variance
    under the null, unpooled under the alternative, far tail ignored::

        n_c = (z_{1-a/2} sqrt((1 + r) pbar qbar) + z_{power} sqrt(r p_c q_c + p_t q_t))^2
              / (r (p_c - p_t)^2),   pbar = (p_c + r p_t) / (1 + r),   n_t = r n_c

    Parameters
    ----------
    p_control, p_treatment : float
        True event probabilities in (0, 1), different.
    power : float
        Target power in (0, 1).
    alpha : float, default 0.05
        Two-sided significance level.
    ratio : float, default 1
        ``r = n_treatment / n_control``.

    Returns
    -------
    float
        Unrounded ``n_control``; round up (and check the exact power) before use.
    """
    p1, p2 = _check_proportions(p_control, p_treatment)
    if p1 == p2:
        raise ValueError("p_control and p_treatment must differ")
    power = _check_level("power", power)
    alpha = _check_level("alpha", alpha)
    r = _check_positive("ratio", ratio)
    z_alpha = -special.ndtri(alpha / 2)
    z_beta = special.ndtri(power)
    pbar = (p1 + r * p2) / (1 + r)
    root = z_alpha * math.sqrt((1 + r) * pbar * (1 - pbar)) + z_beta * math.sqrt(
        r * p1 * (1 - p1) + p2 * (1 - p2)
    )
    return float(root**2 / (r * (p1 - p2) ** 2))
