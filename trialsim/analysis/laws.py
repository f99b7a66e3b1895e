"""Distribution functions through scipy.special, bit for bit what scipy.stats gives, without importing scipy.stats.

Importing scipy.stats costs about a second of CPU (its docstrings are parsed on import). These are the functions
its distributions call underneath (``norm.ppf`` is ``ndtri``, ``t.ppf`` is ``stdtrit``, ``chi2.ppf`` twice ``gammaincinv``; ``nct.sf``, ``binom.pmf``
and ``beta.ppf`` are Boost's, as private ufuncs of scipy.special), for arguments the distributions accept; a
scipy without one of those private names falls back to scipy.stats. Tests compare each with scipy.stats.
"""
from __future__ import annotations

import numpy as np
from scipy import special
from scipy.special import _ufuncs as special_ufuncs

__all__ = ["beta_ppf", "binom_pmf", "chi2_ppf", "nct_sf", "norm_cdf", "norm_isf", "norm_ppf", "t_ppf"]


def norm_ppf(q):
    """``scipy.stats.norm.ppf(q)``."""
    return special.ndtri(q)


def norm_isf(q):
    """``scipy.stats.norm.isf(q)``."""
    return -special.ndtri(q)


def norm_cdf(x):
    """``scipy.stats.norm.cdf(x)``."""
    return special.ndtr(x)


def t_ppf(q, df):
    """``scipy.stats.t.ppf(q, df)``."""
    return special.stdtrit(df, q)


def chi2_ppf(q, df):
    """``scipy.stats.chi2.ppf(q, df)``."""
    return 2 * special.gammaincinv(df / 2, q)


def _stats(name: str, method: str):
    def fallback(*args):
        from scipy import stats  # noqa: PLC0415 - only where scipy lacks the private ufunc

        return getattr(getattr(stats, name), method)(*args)

    return fallback


_NCT_SF = getattr(special_ufuncs, "_nct_sf", None)


def nct_sf(x, df, nc):
    """``scipy.stats.nct.sf(x, df, nc)`` (Boost's tail, clipped into [0, 1] as scipy does)."""
    if _NCT_SF is None:
        return _stats("nct", "sf")(x, df, nc)
    with np.errstate(over="ignore"):
        return np.clip(_NCT_SF(x, df, nc), 0, 1)


binom_pmf = getattr(special_ufuncs, "_binom_pmf", _stats("binom", "pmf"))  # binom.pmf(k, n, p)
beta_ppf = getattr(special_ufuncs, "_beta_ppf", _stats("beta", "ppf"))  # beta.ppf(q, a, b)
