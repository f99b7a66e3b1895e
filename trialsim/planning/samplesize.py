"""Smallest n per arm reaching a target power, for every endpoint and test.

Exact (a binary endpoint whose family gives its law, a test with a registered exact power): exact
power of a discrete test saw-tooths in n (the attainable significance levels jump), so two answers
are reported: the first n whose power reaches the target, and the smallest n from which power never
drops below it again, checked up to a stated horizon. Tests with a size limit (``TestSpec.max_n``)
are enumerated up to it.

Simulated (every other pair): stochastic root-finding on simulated power
(:mod:`trialsim.planning.search`) in the complete-case scenario resized to each grid size, through
the engine with the run's seed and block layout. A locating pass (a quarter of the trials, a wide
grid around the normal approximation on the model's own effect) and, for each target power, a
refining pass (all the trials, four sizes of a fixed ladder spread over -15%/+18% of the located
root) with a probit fit and a 95% Monte Carlo interval. The grids depend only on the pair, the target and
the settings, so the same pair, target, seed and trials give the same n in every command.

Every answer is per analysable patient; ``n_enrolled = ceil(n / (1 - dropout))`` allows for loss
to follow-up (:func:`trialsim.planning.model.dropout`). The closed-form answer
(:mod:`trialsim.planning.analytic`) is reported alongside and labelled as such.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from trialsim.analysis import registry as tests
from trialsim.analysis.analytic import two_proportions_sample_size_normal
from trialsim.config.schema import MAX_TARGET_POWER, Scenario
from trialsim.cache import keep, kept
from trialsim.engine import map_calls
from trialsim.exact import shipped_exact_power
from trialsim.labels import EXTRAPOLATED, aligned_table, extrapolated, fmt_n, fmt_power, is_missing, pct, power_with_se, target_pct, test_label
from trialsim.model import build_model
from trialsim.planning.analytic import analytic_sample_size, model_moments, start_size
from trialsim.planning.model import (
    Pair,
    binary_rates,
    complete_case,
    design_ratio,
    dropout as endpoint_dropout,
    endpoint_tests,
    exact_available,
    exact_power,
    exact_powers_in_pieces,
    inflate,
    n_treatment_for,
    resolve_seed,
)
from trialsim.planning.search import Job, fit_probit, rejections, size_point

# The exact scan checks power up to max(HORIZON_FACTOR * n_first, n_first + HORIZON_MIN_EXTRA). Measured in 537
# scans to 2 x n_first (grids and random designs: control rates 1-99%, risk ratios 0.1-0.85 either way, treatment
# arm 1, 2, 0.5 and 3 times the control arm, alpha 1-10%, targets 70-95%; Fisher and chi-square to 1,500 per arm,
# Boschloo to 400), power never fell back below the target more than 15 sizes after n_first (Fisher, 50% vs 32.5%,
# treatment arm half the control arm, 90%: first at 248, last below at 263), nor, from 100 per arm, by more than
# 6.1% of n_first (that case); below 100 per arm (314 of the scans) by more than 4 sizes (n_first 94). The horizon
# reaches over three times as far as the furthest dip seen from 100 per arm (20% of n_first) and five times below
# (20 sizes). It was 1.5 x n_first, which was most of the exact work of a machine's first report.
HORIZON_FACTOR = 1.2
HORIZON_MIN_EXTRA = 20
# It starts where the normal approximation gives START_BELOW less than the target, if exact power
# there is at least START_MARGIN below the target (see scan_start).
START_BELOW = 0.25
START_MARGIN = 0.15
# Above STRIDE_FROM per arm, sizes before the target whose power is more than STRIDE_MARGIN below it are stepped
# over in strides of n // STRIDE_DIVISOR (see exact_scan). Measured on every size from 100 per arm to the normal
# approximation's n for 97% power (63 random designs as above, Fisher and chi-square), a size inside a stride rose
# above both its ends by up to 6.3 points (Fisher at 97.7% vs 99.7%, treatment arm half the control arm, alpha 10%:
# 211 per arm, between 210 and 214), against at most 2.3 points elsewhere: the margin stays at over twice that.
# From FINE_FROM per arm the margin is FINE_MARGIN: measured on every step from 300 per arm to the normal
# approximation's n for 97% power (1,548 random designs for Boschloo to 500 per arm, 113 for Fisher and chi-square to
# 2,000; rates 1-99%, risk ratios 0.1-0.9 either way, treatment arm 1, 2 and 0.5 times the control arm, alpha 1-10%),
# no size rose above both ends of its step by more than 1.5 points (Fisher at 7.0% vs 3.15%, 638 per arm).
STRIDE_FROM = 100
STRIDE_DIVISOR = 50
STRIDE_MARGIN = 0.15
FINE_FROM = 300
FINE_MARGIN = 0.05


def stride_margin(n: int) -> float:
    """How far below the target power must lie at both ends of a step from ``n`` for the sizes inside to be skipped."""
    return FINE_MARGIN if n >= FINE_FROM else STRIDE_MARGIN
# Smallest size a simulated search considers (a t test needs 2 per arm, Mann-Whitney 4 for p < 0.05).
N_MIN_SIMULATED = 3
# The sizes simulated searches use: every integer up to LADDER_START, then steps of LADDER_STEP (5%).
# A fixed ladder makes the grids of different pairs share sizes (each size is simulated once).
LADDER_START = 20
LADDER_STEP = 1.05
LOCATE_POINTS = 10
LOCATE_RANGE = (0.5, 1.5)  # x the normal approximation's n for 50% power, and for 95%
REFINE_RANGE = (0.85, 1.18)
# Sizes of a refining pass, spread over REFINE_RANGE. With common random numbers a trial's rejections at
# neighbouring sizes are strongly correlated, so sizes between these add almost no information about the
# root: refitting the same simulated trials on 4 of the 7 ladder sizes gave the same 95% interval (the
# default config's drain marker mean, Welch on logs, 80%, 2,000 trials, seeds 1 and 2: widths 3.50 -> 3.60
# and 4.39 -> 4.22 per arm) at 4/7 of the cost. The interval is the fit's own (trials as clusters).
REFINE_POINTS = 4

SAMPLE_SIZE_COLUMNS = [
    "endpoint", "test", "label", "family", "primary", "target_power", "alpha", "ratio", "method", "reachable",
    "n", "n_treatment", "n_first", "n_stable", "n_low", "n_high", "horizon", "power_at_n", "power_at_n_se",
    "n_analytic", "analytic_method", "dropout", "n_enrolled", "n_enrolled_treatment", "n_max", "p_control",
    "p_treatment", "note",
]


@dataclass(frozen=True)
class ExactScan:
    """Exact power at every n per arm from ``n[0]`` (where the scan started) to the horizon ``n[-1]``."""

    n: np.ndarray
    power: np.ndarray
    target: float
    n_first: int | None
    n_stable: int | None

    @property
    def horizon(self) -> int:
        return int(self.n[-1])

    @property
    def start(self) -> int:
        return int(self.n[0])


def scan_start(test: str, p_control: float, p_treatment: float, *, power: float, alpha: float, ratio: float = 1.0,
               n_min: int = 2, n_max: int | None = None) -> int:
    """Where an exact scan for ``power`` may start: ``n_min``, or a size well below the target.

    The scan skips the sizes whose normal-approximation power is more than :data:`START_BELOW` below
    the target, provided the exact power at the first size scanned is itself at least
    :data:`START_MARGIN` below it (else it starts at ``n_min``): a discrete test's power does not
    spike that far above its trend. Saves most of the work of a scan (Boschloo builds a table per
    size). ``ExactScan.start`` records where the scan began.
    """
    lower = power - START_BELOW
    if p_control == p_treatment or lower <= alpha:
        return n_min
    n = two_proportions_sample_size_normal(p_control, p_treatment, power=lower, alpha=alpha, ratio=ratio)
    n = math.floor(min(n, n_max if n_max is not None else math.inf))  # a tiny effect: never an exact power far past n_max
    if n <= n_min + 10:
        return n_min
    if exact_power(test, p_control, p_treatment, n, n_treatment_for(n, ratio), alpha=alpha) > power - START_MARGIN:
        return n_min
    return n


def exact_scan(test: str, p_control: float, p_treatment: float, *, power: float, alpha: float, ratio: float = 1.0,
               n_max: int = 5000, n_min: int = 2, horizon_factor: float = HORIZON_FACTOR,
               start: int | None = None) -> ExactScan:
    """Scan the registered exact power of ``test`` upward from :func:`scan_start` (no missing data).

    Returns the first n reaching ``power`` and the smallest n from which power stays at or above
    it up to the horizon ``max(horizon_factor * n_first, n_first + HORIZON_MIN_EXTRA)`` (at most ``n_max``); both
    None when ``power`` is not reached by ``n_max``. ``start`` overrides where the scan begins.

    From the first size reaching the target to the horizon every size is computed (a dip below the
    target can be deep: Boschloo's power at 0.05 vs 0.01 falls from 34.7% at 109 per arm to 23.7% at
    110). Before it, above :data:`STRIDE_FROM` per arm, the scan steps by ``n // STRIDE_DIVISOR`` while
    power stays more than :func:`stride_margin` below the target at both ends of a step (no size inside a step was
    seen to rise that far above both ends), and computes the sizes in between otherwise.
    Points are cached, so scans for several targets (or several commands) share their sizes.
    """
    seen, n_first = scan_to_target(test, p_control, p_treatment, power=power, alpha=alpha, ratio=ratio, n_max=n_max,
                                   n_min=n_min, start=start)
    for n in horizon_sizes(n_first, n_max, horizon_factor):
        seen[n] = exact_power(test, p_control, p_treatment, n, n_treatment_for(n, ratio), alpha=alpha)
    return finish_scan(seen, power, n_first)


def scan_to_target(test: str, p_control: float, p_treatment: float, *, power: float, alpha: float, ratio: float = 1.0,
                   n_max: int = 5000, n_min: int = 2, start: int | None = None,
                   known: Mapping[int, float] | None = None) -> tuple[dict[int, float], int | None]:
    """The first part of :func:`exact_scan`: the sizes computed up to the first reaching ``power`` (None: not by
    ``n_max``), as ``{n: power}``. ``known`` holds powers already computed by size (the same values: the scan visits
    the same sizes whether or not they are known)."""
    known = {} if known is None else known

    def at(n: int) -> float:
        if n in known:
            return known[n]
        return exact_power(test, p_control, p_treatment, n, n_treatment_for(n, ratio), alpha=alpha)

    def stride(n: int) -> int:
        return 1 if n < STRIDE_FROM else max(1, n // STRIDE_DIVISOR)

    first_n = start if start is not None else scan_start(test, p_control, p_treatment, power=power, alpha=alpha,
                                                         ratio=ratio, n_min=n_min, n_max=n_max)
    first_n = min(first_n, n_max)  # out of reach well before n_max: the power at n_max says by how much
    seen: dict[int, float] = {}
    n, n_first = first_n, None
    while n <= n_max:  # up to the first size reaching the target
        seen[n] = at(n)
        if seen[n] >= power:
            n_first = n
            break
        ahead = min(n + stride(n), n_max)
        if ahead > n + 1 and seen[n] < power - stride_margin(n):
            seen[ahead] = at(ahead)
            if seen[ahead] < power - stride_margin(n):  # far below the target at both ends: skip the sizes between
                n = ahead
                continue
        n += 1
    return seen, n_first


def horizon_sizes(n_first: int | None, n_max: int, horizon_factor: float = HORIZON_FACTOR) -> range:
    """The sizes after ``n_first`` that :func:`exact_scan` checks, every one up to its horizon (dips below the target
    can be deep: Boschloo, 11 points)."""
    if n_first is None:
        return range(0)
    horizon = min(n_max, max(math.ceil(horizon_factor * n_first), n_first + HORIZON_MIN_EXTRA))
    return range(n_first + 1, horizon + 1)


def finish_scan(seen: dict[int, float], power: float, n_first: int | None) -> ExactScan:
    """The :class:`ExactScan` of the computed sizes: ``n_stable``, the size after the last one below ``power``."""
    n_all = np.array(sorted(seen), dtype=int)
    p_all = np.array([seen[k] for k in n_all])
    n_stable = None
    if n_first is not None:
        below = np.flatnonzero(p_all < power)
        n_stable = int(n_all[below[-1]] + 1) if below.size else int(n_all[0])
        if n_stable > n_all[-1]:  # below the target at the horizon itself: no stable n within it
            n_stable = None
    return ExactScan(n_all, p_all, power, n_first, n_stable)


@dataclass(frozen=True)
class SampleSizeResult:
    """The sample size of one (endpoint, test) for one target power.

    ``n`` is the recommended analysable size of the control arm: for exact answers the n from
    which power stays above the target (``n_stable``), for simulated answers the estimated root
    (``n_first``, with the 95% Monte Carlo interval ``n_low``-``n_high``). ``n_enrolled`` inflates
    ``n`` for the expected ``dropout``. ``n_analytic`` is the closed-form answer (``analytic_method``).
    """

    endpoint: str
    test: str
    label: str
    family: str  # the endpoint's kind: binary, continuous, ordinal
    primary: bool
    target_power: float
    alpha: float
    ratio: float
    method: str  # "exact" | "monte_carlo" | "analytic" (not simulated)
    reachable: bool
    n_first: int | None
    n_stable: int | None
    n_low: int | None
    n_high: int | None
    horizon: int | None
    power_at_n: float
    power_at_n_se: float
    n_analytic: int | None
    analytic_method: str
    dropout: float
    n_max: int
    p_control: float = math.nan
    p_treatment: float = math.nan
    note: str = ""
    curve: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def n(self) -> int | None:
        return self.n_stable if self.method == "exact" else self.n_first

    @property
    def n_treatment(self) -> int | None:
        return None if self.n is None else n_treatment_for(self.n, self.ratio)

    @property
    def n_enrolled(self) -> int | None:
        return inflate(self.n, self.dropout)

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "curve"}
        out.update(n=self.n, n_treatment=self.n_treatment, n_enrolled=self.n_enrolled,
                   n_enrolled_treatment=inflate(self.n_treatment, self.dropout))
        return {k: out[k] for k in SAMPLE_SIZE_COLUMNS}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.to_dict()], columns=SAMPLE_SIZE_COLUMNS)

    def summary(self) -> str:
        return describe(self.to_dict())


def describe(row: dict) -> str:
    """One plain-language sentence for a sample-size row (a dict of :data:`SAMPLE_SIZE_COLUMNS`)."""
    head = f"{row['label']}, {test_label(row['test'])}, {target_pct(row['target_power'])} power"
    if not row["reachable"]:
        return f"{head}: {how_found(row)}. {row['note']}".strip()
    how = f"exact; {sawtooth(row)}" if row["method"] == "exact" else how_found(row)
    text = (f"{head}: {sizes(row['n'], row['n_treatment'])} analysable per arm ({how}), "
            f"enrol {sizes(row['n_enrolled'], row['n_enrolled_treatment'])} for {pct(row['dropout'], 1)} loss")
    if not is_missing(row["n_analytic"]):
        text += f"; {analytic_kind(row['analytic_method'])}: {int(row['n_analytic']):,}"
    return text + "."


def sizes(n_control, n_treatment) -> str:
    """``"367"`` for equal arms, ``"200 + 400"`` otherwise; ``"-"`` when missing."""
    if is_missing(n_control):
        return "-"
    same = is_missing(n_treatment) or int(n_treatment) == int(n_control)
    return fmt_n(n_control) if same else f"{fmt_n(n_control)} + {fmt_n(n_treatment)}"


def how_found(row: dict) -> str:
    """How a sample-size row was found, in a few words."""
    if row["method"] == "analytic":
        return "not simulated"
    if not row["reachable"]:
        return f"not reached by {sizes(row['n_max'], n_treatment_for(int(row['n_max']), row['ratio']))}"
    if row["method"] == "exact":
        return f"exact, checked to {fmt_n(row['horizon'])}" + (" (the limit)" if row["horizon"] == row["n_max"] else "")
    return f"simulated, 95% MC interval {fmt_n(row['n_low'])}-{fmt_n(row['n_high'])}"


def sawtooth(row: dict) -> str:
    """What the exact scan saw: where power first reaches the target and from where it stays there."""
    target = target_pct(row["target_power"])
    first, stable, horizon = fmt_n(row["n_first"]), fmt_n(row["n_stable"]), fmt_n(row["horizon"])
    if first == stable:
        return f"power reaches {target} at {first} and stays there up to {horizon}"
    return f"power first reaches {target} at {first}, drops below it again and stays at or above it from {stable} up to {horizon}"


ANALYTIC_KINDS = {
    "normal approximation": "two proportions: normal approximation (pooled z, no continuity correction; Fleiss, as "
                            "Hmisc::bsamsize)",
    "noncentral t": "t tests: noncentral t of the pooled t test on the model's standardised difference",
    "Noether": "Mann-Whitney: Noether (1987) normal approximation",
}


def analytic_kind(method: str) -> str:
    """The short name of a closed form (a key of :data:`ANALYTIC_KINDS`), else ``"analytic"``."""
    return next((k for k in ANALYTIC_KINDS if str(method).startswith(k)), "analytic")


def power_at_n(row: dict) -> str:
    if is_missing(row["power_at_n"]) or row["n"] is None or is_missing(row["n"]):
        return "-"
    if row["method"] == "exact":
        return fmt_power(row["power_at_n"]) + " exact"
    return power_with_se(row["power_at_n"], row["power_at_n_se"]) + " fitted"


def sample_size_lines(frame: pd.DataFrame) -> list[str]:
    """A sample-size frame (:data:`SAMPLE_SIZE_COLUMNS`) as an aligned table with numbered notes.

    Endpoints and tests by their labels; exact answers are the n from which power stays at or above
    the target (the saw-tooth is in a note where it dips), simulated ones the fitted root with its
    95% Monte Carlo interval; the closed form beside them.
    """
    header = ["Endpoint", "Test", "Target", "n per arm", "Enrol per arm", "Power at n", "How found", "Closed form"]
    rows, notes = [], []
    last = (None, None)
    for row in frame.to_dict("records"):
        how = how_found(row)
        note = ""
        if row["method"] == "exact" and row["reachable"] and row["n_first"] != row["n_stable"]:
            note = sawtooth(row)[0].upper() + sawtooth(row)[1:] + "."
        elif not row["reachable"] and row["method"] != "analytic":
            note = str(row["note"])
        elif extrapolated(row):
            note = extrapolated(row)
        if note:
            notes.append(note)
            how += f" [{len(notes)}]"
        enrol = "-" if row["n"] is None or is_missing(row["n"]) else (
            f"{sizes(row['n_enrolled'], row['n_enrolled_treatment'])} "
            + (f"({pct(row['dropout'], 1)} loss)" if row["dropout"] else "(no loss)"))
        closed = "-" if is_missing(row["n_analytic"]) else f"{int(row['n_analytic']):,} {analytic_kind(row['analytic_method'])}"
        key = (row["endpoint"], row["test"])
        rows.append([row["label"] if key[0] != last[0] else "", test_label(row["test"]) if key != last else "",
                     target_pct(row["target_power"]), sizes(row["n"], row["n_treatment"]), enrol, power_at_n(row), how, closed])
        last = key
    lines = aligned_table(header, rows, right={2, 3})
    kinds = {analytic_kind(m) for m in frame["analytic_method"].dropna()}
    lines.append("")
    if (frame["method"] == "exact").any():
        lines.append("Exact: the n from which exact power stays at or above the target up to the size checked (a "
                     "discrete test's power saw-tooths in n).")
    if (frame["method"] == "monte_carlo").any():
        lines.append("Simulated: root of a probit fit to simulated power, with its 95% Monte Carlo interval.")
    lines += [f"Closed form, {ANALYTIC_KINDS[k]}." for k in ANALYTIC_KINDS if k in kinds]
    lines += [f"[{i}] {text}" for i, text in enumerate(notes, 1)]
    return lines


@dataclass(frozen=True)
class SampleSizeTable:
    """Sample sizes for several (endpoint, test, target) combinations, with the settings used."""

    results: tuple[SampleSizeResult, ...]
    seed: int
    n_sims: int
    settings: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.to_dict() for r in self.results], columns=SAMPLE_SIZE_COLUMNS)

    def curves_frame(self) -> pd.DataFrame:
        """The exact scans behind the exact answers: endpoint, test, n_per_arm, power."""
        frames = [r.curve.assign(endpoint=r.endpoint, test=r.test) for r in self.results
                  if r.curve is not None and r.target_power == max(x.target_power for x in self.results
                                                                    if (x.endpoint, x.test) == (r.endpoint, r.test))]
        if not frames:
            return pd.DataFrame(columns=["endpoint", "test", "n_per_arm", "power"])
        return pd.concat(frames, ignore_index=True)[["endpoint", "test", "n_per_arm", "power"]]

    def get(self, endpoint: str, test: str, power: float) -> SampleSizeResult:
        for r in self.results:
            if (r.endpoint, r.test) == (endpoint, test) and abs(r.target_power - power) < 1e-9:
                return r
        raise KeyError((endpoint, test, power))

    def summary(self) -> str:
        """The table of :func:`sample_size_lines`."""
        return "\n".join(sample_size_lines(self.to_frame()))


def sample_size(scenario: Scenario, endpoint: str, test: str | None = None, *, power: float = 0.8, ratio: float | None = None,
                dropout: float | None = None, n_max: int = 1500, n_sims: int = 2000, seed: int | None = None,
                n_jobs: int = 1, progress: bool = False) -> SampleSizeResult:
    """The smallest n per arm with ``power`` for one endpoint and test (default: the endpoint's first test).

    See :func:`sample_sizes` for the parameters.
    """
    test = test or build_model(scenario).endpoint(endpoint).tests[0]
    table = sample_sizes(scenario, endpoint=endpoint, test=test, power=(power,), ratio=ratio, dropout=dropout, n_max=n_max,
                         n_sims=n_sims, seed=seed, n_jobs=n_jobs, progress=progress)
    return table.results[0]


def target_power_problem(power: float, alpha: float) -> str | None:
    """Why ``power`` is no target power for a design at two-sided ``alpha`` (the end of a message), or None."""
    if alpha < power <= MAX_TARGET_POWER:
        return None
    return (f"is not allowed: a target power lies above design.alpha = {alpha:g} (the power of no effect) and at most "
            f"{MAX_TARGET_POWER:g}")


def sample_sizes(
    scenario: Scenario,
    *,
    endpoint: str | None = None,
    test: str | None = None,
    power: float | Sequence[float] = (0.8, 0.9),
    ratio: float | None = None,
    dropout: float | None = None,
    n_max: int = 1500,
    n_sims: int = 2000,
    seed: int | None = None,
    n_jobs: int = 1,
    progress: bool = False,
    simulate: bool | Collection[Pair] = True,
) -> SampleSizeTable:
    """Sample sizes per analysable patient for every endpoint and test (or one), for each target power.

    Parameters
    ----------
    scenario : Scenario
        The design and assumptions; ``design.alpha`` is the two-sided level.
    endpoint, test : str, optional
        Restrict to one endpoint (``"all"`` or None: every endpoint) and one test.
    power : float or sequence of float
        Target power(s) in (0, 1).
    ratio : float, optional
        ``n_treatment / n_control`` (treatment size rounded half up); default: the design's.
    dropout : float, optional
        Expected fraction lost to follow-up; default: from the scenario, per endpoint
        (:func:`trialsim.planning.model.dropout`, the larger of the two arms).
    n_max : int
        Largest n per arm searched.
    n_sims : int
        Simulated trials of each refining pass (the locating pass uses a quarter, at least 200).
    seed : int, optional
        Root seed; default ``run.seed``, else drawn (recorded in ``.seed``).
    n_jobs : int
        Parallel workers for the simulated searches (results do not depend on it).
    progress : bool
        Show progress bars.
    simulate : bool or collection of (endpoint, test)
        False: exact and analytic answers only (the others get method "analytic"); a collection:
        simulate only those pairs.

    Returns
    -------
    SampleSizeTable
    """
    targets = tuple(sorted({float(p) for p in np.atleast_1d(power)}))
    for p in targets:
        problem = target_power_problem(p, scenario.design.alpha)
        if problem:
            raise ValueError(f"power = {p:g} {problem}")
    ratio = design_ratio(scenario) if ratio is None else ratio
    if not ratio > 0:
        raise ValueError(f"ratio must be positive, got {ratio!r}")
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    seed = resolve_seed(scenario, seed)
    model = build_model(scenario)
    pairs = endpoint_tests(model, endpoint, test)
    alpha = scenario.design.alpha

    def base(a, t, target, an, cap) -> dict:
        drop = float(dropout) if dropout is not None else endpoint_dropout(model, a.name)
        return dict(endpoint=a.name, test=t, label=a.label, family=a.kind, primary=a.primary, target_power=target,
                    alpha=alpha, ratio=ratio, n_analytic=an.n, analytic_method=an.method, dropout=drop, n_max=cap)

    results: dict[tuple[str, str, float], SampleSizeResult] = {}
    searched, scans = [], []
    for a, t in pairs:
        cap = control_cap(t, n_max, ratio)
        if exact_available(model, a.name, t):
            scanned = []
            rates = binary_rates(model, a.name)
            p_c, p_t = rates.p_control, rates.p_treatment
            for target in targets:
                an = analytic_sample_size(model, a.name, t, power=target, ratio=ratio, moments=None)
                common = base(a, t, target, an, cap) | dict(p_control=p_c, p_treatment=p_t)
                early = _exact_unscanned(t, ratio, cap, common)
                if early is not None:
                    results[(a.name, t, target)] = early
                else:
                    scanned.append((target, common))
            if scanned:
                scans.append((a.name, t, cap, p_c, p_t, scanned))
        else:
            searched.append((a, t, cap))
    cc = complete_case(scenario) if searched else None
    with ThreadPoolExecutor(max_workers=1) as thread:
        # the model's moments (one large trial, simulated here) while the workers run the exact scans
        moments_later = thread.submit(model_moments, cc, seed=seed) if searched else None
        # exact scans, one call per pair (its targets share their sizes), spread over the workers
        done = parallel_scans([(t, p_c, p_t, tuple(target for target, _ in scanned), alpha, ratio, cap)
                               for _, t, cap, p_c, p_t, scanned in scans],
                              n_jobs=n_jobs, backend=scenario.run.backend, scheduler=scenario.run.scheduler)
        moments = moments_later.result() if searched else None
    for (name, t, cap, _, _, scanned), pair_scans in zip(scans, done):
        for (target, common), scan in zip(scanned, pair_scans):
            results[(name, t, target)] = _exact_scanned(t, ratio, cap, common, scan)
    if searched:
        cc_model = build_model(cc)
        chosen = simulate if isinstance(simulate, bool) else {tuple(p) for p in simulate}

        def common(a, t, target, cap):
            an = analytic_sample_size(cc_model, a.name, t, power=target, ratio=ratio, moments=moments)
            return base(a, t, target, an, cap)

        results.update(_simulated(cc, cc_model, searched, targets, chosen, common, moments=moments, ratio=ratio,
                                  n_max=n_max, n_sims=n_sims, seed=seed, n_jobs=n_jobs, progress=progress))
    ordered = tuple(results[(a.name, t, p)] for a, t in pairs for p in targets)
    return SampleSizeTable(ordered, seed=seed, n_sims=n_sims,
                           settings={"power": list(targets), "ratio": ratio, "n_max": n_max, "n_sims": n_sims,
                                     "locate_sims": locate_sims(n_sims), "dropout": dropout, "seed": seed})


def control_cap(test: str, n_max: int, ratio: float = 1.0) -> int:
    """The largest control arm searched: ``n_max``, or less where the test's size limit binds either arm."""
    limit = tests.get(test).max_n
    if limit is None:
        return n_max
    n = min(n_max, limit, math.floor((limit + 0.5) / ratio) + 1)
    while n > 1 and n_treatment_for(n, ratio) > limit:
        n -= 1
    return n


def approach_targets(test: str, p_control: float, p_treatment: float, targets: Sequence[float], alpha: float,
                     ratio: float, cap: int, known: Mapping[int, float] | None = None
                     ) -> list[tuple[dict[int, float], int | None]]:
    """:func:`scan_to_target` for each target power (in one process, so the targets share computed sizes: the
    approaches to 80% and 90% overlap, and apart they cost a quarter more); ``known``: powers computed ahead."""
    return [scan_to_target(test, p_control, p_treatment, power=target, alpha=alpha, ratio=ratio, n_max=cap,
                           known=known) for target in targets]


# An approach runs in one process and computes, one by one, every size whose power is within stride_margin(n) of its
# target: for Boschloo at hundreds per arm (a table per size) that was the longest serial step of a machine's first
# report (30 s of its 47 s of sample sizes, one core idle). The sizes it is predicted to visit that way, from
# AHEAD_RANGE[0] x the normal approximation's n at (target - margin) to AHEAD_RANGE[1] x its n at the target (from
# FINE_FROM per arm the finer margin's n),
# are computed first in pieces on every worker; the approach then looks them up. A wrong prediction costs time only.
AHEAD_RANGE = (0.9, 1.1)


def ahead_sizes(job: tuple) -> list[int]:
    """The sizes of ``job`` computed before its approach (see :data:`AHEAD_RANGE`); none for equal rates."""
    test, p_c, p_t, targets, alpha, ratio, cap = job
    if p_c == p_t:
        return []
    out: set[int] = set()
    def near(power: float) -> int:  # the normal approximation's n for ``power``, widened by AHEAD_RANGE[0]
        if power <= alpha:
            return 2
        return math.floor(AHEAD_RANGE[0] * two_proportions_sample_size_normal(p_c, p_t, power=power, alpha=alpha,
                                                                              ratio=ratio))

    for target in targets:
        hi = min(cap, math.ceil(AHEAD_RANGE[1] * two_proportions_sample_size_normal(p_c, p_t, power=target, alpha=alpha,
                                                                                     ratio=ratio)))
        coarse = max(2, near(target - STRIDE_MARGIN))
        out.update(range(coarse, min(hi, FINE_FROM - 1) + 1))  # below FINE_FROM: the wide margin
        out.update(range(max(coarse, FINE_FROM, near(target - FINE_MARGIN)), hi + 1))
    return sorted(out)


def scan_cost(job: tuple) -> float:
    """A rough relative cost of a job's approaches, to hand the longest to the workers first: the normal
    approximation's n per arm for its highest target (capped), squared (more sizes, each dearer)."""
    test, p_c, p_t, targets, alpha, ratio, cap = job
    if p_c == p_t:
        return float(cap) ** 2
    n = two_proportions_sample_size_normal(p_c, p_t, power=max(targets), alpha=alpha, ratio=ratio)
    return min(float(cap), n) ** 2


# Calls that a job's sizes computed ahead of its approaches, and its horizon sizes, are each cut into (at most; at
# least PIECE_MIN_SIZES sizes a call).
HORIZON_PIECES = 8
PIECE_MIN_SIZES = 16


def parallel_scans(jobs: Sequence[tuple], *, n_jobs: int, backend: str, scheduler: str | None) -> list[list[ExactScan]]:
    """:func:`exact_scan` of every ``(test, p_control, p_treatment, targets, alpha, ratio, cap)`` job and target.

    A job of a shipped test is read from the disk cache when an earlier command computed it on this machine
    (:mod:`trialsim.cache`: keyed by the job, the scan's settings and the package version; checked before use);
    the others are computed by :func:`computed_scans` and kept. Scans of a binary endpoint at 6% vs 3% cost a
    quarter of a report's time, the same every time the design's rates and alpha are unchanged.
    """
    out: list[list[ExactScan] | None] = [None if job[3] else [] for job in jobs]  # no target: nothing to scan
    for j, job in enumerate(jobs):
        if shipped_exact_power(job[0]) and job[3]:
            array = kept(SCAN_KIND, _scan_key(job), dtype=np.float64)
            out[j] = None if array is None else _unpack(array, job[3])
    missing = [j for j, scans in enumerate(out) if scans is None]
    if missing:
        for j, scans in zip(missing, computed_scans([jobs[j] for j in missing], n_jobs=n_jobs, backend=backend,
                                                    scheduler=scheduler)):
            out[j] = scans
            if shipped_exact_power(jobs[j][0]):
                keep(SCAN_KIND, _scan_key(jobs[j]), _pack(scans))
    return out


SCAN_KIND = "exact-scan"


def _scan_key(job: tuple) -> dict:
    """What a job's scans depend on: the job and every setting of the scan."""
    test, p_c, p_t, targets, alpha, ratio, cap = job
    return {"test": test, "p_control": float(p_c), "p_treatment": float(p_t), "targets": [float(t) for t in targets],
            "alpha": float(alpha), "ratio": float(ratio), "cap": int(cap),
            "settings": [START_BELOW, START_MARGIN, STRIDE_FROM, STRIDE_DIVISOR, STRIDE_MARGIN, FINE_FROM, FINE_MARGIN,
                         HORIZON_FACTOR, HORIZON_MIN_EXTRA]}


def _pack(scans: Sequence[ExactScan]) -> np.ndarray:
    """A job's scans as one float array: per target ``n_first, n_stable`` (-1: None), the number of sizes ``k``,
    the ``k`` sizes and their ``k`` powers."""
    parts: list = []
    for s in scans:
        head = [-1 if s.n_first is None else s.n_first, -1 if s.n_stable is None else s.n_stable, s.n.size]
        parts += [np.array(head, dtype=float), s.n.astype(float), s.power.astype(float)]
    return np.concatenate(parts)


def _unpack(array: np.ndarray, targets: Sequence[float]) -> list[ExactScan] | None:
    """The scans :func:`_pack` wrote, or None if ``array`` does not hold one per target."""
    out, i = [], 0
    for target in targets:
        if i + 3 > array.size:
            return None
        n_first, n_stable, k = (int(v) for v in array[i:i + 3])
        i += 3
        if k < 1 or i + 2 * k > array.size:
            return None
        n, power = array[i:i + k].astype(int), array[i + k:i + 2 * k].copy()
        i += 2 * k
        out.append(ExactScan(n, power, target, None if n_first < 0 else n_first, None if n_stable < 0 else n_stable))
    return out if i == array.size else None


def computed_scans(jobs: Sequence[tuple], *, n_jobs: int, backend: str, scheduler: str | None) -> list[list[ExactScan]]:
    """:func:`exact_scan` of every job and target, on the workers: the sizes its approaches are predicted to compute
    one by one (:func:`ahead_sizes`) in pieces of about equal work, then the approaches to its targets (one call per
    job, the costliest first), then every job's horizon sizes not yet computed, in pieces. The same scans as one
    :func:`exact_scan` per target (each keeps only its own sizes)."""
    def in_pieces(needed: list[list[int]]) -> list[dict[int, float]]:
        """The powers of every job's ``needed`` sizes, computed in pieces of about equal work on the workers."""
        powers = exact_powers_in_pieces([(*job[:3], job[5], job[4]) for job in jobs], needed, pieces=HORIZON_PIECES,
                                        min_sizes=PIECE_MIN_SIZES, n_jobs=n_jobs, backend=backend, scheduler=scheduler)
        return [dict(zip(ns, ps)) for ns, ps in zip(needed, powers)]

    computed = in_pieces([ahead_sizes(job) for job in jobs])
    order = sorted(range(len(jobs)), key=lambda j: -scan_cost(jobs[j]))  # longest first
    found = map_calls(approach_targets, [(*jobs[j], computed[j]) for j in order], n_jobs=n_jobs, backend=backend,
                      scheduler=scheduler)
    approached: list = [None] * len(jobs)
    for j, value in zip(order, found):
        approached[j] = value
    later = in_pieces([sorted({n for _, n_first in found for n in horizon_sizes(n_first, job[6])}
                              - set().union(*(s for s, _ in found)) - set(ahead))
                       for job, found, ahead in zip(jobs, approached, computed)])  # horizon sizes not yet computed
    for pool, more in zip(computed, later):
        pool.update(more)
    out = []
    for job, found, pool in zip(jobs, approached, computed):
        for seen, _ in found:
            pool.update(seen)
        out.append([finish_scan(dict(seen) | {n: pool[n] for n in horizon_sizes(n_first, job[6])}, target, n_first)
                    for target, (seen, n_first) in zip(job[3], found)])
    return out


_NONE = dict(n_first=None, n_stable=None, n_low=None, n_high=None)


def _size_limit_binds(test: str, cap: int, ratio: float) -> bool:
    limit = tests.get(test).max_n
    return limit is not None and max(cap + 1, n_treatment_for(cap + 1, ratio)) > limit  # the test's size limit sets cap


def _exact_unscanned(test: str, ratio: float, cap: int, common: dict) -> SampleSizeResult | None:
    """The exact answer when no scan is needed (equal rates; a size limit far below the need), else None."""
    limit = tests.get(test).max_n
    n_analytic = common["n_analytic"]
    if common["p_control"] == common["p_treatment"]:
        return SampleSizeResult(**common, method="exact", reachable=False, **_NONE, horizon=None, power_at_n=math.nan,
                                power_at_n_se=math.nan, note="The endpoint's rate is the same in both arms: no n reaches "
                                                             "the target (power is the type I error).")
    if _size_limit_binds(test, cap, ratio) and n_analytic is not None and n_analytic > 1.2 * cap:
        return SampleSizeResult(**common, method="exact", reachable=False, **_NONE, horizon=None, power_at_n=math.nan,
                                power_at_n_se=math.nan,
                                note=f"{test_label(test)} runs for arms of up to {limit} patients (its size limit in the "
                                     f"test registry), here at most {sizes(cap, n_treatment_for(cap, ratio))}, well below the "
                                     f"normal approximation's {sizes(n_analytic, n_treatment_for(n_analytic, ratio))}; another "
                                     "test's exact n does not bound it (two-sided tests spend alpha differently, and none "
                                     "is uniformly the more powerful).")
    return None


def _exact_scanned(test: str, ratio: float, cap: int, common: dict, scan: ExactScan) -> SampleSizeResult:
    """The exact answer from the pair's scan for this target."""
    limit, binds = tests.get(test).max_n, _size_limit_binds(test, cap, ratio)
    curve = pd.DataFrame({"n_per_arm": scan.n, "power": scan.power})
    if scan.n_first is None:
        return SampleSizeResult(**common, method="exact", reachable=False, **_NONE, horizon=scan.horizon,
                                power_at_n=float(scan.power[-1]), power_at_n_se=0.0, curve=curve,
                                note=f"Exact power at {sizes(cap, n_treatment_for(cap, ratio))} per arm is "
                                     f"{pct(scan.power[-1], 1)}" + (f" ({test_label(test)} runs for arms of up to {limit} "
                                                                     "patients)." if binds else "."))
    if scan.n_stable is None:
        return SampleSizeResult(**common, method="exact", reachable=False, **_NONE, horizon=scan.horizon,
                                power_at_n=float(scan.power[-1]), power_at_n_se=0.0, curve=curve,
                                note=f"Exact power first reaches the target at {scan.n_first:,} per arm but is below it "
                                     f"again at the search limit of {cap:,} ({pct(scan.power[-1], 1)}).")
    p_at = float(scan.power[scan.n == scan.n_stable][0])
    return SampleSizeResult(**common, method="exact", reachable=True, n_first=scan.n_first, n_stable=scan.n_stable,
                            n_low=scan.n_stable, n_high=scan.n_stable, horizon=scan.horizon, power_at_n=p_at,
                            power_at_n_se=0.0, curve=curve,
                            note="Exact power saw-tooths in n: it first reaches the target at n_first and stays at or "
                                 "above it from n_stable on, checked up to the horizon.")


# ---------------------------------------------------------------------------------------------------
# simulated searches
# ---------------------------------------------------------------------------------------------------
def locate_sims(n_sims: int) -> int:
    return max(200, n_sims // 4)


def ladder(lo: float, hi: float) -> list[int]:
    """The fixed ladder's sizes in ``[lo, hi]``: every integer up to 20, then steps of 5%."""
    out = [n for n in range(N_MIN_SIMULATED, LADDER_START + 1) if lo <= n <= hi]
    k_lo = max(0, math.floor(math.log(max(lo, 1) / LADDER_START) / math.log(LADDER_STEP)))
    k = k_lo
    while True:
        n = int(round(LADDER_START * LADDER_STEP**k))
        if n > hi:
            break
        if n > LADDER_START and n >= lo:
            out.append(n)
        k += 1
    return sorted(set(out))


def snap(x: float, cap: int) -> int:
    """The ladder size nearest to ``x`` (on the log scale), within ``[N_MIN_SIMULATED, cap]``."""
    x = min(max(x, N_MIN_SIMULATED), cap)
    if x <= LADDER_START:
        return int(round(x))
    k = math.log(x / LADDER_START) / math.log(LADDER_STEP)
    return min(cap, int(round(LADDER_START * LADDER_STEP ** round(k))))


def locate_grid(lo: float, hi: float, cap: int) -> tuple[int, ...]:
    """About :data:`LOCATE_POINTS` ladder sizes, log-spaced from ``lo`` to ``hi``."""
    lo, hi = max(N_MIN_SIMULATED, lo), min(cap, max(hi, lo + 1))
    return tuple(sorted({snap(v, cap) for v in np.geomspace(lo, hi, LOCATE_POINTS)}))


def refine_grid(root: float, cap: int) -> tuple[int, ...]:
    """:data:`REFINE_POINTS` ladder sizes spread over :data:`REFINE_RANGE` of ``root`` (at least three).

    The first and last ladder sizes in the range and others evenly spaced between them by rank.
    """
    sizes = [n for n in ladder(REFINE_RANGE[0] * root, REFINE_RANGE[1] * root) if n <= cap]
    if len(sizes) > REFINE_POINTS:
        sizes = [sizes[i] for i in sorted(set(np.round(np.linspace(0, len(sizes) - 1, REFINE_POINTS)).astype(int)))]
    if len(sizes) < 3:
        centre = snap(root, cap)
        sizes = sorted({max(N_MIN_SIMULATED, centre - 1), centre, min(cap, centre + 1)} | set(sizes))
    return tuple(sizes)


def _simulated(cc, cc_model, searched, targets, chosen, common, *, moments, ratio, n_max, n_sims, seed, n_jobs, progress):
    out: dict[tuple[str, str, float], SampleSizeResult] = {}

    def unreached(a, t, target, cap, note, power_at=math.nan, se=math.nan, method="monte_carlo"):
        return SampleSizeResult(**common(a, t, target, cap), method=method, reachable=False, n_first=None, n_stable=None,
                                n_low=None, n_high=None, horizon=None, power_at_n=power_at, power_at_n_se=se, note=note)

    def sizes(grid):
        return tuple(size_point(n, n_treatment_for(n, ratio)) for n in grid)

    locate: list[tuple] = []
    for a, t, cap in searched:
        if not (chosen is True or (chosen is not False and (a.name, t) in chosen)):
            for target in targets:
                out[(a.name, t, target)] = unreached(a, t, target, cap, "Not simulated; see the analytic answer.",
                                                     method="analytic")
            continue
        lo = start_size(cc_model, a.name, t, power=0.5, ratio=ratio, moments=moments)
        hi = start_size(cc_model, a.name, t, power=0.95, ratio=ratio, moments=moments)
        if not math.isfinite(lo) or lo > 3 * n_max:
            note = (f"The model's effect needs about {lo:,.0f} per arm for 50% power (normal approximation), far above "
                    f"the search limit of {n_max:,}." if math.isfinite(lo) else "The model has no effect on this endpoint.")
            for target in targets:
                out[(a.name, t, target)] = unreached(a, t, target, cap, note)
            continue
        locate.append((a, t, cap, locate_grid(LOCATE_RANGE[0] * lo, LOCATE_RANGE[1] * hi, cap)))
    if not locate:
        return out

    # pass 1: locate each pair's root on a wide grid with a quarter of the trials
    rej1 = rejections(cc, [Job(a.name, t, sizes(grid)) for a, t, _, grid in locate], n_sims=locate_sims(n_sims),
                      seed=seed, n_jobs=n_jobs, progress=progress)
    refine: list[tuple] = []
    for (a, t, cap, grid), r in zip(locate, rej1):
        ns = np.array(grid)
        observed = r.mean(axis=0)
        fit = fit_probit(np.sqrt(ns), r)
        for target in targets:
            if fit is not None:
                root = fit.root(target)[0] ** 2
            else:  # fall back to the first grid size reaching the target
                hit = np.flatnonzero(observed >= target)
                root = float(ns[hit[0]]) if hit.size else math.inf
            if root <= cap:
                refine.append((a, t, cap, target, refine_grid(root, cap)))
                continue
            p_end = float(observed[-1])
            se_end = math.sqrt(p_end * (1 - p_end) / r.shape[0])
            out[(a.name, t, target)] = unreached(  # searched to the grid's last size: n_max says no more than that
                a, t, target, int(ns[-1]), f"Simulated power at {ns[-1]:,} per arm is {power_with_se(p_end, se_end)} (the "
                                   f"locating pass's {r.shape[0]:,} trials)"
                                   + (f"; the fitted curve reaches the target near {root:,.0f} per arm." if math.isfinite(root) else "."),
                power_at=p_end, se=se_end)

    # pass 2: for each target, refine on the ladder sizes around its root with all the trials
    rej2 = rejections(cc, [Job(a.name, t, sizes(grid)) for a, t, _, _, grid in refine], n_sims=n_sims, seed=seed,
                      n_jobs=n_jobs, progress=progress) if refine else []
    for (a, t, cap, target, grid), r in zip(refine, rej2):
        ns = np.array(grid)
        fit = fit_probit(np.sqrt(ns), r)
        if fit is None:
            out[(a.name, t, target)] = unreached(a, t, target, cap, "The probit fit of simulated power failed.")
            continue
        xs, xlo, xhi = fit.root(target)
        n_point = max(N_MIN_SIMULATED, math.ceil(round(xs**2, 9)))
        n_low = max(N_MIN_SIMULATED, math.ceil(round(max(xlo, 0.0) ** 2, 9)))
        n_high = max(N_MIN_SIMULATED, math.ceil(round(xhi**2, 9)))
        note = (f"Probit fit of simulated power on sqrt(n) over n = {ns[0]}-{ns[-1]} ({len(ns)} sizes x {r.shape[0]:,} "
                f"trials, common random numbers); largest |residual| {fit.max_abs_residual_z():.1f} SE.")
        if n_point > ns[-1]:  # the search limit kept the grid below the root: the fit's curve carried beyond its data
            note = f"{EXTRAPOLATED} the largest size simulated, {ns[-1]:,} per arm (the search limit is {cap:,}). " + note
        if n_point > cap:
            out[(a.name, t, target)] = unreached(
                a, t, target, cap, f"The fitted curve reaches the target near {n_point:,} per arm, beyond the search limit. " + note,
                power_at=fit.power(math.sqrt(cap)), se=fit.power_se(math.sqrt(cap)))
            continue
        out[(a.name, t, target)] = SampleSizeResult(
            **common(a, t, target, cap), method="monte_carlo", reachable=True, n_first=n_point, n_stable=n_point,
            n_low=n_low, n_high=n_high, horizon=None, power_at_n=fit.power(math.sqrt(n_point)),
            power_at_n_se=fit.power_se(math.sqrt(n_point)), note=note)
    for a, t, cap, _ in locate:
        for target in targets:
            if (a.name, t, target) not in out:
                out[(a.name, t, target)] = unreached(a, t, target, cap, f"Simulated power stays below the target up to {cap:,}.")
    return out
