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

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from trialsim.labels import series_label, test_label

TARGETS = (0.8, 0.9)
FIG_WIDTH = 7.2  # inches: a two-column journal page
DPI = 200
PALETTE = "colorblind"
HEATMAP_CMAP = "cividis"  # perceptually uniform and readable with colour-vision deficiency
CONTOUR_STYLES = {0.8: "--", 0.9: "-"}
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1))]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LEGEND_WIDTH = 44  # characters per legend line: long endpoint labels wrap instead of squeezing the axes


def _series(endpoint: str, test: str, rows: pd.DataFrame, suffix: str = "") -> str:
    """A legend entry: the endpoint's short label (else its label) and the test, wrapped."""
    short = rows["short"].iloc[0] if "short" in rows and isinstance(rows["short"].iloc[0], str) else None
    label = rows["label"].iloc[0] if "label" in rows else None
    return textwrap.fill(series_label(endpoint, test, label, short) + suffix, LEGEND_WIDTH)


class _Style:
    """seaborn's theme as a context manager, so drawing leaves the caller's global style alone."""

    def __enter__(self):
        import matplotlib as mpl
        import seaborn as sns

        self._rc = mpl.rc_context()
        self._rc.__enter__()
        sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, font_scale=1.1,
                      rc={"svg.fonttype": "none", "axes.titleweight": "bold", "legend.frameon": False})
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


def _targets(ax, targets: Sequence[float] = TARGETS) -> None:
    for t in targets:
        ax.axhline(t, color="0.35", lw=0.9, ls=(0, (4, 3)), zorder=1)


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


def _log_ticks(axis, lo: float, hi: float) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ticks = [t for t in (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if lo <= t <= hi]
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_power_vs_n(frame: pd.DataFrame, ax=None, *, planned_n: int | None = None, targets: Sequence[float] = TARGETS,
                    title: str | None = None, legend: bool = True, by_test: bool = False):
    """Power against analysable patients per arm: one line per (endpoint, test), Monte Carlo 95% bands.

    Exact series are drawn at every n (their saw-tooth is real); simulated ones with a shaded
    Clopper-Pearson band. The x axis is logarithmic. ``by_test``: legend by test only (one endpoint).
    """
    import seaborn as sns

    ax = _new_ax(ax)
    series = list(dict.fromkeys(zip(frame["endpoint"], frame["test"])))
    colours = sns.color_palette(PALETTE, max(len(series), 1))
    for i, (endpoint, test) in enumerate(series):
        g = frame[(frame["endpoint"] == endpoint) & (frame["test"] == test)].sort_values("n_per_arm")
        exact = (g["method"] == "exact").all()
        if by_test:
            lab = test_label(test) + ("" if exact or "exact" in test_label(test) else " (simulated)")
        else:
            lab = _series(endpoint, test, g, " (exact)" if exact else "")
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
        ax.set_title(title, loc="left")
    if legend:
        _legend_below(ax)
    return ax


def _effect_axis(ax, axis_name: str, frame: pd.DataFrame) -> None:
    """Effect on the x axis, from no effect (left) to the strongest effect (right)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    x = frame["_x"]
    multiplicative = bool((frame["parameter_kind"] != "difference").all())
    decreasing = bool((frame["effect"] <= frame["no_effect"] + 1e-12).all())
    if multiplicative and not decreasing and (x > 0).all() and x.max() / x.min() > 3:
        ax.set_xscale("log")
        lo, hi = float(x.min()), float(x.max())
        ticks = [t for t in (0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0, 1.5, 2, 3, 4) if lo - 1e-9 <= t <= hi + 1e-9]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
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
    _effect_axis(ax, str(g["parameter_label"].iloc[0]).capitalize(), g)
    ax.set_ylim(0, 1)
    _percent_axis(ax.yaxis)
    ax.set_ylabel(f"Power, {test_label(g['test'].iloc[0])} ({'exact' if exact else 'simulated'})")
    _targets(ax, targets)
    if title:
        ax.set_title(title, loc="left")
    _legend_below(ax, ncol=2, title="analysable patients per arm")
    return ax


def plot_power_vs_effects(frame: pd.DataFrame, ax=None, *, targets: Sequence[float] = TARGETS, title: str | None = None):
    """Power of several endpoints against their own effect parameters at one size, with 95% bands.

    The x axis is each effect relative to its no-effect value (``effect / no effect``) when every
    parameter is a ratio or a rate, else the distance from no effect (``effect - no effect``); each
    line's assumed value is starred.
    """
    import seaborn as sns

    ax = _new_ax(ax)
    g = frame.copy()
    relative = bool((g["parameter_kind"] != "difference").all())
    g["_x"] = g["effect"] / g["no_effect"] if relative else g["effect"] - g["no_effect"]
    series = list(dict.fromkeys(zip(g["endpoint"], g["test"])))
    colours = sns.color_palette(PALETTE, max(len(series), 1))
    for i, (endpoint, test) in enumerate(series):
        h = g[(g["endpoint"] == endpoint) & (g["test"] == test)].sort_values("_x")
        exact = (h["method"] == "exact").all()
        ax.plot(h["_x"], h["power"], color=colours[i], ls=LINESTYLES[i % len(LINESTYLES)], lw=1.4,
                marker=MARKERS[i % len(MARKERS)], ms=3.5,
                label=_series(endpoint, test, h, " (exact)" if exact else ""))
        if not exact:
            ax.fill_between(h["_x"], h["ci_low"], h["ci_high"], color=colours[i], alpha=0.22, lw=0)
        null, assumed = float(h["no_effect"].iloc[0]), float(h["assumed"].iloc[0])
        if assumed != null:
            v = assumed / null if relative else assumed - null
            y = float(np.interp(v, h["_x"], h["power"]))
            ax.plot([v], [y], marker="*", ms=11, color=colours[i], mec="black", mew=0.6, zorder=5, ls="none")
    _effect_axis(ax, "Effect / no effect (1 = none)" if relative else "Effect - no effect (0 = none)", g)
    ax.set_ylim(0, 1)
    _percent_axis(ax.yaxis)
    ax.set_ylabel("Power")
    _targets(ax, targets)
    if title:
        ax.set_title(title, loc="left")
    _legend_below(ax)
    return ax


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
    ax.set_xlabel(str(frame["parameter_label"].iloc[0]).capitalize())
    ax.set_ylabel("Analysable patients per arm (log scale)")
    if title:
        ax.set_title(title, loc="left")
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
    ax.axhline(target, color="0.35", lw=0.9, ls=(0, (4, 3)))
    ax.axvline(first, color=colours[2], lw=1.2, ls="--", label="first n reaching the target")
    ax.axvline(stable, color=colours[2], lw=1.6, ls="-", label="n from which power stays at or above it")
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


def save_figure(fig, stem: str | Path) -> tuple[Path, Path]:
    """Write ``stem.png`` (200 dpi) and ``stem.svg`` (text kept as text)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    fig.savefig(png, dpi=DPI, facecolor="white")
    fig.savefig(svg, facecolor="white")
    return png, svg


def figure_power_vs_n(curves: pd.DataFrame, *, planned_n: int | None, primary: str):
    fig, axes = _figure(FIG_WIDTH, 5.4, ncols=2)
    prim = curves[curves["endpoint"] == primary]
    sec = curves[curves["endpoint"] != primary]
    exact = not prim.empty and (prim["method"] == "exact").all()
    if not prim.empty:
        plot_power_vs_n(prim, axes[0, 0], planned_n=planned_n, title=f"A  Primary endpoint{' (exact)' if exact else ''}",
                        by_test=True)
    else:
        axes[0, 0].set_visible(False)
    if not sec.empty:
        plot_power_vs_n(sec, axes[0, 1], planned_n=planned_n, title="B  Secondary endpoints")
        axes[0, 1].set_ylabel("")
    else:
        axes[0, 1].set_visible(False)
    return fig


def figure_power_vs_effect(effects: pd.DataFrame, *, planned_n: int | None, primary: str):
    prim = effects[effects["endpoint"] == primary]
    other = effects[(effects["endpoint"] != primary) & (effects["n_per_arm"] == planned_n)]
    panels = int(not prim.empty) + int(not other.empty)
    fig, axes = _figure(FIG_WIDTH, 5.4, ncols=max(panels, 1))
    i = 0
    if not prim.empty:
        plot_primary_power_vs_effect(prim, axes[0, i], planned_n=planned_n, title="A  Primary endpoint")
        i += 1
    if not other.empty:
        plot_power_vs_effects(other, axes[0, i], title=f"{'B' if i else 'A'}  Secondaries, {planned_n} per arm")
    return fig


def figure_power_heatmap(grid: pd.DataFrame, *, planned: tuple[float, float]):
    fig, axes = _figure(FIG_WIDTH, 4.6)
    plot_power_heatmap(grid, axes[0, 0], planned=planned)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="black", ls=CONTOUR_STYLES.get(t, "-"), lw=1.5, label=f"{100 * t:.0f}% power")
               for t in TARGETS]
    handles.append(Line2D([], [], marker="*", ms=12, color="#d55e00", mec="black", mew=0.6, ls="none", label="assumed design"))
    fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), fontsize="small")
    return fig


def draw_figures(result, out_dir: str | Path) -> list[FigureFile]:
    """Draw every figure a planning result has data for; PNG and SVG."""
    out_dir = Path(out_dir)
    design = result.design
    planned_n = int(design["n_control"])
    primary = design["primary_endpoint"]
    files: list[FigureFile] = []
    prim_label = design["primary_label"][:1].lower() + design["primary_label"][1:]
    with _Style():
        curves = result.frame("curves")
        if not curves.empty:
            fig = figure_power_vs_n(curves, planned_n=planned_n, primary=primary)
            png, svg = save_figure(fig, out_dir / "power_vs_n")
            prim = curves[curves["endpoint"] == primary]
            how = ("exact power of each test (the saw-tooth is real: exact tests attain only some significance levels)"
                   if not prim.empty and (prim["method"] == "exact").all() else
                   "power of each test (simulated where there is no exact law; bands are 95% Monte Carlo intervals)")
            files.append(FigureFile("power_vs_n", (
                f"Power against analysable patients per arm. A: {prim_label}, {how}. B: key secondary endpoints, exact "
                "where the endpoint's law is known, otherwise simulated with common random numbers; bands are 95% Monte "
                f"Carlo intervals. Dashed lines: 80% and 90% power; dotted: the planned {planned_n} per arm."), png, svg))
        effects = result.frame("effect_curves")
        if not effects.empty:
            fig = figure_power_vs_effect(effects, planned_n=planned_n, primary=primary)
            png, svg = save_figure(fig, out_dir / "power_vs_effect")
            prim = effects[effects["endpoint"] == primary]
            text = (f"A: power for {prim_label} against its {prim['parameter_label'].iloc[0]} at several analysable "
                    "sizes per arm (dotted: the assumed value). " if not prim.empty else "")
            files.append(FigureFile("power_vs_effect", (
                f"Power against the size of the treatment effect. {text}"
                f"{'B' if text else 'A'}: power of the key secondary endpoints at the planned {planned_n} per arm against "
                "their own effect parameters, relative to no effect (stars: assumed values; bands: 95% Monte Carlo "
                "intervals of simulated series)."), png, svg))
        grid = result.frame("heatmap")
        if not grid.empty:
            fig = figure_power_heatmap(grid, planned=(float(grid["assumed"].iloc[0]), planned_n))
            png, svg = save_figure(fig, out_dir / "power_heatmap")
            files.append(FigureFile("power_heatmap", (
                f"Exact power for {prim_label} ({test_label(grid['test'].iloc[0])}) over its "
                f"{grid['parameter_label'].iloc[0]} and the analysable patients per arm. Contours: 80% (dashed) and 90% "
                f"(solid) power. Star: the assumed {grid['parameter_label'].iloc[0]} "
                f"{float(grid['assumed'].iloc[0]):.3g} at the planned {planned_n} per arm."), png, svg))
        saw = result.frame("sample_size_curves")
        sizes = result.frame("sample_sizes")
        if not saw.empty and not sizes.empty:
            test = design["primary_test"]
            ok = sizes[(sizes["endpoint"] == primary) & (sizes["test"] == test) & (sizes["method"] == "exact")]
            ok = ok[ok["reachable"].astype(bool)].sort_values("target_power")
            if not ok.empty:
                fig, axes = _figure(FIG_WIDTH, 3.9, ncols=len(ok))
                for k, (_, row) in enumerate(ok.iterrows()):
                    plot_sawtooth(saw, row, axes[0, k], legend=False,
                                  title=f"{'AB'[k % 2]}  {100 * row['target_power']:.0f}%: first n {int(row['n_first'])}, "
                                        f"stable from {int(row['n_stable'])}")
                    if k:
                        axes[0, k].set_ylabel("")
                handles, labels = axes[0, 0].get_legend_handles_labels()
                fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize="small")
                png, svg = save_figure(fig, out_dir / "sample_size_sawtooth")
                files.append(FigureFile("sample_size_sawtooth", (
                    f"Exact power of the {test_label(test)} test for {prim_label} around the required size. Power is not "
                    "monotone in n (crosses: sizes below the target); the dashed line marks the first n reaching the "
                    "target, the solid line the n from which power never drops below it again (checked up to the "
                    "horizon in the sample-size table)."), png, svg))
    return files
