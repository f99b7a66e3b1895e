"""Figures of the Bayesian go / no-go rule: decision probabilities against the true effect."""
from __future__ import annotations

import textwrap

import pandas as pd

from trialsim.report.figures import _new_ax, _percent_axis, _Style, FIG_WIDTH

DECISION_STYLE = {  # decision -> (label, colour, line style); colours readable with colour-vision deficiency
    "go": ("Go", "#0072B2", "-"),
    "no_go": ("No-go", "#D55E00", "--"),
    "inconclusive": ("Inconclusive", "#7F7F7F", "-."),
}
EFFECT_LABELS = {"ratio": "True risk ratio (treatment / control)", "difference": "True difference (treatment - control)",
                 "rate": "True treatment-arm rate"}


def plot_go_nogo(frame: pd.DataFrame, ax=None, *, title: str | None = None):
    """P(go), P(no-go) and P(inconclusive) against the true effect, null and assumed effect marked.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`trialsim.planning.gonogo.go_nogo_curve`'s table (``effect``, ``go``, ``no_go``,
        ``inconclusive``, ``is_null``, ``is_assumed``, ``effect_kind``).
    ax : matplotlib Axes, optional
        Drawn into; a new figure when None.
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    with _Style():
        ax = _new_ax(ax, size=(FIG_WIDTH / 1.6, 3.4))
        frame = frame.sort_values("effect")
        for key, (label, colour, style) in DECISION_STYLE.items():
            ax.plot(frame["effect"], frame[key], color=colour, ls=style, lw=1.8, marker="o", ms=3, label=label)
        for flag, text in (("is_null", "null"), ("is_assumed", "assumed")):
            for x in frame.loc[frame[flag], "effect"]:
                ax.axvline(x, color="0.2", lw=1.0, ls=":", zorder=1)
                ax.annotate(text, xy=(x, 0.99), xycoords=("data", "axes fraction"), xytext=(3, -2),
                            textcoords="offset points", va="top", ha="left", fontsize="small", color="0.2")
        ax.set_ylim(0.0, 1.0)
        _percent_axis(ax.yaxis)
        ax.set_xlabel(EFFECT_LABELS.get(str(frame["effect_kind"].iloc[0]), "True effect"))
        ax.set_ylabel("Probability of the decision")
        if title:
            ax.set_title("\n".join(textwrap.wrap(title, 48)), fontsize="medium")
        ax.legend(loc="center right", fontsize="small")
    return ax
