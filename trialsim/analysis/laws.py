"""Distribution functions through scipy.special, bit for bit what scipy.stats gives, without importing scipy.stats.

Importing scipy.stats costs about a second of CPU (its docstrings are parsed on import). These are the functions
its distributions call underneath (``norm.ppf`` is ``ndtri``, ``t.ppf`` is ``stdtrit``, ``chi2.ppf`` twice
``gammaincinv`` and ``chi2.isf`` ``chdtri``; ``nct.sf``, ``binom.pmf`` and ``beta.ppf`` are Boost's, as private
ufuncs of scipy.special, clipped into [0, 1] where scipy.stats clips them), and a scipy without one of those private
names falls back to scipy.stats. They skip scipy.stats's argument checks, so they equal it only inside each law's
parameter range and support (probabilities strictly between 0 and 1 for the quantiles, whole counts ``0 <= k <= n``
for the binomial, finite ``x``, ``df > 0``): what trialsim passes them. Tests compare each with scipy.stats.
"""
from __future__ import annotations

import numpy as np
from scipy import special
from scipy.special import _ufuncs as special_ufuncs

__all__ = ["beta_ppf", "binom_pmf", "chi2_isf", "chi2_ppf", "clopper_pearson", "nct_sf", "norm_cdf", "norm_isf",
           "norm_ppf", "norm_sf", "t_ppf"]


def norm_ppf(q):
    """``scipy.stats.norm.ppf(q)``."""
    return special.ndtri(q)


def norm_isf(q):
    """``scipy.stats.norm.isf(q)``."""
    return -special.ndtri(q)


def norm_cdf(x):
    """``scipy.stats.norm.cdf(x)``."""
    return special.ndtr(x)


def norm_sf(x):
    """``scipy.stats.norm.sf(x)``."""
    return special.ndtr(-x)


def t_ppf(q, df):
    """``scipy.stats.t.ppf(q, df)``."""
    return special.stdtrit(df, q)


def chi2_ppf(q, df):
    """``scipy.stats.chi2.ppf(q, df)``."""
    return 2 * special.gammaincinv(df / 2, q)


def chi2_isf(q, df):
    """``scipy.stats.chi2.isf(q, df)``."""
    return special.chdtri(df, q)


def _boost(name: str, law: str, method: str, *, clip: bool = True):
    """The private ufunc ``name`` (clipped into [0, 1] as scipy.stats clips it, where ``clip``); ``scipy.stats.<law>.
    <method>`` where this scipy has no such ufunc."""
    ufunc = getattr(special_ufuncs, name, None)
    if ufunc is None:
        def fallback(*args):
            from scipy import stats  # noqa: PLC0415 - only where scipy lacks the private ufunc

            return getattr(getattr(stats, law), method)(*args)

        return fallback
    if not clip:
        return ufunc

    def clipped(*args):
        with np.errstate(over="ignore"):
            return np.clip(ufunc(*args), 0.0, 1.0)

    return clipped


nct_sf = _boost("_nct_sf", "nct", "sf")  # nct_sf(x, df, nc): scipy.stats.nct.sf
binom_pmf = _boost("_binom_pmf", "binom", "pmf")  # binom_pmf(k, n, p): scipy.stats.binom.pmf
beta_ppf = _boost("_beta_ppf", "beta", "ppf", clip=False)  # beta_ppf(q, a, b): scipy.stats.beta.ppf (not clipped there)


def clopper_pearson(x, n, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) binomial interval for ``x`` events in ``n`` (``n >= 1``), element by element: the beta
    quantiles, 0 below ``x = 0`` and 1 above ``x = n``."""
    a = (1 - level) / 2
    x, n = np.asarray(x, float), np.asarray(n, float)
    with np.errstate(invalid="ignore"):
        low = np.where(x == 0, 0.0, beta_ppf(a, x, n - x + 1))
        high = np.where(x == n, 1.0, beta_ppf(1 - a, x + 1, n - x))
    return low, high
