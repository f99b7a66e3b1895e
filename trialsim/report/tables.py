"""The report's display tables: a planning result's frames as string cells, one row key per row.

:func:`build_tables` takes a planning result (``design``, ``settings``, ``frames``, ``provenance``;
see :class:`trialsim.planning.plan.PlanningResult`, which this layer never imports) and returns
:class:`Table` objects. The justification paragraph and the headline (:mod:`trialsim.report.paragraph`)
quote cells of these very tables, so the numbers in the text are the numbers in the tables. Nothing
here knows a trial: names and labels come from the result's ``endpoints`` frame (or the scenario's
model), and under a null scenario (every effect parameter at its null) rejection rates are called
type I errors.

A test whose type I error at a design exceeds the significance level (exact, or simulated with the
whole 95% Monte Carlo interval above it) is flagged with :data:`FLAG` wherever its numbers appear
at that design: its label in the power and MDE tables, its type I error, and the sample sizes at
which it happens.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from trialsim.analysis.laws import clopper_pearson
from trialsim.labels import (
    FLAG,
    NOT_COMPUTABLE,
    extrapolated,
    fmt_interval,
    fmt_level,
    fmt_n,
    fmt_pct,
    fmt_power,
    fmt_ratio,
    is_missing,
    none_valid,
    target_pct,
    test_label,
)
from trialsim.model import build_model
from trialsim.registry import TESTS
from trialsim.report.references import Citations
from trialsim.results import exceeds  # one rule for the power table's flag, the console's and the report's

FLAG_NOTE = (f"{FLAG} after a test: its type I error exceeds the significance level at this size (it rejects too often "
             "when there is no effect), so its power there is overstated.")
SIZE_INTERVAL = "Type I error 95% MC interval"  # the power table's column: a simulated type I error's interval
# What each estimand's confidence interval is (the test registry names the estimand of every test).
INTERVALS = {
    "risk_difference": "Newcombe's hybrid score interval of the risk difference",
    "log_odds_ratio": "conditional maximum likelihood odds ratio and its exact interval (as R's fisher.test)",
    "difference": "Welch t interval of the difference in means (of logs: the ratio of geometric means)",
    "log_conditional_odds_ratio": ("covariate-adjusted odds ratio: Mantel-Haenszel's with the Robins-Breslow-Greenland "
                                   "interval, or logistic regression's with its Wald interval"),
}
ORIGINS = {"config": "config", "default": "trialsim default", "override": "command line", "scenario": "scenario"}


@dataclass(frozen=True)
class Table:
    """A display table: string cells, one row key per row (``frame.index``), a caption and notes."""

    name: str
    caption: str
    frame: pd.DataFrame
    notes: str = ""

    def cell(self, row: str, column: str) -> str:
        return str(self.frame.at[row, column])


def _table(name: str, caption: str, rows: list[tuple[str, dict[str, str]]], notes: str = "") -> Table:
    frame = pd.DataFrame([r for _, r in rows], index=[k for k, _ in rows])
    return Table(name, caption, frame.astype(str) if not frame.empty else frame, notes)


def rate_word(result) -> str:
    """"Power", or "Type I error" when every effect parameter of the scenario is at its null."""
    return "Type I error" if is_null(result) else "Power"


def lower_first(word: str) -> str:
    """"Power" -> "power", "Type I error" -> "type I error"."""
    return word[:1].lower() + word[1:]


# The pilot_ratios column by which the report ranks secondary endpoints, and its margin of equal promise.
PRECISION = "Assumed effect / expected half-width"
EQUALLY_PROMISING = 0.05  # relative: within 5% of the largest ratio, endpoints are named as equally promising


def effect_to_half_width(gmr: float, ci_high: float) -> float:
    """The assumed effect in expected half-widths of its 95% CI: ``|log GMR| / (log upper limit - log GMR)``.

    Fixed by the assumptions and the planned size (no rejection rate enters it), it ranks endpoints
    approximately as the Welch test's power at the planned size does: exactly as the normal
    approximation to that power does, |log GMR| / SE, but the half-width is a t quantile times the SE
    and the quantile depends on each endpoint's degrees of freedom. 1 or more: the interval expected at
    the assumed effect excludes a ratio of 1 (no effect). NaN where either number is missing.
    """
    if is_missing(gmr) or is_missing(ci_high) or float(gmr) <= 0 or float(ci_high) <= float(gmr):
        return float("nan")
    return abs(math.log(float(gmr))) / math.log(float(ci_high) / float(gmr))


def is_null(result) -> bool:
    if "null" in result.design:
        return bool(result.design["null"])
    power = result.frame("power")
    return bool(not power.empty and "null" in power and power["null"].astype(bool).all())


def endpoint_labels(result) -> dict[str, str]:
    """Analysed endpoint -> its label (from the result's endpoints frame, else the scenario's model)."""
    eps = result.frame("endpoints")
    if not eps.empty:
        return dict(zip(eps["endpoint"].astype(str), eps["label"].astype(str)))
    return {a.name: a.label for a in build_model(result.scenario).analysed}


def key_pairs(result) -> list[tuple[str, str]]:
    """The key (endpoint, test) pairs the planning result names (every pair of the model if none)."""
    pairs = result.design.get("key_pairs")
    if pairs:
        return [(str(e), str(t)) for e, t in pairs]
    return [(a.name, t) for a, t in build_model(result.scenario).pairs()]


def fmt_effect(x) -> str:
    return fmt_ratio(x)


def fmt_ratio_interval(lo, hi) -> str:
    """"0.40 to 0.42": both ends with the same decimals (two, or more for values below 0.1)."""
    if is_missing(lo) or is_missing(hi):
        return "-"
    lo, hi = float(lo), float(hi)
    small = min(abs(v) for v in (lo, hi) if v != 0) if (lo or hi) else 1.0
    decimals = min(4, max(2, 1 - math.floor(math.log10(small)))) if small < 1 else 2
    return f"{lo:.{decimals}f} to {hi:.{decimals}f}"


def _fmt_precision(x: float) -> str:
    return "-" if is_missing(x) else f"{x:.2f}"


def fmt_points(x, digits: int = 1) -> str:
    """A difference of percentages in percentage points: ``45.3``."""
    return "-" if is_missing(x) else f"{100 * float(x):.{digits}f}"


def type_i_errors(result) -> dict[tuple[str, str], dict]:
    """(endpoint, test) -> its type I error at the planned design: value, kind, interval, flagged.

    Exact where the null run has an exact row, else simulated (with its Monte Carlo interval).
    """
    null = result.frame("null_power")
    alpha = float(result.design["alpha"])
    out: dict[tuple[str, str], dict] = {}
    if null.empty:
        return out
    for (endpoint, test), g in null.groupby(["endpoint", "test"], sort=False):
        ex, mc = g[g["method"] == "exact"], g[g["method"] == "monte_carlo"]
        if len(ex):
            r = ex.iloc[0]
            out[(str(endpoint), str(test))] = {"value": float(r["power"]), "kind": "exact", "low": float(r["power"]),
                                               "high": float(r["power"]), "n_sims": 0,
                                               "flagged": exceeds(r["power"], alpha)}
        elif len(mc):
            r = mc.iloc[0]
            out[(str(endpoint), str(test))] = {"value": float(r["power"]), "kind": "simulated", "low": float(r["ci_low"]),
                                               "high": float(r["ci_high"]), "n_sims": int(r["n_sims"]),
                                               "none_valid": none_valid(r.get("n_valid")),
                                               "flagged": not none_valid(r.get("n_valid")) and
                                               exceeds(r["power"], alpha, r["ci_low"], exact=False)}
    return out


def flagged_label(test: str, flagged: bool) -> str:
    return test_label(test) + (f" {FLAG}" if flagged else "")


def build_tables(result, citations: Citations | None = None) -> dict[str, Table]:
    """Every display table of the report (those with data).

    ``citations`` collects the sources the assumptions table cites (a new one when None).
    """
    citations = citations if citations is not None else Citations()
    d = result.design
    tables: dict[str, Table] = {}
    prim = d["primary_endpoint"]
    label_of = endpoint_labels(result)
    word = rate_word(result)
    keys = set(key_pairs(result))
    alpha = float(d["alpha"])
    sizes_at_design = type_i_errors(result)

    rows = [
        ("control", {"Item": "Control arm", "Value": str(d["control_name"])}),
        ("treatment", {"Item": "Experimental arm", "Value": str(d["treatment_name"])}),
        ("n_control", {"Item": f"Patients enrolled, {d['control_name']}", "Value": fmt_n(d["n_control"])}),
        ("n_treatment", {"Item": f"Patients enrolled, {d['treatment_name']}", "Value": fmt_n(d["n_treatment"])}),
        ("allocation", {"Item": "Allocation", "Value": str(d["allocation"])}),
        ("masking", {"Item": "Masking", "Value": str(d["masking"])}),
        ("alpha", {"Item": "Significance level (two-sided)", "Value": fmt_level(d["alpha"])}),
        ("primary", {"Item": "Primary endpoint", "Value": str(d["primary_label"])}),
        ("primary_test", {"Item": "Primary analysis", "Value": test_label(str(d["primary_test"]))}),
    ]
    if d.get("primary_effect_label"):
        rows.append(("effect", {"Item": f"Assumed effect on the primary endpoint ({d['primary_effect_label']})",
                                "Value": fmt_effect(d["primary_effect_assumed"])}))
        rows.append(("no_effect", {"Item": f"No effect ({d['primary_effect_label']})",
                                   "Value": fmt_effect(d["primary_effect_null"])}))
    if not is_missing(d.get("primary_p_control")):
        rows += [
            ("p_control", {"Item": f"Primary endpoint rate, {d['control_name']} (analysable patients)",
                           "Value": fmt_pct(d["primary_p_control"])}),
            ("p_treatment", {"Item": f"Primary endpoint rate, {d['treatment_name']} (analysable patients)",
                             "Value": fmt_pct(d["primary_p_treatment"])}),
        ]
    rows.append(("dropout", {"Item": "Expected loss to follow-up for the primary endpoint",
                             "Value": fmt_pct(d["primary_dropout"])}))
    tables["design"] = _table("design", "The design and its key assumptions", rows)

    power = result.frame("power")
    if not power.empty:
        rows = []
        show_null = word == "Power" and bool(sizes_at_design)
        for (endpoint, test), g in power.groupby(["endpoint", "test"], sort=False):
            mc = g[g["method"] == "monte_carlo"]
            ex = g[g["method"] == "exact"]
            r = mc.iloc[0] if len(mc) else g.iloc[0]
            size = sizes_at_design.get((str(endpoint), str(test)))
            flagged = bool(size and size["flagged"])
            row = {
                "Endpoint": label_of.get(endpoint, str(r["label"])),
                "Test": flagged_label(test, flagged),
                f"{word} (simulated)": (NOT_COMPUTABLE if none_valid(r.get("n_valid")) else fmt_power(r["power"]))
                if len(mc) else "-",
                "95% MC interval": fmt_interval(r["ci_low"], r["ci_high"], fmt_power)
                if len(mc) and not none_valid(r.get("n_valid")) else "-",
                f"Exact {lower_first(word)}": fmt_power(ex.iloc[0]["power"]) if len(ex) else "-",
            }
            if show_null:
                row["Type I error (no effect)"] = "-" if size is None else \
                    NOT_COMPUTABLE if size.get("none_valid") else fmt_power(size["value"])
                # its Monte Carlo interval, so the text can say whether power is clearly more than it (an exact one is a point)
                row[SIZE_INTERVAL] = ("-" if size is None or size["kind"] == "exact" or size.get("none_valid")
                                      else fmt_interval(size["low"], size["high"], fmt_power))
                row["Type I error from"] = "-" if size is None else ("exact" if size["kind"] == "exact" else "simulated")
            rows.append((f"{endpoint}|{test}", row))
        n_sims = int(power["n_sims"].max())
        what = "Type I error (every effect at its null)" if word != "Power" else "Power"
        notes = (f"Simulated from {n_sims:,} trials with its 95% Clopper-Pearson Monte Carlo interval; "
                 "exact by enumeration for binary endpoints with a known law. Each test is two-sided: a rejection in "
                 "either direction counts.")
        if show_null:
            null_sims = max((v["n_sims"] for v in sizes_at_design.values()), default=0)
            notes += (" Type I error: the same test with every effect parameter at its null (no treatment effect), exact "
                      "where the endpoint's law is known" + (f", otherwise simulated from {null_sims:,} trials" if null_sims else "")
                      + ".")
        if any(v["flagged"] for v in sizes_at_design.values()):
            notes += " " + FLAG_NOTE
        tables["power"] = _table("power", f"{what} of every endpoint and test at the planned {d['n_control']} vs "
                                          f"{d['n_treatment']} (enrolled; the scenario's loss to follow-up included)", rows,
                                 notes)

    targets = sorted(float(p) for p in result.settings.get("power", [0.8, 0.9]))
    target_text = " and ".join(target_pct(p) for p in targets)
    sizes = result.frame("sample_sizes")
    at_n = _type_i_at_n(result)
    if not sizes.empty:
        flagged_any = False
        for name, subset, caption in (
            ("sample_sizes", sizes[[(e, t) in keys for e, t in zip(sizes["endpoint"], sizes["test"])]],
             f"Sample size per arm for {target_text} power (key endpoints)"),
            ("sample_sizes_all", sizes, "Sample size per arm for every endpoint and test"),
        ):
            rows = []
            for r in subset.itertuples():
                size = at_n.get((str(r.endpoint), str(r.test), float(r.target_power)))
                flagged = size is not None and exceeds(size, alpha)
                flagged_any = flagged_any or flagged
                rows.append((f"{r.endpoint}|{r.test}|{r.target_power:g}", _size_row(r, label_of, size, flagged)))
            tables[name] = _table(name, caption, rows, (
                "n per arm counts analysable patients (control + treatment where the design allocates unequally: its "
                "allocation ratio is kept); a "
                "simulated endpoint's own missing values (a missing sample) are part of it. Exact: power is not monotone "
                "in n (exact tests attain only some significance levels), so the table gives the n from which power stays "
                "at or above the target, and the detail gives the first n reaching it and the largest n checked; its type "
                "I error at that n is the test's rejection rate with no effect at the control arm's rate. Simulated: root "
                "of a probit fit of simulated power on the square root of n, with its 95% Monte Carlo interval. Enrol: n / "
                "(1 - expected loss), rounded up. Analytic: closed-form answer (method in the last column)."
                + (" " + FLAG_NOTE if flagged_any else "")))

    sensitivity = size_sensitivity_table(result.frame("size_sensitivity"), label_of)
    if sensitivity is not None:
        tables["size_sensitivity"] = sensitivity

    mde = result.frame("mde")
    if not mde.empty:
        for name, subset, caption in (
            ("mde", mde[[(e, t) in keys for e, t in zip(mde["endpoint"], mde["test"])]],
             f"Minimal detectable effect with {fmt_pct(mde['target_power'].iloc[0], 0)} power at the planned size (key endpoints)"),
            ("mde_all", mde, "Minimal detectable effect for every endpoint and test"),
        ):
            rows = [(f"{r.endpoint}|{r.test}", _mde_row(r, label_of, word, sizes_at_design)) for r in subset.itertuples()]
            flagged = any(sizes_at_design.get((str(r.endpoint), str(r.test)), {}).get("flagged") for r in subset.itertuples())
            tables[name] = _table(name, caption, rows,
                                  "The effect is the endpoint's effect parameter named in the third column, varied alone; "
                                  "'none' means no effect up to the most extreme one searched reaches the target power. "
                                  "Simulated answers carry a 95% Monte Carlo interval." + (" " + FLAG_NOTE if flagged else ""))

    rates = result.frame("pilot_rates")
    if not rates.empty:
        rows = []
        for r in rates.itertuples():
            rows.append((f"{r.endpoint}|{r.arm}", {
                "Endpoint": label_of.get(r.endpoint, r.endpoint), "Arm": str(r.arm_name),
                "Assumed rate": fmt_pct(r.rate), "Expected analysable": f"{r.expected_analysable:.1f}",
                "Expected 95% CI width (percentage points)": fmt_points(r.expected_ci_width),
                **({"95% CI at the most likely count": f"{int(r.events_most_likely)}/{int(r.analysable_most_likely)}: "
                                                        + fmt_interval(r.ci_low_most_likely, r.ci_high_most_likely)}
                   if hasattr(r, "events_most_likely") and not is_missing(r.events_most_likely) else  # (older folders)
                   {"95% CI at the expected count": f"{int(r.events_at_expected)}/{int(round(r.expected_analysable))}: "
                                                    + fmt_interval(r.ci_low_at_expected, r.ci_high_at_expected)}),
                "P(at least one event)": fmt_pct(r.p_at_least_one), "P(no event)": fmt_pct(r.p_none),
            }))
        tables["pilot_rates"] = _table("pilot_rates", "What each arm's event rate can show (exact binomial)", rows,
                                       "Clopper-Pearson intervals; the expected width averages over the number of events and of "
                                       "analysable patients; the most likely count is the mode of the analysable patients, then "
                                       "of the events among them.")
    ratios = result.frame("pilot_ratios")
    if not ratios.empty:
        rows = [(str(r.endpoint), {"Endpoint": label_of.get(r.endpoint, r.endpoint), "Assumed GMR": fmt_ratio(r.gmr),
                                   "Expected 95% CI": fmt_ratio_interval(r.ci_low, r.ci_high),
                                   "Upper / lower limit": fmt_ratio(r.fold_width),
                                   PRECISION: _fmt_precision(effect_to_half_width(r.gmr, r.ci_high))})
                for r in ratios.itertuples()]
        tables["pilot_ratios"] = _table("pilot_ratios", "Expected precision of each geometric mean ratio (treatment / control)",
                                        rows, "Welch interval on the log scale at the model's SDs (linked events and missing "
                                              f"values included) and the expected analysable numbers. {PRECISION}: the "
                                              "assumed log ratio over the expected half-width of its log-scale interval. At "
                                              "1 or more, the interval expected at the assumed effect excludes a ratio of 1 "
                                              "(no effect). It ranks endpoints nearly, not exactly, as the Welch test's power "
                                              "does: exactly as the large-sample (normal) power does, but the half-width's t "
                                              "quantile depends on each endpoint's degrees of freedom. The text names the "
                                              "secondary endpoint with the largest as the most "
                                              f"promising, and those within {fmt_pct(EQUALLY_PROMISING, 0)} of it as "
                                              "equally promising. Unlike a simulated power, the ratio hardly moves with the seed "
                                              "and not with the number of simulated trials: simulation enters it only "
                                              "through one large simulated sample from the model, which gives the SDs, "
                                              "the fractions of missing values behind the expected analysable numbers, "
                                              "and, for an endpoint whose model has no closed-form true effect, the "
                                              "assumed GMR itself; the sample is large enough that their errors are well "
                                              "inside the margin.")
    sds = result.frame("pilot_sd_limits")
    if not sds.empty:
        rows = [(str(r.endpoint), {"Endpoint": label_of.get(r.endpoint, r.endpoint), "SD (log scale)": fmt_ratio(r.sd),
                                   "Degrees of freedom": fmt_n(r.df),
                                   f"{fmt_pct(r.ucl_level, 0)} upper limit / estimate": fmt_ratio(r.ucl_factor),
                                   "SD to plan on": fmt_ratio(r.sd_ucl), "Main-trial size x": fmt_ratio(r.n_inflation)})
                for r in sds.itertuples()]
        tables["pilot_sd_limits"] = _table("pilot_sd_limits", "Upper confidence limits of the SDs a pilot of this size gives "
                                                              "(Browne 1995)", rows,
                                           "Planning the main trial on the one-sided upper limit protects its power against an SD "
                                           "underestimated by the pilot; the main trial's size grows by the square of the factor.")
    guide = result.frame("pilot_guidance")
    if not guide.empty:
        rows = [(f"{i}", {"Guidance": str(r.guideline), "Basis": str(r.basis),
                          "Endpoint": label_of.get(str(r.endpoint), str(r.endpoint)) if not is_missing(r.endpoint) else "",
                          "Standardised effect": "-" if is_missing(r.standardised_effect) else f"{float(r.standardised_effect):.2f}",
                          "Per arm": fmt_n(r.recommended_per_arm),
                          "This design": fmt_n(r.design_per_arm), "Meets it": "yes" if bool(r.meets) else "no"})
                for i, r in enumerate(guide.itertuples())]
        whitehead = (guide["guideline"].astype(str).str.startswith("Whitehead")).any()
        tables["pilot_guidance"] = _table("pilot_guidance", "The design against published pilot-size guidance", rows, (
            "This design: its smaller arm. Whitehead et al. (2016) recommend 75, 25, 15 and 10 per arm for a main trial "
            "whose standardised effect is 0.1 or less, 0.2, 0.5 and 0.8; an effect between two of these takes the figure "
            "of the smaller one (the conservative reading: a smaller effect asks for a larger pilot)."
            if whitehead else "This design: its smaller arm."))

    sweep = result.frame("sweep_power")
    if not sweep.empty:
        s = sweep[(sweep["endpoint"] == prim)]
        value_cols = [c for c in s.columns if "." in str(c)]
        rows = []
        for sid, g in s.groupby("scenario", sort=False):
            for test, h in g.groupby("test", sort=False):
                mc, ex = h[h["method"] == "monte_carlo"], h[h["method"] == "exact"]
                null = "null" in h and bool(h["null"].astype(bool).iloc[0])
                rate = ex.iloc[0]["power"] if len(ex) else (mc.iloc[0]["power"] if len(mc) else None)
                flagged = null and rate is not None and (exceeds(rate, alpha) if len(ex) else
                                                         exceeds(rate, alpha, mc.iloc[0]["ci_low"], exact=False))
                row = {"Scenario": str(sid)} | {str(c): str(h.iloc[0][c]) for c in value_cols} | {
                    "Test": flagged_label(str(test), flagged),
                    "Rejection rate (simulated)": (NOT_COMPUTABLE if none_valid(mc.iloc[0].get("n_valid"))
                                                   else fmt_power(mc.iloc[0]["power"])) if len(mc) else "-",
                    "95% MC interval": fmt_interval(mc.iloc[0]["ci_low"], mc.iloc[0]["ci_high"], fmt_power)
                    if len(mc) and not none_valid(mc.iloc[0].get("n_valid")) else "-",
                    "Exact rejection rate": fmt_power(ex.iloc[0]["power"]) if len(ex) else "-",
                    "Is": "type I error" if null else "power"}
                rows.append((f"{sid}|{test}", row))
        tables["sweep"] = _table("sweep", "The config's sweep: rejection rate of the primary endpoint in every scenario "
                                          "(type I error where every effect is at its null, power elsewhere)", rows)

    multiplicity = _multiplicity(result, label_of, sizes_at_design)
    if multiplicity is not None:
        tables["multiplicity"] = multiplicity
    flow = _flow(result)
    if flow is not None:
        tables["flow"] = flow
    tables["computation"] = _computation(result)
    tables["methods"] = _methods(result, citations, label_of)

    assumptions = result.frame("assumptions")
    if not assumptions.empty:
        shown = assumptions["shown"] if "shown" in assumptions else assumptions["key"]
        rows = []
        for r, key in zip(assumptions.itertuples(), shown):
            source = "" if is_missing(r.source) else citations.resolve(str(r.source))
            value = readable_value(str(r.key), "" if is_missing(r.value) else str(r.value))
            if not source:
                source = "design choice" if _is_choice(str(r.value)) else "(none given)"
            rows.append((str(r.key), {"Key": str(key), "Value": value, "Source": source,
                                      "Set in": ORIGINS.get(str(r.origin), str(r.origin))}))
        tables["assumptions"] = _table("assumptions", "Every assumption with its source", rows,
                                       "'config': the value and comment of the config file (or the source given beside "
                                       "it); 'trialsim default': a value the config does not set, with the source the "
                                       "program cites for it; 'command line': set with --set; 'scenario': set in a "
                                       "scenario given without its config file. SOURCED: taken from the cited publication; "
                                       "ASSUMPTION: a planning value, reasoned from the cited sources where given.")
    return tables


def _type_i_at_n(result) -> dict[tuple[str, str, float], float]:
    frame = result.frame("type_i_at_n")
    if frame.empty:
        return {}
    return {(str(r.endpoint), str(r.test), float(r.target_power)): float(r.type_i_error) for r in frame.itertuples()}


def _multiplicity(result, label_of: dict, sizes: dict) -> Table | None:
    """How many tests the design runs, and what that means for a finding without adjustment."""
    power = result.frame("power")
    if power.empty:
        return None
    pairs = list(dict.fromkeys(zip(power["endpoint"].astype(str), power["test"].astype(str))))
    endpoints = list(dict.fromkeys(e for e, _ in pairs))
    alpha = float(result.design["alpha"])
    d = result.design
    primary = (str(d["primary_endpoint"]), str(d["primary_test"]))
    per_test = [sizes[p]["value"] for p in pairs if p in sizes and not sizes[p].get("none_valid")]  # computable only
    # chance of at least one rejection under no effect if the tests were independent
    independent = 1.0 - math.prod(1.0 - v for v in per_test) if per_test else 1.0 - (1.0 - alpha) ** len(pairs)
    same_endpoint = len(pairs) - len(endpoints)
    rows = [
        ("tests", {"Item": "Tests in the report (endpoint x test)", "Value": fmt_n(len(pairs))}),
        ("endpoints", {"Item": "Endpoints analysed", "Value": fmt_n(len(endpoints))}),
        ("primary", {"Item": "Primary analysis (the one that can be confirmatory)",
                     "Value": f"{label_of.get(primary[0], primary[0])}, {test_label(primary[1])}"}),
        ("secondary", {"Item": "Other tests (secondary, sensitivity)", "Value": fmt_n(len(pairs) - 1)}),
        ("same_endpoint", {"Item": "Extra tests of an endpoint already tested", "Value": fmt_n(same_endpoint)}),
    ]
    if per_test:
        rows.append(("per_test", {"Item": "Type I error of each test with no effect",
                                  "Value": fmt_interval(min(per_test), max(per_test), fmt_power)}))
    simulated = _any_rejection(result)
    if simulated is not None:
        rows.append(("any_simulated", {"Item": "Chance of at least one significant test with no effect at all, simulated "
                                               "(the tests' real dependence)",
                                       "Value": f"{fmt_pct(simulated[0])} \u00b1 {fmt_pct(simulated[1])}"}))
    rows += [
        ("any_independent", {"Item": "Chance of at least one significant test with no effect at all, if the tests were "
                                     "independent", "Value": fmt_pct(independent)}),
        ("bonferroni", {"Item": f"Level per test that keeps that chance at or below {fmt_level(alpha)} (Bonferroni)",
                        "Value": fmt_level(alpha / len(pairs)) if pairs else "-"}),
    ]
    return _table("multiplicity", "Multiplicity: how many tests the design runs", rows,
                  "Tests of the same endpoint, of one marker on several days or of correlated endpoints are not "
                  "independent, which makes the chance of at least one false positive lower than the independent "
                  "figure, but far above the level of a single test.")


def _any_rejection(result) -> tuple[float, float] | None:
    """(mean, MC SE) of "any test rejects" in the simulated null run, when the result holds it."""
    frames = getattr(result, "frames", {}) or {}
    null = frames.get("null_decisions")
    if null is None or null.empty or "outcome" not in null:
        return None
    hit = null[(null["rule"] == "any_test") & (null["outcome"] == "any_reject")]
    if hit.empty:
        return None
    return float(hit.iloc[0]["mean"]), float(hit.iloc[0]["mc_se"])


_IDENTIFIER = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)+")
# settings whose values are option names, shown in words ("risk_ratio" -> "risk ratio"); other names (endpoint and
# covariate ids) are shown as written, as the config and the other tables name them
_OPTION_KEYS = {"effect_measure", "summaries", "scheme", "imbalance", "masking", "estimand", "method", "engine",
                "flow_engine", "direction", "benefit", "spending", "kind"}


def readable_value(key: str, text: str) -> str:
    """A config value as a reader writes it (the assumptions CSV keeps the value as stored): a list without
    brackets, test names by their labels, ``risk_ratio`` as "risk ratio", true/false as yes/no, large whole
    numbers with thousands separators, an allocation ratio as "1:1"."""
    inner = text[1:-1].strip() if text.startswith("[") and text.endswith("]") and "[" not in text[1:-1] else None
    if inner is None:
        return _readable_scalar(text, key.split(".")[-1])
    items = [item.strip() for item in inner.split(",")] if inner else []
    if not items:
        return "none"
    last = key.split(".")[-1]
    if last.endswith("tests"):
        return ", ".join(test_label(item) for item in items)
    if last == "ratio":
        return ":".join(items)
    shown = [_readable_scalar(item, last) for item in items]
    return ("; " if any("," in x for x in shown) else ", ").join(shown)  # 35,000; 22,000; 12,000


def _readable_scalar(text: str, last: str = "") -> str:
    if text in ("True", "False"):
        return "yes" if text == "True" else "no"
    if _IDENTIFIER.fullmatch(text):
        return text.replace("_", " ") if last in _OPTION_KEYS else text
    try:
        number = float(text)
    except ValueError:
        return text
    return f"{number:,.0f}" if number.is_integer() and abs(number) >= 10_000 and "e" not in text.lower() else text


def _is_choice(text: str) -> bool:
    """Whether a value is a choice among names (tests, summaries, a scheme), not a number that needs a source."""
    items = text[1:-1].split(",") if text.startswith("[") and text.endswith("]") else [text]
    items = [i.strip() for i in items if i.strip()]
    if not items or text in ("True", "False"):
        return text in ("True", "False")
    try:
        [float(i) for i in items]
        return False
    except ValueError:
        return all(re.fullmatch(r"[A-Za-z][\w-]*", i) for i in items)


def _flow(result) -> Table | None:
    """The timeline of the simulated trials: time to full enrolment, study end, chance of the deadline, and who is
    analysable (against the planned numbers)."""
    frame = result.frame("flow")
    if frame.empty:
        return None
    get = {(str(r.quantity), str(r.statistic)): r for r in frame.itertuples()}
    n = int(frame["n_trials"].iloc[0])
    in_analyses = flow_in_analyses(frame)

    def days(q, stat):
        r = get.get((q, stat))
        if r is None or is_missing(r.value):
            return "-"
        return "not reached" if math.isinf(float(r.value)) else f"{float(r.value):.0f}"

    def span(q, low, high):
        a, b = days(q, low), days(q, high)
        return a if a == b == "not reached" else f"{a} to {b}"

    def median(q):
        r = get.get((q, "median"))
        if r is None or is_missing(r.value):
            return "-"
        if math.isinf(float(r.value)):
            return "not reached in half of the trials"
        return f"median {float(r.value):.0f} days ({float(r.value) / 30.4375:.1f} months)"

    def chance(r):
        p = float(r.value)
        hits = round(p * n)
        if hits < 0.001 * n:  # none or a few trials: the count and its 95% upper limit say more than a rounded percentage
            high = float(clopper_pearson(hits, n)[1])
            counted = "none" if hits == 0 else f"{hits:,}"
            return f"{100 * p:.2g}% ({counted} of {n:,} trials; 95% upper limit {100 * high:.2g}%)"
        if hits == n:
            return f"100% (all {n:,} trials)"
        if p > 0.999:  # all but a few
            return f"{100 * p:.3f}% (all but {n - hits:,} of {n:,} trials)"
        return f"{fmt_power(p)} (Monte Carlo SE {fmt_points(r.mcse, 2)} percentage points)"

    rows = []
    for q, label in (("time_to_full_enrolment", "Time to full enrolment"), ("study_duration", "Study end (last follow-up visit)")):
        rows.append((q, {"Quantity": label, "Estimate": median(q),
                         "80% of trials (days)": span(q, "lower_80", "upper_80"),
                         "95% of trials (days)": span(q, "lower_95", "upper_95")}))
    for q, label in (("p_reached_target", "Chance of reaching the target enrolment"),
                     ("p_enrolled_by_deadline", "Chance of full enrolment by the planned completion date"),
                     ("p_finished_by_deadline", "Chance of finishing (last visit) by the planned completion date")):
        r = get.get((q, "probability"))
        if r is None:
            continue
        rows.append((q, {"Quantity": label, "Estimate": chance(r), "80% of trials (days)": "-", "95% of trials (days)": "-"}))
    d = result.design
    for arm, name, planned in (("control", d.get("control_name"), d.get("n_control")),
                               ("treatment", d.get("treatment_name"), d.get("n_treatment"))):
        r = get.get((f"analysable_{arm}", "mean"))
        if r is None or is_missing(r.value):
            continue
        rows.append((f"analysable_{arm}", {"Quantity": f"Analysable patients, {name or arm} (mean per trial)",
                                           "Estimate": f"{float(r.value):.1f} of {planned} planned",
                                           "80% of trials (days)": "-", "95% of trials (days)": "-"}))
    deadline = frame["deadline_days"].iloc[0]
    if in_analyses:
        notes = f"From the patient-flow model of {n:,} simulated trials (the same trials as the power table)."
    else:
        notes = (f"From the patient-flow model with its cited default assumptions (the config has no [flow] section), "
                 f"{n:,} simulated trials. The power table assumes that every planned patient is enrolled, each endpoint "
                 "then losing the scenario's own share to follow-up (not the flow's); "
                 "a [flow] section in the config makes the analyses use who the flow enrols and keeps to the 1-month visit.")
    if not is_missing(deadline):
        notes += f" Planned completion: day {float(deadline):.0f} from the trial's start."
    return _table("flow", "Timeline of the trial (patient-flow model)", rows, notes)


def flow_in_analyses(frame: pd.DataFrame) -> bool:
    """Whether a timeline frame's flow was part of the analyses (frames written before the column existed were)."""
    if "in_analyses" not in frame.columns or frame.empty:
        return True
    value = frame["in_analyses"].iloc[0]
    return bool(value) if not isinstance(value, str) else value.strip().lower() == "true"


def _computation(result) -> Table:
    """How the numbers were computed: software and versions, seed, simulated trials, Monte Carlo error."""
    prov, settings = result.provenance, result.settings
    versions = dict(prov.get("versions") or {})
    for name in ("python", "numpy", "scipy", "pandas"):
        versions.setdefault(name, prov.get(name, ""))
    power = result.frame("power")
    mc = power[power["method"] == "monte_carlo"] if not power.empty else power
    n_sims = int(mc["n_sims"].max()) if len(mc) else settings.get("n_sims")
    max_se = float(mc["mc_se"].max()) if len(mc) else math.nan
    nice = {"numpy": "NumPy", "scipy": "SciPy", "pandas": "pandas", "simpy": "SimPy", "matplotlib": "Matplotlib",
            "seaborn": "seaborn"}

    def listed(names):
        return ", ".join(f"{nice[n]} {versions[n]}" for n in names if versions.get(n)) or "-"

    numerics = listed(("numpy", "scipy"))
    others = listed(("pandas",) + (("simpy",) if result.design.get("has_flow") else ()) + ("matplotlib", "seaborn"))
    seed = prov.get("seed")
    rows = [
        ("software", {"Item": "Software", "Value": f"trialsim {prov.get('trialsim', '')}"}),
        ("python", {"Item": "Python", "Value": f"Python {versions.get('python', '')}"}),
        ("numerics", {"Item": "Numerical libraries", "Value": numerics}),
        ("libraries", {"Item": "Other libraries (tables, figures)", "Value": others}),
        ("seed", {"Item": "Root seed", "Value": "-" if seed is None else str(seed)}),
        ("seed_origin", {"Item": "Seed given or drawn", "Value": "given" if prov.get("seed_given", True) else "drawn and recorded"}),
        ("n_sims", {"Item": "Simulated trials for the power table", "Value": "-" if n_sims is None else fmt_n(n_sims)}),
        ("max_mc_se", {"Item": "Largest Monte Carlo standard error of a simulated rejection rate (percentage points)",
                       "Value": fmt_points(max_se, 2)}),
    ]
    if settings.get("null_sims"):
        rows.append(("null_sims", {"Item": "Simulated trials for the type I errors (every effect at its null)",
                                   "Value": fmt_n(settings["null_sims"])}))
        null = result.frame("null_power")
        null_mc = null[null["method"] == "monte_carlo"] if "method" in null.columns else null.iloc[:0]
        if len(null_mc) and result.frames.get("null_power") is not result.frames.get("power"):
            rows.append(("null_max_mc_se", {"Item": "Largest Monte Carlo standard error of a simulated type I error "
                                                    "(percentage points)", "Value": fmt_points(float(null_mc["mc_se"].max()), 2)}))
    for key, label in (("search_sims", "Simulated trials per step of the sample-size and MDE searches"),
                       ("curve_sims", "Simulated trials per point of the simulated power curves")):
        if settings.get(key):
            rows.append((key, {"Item": label, "Value": fmt_n(settings[key])}))
    if prov.get("block_size"):
        rows.append(("block_size", {"Item": "Trials per random stream (block)", "Value": fmt_n(prov["block_size"])}))
    if prov.get("config_hash"):
        rows.append(("config_hash", {"Item": "Scenario hash (every value that changes the numbers)",
                                     "Value": str(prov["config_hash"])}))
    return _table("computation", "How the numbers were computed", rows,
                  "Exact figures are computed by enumeration; simulated ones come with their Monte Carlo error (95% "
                  "Clopper-Pearson intervals in the tables). The same seed, trials and software versions give the same "
                  "numbers on any machine and number of workers.")


def _methods(result, citations: Citations, label_of: dict) -> Table:
    """Every method the report uses, what for, and its reference (cited: it enters the reference list)."""
    lib = citations.library
    power = result.frame("power")
    rows = []
    pairs = list(dict.fromkeys(zip(power["endpoint"].astype(str), power["test"].astype(str)))) if not power.empty else []
    used_by: dict[str, list[str]] = {}
    for endpoint, test in pairs:
        used_by.setdefault(test, []).append(label_of.get(endpoint, endpoint))
    estimands: dict[str, list[str]] = {}
    for test, endpoints in used_by.items():
        keys = lib.method("tests", test)
        spec = TESTS.get(test) if test in TESTS else None
        if keys:
            cite = citations.short(*keys)
        elif spec is not None and spec.reference:
            ref = citations.add(f"test_{test}", spec.reference)
            cite = ref.short if ref is not None else ""
        else:
            cite = ""
        rows.append((f"test|{test}", {"Method": f"{test_label(test)} test", "Used for": _few(endpoints),
                                      "Reference": cite or "-"}))
        if spec is not None and spec.estimand in INTERVALS:
            estimands.setdefault(spec.estimand, []).append(test_label(test))
    for estimand, tests in estimands.items():
        keys = lib.method("intervals", estimand)
        rows.append((f"interval|{estimand}", {"Method": INTERVALS[estimand][0].upper() + INTERVALS[estimand][1:],
                                              "Used for": "estimates and 95% confidence intervals of " + ", ".join(tests),
                                              "Reference": citations.short(*keys) if keys else "-"}))
    if not power.empty and (power["method"] == "monte_carlo").any():
        rows.append(("monte_carlo", {"Method": "Monte Carlo simulation of whole trials; Clopper-Pearson intervals of "
                                               "simulated rejection rates",
                                     "Used for": "power and type I errors without an exact law",
                                     "Reference": citations.short(*lib.method("general", "monte_carlo"))}))
    if not power.empty and (power["method"] == "exact").any():
        keys = lib.method("general", "exact_power")
        rows.append(("exact", {"Method": "Exact enumeration over the binomial outcomes of both arms",
                               "Used for": "power and type I errors of binary endpoints with a known law",
                               "Reference": citations.short(*keys) if keys else "-"}))
    if not result.frame("pilot_rates").empty:
        rows.append(("rate_intervals", {"Method": "Clopper-Pearson interval of a rate",
                                        "Used for": "what each arm's event rate can show",
                                        "Reference": citations.short(*lib.method("general", "rate_intervals"))}))
    return _table("methods", "Methods and their references", rows)


def _few(names: list[str], limit: int = 3) -> str:
    names = list(dict.fromkeys(names))
    sep = "; " if any("," in n for n in names) else ", "  # labels with commas of their own ("<marker>, day 1")
    if len(names) <= limit:
        return sep.join(names)
    return sep.join(names[:limit]) + f" and {len(names) - limit} more"


def _arms(n_control, n_treatment, ratio) -> str:
    """A size per arm: "367" for equal arms, "258 + 516" (control + treatment) for unequal ones, as the console."""
    return fmt_n(n_control) if float(ratio) == 1.0 else f"{fmt_n(n_control)} + {fmt_n(n_treatment)}"


def size_sensitivity_table(frame: pd.DataFrame, label_of: dict) -> Table | None:
    """The primary endpoint's size over its control rate (rows) x effect (columns), from planning's size_sensitivity
    frame (:func:`trialsim.planning.sensitivity.size_sensitivity`): analysable patients per arm (to enrol), the
    design's own cell marked; None for an empty frame."""
    if frame.empty:
        return None
    first = frame.iloc[0]
    effects = sorted(frame["effect"].unique())
    levels = sorted(frame["baseline"].unique())
    digits = next((d for d in range(1, 5) if len({fmt_pct(v, d) for v in levels}) == len(levels)), 5)
    rows = []
    for level in levels:
        cells = frame[frame["baseline"] == level]
        expected = cells["p_control"].iloc[0]
        row = {f"{first.baseline_label} (as recorded)": f"{fmt_pct(level, digits)} ({fmt_pct(expected, digits)})"}
        by_effect = {float(r.effect): r for r in cells.itertuples()}
        for value in effects:
            r = by_effect.get(float(value))
            if r is None:
                cell = "-"  # the two values make no valid trial (a rate out of its range)
            elif not bool(r.reachable):
                cell = f"> {fmt_n(r.n_max)}"
            else:
                cell = f"{_arms(r.n, r.n_treatment, r.ratio)} ({_arms(r.n_enrolled, r.n_enrolled_treatment, r.ratio)})"
            if r is not None and bool(r.assumed):
                cell += " *"
            row[f"{first.effect_label} {value:g}"] = cell
        rows.append((f"{level:g}", row))
    endpoint = label_of.get(str(first.endpoint), str(first.endpoint))
    unequal = float(first.ratio) != 1.0
    return _table("size_sensitivity", (
        f"Patients per arm a main trial would need for {target_pct(first.target_power)} power on {endpoint}, over the "
        f"{first.baseline_label} and the {first.effect_label} ({test_label(str(first.test))}; exact power)"), rows, (
        "Each cell: analysable patients per arm" + (" (control + treatment: the design's allocation ratio)" if unequal
                                                    else "")
        + " and, in brackets, to enrol with the design's expected loss; computed as the sample sizes above, at other "
        "assumed values of the control rate as configured (in brackets, the control arm's rate as the trial would "
        "record it among analysable patients: silent events found at follow-up, an unmasked assessor's errors, losses) "
        "and of the effect. * the design's own assumptions; - no valid trial (a rate out of its range). The proposed "
        "size keeps its power wherever a cell needs no more patients than it."))


def _size_row(r, label_of: dict, type_i: float | None = None, flagged: bool = False) -> dict[str, str]:
    reachable = bool(r.reachable)
    if not reachable:
        n, detail = f"> {fmt_n(r.n_max)}", str(r.note) if not is_missing(r.note) else ""
        if r.method == "analytic":
            n = "not simulated"
    elif r.method == "exact":
        n = _arms(r.n, r.n_treatment, r.ratio)
        detail = (f"exact; first reaches it at {fmt_n(r.n_first)}; checked to {fmt_n(r.horizon)}"
                  + (" (the limit searched)" if r.horizon == r.n_max else ""))
    else:
        n = _arms(r.n, r.n_treatment, r.ratio)
        detail = f"simulated; 95% MC interval {fmt_n(r.n_low)} to {fmt_n(r.n_high)}"
        beyond = extrapolated(r._asdict())
        if beyond:
            detail += f"; {beyond[0].lower()}{beyond[1:-1]}"
    enrol = _arms(r.n_enrolled, r.n_enrolled_treatment, r.ratio) if reachable else "-"
    return {
        "Endpoint": label_of.get(r.endpoint, str(r.label)), "Test": flagged_label(str(r.test), flagged),
        "Target power": target_pct(r.target_power), "n per arm": n, "Detail": detail,
        "Type I error at n": "-" if type_i is None else fmt_power(type_i),
        "Expected loss": fmt_pct(r.dropout), "Enrol per arm": enrol,
        "Analytic n": fmt_n(r.n_analytic), "Analytic method": str(r.analytic_method),
    }


def _mde_row(r, label_of: dict, word: str, sizes: dict) -> dict[str, str]:
    reachable = bool(r.reachable)
    if r.method == "analytic":
        effect, interval = "not simulated", "-"
    elif reachable:
        effect = fmt_effect(r.effect)
        interval = "-" if r.method == "exact" or is_missing(r.effect_low) else fmt_ratio_interval(r.effect_low, r.effect_high)
    elif r.method == "skipped":
        effect, interval = "not computed", "-"
    else:
        effect, interval = "none", "-"
    flagged = bool(sizes.get((str(r.endpoint), str(r.test)), {}).get("flagged"))
    return {
        "Endpoint": label_of.get(r.endpoint, str(r.label)), "Test": flagged_label(str(r.test), flagged),
        "Effect parameter": str(r.parameter_label), "Assumed": fmt_effect(r.assumed),
        f"{word} at assumed": fmt_power(r.power_at_assumed), "Minimal detectable effect": effect,
        "95% MC interval": interval, "Most extreme searched": fmt_effect(r.best_effect),
        "Power there": fmt_power(r.best_power),
        "Method": {"exact": "exact", "monte_carlo": "simulated"}.get(r.method, str(r.method)),
        "Analytic": (fmt_effect(r.analytic_effect) if not is_missing(r.analytic_effect) else
                     "no closed form" if str(r.analytic_method).startswith("n/a") else "none"),
    }
