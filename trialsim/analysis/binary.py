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
    larger than the observed one (ties within scipy's relative 1e-13). Each one-sided test is
    at least as powerful as Fisher's one-sided test at the same level, but the two-sided tests
    differ in how they split alpha, and neither dominates: with 40 vs 80 patients at 8% vs 4%,
    Fisher's two-sided power is 13.7% and Boschloo's 10.2%.
``"chi2"``
    Pearson's chi-square test without continuity correction (the pooled two-proportion z test);
    the p-value is 1 when no patient or every patient had the event.
``"chi2_yates"``
    The same with Yates' continuity correction, as :func:`scipy.stats.chi2_contingency` with
    ``correction=True`` (each cell moved at most 0.5 towards its expected count). Conservative.
``"chi2_n1"``
    The 'N-1' chi-square: Pearson's statistic times (N - 1) / N, which Campbell (2007, Stat Med
    26:3661) recommends for small samples when every expected count is at least 1 (and Fisher's
    test otherwise; this test does not switch).
"""
from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Hashable

import numpy as np
from scipy import special

from trialsim.analysis.laws import binom_pmf
from trialsim.cache import cached_array
from trialsim.memo import bytes_cache

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
# variance-stabilising scale, on which every size function varies on the same width), points per
# width 1 / (2 sqrt(N)) and bounds; then Newton's method on the size function's derivative around every grid-local
# maximum, settled when a step is below _NEWTON_TOL of the bracket of two grid steps; a peak not settled within
# _NEWTON_STEPS gets golden-section search (the bracket shrinks to ~1e-7 of a width). Either is as accurate as the
# size function can be evaluated: ~1e-13 relative at 1,000 patients.
_GRID_PER_WIDTH = 10
_GRID_MIN = 201
_GRID_MAX = 2001
_GOLDEN_STEPS = 32
_NEWTON_STEPS = 40
_NEWTON_TOL = 1e-9
# Bytes each in-memory cache of tables, regions and Boschloo statistics and grids may hold per process: at 450 per
# arm a statistic takes 4.9 MB and a grid 6.8 MB, so each keeps several size pairs (a size pair's statistic is
# used by its cutoff and its region, a grid by every size pair of its total). The five such caches (p-value tables,
# regions, statistics, full and banded grids) hold at most 160 MB, within loky's 300 MB allowance before a worker is
# replaced (raised anyway for trialsim's workers: trialsim.engine.backends).
_CACHE_BYTES = 32 * 2**20
_BOSCHLOO_CHUNK = 1 << 22  # floats per block of thresholds x (grid or margins): 32 MB
_PEAK_CHUNK = 1 << 20  # floats per array of peaks x margins refined at once: 8 MB
# A grid point lies within ~0.5% of any local maximum (a size function's relative curvature is at
# most ~16 N on the theta scale, the grid step 1 / (20 sqrt(N))); peaks within this window of the
# grid maximum are refined.
_PEAK_WINDOW = 2e-2
_SEARCH_WAYS = 15  # statistics compared with the level per round of the cutoff search
_FEW_ROWS = 16  # size functions evaluated without threaded BLAS (it costs more than it saves on so few)
_DIRECT_MEMO_MAX = 100_000  # p-values kept per size pair by the per-table path

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


def _binom_pmf(n: int, p: float, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """Binomial(n, p) pmf at 0..n; with ``lo``/``hi``, only at lo..hi and 0 elsewhere.

    scipy's pmf is accurate to the last bits (a log-space formula loses ~1e-13 at n = 500) but
    raises OverflowError for subnormal p (~1e-308); the log-space formula covers that case. Either is computed
    entry by entry, so the entries kept by a window are the same numbers (the windowed power reads only its
    binomial windows: 103 -> 32 us per arm at 1,000 per arm, p = 0.231).
    """
    hi = n if hi is None else hi
    k = np.arange(lo, hi + 1)
    out = np.zeros(n + 1)
    try:
        out[lo : hi + 1] = binom_pmf(k, n, p)
    except OverflowError:
        out[lo : hi + 1] = np.exp(_log_comb(n)[lo : hi + 1] + special.xlogy(k, p) + special.xlog1py(n - k, -p))
    return out


# --------------------------------------------------------------------------------------------
# Fisher: p-values margin by margin, using unimodality of the hypergeometric law
# --------------------------------------------------------------------------------------------
_KEY_STRIDE = 2.0 * _LOG_FLOOR + 4.0  # keeps the key ranges of consecutive rows apart

# Cells per block of margins while a _FisherMargins is built: 256 KB per temporary, so the temporaries stay in a core's
# cache and come back from the allocator's free memory block after block. Built over the whole window at once, the
# dozen full-size temporaries were fresh pages on every call (1,500 minor page faults, ~4 ms of a 6.7 ms build at
# 1,000 per arm with glibc's default thresholds; 2.4 ms without the faults).
_MARGIN_BLOCK = 1 << 15


@dataclass(frozen=True)
class _FisherMargins:
    """Null hypergeometric laws of a block of margins, laid out for two-sided Fisher p-values.

    Row ``r`` holds margin ``m[r]`` (total events); column ``c`` holds ``x = x0[r] + c`` control events,
    ``x0 = mode(m[r]) - half_width``. The pmf rises up to the mode (columns ``<= half_width``)
    and falls after it, so the tables no more probable than a given one are a prefix of the
    rising side plus a suffix of the falling side. Both are found by ``searchsorted`` on keys
    offset by row, and their masses come from cumulative sums taken from the outer ends, which
    keeps small p-values accurate.

    Only what the p-values read is kept, two values per cell: a cell's own -log pmf is recomputed where it is
    asked for (the same expression, so the same bits), and ``x`` and ``inside`` are built only when read.
    """

    n1: int
    n2: int
    m: np.ndarray  # (rows, 1)
    x0: np.ndarray  # (rows, 1): control events of column 0
    log_comb1: np.ndarray  # log C(n1, k) for k = -half_width .. n1 + half_width, -inf outside 0..n1
    log_comb2: np.ndarray  # the same for n2
    rise_keys: np.ndarray
    fall_keys: np.ndarray
    cum_rise: np.ndarray  # (rows, half_width + 2): mass of the first k rising columns
    tail_fall: np.ndarray  # (rows, half_width + 1): mass of falling columns j..end
    half_width: int

    @property
    def x(self) -> np.ndarray:
        """(rows, width): control events of each cell."""
        return self.x0 + np.arange(2 * self.half_width + 1)[None, :]

    @property
    def inside(self) -> np.ndarray:
        """(rows, width): a possible table."""
        return _possible(self.x, self.m, self.n1, self.n2)

    def threshold_at(self, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        """-log pmf of the cells minus the tie tolerance, within [0, _LOG_FLOOR]."""
        m, x, w = self.m[row, 0], self.x0[row, 0] + col, self.half_width
        # -log pmf as the block was built from: the same three terms added in the same order
        logpmf = self.log_comb1[x + w] + self.log_comb2[m - x + w] - _log_comb(self.n1 + self.n2)[m]
        neglog = np.minimum(-logpmf, _LOG_FLOOR)
        return np.clip(neglog - _LOG_TIE, 0.0, _LOG_FLOOR)

    def own_tail_at(self, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        """Mass from the outer end of the cell's side up to the cell: a lower bound of its p-value."""
        w = self.half_width
        rising = col <= w
        return np.where(rising, self.cum_rise[row, np.where(rising, col + 1, 0)],
                        self.tail_fall[row, np.where(rising, 0, col - (w + 1))])


def _first_columns(n1: int, n2: int, m, half_width: int):
    """Margins ``m`` as a column and the control events ``mode(m) - half_width`` of their first columns.

    ``mode = floor((m + 1)(n1 + 1) / (n + 2))`` is the mode of the null hypergeometric law of the control events
    given ``m``.
    """
    m = np.asarray(m, dtype=np.int64)[:, None]
    return m, ((m + 1) * (n1 + 1)) // (n1 + n2 + 2) - half_width


def _margin_grid(n1: int, n2: int, m, half_width: int):
    """Margins ``m`` as rows, columns ``mode(m) - half_width .. mode(m) + half_width``.

    Returns ``m`` as a column, the control events ``x`` per cell and whether the cell is a
    possible table.
    """
    m, x0 = _first_columns(n1, n2, m, half_width)
    x = x0 + np.arange(2 * half_width + 1)[None, :]
    return m, x, _possible(x, m, n1, n2)


def _possible(x: np.ndarray, m: np.ndarray, n1: int, n2: int) -> np.ndarray:
    """Whether ``x`` control events out of ``m`` (a column) make a possible table."""
    return (x >= np.maximum(0, m - n2)) & (x <= np.minimum(n1, m))


def _padded_log_comb(n: int, pad: int) -> np.ndarray:
    """log C(n, k) for k = -pad .. n + pad, -inf outside 0..n.

    A sum of such terms is -inf off the support, exactly what clipping k into the support and then masking gave,
    without the two passes; on the support it is the same numbers."""
    out = np.full(n + 1 + 2 * pad, -np.inf)
    out[pad : pad + n + 1] = _log_comb(n)
    return out


def _windows(values: np.ndarray, width: int) -> np.ndarray:
    """Read-only view of every run of ``width`` consecutive entries of the contiguous 1-d ``values``, one per row
    (:func:`numpy.lib.stride_tricks.sliding_window_view` without its checks, which cost 25 us a call)."""
    step = values.strides[0]
    view = np.ndarray((values.size - width + 1, width), values.dtype, values, strides=(step, step))
    view.flags.writeable = False
    return view


def _ascending_runs(keys: np.ndarray, run: int) -> None:
    """``keys[j] = max(keys[i..j])`` within each run of ``run`` consecutive entries (as ``np.maximum.accumulate``
    along each run), in place; the runs' ranges must be apart (each above the one before it).

    A run that already rises is left as it is, so only runs with a drop are accumulated: one comparison over the
    whole array instead of an accumulation (4 ns an entry, 0.4 ms of a build at 1,000 per arm; a drop is
    last-bit noise, on a plateau at the mode)."""
    drops = np.flatnonzero(keys[1:] < keys[:-1])
    if drops.size:
        rows = keys.reshape(-1, run)
        bad = np.unique((drops + 1) // run)
        rows[bad] = np.maximum.accumulate(rows[bad], axis=1)


def _fisher_margins(n1: int, n2: int, m: np.ndarray, half_width: int) -> _FisherMargins:
    """Lay out the margins ``m`` with ``half_width`` columns either side of each mode.

    Probability outside the window is ignored: below ~1e-20 when ``half_width >= 10 sd + 10``;
    none when ``half_width >= n1`` (the window then holds the whole support).

    Built block by block of rows (``_MARGIN_BLOCK`` cells) into one array for the four results.
    """
    m, x0 = _first_columns(n1, n2, m, half_width)
    w = half_width
    width = 2 * w + 1
    rows = m.shape[0]
    store = np.empty(rows * (4 * w + 4))
    rise_keys = store[: rows * (w + 1)]
    fall_keys = store[rows * (w + 1) : rows * width]
    cum_rise = store[rows * width : rows * (3 * w + 3)].reshape(rows, w + 2)
    tail_fall = store[rows * (3 * w + 3) :].reshape(rows, w + 1)
    cum_rise[:, 0] = 0.0
    tail_fall[:, w] = 0.0
    # row r's log C(n1, x) is a slice of the padded table from x0; its log C(n2, m - x) a slice of the reversed one
    log_comb1, log_comb2 = _padded_log_comb(n1, w), _padded_log_comb(n2, w)
    lc1, lc2 = _windows(log_comb1, width), _windows(log_comb2[::-1].copy(), width)
    start1, start2 = x0[:, 0] + w, (n2 + w) - (m - x0)[:, 0]
    lcn = _log_comb(n1 + n2)[m]
    offsets = np.arange(rows)[:, None] * _KEY_STRIDE
    step = max(1, _MARGIN_BLOCK // width)
    for a in range(0, rows, step):
        b = min(rows, a + step)
        # rows of a (strided) window view gathered by fancy indexing: a copy per row (np.take copies the whole view)
        lp = lc1[start1[a:b]]
        neglog = lc2[start2[a:b]]
        np.add(lp, neglog, out=lp)
        np.subtract(lp, lcn[a:b], out=lp)
        # -log pmf, floored: beyond the floor the pmf is exactly 0 in double precision anyway
        np.negative(lp, out=neglog)
        np.minimum(neglog, _LOG_FLOOR, out=neglog)
        # ascending keys: rising side by log pmf, falling side by -log pmf, each row offset; the running maximum
        # only guards against last-bit noise on a plateau at the mode. Taken after the offset it is the same
        # numbers: adding the offset rounds monotonically, so it commutes with the maximum.
        rise = rise_keys[a * (w + 1) : b * (w + 1)]
        np.subtract(_LOG_FLOOR, neglog[:, : w + 1], out=rise.reshape(b - a, w + 1))
        np.add(rise.reshape(b - a, w + 1), offsets[a:b], out=rise.reshape(b - a, w + 1))
        _ascending_runs(rise, w + 1)
        fall = fall_keys[a * w : b * w]
        np.add(neglog[:, w + 1 :], offsets[a:b], out=fall.reshape(b - a, w))
        _ascending_runs(fall, w)
        pmf = np.exp(lp, out=lp)
        np.cumsum(pmf[:, : w + 1], axis=1, out=cum_rise[a:b, 1:])
        np.cumsum(pmf[:, w + 1 :][:, ::-1], axis=1, out=tail_fall[a:b, :w][:, ::-1])
    return _FisherMargins(n1, n2, m, x0, log_comb1, log_comb2, rise_keys, fall_keys, cum_rise, tail_fall, half_width)


def _fisher_pvalues_at(margins: _FisherMargins, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Two-sided Fisher p-values of the cells ``(row, col)`` of ``margins``."""
    w = margins.half_width
    threshold = margins.threshold_at(row, col)
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
    whole margin. The neglected probability is below ~1e-18.

    Within a margin the p-value rises towards the centre from either side (see
    :func:`_accepted_runs`), so the accepted tables of each side are a run next to the centre,
    found by probing around a predicted end (then bisection, where the end is not among the
    probes); the sum runs over the same tables in the same order as summing over every
    accepted cell of the window (:func:`_accepted_cells`), to the last bit.
    """
    lo1, hi1 = _tail_window(n1, p1)
    lo2, hi2 = _tail_window(n2, p2)
    b1, b2 = _binom_pmf(n1, p1, lo1, hi1), _binom_pmf(n2, p2, lo2, hi2)
    mean_m = n1 * p1 + n2 * p2
    reach_m = _TAIL_SD * math.sqrt(n1 * p1 * (1 - p1) + n2 * p2 * (1 - p2)) + _TAIL_ADD
    m = np.arange(
        max(lo1 + lo2, math.floor(mean_m - reach_m)), min(hi1 + hi2, math.ceil(mean_m + reach_m)) + 1
    )
    n = n1 + n2
    var = m.astype(float) * (n - m) * n1 * n2 / (n * n * max(n - 1, 1))  # float: the int64 product overflows near 10^5 per arm
    half_width = min(n1, math.ceil(_TAIL_SD * math.sqrt(var.max()) + _TAIL_ADD))
    if alpha < 1e-12:
        half_width = n1
    level = _reject_level(alpha)
    if test == "fisher":
        margins = _fisher_margins(n1, n2, m, half_width)
        mcol, x0 = margins.m, margins.x0[:, 0]

        def accepts(row, col):
            # the cell's own tail mass above the level accepts it; the p-value is computed only where it does not
            keep = margins.own_tail_at(row, col) > level
            rest = np.flatnonzero(~keep)
            keep[rest] = _fisher_pvalues_at(margins, row[rest], col[rest]) > level
            return keep

        # the pmf peaks at the mode (column half_width); its p-value is ~1, so below level 0.5 no
        # rounding on a plateau at the mode can break the runs
        centre = np.full(m.size, half_width) if level < 0.5 else None
    else:
        mcol, x0 = _first_columns(n1, n2, m, half_width)
        x0 = x0[:, 0]

        def accepts(row, col):
            xs = x0[row] + col
            return chi2_pvalues(n1, n2, xs, mcol[row, 0] - xs) > level

        # chi-square's statistic grows with |x n - m n1|: its centre is the x nearest m n1 / n
        centre = np.clip(np.rint(m * n1 / n).astype(np.int64) - x0, -1, 2 * half_width)
    # the tables of the window: events of each arm in their binomial windows, and possible
    first = np.maximum.reduce([np.zeros_like(m), m - n2, np.full_like(m, lo1), m - hi2, x0]) - x0
    last = np.minimum.reduce([np.full_like(m, n1), m, np.full_like(m, hi1), m - lo2, x0 + 2 * half_width]) - x0
    if centre is None or np.sum(np.maximum(last - first + 1, 0)) <= SEARCH_FROM_CELLS[test]:
        xa, ya = _accepted_cells(accepts, x0, mcol, first, last)
    else:
        guess = _fisher_run_ends(margins, level) if test == "fisher" else _chi2_run_ends(n1, n2, m, level, x0)
        xa, ya = _accepted_runs(accepts, x0, mcol, first, last, centre, guess)
    return float(max(0.0, 1.0 - np.sum(b1[xa] * b2[ya])))


# Predicted ends of the accepted runs, for :func:`_first_true`, which probes each and the column before it, then
# the next column on the side the end lies where it was not among them. Measured over the run ends strictly inside
# their windows for 60-1,350 per arm, ratios 1/2, 1 and 2, six rate pairs, alpha 0.01/0.05/0.1/1e-13: Fisher's
# prediction was the end for 84% of 332,000 (all 12,000 at the default config's rates, equal arms, 450-1,350 per arm)
# and one column off for the others, never more; chi-square's was the end for all 361,000.
def _fisher_run_ends(margins: _FisherMargins, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Predicted ends of each margin's accepted runs (first accepted rising column, first rejected falling one):
    where the cell's own tail mass, doubled, crosses the level (its p-value adds the other side's tail)."""
    w = margins.half_width
    rising = np.count_nonzero(margins.cum_rise[:, 1:] <= level / 2, axis=1)
    falling = (w + 1) + np.count_nonzero(margins.tail_fall[:, :w] > level / 2, axis=1)
    return rising, falling


def _chi2_run_ends(n1: int, n2: int, m: np.ndarray, level: float, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted ends of each margin's accepted runs (first accepted rising column, first rejected falling one):
    the p-value exceeds the level where the statistic n (x n - m n1)^2 / (n1 n2 m (n - m)) is below its
    chi-square(1) quantile, so where |x n - m n1| < sqrt(quantile n1 n2 m (n - m) / n)."""
    n = n1 + n2
    with np.errstate(invalid="ignore"):  # a level of 1 or more (alpha within 1e-12 of 1): no quantile, guess the centre
        reach = np.nan_to_num(np.sqrt(special.chdtri(1, level) * n1 * n2 * (m * (n - m)).astype(float) / n), nan=0.0)
    centre = (m * n1).astype(float)
    rising = np.floor((centre - reach) / n).astype(np.int64) + 1 - x0
    falling = np.ceil((centre + reach) / n).astype(np.int64) - x0
    return rising, falling


def _run_cells(rows, begins, stops):
    """Row and column of every cell of the runs of columns ``[begins, stops)`` of ``rows``, run after run."""
    counts = np.maximum(stops - begins, 0)
    offsets = np.cumsum(counts) - counts
    return np.repeat(rows, counts), np.repeat(begins, counts) + np.arange(counts.sum()) - np.repeat(offsets, counts)


def _accepted_cells(accepts, x0, mcol, first, last):
    """Control and treatment events of the accepted cells, row by row: every cell of the window decided.

    ``x0``: control events of column 0 of each row."""
    row, col = _run_cells(np.arange(x0.size), first, last + 1)
    keep = accepts(row, col)
    xa = x0[row[keep]] + col[keep]
    return xa, mcol[row[keep], 0] - xa


# Up to this many tables in the window, deciding every one costs less than searching for the ends of the runs
# (measured: Fisher decides most tables by their own tail mass alone; chi-square computes every p-value).
SEARCH_FROM_CELLS = {"fisher": 6000, "chi2": 800}
def _accepted_runs(accepts, x0, mcol, first, last, centre, guess=None):
    """:func:`_accepted_cells` by search: the same cells in the same order.

    ``accepts(row, col)`` must be monotone on each side of ``centre`` (per row): rising up to and
    including the centre column, falling after it. A p-value that grows towards the centre does
    that: the accepted cells of a side are a run next to the centre, whose far end is found by a
    search (:func:`_first_true`), both sides of every row at once. ``guess``, optional: predicted ends of the
    runs (first accepted rising column, first rejected falling one, per row), probed first.
    """
    rows = np.arange(x0.size)
    rise_lo, rise_hi = first, np.maximum(np.minimum(last, centre) + 1, first)  # rising side: columns [lo, hi)
    fall_lo = np.maximum(first, centre + 1)
    fall_hi = np.maximum(last + 1, fall_lo)
    # rising side: the first accepted column; falling side: the first rejected one
    ends = _first_true(lambda row, col, falling: accepts(row, col) != falling, np.concatenate([rows, rows]),
                       np.concatenate([rise_lo, fall_lo]), np.concatenate([rise_hi, fall_hi]),
                       np.repeat([False, True], rows.size), None if guess is None else np.concatenate(guess))
    begins = np.stack([ends[: rows.size], fall_lo], axis=1).ravel()  # row by row: rising run, falling run
    stops = np.stack([rise_hi, ends[rows.size :]], axis=1).ravel()
    run_row, col = _run_cells(np.repeat(rows, 2), begins, stops)
    xa = x0[run_row] + col
    return xa, mcol[run_row, 0] - xa


def _first_true(pred, rows, lo, hi, side, guess=None):
    """Per item, the first column in ``[lo, hi)`` where ``pred(row, col, side)`` holds (``hi`` if none), for a
    ``pred`` that is False then True along the columns: bisection, every item at once (a probe computes a
    p-value, which costs more than a round's overhead at the sizes where the search is used).

    ``guess``, optional: a predicted answer per item. A first round probes ``guess - 1`` and ``guess``, a second the
    column just past them on the side the answer lies, where it was not found; the other items go on by bisection
    from the bracket the probes left. Any guess gives the same answer (``pred`` is monotone); one right or a column
    off needs one or two rounds of ~2 probes an item instead of ~log2(hi - lo) rounds."""
    lo, hi = lo.copy(), hi.copy()
    if guess is not None:
        guess = np.minimum(np.maximum(guess, lo), hi)
        moved_lo, moved_hi = _probe_columns(pred, rows, lo, hi, side, guess - 1, guess + 1)
        if np.any(moved_lo < moved_hi):
            after = np.where(moved_lo > lo, moved_lo, moved_hi - 1)
            moved_lo, moved_hi = _probe_columns(pred, rows, moved_lo, moved_hi, side, after, after + 1)
        lo, hi = moved_lo, moved_hi
    while True:
        active = np.flatnonzero(lo < hi)
        if active.size == 0:
            return lo
        mid = (lo[active] + hi[active]) // 2
        holds = pred(rows[active], mid, side[active])
        hi[active] = np.where(holds, mid, hi[active])
        lo[active] = np.where(holds, lo[active], mid + 1)


def _probe_columns(pred, rows, lo, hi, side, start, stop):
    """The brackets ``[lo, hi)`` of :func:`_first_true`'s answers narrowed by probing the columns ``[start, stop)``
    (within the bracket) of each item, all in one call of ``pred``."""
    start, stop = np.maximum(start, lo), np.minimum(stop, hi)
    item, col = _run_cells(np.arange(lo.size), start, stop)
    holds = pred(rows[item], col, side[item])
    # False then True along an item's probes: the column after its False ones bounds the answer from below if any
    # probe was False, and is the answer if any was True
    edge = start + np.bincount(item[~holds], minlength=lo.size)
    return np.where(edge > start, edge, lo), np.where(edge < stop, edge, hi)


# --------------------------------------------------------------------------------------------
# Boschloo
# --------------------------------------------------------------------------------------------
# The one-sided ('less') test orders the tables by Fisher's one-sided statistic
# T(x1, x2) = P(X1 <= x1 | X1 + X2 = m). The tables at or below a threshold c hold, in each margin
# m, a lower run of x1 whose null conditional mass g_m(c) is the largest statistic of that margin
# not above c, so their probability when both arms have event probability pi is
#     size(c, pi) = sum over m of Binomial(N, pi)(m) * g_m(c),
# O(N) work for one c and one pi. A table's one-sided p-value is sup over pi of size(T * (1 + tol), pi);
# it rises with T, so the rejection region at a level is {T <= c*}, c* found by bisection over the
# distinct statistics (about log2(n1 * n2) sizes). The 'greater' side is the same problem with
# events and non-events swapped: its statistic and region are those of 'less' flipped on both axes.
def _hypergeom_by_margin(n1: int, n2: int) -> np.ndarray:
    """P(X1 = x | X1 + X2 = m) under the null as an (N + 1, n1 + 1) array, 0 outside the support.

    Built from the ratios of consecutive probabilities, (m - x)(n1 - x) / ((x + 1)(n2 - m + x + 1)),
    multiplied outward from each margin's mode and normalised: each ratio is a quotient of exact
    integers, so the probabilities are accurate to a few ulps, where differences of log-gamma
    values lose ~1e-12 at 1,000 patients, and tables that tie in exact arithmetic (e.g. (x1, x2) and
    (n - x2, n - x1) with n patients per arm) stay within Boschloo's relative 1e-13 tie tolerance.

    Only the margins up to N / 2 are multiplied out, block by block over their support
    (:func:`_unnormalised_hypergeom`): swapping events and non-events maps margin m to N - m and x to n1 - x, and each
    ratio of one to a ratio of the other (the same two integers), so the upper margins are the lower ones mirrored,
    bit for bit. Each row is then normalised by the sum of its whole row, as it always was.
    """
    n = n1 + n2
    half = n // 2
    pmf = np.zeros((n + 1, n1 + 1))
    for a, b, c0, c1 in _support_blocks(n1, n2, half + 1):
        _unnormalised_hypergeom(n1, n2, a, c0, pmf[a:b, c0:c1])
    pmf[half + 1 :] = pmf[n - half - 1 :: -1, ::-1]  # row m from row N - m, columns reversed
    pmf /= pmf.sum(axis=1, keepdims=True)
    return pmf


# Cells per block of margins in the statistic's build: 256 KB per array, so a block's temporaries stay in a core's
# cache and come from the allocator's free memory instead of fresh pages (each fresh 1.6 MB array cost ~1 ms at 450 per
# arm, more than the arithmetic on it).
_STAT_BLOCK = 1 << 15


def _support_blocks(n1: int, n2: int, stop: int):
    """Blocks of margins ``[a, b)`` below ``stop`` with the columns ``[c0, c1)`` that hold their supports.

    Outside those columns every margin of the block has no table (x < m - n2 or x > m), so the work on a block is on
    the triangle-shaped support plus a sliver, about half of the full (N + 1) x (n1 + 1) rectangle with equal arms.
    """
    rows = max(1, _STAT_BLOCK // (n1 + 1))
    for a in range(0, stop, rows):
        b = min(stop, a + rows)
        yield a, b, max(0, a - n2), min(n1, b - 1) + 1


def _unnormalised_hypergeom(n1: int, n2: int, m0: int, x0: int, out: np.ndarray) -> None:
    """pmf(x) / pmf(mode) of the margins ``m0, m0 + 1, ...`` (rows of ``out``) at ``x = x0, x0 + 1, ...`` (columns),
    0 outside the support, written into ``out``, whose columns must cover each row's support.

    pmf(x) / pmf(mode) is the down ratios multiplied from x up to the mode (a product of ones from the mode up) times
    the up ratios multiplied from the mode to x - 1 (ones up to the mode). One factor is exactly 1, so the product is
    the other one, bit for bit as choosing it by the side of the mode; and the products start at the mode whatever
    columns ``out`` holds beyond the support (ones are exact). The ratios' numerators and denominators are exact
    integers in floating point, however they are formed.
    """
    n = n1 + n2
    m = np.arange(m0, m0 + out.shape[0], dtype=float)[:, None]
    x = np.arange(x0, x0 + out.shape[1], dtype=float)[None, :]
    lo, hi = np.maximum(0.0, m - n2), np.minimum(float(n1), m)
    mode = np.floor((m + 1) * (n1 + 1) / (n + 2))
    num = m - x
    den = (n2 + 1.0) - num  # n2 - m + x + 1
    den *= x + 1
    num *= n1 - x  # (m - x)(n1 - x)
    ratio = np.ones_like(num)  # pmf(x) / pmf(x + 1) from the bottom of the support to the mode, else 1
    np.divide(den, num, out=ratio, where=(x >= lo) & (x < mode))
    np.cumprod(ratio[:, ::-1], axis=1, out=out[:, ::-1])
    ratio.fill(1.0)  # pmf(x + 1) / pmf(x) from the mode up to the top of the support, else 1
    np.divide(num, den, out=ratio, where=(x >= mode) & (x < hi))
    np.cumprod(ratio, axis=1, out=ratio)
    out[:, 1:] *= ratio[:, :-1]
    np.copyto(out, 0.0, where=(x < lo) | (x > hi))


class _LessStatistic:
    """Fisher's one-sided ('less') statistic of every table of one size pair, laid out by margin.

    ``by_margin[m, x] = P(X1 <= x | m)`` for the tables of margin ``m`` (0 below the support,
    inf above it, so neither enters a set); it rises along each row.
    """

    def __init__(self, n1: int, n2: int):
        self.n1, self.n2 = n1, n2
        by_margin = _hypergeom_by_margin(n1, n2)
        # P(X1 <= x | m): 0 below the support stays 0, so the sums can start at the support's first column
        for a, b, c0, c1 in _support_blocks(n1, n2, n1 + n2 + 1):
            block = by_margin[a:b, c0:c1]
            np.cumsum(block, axis=1, out=block)
            np.copyto(block, np.inf, where=np.arange(c0, c1)[None, :] > np.arange(a, b)[:, None])  # x > m
            by_margin[a:b, c1:] = np.inf
        by_margin.flags.writeable = False
        self.by_margin = by_margin
        self.nbytes = by_margin.nbytes + 8 * (n1 + 1) * (n2 + 1)  # with the table by table, once it is built

    @functools.cached_property
    def table(self) -> np.ndarray:
        """The statistic by table, ``table[x1, x2] = by_margin[x1 + x2, x1]`` (read-only); built on first use, as the
        rejection region needs only ``by_margin``."""
        n1, n2 = self.n1, self.n2
        table = self.by_margin[np.arange(n1 + 1)[:, None] + np.arange(n2 + 1)[None, :], np.arange(n1 + 1)[:, None]]
        table.flags.writeable = False
        return table

    def conditional_mass(self, thresholds: np.ndarray) -> np.ndarray:
        """g_m(c): null conditional mass of the tables of margin m with statistic <= c, shape (thresholds, N + 1).

        The largest entry of row m not above c (rows rise). Only the entries between the smallest and
        the largest threshold move: each gets the rank of the first threshold it does not exceed, and
        offset by its row these keys ascend, so one ``searchsorted`` counts them for every threshold
        and margin at once. For a few thresholds (a cutoff's probes), a bisection on every row
        (:meth:`counts_at_most`) finds the same entries with fewer reads.
        """
        c = np.asarray(thresholds, dtype=float)
        if len(c) * (self.n1 + 1).bit_length() <= self.n1 + 1:  # a bisection per row costs less than passes over all
            count = self.counts_at_most(c)
            return np.where(count > 0, self.by_margin[np.arange(count.shape[1]), np.maximum(count - 1, 0)], 0.0)
        order = np.argsort(c, kind="stable")
        c = c[order]
        q, by_margin = len(c), self.by_margin
        base = np.where(by_margin <= c[0], by_margin, 0.0).max(axis=1)
        row, col = np.nonzero((by_margin > c[0]) & (by_margin <= c[-1]))  # row by row, rising within a row
        if not row.size:
            return np.broadcast_to(base, (q, len(base))).copy()
        entry = by_margin[row, col]
        margins = np.arange(by_margin.shape[0])
        first = np.searchsorted(row, margins)
        keys = row * (q + 1) + np.searchsorted(c, entry, side="left")  # entry <= c[j] iff its rank <= j
        count = np.searchsorted(keys, margins[None, :] * (q + 1) + np.arange(q)[:, None], side="right") - first
        mass = np.where(count > 0, entry[np.maximum(first + count - 1, 0)], base[None, :])
        return mass[np.argsort(order)]

    def counts_at_most(self, thresholds: np.ndarray) -> np.ndarray:
        """How many entries of each row are <= each threshold c, shape (thresholds, N + 1), by bisection on every row
        at once: the tables of margin m with statistic <= c are those with x < count (rows rise), and the entry
        before it is g_m(c). A few gathers of N + 1 entries per threshold instead of passes over every table."""
        c = np.asarray(thresholds, dtype=float)[:, None]
        by_margin, width = self.by_margin, self.n1 + 1
        rows = np.arange(by_margin.shape[0])
        lo = np.zeros((c.shape[0], rows.size), dtype=np.int64)
        hi = np.full_like(lo, width)
        for _ in range(width.bit_length()):  # count takes width + 1 values: enough halvings to pin it
            mid = (lo + hi) // 2
            below = by_margin[rows, np.minimum(mid, width - 1)] <= c
            lo = np.where((lo < hi) & below, mid + 1, lo)
            hi = np.where(below, hi, mid)
        return lo


@bytes_cache(_CACHE_BYTES, lambda stat: stat.nbytes)
def _less_statistic(n1: int, n2: int) -> _LessStatistic:
    return _LessStatistic(n1, n2)


def _binom_pmf_matrix(n: int, theta: np.ndarray) -> np.ndarray:
    """Binomial(n, sin(theta)^2) pmf of the total events, shape (len(theta), n + 1)."""
    k = np.arange(n + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p, log_q = 2.0 * np.log(np.sin(theta)), 2.0 * np.log(np.cos(theta))
        pmf = np.exp(_log_comb(n)[None, :] + np.multiply.outer(log_p, k) + np.multiply.outer(log_q, n - k))
    pmf[theta == 0.0] = k == 0  # 0 * log 0 = 0: all mass on no event
    return pmf


def _banded_binom_pmf_matrix(n: int, theta: np.ndarray) -> np.ndarray:
    """:func:`_binom_pmf_matrix` within each point's tail window (:func:`_tail_window`: 10 sd + 10 either side of the
    mean), 0 beyond it (beyond the windows of its block of :data:`_BAND_POINTS` consecutive points, which overlap).

    Inside the windows every entry is the same expression as in the full matrix, so the same bits; the mass left out
    is below 1.5e-21 at every grid point of every N from 2 to 1,000 (measured), and the blocks hold 39% of the
    matrix at 380 patients, a quarter at 1,000, which is about the share of the exponentials and products this costs.
    """
    p = np.sin(theta) ** 2
    reach = _TAIL_SD * np.sqrt(n * p * (1 - p)) + _TAIL_ADD
    lo = np.clip(np.floor(n * p - reach), 0, n).astype(np.int64)
    hi = np.clip(np.ceil(n * p + reach), 0, n).astype(np.int64)
    log_comb = _log_comb(n)
    pmf = np.zeros((len(theta), n + 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p, log_q = 2.0 * np.log(np.sin(theta)), 2.0 * np.log(np.cos(theta))
        for g0 in range(0, len(theta), _BAND_POINTS):
            g1 = min(g0 + _BAND_POINTS, len(theta))
            k = np.arange(lo[g0:g1].min(), hi[g0:g1].max() + 1)
            pmf[g0:g1, k[0] : k[-1] + 1] = np.exp(
                log_comb[k][None, :] + np.multiply.outer(log_p[g0:g1], k) + np.multiply.outer(log_q[g0:g1], n - k))
    pmf[theta == 0.0] = np.arange(n + 1) == 0  # 0 * log 0 = 0: all mass on no event
    return pmf


# Grid points per block of the banded pmf matrix: a block spans the union of its points' windows, each point's mean
# moving by at most sqrt(N) / 20 events, so 32 points widen a window of 20 sqrt(pi (1 - pi) N) + 21 by at most
# 1.6 sqrt(N). Measured at 900 patients: 8 points 4.4 ms, 16: 3.2 ms, 32: 3.0 ms, 64: 3.0 ms (the full matrix: 13 ms)
_BAND_POINTS = 32


def _grid_theta(n_total: int) -> np.ndarray:
    """The nuisance grid's points (see :func:`_nuisance_grid`)."""
    points = int(np.clip(math.ceil(_GRID_PER_WIDTH * math.pi * math.sqrt(n_total)) + 1, _GRID_MIN, _GRID_MAX))
    theta = np.linspace(0.0, np.pi / 2, points)
    theta.flags.writeable = False
    return theta


@bytes_cache(_CACHE_BYTES, lambda grid: grid[0].nbytes + grid[1].nbytes)  # 8 MB each at 1,000 patients
def _nuisance_grid(n_total: int) -> tuple[np.ndarray, np.ndarray]:
    """The nuisance grid for ``n_total`` patients and its binomial pmf matrix (read-only).

    Uniform in theta with pi = sin(theta)^2: on that scale every Binomial(N, pi)(m), hence every
    size function, varies on a width of about 1 / (2 sqrt(N)), and the grid takes
    ``_GRID_PER_WIDTH`` points per width, so a grid point lies within a relative ~0.2% of any
    local maximum and the 1% window below picks every candidate for the supremum.
    """
    theta = _grid_theta(n_total)
    pmf = _binom_pmf_matrix(n_total, theta)
    pmf.flags.writeable = False
    return theta, pmf


# The smallest one-sided target whose cutoff uses the banded grid (alpha 2e-6); below it, the full one.
_BANDED_MIN_TARGET = 1e-6


@bytes_cache(_CACHE_BYTES, lambda grid: grid[0].nbytes + grid[1].nbytes)
def _banded_nuisance_grid(n_total: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_nuisance_grid` with the pmf matrix banded (:func:`_banded_binom_pmf_matrix`), for the cutoff's yes/no
    comparisons.

    A grid value then misses at most ~1.5e-21 (the omitted binomial mass times conditional masses <= 1). A cutoff's
    comparisons are with its target level / 2 and with 98% of the target or of a row's grid maximum (then >= 96% of the
    target), so from a target of :data:`_BANDED_MIN_TARGET` a value moves by less than 2e-15 of the threshold it
    meets: a decision could only come out otherwise for a size that close to its threshold, where the supremum itself
    is known to ~1e-13 only. (Measured: the cutoffs of 2,423 size pairs and levels, and the 2,744 shipped ones, are
    those of the full matrix to the bit.) P-values keep the full matrix: a tiny p-value's size function can be of the
    order of the omitted mass.
    """
    theta = _grid_theta(n_total)
    pmf = _banded_binom_pmf_matrix(n_total, theta)
    pmf.flags.writeable = False
    return theta, pmf


def _sup_over_nuisance(mass: np.ndarray, n_total: int, refine: tuple[float, float] = (0.0, 0.5), *,
                       blas: bool = False, banded: bool = False) -> np.ndarray:
    """sup over pi of sum_m Binomial(n_total, pi)(m) * mass[:, m], one value per row of ``mass``.

    The grid maximum, then Newton's method (:func:`_newton_peaks`; golden-section search where it does not settle)
    on [theta_-1, theta_+1] around every grid-local maximum within ``_PEAK_WINDOW`` of it, for the rows whose grid maximum lies in ``refine``
    (low inclusive, high exclusive). The others keep the grid maximum, which is below the supremum
    by less than the window: by default rows already >= 1/2 (a one-sided value >= 1/2 gives a
    two-sided p-value of 1); a yes/no comparison with a level refines only near the level.
    """
    theta, pmf = (_banded_nuisance_grid if banded else _nuisance_grid)(n_total)
    grid = mass @ pmf.T if blas or len(mass) > _FEW_ROWS else np.einsum("qm,gm->qg", mass, pmf)
    best = grid.max(axis=1)
    padded = np.full((grid.shape[0], grid.shape[1] + 2), -np.inf)  # np.pad's own bookkeeping took 0.2 ms a call
    padded[:, 1:-1] = grid
    # strict on the left so a flat run yields one candidate; peaks far below the best cannot
    # overtake it within one grid step
    local = (grid > padded[:, :-2]) & (grid >= padded[:, 2:])
    local &= (grid >= best[:, None] * (1 - _PEAK_WINDOW)) & (best[:, None] >= refine[0]) & (best[:, None] < refine[1])
    row, col = np.nonzero(local)
    step = theta[1] - theta[0]
    a = np.maximum(theta[col] - step, 0.0)
    b = np.minimum(theta[col] + step, np.pi / 2)
    value = np.empty(len(row))
    per = max(1, _PEAK_CHUNK // (n_total + 1))  # peaks refined at once: a few arrays of peaks x margins each
    for start in range(0, len(row), per):
        part = slice(start, start + per)
        h = mass[row[part]]
        peak, done = _newton_peaks(h, n_total, theta[col[part]], a[part], b[part])
        if not done.all():  # the few peaks Newton's steps did not settle: golden-section search, as a fallback
            left = ~done
            peak[left] = np.maximum(peak[left], _golden_peaks(h[left], n_total, a[part][left], b[part][left]))
        value[part] = peak
    np.maximum.at(best, row, value)
    return np.minimum(best, 1.0)


def _size_derivatives(h: np.ndarray, n_total: int, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """f(t) = sum_m h[:, m] Binomial(n_total, sin(t)^2)(m) and its first two derivatives in t, one per row (0 < t < pi/2).

    With b_m(t) the binomial terms, d log b_m / dt = 2m cot t - 2(N - m) tan t = u_m and
    d u_m / dt = -2m / sin^2 t - 2(N - m) / cos^2 t = v_m: f' = sum h b u and f'' = sum h b (u^2 + v). Both are
    sums of the moments S_k = sum_m h b m^k (k = 0, 1, 2), so only h b is held at full width (peaks x margins).
    """
    m = np.arange(n_total + 1, dtype=float)
    hb = _binom_pmf_matrix(n_total, t)
    hb *= h
    s0 = hb.sum(axis=1)
    s1 = np.einsum("ij,j->i", hb, m)
    s2 = np.einsum("ij,j->i", hb, m * m)
    n = float(n_total)
    rest = n * s0 - s1  # sum h b (N - m)
    sin, cos = np.sin(t), np.cos(t)
    cot, tan = cos / sin, sin / cos
    d1 = 2.0 * cot * s1 - 2.0 * tan * rest
    # sum h b u^2 = 4 cot^2 S2 - 8 cot tan sum h b m (N - m) + 4 tan^2 sum h b (N - m)^2; sum h b v from S1 and rest
    d2 = (4.0 * cot**2 * s2 - 8.0 * (n * s1 - s2) + 4.0 * tan**2 * (n * rest - n * s1 + s2)
          - 2.0 * s1 / sin**2 - 2.0 * rest / cos**2)
    return s0, d1, d2


def _newton_peaks(h: np.ndarray, n_total: int, start: np.ndarray, a: np.ndarray, b: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The largest f evaluated while Newton's method on f' climbs each row's peak in [a, b], and whether it settled.

    Safeguarded (as Numerical Recipes' rtsafe): the bracket shrinks to the side where f' says the peak lies, and a
    step that leaves it, or is taken where f is not concave, is replaced by the bracket's midpoint. A row settles
    when its step is below :data:`_NEWTON_TOL` of a grid step; each value is some f(t), so never above the supremum.
    Settled, a row's t is within ~1e-9 of a grid step of its peak, where f is below its peak by a relative ~1e-20:
    the value is as accurate as f can be evaluated (~1e-13 relative at 1,000 patients, as for the 32 golden-section
    steps it replaces), with 4-6 evaluations instead of 34.
    """
    k = len(start)
    value = np.full(k, -np.inf)
    done = np.zeros(k, dtype=bool)
    a, b = a.copy(), b.copy()
    t = np.where((start > 0.0) & (start < np.pi / 2), start, (a + b) / 2)
    tol = _NEWTON_TOL * (b - a)
    active = np.flatnonzero(a < b)  # t is inside (0, pi/2): the grid point, or the bracket's midpoint
    for _ in range(_NEWTON_STEPS):
        if not active.size:
            break
        f, d1, d2 = _size_derivatives(h[active], n_total, t[active])
        finite = np.isfinite(f) & np.isfinite(d1) & np.isfinite(d2)
        value[active] = np.maximum(value[active], np.where(np.isfinite(f), f, -np.inf))
        ta, aa, ba = t[active], a[active], b[active]
        aa = np.where(finite & (d1 > 0), ta, aa)  # the peak is to the right of t
        ba = np.where(finite & (d1 < 0), ta, ba)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = ta - d1 / d2
        inside = finite & (d2 < 0) & (newton > aa) & (newton < ba)
        new = np.where(inside, newton, (aa + ba) / 2)
        settled = finite & ((np.abs(new - ta) <= tol[active]) | (d1 == 0))
        a[active], b[active], t[active] = aa, ba, new
        done[active[settled]] = True
        active = active[~settled & finite]
    return value, done


def _golden_peaks(h: np.ndarray, n_total: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Golden-section search for each row's peak of f in [a, b] (bracket shrunk to ~1e-7 of its width)."""
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
    return np.maximum(fc, fd)


def _boschloo_less_pvalues(stat: _LessStatistic, statistic: np.ndarray) -> np.ndarray:
    """One-sided ('less') Boschloo p-values of tables with the given Fisher statistics.

    Each is the supremum over pi of the size of the set of tables with a statistic no larger than
    its own (ties within scipy's relative 1e-13), computed once per distinct value in chunks.
    """
    statistic = np.asarray(statistic, dtype=float)
    values, inverse = np.unique(statistic.ravel(), return_inverse=True)
    thresholds = values * (1 + _BOSCHLOO_TIE_RTOL)
    n_total = stat.n1 + stat.n2
    width = max(n_total + 1, len(_nuisance_grid(n_total)[0]))
    chunk = max(1, _BOSCHLOO_CHUNK // width)
    out = np.empty(len(values))
    for start in range(0, len(values), chunk):
        part = slice(start, start + chunk)
        out[part] = _sup_over_nuisance(stat.conditional_mass(thresholds[part]), n_total)
    return out[inverse].reshape(statistic.shape)


def _flip(table: np.ndarray) -> np.ndarray:
    """``table[n1 - x1, n2 - x2]``: events and non-events swapped."""
    return table[::-1, ::-1]


def boschloo_one_sided_table(n1: int, n2: int, alternative: str) -> np.ndarray:
    """One-sided Boschloo p-value of every table: ``"less"`` (control rate below treatment) or ``"greater"``."""
    stat = _less_statistic(n1, n2)
    less = _boschloo_less_pvalues(stat, stat.table)
    return less if alternative == "less" else _flip(less)


def boschloo_table(n1: int, n2: int) -> np.ndarray:
    less = boschloo_one_sided_table(n1, n2, "less")
    return np.minimum(1.0, 2.0 * np.minimum(less, _flip(less)))


def boschloo_direct(n1: np.ndarray, n2: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Two-sided Boschloo p-value of each table (n1, n2, x1, x2), same rule as the tables.

    Per pair of arm sizes, only the observed tables' p-values are computed (the size function
    needs every margin's statistics, not every table's p-value), and kept for the next call.
    """
    out = np.empty(len(n1))
    sizes = np.stack([n1, n2]).astype(np.int64)
    pairs, group = np.unique(sizes, axis=1, return_inverse=True)
    for g, (a, b) in enumerate(pairs.T.tolist()):
        idx = np.flatnonzero(group.ravel() == g)
        cell = x1[idx].astype(np.int64) * (b + 1) + x2[idx].astype(np.int64)
        memo = _direct_memo(a, b)
        if len(memo) > _DIRECT_MEMO_MAX:
            memo.clear()
        new = np.array(sorted(set(cell.tolist()).difference(memo)), dtype=np.int64)
        if new.size:
            stat = _less_statistic(a, b)
            i, j = new // (b + 1), new % (b + 1)
            both = _boschloo_less_pvalues(stat, np.concatenate([stat.table[i, j], stat.table[a - i, b - j]]))
            memo.update(zip(new.tolist(), np.minimum(1.0, 2.0 * np.minimum(both[: new.size], both[new.size:])).tolist()))
        out[idx] = [memo[c] for c in cell.tolist()]
    return out


@functools.lru_cache(maxsize=256)
def _direct_memo(n1: int, n2: int) -> dict[int, float]:
    """Two-sided p-values computed so far for the size pair, by cell ``x1 * (n2 + 1) + x2``."""
    return {}


# Cutoffs computed once by scripts/boschloo_cutoffs.py and shipped with the package (one row per size pair and
# alpha: equal arms from 2 to 500 per arm, and treatment arms twice and half the control arm, at the usual levels). A
# shipped cutoff is only a hint: it is used after two evaluations confirm it (the level holds at it and fails at the
# next statistic), which is the answer the search below would find; else the search runs. At hundreds per arm that
# halves a size's cost (the rest is building its statistics, needed either way).
SHIPPED_CUTOFFS = Path(__file__).with_name("boschloo_cutoffs.csv")
HINT_RTOL = 1e-9  # a shipped cutoff matches the statistic within this relative distance (its last bits may differ)


@functools.cache
def _shipped_cutoffs() -> dict[tuple[int, int, float], float]:
    """``{(n1, n2, level): cutoff}`` from :data:`SHIPPED_CUTOFFS`; empty if the file is missing or unreadable."""
    try:
        rows = np.loadtxt(SHIPPED_CUTOFFS, delimiter=",", comments="#", ndmin=1,
                          dtype=[("n1", int), ("n2", int), ("alpha", float), ("cutoff", float)])
    except (OSError, ValueError):
        return {}
    return {(int(r["n1"]), int(r["n2"]), _reject_level(float(r["alpha"]))): float(r["cutoff"]) for r in rows}


def shipped_cutoff(n1: int, n2: int, alpha: float) -> float | None:
    """The shipped (unconfirmed) cutoff of the size pair at ``alpha``, or None if the file has none."""
    return _shipped_cutoffs().get((n1, n2, _reject_level(alpha)))


def _cutoff_passes(stat: _LessStatistic, statistics: np.ndarray, target: float) -> np.ndarray:
    """Whether the one-sided Boschloo p-value of each statistic is <= ``target``."""
    mass = stat.conditional_mass(statistics * (1 + _BOSCHLOO_TIE_RTOL))
    return _sup_over_nuisance(mass, stat.n1 + stat.n2, refine=(target * (1 - _PEAK_WINDOW), target), blas=True,
                              banded=target >= _BANDED_MIN_TARGET) <= target


def _confirmed(stat: _LessStatistic, hint: float, target: float, surely: float) -> float | None:
    """The statistic of the shipped cutoff ``hint`` (``surely``: below every candidate), if the level holds there and
    fails at the next candidate statistic; else None.

    Statistics that tie in exact arithmetic can differ in their last bits and then stand apart among the candidates
    (the distinct statistics above ``surely``, see :func:`_candidates`); the search's answer is the last of such a
    group (the next one fails), so the hint is read as the last candidate within :data:`HINT_RTOL` of it, and the two
    evaluations decide whether it is the answer. Both neighbours are found by bisection on every margin
    (:meth:`_LessStatistic.counts_at_most`), without sorting every statistic as the search does.
    """
    below = _largest_at_most(stat, hint * (1 + HINT_RTOL))
    found = below if below > surely else None  # None: below every candidate
    if found is not None and found < hint * (1 - HINT_RTOL):
        return None  # a hint between two statistics is no statistic's
    above = _smallest_above(stat, surely if found is None else found)
    probe = np.array([v for v in (found, above) if v is not None and v < np.inf])
    expected = np.array([v == found for v in probe], dtype=bool)
    passes = _cutoff_passes(stat, probe, target) if probe.size else np.zeros(0, dtype=bool)
    if not np.array_equal(passes, expected):
        return None
    return surely if found is None else found


def _largest_at_most(stat: _LessStatistic, c: float) -> float:
    """The largest statistic <= c (0 if none: the entries below the supports)."""
    count = stat.counts_at_most(np.array([c]))[0]
    rows = np.flatnonzero(count)
    return float(stat.by_margin[rows, count[rows] - 1].max(initial=0.0))


def _smallest_above(stat: _LessStatistic, c: float) -> float:
    """The smallest statistic > c (inf if none: the entries above the supports)."""
    count = stat.counts_at_most(np.array([c]))[0]
    rows = np.flatnonzero(count <= stat.n1)
    return float(stat.by_margin[rows, count[rows]].min(initial=np.inf))


@functools.lru_cache(maxsize=1024)
def _boschloo_cutoff(n1: int, n2: int, level: float) -> float:
    """Largest 'less' statistic whose one-sided Boschloo p-value is <= level / 2.

    The p-value rises with the statistic, and a statistic c has a p-value <= c (the size of its set
    is at most its largest conditional mass), so every statistic up to level / 2 qualifies and a
    search over the distinct statistics above finds the cutoff: ``_SEARCH_WAYS`` of them per round,
    each only compared with the level (refined only when its grid maximum is within
    ``_PEAK_WINDOW`` below it). A shipped cutoff (:data:`SHIPPED_CUTOFFS`), once confirmed, saves the search.
    """
    stat, target, surely = _less_statistic(n1, n2), *_targets(level)
    hint = _shipped_cutoffs().get((n1, n2, level))
    found = None if hint is None else _confirmed(stat, hint, target, surely)
    if found is not None:
        return found
    values = _candidate_values(stat, surely)
    index = _search_cutoff(stat, values, target)
    return float(values[index]) if index >= 0 else surely


def _targets(level: float) -> tuple[float, float]:
    """The one-sided target ``level / 2`` and ``surely``, below which every statistic qualifies."""
    target = level / 2.0
    return target, target / (1 + _BOSCHLOO_TIE_RTOL)


def _candidate_values(stat: _LessStatistic, surely: float) -> np.ndarray:
    """The distinct statistics that may be the cutoff: above ``surely``, ascending."""
    return np.unique(stat.by_margin[(stat.by_margin > surely) & (stat.by_margin < np.inf)])


def _candidates(n1: int, n2: int, level: float) -> tuple[_LessStatistic, np.ndarray, float, float]:
    """The size pair's statistics, the distinct ones that may be the cutoff (above ``surely``, ascending), the
    one-sided target ``level / 2`` and ``surely``, below which every statistic qualifies."""
    stat = _less_statistic(n1, n2)
    target, surely = _targets(level)
    return stat, _candidate_values(stat, surely), target, surely


def _search_cutoff(stat: _LessStatistic, values: np.ndarray, target: float) -> int:
    """The index of the cutoff among ``values`` (-1: none of them passes), by search."""
    # p(values[lo]) <= target < p(values[hi]), with values[-1] = surely and values[len] = +inf
    lo, hi = -1, len(values)
    while hi - lo > 1:
        probe = np.unique(lo + (hi - lo) * np.arange(1, _SEARCH_WAYS + 1) // (_SEARCH_WAYS + 1))
        probe = probe[(probe > lo) & (probe < hi)]
        ok = _cutoff_passes(stat, values[probe], target)
        passed, failed = probe[ok], probe[~ok]
        lo = int(passed.max()) if passed.size else lo
        hi = int(failed.min()) if failed.size else hi
    return lo


def searched_cutoff(n1: int, n2: int, alpha: float) -> float:
    """Boschloo's cutoff at ``alpha`` found by search alone, never from the shipped table (to build and check it)."""
    stat, values, target, surely = _candidates(n1, n2, _reject_level(alpha))
    found = _search_cutoff(stat, values, target)
    return float(values[found]) if found >= 0 else surely


def boschloo_cutoff(n1: int, n2: int, alpha: float) -> float:
    """Boschloo's cutoff at ``alpha`` as the tests use it (a confirmed shipped cutoff, else searched)."""
    return _boschloo_cutoff(n1, n2, _reject_level(alpha))


def boschloo_region(n1: int, n2: int, alpha: float) -> np.ndarray:
    """Tables Boschloo's two-sided test rejects at ``alpha``: either one-sided p-value <= alpha / 2.

    The 'less' region is read by margin: with rising rows, table (x1, x2) has a statistic <= the cutoff exactly when
    x1 is below the count of such entries in margin x1 + x2, so no table of statistics is built (at 450 per arm that
    gather cost 1-2 ms, more than the rest of the region).
    """
    stat = _less_statistic(n1, n2)
    count = stat.counts_at_most(np.array([_boschloo_cutoff(n1, n2, _reject_level(alpha))]))[0]
    # row x1 of the window view is count[x1 + x2] over x2 = 0..n2
    less = np.lib.stride_tricks.sliding_window_view(count, n2 + 1) > np.arange(n1 + 1)[:, None]
    return less | _flip(less)


# --------------------------------------------------------------------------------------------
# Pearson chi-square
# --------------------------------------------------------------------------------------------
def _chi2_pvalues(n1, n2, x1, x2, *, yates: bool = False, n_minus_1: bool = False) -> np.ndarray:
    """Chi-square p-values (1 df) of tables (x1, x2); 1 when no patient or every patient had the event.

    ``yates``: |ad - bc| reduced by N / 2, not below 0 (each cell moved at most 0.5 towards its
    expected count, as :func:`scipy.stats.chi2_contingency` with ``correction=True``).
    ``n_minus_1``: the statistic times (N - 1) / N (Campbell 2007).
    """
    x1 = np.asarray(x1, dtype=float)
    x2 = np.asarray(x2, dtype=float)
    n = n1 + n2
    m = x1 + x2
    cross = np.abs(x1 * (n2 - x2) - x2 * (n1 - x1))
    if yates:
        cross = np.maximum(cross - n / 2.0, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = (n - 1.0 if n_minus_1 else n) * cross ** 2 / (n1 * n2 * m * (n - m))
    return np.where((m == 0) | (m == n), 1.0, special.chdtrc(1, statistic))


def chi2_pvalues(n1: int, n2: int, x1, x2) -> np.ndarray:
    """Pearson chi-square p-values (1 df, no continuity correction) of tables (x1, x2)."""
    return _chi2_pvalues(n1, n2, x1, x2)


def chi2_yates_pvalues(n1: int, n2: int, x1, x2) -> np.ndarray:
    """Chi-square p-values with Yates' continuity correction of tables (x1, x2)."""
    return _chi2_pvalues(n1, n2, x1, x2, yates=True)


def chi2_n1_pvalues(n1: int, n2: int, x1, x2) -> np.ndarray:
    """'N-1' chi-square p-values (Pearson's statistic times (N - 1) / N) of tables (x1, x2)."""
    return _chi2_pvalues(n1, n2, x1, x2, n_minus_1=True)


def _all_tables(pvalues: Callable[..., np.ndarray]) -> Callable[[int, int], np.ndarray]:
    def table(n1: int, n2: int) -> np.ndarray:
        return pvalues(n1, n2, np.arange(n1 + 1)[:, None], np.arange(n2 + 1)[None, :])

    return table


chi2_table = _all_tables(chi2_pvalues)
chi2_yates_table = _all_tables(chi2_yates_pvalues)
chi2_n1_table = _all_tables(chi2_n1_pvalues)


_TABLE_BUILDERS: dict[str, Callable[[int, int], np.ndarray]] = {
    "fisher": fisher_table,
    "boschloo": boschloo_table,
    "chi2": chi2_table,
}


# Tests whose rejection region is cheaper than their p-value table (``region(n1, n2, alpha)``).
_REGION_BUILDERS: dict[str, Callable[[int, int, float], np.ndarray]] = {"boschloo": boschloo_region}

# Tests whose tables and regions are slow enough to keep on disk once per machine (trialsim.cache): a
# Boschloo table takes milliseconds at 10 vs 10 and seconds at 150 vs 150, and every worker process and
# every run would otherwise build it again. Fisher and chi-square tables cost less than a file read.
_DISK_CACHED: set[str] = {"boschloo"}


def register_table_test(name: str, table_builder: Callable[[int, int], np.ndarray],
                        direct: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
                        region: Callable[[int, int, float], np.ndarray] | None = None,
                        disk_cache: bool = False) -> None:
    """Make ``name`` a binary test of this module: ``table_builder(n1, n2)`` gives its p-value table.

    ``direct(n1, n2, x1, x2)`` (float arrays, one entry per distinct table) computes p-values per
    observed table for large arms; without it the test always uses whole tables. ``region(n1, n2,
    alpha)`` gives the tables rejected at ``alpha`` (``p <= alpha`` up to a relative 1e-12) without
    the whole table, for exact power; without it the region comes from the table. ``disk_cache``:
    keep its tables and regions on disk once per machine (:mod:`trialsim.cache`), for slow builders.
    """
    if name in _TABLE_BUILDERS:  # registered again: no table of the old builder may serve the new one
        _pvalue_table_cached.cache_clear()
        _rejection_region_cached.cache_clear()
        with _PAIR_TABLES_LOCK:
            _PAIR_TABLES.pop(("pvalue", name), None)
    _TABLE_BUILDERS[name] = table_builder
    if disk_cache:
        _DISK_CACHED.add(name)
    if direct is not None:
        _DIRECT[name] = direct
    if region is not None:
        _REGION_BUILDERS[name] = region


# --------------------------------------------------------------------------------------------
# public tables
# --------------------------------------------------------------------------------------------
@bytes_cache(_CACHE_BYTES)
def _pvalue_table_cached(test: str, n_control: int, n_treatment: int) -> np.ndarray:
    def build() -> np.ndarray:
        return np.asarray(_TABLE_BUILDERS[test](n_control, n_treatment), dtype=float)

    if test in _DISK_CACHED:
        return cached_array(f"{test}-pvalues", {"n_control": n_control, "n_treatment": n_treatment}, build,
                            dtype=float, shape=(n_control + 1, n_treatment + 1))
    table = build()
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
    (a 500 x 500 Fisher table takes tens of milliseconds). ``"boschloo"`` computes every
    table's one-sided size function (O(n_control + n_treatment) per nuisance value) on a grid of
    about 30 sqrt(n_control + n_treatment) nuisance values and refines each local maximum by
    golden-section search: a few ms at 10 vs 10, 0.1 s at 60 vs 60, 0.5 s at 100 vs 100 and
    2 s at 150 vs 150 (O(n^3)); its rejection region alone (:func:`rejection_region`, exact
    power) is far cheaper, about 0.1 s at 500 vs 500. Boschloo tables and regions are also kept on
    disk once per machine (:mod:`trialsim.cache`), so later processes read them instead.
    """
    _check_test(test)
    n_control = _check_n("n_control", n_control)
    n_treatment = _check_n("n_treatment", n_treatment)
    return _pvalue_table_cached(test, n_control, n_treatment)


@bytes_cache(_CACHE_BYTES)
def _rejection_region_cached(test: str, n_control: int, n_treatment: int, alpha: float) -> np.ndarray:
    def build() -> np.ndarray:
        region_builder = _REGION_BUILDERS.get(test)
        if region_builder is not None:
            return np.array(region_builder(n_control, n_treatment, alpha), dtype=bool)
        return _pvalue_table_cached(test, n_control, n_treatment) <= _reject_level(alpha)

    if test in _DISK_CACHED:
        # alpha as its exact float (repr round-trips), so 0.05 and 0.05000000000000001 never share a file
        return cached_array(f"{test}-region", {"n_control": n_control, "n_treatment": n_treatment, "alpha": repr(alpha)},
                            build, dtype=bool, shape=(n_control + 1, n_treatment + 1))
    region = build()
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
    *,
    key: Hashable | None = None,
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
    key : hashable, optional
        A name for ``table_for``'s tables that says everything they depend on (e.g. ``("pvalue", test)``). With
        it the tables met are kept concatenated between calls (:class:`PairTables`), so a call on sizes met
        before does no work per size pair: the same values, without the per-pair Python loop (about 25 us a
        call at 10 per arm, nine calls a block of the default design).

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
    if key is not None:
        kept = _pair_tables(key, table_for).gather(size_a, size_b, flat_index)
        if kept is not None:
            return kept
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


class PairTables:
    """Every table of one kind met so far (one per pair of sizes), concatenated after a NaN slot, with each pair's
    offset in a dense ``(size_a, size_b)`` array: a look-up is a few passes over the trials, with no work per pair.

    The tables are fetched from ``table_for`` the first time their pair is met and never change after (the values of
    :func:`gather_by_size_pair` are the same with or without this). Thread-safe: tables are only appended, ``values``
    is replaced before ``offsets``, so offsets read first always index into the values read after. Tables beyond
    ``max_values`` values in all are not kept (:meth:`gather` returns None: the caller fetches them per call).
    """

    UNSEEN = -2  # in ``offsets``: not fetched yet; -1: the pair has no table (its trials get the NaN of slot 0)

    def __init__(self, table_for: Callable[[int, int], np.ndarray | None], max_values: int):
        self._table_for = table_for
        self._max_values = max_values
        self._lock = threading.Lock()
        self.values = np.array([np.nan])
        self.offsets = np.full((0, 0), self.UNSEEN, dtype=np.int64)
        self.full = False  # a fetch did not fit: pairs not kept by then are fetched by the caller, per call

    def gather(self, size_a: np.ndarray, size_b: np.ndarray, flat_index: np.ndarray) -> np.ndarray | None:
        """``gather_by_size_pair``'s values (int64 sizes), or None when the tables would not fit."""
        if size_a.size == 0:
            return np.empty(size_a.shape)
        for _ in range(2):  # fetch the pairs not met yet, then look up
            offsets = self.offsets
            if size_a.max() < offsets.shape[0] and size_b.max() < offsets.shape[1]:
                base = offsets[size_a, size_b]
                if not (base == self.UNSEEN).any():
                    return self.values[np.where(base < 0, 0, base + flat_index)]
            if self.full or not self._fetch(size_a, size_b):
                return None
        raise AssertionError("every pair was fetched")  # pragma: no cover

    def _fetch(self, size_a: np.ndarray, size_b: np.ndarray) -> bool:
        with self._lock:
            old = self.offsets
            shape = (max(old.shape[0], int(size_a.max()) + 1), max(old.shape[1], int(size_b.max()) + 1))
            offsets = np.full(shape, self.UNSEEN, dtype=np.int64)
            offsets[:old.shape[0], :old.shape[1]] = old
            pairs = np.unique(size_a * shape[1] + size_b)
            chunks, start = [self.values], self.values.size
            for a, b in zip(*np.divmod(pairs, shape[1])):
                if offsets[a, b] != self.UNSEEN:
                    continue
                table = self._table_for(int(a), int(b))
                if table is None:
                    offsets[a, b] = -1
                    continue
                flat = np.asarray(table, dtype=float).ravel()
                if start + flat.size > self._max_values:
                    self.full = True  # (the tables kept so far still serve the calls that need no other)
                    return False
                chunks.append(flat)
                offsets[a, b] = start
                start += flat.size
            values = np.concatenate(chunks)
            values.flags.writeable = False
            self.values = values  # first: offsets read after this index into it
            self.offsets = offsets
            return True


PAIR_TABLES_MAX_VALUES = 1 << 21  # 16 MB of kept tables per kind (every pair up to about 40 per arm for 2x2 tables)
_PAIR_TABLES: dict[Hashable, PairTables] = {}
_PAIR_TABLES_LOCK = threading.Lock()


def _pair_tables(key: Hashable, table_for: Callable[[int, int], np.ndarray | None]) -> PairTables:
    with _PAIR_TABLES_LOCK:
        if key not in _PAIR_TABLES:
            if len(_PAIR_TABLES) >= 64:  # a few kinds in any run; a bound for long-lived processes
                _PAIR_TABLES.clear()
            _PAIR_TABLES[key] = PairTables(table_for, PAIR_TABLES_MAX_VALUES)
        return _PAIR_TABLES[key]


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


def counts_from_means(means) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(n_c, n_t, e_c, e_t)``: analysable patients and events per arm, as int64, from each arm's analysable counts
    and means ``((n_c, mean_c), (n_t, mean_t))`` of 0/1 outcomes (:func:`~trialsim.analysis.continuous.nan_mean`).

    A mean of 0/1 values is its whole-number event count divided by the count, rounded once, so the rounded product
    with the count is that event count exactly (0 where nothing is analysable)."""
    def counts(n, mean):
        n = np.asarray(n).astype(np.int64, copy=False)
        with np.errstate(invalid="ignore"):
            return n, np.rint(np.where(n > 0, mean * n, 0.0)).astype(np.int64)

    (n_c, e_c), (n_t, e_t) = (counts(*arm) for arm in means)
    return n_c, n_t, e_c, e_t


def binary_test(test: str, x_control, x_treatment, *, alpha: float, means=None) -> BinaryTestResult:
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
    means : optional
        Each arm's analysable counts and means of these outcomes, ``((n_c, mean_c), (n_t, mean_t))``, when the
        caller has them (:func:`counts_from_means`): the counts are then not taken again.

    Returns
    -------
    BinaryTestResult
        Arrays with the leading shape.

    Notes
    -----
    Each trial is a look-up in the cached :func:`pvalue_table` of its (n_control,
    n_treatment) pair of analysable sizes, so the cost is a few passes over the data plus one
    table per distinct pair. With missing data and ``"boschloo"`` the first call builds up to
    one Boschloo table per pair (a few milliseconds each at 10 vs 10). Above ``DIRECT_FROM_N``
    patients per arm, p-values are computed per distinct observed table instead (Boschloo: a
    few tens of milliseconds per distinct pair of analysable sizes at 500 per arm, the p-values
    kept for the next call).
    """
    _check_test(test)
    alpha = _check_alpha(alpha)
    xc = _as_binary("x_control", x_control)
    xt = _as_binary("x_treatment", x_treatment)
    if xc.shape[:-1] != xt.shape[:-1]:
        raise ValueError(
            f"leading shapes differ: x_control {xc.shape[:-1]} vs x_treatment {xt.shape[:-1]}"
        )
    if means is not None:
        n_c, n_t, e_c, e_t = counts_from_means(means)
        if n_c.shape != xc.shape[:-1] or n_t.shape != xt.shape[:-1]:
            raise ValueError(f"means have shapes {n_c.shape} and {n_t.shape}, the outcomes' leading shape is {xc.shape[:-1]}")
    else:
        n_c = np.sum(~np.isnan(xc), axis=-1).astype(np.int64)  # int64 on every platform, as counts_from_means gives
        n_t = np.sum(~np.isnan(xt), axis=-1).astype(np.int64)
        e_c = np.nansum(xc, axis=-1).astype(np.int64)
        e_t = np.nansum(xt, axis=-1).astype(np.int64)

    def table_for(a: int, b: int):
        return None if a == 0 or b == 0 else _pvalue_table_cached(test, a, b)

    if test in _DIRECT and max(xc.shape[-1], xt.shape[-1]) > DIRECT_FROM_N:
        # large arms: one table per analysable size pair would cost more than the trials themselves
        pvalue = _direct_pvalues(test, n_c, n_t, e_c, e_t)
    else:
        pvalue = gather_by_size_pair(n_c, n_t, e_c * (n_t + 1) + e_t, table_for, key=("pvalue", test))
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
    truncation error is below 1e-18; Boschloo sums over its full rejection region, found by a
    search over its one-sided cutoff (about 10 ms at 100 vs 100, 0.1 s at 500 vs 500). With
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
    ``_windowed_power``); Boschloo finds its rejection region per size, every n from 5 to
    200 per arm in a few seconds.
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
