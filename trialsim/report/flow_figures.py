"""Figures of the patient flow (seaborn, imported lazily): enrolment over calendar time, study duration."""
from __future__ import annotations

from trialsim.flow.run import FlowBatch
from trialsim.flow.summary import FLOW_LABELS, FlowSummary, summarise_flow


def _summary(summary_or_batch) -> FlowSummary:
    if isinstance(summary_or_batch, FlowBatch):
        return summarise_flow(summary_or_batch)
    if isinstance(summary_or_batch, FlowSummary):
        return summary_or_batch
    raise TypeError(f"expected a FlowSummary or FlowBatch, got {type(summary_or_batch).__name__}")


def _deadline(ax, summary: FlowSummary, colour) -> None:
    if summary.deadline_days is None:
        return
    when = f"{summary.deadline_date}, " if summary.deadline_date else ""
    ax.axvline(summary.deadline_days, color=colour, linestyle="--", linewidth=1.2,
               label=f"{summary.deadline_label} ({when}day {summary.deadline_days:g})")


def plot_enrolment(summary_or_batch, *, ax=None):
    """Cumulative enrolment over calendar time: median and 80% / 95% bands over simulated trials.

    Parameters
    ----------
    summary_or_batch : FlowSummary or FlowBatch
        A summary built from a batch (it needs per-patient enrolment times).
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator

    summary = _summary(summary_or_batch)
    curve = summary.enrolment_curve
    if curve is None:
        raise ValueError("this summary has no enrolment curve: build it from a FlowBatch (simulate_flow), not from per-trial arrays")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.6), layout="constrained")  # constrained: room for the legend below
    blue, orange, _, _, _, _, _, grey = sns.color_palette("colorblind", 8)
    x = curve["time_days"]
    ax.fill_between(x, curve["lower_95"], curve["upper_95"], step="post", color=blue, alpha=0.18, linewidth=0, label="95% of trials")
    ax.fill_between(x, curve["lower_80"], curve["upper_80"], step="post", color=blue, alpha=0.35, linewidth=0, label="80% of trials")
    ax.step(x, curve["median"], where="post", color=blue, linewidth=2, label="Median")
    if summary.target is not None:
        ax.axhline(summary.target, color=grey, linestyle=":", linewidth=1.2, label=f"{FLOW_LABELS['target']} ({summary.target})")
    _deadline(ax, summary, orange)
    ax.set_xlabel(FLOW_LABELS["time_days"])
    ax.set_ylabel(FLOW_LABELS["enrolled_cumulative"])
    ax.set_xlim(0, float(x.iloc[-1]))
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Cumulative enrolment ({summary.n_trials:,} simulated trials)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False, fontsize="small")
    return ax


def plot_duration(summary_or_batch, *, ax=None):
    """Distribution over simulated trials of the time to full enrolment and of the study duration, with the deadline.

    Bars are shares of all simulated trials, so the enrolment histogram sums to the chance of
    reaching the target at all.

    Parameters
    ----------
    summary_or_batch : FlowSummary or FlowBatch
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    import seaborn as sns

    summary = _summary(summary_or_batch)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.6), layout="constrained")
    enrolment = summary.enrolment_days[np.isfinite(summary.enrolment_days)]
    reached = summary.p_reached_target.value
    enrolment_label = FLOW_LABELS["time_to_full_enrolment"] + ("" if reached == 1.0 else f" (reached in {100 * reached:.1f}%)")
    tidy = pd.concat([
        pd.DataFrame({"days": enrolment, "quantity": enrolment_label}),
        pd.DataFrame({"days": summary.study_duration_days, "quantity": FLOW_LABELS["study_duration"]}),
    ], ignore_index=True)
    tidy["share"] = 1.0 / summary.n_trials
    palette = sns.color_palette("colorblind", 8)
    sns.histplot(data=tidy, x="days", hue="quantity", weights="share", stat="count", element="step",
                 binwidth=7, palette=[palette[0], palette[2]], ax=ax)
    legend = ax.get_legend()  # seaborn's hue legend, merged below with the deadline line
    handles, labels = list(legend.legend_handles), [t.get_text() for t in legend.get_texts()]
    legend.remove()
    _deadline(ax, summary, palette[1])
    extra_handles, extra_labels = ax.get_legend_handles_labels()
    ax.legend(handles + extra_handles, labels + extra_labels, loc="upper center", bbox_to_anchor=(0.5, -0.14),
              ncol=2, frameon=False, fontsize="small")
    ax.set_xlabel(FLOW_LABELS["time_days"])
    ax.set_ylabel("Share of simulated trials (per 7 days)")
    ax.set_title(f"Time to full enrolment and study duration ({summary.n_trials:,} simulated trials)")
    ax.set_xlim(left=0)
    return ax
