"""The printed summary of a run: the scenario's own primary endpoint first, then the secondary ones.

Trial-neutral: every name, label, unit and effect comes from the scenario's model (its endpoint
families), so a trial without the registered trial's endpoints reads in its own words. Under the
null (no true effect) a rejection rate is called a type I error, not power. Ratios of geometric
means are exp(mean of the per-trial log ratios), never the mean of per-trial ratios (biased upward).
"""
from __future__ import annotations

import math
import textwrap

import numpy as np

from trialsim.analysis import registry as tests
from trialsim.endpoints.base import Analysed
from trialsim.flow.summary import summarise_flow_arrays
from trialsim.labels import (
    FLAG,
    NOT_COMPUTABLE,
    LOW_POWER,
    POWER_TARGET,
    fmt_level,
    fmt_power,
    in_sentence,
    none_valid,
    num,
    pct,
    power_with_se,
    test_label,
)
from trialsim.model import Model, build_model
from trialsim.results import BELOW, WITHIN, RunResult, ScenarioResult, exceeds, mc_side

WIDTH = 96
# per-arm statistics that count patients rather than summarise the endpoint
COUNTS = ("n_analysable", "any_event")


# ------------------------------------------------------------------------------------------ words
def rate_word(null: bool) -> str:
    """What a rejection rate is: power, or under the null a type I error."""
    return "type I error" if null else "power"


def null_endpoints(model: Model) -> set[str]:
    """Analysed endpoints with no true effect: their own effect and every event they follow are at the null.

    An endpoint follows the components it links to (and the event deaths follow, when a death can hide
    it), so a marker whose own ratio is 1 still differs between arms when the leak it follows does.
    Endpoints without an effect parameter are never counted as null.
    """
    sc = model.scenario
    own = {}
    for cid in model.order:
        analysed = model.section(cid).analysed(cid)
        own[cid] = bool(analysed) and all(a.effect is not None and a.effect.assumed == a.effect.null for a in analysed)
    death = sc.follow_up.death_event

    def clean(cid: str, seen: tuple[str, ...] = ()) -> bool:
        if not own[cid] or cid in seen:
            return own[cid]
        links = set(model.section(cid).links()) | ({death} if death else set())
        return all(clean(link, seen + (cid,)) for link in links - {cid})

    return {a.name for a in model.analysed if clean(a.component)}


def _is_null(res: ScenarioResult, model: Model, endpoint: str) -> bool:
    return res.is_null() or endpoint in null_endpoints(model)


# ----------------------------------------------------------------------------------- estimates
class Row(dict):
    """A row of a run's table (:meth:`RunResult.power_rows`): its cells as keys and as attributes (``row.power``)."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _arm_summary(est: list[dict], arm: str) -> tuple[str, float] | None:
    """The arm's summary statistic (rate, median, geometric mean, mean grade, ...) and its mean over trials."""
    rows = [r for r in est if r["arm"] == arm and r["statistic"] not in COUNTS]
    if not rows:
        return None
    return str(rows[0]["statistic"]), float(rows[0]["mean"])


def _value(stat: str, x: float, unit: str) -> str:
    if stat == "rate":
        return pct(x)
    return num(x) + (f" {unit}" if unit and unit not in ("patients", "grade") else "")


def _contrast(est: list[dict]) -> str:
    """The mean contrast over trials: a geometric mean ratio (exp of the mean log ratio) or a mean difference."""
    contrast = {r["statistic"]: r["mean"] for r in est if r["arm"] == "contrast"}
    if "geometric_mean_ratio" in contrast:
        return f"geometric mean ratio {num(contrast['geometric_mean_ratio'])}"
    for stat, value in contrast.items():
        if stat != "log_ratio":
            return f"mean {stat.replace('_', ' ')} {num(value)}"
    return ""


def on_logs(estimand: str, scale: str) -> bool:
    """Whether a test's per-trial estimate is the log of a ratio (a difference of logs, a log odds ratio, ...)."""
    return (estimand == "difference" and scale == "log") or estimand.startswith("log_")


def estimation_line(row: Row, a: Analysed, alpha: float) -> str:
    """One line on the estimate of the primary test: mean, truth, bias, RMSE and CI coverage (with MC SEs).

    A log ratio is reported as exp of its mean over trials (a geometric mean ratio), its bias on the log scale.
    """
    estimand = tests.get(row.test).estimand
    what = row.estimand if isinstance(row.estimand, str) else estimand.replace("_", " ")
    if _missing(row.estimate_mean):
        if int(getattr(row, "n_estimable", 0) or 0) == 0:
            return f"estimate ({test_label(row.test)}): {what}: not estimable in any trial"
        text = f"estimate ({test_label(row.test)}): {what}: infinite in some trials (an arm without events), so no mean"
        if not _missing(row.coverage):
            text += f"; {fmt_level(1 - alpha)} CI coverage {_coverage(row)}"
        return text
    if on_logs(estimand, a.scale):
        text = f"{what} exp(mean log ratio) {num(math.exp(row.estimate_mean))}"
        truth = "" if _missing(row.true_effect) else f" (true {num(math.exp(row.true_effect))})"
        scale = "log-ratio "
    else:
        text = f"{what} mean {num(row.estimate_mean)}"
        truth = "" if _missing(row.true_effect) else f" (true {num(row.true_effect)})"
        scale = ""
    parts = [text + truth]
    if not _missing(row.bias):
        parts.append(f"{scale}bias {num(row.bias, 2)} ± {num(row.bias_se, 2)}, RMSE {num(row.rmse)}")
    if not _missing(row.coverage):
        parts.append(f"{fmt_level(1 - alpha)} CI coverage {_coverage(row)}" + _width(row, estimand, a.scale))
    return f"estimate ({test_label(row.test)}): " + "; ".join(parts)


def _width(row, estimand: str, scale: str) -> str:
    """", mean width W" of the interval (on the log scale for ratios), where the test has one."""
    width = getattr(row, "ci_width", None)
    if width is None or _missing(width):
        return ""
    return f", mean width {num(width)}" + (" (log scale)" if on_logs(estimand, scale) else "")


def _coverage(row) -> str:
    """Coverage ± MC SE, with its number of intervals when they are too few (or all cover)."""
    n = getattr(row, "n_estimable", None)
    n = int(row.n_sims) if n is None or _missing(n) else int(n)
    k = round(float(row.coverage) * n)
    if n and k in (0, n):
        return f"{k:,} of {n:,} intervals"
    return power_with_se(row.coverage, row.coverage_se) + (f" (only {n:,} trials)" if n < FEW_TRIALS else "")


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and np.isnan(x))


# ------------------------------------------------------------------------------------- scenario
def _first(rows: list[Row], test: str, method: str) -> Row | None:
    return next((r for r in rows if r.test == test and r.method == method), None)


def _best_power(rows: list[Row], test: str) -> Row:
    """A test's power row: exact where the run has it (its interval a point), else simulated (its 95% Monte Carlo
    interval in ``ci_low``, ``ci_high``)."""
    return _first(rows, test, "exact") or _first(rows, test, "monte_carlo")


def low_power_warning(best: Row, how: str, label: str) -> str:
    """The warning for a primary test far below the usual power, "" where there is none.

    Given only when the power is clearly below :data:`LOW_POWER` (an exact figure, or the whole 95% Monte
    Carlo interval of a simulated one: :func:`~trialsim.results.mc_side`); a simulated power within Monte
    Carlo error of it gets a note saying so, so the console's words do not change with Monte Carlo noise.
    """
    side = mc_side(LOW_POWER, float(best.ci_low), float(best.ci_high))
    if side == BELOW:
        return (f"WARNING: the primary test has {fmt_power(best.power)} power{how}, far below the usual "
                f"{pct(POWER_TARGET, 0)}. This design cannot detect the assumed effect on {in_sentence(label)}; "
                "treat it as a pilot/feasibility study and report estimates with confidence intervals, not p-values.")
    if side == WITHIN:
        return (f"NOTE: the primary test has {fmt_power(best.power)} power{how}, within Monte Carlo error of "
                f"{pct(LOW_POWER, 0)} (95% Monte Carlo interval {fmt_power(best.ci_low)} to {fmt_power(best.ci_high)}): "
                f"simulate more trials (--sims) to tell whether it is far below the usual {pct(POWER_TARGET, 0)}.")
    return ""


def _how(rows: list[Row], test: str) -> str:
    if _first(rows, test, "exact") is not None:
        return " (exact)"
    mc = _first(rows, test, "monte_carlo")
    return f" (from only {int(mc.n_sims):,} simulated trials)" if mc.n_sims < FEW_TRIALS else ""


# Fewer simulated trials than this give a rejection rate too rough to quote alone (its SE is up to 1.6 points).
FEW_TRIALS = 1000


def mc_rate(row) -> str:
    """A simulated rejection rate as it can honestly be quoted.

    ``"18.7% ± 0.4%"``; with fewer than :data:`FEW_TRIALS` trials it says so, and when none or all of
    them rejected (an SE of 0 says nothing) it gives the count and the 95% Clopper-Pearson interval;
    a test that no trial could compute is ``"not computable (n_valid 0)"``.
    """
    n = int(row.n_sims)
    if none_valid(getattr(row, "n_valid", None)):
        return NOT_COMPUTABLE
    k = round(float(row.power) * n)
    if k in (0, n):
        return f"{k:,} of {n:,} trials (95% CI {pct(row.ci_low, 1)} to {pct(row.ci_high, 1)})"
    text = power_with_se(row.power, row.mc_se)
    return text + (f" (only {n:,} trials)" if n < FEW_TRIALS else "")


def _size_flagged(row) -> bool:
    """The power table flags the test's exact type I error at this design above alpha (and this is not itself
    a null scenario, whose rates are type I errors already); unknown sizes (None/NaN) are not flagged."""
    flag = row.get("size_exceeds_alpha")
    return isinstance(flag, (bool, np.bool_)) and bool(flag) and not bool(row.get("null", False))


def _rate_lines(rows: list[Row], word: str) -> list[str]:
    """One line per test: the simulated rejection rate ± MC SE, and the exact figure where there is one."""
    first: dict[tuple[str, str], Row] = {}  # (test, method) -> its first row (one pass: no filter per test)
    for row in rows:
        first.setdefault((row.test, row.method), row)
    lines = []
    for test in dict.fromkeys(r.test for r in rows):
        mc = first[(test, "monte_carlo")]
        text = f"{test_label(test):<16} {word} {mc_rate(mc):<17}"
        ex = first.get((test, "exact"))
        if ex is not None:
            text += f" exact {pct(ex.power, 2)}"
        if _size_flagged(mc):
            text += f" (type I error {pct(mc['size'], 2)} exceeds alpha: power overstated)"
        lines.append(text.rstrip())
    return lines


def _by_endpoint(rows: list[dict], scenario: str) -> dict[str, list]:
    """A scenario's rows grouped by endpoint (grouped once, not filtered per endpoint)."""
    out: dict[str, list] = {}
    for r in rows:
        if r["scenario"] == scenario:
            out.setdefault(r["endpoint"], []).append(r)
    return out


def scenario_summary(res: ScenarioResult, rows: list[Row], estimates: list[dict]) -> str:
    """The detail of one scenario: design, the primary endpoint with its estimate, secondary endpoints, flow.

    ``rows`` are the run's power rows (:meth:`RunResult.power_rows` as :class:`Row`), ``estimates`` its estimate rows."""
    sc = res.spec.scenario
    d = sc.design
    model = build_model(sc)
    prim = model.primary
    sid = res.spec.id
    rows_of = _by_endpoint(rows, sid)
    estimates_of = _by_endpoint(estimates, sid)
    no_rows, no_estimates = [], []
    out = [f"Scenario {sid}" + (f" ({', '.join(f'{k}={v}' for k, v in res.spec.values.items())})" if res.spec.values else "")]
    out.append(f"  {d.control_name} n={d.n_control} vs {d.treatment_name} n={d.n_treatment}, alpha {d.alpha} two-sided, "
               f"{res.n_sims:,} simulated trials")
    null = _is_null(res, model, prim.name)
    word = rate_word(null)

    out += ["", f"  PRIMARY ENDPOINT: {prim.label}"]
    est = estimates_of.get(prim.name, no_estimates)
    arms = [(name, _arm_summary(est, arm)) for name, arm in ((d.control_name, "control"), (d.treatment_name, "treatment"))]
    if all(s is not None for _, s in arms):
        stat = arms[0][1][0].replace("_", " ")
        text = f"    expected {stat} " + ", ".join(f"{name} {_value(s[0], s[1], prim.unit)}" for name, s in arms)
        if prim.effect is not None:
            text += f" ({prim.effect.label} {prim.effect.assumed:g}, a planning assumption)"
        out.append(text)
    no_event = [r for r in est if r["arm"] == "control" and r["statistic"] == "any_event"]
    if no_event:
        out.append(f"    chance the {d.control_name} arm has no event at all: {pct(1 - float(no_event[0]['mean']))}")
    rows = rows_of.get(prim.name, no_rows)
    out += ["    " + line for line in _rate_lines(rows, word)]
    first = _first(rows, prim.tests[0], "monte_carlo")
    # the estimate of the first test with a finite mean (an odds ratio MLE is infinite when an arm has no event)
    finite = [r for r in rows if r.method == "monte_carlo" and not _missing(r.get("bias"))]
    shown = finite[0] if finite else first
    out += textwrap.wrap(estimation_line(shown, prim, d.alpha), WIDTH, initial_indent="    ", subsequent_indent="      ")
    if null:
        out.append(f"    (no true effect on this endpoint in this scenario: its rejection rates are type I errors at alpha {d.alpha})")
    else:
        out.extend("    " + w for w in textwrap.wrap(low_power_warning(_best_power(rows, prim.tests[0]),
                                                                    _how(rows, prim.tests[0]), prim.label), WIDTH))

    secondary = [a for a in model.analysed if not a.primary]
    if secondary:
        nulls = null_endpoints(model) | ({a.name for a in secondary} if res.is_null() else set())
        mixed = any(a.name in nulls for a in secondary) and not all(a.name in nulls for a in secondary)
        heading = ("power ± Monte Carlo SE; * no true effect: a type I error" if mixed
                   else f"{rate_word(secondary[0].name in nulls)} ± Monte Carlo SE")
        out += ["", f"  SECONDARY ENDPOINTS ({heading})"]
        width = max(len(a.name) for a in secondary) + 2
        for a in secondary:
            lines = _rate_lines(rows_of.get(a.name, no_rows), rate_word(a.name in nulls))
            contrast = _contrast(estimates_of.get(a.name, no_estimates))
            mark = " *" if mixed and a.name in nulls else ""
            out.append(f"    {a.name:<{width}}" + lines[0] + (f"  ({contrast})" if contrast else "") + mark)
            out.extend(f"    {'':<{width}}" + line for line in lines[1:])
    if res.flow is not None:
        out += ["", "  PATIENT FLOW"]
        out.extend("    " + line for line in summarise_flow_arrays(res.flow, sc.flow).splitlines())
    return "\n".join(out)


# ------------------------------------------------------------------------------------------ sweep
def comparison_columns(model: Model) -> list[tuple[str, str]]:
    """(endpoint, test) columns of the side-by-side table: every test of the primary, then one per effect.

    Each other effect parameter (a marker's ratio, a duration's ratio, ...) gets one column: the first
    test of the last endpoint analysed for it, since families list a summary (e.g. the mean over the
    sampling days) after the endpoints it summarises.
    """
    prim = model.primary
    columns = [(prim.name, t) for t in prim.tests]
    last: dict[str, Analysed] = {}
    for a in model.analysed:
        if a.primary:
            continue
        group = a.effect.path if a.effect is not None else a.name
        last.pop(group, None)  # keep the group's last endpoint, in the order groups first appear
        last[group] = a
    primary_group = prim.effect.path if prim.effect is not None else prim.name
    ordered = sorted(last.items(), key=lambda kv: [a.name for a in model.analysed].index(kv[1].name))
    columns += [(a.name, a.tests[0]) for group, a in ordered if group != primary_group]
    return columns


def comparison_table(result: RunResult, rows: list[Row] | None = None) -> str:
    """Scenarios side by side: arm sizes, the primary endpoint's tests, and one column per other effect."""
    rows = [Row(r) for r in result.power_rows()] if rows is None else rows
    best: dict[tuple[str, str, str], Row] = {}  # exact where it exists, else Monte Carlo (with its SE)
    for r in rows:
        key = (r.scenario, r.endpoint, r.test)
        if key not in best or r.method == "exact":
            best[key] = r
    columns = comparison_columns(build_model(result.results[0].spec.scenario))
    header = ["scenario", "n_c", "n_t"] + [e for e, _ in columns]
    tests_row = ["", "", ""] + [test_label(t) for _, t in columns]
    body, marked, above = [], False, False
    for res in result.results:
        sid = res.spec.id
        d = res.spec.scenario.design
        model = build_model(res.spec.scenario)
        cells = [sid, str(d.n_control), str(d.n_treatment)]
        for endpoint, test in columns:
            r = best.get((sid, endpoint, test))
            if r is None:
                cells.append("-")
                continue
            text = pct(r.power, 2) + (" (exact)" if r.method == "exact" else f" ±{pct(r.mc_se, 1)}")
            if _is_null(res, model, endpoint):
                text += " *"
                marked = True
                if exceeds(r.power, d.alpha, r.ci_low, exact=r.method == "exact"):
                    text += " " + FLAG
                    above = True
            elif _size_flagged(r):
                text += " " + FLAG
                above = True
            cells.append(text)
        body.append(cells)
    widths = [max(len(x) for x in col) for col in zip(header, tests_row, *body)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(top, widths)).rstrip() for top in (header, tests_row)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
    if marked:
        lines.append("* no true effect on this endpoint in this scenario: the rate is a type I error, not power")
    if above:
        lines.append(f"{FLAG} the test's type I error exceeds alpha at this design: it rejects too often "
                     "(beside a true effect, its power is overstated)")
    return "\n".join(lines)


def run_summary(result: RunResult, *, detail: bool | None = None) -> str:
    """The console report: each scenario in detail, or for a sweep a side-by-side table first."""
    rows = [Row(r) for r in result.power_rows()]
    estimates = result.estimate_rows()
    prov = result.provenance
    head = [f"trialsim {prov.get('trialsim')} | {prov.get('scenario')} | seed {result.seed}"
            f"{'' if prov.get('seed_given') else ' (drawn; pass --seed to repeat)'} | {prov.get('run_seconds')} s"]
    many = len(result.results) > 1
    if detail is None:
        detail = not many
    parts = []
    if many:
        parts.append(f"{len(result.results)} scenarios side by side (rejection rate; exact where it exists, else Monte Carlo ± SE):\n"
                     + comparison_table(result, rows))
    if detail:
        parts += [scenario_summary(r, rows, estimates) for r in result.results]
    elif many:
        parts.append("(per-scenario detail: --detail; every number: --out DIR -> power.csv)")
    return "\n".join(head + [""] + ("\n\n".join(parts)).splitlines())
