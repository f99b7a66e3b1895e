"""Group-sequential boundaries: classical O'Brien-Fleming and Pocock, Lan-DeMets alpha spending, futility.

The z statistics of the looks at information fractions ``t_1 < ... < t_K = 1`` have the canonical
joint distribution (Jennison & Turnbull 2000, ch. 3): ``Z_k = S_k / sqrt(t_k)`` where the score
``S_k`` is Brownian motion with drift ``theta`` observed at ``t_k`` (``S_k ~ N(theta t_k, t_k)``, independent
increments), so ``E[Z_k] = theta sqrt(t_k)``; ``theta`` is the drift, the expected z at the final look.
Crossing probabilities are computed by recursive numerical integration on a grid of the score
(Armitage, McPherson & Rowe 1969; Jennison & Turnbull 2000, ch. 19): the sub-density of ``S_k`` on the
continuation region is carried forward look by look with Simpson's rule, and the probability of
crossing at look ``k`` is the exact normal tail of the last increment integrated against it.

Why not a library: the only Python package on PyPI for this, ``gsdesign`` (0.1.5, "experimental",
2026), ports gsDesign's integration grid only (no boundaries, no spending functions) and needs
numpy >= 2; rpact and gsDesign are R. The results here are checked against their published outputs
(tests/test_group_sequential.py).

Everything is one-sided: a large z is evidence of benefit; efficacy bounds are upper bounds, futility
bounds lower bounds. Futility bounds are non-binding: the efficacy bounds are computed as if there were
none (so the type I error is at most alpha whether or not a trial stops for futility).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import special

# Simpson grid step, in standard deviations of the score's increments: 0.05 gives crossing
# probabilities to ~1e-9 (checked against rpact's published values to 1e-7 in the tests).
_STEP_SD = 0.05
_MAX_NODES = 3000  # bounds the (nodes x nodes) kernel of one step to ~70 MB when two looks are very close
# The grid spans the drifted mean +- this many standard deviations (tail mass beyond ~1e-23).
_SPAN_SD = 10.0
_Z_MAX = 12.0  # bounds beyond this cannot be crossed in double precision (the tail is < 1e-32)

Spending = Callable[[np.ndarray, float, float], np.ndarray]


def _brentq(f: Callable[[float], float], a: float, b: float, **options) -> float:
    """scipy's brentq, imported at its first use: scipy.optimize costs 0.3 s to import, only designs with interim
    looks need it, and every run loads this module (through the decision rules' registry)."""
    from scipy.optimize import brentq  # noqa: PLC0415 - see the docstring

    return brentq(f, a, b, **options)


# --------------------------------------------------------------------------------- spending functions
def spend_obf(t: np.ndarray, alpha: float, param: float = 0.0) -> np.ndarray:
    """Lan-DeMets O'Brien-Fleming-type spending: ``2 - 2 Phi(z_{1-alpha/2} / sqrt(t))``.

    Lan KKG, DeMets DL (1983) Biometrika 70:659-663; gsDesign ``sfLDOF`` (one-sided alpha).
    """
    t = np.asarray(t, dtype=float)
    return 2.0 - 2.0 * special.ndtr(-special.ndtri(alpha / 2.0) / np.sqrt(t))


def spend_pocock(t: np.ndarray, alpha: float, param: float = 0.0) -> np.ndarray:
    """Lan-DeMets Pocock-type spending: ``alpha log(1 + (e - 1) t)`` (Lan & DeMets 1983; gsDesign ``sfLDPocock``)."""
    return alpha * np.log1p((math.e - 1.0) * np.asarray(t, dtype=float))


def spend_hsd(t: np.ndarray, alpha: float, param: float = -4.0) -> np.ndarray:
    """Hwang-Shih-DeCani spending with parameter gamma: ``alpha (1 - e^{-gamma t}) / (1 - e^{-gamma})``, ``alpha t``
    at gamma = 0 (Hwang IK, Shih WJ, DeCani JS (1990) Stat Med 9:1439-1445; gsDesign ``sfHSD``, rpact ``asHSD``)."""
    t = np.asarray(t, dtype=float)
    if abs(param) < 1e-8:  # the limit gamma -> 0 (and no underflow of 1 - e^{-gamma t} for tiny gamma)
        return alpha * t
    return alpha * (-np.expm1(-param * t)) / (-math.expm1(-param))


# The spending functions by name (the config's ``interim.efficacy`` / ``interim.futility.spending`` values).
SPENDING: dict[str, Spending] = {"obf": spend_obf, "pocock": spend_pocock, "hsd": spend_hsd}
# Classical boundary shapes: the bound at look k is c * shape(t_k), one constant c solved for alpha.
CLASSICAL: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "obrien_fleming": lambda t: 1.0 / np.sqrt(t),  # O'Brien PC, Fleming TR (1979) Biometrics 35:549-556
    "pocock": lambda t: np.ones_like(t),  # Pocock SJ (1977) Biometrika 64:191-199
}


# ------------------------------------------------------------------------------------ integration
def _simpson(lo: float, hi: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and Simpson weights on [lo, hi] (an even number of intervals of at most ``step``)."""
    n = max(2, int(math.ceil((hi - lo) / step)))
    n += n % 2
    x = np.linspace(lo, hi, n + 1)
    w = np.full(n + 1, 2.0)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    return x, w * (hi - lo) / (3.0 * n)


@dataclass(frozen=True)
class Crossing:
    """Probabilities of stopping at each look: ``upper[k]`` crossing the efficacy bound, ``lower[k]`` the
    futility bound (both at look k, having continued before it)."""

    upper: np.ndarray
    lower: np.ndarray

    @property
    def total_upper(self) -> float:
        return float(self.upper.sum())

    @property
    def total_lower(self) -> float:
        return float(self.lower.sum())

    def expected_fraction(self, fractions: np.ndarray) -> float:
        """Expected information (sample) fraction at stopping."""
        stop = self.upper + self.lower
        stop = np.append(stop[:-1], 1.0 - stop[:-1].sum())  # who reaches the last look stops there
        return float((stop * np.asarray(fractions)).sum())


def crossing_probabilities(fractions, upper, lower=None, *, drift: float = 0.0) -> Crossing:
    """Probabilities of crossing each look's bounds first, by recursive numerical integration.

    Parameters
    ----------
    fractions : array (K,)
        Information fractions, increasing, in (0, 1].
    upper : array (K,)
        Efficacy (upper) z bounds; ``inf`` = no efficacy stop at that look.
    lower : array (K,), optional
        Futility (lower) z bounds; ``-inf`` or None = none.
    drift : float
        Expected z at information fraction 1 (0 = the null hypothesis).

    Returns
    -------
    Crossing
        ``upper[k]``: P(first stop at look k, by crossing the efficacy bound); ``lower[k]``: by the futility bound.
    """
    t = np.asarray(fractions, dtype=float)
    b = np.clip(np.asarray(upper, dtype=float), -_Z_MAX, _Z_MAX)
    a = np.full(t.shape, -_Z_MAX) if lower is None else np.clip(np.asarray(lower, dtype=float), -_Z_MAX, _Z_MAX)
    if t.ndim != 1 or t.size == 0 or b.shape != t.shape or a.shape != t.shape:
        raise ValueError("fractions, upper and lower must be 1-d arrays of the same length")
    if np.any(t <= 0) or np.any(t > 1) or np.any(np.diff(t) <= 0):
        raise ValueError(f"information fractions must increase within (0, 1], got {t.tolist()}")
    p_up, p_low = np.zeros(t.size), np.zeros(t.size)
    nodes = weights = dens = None
    prev = 0.0
    for k in range(t.size):
        dt = t[k] - prev
        sd = math.sqrt(dt)
        mean_step = drift * dt
        s_hi, s_lo = b[k] * math.sqrt(t[k]), a[k] * math.sqrt(t[k])
        if k == 0:
            p_up[0] = special.ndtr((mean_step - s_hi) / sd)
            p_low[0] = special.ndtr((s_lo - mean_step) / sd)
        else:
            mass = weights * dens
            p_up[k] = mass @ special.ndtr((nodes + mean_step - s_hi) / sd)
            p_low[k] = mass @ special.ndtr((s_lo - nodes - mean_step) / sd)
        if k == t.size - 1 or s_lo >= s_hi:
            break
        centre = drift * t[k]
        lo, hi = max(s_lo, centre - _SPAN_SD * math.sqrt(t[k])), min(s_hi, centre + _SPAN_SD * math.sqrt(t[k]))
        if lo >= hi:
            break
        # the carried density varies on the scale of this increment's sd, the next kernel on the next one's
        step = max(_STEP_SD * min(sd, math.sqrt(t[k + 1] - t[k])), (hi - lo) / _MAX_NODES)
        new_nodes, new_weights = _simpson(lo, hi, step)
        if k == 0:
            new_dens = np.exp(-0.5 * ((new_nodes - mean_step) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
        else:
            z = (new_nodes[:, None] - nodes[None, :] - mean_step) / sd
            new_dens = (np.exp(-0.5 * z * z) / (sd * math.sqrt(2 * math.pi))) @ (weights * dens)
        nodes, weights, dens = new_nodes, new_weights, new_dens
        prev = t[k]
    return Crossing(p_up, p_low)


# -------------------------------------------------------------------------------------- boundaries
@dataclass(frozen=True)
class Boundaries:
    """A one-sided group-sequential design's z bounds at its information fractions.

    ``efficacy[k]``: stop and reject H0 at look k if z >= it; ``futility[k]``: stop for futility if
    z < it (``-inf``: no futility stop; the last look has none, a trial that reaches it without crossing
    the efficacy bound does not reject). Futility is non-binding: ``efficacy`` ignores it.
    """

    fractions: np.ndarray
    efficacy: np.ndarray
    futility: np.ndarray
    alpha: float
    kind: str

    @property
    def n_looks(self) -> int:
        return int(self.fractions.size)

    def nominal_alpha(self) -> np.ndarray:
        """One-sided nominal p-value thresholds of the efficacy bounds (p <= it rejects at that look)."""
        return special.ndtr(-self.efficacy)

    def crossing(self, drift: float = 0.0, *, futility: bool = True) -> Crossing:
        """First-crossing probabilities under a drift (expected z at fraction 1); ``futility=False`` ignores
        the futility bounds (the non-binding type I error)."""
        return crossing_probabilities(self.fractions, self.efficacy, self.futility if futility else None, drift=drift)


def _fractions(fractions) -> np.ndarray:
    t = np.asarray(fractions, dtype=float)
    if t.ndim != 1 or t.size == 0 or np.any(t <= 0) or np.any(np.diff(t) <= 0) or abs(t[-1] - 1.0) > 1e-12:
        raise ValueError(f"information fractions must increase within (0, 1] and end at 1, got {t.tolist()}")
    return t


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 0.5:
        raise ValueError(f"one-sided alpha must be in (0, 0.5), got {alpha}")


def classical_bounds(fractions, alpha: float, kind: str = "obrien_fleming") -> Boundaries:
    """Classical O'Brien-Fleming (``c / sqrt(t_k)``) or Pocock (``c``) bounds with total one-sided level alpha.

    With equally spaced looks these are the tabulated designs (Jennison & Turnbull 2000, tables 2.1, 2.3);
    at other fractions the same shape is kept and one constant solved.
    """
    t = _fractions(fractions)
    _check_alpha(alpha)
    shape = CLASSICAL[kind](t)

    def excess(c: float) -> float:
        return crossing_probabilities(t, c * shape).total_upper - alpha

    c = _brentq(excess, 0.5, 10.0, xtol=1e-10)
    return Boundaries(t, c * shape, np.full(t.size, -np.inf), alpha, kind)


def spending_bounds(fractions, alpha: float, spending: str = "obf", param: float = 0.0) -> Boundaries:
    """Lan-DeMets alpha-spending bounds: at look k the bound spends ``f(t_k) - f(t_{k-1})`` of alpha.

    ``spending``: "obf" (O'Brien-Fleming-type), "pocock" (Pocock-type) or "hsd" (Hwang-Shih-DeCani, with
    ``param`` = gamma). Lan KKG, DeMets DL (1983) Biometrika 70:659-663.
    """
    t = _fractions(fractions)
    _check_alpha(alpha)
    cumulative = SPENDING[spending](t, alpha, param)
    cumulative[-1] = alpha  # every spending function spends all of alpha at t = 1
    increments = np.diff(cumulative, prepend=0.0)
    b = np.full(t.size, np.inf)
    for k in range(t.size):
        if increments[k] <= 0:
            continue  # nothing spent: no efficacy stop at this look

        def excess(x: float) -> float:
            trial = b.copy()
            trial[k] = x
            return crossing_probabilities(t[:k + 1], trial[:k + 1]).upper[k] - increments[k]

        b[k] = _brentq(excess, -_Z_MAX + 1, _Z_MAX - 0.1, xtol=1e-10)
    return Boundaries(t, b, np.full(t.size, -np.inf), alpha, f"spending_{spending}")


def with_futility_z(bounds: Boundaries, z) -> Boundaries:
    """The same efficacy bounds with fixed futility z thresholds at the interim looks (stop if z < z_k).

    ``z`` has one value per interim look (the last look has no futility stop); a threshold of 0 stops
    when the estimate points towards harm. Non-binding: the efficacy bounds are unchanged.
    """
    z = np.asarray(z, dtype=float)
    if z.shape != (bounds.n_looks - 1,):
        raise ValueError(f"one futility z per interim look ({bounds.n_looks - 1}), got {z.tolist()}")
    low = np.append(np.minimum(z, bounds.efficacy[:-1]), -np.inf)
    return Boundaries(bounds.fractions, bounds.efficacy, low, bounds.alpha, bounds.kind)


def with_conditional_power(bounds: Boundaries, power: float, drift: float) -> Boundaries:
    """Non-binding futility: stop at an interim look when the conditional power is below ``power``.

    Conditional power at look k with z statistic ``z_k``: the chance of ending above the final efficacy
    bound, ``Phi((z_k sqrt(t_k) + drift (1 - t_k) - b_K) / sqrt(1 - t_k))`` (Brownian motion with the given
    drift from the current score; Lachin JM (2005) Clin Trials 2:325-339; Jennison & Turnbull 2000 sec. 10.2),
    ignoring the later interim looks. ``drift``: the expected final z under the effect assumed for the
    future (the planned effect; 0 gives conditional power under the null). Solving CP < power for ``z_k``
    gives one fixed z threshold per interim look.
    """
    if not 0 < power < 1:
        raise ValueError(f"conditional power threshold must be in (0, 1), got {power}")
    t = bounds.fractions[:-1]
    z = (bounds.efficacy[-1] - drift * (1.0 - t) + special.ndtri(power) * np.sqrt(1.0 - t)) / np.sqrt(t)
    return with_futility_z(bounds, z)


def conditional_power(z, fraction: float, final_bound: float, drift: float) -> np.ndarray:
    """Chance of ending above ``final_bound`` given z at ``fraction`` and a drift for the rest (see
    :func:`with_conditional_power`)."""
    t = fraction
    return special.ndtr((np.asarray(z) * math.sqrt(t) + drift * (1.0 - t) - final_bound) / math.sqrt(1.0 - t))


def with_beta_spending(bounds: Boundaries, beta: float, drift: float, spending: str = "obf",
                       param: float = 0.0) -> Boundaries:
    """Non-binding futility bounds by beta spending under a drift (expected final z under the planned effect).

    At interim look k the futility bound ``a_k`` is set so that, under the drift, the probability of
    continuing to look k and stopping there for futility is ``g(t_k) - g(t_{k-1})`` with ``g`` the
    spending function at level beta (rpact ``typeBetaSpending``, gsDesign ``sfl``). The drift is given,
    not solved for: bounds are not forced to meet at the last look (which has no futility stop), so the
    design's power is whatever these bounds give (see :meth:`Boundaries.crossing`).
    """
    if not 0 < beta < 1:
        raise ValueError(f"beta must be in (0, 1), got {beta}")
    t = bounds.fractions
    cumulative = SPENDING[spending](t, beta, param)
    increments = np.diff(cumulative, prepend=0.0)
    a = np.full(t.size, -np.inf)
    for k in range(t.size - 1):
        if increments[k] <= 0:
            continue

        def excess(x: float) -> float:
            trial = a.copy()
            trial[k] = x
            return crossing_probabilities(t[:k + 1], bounds.efficacy[:k + 1], trial[:k + 1], drift=drift).lower[k] \
                - increments[k]

        hi = min(bounds.efficacy[k], _Z_MAX - 0.1)
        if excess(hi) <= 0:  # even a bound at the efficacy bound spends less: stop whenever not crossing
            a[k] = hi
            continue
        a[k] = _brentq(excess, -_Z_MAX + 1, hi, xtol=1e-10)
    return Boundaries(t, bounds.efficacy, a, bounds.alpha, bounds.kind)


def drift_for_power(bounds: Boundaries, power: float) -> float:
    """The drift (expected final z) at which the efficacy bounds (futility ignored) reject with ``power``."""
    if not bounds.alpha < power < 1:
        raise ValueError(f"power must be in (alpha, 1), got {power}")
    return _brentq(lambda d: bounds.crossing(d, futility=False).total_upper - power, 0.0, 20.0, xtol=1e-10)


def one_sided_z(pvalue, estimate, *, benefit: str) -> np.ndarray:
    """A look's z statistic from a two-sided p-value and the estimate's sign: large z = benefit.

    ``benefit`` is "lower" (treatment - control < 0 is good, e.g. fewer leaks) or "higher". The one-sided
    p-value in the direction of benefit is p/2 when the estimate points that way, else 1 - p/2; z is its
    normal quantile, ``z = Phi^{-1}(1 - p_one)``. For a test whose two-sided p-value doubles a symmetric
    one-sided one (chi-square without correction, Welch, Wald) this is the signed test statistic's z;
    for exact tests (Fisher, Boschloo) it is conservative. NaN where the p-value or estimate is NaN.
    """
    p = np.asarray(pvalue, dtype=float)
    est = np.asarray(estimate, dtype=float)
    sign = -1.0 if benefit == "lower" else 1.0
    good = sign * est > 0
    p_one = np.where(good, p / 2.0, 1.0 - p / 2.0)
    p_one = np.where(sign * est == 0, 0.5, p_one)  # no direction: halfway
    with np.errstate(invalid="ignore"):
        z = -special.ndtri(np.clip(p_one, 1e-300, 1.0))
    return np.where(np.isfinite(p) & ~np.isnan(est), z, np.nan)
