"""Publication figures of the planning curves (seaborn, colour-blind-safe, PNG + SVG).

Every ``plot_*`` function takes a tidy frame (as written to curves.csv, effect_curves.csv,
heatmap.csv, sample_size_curves.csv) and ``ax=None``, draws on ``ax`` (a new figure when None) and
returns the Axes. ``figure_*`` functions compose whole figures; :func:`draw_figures` writes them
all for a :class:`~trialsim.planning.plan.PlanningResult`. Figures are built on
:class:`matplotlib.figure.Figure` directly, so no pyplot state or GUI backend is involved.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from trialsim.labels import series_label, short_endpoint_label, short_test_label, test_label  # noqa: F401

TARGETS = (0.8, 0.9)
FIG_WIDTH = 7.2  # inches: a two-column journal page
DPI = 200
PALETTE = "colorblind"
HEATMAP_CMAP = "cividis"  # perceptually uniform and readable with colour-vision deficiency
CONTOUR_STYLES = {0.8: "--", 0.9: "-"}
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1))]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


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
            lab = series_label(endpoint, test, g["label"].iloc[0] if "label" in g else None) + (" (exact)" if exact else "")
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


def plot_leak_power_vs_reduction(frame: pd.DataFrame, ax=None, *, assumed_reduction: float | None = None,
                                 planned_n: int | None = None, test: str | None = None, targets: Sequence[float] = TARGETS,
                                 title: str | None = None):
    """Exact power of the primary endpoint against the relative reduction in leak, one line per n per arm."""
    import seaborn as sns

    ax = _new_ax(ax)
    g = frame[frame["parameter"] == "leak.effect"]
    if test is not None:
        g = g[g["test"] == test]
    else:
        g = g[g["test"] == g["test"].iloc[0]]
    ns = sorted(g["n_per_arm"].unique())
    colours = sns.color_palette(PALETTE, len(ns))
    for i, n in enumerate(ns):
        h = g[g["n_per_arm"] == n].sort_values("effect", ascending=False)
        lab = f"{n}" + (" (planned)" if planned_n is not None and n == planned_n else "")
        ax.plot(1 - h["effect"], h["power"], color=colours[i], ls=LINESTYLES[i % len(LINESTYLES)], lw=1.6, label=lab,
                marker=MARKERS[i % len(MARKERS)], ms=3, markevery=3)
    if assumed_reduction is not None:
        ax.axvline(assumed_reduction, color="0.2", lw=1.0, ls=":")
        ax.annotate("assumed", xy=(assumed_reduction, 0.02), xytext=(3, 0), textcoords="offset points",
                    fontsize="small", color="0.2", va="bottom")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    _percent_axis(ax.xaxis)
    _percent_axis(ax.yaxis)
    ax.set_xlabel("Relative reduction in leak risk (1 - risk ratio)")
    ax.set_ylabel(f"Power, {test_label(g['test'].iloc[0])} (exact)")
    _targets(ax, targets)
    if title:
        ax.set_title(title, loc="left")
    _legend_below(ax, ncol=2, title="analysable patients per arm")
    return ax


def plot_power_vs_ratio(frame: pd.DataFrame, ax=None, *, assumed: dict[str, float] | None = None,
                        targets: Sequence[float] = TARGETS, title: str | None = None):
    """Simulated power of continuous endpoints against their treatment/control ratio (GMR), with 95% bands.

    The x axis runs from no effect (1) towards stronger effects; each line's assumed value is marked.
    """
    import seaborn as sns

    ax = _new_ax(ax)
    g = frame[frame["parameter"] != "leak.effect"]
    series = list(dict.fromkeys(zip(g["endpoint"], g["test"])))
    colours = sns.color_palette(PALETTE, max(len(series), 1))
    decreasing = bool((g["effect"] <= 1.0).all())
    for i, (endpoint, test) in enumerate(series):
        h = g[(g["endpoint"] == endpoint) & (g["test"] == test)].sort_values("effect")
        ax.plot(h["effect"], h["power"], color=colours[i], ls=LINESTYLES[i % len(LINESTYLES)], lw=1.4,
                marker=MARKERS[i % len(MARKERS)], ms=3.5, label=series_label(endpoint, test, h["label"].iloc[0]))
        ax.fill_between(h["effect"], h["ci_low"], h["ci_high"], color=colours[i], alpha=0.22, lw=0)
        if assumed and endpoint in assumed and assumed[endpoint] != 1.0:
            v = assumed[endpoint]
            y = float(np.interp(v, h["effect"], h["power"]))
            ax.plot([v], [y], marker="*", ms=11, color=colours[i], mec="black", mew=0.6, zorder=5, ls="none")
    ax.set_xscale("log")
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lo, hi = float(g["effect"].min()), float(g["effect"].max())
    ticks = [t for t in (0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0, 1.5, 2, 3, 4) if lo - 1e-9 <= t <= hi + 1e-9]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    if decreasing:
        ax.invert_xaxis()
    ax.set_ylim(0, 1)
    _percent_axis(ax.yaxis)
    ax.set_xlabel("Treatment / control geometric mean ratio")
    ax.set_ylabel("Power (simulated)")
    _targets(ax, targets)
    if title:
        ax.set_title(title, loc="left")
    _legend_below(ax)
    return ax


def plot_leak_heatmap(frame: pd.DataFrame, n_per_arm: int, ax=None, *, planned: tuple[float, float] | None = None,
                      targets: Sequence[float] = TARGETS, colorbar: bool = True, title: str | None = None):
    """Exact power over control leak rate (y) x relative reduction (x) at one n per arm, 80%/90% contours."""
    ax = _new_ax(ax, size=(FIG_WIDTH / 2, 3.4))
    g = frame[frame["n_per_arm"] == n_per_arm]
    table = g.pivot_table(index="rate_control", columns="relative_reduction", values="power")
    x, y = table.columns.to_numpy(float), table.index.to_numpy(float)
    mesh = ax.pcolormesh(_edges(x), _edges(y), table.to_numpy(), cmap=HEATMAP_CMAP, vmin=0, vmax=1, shading="flat",
                         rasterized=True)
    z = table.to_numpy()
    for t in targets:
        if np.nanmin(z) < t < np.nanmax(z):
            ax.contour(x, y, z, levels=[t], colors="black", linewidths=1.5, linestyles=CONTOUR_STYLES.get(t, "-"))
    if planned is not None:
        ax.plot([planned[1]], [planned[0]], marker="*", ms=14, color="#d55e00", mec="white", mew=0.9, ls="none",
                label="assumed design")
    from matplotlib.ticker import MultipleLocator

    ax.xaxis.set_major_locator(MultipleLocator(0.25))
    _percent_axis(ax.xaxis)
    _percent_axis(ax.yaxis)
    ax.set_xlabel("Relative reduction in leak risk")
    ax.set_ylabel("Control-arm leak rate (grade B/C)")
    ax.set_title(title or f"{n_per_arm} per arm", loc="left")
    ax.grid(False)
    if colorbar:
        cb = ax.figure.colorbar(mesh, ax=ax, label="Power (exact)")
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
    plot_power_vs_n(prim, axes[0, 0], planned_n=planned_n, title="A  Primary endpoint (exact)", by_test=True)
    if not sec.empty:
        plot_power_vs_n(sec, axes[0, 1], planned_n=planned_n, title="B  Secondary endpoints")
        axes[0, 1].set_ylabel("")
    else:
        axes[0, 1].set_visible(False)
    return fig


def figure_power_vs_effect(effects: pd.DataFrame, *, planned_n: int | None, assumed_reduction: float | None,
                           assumed_ratios: dict[str, float]):
    leak = effects[effects["parameter"] == "leak.effect"]
    other = effects[effects["parameter"] != "leak.effect"]
    panels = int(not leak.empty) + int(not other.empty)
    fig, axes = _figure(FIG_WIDTH, 5.4, ncols=max(panels, 1))
    i = 0
    if not leak.empty:
        plot_leak_power_vs_reduction(leak, axes[0, i], assumed_reduction=assumed_reduction, planned_n=planned_n,
                                     title="A  Primary endpoint")
        i += 1
    if not other.empty:
        n = int(other["n_per_arm"].iloc[0])
        plot_power_vs_ratio(other, axes[0, i], assumed=assumed_ratios,
                            title=f"{'B' if i else 'A'}  Secondaries, {n} per arm")
    return fig


def figure_leak_heatmaps(grid: pd.DataFrame, *, planned: tuple[float, float], planned_n: int):
    ns = sorted(grid["n_per_arm"].unique())
    ncols = min(3, len(ns))
    nrows = math.ceil(len(ns) / ncols)
    fig, axes = _figure(FIG_WIDTH, 2.6 * nrows + 0.4, ncols=ncols, nrows=nrows)
    for k, ax in enumerate(axes.ravel()):
        if k >= len(ns):
            ax.set_visible(False)
            continue
        n = ns[k]
        plot_leak_heatmap(grid, n, ax, planned=planned, colorbar=False,
                          title=f"{n} per arm" + (" (planned)" if n == planned_n else ""))
        ax.set_xlabel("")
        ax.set_ylabel("")
        if k % ncols:
            ax.tick_params(labelleft=False)
    fig.supxlabel("Relative reduction in leak risk (1 - risk ratio)", fontsize="medium")
    fig.supylabel("Control-arm leak rate (grade B/C)", fontsize="medium")
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    cb = fig.colorbar(ScalarMappable(Normalize(0, 1), cmap=HEATMAP_CMAP), ax=axes.ravel().tolist(), shrink=0.8,
                      label=f"Power, {test_label(grid['test'].iloc[0])} (exact)")
    _percent_axis(cb.ax.yaxis)
    handles = [Line2D([], [], color="black", ls=CONTOUR_STYLES.get(t, "-"), lw=1.5, label=f"{100 * t:.0f}% power")
               for t in TARGETS]
    handles.append(Line2D([], [], marker="*", ms=12, color="#d55e00", mec="black", mew=0.6, ls="none", label="assumed"))
    fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), fontsize="small")
    return fig


def draw_figures(result, out_dir: str | Path) -> list[FigureFile]:
    """Draw every figure a :class:`~trialsim.planning.plan.PlanningResult` has data for; PNG and SVG."""
    from trialsim.labels import pct

    out_dir = Path(out_dir)
    design = result.design
    planned_n = int(design["n_control"])
    files: list[FigureFile] = []
    prim_label = design["primary_label"].lower()
    with _Style():
        curves = result.frame("curves")
        if not curves.empty:
            fig = figure_power_vs_n(curves, planned_n=planned_n, primary=design["primary_endpoint"])
            png, svg = save_figure(fig, out_dir / "power_vs_n")
            files.append(FigureFile("power_vs_n", (
                f"Power against analysable patients per arm. A: {prim_label}, exact power of each test (the saw-tooth "
                "is real: exact tests attain only some significance levels). B: key secondary endpoints, simulated "
                "with common random numbers; bands are 95% Monte Carlo intervals. Dashed lines: 80% and 90% power; "
                f"dotted: the planned {planned_n} per arm."), png, svg))
        effects = result.frame("effect_curves")
        if not effects.empty:
            assumed_red = 1 - design["leak_effect"] if design["leak_effect_measure"] == "risk_ratio" else None
            assumed_ratios = {}
            sc = result.scenario
            for m in sc.cytokines.markers:
                for name in effects["endpoint"].unique():
                    if str(name).startswith(m.name + "_"):
                        assumed_ratios[name] = m.treatment_gmr
            assumed_ratios["los_days"] = sc.los.treatment_ratio
            fig = figure_power_vs_effect(effects, planned_n=planned_n, assumed_reduction=assumed_red, assumed_ratios=assumed_ratios)
            png, svg = save_figure(fig, out_dir / "power_vs_effect")
            files.append(FigureFile("power_vs_effect", (
                f"Power against the size of the treatment effect. A: exact power for {prim_label} against the relative "
                f"reduction in leak risk, at several analysable sizes per arm (dotted: the assumed "
                f"{pct(assumed_red or 0, 0)} reduction). B: simulated power of the secondary endpoints at the planned "
                f"{planned_n} per arm against the treatment/control geometric mean ratio (stars: assumed values; "
                "bands: 95% Monte Carlo intervals)."), png, svg))
        grid = result.frame("heatmap")
        if not grid.empty:
            fig = figure_leak_heatmaps(grid, planned=(design["leak_rate_control"], 1 - design["leak_effect"]),
                                       planned_n=planned_n)
            png, svg = save_figure(fig, out_dir / "power_heatmap")
            files.append(FigureFile("power_heatmap", (
                f"Exact power for {prim_label} over the control-arm leak rate and the relative reduction, at several "
                "analysable sizes per arm. Contours: 80% (dashed) and 90% (solid) power. Star: the assumed control "
                f"rate {pct(design['leak_rate_control'], 0)} and reduction {pct(1 - design['leak_effect'], 0)}."), png, svg))
        saw = result.frame("sample_size_curves")
        sizes = result.frame("sample_sizes")
        if not saw.empty and not sizes.empty:
            test = design["primary_test"]
            ok = sizes[(sizes["endpoint"] == design["primary_endpoint"]) & (sizes["test"] == test)]
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
