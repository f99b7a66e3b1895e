"""The registry of two-arm tests: name -> kernel, exact power, estimand and label.

Every test takes the two arms' outcomes along the last axis (NaN = not analysable), any leading
shape, and returns :class:`TrialStats`: per trial its p-value, decision at alpha, effect estimate
and confidence interval. Adding a test is one module and one :func:`register` call; the config's
allowed test names come from here.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import special

from trialsim.analysis import binary, conditional
from trialsim.analysis.continuous import mann_whitney, t_critical_value, t_reject, welch_t
from trialsim.registry import TESTS


class TrialStats:
    """Per-trial statistics of one test; arrays share the leading shape (endpoints..., trials).

    ``estimate`` is on the estimand's scale: the risk difference (treatment - control) of the
    chi-square and Boschloo tests, the log conditional MLE odds ratio (treatment vs control, as R's
    fisher.test; -inf / +inf at the edges of the conditional support) of Fisher's, the difference
    of means (treatment - control; of logs for log-scale endpoints) of a t test,
    P(treatment < control) + ties / 2 of Mann-Whitney. ``ci()`` gives the two-sided (1 - alpha)
    interval (NaN where the test has none); ``covers(truth)`` whether it contains ``truth``.
    ``extra`` holds further named per-trial values of the test (a Bayesian test's posterior
    probabilities), arrays of the same shape as ``estimate``.
    """

    __test__ = False

    def __init__(self, *, reject, valid, estimate, pvalue, alpha: float, ci=None, t_se=None, t_df=None,
                 extra: dict[str, np.ndarray] | None = None):
        self.reject = reject
        self.extra = {} if extra is None else extra
        self.valid = valid
        self.estimate = estimate
        self._pvalue = pvalue
        self._ci = ci
        self._t = (t_se, t_df)
        self.alpha = alpha
        self._widths = None

    @property
    def has_interval(self) -> bool:
        """Whether the test gives a confidence interval for its estimate."""
        return self._ci is not None or self._t[0] is not None

    @property
    def pvalue(self) -> np.ndarray:
        if callable(self._pvalue):
            self._pvalue = self._pvalue()
        return self._pvalue

    def ci(self) -> tuple[np.ndarray, np.ndarray]:
        if self._ci is None:
            se, df = self._t
            if se is None:
                nan = np.full(np.shape(self.estimate), np.nan)
                self._ci = (nan, nan)
            else:
                q = -special.stdtrit(df, self.alpha / 2.0)
                self._ci = (self.estimate - q * se, self.estimate + q * se)
        if callable(self._ci):
            self._ci = self._ci()
        return self._ci

    def widths(self) -> np.ndarray:
        """Each trial's interval width (NaN where none). t intervals take their critical value from
        :func:`~trialsim.analysis.continuous.t_critical_value` (interpolated, for mean widths), others ``ci()``."""
        if self._widths is None:
            se, df = self._t
            if se is not None and self._ci is None:
                self._widths = 2.0 * t_critical_value(df, self.alpha) * se
            else:
                low, high = self.ci()
                with np.errstate(invalid="ignore"):
                    self._widths = np.asarray(high, dtype=float) - np.asarray(low, dtype=float)
        return self._widths

    def covers(self, truth) -> np.ndarray:
        """Whether each trial's interval contains ``truth`` (False where there is no interval).

        ``truth`` may be an array broadcasting against the leading axes (one value per stacked row).
        """
        se, df = self._t
        if se is not None and self._ci is None:
            # the t interval covers truth iff the t test of "difference = truth" does not reject
            with np.errstate(invalid="ignore", divide="ignore"):
                t = (self.estimate - truth) / se
            ok = ~np.isnan(t)
            return ok & ~t_reject(np.where(ok, t, 0.0), np.where(ok, df, 1.0), self.alpha)
        low, high = self.ci()
        return (low <= truth) & (truth <= high)

    @staticmethod
    def concatenate(parts: list["TrialStats"]) -> "TrialStats":
        """The statistics of consecutive groups of trials (one call of a test each) as one, along the last axis."""
        return parts[0] if len(parts) == 1 else _Joined(parts)

    def take(self, index) -> "TrialStats":
        """The statistics of one leading row (an endpoint of a stacked call); ``parent`` keeps the stack."""
        pv = self._pvalue
        se, df = self._t
        ci = self._ci
        return _Row(self, index,
            reject=self.reject[index], valid=self.valid[index], estimate=self.estimate[index],
            pvalue=(lambda: self.pvalue[index]) if callable(pv) else pv[index], alpha=self.alpha,
            ci=None if ci is None else (lambda: tuple(c[index] for c in self.ci())),
            t_se=None if se is None else se[index], t_df=None if df is None else df[index],
            extra={name: values[index] for name, values in self.extra.items()},
        )


def _joined(values) -> np.ndarray:
    return np.concatenate([np.asarray(v) for v in values], axis=-1)


class _Joined(TrialStats):
    """Statistics of consecutive groups of trials as one (:meth:`TrialStats.concatenate`): every question is put to
    each group's own statistics and the answers joined, so a test's own ``TrialStats`` subclass keeps its behaviour.
    ``extra`` holds the values every group has."""

    def __init__(self, parts: list[TrialStats]):
        self.parts = parts
        shared = [name for name in parts[0].extra if all(name in p.extra for p in parts)]
        super().__init__(reject=_joined(p.reject for p in parts), valid=_joined(p.valid for p in parts),
                         estimate=_joined(p.estimate for p in parts), pvalue=lambda: _joined(p.pvalue for p in parts),
                         alpha=parts[0].alpha, extra={name: _joined(p.extra[name] for p in parts) for name in shared})

    @property
    def has_interval(self) -> bool:
        return all(p.has_interval for p in self.parts)

    def ci(self) -> tuple[np.ndarray, np.ndarray]:
        if self._ci is None:
            bounds = [p.ci() for p in self.parts]
            self._ci = (_joined(b[0] for b in bounds), _joined(b[1] for b in bounds))
        return self._ci

    def widths(self) -> np.ndarray:
        if self._widths is None:
            self._widths = _joined(p.widths() for p in self.parts)
        return self._widths

    def covers(self, truth) -> np.ndarray:
        return _joined(p.covers(truth) for p in self.parts)

    def take(self, index) -> TrialStats:
        return _Joined([p.take(index) for p in self.parts])


class _Row(TrialStats):
    """One row of a stacked :class:`TrialStats`, remembering the stack so rows can be judged together."""

    def __init__(self, parent: TrialStats, index, **kwargs):
        super().__init__(**kwargs)
        self.parent = parent
        self.index = index

    def widths(self) -> np.ndarray:
        """The row of the stack's widths: every row's in one pass (element by element, the same bits)."""
        return self.parent.widths()[self.index]


def covers_many(stats: list[TrialStats], truths: list[float]) -> list[np.ndarray]:
    """``[s.covers(t) for s, t in zip(stats, truths)]``, with rows of one stacked call judged in one pass."""
    out: list[np.ndarray | None] = [None] * len(stats)
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(stats):
        if isinstance(s, _Row):
            groups.setdefault(id(s.parent), []).append(i)
        else:
            out[i] = s.covers(truths[i])
    for members in groups.values():
        parent = stats[members[0]].parent
        rows = [stats[i].index for i in members]
        truth = np.full(parent.estimate.shape[0], np.nan)
        truth[rows] = [truths[i] for i in members]
        covered = parent.covers(truth.reshape((-1,) + (1,) * (parent.estimate.ndim - 1)))
        for i, r in zip(members, rows):
            out[i] = covered[r]
    return out


@dataclass(frozen=True)
class TestSpec:
    """A registered test.

    ``kinds``: endpoint kinds it applies to. ``run(x_control, x_treatment, alpha)`` -> TrialStats.
    ``stacked``: ``run`` accepts extra leading axes (several endpoints at once). ``estimand``: what
    ``estimate`` measures. ``exact_power(p_c, p_t, n_c, n_t, alpha, p_missing)`` where one exists.
    ``max_n``: the largest arm the test can run at (None = any). ``options(model, analysed)``: keyword
    arguments ``run`` also takes, read from the scenario (a Bayesian test's priors); None = none.
    ``needs_covariates``: the test adjusts for baseline covariates, and ``run`` takes them as
    ``covariates=(z_control, z_treatment)``, arrays ``(n_trials, n_arm, n_covariates)`` split by arm as the
    outcomes (NaN where the outcome is blanked). ``any_layout``: ``run`` gives the same bits whatever the
    memory layout of its arrays (it sums over patients in a fixed order), so the runner may hand it views
    of patient-major arrays, which it then uses without a copy. ``takes_means``: ``run`` also takes
    ``means=((n_c, mean_c), (n_t, mean_t))``, each arm's analysable counts and means of its rows
    (:func:`~trialsim.analysis.continuous.nan_mean`), which the runner computes once for every endpoint; a spec
    copied with another ``run`` (``dataclasses.replace``) keeps this flag and ``trialwise_up_to``, so set both to
    what that ``run`` does.
    ``trialwise_up_to``: while neither arm's array is wider than this (its patients, or every position where arm
    sizes vary between trials and the other arm's places are NaN), each trial's statistics are those of its own
    patients alone, to the last bit, whatever other trials share the call (element by element, per-trial solves and
    look-ups; no sum across trials, no shared iteration count, no BLAS product over trials). The runner then analyses
    several blocks of trials in one call; above it (default 0: not promised, as for plug-ins) one block per call.
    """

    __test__ = False

    name: str
    label: str
    kinds: tuple[str, ...]
    run: Callable[..., TrialStats]
    estimand: str
    reference: str = ""
    stacked: bool = False
    exact_power: Callable[..., float] | None = None
    max_n: int | None = None
    options: Callable[..., dict] | None = None
    needs_covariates: bool = False
    any_layout: bool = False
    takes_means: bool = False
    trialwise_up_to: float = 0


def register(spec: TestSpec) -> TestSpec:
    return TESTS.register(spec.name, spec)


# The specs this module registers itself (filled below): their code, exact power included, is this package's.
_OWN: dict[str, TestSpec] = {}


def _own(spec: TestSpec) -> TestSpec:
    _OWN[spec.name] = spec
    return spec


def is_shipped(name: str) -> bool:
    """Whether the test registered as ``name`` is this package's own (the very spec it registered), not a plug-in's:
    a plug-in's results can change under the same package version, so nothing of it is kept on disk. A plug-in
    built with :func:`register_binary` is not shipped, although its wrappers are defined here."""
    return name in _OWN and TESTS.get(name) is _OWN[name]


def get(name: str) -> TestSpec:
    return TESTS.get(name)


def names(kind: str | None = None) -> tuple[str, ...]:
    return tuple(n for n, s in TESTS.items() if kind is None or kind in s.kinds)


# ------------------------------------------------------------------------------------ binary tests
def newcombe_interval(e_c, n_c, e_t, n_t, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's hybrid score interval for p_t - p_c (method 10 of Newcombe 1998), vectorised."""
    z = -special.ndtri(alpha / 2.0)

    def wilson(e, n):
        with np.errstate(invalid="ignore", divide="ignore"):
            p = e / n
            centre = (p + z * z / (2 * n)) / (1 + z * z / n)
            half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return p, centre - half, centre + half

    pc, lc, uc = wilson(e_c, n_c)
    pt, lt, ut = wilson(e_t, n_t)
    d = pt - pc
    return d - np.sqrt((pt - lt) ** 2 + (uc - pc) ** 2), d + np.sqrt((ut - pt) ** 2 + (pc - lc) ** 2)


def _binary_runner(test: str) -> Callable[..., TrialStats]:
    def run(x_control, x_treatment, alpha: float, *, means=None) -> TrialStats:
        res = binary.binary_test(test, x_control, x_treatment, alpha=alpha, means=means)
        n_c, n_t = res.n_control.astype(float), res.n_treatment.astype(float)
        e_c, e_t = res.events_control.astype(float), res.events_treatment.astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            estimate = e_t / n_t - e_c / n_c
        return TrialStats(reject=res.reject, valid=~np.isnan(res.pvalue), estimate=estimate, pvalue=res.pvalue,
                          alpha=alpha, ci=lambda: newcombe_interval(e_c, n_c, e_t, n_t, alpha))

    return run


def _binary_exact(test: str) -> Callable[..., float]:
    def power(p_control, p_treatment, n_control, n_treatment, alpha, p_missing=0.0) -> float:
        return binary.exact_power(test, p_control, p_treatment, n_control, n_treatment, alpha=alpha, p_missing=p_missing)

    return power


@functools.lru_cache(maxsize=512)  # at most 3 x 61 x 61 values each (binary.DIRECT_FROM_N)
def _log_or_tables(n_control: int, n_treatment: int, alpha: float) -> np.ndarray:
    """The estimate, lower and upper tables of one size pair, flattened one after the other (read-only)."""
    tables = conditional.conditional_log_or_table(n_control, n_treatment, alpha=alpha)
    out = np.concatenate([np.asarray(t, dtype=float).ravel() for t in tables])
    out.flags.writeable = False
    return out


def _look_up_log_or(n_c, n_t, e_c, e_t, alpha: float) -> list[np.ndarray]:
    """Each trial's log odds ratio and interval from the tables of its arm sizes, in one look-up: the three
    values are three trials of one call, so the trials are grouped by size pair and the tables fetched once."""
    shape = np.shape(n_c)
    a, b = np.ravel(n_c), np.ravel(n_t)
    at = np.ravel(e_c * (n_t + 1) + e_t)
    size = (a + 1) * (b + 1)

    def table_for(n1: int, n2: int):
        return None if n1 == 0 or n2 == 0 else _log_or_tables(n1, n2, float(alpha))

    values = binary.gather_by_size_pair(np.tile(a, 3), np.tile(b, 3), np.concatenate([at, at + size, at + 2 * size]),
                                        table_for, key=("conditional_log_or", float(alpha)))
    return [v.reshape(shape) for v in np.split(values, 3)]


def _fisher_run(x_control, x_treatment, alpha: float, *, means=None) -> TrialStats:
    """Fisher's p-values with the conditional MLE odds ratio and its exact interval (R's fisher.test), log scale."""
    res = binary.binary_test("fisher", x_control, x_treatment, alpha=alpha, means=means)
    n_c, n_t, e_c, e_t = res.n_control, res.n_treatment, res.events_control, res.events_treatment
    if max(np.shape(x_control)[-1], np.shape(x_treatment)[-1]) > binary.DIRECT_FROM_N:
        # large arms: per distinct observed table, as the p-values
        estimate, low, high = conditional.conditional_log_or(n_c, n_t, e_c, e_t, alpha=alpha)
        ci = (low, high)
    else:
        estimate, low, high = _look_up_log_or(n_c, n_t, e_c, e_t, alpha)
        ci = (low, high)
    return TrialStats(reject=res.reject, valid=~np.isnan(res.pvalue), estimate=estimate, pvalue=res.pvalue,
                      alpha=alpha, ci=ci)


def register_binary(name: str, label: str, table_builder, *, reference: str = "", direct=None, max_n: int | None = None,
                    estimand: str = "risk_difference", run: Callable[..., TrialStats] | None = None, region=None,
                    disk_cache: bool = False, takes_means: bool | None = None, trialwise_up_to: float = 0) -> TestSpec:
    """Register a binary test defined by its p-value table (one per pair of analysable sizes).

    Its estimate is the risk difference with Newcombe's interval unless ``run`` (with ``estimand``)
    gives the test its own. ``direct``, ``region`` and ``disk_cache``: see
    :func:`trialsim.analysis.binary.register_table_test` (a test with a slow table builder gives a
    region builder and keeps both on disk, as Boschloo does). ``takes_means`` (:class:`TestSpec`): the default
    runner takes them; a ``run`` of one's own says whether it does (default: not). ``trialwise_up_to``: see
    :class:`TestSpec`.
    """
    binary.register_table_test(name, table_builder, direct, region=region, disk_cache=disk_cache)
    if takes_means is None:
        takes_means = run is None
    return register(TestSpec(name, label, ("binary",), run or _binary_runner(name), estimand, reference,
                             exact_power=_binary_exact(name), max_n=max_n, takes_means=takes_means,
                             trialwise_up_to=trialwise_up_to))


# Per arm. Its rejection region (exact power, sample size, MDE) costs ~0.1 s at 500 vs 500; simulated
# trials above binary.DIRECT_FROM_N per arm get p-values per distinct observed table.
BOSCHLOO_MAX_N = 500

_own(register_binary("fisher", "Fisher exact", binary.fisher_table, direct=binary.fisher_direct,
                     estimand="log_odds_ratio", run=_fisher_run, takes_means=True,
                     # larger arms: p-values and odds ratios per distinct table of the call, in sums as wide as its widest
                     trialwise_up_to=binary.DIRECT_FROM_N,
                     reference="Fisher RA (1935) The logic of inductive inference. J R Stat Soc 98:39-82"))
_own(register_binary("boschloo", "Boschloo exact", binary.boschloo_table, direct=binary.boschloo_direct,
                     max_n=BOSCHLOO_MAX_N, region=binary.boschloo_region, disk_cache=True,
                     trialwise_up_to=binary.DIRECT_FROM_N,  # larger arms: p-values of the tables new to the process
                     reference="Boschloo RD (1970) Raised conditional level of significance for the 2x2-table. "
                               "Stat Neerl 24:1-9"))
_own(register_binary("chi2", "Chi-square (z)", binary.chi2_table, direct=binary.chi2_pvalues,
                     trialwise_up_to=math.inf,
                     reference="Pearson K (1900) Philos Mag 50:157-175"))
_own(register_binary("chi2_yates", "Chi-square (Yates)", binary.chi2_yates_table, direct=binary.chi2_yates_pvalues,
                     trialwise_up_to=math.inf,
                     reference="Yates F (1934) Contingency tables involving small numbers and the chi-squared test. "
                               "Suppl J R Stat Soc 1:217-235"))
_own(register_binary("chi2_n1", "Chi-square (N-1)", binary.chi2_n1_table, direct=binary.chi2_n1_pvalues,
                     trialwise_up_to=math.inf,
                     reference="Campbell I (2007) Chi-squared and Fisher-Irwin tests of two-by-two tables with small sample "
                               "recommendations. Stat Med 26:3661-3675"))


# -------------------------------------------------------------------------------- continuous tests
def _welch(x_control, x_treatment, alpha: float, *, means=None) -> TrialStats:
    res = welch_t(x_control, x_treatment, means=means)
    return TrialStats(reject=res.reject(alpha), valid=res.valid(), estimate=res.difference,
                      pvalue=lambda: res.pvalue, alpha=alpha, t_se=res.se, t_df=res.df)


def _mann_whitney(x_control, x_treatment, alpha: float) -> TrialStats:
    res = mann_whitney(x_control, x_treatment, method="auto")
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = res.statistic / (res.n_control * res.n_treatment)
    return TrialStats(reject=res.reject(alpha), valid=res.valid(), estimate=estimate, pvalue=res.pvalue, alpha=alpha)


register(TestSpec("welch_log", "Welch t (log)", ("continuous",), _welch, "difference",
                  "Welch BL (1947) Biometrika 34:28-35", stacked=True, any_layout=True, takes_means=True,
                  trialwise_up_to=math.inf))
register(TestSpec("mann_whitney", "Mann-Whitney", ("continuous", "ordinal"), _mann_whitney, "p_treatment_lower",
                  "Mann HB, Whitney DR (1947) Ann Math Stat 18:50-60", stacked=True, any_layout=True,
                  trialwise_up_to=math.inf))


def estimand_label(estimand: str, scale: str) -> str:
    """What a test's estimate means, for tables: 'risk difference', 'ratio of geometric means', ..."""
    if estimand == "difference":
        return "ratio of geometric means" if scale == "log" else "difference in means"
    labels = {"risk_difference": "risk difference", "log_odds_ratio": "odds ratio",  # reported as exp of the log
              "p_treatment_lower": "P(treatment < control)",
              "log_conditional_odds_ratio": "covariate-adjusted odds ratio"}  # reported as exp of the log
    return labels.get(estimand, estimand)


def z_two_sided(alpha: float) -> float:
    return float(-special.ndtri(alpha / 2.0)) if 0 < alpha < 1 else math.nan


register(TestSpec("welch", "Welch t", ("continuous",), _welch, "difference",
                  "Welch BL (1947) Biometrika 34:28-35", stacked=True, any_layout=True, takes_means=True,
                  trialwise_up_to=math.inf))
