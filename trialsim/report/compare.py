"""The comparison of designs as a console table, a report table and a figure.

Everything here takes the comparison frame (one row per design, the columns of
``trialsim.planning.compare.COMPARE_COLUMNS``, as written to compare.csv); this layer never imports
planning. Rates carry their Monte Carlo SE or say "exact".
"""
from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from trialsim.labels import NOT_COMPUTABLE, NOT_COMPUTABLE_METHOD, aligned_table, fmt_pct, is_missing, short_test_label
from trialsim.report.figures import FIG_WIDTH, FigureStyle
from trialsim.report.tables import Table

LABEL_WIDTH = 28  # characters per line of a design's label on the figure's axis
FLOOR = 0.001  # the power panel's log axis starts at 0.1%
NO_DURATION = "none: no endpoint gives the hospital stays the flow model needs"  # duration_source without one


def _rate(x, se, method) -> str:
    if method == NOT_COMPUTABLE_METHOD:
        return NOT_COMPUTABLE
    if is_missing(x):
        return "-"
    if method == "exact":
        return f"{fmt_pct(x, 2)} (exact)"
    return f"{fmt_pct(x, 2)} \u00b1 {fmt_pct(se, 2)}" + (" (GS)" if method == "group_sequential" else "")


def _num(x, digits: int = 3) -> str:
    if is_missing(x):
        return "-"
    return f"{0.0:.{digits}f}" if round(x, digits) == 0 else f"{x:+.{digits}f}"


def _months(x) -> str:
    return "-" if is_missing(x) or not np.isfinite(x) else f"{x:.1f}"


def comparison_cells(frame: pd.DataFrame) -> list[dict[str, str]]:
    """One dict of display cells per design (shared by the console and the report)."""
    rows = []
    several = frame["test"].nunique() > 1
    harm = frame["p_stop_harm"].notna().any()
    for r in frame.itertuples():
        cells = {
            "Design": str(r.design),
            "n (C:T)": f"{r.n_control}:{r.n_treatment}",
            **({"Test": short_test_label(r.test)} if several else {}),
            "Power": _rate(r.power, r.power_se, r.power_method),
            "Type I error": _rate(r.type_i, r.type_i_se, r.type_i_method) + (" \u2020" if _above(r) else ""),
            "Bias": _num(r.bias),
            "Coverage": "-" if is_missing(r.coverage) else fmt_pct(r.coverage, 1),
            "P(go) / P(no-go)": "-" if is_missing(r.p_go) else
            f"{fmt_pct(r.p_go, 1)} / {fmt_pct(r.p_no_go, 1)}" + ("" if is_missing(r.p_go_null) else f" (go if null {fmt_pct(r.p_go_null, 1)})"),
            "Patients (treated)": f"{r.patients:.1f} ({r.treated:.1f})",
            **({"P(stop for harm)": "-" if is_missing(r.p_stop_harm) else
                f"{fmt_pct(r.p_stop_harm, 1)} (if null {fmt_pct(r.p_stop_harm_null, 1)})"} if harm else {}),
            "Months": _months(r.duration_months),
        }
        rows.append(cells)
    return rows


def _above(r) -> bool:
    """The type I error exceeds alpha: exactly, or with the 95% Monte Carlo interval above it."""
    if is_missing(r.type_i):
        return False
    if r.type_i_method == "exact":
        return r.type_i > r.alpha * 1.01
    return r.type_i - 1.96 * r.type_i_se > r.alpha


def comparison_text(frame: pd.DataFrame) -> str:
    """The console table and a few lines saying what was compared."""
    cells = comparison_cells(frame)
    header = list(cells[0]) if cells else []
    lines = aligned_table(header, [list(c.values()) for c in cells], right=set(range(1, len(header))))
    first = frame.iloc[0]
    tests = ", ".join(dict.fromkeys(short_test_label(t) for t in frame.test))
    notes = [f"Primary endpoint: {first.endpoint_label}; test: {tests} "
             f"(estimate judged: {', '.join(sorted({short_test_label(t) for t in frame.estimate_test}))}); "
             f"alpha {first.alpha:g} two-sided; {int(frame.n_sims.max()):,} simulated trials per design and per null run.",
             "Type I error: the same design with every treatment effect at its null (same seed). (GS) = group-sequential: "
             "power as the trial runs, type I error with futility stops ignored (non-binding). "
             "\u2020 = above alpha. Bias and coverage of the effect estimate against the true effect; "
             "months = median time from first referral to the last follow-up visit (flow model)."]
    untimed = [str(d) for d, source in zip(frame.design, frame.get("duration_source", [])) if source == NO_DURATION]
    if untimed:
        notes.append(f"Months: none for {', '.join(untimed)}: the flow model fills its beds with the hospital stays of an "
                     "endpoint of family 'duration' (e.g. a length of stay), which this config does not declare.")
    return "\n".join(lines + [""] + [textwrap.fill(n, 110) for n in notes])


def comparison_table(frame: pd.DataFrame) -> Table:
    """The report's "Choosing a design" table."""
    cells = comparison_cells(frame)
    table = pd.DataFrame(cells, index=[f"design_{i}" for i in range(len(cells))]).astype(str)
    first = frame.iloc[0]
    tests = ", ".join(dict.fromkeys(short_test_label(t) for t in frame.test))
    notes = (f"Power and type I error of {tests} on {first.endpoint_label.lower()} "
             f"(two-sided alpha {first.alpha:g}); the type I error is the same design simulated with no treatment effect "
             "(same seed). \u2020 = type I error above alpha (the design rejects too often when there is no effect). (GS) = "
             "group-sequential: power of the trial as it runs, type I error with futility stops ignored (non-binding). "
             "Bias and coverage: of the effect estimate against the true effect. P(go)/P(no-go): the design's Bayesian "
             "rule, where it has one, with the planned effect (and P(go) with no effect). Patients: expected enrolled (given the new treatment); fewer than planned when "
             "interim looks can stop early. Months: median trial duration from the patient-flow model.")
    return Table("designs", "Choosing a design: the registered design and its alternatives", table, notes)


def plot_comparison(frame: pd.DataFrame, axes=None):
    """Three panels, one row per design: power and type I error; coverage (and bias); patients and duration.

    Returns the array of Axes (a new figure when ``axes`` is None).
    """
    with FigureStyle():
        if axes is None:
            from matplotlib.figure import Figure

            height = 1.2 + 0.45 * len(frame)
            fig = Figure(figsize=(FIG_WIDTH * 1.4, height), layout="constrained")
            axes = fig.subplots(1, 3, sharey=True, gridspec_kw={"width_ratios": [1.3, 1, 1]})
        y = np.arange(len(frame))[::-1]
        labels = [textwrap.fill(str(d), LABEL_WIDTH) for d in frame.design]
        _power_panel(axes[0], frame, y)
        _coverage_panel(axes[1], frame, y)
        _patients_panel(axes[2], frame, y)
        axes[0].set_yticks(y, labels)
        axes[0].set_ylim(-0.6, len(frame) - 0.4)
        handles = [h for ax in (axes[0], axes[2]) for h in ax.get_legend_handles_labels()[0]]
        names = [n for ax in (axes[0], axes[2]) for n in ax.get_legend_handles_labels()[1]]
        axes[0].figure.legend(handles, names, loc="outside lower center", ncol=len(names), fontsize="x-small")
    return axes


def _interval(p, se, method):
    if method == "exact" or is_missing(se):
        return 0.0
    return 1.96 * se


def _power_panel(ax, frame, y) -> None:
    import seaborn as sns

    colours = sns.color_palette("colorblind", 3)
    off = 0.12
    for shift, col, se_col, how, name, c in ((off, "power", "power_se", "power_method", "power (planned effect)", colours[0]),
                                             (-off, "type_i", "type_i_se", "type_i_method", "type I error (no effect)", colours[1])):
        x = np.maximum(frame[col].to_numpy(float), FLOOR)  # a rate of 0 is drawn at the axis floor
        err = [_interval(p, s, m) for p, s, m in zip(x, frame[se_col], frame[how])]
        err = [np.minimum(err, x - FLOOR / 2), err]
        ax.errorbar(x, y + shift, xerr=err, fmt="o" if name.startswith("power") else "s", color=c, ms=5, capsize=2, label=name)
    alpha = float(frame.alpha.iloc[0])
    ax.axvline(alpha, color="0.3", lw=0.9, ls=(0, (4, 3)))
    ax.annotate(f"\u03b1 = {alpha:g}", xy=(alpha, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -10),
                textcoords="offset points", fontsize="x-small", color="0.3")
    # a log axis: a type I error of 0.4% and a power of 90% are both readable
    ax.set_xscale("log")
    ax.set_xlim(FLOOR, 1.15)
    ax.set_xticks([0.001, 0.01, 0.05, 0.25, 1.0], ["0.1%", "1%", "5%", "25%", "100%"])
    ax.minorticks_off()
    ax.set_xlabel("rejection rate (log scale)")
    ax.set_title("A  Power and type I error", loc="left")


def _coverage_panel(ax, frame, y) -> None:
    x = frame["coverage"].to_numpy(float)
    se = frame["coverage_se"].to_numpy(float)
    ax.errorbar(x, y, xerr=np.where(np.isfinite(se), 1.96 * se, 0.0), fmt="D", color="0.2", ms=5, capsize=2)
    level = 1 - float(frame.alpha.iloc[0])
    ax.axvline(level, color="0.3", lw=0.9, ls=(0, (4, 3)))
    ax.annotate(f"nominal {100 * level:.0f}%", xy=(level, 1.0), xycoords=("data", "axes fraction"), xytext=(-3, -10),
                textcoords="offset points", ha="right", fontsize="x-small", color="0.3")
    for xi, yi, b in zip(x, y, frame["bias"]):
        if np.isfinite(xi) and not is_missing(b):
            ax.annotate(f"bias {_num(b)}", xy=(xi, yi), xytext=(0, -7), textcoords="offset points", ha="center",
                        va="top", fontsize="xx-small", color="0.25")
    finite = x[np.isfinite(x)]
    low = min(0.8, float(finite.min()) - 0.02) if finite.size else 0.8
    ax.set_xlim(low, 1.005)
    ax.set_xlabel("interval coverage (bias below)")
    ax.set_title("B  Estimation", loc="left")


def _patients_panel(ax, frame, y) -> None:
    import seaborn as sns

    colours = sns.color_palette("colorblind", 5)
    ax.barh(y, frame["patients"], height=0.55, color=colours[2], alpha=0.45, label="enrolled")
    ax.barh(y, frame["treated"], height=0.55, color=colours[4], alpha=0.9, label="of whom given the new treatment")
    top = float(frame["patients"].max())
    for yi, p, m in zip(y, frame["patients"], frame["duration_months"]):
        text = f"{p:.0f}" + ("" if is_missing(m) or not np.isfinite(m) else f" \u00b7 {m:.0f} mo")
        ax.annotate(text, xy=(p, yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize="x-small")
    ax.set_xlim(0, top * 1.45)
    ax.set_xlabel("patients · median months")
    ax.set_title("C  Cost", loc="left")
