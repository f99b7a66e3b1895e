"""The report's display tables: a planning result's frames as string cells, one row key per row.

:func:`build_tables` takes a planning result (``design``, ``settings``, ``frames``; see
:class:`trialsim.planning.plan.PlanningResult`, which this layer never imports) and returns
:class:`Table` objects. The justification paragraph (:mod:`trialsim.report.paragraph`) quotes cells
of these very tables, so the numbers in the text are the numbers in the tables. Nothing here knows a
trial: names and labels come from the result's ``endpoints`` frame (or the scenario's model), and
under a null scenario (every effect parameter at its null) rejection rates are called type I errors.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from trialsim.labels import fmt_interval, fmt_n, fmt_pct, fmt_power, fmt_ratio, is_missing, test_label
from trialsim.model import build_model


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


def build_tables(result) -> dict[str, Table]:
    """Every display table of the report (those with data)."""
    d = result.design
    tables: dict[str, Table] = {}
    prim = d["primary_endpoint"]
    label_of = endpoint_labels(result)
    word = rate_word(result)
    keys = set(key_pairs(result))

    rows = [
        ("control", {"Item": "Control arm", "Value": str(d["control_name"])}),
        ("treatment", {"Item": "Experimental arm", "Value": str(d["treatment_name"])}),
        ("n_control", {"Item": f"Patients enrolled, {d['control_name']}", "Value": fmt_n(d["n_control"])}),
        ("n_treatment", {"Item": f"Patients enrolled, {d['treatment_name']}", "Value": fmt_n(d["n_treatment"])}),
        ("allocation", {"Item": "Allocation", "Value": str(d["allocation"])}),
        ("masking", {"Item": "Masking", "Value": str(d["masking"])}),
        ("alpha", {"Item": "Significance level (two-sided)", "Value": fmt_pct(d["alpha"], 0)}),
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
        for (endpoint, test), g in power.groupby(["endpoint", "test"], sort=False):
            mc = g[g["method"] == "monte_carlo"]
            ex = g[g["method"] == "exact"]
            r = mc.iloc[0] if len(mc) else g.iloc[0]
            rows.append((f"{endpoint}|{test}", {
                "Endpoint": label_of.get(endpoint, str(r["label"])),
                "Test": test_label(test),
                f"{word} (simulated)": fmt_power(r["power"]) if len(mc) else "-",
                "95% MC interval": fmt_interval(r["ci_low"], r["ci_high"], fmt_power) if len(mc) else "-",
                f"Exact {lower_first(word)}": fmt_power(ex.iloc[0]["power"]) if len(ex) else "-",
            }))
        n_sims = int(power["n_sims"].max())
        what = "Type I error (every effect at its null)" if word != "Power" else "Power"
        tables["power"] = _table("power", f"{what} of every endpoint and test at the planned {d['n_control']} vs "
                                          f"{d['n_treatment']} (enrolled; the scenario's loss to follow-up included)", rows,
                                 f"Simulated from {n_sims:,} trials with its 95% Clopper-Pearson Monte Carlo interval; "
                                 "exact by enumeration for binary endpoints with a known law.")

    targets = sorted(float(p) for p in result.settings.get("power", [0.8, 0.9]))
    target_text = " and ".join(fmt_pct(p, 0) for p in targets)
    sizes = result.frame("sample_sizes")
    if not sizes.empty:
        for name, subset, caption in (
            ("sample_sizes", sizes[[(e, t) in keys for e, t in zip(sizes["endpoint"], sizes["test"])]],
             f"Sample size per arm for {target_text} power (key endpoints)"),
            ("sample_sizes_all", sizes, "Sample size per arm for every endpoint and test"),
        ):
            rows = [(f"{r.endpoint}|{r.test}|{r.target_power:g}", _size_row(r, label_of)) for r in subset.itertuples()]
            tables[name] = _table(name, caption, rows, (
                "n per arm counts analysable patients (control arm; the treatment arm follows the allocation ratio); a "
                "simulated endpoint's own missing values (a missing sample) are part of it. Exact: power saw-tooths in n, "
                "so the table gives the n from which power stays at or above the target, and the detail gives the first n "
                "reaching it and the largest n checked. Simulated: root of a probit fit of simulated power on the square "
                "root of n, with its 95% Monte Carlo interval. Enrol: n / (1 - expected loss), rounded up. Analytic: "
                "closed-form answer (method in the last column)."))

    mde = result.frame("mde")
    if not mde.empty:
        for name, subset, caption in (
            ("mde", mde[[(e, t) in keys for e, t in zip(mde["endpoint"], mde["test"])]],
             f"Minimal detectable effect with {fmt_pct(mde['target_power'].iloc[0], 0)} power at the planned size (key endpoints)"),
            ("mde_all", mde, "Minimal detectable effect for every endpoint and test"),
        ):
            rows = [(f"{r.endpoint}|{r.test}", _mde_row(r, label_of, word)) for r in subset.itertuples()]
            tables[name] = _table(name, caption, rows,
                                  "The effect is the endpoint's effect parameter named in the third column, varied alone; "
                                  "'none' means no effect up to the most extreme one searched reaches the target power. "
                                  "Simulated answers carry a 95% Monte Carlo interval.")

    rates = result.frame("pilot_rates")
    if not rates.empty:
        rows = []
        for r in rates.itertuples():
            rows.append((f"{r.endpoint}|{r.arm}", {
                "Endpoint": label_of.get(r.endpoint, r.endpoint), "Arm": str(r.arm_name),
                "Assumed rate": fmt_pct(r.rate), "Expected analysable": f"{r.expected_analysable:.1f}",
                "Expected 95% CI width": fmt_pct(r.expected_ci_width),
                "95% CI at the expected count": f"{int(r.events_at_expected)}/{int(round(r.expected_analysable))}: "
                                                 + fmt_interval(r.ci_low_at_expected, r.ci_high_at_expected),
                "P(at least one event)": fmt_pct(r.p_at_least_one), "P(no event)": fmt_pct(r.p_none),
            }))
        tables["pilot_rates"] = _table("pilot_rates", "What each arm's event rate can show (exact binomial)", rows,
                                       "Clopper-Pearson intervals; the expected width averages over the number of events and of "
                                       "analysable patients.")
    ratios = result.frame("pilot_ratios")
    if not ratios.empty:
        rows = [(str(r.endpoint), {"Endpoint": label_of.get(r.endpoint, r.endpoint), "Assumed GMR": fmt_ratio(r.gmr),
                                   "Expected 95% CI": fmt_interval(r.ci_low, r.ci_high, fmt_ratio),
                                   "Upper / lower limit": fmt_ratio(r.fold_width)}) for r in ratios.itertuples()]
        tables["pilot_ratios"] = _table("pilot_ratios", "Expected precision of each geometric mean ratio (treatment / control)",
                                        rows, "Welch interval on the log scale at the model's SDs (linked events and missing "
                                              "values included) and the expected analysable numbers.")
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
        tables["pilot_guidance"] = _table("pilot_guidance", "The design against published pilot-size guidance", rows)

    sweep = result.frame("sweep_power")
    if not sweep.empty:
        s = sweep[(sweep["endpoint"] == prim)]
        value_cols = [c for c in s.columns if "." in str(c)]
        rows = []
        for sid, g in s.groupby("scenario", sort=False):
            for test, h in g.groupby("test", sort=False):
                mc, ex = h[h["method"] == "monte_carlo"], h[h["method"] == "exact"]
                null = "null" in h and bool(h["null"].astype(bool).iloc[0])
                row = {"Scenario": str(sid)} | {str(c): str(h.iloc[0][c]) for c in value_cols} | {
                    "Test": test_label(test),
                    "Rejection rate (simulated)": fmt_power(mc.iloc[0]["power"]) if len(mc) else "-",
                    "95% MC interval": fmt_interval(mc.iloc[0]["ci_low"], mc.iloc[0]["ci_high"], fmt_power) if len(mc) else "-",
                    "Exact rejection rate": fmt_power(ex.iloc[0]["power"]) if len(ex) else "-",
                    "Is": "type I error" if null else "power"}
                rows.append((f"{sid}|{test}", row))
        tables["sweep"] = _table("sweep", "The config's sweep: rejection rate of the primary endpoint in every scenario "
                                          "(type I error where every effect is at its null, power elsewhere)", rows)

    assumptions = result.frame("assumptions")
    if not assumptions.empty:
        rows = [(str(r.key), {"Key": str(r.key), "Value": str(r.value), "Source": str(r.source) if not is_missing(r.source) else "",
                              "Set in": str(r.origin)}) for r in assumptions.itertuples()]
        tables["assumptions"] = _table("assumptions", "Every assumption with its source", rows,
                                       "'config': the value and comment of the config file; 'default': the schema's default "
                                       "and its cited source.")
    return tables


def _size_row(r, label_of: dict) -> dict[str, str]:
    reachable = bool(r.reachable)
    if not reachable:
        n, detail = f"> {fmt_n(r.n_max)}", str(r.note) if not is_missing(r.note) else ""
        if r.method == "analytic":
            n = "not simulated"
    elif r.method == "exact":
        n = fmt_n(r.n)
        detail = f"exact; first reaches it at {fmt_n(r.n_first)}; checked to {fmt_n(r.horizon)}"
    else:
        n = fmt_n(r.n)
        detail = f"simulated; 95% MC interval {fmt_n(r.n_low)} to {fmt_n(r.n_high)}"
    return {
        "Endpoint": label_of.get(r.endpoint, str(r.label)), "Test": test_label(r.test),
        "Target power": fmt_pct(r.target_power, 0), "n per arm": n, "Detail": detail,
        "Expected loss": fmt_pct(r.dropout), "Enrol per arm": fmt_n(r.n_enrolled) if reachable else "-",
        "Analytic n": fmt_n(r.n_analytic), "Analytic method": str(r.analytic_method),
    }


def _mde_row(r, label_of: dict, word: str) -> dict[str, str]:
    reachable = bool(r.reachable)
    if r.method == "analytic":
        effect, interval = "not simulated", "-"
    elif reachable:
        effect = fmt_effect(r.effect)
        interval = "-" if r.method == "exact" or is_missing(r.effect_low) else fmt_interval(r.effect_low, r.effect_high, fmt_ratio)
    elif r.method == "skipped":
        effect, interval = "not computed", "-"
    else:
        effect, interval = "none", "-"
    return {
        "Endpoint": label_of.get(r.endpoint, str(r.label)), "Test": test_label(r.test),
        "Effect parameter": str(r.parameter_label), "Assumed": fmt_effect(r.assumed),
        f"{word} at assumed": fmt_power(r.power_at_assumed), "Minimal detectable effect": effect,
        "95% MC interval": interval, "Most extreme searched": fmt_effect(r.best_effect),
        "Power there": fmt_power(r.best_power),
        "Method": {"exact": "exact", "monte_carlo": "simulated"}.get(r.method, str(r.method)),
        "Analytic": fmt_effect(r.analytic_effect),
    }
