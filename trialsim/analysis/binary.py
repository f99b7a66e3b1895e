"""Two-sided tests for a binary endpoint, vectorised over simulated trials.

Every test here is defined by a table of p-values indexed by the events in each arm,
``table[x_control, x_treatment]``, for one pair of analysable arm sizes. A simulated trial is
then a table look-up, so 100,000 trials cost a few array passes, and exact power is a sum of
binomial probabilities over the rejection region (``pvalue <= alpha``).

Tests (all two-sided; control is the first arm, treatment the second):

``"fisher"``
    Fisher's exact test: the p-value is the sum of the hypergeometric probabilities, given the
    total number of events, of the tables no more probable than the observed one. Same
    definition as :func:`scipy.stats.fisher_exact`. Ties are decided with a relative tolerance
    of 1e-7 (R's ``fisher.test``); scipy uses 1e-14. The two agree on every table with at most
    80 patients per arm, and on 100 vs 100, 150 vs 120, 200 vs 200, 300 vs 250 and 500 vs 500
    (checked with integer arithmetic: no two distinct hypergeometric probabilities with the
    same margins are closer than 1e-7 relative); the looser tolerance keeps the log-space
    computation used for large arms safe from rounding.
``"boschloo"``
    Boschloo's exact unconditional test with scipy's two-sided convention
    (:func:`scipy.stats.boschloo_exact`, ``alternative="two-sided"``): twice the smaller of
    the two one-sided Boschloo p-values, capped at 1. A one-sided p-value is the supremum over
    the common event probability ``pi`` of the probability of a one-sided Fisher p-value no
    larger than the observed one (ties within scipy's relative 1e-13).
``"chi2"``
    Pearson's chi-square test without continuity correction (the pooled two-proportion z test);
    the p-value is 1 when no patient or every patient had the event.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import special, stats

__all__ = [
    "BINARY_TESTS",
    "BinaryTestResult",
    "binary_test",
    "exact_power",
    "exact_power_curve",
    "gather_by_size_pair",
    "pvalue_table",
    "rejection_region",
]

BINARY_TESTS = ("fisher", "boschloo", "chi2")

# Relative tolerance under which two hypergeometric probabilities count as equal (Fisher), so
# floating-point noise cannot split a true tie (R's fisher.test uses the same 1e-7).
_TIE_RTOL = 1e-7
_LOG_TIE = math.log1p(_TIE_RTOL)
# A table is rejected when p <= alpha * (1 + _ALPHA_RTOL): exact p-values are rationals and
# can equal alpha exactly (Fisher 3 vs 3: 1/20 + 1/20 = 0.1), and rounding must not decide.
_ALPHA_RTOL = 1e-12
# Boschloo orders tables by one-sided Fisher p-values, which are genuinely closer than 1e-7 for
# moderate arms (e.g. 7 vs 30), so it keeps scipy's tolerance.
_BOSCHLOO_TIE_RTOL = 1e-13

# exp(-_LOG_FLOOR) underflows to 0 in double precision: probabilities below it are exact zeros.
_LOG_FLOOR = 746.0

# Tails beyond this many standard deviations (plus a constant for tiny means) carry less than
# ~1e-20 probability for binomial and hypergeometric laws; the windowed power ignores them.
_TAIL_SD = 10.0
_TAIL_ADD = 10.0

# Boschloo: nuisance grid, uniform in theta with pi = sin(theta)^2 (the binomial
# variance-stabilising scale, so the grid is denser where the power function is steepest),
# then golden-section refinement around every grid-local maximum.
_BOSCHLOO_GRID = 2001
_GOLDEN_STEPS = 40

# exact_power with missing data skips analysable counts whose probability is below this (per
# arm); the neglected probability is then below (n + 1) * 1e-18.
_MIXTURE_FLOOR = 1e-13  # analysable-count pairs below this weight are skipped (error < 1e-10)


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def _check_test(test: str) -> str:
    if test not in _TABLE_BUILDERS:
        raise ValueError(f"test must be one of {tuple(_TABLE_BUILDERS)}, got {test!r}")
    return test


def _check_n(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_unit(name: str, value, *, open_interval: bool) -> float:
    value = float(value)
    ok = 0.0 < value < 1.0 if open_interval else 0.0 <= value <= 1.0
    if not ok:
        interval = "(0, 1)" if open_interval else "[0, 1]"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return value


def _check_alpha(alpha) -> float:
    return _check_unit("alpha", alpha, open_interval=True)


def _reject_level(alpha: float) -> float:
    """Largest p-value that rejects at ``alpha`` (see ``_ALPHA_RTOL``)."""
    return alpha * (1.0 + _ALPHA_RTOL)


# --------------------------------------------------------------------------------------------
# combinatorics
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2048)
def _log_comb(n: int) -> np.ndarray:
    """log C(n, k) for k = 0..n (read-only)."""
    lf = special.gammaln(np.arange(n + 1) + 1.0)
    out = lf[n] - lf - lf[::-1]
    out.flags.writeable = False
    return out


def _hypergeom_pmf_table(n1: int, n2: int) -> np.ndarray:
    """P(X1 = x1 | X1 + X2 = x1 + x2) under the null, as an (n1 + 1, n2 + 1) table."""
    lc1, lc2, lcn = _log_comb(n1), _log_comb(n2), _log_comb(n1 + n2)
    m = np.arange(n1 + 1)[:, None] + np.arange(n2 + 1)[None, :]
    return np.exp(lc1[:, None] + lc2[None, :] - lcn[m])


def _binom_pmf(n: int, p: float) -> np.ndarray:
    """Binomial(n, p) pmf at 0..n.

    scipy's pmf is accurate to the last bits (a log-space formula loses ~1e-13 at n = 500) but
    raises OverflowError for subnormal p (~1e-308); the log-space formula covers that case.
    """
    k = np.arange(n + 1)
    try:
        return stats.binom.pmf(k, n, p)
    except OverflowError:
        return np.exp(_log_comb(n) + special.xlogy(k, p) + special.xlog1py(n - k, -p))


# --------------------------------------------------------------------------------------------
# Fisher: p-values margin by margin, using unimodality of the hypergeometric law
# --------------------------------------------------------------------------------------------
def _row_keys(values: np.ndarray, stride: float) -> np.ndarray:
    """Flatten row-wise ascending values (in [0, _LOG_FLOOR]) into one ascending key array."""
    rows = np.arange(values.shape[0])[:, None] * stride
    return (values + rows).ravel()


_KEY_STRIDE = 2.0 * _LOG_FLOOR + 4.0  # keeps the key ranges of consecutive rows apart


@dataclass(frozen=True)
class _FisherMargins:
    """Null hypergeometric laws of a block of margins, laid out for two-sided Fisher p-values.

    Row ``r`` holds margin ``m[r]`` (total events); column ``c`` holds ``x[r, c] = mode(m[r]) +
    c - half_width`` control events. The pmf rises up to the mode (columns ``<= half_width``)
    and falls after it, so the tables no more probable than a given one are a prefix of the
    rising side plus a suffix of the falling side. Both are found by ``searchsorted`` on keys
    offset by row, and their masses come from cumulative sums taken from the outer ends, which
    keeps small p-values accurate.
    """

    m: np.ndarray  # (rows, 1)
    x: np.ndarray  # (rows, width)
    inside: np.ndarray  # (rows, width): a possible table
    threshold: np.ndarray  # (rows, width): -log pmf minus the tie tolerance, floored
    rise_keys: np.ndarray
    fall_keys: np.ndarray
    cum_rise: np.ndarray  # (rows, half_width + 2): mass of the first k rising columns
    tail_fall: np.ndarray  # (rows, half_width + 1): mass of falling columns j..end
    own_tail: np.ndarray  # (rows, width): mass from the outer end up to the cell, a lower bound of p
    half_width: int


def _margin_grid(n1: int, n2: int, m, half_width: int):
    """Margins ``m`` as rows, columns ``mode(m) - half_width .. mode(m) + half_width``.

    Returns ``m`` as a column, the control events ``x`` per cell and whether the cell is a
    possible table. ``mode = floor((m + 1)(n1 + 1) / (n + 2))`` is the mode of the null
    hypergeometric law of the control events given ``m``.
    """
    n = n1 + n2
    m = np.asarray(m, dtype=np.int64)[:, None]
    mode = ((m + 1) * (n1 + 1)) // (n + 2)
    x = mode + np.arange(-half_width, half_width + 1)[None, :]
    inside = (x >= np.maximum(0, m - n2)) & (x <= np.minimum(n1, m))
    return m, x, inside


def _fisher_margins(n1: int, n2: int, m: np.ndarray, half_width: int) -> _FisherMargins:
    """Lay out the margins ``m`` with ``half_width`` columns either side of each mode.

    Probability outside the window is ignored: below ~1e-20 when ``half_width >= 10 sd + 10``;
    none when ``half_width >= n1`` (the window then holds the whole support).
    """
    m, x, inside = _margin_grid(n1, n2, m, half_width)
    xc = np.clip(x, np.maximum(0, m - n2), np.minimum(n1, m))
    lc1, lc2, lcn = _log_comb(n1), _log_comb(n2), _log_comb(n1 + n2)
    logpmf = np.where(inside, lc1[xc] + lc2[m - xc] - lcn[m], -np.inf)
    pmf = np.exp(logpmf)
    # -log pmf, floored: beyond the floor the pmf is exactly 0 in double precision anyway
    neglog = np.minimum(-logpmf, _LOG_FLOOR)
    w = half_width
    rows = pmf.shape[0]
    # ascending keys: rising side by log pmf, falling side by -log pmf; maximum.accumulate
    # only guards against last-bit noise on a plateau at the mode
    rise_keys = _row_keys(np.maximum.accumulate(_LOG_FLOOR - neglog[:, : w + 1], axis=1), _KEY_STRIDE)
    fall_keys = _row_keys(np.maximum.accumulate(neglog[:, w + 1 :], axis=1), _KEY_STRIDE)
    zeros = np.zeros((rows, 1))
    cum_rise = np.concatenate([zeros, np.cumsum(pmf[:, : w + 1], axis=1)], axis=1)
    tail_fall = np.concatenate([np.cumsum(pmf[:, w + 1 :][:, ::-1], axis=1)[:, ::-1], zeros], axis=1)
    own_tail = np.concatenate([cum_rise[:, 1:], tail_fall[:, :-1]], axis=1)
    threshold = np.clip(neglog - _LOG_TIE, 0.0, _LOG_FLOOR)
    return _FisherMargins(
        m, x, inside, threshold, rise_keys, fall_keys, cum_rise, tail_fall, own_tail, half_width
    )


def _fisher_pvalues_at(margins: _FisherMargins, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Two-sided Fisher p-values of the cells ``(row, col)`` of ``margins``."""
    w = margins.half_width
    threshold = margins.threshold[row, col]
    offset = row * _KEY_STRIDE
    # rising columns with log pmf <= log pmf(cell) + tolerance: a prefix
    n_rise = np.searchsorted(margins.rise_keys, _LOG_FLOOR - threshold + offset, side="right")
    n_rise -= row * (w + 1)
    # falling columns with -log pmf >= -log pmf(cell) - tolerance: a suffix
    first_fall = np.searchsorted(margins.fall_keys, threshold + offset, side="left") - row * w
    pvalue = margins.cum_rise[row, n_rise] + margins.tail_fall[row, first_fall]
    return np.minimum(pvalue, 1.0)


def fisher_table(n1: int, n2: int) -> np.ndarray:
    margins = _fisher_margins(n1, n2, np.arange(n1 + n2 + 1), half_width=n1)
    row, col = np.nonzero(margins.inside)
    x = margins.x[row, col]
    table = np.empty((n1 + 1, n2 + 1))
    table[x, margins.m[row, 0] - x] = _fisher_pvalues_at(margins, row, col)
    return table


def _tail_window(n: int, p: float) -> tuple[int, int]:
    """Counts outside [lo, hi] have probability below ~1e-20 under Binomial(n, p)."""
    reach = _TAIL_SD * math.sqrt(n * p * (1 - p)) + _TAIL_ADD
    return max(0, math.floor(n * p - reach)), min(n, math.ceil(n * p + reach))


def _windowed_power(test: str, n1: int, n2: int, p1: float, p2: float, alpha: float) -> float:
    """Exact power of the two-sided Fisher or chi-square test, in O(n) work per size.

    Both tests reject, within each margin, the tables far from the null mode, so the power is
    computed as 1 - P(accept) over a window: control events within ``_TAIL_SD`` binomial
    standard deviations of their mean, likewise treatment and total events (anything else has
    probability below ~1e-20), and, within each margin, ``_TAIL_SD`` null standard deviations
    either side of the mode. A table outside that window has a p-value below ~1e-20 (|z| > 10
    for chi-square), so it is rejected at any ``alpha >= 1e-12``; a smaller ``alpha`` uses the
    whole margin. A Fisher table whose own tail mass already exceeds ``alpha`` is accepted
    without computing its p-value. The neglected probability is below ~1e-18.
    """
    b1, b2 = _binom_pmf(n1, p1), _binom_pmf(n2, p2)
    lo1, hi1 = _tail_window(n1, p1)
    lo2, hi2 = _tail_window(n2, p2)
    mean_m = n1 * p1 + n2 * p2
    reach_m = _TAIL_SD * math.sqrt(n1 * p1 * (1 - p1) + n2 * p2 * (1 - p2)) + _TAIL_ADD
    m = np.arange(
        max(lo1 + lo2, math.floor(mean_m - reach_m)), min(hi1 + hi2, math.ceil(mean_m + reach_m)) + 1
    )
    n = n1 + n2
    var = m * (n - m) * n1 * n2 / (n * n * max(n - 1, 1))
    half_width = min(n1, math.ceil(_TAIL_SD * math.sqrt(var.max()) + _TAIL_ADD))
    if alpha < 1e-12:
        half_width = n1
    level = _reject_level(alpha)
    if test == "fisher":
        margins = _fisher_margins(n1, n2, m, half_width)
        mcol, x, inside = margins.m, margins.x, margins.inside
    else:
        mcol, x, inside = _margin_grid(n1, n2, m, half_width)
    y = mcol - x
    relevant = inside & (x >= lo1) & (x <= hi1) & (y >= lo2) & (y <= hi2)
    if test == "fisher":
        accept = relevant & (margins.own_tail > level)
        row, col = np.nonzero(relevant & ~accept)
        accept[row, col] = _fisher_pvalues_at(margins, row, col) > level
    else:
        accept = np.zeros_like(relevant)
        accept[relevant] = chi2_pvalues(n1, n2, x[relevant], y[relevant]) > level
    xa, ya = x[accept], y[accept]
    return float(max(0.0, 1.0 - np.sum(b1[xa] * b2[ya])))


# --------------------------------------------------------------------------------------------
# Boschloo
# --------------------------------------------------------------------------------------------
def _one_sided_fisher(pmf: np.ndarray):
    """P(X1 <= x1 | m) and P(X1 >= x1 | m) for every table, summed along anti-diagonals."""
    n1 = pmf.shape[0] - 1
    less = np.zeros_like(pmf)
    greater = np.zeros_like(pmf)
    less[0] = pmf[0]
    for i in range(1, n1 + 1):  # (i, j) and (i - 1, j + 1) share the margin
        less[i] = pmf[i]
        less[i, :-1] += less[i - 1, 1:]
    greater[n1] = pmf[n1]
    for i in range(n1 - 1, -1, -1):  # (i, j) and (i + 1, j - 1) share the margin
        greater[i] = pmf[i]
        greater[i, 1:] += greater[i + 1, :-1]
    return less, greater


def _binom_pmf_matrix(n: int, theta: np.ndarray) -> np.ndarray:
    """Binomial(n, sin(theta)^2) pmf of the total events, shape (len(theta), n + 1)."""
    k = np.arange(n + 1)
    pi = np.sin(theta)[:, None] ** 2
    log = _log_comb(n)[None, :] + special.xlogy(k, pi) + special.xlog1py(n - k, -pi)
    return np.exp(log)


def _boschloo_one_sided(statistic: np.ndarray, pmf: np.ndarray, margin: np.ndarray) -> np.ndarray:
    """sup over pi of P_pi(statistic <= observed statistic), for every table.

    P_pi(E) = sum over margins m of Binomial(N, pi)(m) * P(E | m), and the rejection sets E are
    nested (prefixes of the tables sorted by the statistic), so the conditional masses
    ``P(E | m)`` of every set come from one cumulative sum, and the whole grid is a matrix product.
    """
    n_total = margin.max()
    order = np.argsort(statistic, axis=None, kind="stable")
    stat_sorted = statistic.ravel()[order]
    count = np.searchsorted(stat_sorted, statistic.ravel() * (1 + _BOSCHLOO_TIE_RTOL), side="right")
    onehot = np.zeros((order.size + 1, n_total + 1))
    onehot[np.arange(1, order.size + 1), margin.ravel()[order]] = pmf.ravel()[order]
    conditional = np.cumsum(onehot, axis=0)[count]  # (tables, margins)

    theta = np.linspace(0.0, np.pi / 2, _BOSCHLOO_GRID)
    grid = conditional @ _binom_pmf_matrix(n_total, theta).T  # (tables, grid)
    best = grid.max(axis=1)

    # refine around every grid-local maximum: golden-section search on [theta_-1, theta_+1]
    padded = np.pad(grid, ((0, 0), (1, 1)), constant_values=-np.inf)
    # strict on the left so a flat run yields one candidate; peaks far below the best cannot
    # overtake it within one grid step; one-sided values >= 1/2 give a two-sided p of 1 anyway.
    local = (grid > padded[:, :-2]) & (grid >= padded[:, 2:])
    local &= (grid >= best[:, None] * (1 - 1e-2)) & (best[:, None] < 0.5)
    table_idx, grid_idx = np.nonzero(local)
    step = theta[1] - theta[0]
    a = np.maximum(theta[grid_idx] - step, 0.0)
    b = np.minimum(theta[grid_idx] + step, np.pi / 2)
    h = conditional[table_idx]

    def f(t):
        return np.einsum("ij,ij->i", h, _binom_pmf_matrix(n_total, t))

    inv_phi = (math.sqrt(5) - 1) / 2
    c, d = b - inv_phi * (b - a), a + inv_phi * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(_GOLDEN_STEPS):
        left = fc >= fd  # maximum in [a, d]
        b = np.where(left, d, b)
        a = np.where(left, a, c)
        new = np.where(left, b - inv_phi * (b - a), a + inv_phi * (b - a))
        fnew = f(new)
        c, d, fc, fd = (
            np.where(left, new, d),
            np.where(left, c, new),
            np.where(left, fnew, fd),
            np.where(left, fc, fnew),
        )
    refined = np.maximum(fc, fd)
    np.maximum.at(best, table_idx, refined)
    return np.minimum(best, 1.0).reshape(statistic.shape)


def boschloo_table(n1: int, n2: int) -> np.ndarray:
    pmf = _hypergeom_pmf_table(n1, n2)
    margin = np.arange(n1 + 1)[:, None] + np.arange(n2 + 1)[None, :]
    less, greater = _one_sided_fisher(pmf)
    p_less = _boschloo_one_sided(less, pmf, margin)
    p_greater = _boschloo_one_sided(greater, pmf, margin)
    return np.minimum(1.0, 2.0 * np.minimum(p_less, p_greater))


# --------------------------------------------------------------------------------------------
# Pearson chi-square
# --------------------------------------------------------------------------------------------
def chi2_pvalues(n1: int, n2: int, x1, x2) -> np.ndarray:
    """Pearson chi-square p-values (1 df, no continuity correction) of tables (x1, x2)."""
    x1 = np.asarray(x1, dtype=float)
    x2 = np.asarray(x2, dtype=float)
    n = n1 + n2
    m = x1 + x2
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = n * (x1 * (n2 - x2) - x2 * (n1 - x1)) ** 2 / (n1 * n2 * m * (n - m))
    return np.where((m == 0) | (m == n), 1.0, special.chdtrc(1, statistic))


def chi2_table(n1: int, n2: int) -> np.ndarray:
    return chi2_pvalues(n1, n2, np.arange(n1 + 1)[:, None], np.arange(n2 + 1)[None, :])


_TABLE_BUILDERS: dict[str, Callable[[int, int], np.ndarray]] = {
    "fisher": fisher_table,
    "boschloo": boschloo_table,
    "chi2": chi2_table,
}


def register_table_test(name: str, table_builder: Callable[[int, int], np.ndarray],
                        direct: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None) -> None:
    """Make ``name`` a binary test of this module: ``table_builder(n1, n2)`` gives its p-value table.

    ``direct(n1, n2, x1, x2)`` (float arrays, one entry per distinct table) computes p-values per
    observed table for large arms; without it the test always uses whole tables.
    """
    _TABLE_BUILDERS[name] = table_builder
    if direct is not None:
        _DIRECT[name] = direct


# --------------------------------------------------------------------------------------------
# public tables
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=512)
def _pvalue_table_cached(test: str, n_control: int, n_treatment: int) -> np.ndarray:
    table = _TABLE_BUILDERS[test](n_control, n_treatment)
    table.flags.writeable = False
    return table


def pvalue_table(test: str, n_control: int, n_treatment: int) -> np.ndarray:
    """Two-sided p-value of every 2x2 table with the given arm sizes.

    Parameters
    ----------
    test : {"fisher", "boschloo", "chi2"}
        The test (see the module docstring for the exact definitions).
    n_control, n_treatment : int
        Analysable patients per arm, at least 1 each.

    Returns
    -------
    ndarray, shape (n_control + 1, n_treatment + 1)
        ``table[x_control, x_treatment]`` is the p-value of the trial with those event counts.
        Cached and read-only.

    Notes
    -----
    Cost: ``"chi2"`` and ``"fisher"`` are O(n_control * n_treatment) array operations
    (a 500 x 500 Fisher table takes tens of milliseconds). ``"boschloo"`` evaluates every
    table's one-sided rejection probability on a 2001-point nuisance grid and refines each
    local maximum by golden-section search: about 10 ms at 10 vs 10, 0.4 s at 50 vs 50, and
    memory grows as the number of tables times the grid size (160 MB at 100 vs 100).
    """
    _check_test(test)
    n_control = _check_n("n_control", n_control)
    n_treatment = _check_n("n_treatment", n_treatment)
    return _pvalue_table_cached(test, n_control, n_treatment)


@functools.lru_cache(maxsize=512)
def _rejection_region_cached(test: str, n_control: int, n_treatment: int, alpha: float) -> np.ndarray:
    region = _pvalue_table_cached(test, n_control, n_treatment) <= _reject_level(alpha)
    region.flags.writeable = False
    return region


def rejection_region(test: str, n_control: int, n_treatment: int, alpha: float) -> np.ndarray:
    """Tables rejected at level ``alpha``: ``pvalue_table(...) <= alpha``.

    The comparison allows a relative 1e-12 so that a p-value equal to ``alpha`` in exact
    arithmetic (it happens: Fisher, 3 vs 3, table [3, 0] has p = 1/10) rejects whatever the
    rounding.

    Parameters
    ----------
    test : {"fisher", "boschloo", "chi2"}
    n_control, n_treatment : int
        Analysable patients per arm, at least 1 each.
    alpha : float
        Two-sided significance level in (0, 1).

    Returns
    -------
    ndarray of bool, shape (n_control + 1, n_treatment + 1)
        Cached and read-only.
    """
    _check_test(test)
    return _rejection_region_cached(
        test, _check_n("n_control", n_control), _check_n("n_treatment", n_treatment), _check_alpha(alpha)
    )


# --------------------------------------------------------------------------------------------
# grouped look-up shared with the exact Mann-Whitney test and Fisher's odds ratio
# --------------------------------------------------------------------------------------------
def gather_by_size_pair(
    size_a: np.ndarray,
    size_b: np.ndarray,
    flat_index: np.ndarray,
    table_for: Callable[[int, int], np.ndarray | None],
) -> np.ndarray:
    """Look up each trial's value in the table of its pair of sizes.

    Parameters
    ----------
    size_a, size_b : ndarray of int
        The trials' sizes (typically analysable patients per arm), any shape.
    flat_index : ndarray of int
        Each trial's position in the flattened table of its size pair.
    table_for : callable
        ``table_for(a, b)`` gives the table of the size pair ``(a, b)``, or None (NaN for those trials).

    Returns
    -------
    ndarray of float
        ``table_for(a, b).ravel()[flat_index]`` per trial, same shape as ``size_a``.

    Notes
    -----
    Trials are grouped by their size pair (a dense code, then ``np.bincount`` to list the pairs
    present), each pair's table is fetched once, and all tables are concatenated so the whole
    look-up is one fancy-indexing pass.
    """
    size_a = size_a.astype(np.int64, copy=False)
    size_b = size_b.astype(np.int64, copy=False)
    width = int(size_b.max(initial=0)) + 1
    code = size_a * width + size_b
    present = np.flatnonzero(np.bincount(code.ravel()))
    chunks, offsets = [np.array([np.nan])], np.zeros(present.max(initial=0) + 1, dtype=np.int64)
    start = 1  # slot 0 holds the NaN used by pairs without a table
    for c in present:
        table = table_for(int(c // width), int(c % width))
        if table is None:
            offsets[c] = -1
            continue
        flat = np.asarray(table, dtype=float).ravel()
        chunks.append(flat)
        offsets[c] = start
        start += flat.size
    values = np.concatenate(chunks)
    base = offsets[code]
    index = np.where(base < 0, 0, base + flat_index)
    return values[index]


# --------------------------------------------------------------------------------------------
# per-trial p-values for large arms
# --------------------------------------------------------------------------------------------
# Above this many patients per arm, binary_test computes Fisher and chi-square p-values per
# distinct observed table instead of building a whole table per analysable size pair.
DIRECT_FROM_N = 60


def fisher_direct(n1: np.ndarray, n2: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Two-sided Fisher p-value of each table (n1, n2, x1, x2), same rule as the tables.

    Sums the hypergeometric probabilities (given the total events m) that do not exceed the
    observed one times 1 + 1e-7, over the support of each table; vectorised over tables.
    """
    m = x1 + x2
    lo = np.maximum(0, m - n2)
    hi = np.minimum(n1, m)
    width = int((hi - lo).max(initial=0)) + 1
    x = lo[:, None] + np.arange(width)[None, :]
    inside = x <= hi[:, None]
    xs = np.where(inside, x, lo[:, None])

    def logpmf(k):
        return (special.gammaln(n1[:, None] + 1) - special.gammaln(k + 1) - special.gammaln(n1[:, None] - k + 1)
                + special.gammaln(n2[:, None] + 1) - special.gammaln(m[:, None] - k + 1)
                - special.gammaln(n2[:, None] - m[:, None] + k + 1)
                - (special.gammaln(n1[:, None] + n2[:, None] + 1) - special.gammaln(m[:, None] + 1)
                   - special.gammaln(n1[:, None] + n2[:, None] - m[:, None] + 1)))

    support = logpmf(xs)
    observed = logpmf(x1[:, None].astype(float))
    keep = inside & (support <= observed + _LOG_TIE)
    return np.minimum(1.0, np.sum(np.where(keep, np.exp(support), 0.0), axis=1))


_DIRECT: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "fisher": fisher_direct,
    "chi2": chi2_pvalues,
}


def _direct_pvalues(test: str, n_c: np.ndarray, n_t: np.ndarray, e_c: np.ndarray, e_t: np.ndarray) -> np.ndarray:
    """P-values per trial (NaN with an empty arm), computed once per distinct observed table."""
    shape = n_c.shape
    key = np.stack([n_c.ravel(), n_t.ravel(), e_c.ravel(), e_t.ravel()]).astype(np.int64)
    tables, inverse = np.unique(key, axis=1, return_inverse=True)
    a, b, x, y = (tables[i].astype(float) for i in range(4))
    ok = (a > 0) & (b > 0)
    p = np.full(a.shape, np.nan)
    p[ok] = _DIRECT[test](a[ok], b[ok], x[ok], y[ok])
    return p[inverse.ravel()].reshape(shape)


# --------------------------------------------------------------------------------------------
# simulated trials
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BinaryTestResult:
    """Per-trial result of :func:`binary_test`; every array has the trials' shape.

    Attributes
    ----------
    test : str
    alpha : float
    pvalue : ndarray of float
        Two-sided p-value; NaN when an arm has no analysable patient.
    reject : ndarray of bool
        ``pvalue <= alpha`` up to a relative 1e-12, as :func:`rejection_region` (False where
        the p-value is NaN).
    n_control, n_treatment : ndarray of int
        Analysable patients per arm.
    events_control, events_treatment : ndarray of int
        Events among the analysable patients.
    """

    test: str
    alpha: float
    pvalue: np.ndarray
    reject: np.ndarray
    n_control: np.ndarray
    n_treatment: np.ndarray
    events_control: np.ndarray
    events_treatment: np.ndarray

    def rejection_rate(self) -> float:
        """Fraction of trials that reject (a trial with an empty arm counts as not rejecting)."""
        return float(np.mean(self.reject))

    def rejection_rate_se(self) -> float:
        """Monte Carlo standard error of :meth:`rejection_rate`."""
        rate = self.rejection_rate()
        return math.sqrt(rate * (1 - rate) / self.reject.size)


def _as_binary(name: str, x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim == 0:
        raise ValueError(f"{name} must have a patient axis (last axis)")
    if not np.all((x == 0) | (x == 1) | np.isnan(x)):
        raise ValueError(f"{name} must contain only 0, 1 or NaN (missing)")
    return x


def binary_test(test: str, x_control, x_treatment, *, alpha: float) -> BinaryTestResult:
    """Run a two-sided binary test on every simulated trial.

    Parameters
    ----------
    test : {"fisher", "boschloo", "chi2"}
    x_control, x_treatment : array_like, shape (..., n_control) and (..., n_treatment)
        Outcomes 0.0 / 1.0 per patient along the last axis, NaN for a patient who is missing or
        not analysable (excluded, so each trial may have its own analysable sizes). Leading
        shapes must match; typically (n_sims,).
    alpha : float
        Two-sided significance level in (0, 1).

    Returns
    -------
    BinaryTestResult
        Arrays with the leading shape.

    Notes
    -----
    Each trial is a look-up in the cached :func:`pvalue_table` of its (n_control,
    n_treatment) pair of analysable sizes, so the cost is a few passes over the data plus one
    table per distinct pair. With missing data and ``"boschloo"`` the first call builds up to
    one Boschloo table per pair (a few milliseconds each at 10 vs 10).
    """
    _check_test(test)
    alpha = _check_alpha(alpha)
    xc = _as_binary("x_control", x_control)
    xt = _as_binary("x_treatment", x_treatment)
    if xc.shape[:-1] != xt.shape[:-1]:
        raise ValueError(
            f"leading shapes differ: x_control {xc.shape[:-1]} vs x_treatment {xt.shape[:-1]}"
        )
    n_c = np.sum(~np.isnan(xc), axis=-1)
    n_t = np.sum(~np.isnan(xt), axis=-1)
    e_c = np.nansum(xc, axis=-1).astype(np.int64)
    e_t = np.nansum(xt, axis=-1).astype(np.int64)

    def table_for(a: int, b: int):
        return None if a == 0 or b == 0 else _pvalue_table_cached(test, a, b)

    if test in _DIRECT and max(xc.shape[-1], xt.shape[-1]) > DIRECT_FROM_N:
        # large arms: one table per analysable size pair would cost more than the trials themselves
        pvalue = _direct_pvalues(test, n_c, n_t, e_c, e_t)
    else:
        pvalue = gather_by_size_pair(n_c, n_t, e_c * (n_t + 1) + e_t, table_for)
    reject = pvalue <= _reject_level(alpha)  # False where NaN
    return BinaryTestResult(
        test=test,
        alpha=alpha,
        pvalue=pvalue,
        reject=reject,
        n_control=n_c,
        n_treatment=n_t,
        events_control=e_c,
        events_treatment=e_t,
    )


# --------------------------------------------------------------------------------------------
# exact power
# --------------------------------------------------------------------------------------------
def _complete_case_power(test: str, n1: int, n2: int, p1: float, p2: float, alpha: float) -> float:
    if test in ("fisher", "chi2"):
        return _windowed_power(test, n1, n2, p1, p2, alpha)
    region = _rejection_region_cached(test, n1, n2, alpha)
    return float(_binom_pmf(n1, p1) @ region @ _binom_pmf(n2, p2))


def exact_power(
    test: str,
    p_control: float,
    p_treatment: float,
    n_control: int,
    n_treatment: int,
    *,
    alpha: float,
    p_missing: float | tuple[float, float] = 0.0,
) -> float:
    """Exact probability that the two-sided test rejects.

    Parameters
    ----------
    test : {"fisher", "boschloo", "chi2"}
    p_control, p_treatment : float
        True event probabilities in [0, 1]. Equal values give the exact size of the test.
    n_control, n_treatment : int
        Randomised patients per arm, at least 1 each.
    alpha : float
        Two-sided significance level in (0, 1).
    p_missing : float or (float, float), default 0
        Probability, independently per patient, that the outcome is missing; one value for both
        arms or a (control, treatment) pair. The power is then mixed exactly over the
        Binomial(n, 1 - p_missing) analysable counts of each arm; a trial with an empty arm
        does not reject (as in :func:`binary_test`).

    Returns
    -------
    float
        ``sum over tables of Binom(x_c; n_c, p_c) * Binom(x_t; n_t, p_t) * reject``.

    Notes
    -----
    Fisher and chi-square use a windowed enumeration (see ``_windowed_power``) whose
    truncation error is below 1e-18; Boschloo sums over its full rejection region. With
    missing data, analysable counts of probability below 1e-13 are skipped (error below 1e-10).
    """
    _check_test(test)
    alpha = _check_alpha(alpha)
    p1 = _check_unit("p_control", p_control, open_interval=False)
    p2 = _check_unit("p_treatment", p_treatment, open_interval=False)
    n1 = _check_n("n_control", n_control)
    n2 = _check_n("n_treatment", n_treatment)
    missing = np.asarray(p_missing, dtype=float).ravel()
    if missing.size == 1:
        missing = np.repeat(missing, 2)
    if missing.size != 2 or not np.all((missing >= 0.0) & (missing < 1.0)):
        raise ValueError(f"p_missing must lie in [0, 1) (one value or one per arm), got {p_missing!r}")
    if not missing.any():
        return _complete_case_power(test, n1, n2, p1, p2, alpha)
    (w1, keep1), (w2, keep2) = _mixture_support(n1, float(missing[0])), _mixture_support(n2, float(missing[1]))
    total = 0.0
    for k1 in keep1:
        for k2 in keep2:
            total += w1[k1] * w2[k2] * _complete_case_power(test, k1, k2, p1, p2, alpha)
    return float(total)


def _mixture_support(n: int, p_missing: float) -> tuple[np.ndarray, list[int]]:
    w = _binom_pmf(n, 1.0 - p_missing)
    return w, [k for k in range(1, n + 1) if w[k] >= _MIXTURE_FLOOR]


def exact_power_cost(n_control: int, n_treatment: int, p_missing: float | tuple[float, float] = 0.0) -> int:
    """Tables :func:`exact_power` enumerates (cells over every analysable size pair it mixes over).

    Lets a caller skip an exact figure that would take minutes (large arms with much missing data).
    """
    missing = np.asarray(p_missing, dtype=float).ravel()
    if missing.size == 1:
        missing = np.repeat(missing, 2)
    if not missing.any():
        return (n_control + 1) * (n_treatment + 1)
    k1 = _mixture_support(n_control, float(missing[0]))[1]
    k2 = _mixture_support(n_treatment, float(missing[1]))[1]
    return sum(a + 1 for a in k1) * sum(b + 1 for b in k2)


def exact_power_curve(
    test: str,
    p_control: float,
    p_treatment: float,
    n_control_values,
    *,
    ratio: float = 1.0,
    alpha: float,
) -> np.ndarray:
    """Exact power for each control-arm size, with ``n_treatment = round(ratio * n_control)``.

    Parameters
    ----------
    test : {"fisher", "boschloo", "chi2"}
    p_control, p_treatment : float
        True event probabilities in [0, 1].
    n_control_values : sequence of int
        Control-arm sizes, each at least 1.
    ratio : float, default 1
        Treatment-to-control allocation ratio; the treatment size is rounded half up and must
        be at least 1.
    alpha : float
        Two-sided significance level in (0, 1).

    Returns
    -------
    ndarray of float, same length as ``n_control_values``

    Notes
    -----
    Exact power is not monotone in n for discrete tests (the attainable levels jump), so a
    curve, not a single root, is the honest planning tool. For Fisher and chi-square every n
    from 5 to 500 per arm takes well under a second (O(n) work per size, see
    ``_windowed_power``); Boschloo builds one full table per size and is practical only for
    small arms.
    """
    _check_test(test)
    alpha = _check_alpha(alpha)
    p1 = _check_unit("p_control", p_control, open_interval=False)
    p2 = _check_unit("p_treatment", p_treatment, open_interval=False)
    ratio = float(ratio)
    if not ratio > 0:
        raise ValueError(f"ratio must be positive, got {ratio!r}")
    sizes = [_check_n("n_control", n) for n in np.atleast_1d(n_control_values).tolist()]
    out = np.empty(len(sizes))
    for i, n1 in enumerate(sizes):
        n2 = _check_n("n_treatment (ratio * n_control, rounded)", math.floor(ratio * n1 + 0.5))
        out[i] = _complete_case_power(test, n1, n2, p1, p2, alpha)
    return out
