"""Publication figures of the planning curves (seaborn, colour-blind-safe, PNG + SVG).

Every ``plot_*`` function takes a tidy frame (as written to curves.csv, effect_curves.csv,
heatmap.csv, sample_size_curves.csv) and ``ax=None``, draws on ``ax`` (a new figure when None) and
returns the Axes. ``figure_*`` functions compose whole figures; :func:`draw_figures` writes them
all for a planning result (:class:`~trialsim.planning.plan.PlanningResult`, passed in). Axis labels
and captions come from the frames (endpoint labels, each endpoint's effect parameter), never from a
trial's names. Figures are built on :class:`matplotlib.figure.Figure` directly, so no pyplot state
or GUI backend is involved.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from trialsim.analysis import registry as tests
from trialsim.files import replace_file
from trialsim.labels import in_sentence, pct, short_endpoint_label, short_test_label, test_label, upper_first
from trialsim.results import exceeds

TARGETS = (0.8, 0.9)
FIG_WIDTH = 7.2  # inches: a two-column journal page
DPI = 200
PALETTE = "colorblind"
HEATMAP_CMAP = "cividis"  # perceptually uniform and readable with colour-vision deficiency
CONTOUR_STYLES = {0.8: "--", 0.9: "-"}
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1))]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LEGEND_WIDTH = 44  # characters per legend line: long endpoint labels wrap instead of squeezing the axes


class FigureStyle:
    """seaborn's theme as a context manager, so drawing leaves the caller's global style alone."""

    def __enter__(self):
        import matplotlib as mpl
        import seaborn as sns

        self._rc = mpl.rc_context()
        self._rc.__enter__()
        sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, font_scale=1.1,
                      rc={"svg.fonttype": "none", "axes.titleweight": "bold", "legend.frameon": False,
                          # labels come from configs: "$5 vs $10" is text, never matplotlib's mathtext
                          "text.parse_math": False})
        return self

    def __exit__(self, *exc):
        return self._rc.__exit__(*exc)


def _new_ax(ax, size=(FIG_WIDTH / 2, 3.2)):
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig.add_subplot()


def _percent_axis(axis) -> None:
    from matplotlib.ticker import PercentFormatter

    axis.set_major_formatter(PercentFormatter(1.0, decimals=0))


def _targets(ax, targets: Sequence[float] = TARGETS, *, labelled: bool = True) -> None:
    """Dashed lines at the target powers, each labelled at the left edge ("80% power")."""
    for t in targets:
        ax.axhline(t, color="0.35", lw=0.9, ls=(0, (4, 3)), zorder=1)
        if labelled:
            ax.annotate(f"{100 * t:.0f}% power", xy=(0.0, t), xycoords=("axes fraction", "data"), xytext=(3, 1.5),
                        textcoords="offset points", ha="left", va="bottom", fontsize="x-small", color="0.3", zorder=4)


def _coinciding(frame: pd.DataFrame, series: list[tuple[str, str]], x: str) -> list[list[tuple[str, str]]]:
    """Series grouped when their curves coincide: within 3 combined Monte Carlo SEs everywhere, 1.5 points on average.

    Exact series coincide when they differ by less than half a point everywhere. Each group is drawn
    once, its legend entry naming every member, so lines hidden under others are not missed.
    """
    curves = {k: frame[(frame["endpoint"] == k[0]) & (frame["test"] == k[1])].set_index(x) for k in series}
    groups: list[list[tuple[str, str]]] = []
    for k in series:
        for g in groups:
            a, b = curves[g[0]], curves[k]
            common = a.index.intersection(b.index)
            if len(common) < 3:
                continue
            diff = (a.loc[common, "power"] - b.loc[common, "power"]).abs()
            se = np.sqrt(a.loc[common, "mc_se"] ** 2 + b.loc[common, "mc_se"] ** 2)
            exact = (se == 0).all()
            if (exact and diff.max() < 0.005) or (not exact and (diff <= 3 * se + 1e-9).all() and diff.mean() < 0.015):
                g.append(k)
                break
        else:
            groups.append([k])
    return groups


def _joined(labels: list[str]) -> str:
    """Several endpoint labels as one: a shared tail after the first comma is said once."""
    if len(labels) == 1:
        return labels[0]
    heads, tails = zip(*[(lab.split(", ", 1) + [""])[:2] for lab in labels])
    if len(set(tails)) == 1 and tails[0]:
        return " and ".join(heads) + ", " + tails[0]
    return " and ".join(labels)


def _planned(ax, n: int | None, *, text: str | None = None) -> None:
    if n is None:
        return
    ax.axvline(n, color="0.2", lw=1.0, ls=":", zorder=1)
    ax.annotate(text or f"planned: {n}", xy=(n, 0.99), xycoords=("data", "axes fraction"), xytext=(3, -2),
                textcoords="offset points", va="top", ha="left", fontsize="small", color="0.2")


def _legend_below(ax, ncol: int = 1, title: str | None = None) -> None:
    """Legend under the axes (long endpoint names do not cover the curves)."""
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.2), ncol=ncol, fontsize="small", handlelength=2.8,
              title=title, title_fontsize="small", alignment="left")


def log_ticks(lo: float, hi: float, *, crowded: bool = False) -> list[float]:
    """Round numbers of patients for a log axis from ``lo`` to ``hi``: enough to read a point off it.

    Within about a decade 1-2-3-4-5-6-8 (10, 20, ..., 60, 80, 100), else 1-2-5; ``crowded`` (an x axis
    of two decades and more in a half-width panel, where "100" and "200" ran together as "100200"):
    1-2-5 below 100, 1-5 from there. Never fewer than two ticks.
    """
    wide = hi / max(lo, 1e-9) > 15
    ticks = []
    for k in range(math.floor(math.log10(max(lo, 1e-9))), math.ceil(math.log10(max(hi, 1e-9))) + 1):
        steps = (1, 2, 5) if wide and not (crowded and k >= 2) else (1, 5) if wide else (1, 2, 3, 4, 5, 6, 8)
        ticks += [m * 10**k for m in steps if lo - 1e-9 <= m * 10**k <= hi + 1e-9]
    if len(ticks) < 2:  # a narrow range (12 to 18): its own ends
        ticks = sorted({*ticks, lo, hi})
    return ticks


def _log_ticks(axis, lo: float, hi: float) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    crowded = axis.axis_name == "x" and hi / max(lo, 1e-9) >= 60
    axis.set_major_locator(FixedLocator(log_ticks(lo, hi, crowded=crowded)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_power_vs_n(frame: pd.DataFrame, ax=None, *, planned_n: int | None = None, targets: Sequence[float] = TARGETS,
                    title: str | None = None, legend: bool = True, by_test: bool = False,
                    assumed: dict[str, str] | None = None):
    """Power against analysable patients per arm: one line per (endpoint, test), Monte Carlo 95% bands.

    Exact series are drawn at every n (their saw-tooth is real); simulated ones with a shaded
    Clopper-Pearson band. The x axis is logarithmic. ``by_test``: legend by test only (one endpoint).
    ``assumed``: endpoint -> its assumed effect in words (:func:`assumed_effects`), named in its legend entry.
    """
    assumed = assumed or {}
    import seaborn as sns

    ax = _new_ax(ax)
    groups = _coinciding(frame, list(dict.fromkeys(zip(frame["endpoint"], frame["test"]))), "n_per_arm")
    colours = sns.color_palette(PALETTE, max(len(groups), 1))
    n_end = int(frame["n_per_arm"].max())
    for i, group in enumerate(groups):
        endpoint, test = group[0]
        g = frame[(frame["endpoint"] == endpoint) & (frame["test"] == test)].sort_values("n_per_arm")
        exact = (g["method"] == "exact").all()
        stops = int(g["n_per_arm"].max())
        limit = f" (to {stops} per arm: its size limit)" if stops < n_end and tests.get(test).max_n == stops else (
            f" (to {stops} per arm)" if stops < n_end else "")
        if by_test:
            lab = test_label(test) + ("" if exact or "exact" in test_label(test) else " (simulated)") + limit
        else:
            rows = [frame[(frame["endpoint"] == e) & (frame["test"] == t)] for e, t in group]
            names = [short_endpoint_label(e, r["label"].iloc[0] if "label" in r else None,
                                          r["short"].iloc[0] if "short" in r and isinstance(r["short"].iloc[0], str) else None)
                     for (e, _), r in zip(group, rows)]
            effects = list(dict.fromkeys(assumed[e] for e, _ in group if assumed.get(e)))
            lab = textwrap.fill(f"{_joined(names)}: {short_test_label(test)}" + (" (exact)" if exact else "") + limit
                                + (f", {'; '.join(effects)}" if effects else "")
                                + (" (curves coincide)" if len(group) > 1 else ""), LEGEND_WIDTH)
        ax.plot(g["n_per_arm"], g["power"], color=colours[i], ls=LINESTYLES[i % len(LINESTYLES)], lw=1.4, label=lab,
                marker=None if exact else MARKERS[i % len(MARKERS)], ms=3.5, zorder=3)
        if not exact:
            ax.fill_between(g["n_per_arm"], g["ci_low"], g["ci_high"], color=colours[i], alpha=0.22, lw=0, zorder=2)
    ax.set_xscale("log")
    _log_ticks(ax.xaxis, float(frame["n_per_arm"].min()), float(frame["n_per_arm"].max()))
    ax.set_ylim(0, 1.0)
    _percent_axis(ax.yaxis)
    ax.set_xlabel("Analysable patients per arm (log scale)")
    ax.set_ylabel("Power")
    _targets(ax, targets)
    _planned(ax, planned_n)
    if title:
        ax.set_title(title, loc="left", fontsize="medium")
    if legend:
        _legend_below(ax)
    return ax


def _effect_axis(ax, axis_name: str, frame: pd.DataFrame, null: float | None = None) -> None:
    """Effect on the x axis, from no effect (left) to the strongest effect (right). ``null``: where ``_x`` has no
    effect, when ``_x`` is not the effect itself (1 for effect / no effect, 0 for a difference)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    x = frame["_x"]
    multiplicative = bool((frame["parameter_kind"] != "difference").all())
    decreasing = bool((frame["effect"] <= frame["no_effect"] + 1e-12).all() if null is None else (x <= null + 1e-12).all())
    if multiplicative and not decreasing and (x > 0).all() and x.max() / x.min() > 3:
        ax.set_xscale("log")
        lo, hi = float(x.min()), float(x.max())
        ticks = [t for t in (0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0, 1.5, 2, 3, 4) if lo - 1e-9 <= t <= hi + 1e-9]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis_name += " (log scale)"
    if decreasing:
        ax.invert_xaxis()
    ax.set_xlabel(axis_name)


def plot_primary_power_vs_effect(frame: pd.DataFrame, ax=None, *, planned_n: int | None = None, test: str | None = None,
                                 targets: Sequence[float] = TARGETS, title: str | None = None):
    """Power of the primary endpoint against its effect parameter, one line per n per arm.

    ``frame`` holds one endpoint's rows of effect_curves.csv (exact or simulated, with bands).
    """
    import seaborn as sns

    ax = _new_ax(ax)
    g = frame[frame["test"] == (test if test is not None else frame["test"].iloc[0])].copy()
    g["_x"] = g["effect"]
    ns = sorted(g["n_per_arm"].unique())
    colours = sns.color_palette(PALETTE, len(ns))
    exact = (g["method"] == "exact").all()
    for i, n in enumerate(ns):
        h = g[g["n_per_arm"] == n].sort_values("effect")
        lab = f"{n}" + (" (planned)" if planned_n is not None and n == planned_n else "")
        ax.plot(h["effect"], h["power"], color=colours[i], ls=LINESTYLES[i % len(LINESTYLES)], lw=1.6, label=lab,
                marker=MARKERS[i % len(MARKERS)], ms=3, markevery=3 if exact else 1)
        if not exact:
            ax.fill_between(h["effect"], h["ci_low"], h["ci_high"], color=colours[i], alpha=0.18, lw=0)
    assumed = float(g["assumed"].iloc[0])
    if assumed != float(g["no_effect"].iloc[0]):
        ax.axvline(assumed, color="0.2", lw=1.0, ls=":")
        ax.annotate("assumed", xy=(assumed, 0.02), xytext=(3, 0), textcoords="offset points", fontsize="small",
                    color="0.2", va="bottom")
    _effect_axis(ax, upper_first(str(g["parameter_label"].iloc[0])), g)
    ax.set_ylim(0, 1)
    _percent_axis(ax.yaxis)
    ax.set_ylabel(f"Power, {test_label(g['test'].iloc[0])} ({'exact' if exact else 'simulated'})")
    _targets(ax, targets)
    if title:
        ax.set_title(title, loc="left", fontsize="medium")
    _legend_below(ax, ncol=2, title="analysable patients per arm")
    return ax


def plot_power_vs_effects(frame: pd.DataFrame, ax=None, *, targets: Sequence[float] = TARGETS, title: str | None = None):
    """Power of several endpoints against their own effect parameters at one size, with 95% bands.

    The x axis is each effect relative to its no-effect value (``effect / no effect``) when every
    parameter is a ratio or a rate, else the distance from no effect (``effect - no effect``); each
    endpoint's assumed value is starred on its curve (every member of a group of coinciding curves too),
    above every line, stars that would cover each other set side by side.
    """
    import seaborn as sns

    ax = _new_ax(ax)
    g = frame.copy()
    relative = bool((g["parameter_kind"] != "difference").all())
    # every curve runs from no effect towards benefit on one axis: an effect searched above no effect (an odds ratio of
    # a better grade) is drawn as its reciprocal (relative) or negative (difference), and its legend says so
    rising = g.groupby(["endpoint", "test"])["effect"].transform("max") > g["no_effect"] + 1e-12
    g["_x"] = g["effect"] / g["no_effect"] if relative else g["effect"] - g["no_effect"]
    g.loc[rising, "_x"] = 1.0 / g.loc[rising, "_x"] if relative else -g.loc[rising, "_x"]
    g["_xkey"] = g["_x"].round(6)
    series = list(dict.fromkeys(zip(g["endpoint"], g["test"])))
    up_series = set(zip(g.loc[rising, "endpoint"], g.loc[rising, "test"]))
    groups = [group for side in (False, True)  # curves drawn inverted are never merged with curves drawn as they are
              for group in _coinciding(g, [k for k in series if (k in up_series) == side], "_xkey")]
    colours = sns.color_palette(PALETTE, max(len(groups), 1))
    stars: list[tuple[float, float, tuple]] = []
    for i, group in enumerate(groups):
        endpoint, test = group[0]
        h = g[(g["endpoint"] == endpoint) & (g["test"] == test)].sort_values("_x")
        exact = (h["method"] == "exact").all()
        names = [short_endpoint_label(e, *(g[g["endpoint"] == e][c].iloc[0] for c in ("label", "short"))) for e, _ in group]
        up = (endpoint, test) in up_series
        label = textwrap.fill(f"{_joined(names)}: {short_test_label(test)}" + (" (exact)" if exact else "")
                              + (" (curves coincide)" if len(group) > 1 else "")
                              + ((" (higher is better: drawn as no effect / effect)" if relative else
                                  " (higher is better: drawn as no effect - effect)") if up else ""), LEGEND_WIDTH)
        ax.plot(h["_x"], h["power"], color=colours[i], ls=LINESTYLES[i % len(LINESTYLES)], lw=1.4,
                marker=MARKERS[i % len(MARKERS)], ms=3.5, label=label)
        if not exact:
            ax.fill_between(h["_x"], h["ci_low"], h["ci_high"], color=colours[i], alpha=0.22, lw=0)
        for e, t in group:
            m = g[(g["endpoint"] == e) & (g["test"] == t)].sort_values("_x")
            null, assumed = float(m["no_effect"].iloc[0]), float(m["assumed"].iloc[0])
            if assumed != null:
                v = assumed / null if relative else assumed - null
                if bool(rising[(g["endpoint"] == e) & (g["test"] == t)].any()):
                    v = 1.0 / v if relative else -v
                stars.append((v, float(np.interp(v, m["_x"], m["power"])), colours[i]))
    _stars(ax, stars)
    _effect_axis(ax, "Effect / no effect (1 = none)" if relative else "Effect - no effect (0 = none)", g,
                 null=1.0 if relative else 0.0)
    ax.set_ylim(0, 1)
    _percent_axis(ax.yaxis)
    ax.set_ylabel("Power")
    _targets(ax, targets)
    if title:
        ax.set_title(title, loc="left", fontsize="medium")
    _legend_below(ax)
    return ax


STAR_SIZE = 11  # points
STAR_CLASH = 0.03  # stars at one effect closer than this in power would cover each other


def _stars(ax, stars: list[tuple[float, float, tuple]]) -> None:
    """Assumed values ``(x, power, colour)`` as stars above every line; stars at one x within
    :data:`STAR_CLASH` of each other in power are set side by side, so none hides another."""
    from matplotlib.transforms import offset_copy

    placed: list[list[tuple[float, float, tuple]]] = []
    for star in sorted(stars, key=lambda s: (s[0], s[1])):
        clash = next((c for c in placed if abs(c[0][0] - star[0]) < 1e-9 and abs(c[-1][1] - star[1]) < STAR_CLASH), None)
        if clash is None:
            placed.append([star])
        else:
            clash.append(star)
    for cluster in placed:
        for k, (x, y, colour) in enumerate(cluster):
            dx = (k - (len(cluster) - 1) / 2) * 0.8 * STAR_SIZE
            ax.plot([x], [y], marker="*", ms=STAR_SIZE, color=colour, mec="black", mew=0.6, ls="none", zorder=6,
                    transform=offset_copy(ax.transData, fig=ax.figure, x=dx, y=0, units="points"))


def plot_power_heatmap(frame: pd.DataFrame, ax=None, *, planned: tuple[float, float] | None = None,
                       targets: Sequence[float] = TARGETS, colorbar: bool = True, title: str | None = None):
    """Exact power over the primary endpoint's effect (x) x analysable patients per arm (y, log), with contours.

    ``planned`` is (assumed effect, planned n per arm), starred.
    """
    ax = _new_ax(ax, size=(FIG_WIDTH, 4.2))
    table = frame.pivot_table(index="n_per_arm", columns="effect", values="power")
    x, y = table.columns.to_numpy(float), table.index.to_numpy(float)
    z = table.to_numpy()
    mesh = ax.pcolormesh(_edges(x), np.exp(_edges(np.log(y))), z, cmap=HEATMAP_CMAP, vmin=0, vmax=1, shading="flat",
                         rasterized=True)
    for t in targets:
        if np.nanmin(z) < t < np.nanmax(z):
            ax.contour(x, y, z, levels=[t], colors="black", linewidths=1.5, linestyles=CONTOUR_STYLES.get(t, "-"))
    if planned is not None:
        ax.plot([planned[0]], [planned[1]], marker="*", ms=14, color="#d55e00", mec="white", mew=0.9, ls="none",
                label="assumed design")
    ax.set_yscale("log")
    _log_ticks(ax.yaxis, float(y.min()), float(y.max()))
    if float(frame["effect"].max()) <= float(frame["no_effect"].iloc[0]):
        ax.invert_xaxis()
    ax.set_xlabel(upper_first(str(frame["parameter_label"].iloc[0])))
    ax.set_ylabel("Analysable patients per arm (log scale)")
    if title:
        ax.set_title(title, loc="left", fontsize="medium")
    ax.grid(False)
    if colorbar:
        cb = ax.figure.colorbar(mesh, ax=ax, label=f"Power, {test_label(frame['test'].iloc[0])} (exact)")
        _percent_axis(cb.ax.yaxis)
    return ax


def _edges(centres: np.ndarray) -> np.ndarray:
    c = np.asarray(centres, float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def plot_sawtooth(curve: pd.DataFrame, row: dict | pd.Series, ax=None, *, width: int = 25, title: str | None = None,
                  legend: bool = True):
    """Exact power against n around one sample size: the saw-tooth, the first n and the stable n.

    ``row`` is a sample-size row (``endpoint``, ``test``, ``target_power``, ``n_first``, ``n_stable``);
    the window is ``width`` sizes either side of them.
    """
    import seaborn as sns

    ax = _new_ax(ax)
    c = curve[(curve["endpoint"] == row["endpoint"]) & (curve["test"] == row["test"])].sort_values("n_per_arm")
    first, stable, target = int(row["n_first"]), int(row["n_stable"]), float(row["target_power"])
    c = c[(c["n_per_arm"] >= first - width) & (c["n_per_arm"] <= stable + width)]
    colours = sns.color_palette(PALETTE, 3)
    below = c["power"] < target
    ax.plot(c["n_per_arm"], c["power"], color=colours[0], lw=1.0, zorder=2)
    ax.scatter(c["n_per_arm"][~below], c["power"][~below], s=9, color=colours[0], zorder=3, label="at or above target")
    ax.scatter(c["n_per_arm"][below], c["power"][below], s=12, marker="x", color=colours[1], zorder=3, label="below target")
    ax.axhline(target, color="0.35", lw=0.9, ls=(0, (4, 3)), zorder=1, label="target power")
    # the first n is drawn over the stable n, thinner and darker: where they are the same n both stay visible
    ax.axvline(stable, color=colours[2], lw=2.6, ls="-", zorder=1.5, label="n from which power stays at or above it")
    ax.axvline(first, color="0.1", lw=1.1, ls=(0, (3, 2)), zorder=2.5, label="first n reaching the target")
    ax.set_xlabel("Analysable patients per arm")
    ax.set_ylabel(f"Exact power, {test_label(row['test'])}")
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_title(title or f"{100 * target:.0f}% power: first n {first}, stable from {stable}", loc="left")
    if legend:
        _legend_below(ax, ncol=2)
    return ax


# ---------------------------------------------------------------------------------------------------
# whole figures
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FigureFile:
    """A written figure: its name, caption and files (png, svg)."""

    name: str
    caption: str
    png: Path
    svg: Path


def _figure(width: float, height: float, ncols: int = 1, nrows: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig, stem: str | Path, *, formats: Sequence[str] = ("png", "svg")) -> tuple[Path, Path]:
    """Write ``stem.png`` (200 dpi) and ``stem.svg`` (text kept as text), or only those of ``formats``."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    if "png" in formats:
        replace_file(png, lambda tmp: fig.savefig(tmp, dpi=DPI, facecolor="white"))
    if "svg" in formats:
        replace_file(svg, lambda tmp: fig.savefig(tmp, facecolor="white"))
    return png, svg


def primary_title(design: dict, *, effect: bool = True) -> str:
    """The primary endpoint and what is assumed of it, for a panel title.

    "Wound infection: 20.0% vs 12.0% (risk ratio 0.6)"; with ``effect=False`` (a panel whose x axis
    is the effect) only the control arm: "Wound infection, control 20.0%".
    """
    text = str(design.get("primary_label") or design.get("primary_endpoint") or "Primary endpoint")
    pc, pt = design.get("primary_p_control"), design.get("primary_p_treatment")
    if not effect:
        return text + (f", control {pct(pc, 1)}" if pc is not None and not np.isnan(pc) else "")
    label = design.get("primary_effect_label")
    assumed = design.get("primary_effect_assumed")
    if pc is not None and pt is not None and not (np.isnan(pc) or np.isnan(pt)):
        text += f": {pct(pc, 1)} vs {pct(pt, 1)}"
        if label and assumed is not None and not np.isnan(assumed):
            text += f" ({label} {assumed:g})"
    elif label and assumed is not None and not np.isnan(assumed):
        text += f": {label} {assumed:g}"
    return text


def _panel_title(letter: str, text: str, width: int = 40) -> str:
    return textwrap.fill(f"{letter}  {text}", width, subsequent_indent="    ")


def assumed_effects(endpoints: pd.DataFrame) -> dict[str, str]:
    """Endpoint -> its assumed effect in words ("geometric mean ratio 0.85"), from a planning result's endpoints frame;
    the words the effect's label shares with the endpoint's (its marker) are left out. Endpoints without an effect of
    their own (one that moves only with another endpoint's events) say so."""
    out = {}
    if endpoints.empty or "effect_assumed" not in endpoints:
        return out
    for r in endpoints.itertuples():
        value, label = getattr(r, "effect_assumed", None), getattr(r, "effect_label", None)
        if value is None or not isinstance(label, str) or pd.isna(value):
            continue
        null = getattr(r, "effect_null", None)
        if null is not None and not pd.isna(null) and float(value) == float(null):
            out[str(r.endpoint)] = "no direct effect assumed"  # it moves, if at all, with the events it follows
            continue
        own = str(getattr(r, "label", "") or "").split(",")[0]
        words = label[len(own):].strip(" ,") if own and label.startswith(own) else label
        out[str(r.endpoint)] = f"assumed {words or label} {float(value):g}"
    return out


def figure_power_vs_n(curves: pd.DataFrame, *, planned_n: int | None, primary: str, title: str | None = None,
                      assumed: dict[str, str] | None = None):
    fig, axes = _figure(FIG_WIDTH, 5.6, ncols=2)
    prim = curves[curves["endpoint"] == primary]
    sec = curves[curves["endpoint"] != primary]
    if not prim.empty:
        plot_power_vs_n(prim, axes[0, 0], planned_n=planned_n, by_test=True, title=_panel_title("A", title or "Primary endpoint"))
        axes[0, 0].set_ylabel(_power_label(prim))
    else:
        axes[0, 0].set_visible(False)
    if not sec.empty:
        plot_power_vs_n(sec, axes[0, 1], planned_n=planned_n, title=_panel_title("B", "Key secondary endpoints"),
                        assumed=assumed)
        axes[0, 1].set_ylabel(_power_label(sec))
    else:
        axes[0, 1].set_visible(False)
    return fig


def _power_label(frame: pd.DataFrame) -> str:
    """The y label of a panel of power curves: what its power is (the legend says which series is which)."""
    methods = set(frame["method"])
    if methods == {"exact"}:
        return "Exact power"
    return "Simulated power" if "exact" not in methods else "Power (exact or simulated)"


def figure_power_vs_effect(effects: pd.DataFrame, *, planned_n: int | None, primary: str, title: str | None = None):
    prim = effects[effects["endpoint"] == primary]
    other = effects[(effects["endpoint"] != primary) & (effects["n_per_arm"] == planned_n)]
    panels = int(not prim.empty) + int(not other.empty)
    fig, axes = _figure(FIG_WIDTH, 5.4, ncols=max(panels, 1))
    i = 0
    if not prim.empty:
        plot_primary_power_vs_effect(prim, axes[0, i], planned_n=planned_n, title=_panel_title("A", title or "Primary endpoint"))
        i += 1
    if not other.empty:
        plot_power_vs_effects(other, axes[0, i], title=_panel_title("B" if i else "A", f"Key secondary endpoints, {planned_n} per arm"))
        axes[0, i].set_ylabel(_power_label(other))
    return fig


def figure_power_heatmap(grid: pd.DataFrame, *, planned: tuple[float, float], title: str | None = None):
    fig, axes = _figure(FIG_WIDTH, 4.9 if title else 4.6)
    plot_power_heatmap(grid, axes[0, 0], planned=planned)
    if title:  # the figure names its endpoint and assumptions without its caption
        fig.suptitle(textwrap.fill(title, int(11 * FIG_WIDTH), break_on_hyphens=False), x=0.01, ha="left",
                     fontsize="medium", fontweight="bold")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="black", ls=CONTOUR_STYLES.get(t, "-"), lw=1.5, label=f"{100 * t:.0f}% power")
               for t in TARGETS]
    handles.append(Line2D([], [], marker="*", ms=12, color="#d55e00", mec="black", mew=0.6, ls="none", label="assumed design"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize="small")
    return fig


def figure_sawtooth(saw: pd.DataFrame, rows: pd.DataFrame):
    """The exact power of the primary test around each required size (one panel per target power in ``rows``)."""
    fig, axes = _figure(FIG_WIDTH, 3.9, ncols=len(rows))
    for k, (_, row) in enumerate(rows.iterrows()):
        plot_sawtooth(saw, row, axes[0, k], legend=False,
                      title=f"{'AB'[k % 2]}  {100 * row['target_power']:.0f}%: first n {int(row['n_first'])}, "
                            f"stable from {int(row['n_stable'])}")
        if k:
            axes[0, k].set_ylabel("")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize="small")
    return fig


# The whole figures a planning report draws, by name: a planned figure names its maker here (a name, not a function,
# so that it travels to a helper process as plain data).
FIGURE_MAKERS = {
    "power_vs_n": figure_power_vs_n,
    "power_vs_effect": figure_power_vs_effect,
    "power_heatmap": figure_power_heatmap,
    "sample_size_sawtooth": figure_sawtooth,
}


@dataclass(frozen=True)
class PlannedFigure:
    """A figure of a planning report before it is drawn: its caption, where it goes, and what draws it.

    Plain data (frames and values), so :func:`draw_planned` can run in another process
    (:mod:`trialsim.report.helpers`): the report is built from :attr:`file` while the figures are drawn.
    """

    name: str
    caption: str
    stem: Path
    arguments: dict = field(hash=False)

    @property
    def file(self) -> FigureFile:
        return FigureFile(self.name, self.caption, self.stem.with_suffix(".png"), self.stem.with_suffix(".svg"))


def draw_planned(planned: PlannedFigure, formats: Sequence[str] = ("png", "svg")) -> FigureFile:
    """Draw ``planned`` under the report's style and write its ``formats`` (PNG, SVG); the same files in any process.

    Each format is drawn on a figure of its own: the constrained layout is computed again at every save, from where
    the previous save left it, so an SVG saved after a PNG of the same figure differs by a few points from one saved
    alone, and formats written by different processes would differ."""
    with FigureStyle():
        for fmt in formats:
            save_figure(FIGURE_MAKERS[planned.name](**planned.arguments), planned.stem, formats=(fmt,))
    return planned.file


def warm_up() -> None:
    """Import matplotlib and seaborn and draw one small figure to memory (fonts and the Agg renderer loaded), so that
    a helper process draws the report's first figure without waiting for either."""
    import io

    with FigureStyle():
        fig, axes = _figure(2.0, 1.5)
        axes[0, 0].plot([0, 1], [0, 1], label="trialsim")
        axes[0, 0].set_title("trialsim")
        fig.savefig(io.BytesIO(), format="png", dpi=DPI)


def planned_figures(result, out_dir: str | Path) -> list[PlannedFigure]:
    """Every figure a planning result has data for, with its caption, to be drawn into ``out_dir``."""
    out_dir = Path(out_dir)
    design = result.design
    planned_n = int(design["n_control"])
    primary = design["primary_endpoint"]
    out: list[PlannedFigure] = []
    prim_label = in_sentence(design["primary_label"])
    curves = result.frame("curves")
    if not curves.empty:
        prim = curves[curves["endpoint"] == primary]
        how = ("exact power of each test (the saw-tooth is real: exact tests attain only some significance levels)"
               if not prim.empty and (prim["method"] == "exact").all() else
               "power of each test (simulated where there is no exact law; bands are 95% Monte Carlo intervals)")
        out.append(PlannedFigure("power_vs_n", (
            f"Power against analysable patients per arm. A: {prim_label}, {how}. B: key secondary endpoints, exact "
            "where the endpoint's law is known, otherwise simulated with common random numbers; bands are 95% Monte "
            f"Carlo intervals. Dashed lines: 80% and 90% power; dotted: the planned {planned_n} per arm."),
            out_dir / "power_vs_n",
            dict(curves=curves, planned_n=planned_n, primary=primary, title=primary_title(design),
                 assumed=assumed_effects(result.frame("endpoints")))))
    effects = result.frame("effect_curves")
    if not effects.empty:
        prim = effects[effects["endpoint"] == primary]
        text = (f"A: power for {prim_label} against its {prim['parameter_label'].iloc[0]} at several analysable "
                "sizes per arm (dotted: the assumed value). " if not prim.empty else "")
        out.append(PlannedFigure("power_vs_effect", (
            f"Power against the size of the treatment effect. {text}"
            f"{'B' if text else 'A'}: power of the key secondary endpoints at the planned {planned_n} per arm against "
            "their own effect parameters, relative to no effect (stars: assumed values; bands: 95% Monte Carlo "
            "intervals of simulated series)."),
            out_dir / "power_vs_effect",
            dict(effects=effects, planned_n=planned_n, primary=primary, title=primary_title(design, effect=False))))
    grid = result.frame("heatmap")
    if not grid.empty:
        test = test_label(grid["test"].iloc[0])
        parameter = grid["parameter_label"].iloc[0]
        out.append(PlannedFigure("power_heatmap", (
            f"Exact power for {prim_label} ({test}) over its {parameter} and the analysable patients per arm. Contours: "
            f"80% (dashed) and 90% (solid) power. Star: the assumed {parameter} {float(grid['assumed'].iloc[0]):.3g} at "
            f"the planned {planned_n} per arm."),
            out_dir / "power_heatmap",
            dict(grid=grid, planned=(float(grid["assumed"].iloc[0]), planned_n),
                 title=f"{primary_title(design, effect=False)}: exact power, {test}")))
    saw = result.frame("sample_size_curves")
    sizes = result.frame("sample_sizes")
    if not saw.empty and not sizes.empty:
        test = design["primary_test"]
        ok = sizes[(sizes["endpoint"] == primary) & (sizes["test"] == test) & (sizes["method"] == "exact")]
        ok = ok[ok["reachable"].astype(bool)].sort_values("target_power")
        if not ok.empty:
            out.append(PlannedFigure("sample_size_sawtooth", (
                f"Exact power of the {test_label(test)} test for {prim_label} around the required size. Power is not "
                "monotone in n (crosses: sizes below the target, the grey dashed line); the black dashed line marks "
                "the first n reaching the target, the wide solid line the n from which power never drops below it "
                "again (checked up to the horizon in the sample-size table)."),
                out_dir / "sample_size_sawtooth", dict(saw=saw, rows=ok)))
    return out


def draw_figures(result, out_dir: str | Path) -> list[FigureFile]:
    """Draw every figure a planning result has data for (:func:`planned_figures`) here, as PNG and SVG."""
    return [draw_planned(p) for p in planned_figures(result, out_dir)]


# ---------------------------------------------------------------------------------------------------
# the user's own ranges (trialsim curves --n/--effect/--control-rate/--ratio, or a sweep's grid)
# ---------------------------------------------------------------------------------------------------
def _effect_entry(value: float, null: float, kind: str) -> str:
    if np.isnan(value):
        return "as configured"
    text = f"{value:g}"
    if value == null:
        return text + " (no effect)"
    if kind != "difference" and null:
        text += f" ({value / null - 1:+.0%})"
    return text


def plot_power_ranges(frame: pd.DataFrame, ax=None, *, targets: Sequence[float] = TARGETS, title: str | None = None,
                      legend: bool = True):
    """Power against patients per arm, one line per effect value, for one panel of a range grid.

    ``frame`` holds one test's rows of one facet (:data:`trialsim.planning.curves.RANGE_COLUMNS`):
    exact series as lines, simulated ones as points with 95% Monte Carlo intervals.
    """
    import seaborn as sns

    ax = _new_ax(ax)
    effects = sorted(frame["effect"].unique(), key=lambda v: (np.isnan(v), abs(v - frame["no_effect"].iloc[0])
                                                               if not np.isnan(v) else 0))
    colours = sns.color_palette("viridis_r" if len(effects) > 1 else PALETTE, max(len(effects), 1))
    null, kind = float(frame["no_effect"].iloc[0]), str(frame["parameter_kind"].iloc[0])
    for i, v in enumerate(effects):
        h = frame[frame["effect"].isna()] if np.isnan(v) else frame[frame["effect"] == v]
        h = h.sort_values("n_per_arm")
        exact = (h["method"] == "exact").all()
        few = len(h) <= 12
        label = _effect_entry(v, null, kind)
        if v == null:
            label += ": type I error" + (" above alpha" if "alpha" in h and _above_alpha(h) else "")
        ax.plot(h["n_per_arm"], h["power"], color=colours[i], ls=LINESTYLES[i % len(LINESTYLES)], lw=1.5,
                marker=MARKERS[i % len(MARKERS)] if few else None, ms=4, label=label, zorder=3)
        if not exact:
            ax.errorbar(h["n_per_arm"], h["power"], yerr=[h["power"] - h["ci_low"], h["ci_high"] - h["power"]], fmt="none",
                        ecolor=colours[i], elinewidth=0.9, capsize=2, zorder=2)
    x = frame["n_per_arm"]
    if x.max() / max(x.min(), 1) >= 8:
        ax.set_xscale("log")
        _log_ticks(ax.xaxis, float(x.min()), float(x.max()))
    ax.set_ylim(0, 1.0)
    _percent_axis(ax.yaxis)
    ax.set_xlabel(_range_x_label(frame, log=ax.get_xscale() == "log"))
    ax.set_ylabel("Power")
    _targets(ax, targets)
    levels = frame["alpha"].dropna().unique() if "alpha" in frame else []
    alpha = float(levels[0]) if len(levels) == 1 else None  # one level per panel (a sweep over alpha draws none)
    if null in effects and alpha is not None:  # the no-effect line is a type I error: against alpha, not the targets
        ax.axhline(alpha, color="0.35", lw=0.9, ls=":", zorder=1)
        ax.annotate(f"alpha {100 * alpha:g}%", xy=(1.0, alpha), xycoords=("axes fraction", "data"), xytext=(-3, 1.5),
                    textcoords="offset points", ha="right", va="bottom", fontsize="x-small", color="0.3", zorder=4)
    if title:
        ax.set_title(title, loc="left", fontsize="medium")
    if legend:
        _legend_below(ax, ncol=2, title=upper_first(str(frame["parameter_label"].iloc[0])))
    return ax


def _above_alpha(rows: pd.DataFrame) -> bool:
    """Whether a no-effect series rejects more often than alpha anywhere (the power table's rule, :func:`exceeds`)."""
    return any(exceeds(r.power, r.alpha, r.ci_low, exact=r.method == "exact") for r in rows.itertuples())


def _range_x_label(frame: pd.DataFrame, *, log: bool = False) -> str:
    arm = "in the control arm" if (frame["ratio"] != 1).any() else "per arm"
    text = f"Patients {arm} (enrolled)" if (frame["basis"] == "enrolled").all() else f"Analysable patients {arm}"
    return text[:-1] + ", log scale)" if log and text.endswith(")") else text + (" (log scale)" if log else "")


def figure_power_ranges(frame: pd.DataFrame, *, title: str | None = None):
    """One panel per facet (control rate, allocation ratio) of one test's range grid, a shared legend below."""
    facets = list(dict.fromkeys(frame["facet"].fillna("")))
    ncols = len(facets) if len(facets) <= 3 else 2 if len(facets) == 4 else 3
    nrows = -(-len(facets) // ncols)
    width = max(FIG_WIDTH, 2.75 * ncols) if ncols > 1 else FIG_WIDTH / 1.6
    fig, axes = _figure(width, 0.6 + 3.0 * nrows + 0.8, ncols=ncols, nrows=nrows)
    for k, facet in enumerate(facets):
        ax = axes[k // ncols, k % ncols]
        # a panel's title wrapped to its axes (about 8 bold characters an inch): "control rate 12% (analysed 12.4%)"
        heading = textwrap.fill(facet, max(16, int(8 * width / ncols)), break_on_hyphens=False) if facet else None
        plot_power_ranges(frame[frame["facet"].fillna("") == facet], ax, legend=False, title=heading)
        ax.set_xlabel(_range_x_label(frame, log=ax.get_xscale() == "log"))  # one wording for every panel
        if k % ncols:
            ax.set_ylabel("")
        if k < len(facets) - ncols:
            ax.set_xlabel("")
        elif k // ncols < nrows - 1:  # above an empty slot of the last row: keep its x label, it is the lowest
            ax.xaxis.set_tick_params(labelbottom=True)
    for k in range(len(facets), nrows * ncols):
        axes[k // ncols, k % ncols].set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4 if ncols > 1 else 2), fontsize="small",
               title=upper_first(str(frame["parameter_label"].iloc[0])), title_fontsize="small")
    if title:  # wrapped to the figure's width (about 11 bold characters an inch at this size)
        fig.suptitle(textwrap.fill(title, max(30, int(11 * width)), break_on_hyphens=False), x=0.01, ha="left",
                     fontsize="medium", fontweight="bold")
    return fig


def range_title(frame: pd.DataFrame) -> str:
    """What a range figure shows: the endpoint, the test and how power was computed."""
    test = frame["test"].iloc[0]
    exact = (frame["method"] == "exact").all()
    how = "exact" if exact else ("simulated" if (frame["method"] == "monte_carlo").all() else "exact or simulated")
    return f"{frame['label'].iloc[0]}: {how} power, {test_label(test)}"


def draw_range_figures(frame: pd.DataFrame, out_dir: str | Path, *, stem: str = "power_ranges",
                       alpha: float | None = None) -> list[FigureFile]:
    """One figure per test of a range grid (:func:`trialsim.planning.curves.power_ranges` or ``sweep_grid``)."""
    out_dir = Path(out_dir)
    files = []
    several = frame["test"].nunique() > 1
    with FigureStyle():
        for test, g in frame.groupby("test", sort=False):
            fig = figure_power_ranges(g, title=range_title(g))
            name = f"{stem}_{test}" if several else stem
            png, svg = save_figure(fig, out_dir / name)
            enrolled = (g["basis"] == "enrolled").all()
            what = ("each point one scenario of the sweep as run (enrolled patients, dropout included), exact where the "
                    "run has an exact figure, else simulated with its 95% Monte Carlo interval" if enrolled else
                    "per analysable patient, " + ("exact at every size" if (g["method"] == "exact").all() else
                                                   "simulated points with 95% Monte Carlo intervals"))
            level = f", two-sided alpha {alpha:g}" if alpha is not None else ""
            files.append(FigureFile(name, (
                f"{range_title(g)}{level} against patients per arm, one line per {g['parameter_label'].iloc[0]}"
                + (", one panel per " + " and ".join(x for x, on in (("control event rate", g["control_rate"].nunique() > 1),
                                                                    ("allocation ratio", g["ratio"].nunique() > 1)) if on)
                   if g["facet"].fillna("").nunique() > 1 else "")
                + f"; {what}. Dashed lines: 80% and 90% power" + ("; dotted: alpha, against which the no-effect line (a type I "
                                                                  "error) is read" if (g["effect"] == g["no_effect"]).any() else "")
                + "."), png, svg))
    return files


# ------------------------------------------------------------------------------- Bayesian go / no-go
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
    with FigureStyle():
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
            ax.set_title("\n".join(textwrap.wrap(title, 48, break_on_hyphens=False)), fontsize="medium")
        ax.legend(loc="center right", fontsize="small")
    return ax
