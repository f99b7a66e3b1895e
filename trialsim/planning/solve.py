"""Solve for whichever of sample size, power or effect is missing, from a few numbers (no config file).

Like ``statsmodels.stats.power``'s ``solve_power`` (leave exactly one of ``n_per_arm``, ``power`` and
the effect as None), but exact:

* two proportions (:func:`solve_two_proportions`): the registered exact power of Fisher's,
  Boschloo's or the chi-square test (:func:`trialsim.analysis.binary.exact_power`: every 2 x 2 table
  enumerated). Exact power saw-tooths in n, so a sample size is reported twice, as ``trialsim
  samplesize`` does (the same scan, :func:`~trialsim.planning.samplesize.exact_scan`): the first n
  reaching the target and the n from which power stays at or above it;
* two means (:func:`solve_two_means`) and ratios of geometric means (:func:`solve_ratio_of_means`,
  on the log scale): the pooled t test by its noncentral t law, Welch's test by integrating its
  conditional power over the two sample variances (Gauss-Hermite quadrature on their normal scores;
  accurate to about 1e-9 from 3 patients per arm).

Beside every exact answer stands the normal approximation a textbook gives (two proportions: pooled z
without continuity correction, ``Hmisc::bsamsize`` / ``power.prop.test``; means: the z test).

Sizes are analysable patients per arm; ``n_per_arm`` is the control arm, the treatment arm has
``ratio * n`` (rounded half up, :func:`~trialsim.planning.model.n_treatment_for`); ``dropout``
inflates both to the numbers to enrol, ``ceil(n / (1 - dropout))``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Literal

import numpy as np
import pandas as pd
from scipy import optimize, special

from trialsim.analysis import registry as tests
from trialsim.analysis.analytic import smallest_reaching, t_test_power, two_proportions_power_normal, two_proportions_sample_size_normal
from trialsim.analysis.laws import chi2_isf, chi2_ppf, norm_cdf, norm_isf, norm_ppf, norm_sf
from trialsim.labels import aligned_table, fmt_power, num, pct, target_pct, test_label, upper_first
from trialsim.planning.analytic import ceil, positive_root
from trialsim.planning.model import exact_power, inflate, n_treatment_for
from trialsim.planning.samplesize import control_cap, exact_scan, sizes

__all__ = [
    "MEAN_TESTS",
    "Solution",
    "SolveInputError",
    "python_name",
    "solve_ratio_of_means",
    "solve_two_means",
    "solve_two_proportions",
    "welch_power",
]

MEAN_TESTS = {"t": "Student t (pooled)", "welch": "Welch t"}
N_MAX_PROPORTIONS = 5000
N_MAX_MEANS = 1_000_000
N_MAX_APPROXIMATE = 1e12  # beyond this the normal approximation's n is not a question about a trial
SD_RANGE = (1e-100, 1e100)
MAX_STANDARDISED = 1e3  # |difference| / SD: beyond it power is 1 at any size
RATE_MIN = 1e-6  # event rates solved for lie in [RATE_MIN, 1 - RATE_MIN] (as a config's rates)
QUADRATURE_NODES = 64  # per sample variance: Welch's power to ~1e-9 (checked against the noncentral t)
EFFECT_GRID = 200  # proportions scanned between no effect and the extreme, before refining the crossing
EDGE = 1e-9  # the most extreme treatment rate searched: 0 or 1 but for this

Direction = Literal["lower", "higher"]
Namer = Callable[..., str]  # (parameter) -> its name, (parameter, value) -> the setting, as a caller writes them


def python_name(param: str, *value) -> str:
    """A parameter (``power``) or a setting (``power=0.01``) as a Python caller writes it."""
    return f"{param}={value[0]!r}" if value else param


class SolveInputError(ValueError):
    """A question the solvers refuse. ``str()`` names the parameters as Python does (``power=0.01``);
    :meth:`spelled` names them as another caller does (the command line: ``--power 0.01``)."""

    def __init__(self, build: Callable[[Namer], str]):
        self.build = build
        super().__init__(build(python_name))

    def spelled(self, name: Namer) -> str:
        """The message with every parameter named by ``name(param)`` / ``name(param, value)``."""
        return self.build(name)


@dataclass(frozen=True)
class Approximation:
    """The normal approximation's answer to the same question (``n`` unrounded)."""

    n: float
    power: float
    effect: dict[str, float]
    method: str


@dataclass(frozen=True)
class Solution:
    """The answer of a solve-for call: the design with the missing quantity filled in.

    ``n_per_arm`` is the control arm's analysable size (when solved for: for two proportions the n
    from which exact power stays at or above the target, ``n_stable``); ``power`` the exact power at
    that size and effect; ``effect`` the effect in the problem's terms (``p_control`` /
    ``p_treatment``; ``difference`` / ``sd_control`` / ``sd_treatment`` / ``d``; plus ``gmr`` /
    ``log_sd`` for ratios of geometric means). ``n_continuous`` is the unrounded root of a t test's
    power (as R's ``pwr.t.test`` reports it).
    """

    problem: str  # "two proportions" | "two means" | "ratio of geometric means"
    solved_for: str  # "n_per_arm" | "power" | "effect"
    test: str
    method: str
    alpha: float
    ratio: float
    dropout: float
    n_per_arm: int | None
    power: float
    effect: dict[str, float]
    target_power: float | None = None
    n_first: int | None = None
    n_stable: int | None = None
    horizon: int | None = None
    n_continuous: float | None = None
    approximation: Approximation | None = None
    note: str = ""
    curve: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def n_treatment(self) -> int | None:
        return None if self.n_per_arm is None else n_treatment_for(self.n_per_arm, self.ratio)

    @property
    def n_enrolled(self) -> int | None:
        return inflate(self.n_per_arm, self.dropout)

    @property
    def n_enrolled_treatment(self) -> int | None:
        return inflate(self.n_treatment, self.dropout)

    @property
    def test_label(self) -> str:
        return MEAN_TESTS.get(self.test) or test_label(self.test)

    def to_frame(self) -> pd.DataFrame:
        """One row per method (exact, normal approximation): sizes, enrolment, power and the effect."""
        rows = [{"method": self.method, "n_control": self.n_per_arm, "n_treatment": self.n_treatment,
                 "n_enrolled_control": self.n_enrolled, "n_enrolled_treatment": self.n_enrolled_treatment,
                 "n_first": self.n_first, "n_stable": self.n_stable, "power": self.power, **self.effect}]
        a = self.approximation
        if a is not None:
            n = None if math.isnan(a.n) else ceil(a.n)
            rows.append({"method": a.method, "n_control": n, "n_treatment": None if n is None else n_treatment_for(n, self.ratio),
                         "n_enrolled_control": inflate(n, self.dropout),
                         "n_enrolled_treatment": None if n is None else inflate(n_treatment_for(n, self.ratio), self.dropout),
                         "power": a.power, **a.effect})
        frame = pd.DataFrame(rows)
        for k, v in (("problem", self.problem), ("test", self.test), ("solved_for", self.solved_for),
                     ("alpha", self.alpha), ("ratio", self.ratio), ("dropout", self.dropout),
                     ("target_power", self.target_power)):
            frame[k] = v
        return frame

    def summary(self) -> str:
        """The answer in a few lines: the design, a table exact vs approximation, and what to read from it."""
        lines = [f"{upper_first(self.problem)}: {self.test_label}, two-sided alpha {num(self.alpha)}, "
                 f"allocation 1:{num(self.ratio)} (control:treatment), "
                 + (f"{pct(self.dropout, 1)} dropout" if self.dropout else "no dropout")]
        wanted = {"n_per_arm": "sample size", "power": "power", "effect": "effect"}[self.solved_for]
        given = f" for {target_pct(self.target_power)} power" if self.target_power is not None and self.solved_for != "power" else ""
        lines.append(f"Solved for the {wanted}{given}: {describe_effect(self.problem, self.effect)}")
        lines.append("")
        header = ["", "n per arm", "enrol per arm", "power", effect_column(self.problem)]
        rows = [[self.method, sizes(self.n_per_arm, self.n_treatment),
                 sizes(self.n_enrolled, self.n_enrolled_treatment), fmt_power(self.power),
                 effect_cell(self.problem, self.effect)]]
        a = self.approximation
        if a is not None:
            n = None if math.isnan(a.n) else ceil(a.n)
            n_text = sizes(n, None if n is None else n_treatment_for(n, self.ratio))
            rows.append([a.method, n_text, sizes(inflate(n, self.dropout), None if n is None else
                                                      inflate(n_treatment_for(n, self.ratio), self.dropout)),
                         fmt_power(a.power), effect_cell(self.problem, a.effect)])
        lines += aligned_table(header, rows, right={1, 2, 3}, indent="  ")
        extra = []
        if self.n_first is not None and self.n_stable is not None:
            if self.n_first == self.n_stable:
                extra.append(f"Exact power reaches {target_pct(self.target_power)} at n = {self.n_first:,} and stays at or "
                             f"above it up to n = {self.horizon:,} (the sizes checked).")
            else:
                extra.append(f"Exact power saw-tooths in n: it first reaches {target_pct(self.target_power)} at n = "
                             f"{self.n_first:,}, drops below it again, and stays at or above it from n = {self.n_stable:,} "
                             f"up to n = {self.horizon:,} (the sizes checked).")
        if self.solved_for == "n_per_arm" and a is not None and not math.isnan(a.n):
            exact_root = "" if self.n_continuous is None else f"exact {self.n_continuous:.2f}, "
            extra.append(f"Unrounded n per arm: {exact_root}normal approximation {a.n:.2f}.")
        if self.note:
            extra.append(self.note)
        if extra:
            lines.append("")
            lines += [f"  {t}" for t in extra]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------- wording
def effect_column(problem: str) -> str:
    return {"two proportions": "treatment rate", "two means": "difference",
            "ratio of geometric means": "ratio of geometric means"}[problem]


def effect_cell(problem: str, effect: dict[str, float]) -> str:
    if problem == "two proportions":
        return fmt_rate(effect["p_treatment"])
    if problem == "two means":
        return num(effect["difference"], 4)
    return num(effect["gmr"], 4)


def fmt_rate(p: float) -> str:
    """A proportion as a percentage with enough digits: 12.4%, 0.37%."""
    return "-" if p is None or math.isnan(p) else pct(p, 2 if p < 0.1 else 1)


def describe_effect(problem: str, effect: dict[str, float]) -> str:
    """The effect in words, with the other usual scales (risk ratio, difference, odds ratio; d)."""
    if problem == "two proportions":
        pc, pt = effect["p_control"], effect["p_treatment"]
        if math.isnan(pt):
            return f"control rate {fmt_rate(pc)}."
        odds = (pt / (1 - pt)) / (pc / (1 - pc)) if 0 < pt < 1 else math.nan
        return (f"control rate {fmt_rate(pc)}, treatment {fmt_rate(pt)}: risk ratio {num(pt / pc)}, risk difference "
                f"{100 * (pt - pc):+.1f} percentage points, odds ratio {num(odds)}.")
    if problem == "two means":
        sds = (f"SD {num(effect['sd_control'])}" if effect["sd_control"] == effect["sd_treatment"] else
               f"SDs {num(effect['sd_control'])} (control) and {num(effect['sd_treatment'])} (treatment)")
        if math.isnan(effect["difference"]):
            return f"{sds}."
        return f"difference {num(effect['difference'], 4)} with {sds}: standardised difference d = {num(effect['d'])}."
    cv = math.sqrt(math.expm1(effect["log_sd"] ** 2))
    head = f"SD of the logs {num(effect['log_sd'])} (coefficient of variation {pct(cv, 0)})"
    if math.isnan(effect["gmr"]):
        return f"{head}."
    return f"ratio of geometric means {num(effect['gmr'], 4)} with {head}: d = {num(effect['d'])} on the log scale."


# ------------------------------------------------------------------------------------- validation
def _one_missing(**values) -> str:
    missing = [k for k, v in values.items() if v is None]
    if len(missing) != 1:
        raise SolveInputError(lambda name: f"give all but one of {', '.join(map(name, values))} (the one left out is "
                                           f"solved for); missing: {', '.join(map(name, missing)) or 'none'}")
    return missing[0]


def _check(param: str, value, low: float, high: float, *, closed: bool = False, what: str = "") -> float:
    value = float(value)
    ok = low <= value <= high if closed else low < value < high
    if not ok:
        span = f"{'[' if closed else '('}{low:g}, {high:g}{']' if closed else ')'}"
        raise SolveInputError(lambda name: f"{name(param, value)} is not allowed: use a number in {span}{what}")
    return value


def _check_size(n_per_arm: int | None, n_max: int) -> None:
    if n_per_arm is not None and n_per_arm > n_max:
        raise SolveInputError(lambda name: f"{name('n_per_arm', n_per_arm)} is not allowed: at most {n_max:,} "
                                           "patients per arm here")


def _check_common(alpha: float, ratio: float, dropout: float, power: float | None, n_per_arm: int | None) -> None:
    _check("alpha", alpha, 0.0, 0.5, what=" (a two-sided significance level)")
    if not float(ratio) > 0:
        raise SolveInputError(lambda name: f"{name('ratio', ratio)} is not allowed: n_treatment / n_control must be "
                                           "positive")
    _check("dropout", dropout, 0.0, 1.0 - 1e-9, closed=True, what=" (a share of patients)")
    if power is not None and not alpha < float(power) < 1.0:
        raise SolveInputError(lambda name: f"{name('power', power)} is not allowed: a target power lies above "
                                           f"{name('alpha', alpha)} (the power of no effect) and below 1")
    if n_per_arm is not None and (int(n_per_arm) != n_per_arm or n_per_arm < 2):
        raise SolveInputError(lambda name: f"{name('n_per_arm', n_per_arm)} is not allowed: use a whole number of "
                                           "patients per arm, at least 2")


# ---------------------------------------------------------------------------------- two proportions
def solve_two_proportions(p_control: float, p_treatment: float | None = None, *, n_per_arm: int | None = None,
                          power: float | None = None, test: str = "fisher", alpha: float = 0.05, ratio: float = 1.0,
                          dropout: float = 0.0, direction: Direction = "lower",
                          n_max: int = N_MAX_PROPORTIONS) -> Solution:
    """Solve a two-arm comparison of proportions for the one of ``p_treatment``, ``n_per_arm``, ``power`` left None.

    Parameters
    ----------
    p_control : float
        Event probability in the control arm, in (0, 1).
    p_treatment : float, optional
        Event probability in the treatment arm (None: the smallest effect with ``power`` at
        ``n_per_arm``, on the ``direction`` side of ``p_control``).
    n_per_arm : int, optional
        Analysable patients in the control arm (None: the sample size for ``power``).
    power : float, optional
        Target power (None: the power of the design).
    test : {"fisher", "boschloo", "chi2"} or any registered binary test with an exact power
    alpha : float, default 0.05
        Two-sided significance level.
    ratio : float, default 1
        ``n_treatment / n_control``.
    dropout : float, default 0
        Expected fraction not analysable; inflates the sizes to enrol.
    direction : {"lower", "higher"}
        Side of ``p_control`` on which an effect is sought (solving for the effect only).
    n_max : int
        Largest control arm searched (capped by the test's own size limit).

    Returns
    -------
    Solution
        Exact answer, with the normal approximation in ``approximation``.

    Examples
    --------
    >>> solve_two_proportions(0.15, 0.05, power=0.8).n_per_arm      # Fisher exact
    151
    """
    solved = _one_missing(p_treatment=p_treatment, n_per_arm=n_per_arm, power=power)
    _check_common(alpha, ratio, dropout, power, n_per_arm)
    _check_size(n_per_arm, n_max)
    pc = _check("p_control", p_control, RATE_MIN, 1.0 - RATE_MIN, closed=True)
    spec = tests.get(test)
    if "binary" not in spec.kinds or spec.exact_power is None:
        allowed = ", ".join(t for t in tests.names("binary") if tests.get(t).exact_power is not None)
        raise SolveInputError(lambda name: f"{name('test', test)} is not allowed: it has no exact power for two "
                                           f"proportions; use one of {allowed}")
    cap = control_cap(test, n_max, ratio)
    if n_per_arm is not None and max(n_per_arm, n_treatment_for(n_per_arm, ratio)) > (spec.max_n or math.inf):
        raise SolveInputError(lambda name: f"{name('n_per_arm', n_per_arm)} is not allowed with {name('test', test)}: "
                                           f"{spec.label} runs for arms of up to {spec.max_n:,} patients (its size limit "
                                           "in the test registry)")
    common = dict(problem="two proportions", test=test, method="exact (all 2x2 tables)",
                  alpha=float(alpha), ratio=float(ratio), dropout=float(dropout))

    def exact(p_t: float, n: int) -> float:  # cached: the grid, the root search and the answer share points
        return exact_power(test, pc, p_t, n, n_treatment_for(n, ratio), alpha=alpha)

    def normal(p_t: float, n: float) -> float:
        return two_proportions_power_normal(pc, p_t, n, ratio * n, alpha=alpha)

    normal_method = "normal approximation (pooled z)"
    if solved == "power":
        pt = _check("p_treatment", p_treatment, RATE_MIN, 1.0 - RATE_MIN, closed=True)
        effect = {"p_control": pc, "p_treatment": pt}
        approx = Approximation(float(n_per_arm), normal(pt, n_per_arm), effect, normal_method)
        return Solution(**common, solved_for="power", n_per_arm=int(n_per_arm), power=exact(pt, int(n_per_arm)),
                        effect=effect, approximation=approx)
    if solved == "n_per_arm":
        pt = _check("p_treatment", p_treatment, RATE_MIN, 1.0 - RATE_MIN, closed=True)
        if pt == pc:
            raise SolveInputError(lambda name: f"{name('p_treatment', pt)} is no effect (it equals "
                                               f"{name('p_control', pc)}): no size gives power above the type I error")
        effect = {"p_control": pc, "p_treatment": pt}
        n_normal = two_proportions_sample_size_normal(pc, pt, power=power, alpha=alpha, ratio=ratio)
        if not n_normal <= N_MAX_APPROXIMATE:
            raise SolveInputError(lambda name: f"{name('p_treatment', pt)} against {name('p_control', pc)} is too small "
                                               f"a difference: the normal approximation alone needs {n_normal:.3g} "
                                               f"patients per arm (solved up to {n_max:,})")
        n_normal_int = ceil(n_normal)
        approx = Approximation(n_normal, normal(pt, n_normal_int), effect, normal_method)
        scan = exact_scan(test, pc, pt, power=power, alpha=alpha, ratio=ratio, n_max=cap)
        curve = pd.DataFrame({"n_per_arm": scan.n, "power": scan.power})
        note = (f"The normal approximation's {n_normal_int:,} per arm give {pct(exact(pt, n_normal_int), 1)} exact power."
                if n_normal_int <= cap and n_normal_int >= 1 else "")
        if scan.n_stable is None:
            limit = f"; {spec.label} runs for arms of up to {spec.max_n} patients" if cap < n_max else ""
            reached = (f"Exact power first reaches the target at {scan.n_first:,} but is below it again at "
                       f"{scan.horizon:,}{limit}" if scan.n_first is not None else
                       f"Exact power does not reach the target by {sizes(cap, n_treatment_for(cap, ratio))} per arm "
                       f"({pct(scan.power[-1], 1)} there{limit})")
            return Solution(**common, solved_for="n_per_arm", n_per_arm=None, power=math.nan, effect=effect,
                            target_power=float(power), approximation=approx, curve=curve,
                            note=f"{reached}. {note}".strip())
        n = scan.n_stable
        return Solution(**common, solved_for="n_per_arm", n_per_arm=n, power=float(scan.power[scan.n == n][0]),
                        effect=effect, target_power=float(power), n_first=scan.n_first, n_stable=n,
                        horizon=scan.horizon, approximation=approx, note=note, curve=curve)
    # the effect: the treatment rate closest to no effect with the target power
    if direction not in ("lower", "higher"):
        raise SolveInputError(lambda name: f"{name('direction', direction)} is not allowed: use lower or higher")
    n = int(n_per_arm)
    edge = EDGE if direction == "lower" else 1.0 - EDGE
    pt_exact = _closest_with_power(lambda p: exact(p, n), pc, edge, power)
    pt_normal = _closest_with_power(lambda p: normal(p, n), pc, edge, power)
    effect = {"p_control": pc, "p_treatment": pt_exact}
    approx = Approximation(float(n), power if not math.isnan(pt_normal) else math.nan,
                           {"p_control": pc, "p_treatment": pt_normal}, normal_method)
    note = ("" if not math.isnan(pt_exact) else
            f"No treatment rate on this side of {fmt_rate(pc)} gives {target_pct(power)} exact power at {n:,} per arm "
            f"(at most {pct(exact(edge, n), 1)}, a treatment rate of {fmt_rate(edge)}).")
    if not math.isnan(pt_exact):
        note = ("The rate closest to the control rate with the target power; exact power is not always monotone in "
                "the rate for a discrete test, so rates beyond it can dip slightly below the target.")
    return Solution(**common, solved_for="effect", n_per_arm=n, power=exact(pt_exact, n) if not math.isnan(pt_exact) else math.nan,
                    effect=effect, target_power=float(power), approximation=approx, note=note)


def _closest_with_power(power_at, null: float, edge: float, target: float) -> float:
    """The value between ``null`` and ``edge`` closest to ``null`` with ``power_at(value) >= target`` (NaN if none).

    A grid of :data:`EFFECT_GRID` values from ``null`` to ``edge`` finds the first one reaching the
    target; Brent's method refines the crossing between it and its predecessor.
    """
    grid = np.linspace(null, edge, EFFECT_GRID + 1)[1:]
    values = [power_at(float(v)) for v in grid]
    hit = next((i for i, p in enumerate(values) if p >= target), None)
    if hit is None:
        return math.nan
    inner = null if hit == 0 else float(grid[hit - 1])
    if (power_at(inner) if hit == 0 else values[hit - 1]) >= target:  # the null cannot reach a target above alpha; guard anyway
        return inner
    return float(optimize.brentq(lambda v: power_at(v) - target, inner, float(grid[hit]), xtol=1e-10))


# -------------------------------------------------------------------------------------- two means
def welch_power(difference: float, sd_control: float, sd_treatment: float, n_control: float, n_treatment: float, *,
                alpha: float = 0.05, nodes: int = QUADRATURE_NODES) -> float:
    """Power of the two-sided Welch t test for normal data, by integration over the sample variances.

    Given the two sample variances, the difference of means is normal, so the chance that
    ``|difference| > t_crit(df) * se`` is two normal tails; that conditional power is averaged over
    the two scaled chi-square laws of the variances by Gauss-Hermite quadrature on their normal
    scores (``nodes`` per variance). With equal SDs and one pooled variance the same quadrature gives
    the noncentral t power to ~1e-15; here it is accurate to ~1e-9 from 3 patients per arm.

    Parameters
    ----------
    difference : float
        True difference of means (either sign).
    sd_control, sd_treatment : float
        True SDs.
    n_control, n_treatment : float
        Patients per arm (at least 2 each).
    alpha : float, default 0.05
        Two-sided level.
    """
    if min(n_control, n_treatment) < 2:
        raise ValueError("Welch's test needs at least 2 patients per arm")
    # the power depends on the SDs only through their ratios to the difference: in units of the larger SD the
    # squares below cannot overflow (an SD of 1e100 once gave no power at all, only a NumPy warning)
    unit = max(sd_control, sd_treatment)
    difference, sd_control, sd_treatment = difference / unit, sd_control / unit, sd_treatment / unit
    df_c, df_t = n_control - 1.0, n_treatment - 1.0
    q_c, w = _chi2_nodes(df_c, nodes)
    q_t, _ = _chi2_nodes(df_t, nodes)
    a = (sd_control**2 / n_control * q_c)[:, None]  # S_c^2 / n_c at each node
    b = (sd_treatment**2 / n_treatment * q_t)[None, :]
    se = np.sqrt(a + b)
    df = (a + b) ** 2 / (a**2 / df_c + b**2 / df_t)
    critical = special.stdtrit(df, 1.0 - alpha / 2.0) * se
    sd = math.sqrt(sd_control**2 / n_control + sd_treatment**2 / n_treatment)
    conditional = special.ndtr((difference - critical) / sd) + special.ndtr((-difference - critical) / sd)
    return float(w @ conditional @ w)


def _chi2_nodes(df: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (chi-square / df) and weights of E[f(chi2_df / df)] by Gauss-Hermite on the normal score."""
    z, w = special.roots_hermitenorm(k)
    q = np.where(z < 0, chi2_ppf(special.ndtr(z), df), chi2_isf(special.ndtr(-z), df))
    return np.maximum(q, 1e-300) / df, w / w.sum()


def solve_two_means(difference: float | None = None, *, sd: float = 1.0, sd_treatment: float | None = None,
                    n_per_arm: int | None = None, power: float | None = None, test: str | None = None, alpha: float = 0.05,
                    ratio: float = 1.0, dropout: float = 0.0, n_max: int = N_MAX_MEANS) -> Solution:
    """Solve a two-arm comparison of normal means for the one of ``difference``, ``n_per_arm``, ``power`` left None.

    Parameters
    ----------
    difference : float, optional
        True difference of means (treatment - control); with ``sd = 1`` it is Cohen's d. None: the
        smallest difference (in absolute value) with ``power`` at ``n_per_arm``.
    sd : float, default 1
        SD in the control arm (and in both arms unless ``sd_treatment`` is given).
    sd_treatment : float, optional
        SD in the treatment arm (Welch's test only).
    n_per_arm : int, optional
        Analysable patients in the control arm.
    power : float, optional
        Target power.
    test : {"t", "welch"}, optional
        The pooled t test (exact: noncentral t) or Welch's test (exact by quadrature, :func:`welch_power`).
        None: the pooled t test with equal SDs, Welch's test (saying so in ``note``) when they differ;
        the pooled t test is refused when they differ, as it assumes them equal.
    alpha, ratio, dropout, n_max
        As :func:`solve_two_proportions`.

    Examples
    --------
    >>> solve_two_means(0.5, power=0.8).n_per_arm        # pwr.t.test(d = 0.5, power = 0.8): n = 63.77
    64
    """
    def spread(name: Namer) -> str:
        return name("sd", sd) if sd_treatment is None else f"{name('sd', sd)} and {name('sd_treatment', sd_treatment)}"

    return _solve_means("two means", difference, sd=sd, sd_treatment=sd_treatment, n_per_arm=n_per_arm, power=power,
                        test=test, alpha=alpha, ratio=ratio, dropout=dropout, n_max=n_max,
                        effect=("difference", difference), spread=spread)


def solve_ratio_of_means(gmr: float | None = None, *, log_sd: float | None = None, cv: float | None = None,
                         n_per_arm: int | None = None, power: float | None = None, test: str = "t", alpha: float = 0.05,
                         ratio: float = 1.0, dropout: float = 0.0, direction: Direction = "lower",
                         n_max: int = N_MAX_MEANS) -> Solution:
    """Solve for a ratio of geometric means (log-normal data, a t test on the logs), or its n or power.

    The comparison is :func:`solve_two_means` on the log scale: difference ``log(gmr)``, SD
    ``log_sd`` (or, from the coefficient of variation on the original scale, ``sqrt(log(1 + cv^2))``).
    Solving for the effect gives the ratio below 1 (``direction="lower"``) or above it.
    """
    if (log_sd is None) == (cv is None):
        raise SolveInputError(lambda name: f"give the spread as exactly one of {name('log_sd')} (SD of the logs) and "
                                           f"{name('cv')} (coefficient of variation)")
    s = float(log_sd) if log_sd is not None else math.sqrt(math.log1p(_check("cv", cv, 0.0, 100.0) ** 2))
    if not s > 0:
        raise SolveInputError(lambda name: f"{name('log_sd', log_sd)} is not allowed: an SD must be positive")
    if gmr is not None and not gmr > 0:
        raise SolveInputError(lambda name: f"{name('gmr', gmr)} is not allowed: a ratio of geometric means is positive")
    if direction not in ("lower", "higher"):
        raise SolveInputError(lambda name: f"{name('direction', direction)} is not allowed: use lower or higher")

    def spread(name: Namer) -> str:
        return name("log_sd", log_sd) if log_sd is not None else name("cv", cv)

    sol = _solve_means("ratio of geometric means", None if gmr is None else math.log(gmr), sd=s, sd_treatment=None,
                       n_per_arm=n_per_arm, power=power, test=test, alpha=alpha, ratio=ratio, dropout=dropout, n_max=n_max,
                       effect=("gmr", gmr), spread=spread)
    sign = -1.0 if direction == "lower" else 1.0

    def as_ratio(effect: dict[str, float]) -> dict[str, float]:
        diff = effect["difference"]
        log_ratio = diff if gmr is not None else sign * abs(diff)
        return {"gmr": math.exp(log_ratio), "log_sd": s, "d": effect["d"], "difference": log_ratio,
                "sd_control": s, "sd_treatment": s}

    approx = sol.approximation
    return replace(sol, effect=as_ratio(sol.effect),
                   approximation=None if approx is None else replace(approx, effect=as_ratio(approx.effect)))


def _solve_means(problem: str, difference: float | None, *, sd: float, sd_treatment: float | None, n_per_arm: int | None,
                 power: float | None, test: str | None, alpha: float, ratio: float, dropout: float, n_max: int,
                 effect: tuple[str, float | None], spread: Callable[[Namer], str]) -> Solution:
    """``effect`` is the caller's (parameter, value) for ``difference`` and ``spread`` names its SDs, for messages."""
    solved = _one_missing(**{effect[0]: difference, "n_per_arm": n_per_arm, "power": power})
    _check_common(alpha, ratio, dropout, power, n_per_arm)
    if test is not None and test not in MEAN_TESTS:
        raise SolveInputError(lambda name: f"{name('test', test)} is not allowed: use t (pooled) or welch")
    _check_size(n_per_arm, n_max)
    sd_c = float(sd)
    sd_t = float(sd_treatment) if sd_treatment is not None else sd_c
    if not (SD_RANGE[0] <= sd_c <= SD_RANGE[1] and SD_RANGE[0] <= sd_t <= SD_RANGE[1]):
        raise SolveInputError(lambda name: f"{spread(name)}: SDs must lie in [{SD_RANGE[0]:g}, {SD_RANGE[1]:g}] (in any "
                                           "unit; their squares must be numbers)")
    pooled_sd = math.sqrt((sd_c**2 + sd_t**2) / 2.0)  # the SD a standardised difference is counted in (as effect_of's d)
    if difference is not None and not abs(difference) <= MAX_STANDARDISED * pooled_sd:
        raise SolveInputError(lambda name: f"{name(*effect)} is {abs(difference) / pooled_sd:.3g} SDs ({spread(name)}): "
                                           f"at most {MAX_STANDARDISED:g} SDs are allowed (a larger effect is detected "
                                           "with certainty by any size)")
    note = ""
    if sd_t != sd_c and test == "t":
        raise SolveInputError(lambda name: f"{name('test', 't')} is not allowed with unequal SDs ({spread(name)}): the "
                                           f"pooled t test assumes equal SDs; use {name('test', 'welch')}")
    if test is None:
        test = "t" if sd_t == sd_c else "welch"
        if test == "welch":
            note = "Welch's t test, as the SDs differ (the pooled t test assumes equal SDs)."
    r = float(ratio)

    def exact(diff: float, n_c: float, n_t: float) -> float:
        if test == "t":
            return t_test_power(diff / sd_c, n_c, n_t, alpha=alpha)
        return welch_power(diff, sd_c, sd_t, n_c, n_t, alpha=alpha)

    def at(diff: float, n: int) -> float:
        return exact(diff, n, n_treatment_for(n, r))

    z = norm_isf(alpha / 2.0)

    def normal(diff: float, n: float) -> float:
        se = math.sqrt(sd_c**2 / n + sd_t**2 / (r * n))
        return float(norm_sf(z - abs(diff) / se) + norm_cdf(-z - abs(diff) / se))

    def effect_of(diff: float) -> dict[str, float]:
        pooled = math.sqrt((sd_c**2 + sd_t**2) / 2.0)
        return {"difference": diff, "sd_control": sd_c, "sd_treatment": sd_t, "d": abs(diff) / pooled}

    label = "noncentral t" if test == "t" else "quadrature"
    common = dict(problem=problem, test=test, method=f"exact ({label})", alpha=float(alpha), ratio=r, dropout=float(dropout))
    normal_method = "normal approximation (z)"
    if solved == "power":
        n = int(n_per_arm)
        approx = Approximation(float(n), normal(difference, n), effect_of(difference), normal_method)
        return Solution(**common, solved_for="power", n_per_arm=n, power=at(difference, n), effect=effect_of(difference),
                        approximation=approx, note=note)
    if solved == "n_per_arm":
        if difference == 0:
            raise SolveInputError(lambda name: f"{name(*effect)} is no effect: no size gives power above the type I error")
        n_normal = (float(norm_isf(alpha / 2) + norm_ppf(power)) ** 2 * (sd_c**2 + sd_t**2 / r)
                    / max(difference**2, 1e-300))
        if not n_normal <= N_MAX_APPROXIMATE:
            raise SolveInputError(lambda name: f"{name(*effect)} is too small an effect against {spread(name)}: the normal "
                                               f"approximation alone needs {n_normal:.3g} patients per arm (solved up to "
                                               f"{n_max:,})")
        approx = Approximation(n_normal, normal(difference, ceil(n_normal)), effect_of(difference), normal_method)
        n = smallest_reaching(lambda m: at(difference, m) >= power, n_max)
        if n is None:
            return Solution(**common, solved_for="n_per_arm", n_per_arm=None, power=math.nan, effect=effect_of(difference),
                            target_power=float(power), approximation=approx,
                            note=f"Power does not reach the target by {n_max:,} per arm. {note}".strip())
        return Solution(**common, solved_for="n_per_arm", n_per_arm=n, power=at(difference, n), effect=effect_of(difference),
                        target_power=float(power), n_continuous=_continuous_root(lambda x: exact(difference, x, r * x) - power, n),
                        approximation=approx, note=note)
    n = int(n_per_arm)
    scale = pooled_sd  # searched in SDs: the same question in any unit
    diff = scale * _root(lambda u: at(u * scale, n) - power)
    diff_normal = scale * _root(lambda u: normal(u * scale, n) - power)
    approx = Approximation(float(n), power, effect_of(diff_normal), normal_method)
    return Solution(**common, solved_for="effect", n_per_arm=n, power=at(diff, n), effect=effect_of(diff),
                    target_power=float(power), approximation=approx, note=note)


def _continuous_root(f, n: int) -> float | None:
    """The unrounded size where ``f`` (power minus target, arms ``x`` and ``ratio * x``) crosses 0 near ``n``.

    What R's ``pwr.t.test`` reports (e.g. 63.77 for d = 0.5 and 80% power); None without a crossing
    in ``[n - 1, n + 1]``.
    """
    lo, hi = max(n - 1.0, 2.0), n + 1.0
    if not (f(lo) < 0 <= f(hi)):
        return None
    return float(optimize.brentq(f, lo, hi, xtol=1e-10))


def _root(f) -> float:
    """The positive root of an increasing ``f`` (a power minus its target) on the effect's scale."""
    return positive_root(f)
