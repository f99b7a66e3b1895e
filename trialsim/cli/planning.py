"""Planning subcommands: ``samplesize``, ``curves``, ``report`` (merged into :mod:`trialsim.cli`).

Thin: parse, call :mod:`trialsim.planning` / :mod:`trialsim.report`, print. Config errors raise
``ConfigError`` (exit status 2 in ``trialsim.cli.main``).
"""
from __future__ import annotations

import argparse
import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from trialsim.cli.common import N_PER_ARM_MAX, add_config, add_overrides, add_sim_options, check_out, claim_out, folder
from trialsim.cli.run import add_run_options
from trialsim.config.loader import ConfigError, load_scenario
from trialsim.config.schema import MAX_RATIO_PART
from trialsim.files import replace_file
from trialsim.labels import aligned_table, is_missing, num, pct, target_pct, test_label
from trialsim.model import build_model
from trialsim.planning.curves import N_GRID_MAX, load_sweep_grid, n_grid, power_ranges, ranges_from_sweep
from trialsim.planning.compare import load_comparison
from trialsim.planning.mde import minimal_detectable_effects
from trialsim.planning.model import design_ratio
from trialsim.planning.plan import PLANNING_JSON, load_planning, plan
from trialsim.planning.samplesize import sample_sizes, sizes, target_power_problem
from trialsim.planning.sensitivity import size_sensitivity
from trialsim.report.document import (
    CHECK_FILE,
    DEFAULT_FORMATS,
    FORMATS,
    JUSTIFICATION_FILE,
    document_file,
    document_helpers,
    write_report,
)
from trialsim.report.figures import draw_figures, draw_range_figures
from trialsim.report.output import COMMAND_FILES, CURVES_OWN, report_session
from trialsim.report.tables import size_sensitivity_table

SEARCH_SIMS = 2000  # trials of each sample-size / MDE search step: `samplesize --sims` and `report --search-sims`
CURVE_SIMS = 2000  # trials per simulated curve point: `curves --sims` and `report --curve-sims`


def _config_or_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", default=None,
                   help="scenario TOML file, or a results folder (as --from)")
    p.add_argument("--from", dest="from_dir", type=Path, default=None, metavar="DIR",
                   help="draw from a finished run's folder (trialsim run/report --out) without simulating again")
    add_overrides(p)


def add_parsers(subparsers) -> None:
    """Add ``samplesize``, ``curves`` and ``report`` to the ``trialsim`` subcommand parser."""
    p = subparsers.add_parser("samplesize", help="smallest n per arm reaching a target power (and the minimal detectable effect)",
                              description="Exact for binary endpoints (with the saw-tooth of exact power), simulated with a "
                                          "Monte Carlo interval otherwise, with the analytic answer alongside.")
    add_config(p)
    add_sim_options(p, sims_as="search_sims",
                    sims_help=f"simulated trials per refining pass of the search; the locating pass uses a quarter "
                              f"(default {SEARCH_SIMS}, as report --search-sims)")
    add_run_options(p)
    p.add_argument("--endpoint", default=None, help="an analysed endpoint's name, as in power.csv (default: the primary; "
                                                    "'all' = every endpoint)")
    p.add_argument("--test", default=None, help="one test of the endpoint (default: every test)")
    p.add_argument("--power", type=float, nargs="+", default=[0.8],
                   help="target power(s) (default 0.8; the report uses 0.8 and 0.9), e.g. --power 0.8 0.9")
    p.add_argument("--ratio", type=float, default=None,
                   help="allocation ratio n_treatment / n_control (default: the design's, e.g. 2 for 10 vs 20)")
    p.add_argument("--dropout", type=float, default=None,
                   help="expected loss to follow-up used to inflate n (default: the scenario's, per endpoint)")
    p.add_argument("--n-max", type=int, default=1500, help="largest n per arm searched (default 1500)")
    p.add_argument("--mde", action="store_true", help="also the minimal detectable effect at --n (default: the planned size)")
    p.add_argument("--n", type=int, default=None, help="control-arm size for --mde (default: design.n_control)")
    p.add_argument("--sensitivity", action="store_true",
                   help="also the primary endpoint's size over its control rate x its effect (where it has an exact answer)")
    p.add_argument("--out", type=folder, default=None,
                   help="also write sample_sizes.csv (and mde.csv, size_sensitivity.csv) here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = subparsers.add_parser("curves", help="power curves (PNG + SVG) on your own ranges, from a config or a results folder",
                              description="With --n, --effect, --control-rate or --ratio (or a config whose [sweep] varies "
                                          "them): power of one endpoint over those ranges, exact for binary endpoints, "
                                          "simulated otherwise. With --from a sweep's results folder: the sweep's own grid. "
                                          "Otherwise the planning figures: power against n and against the effect for the "
                                          "key endpoints, and the primary endpoint's heat map.",
                              epilog="Ranges: LOW:HIGH:STEP, LOW:HIGH or a list. Sizes LOW:HIGH are every size (or 200 "
                                     "log-spaced ones when there are more); effects and rates LOW:HIGH are 6 evenly spaced "
                                     "values. Example: trialsim curves configs/exosome_lar_20.toml --control-rate "
                                     "0.08:0.20:0.04 --effect 0.3:0.8:0.1 --n 50:300 --out figures/")
    _config_or_dir(p)
    add_sim_options(p, sims_as="curve_sims",
                    sims_help=f"trials per simulated curve point (default {CURVE_SIMS}, as report --curve-sims)")
    add_run_options(p)
    p.add_argument("--out", type=folder, required=True, help="folder for the figures (PNG + SVG) and their data (CSV)")
    p.add_argument("--n", dest="n_range", nargs="+", default=None, metavar="N",
                   help="patients per arm (control arm), e.g. 50:300 or 50 100 200")
    p.add_argument("--effect", nargs="+", default=None, metavar="E",
                   help="values of the endpoint's effect parameter (see `trialsim show`), e.g. 0.3:0.8:0.1")
    p.add_argument("--control-rate", nargs="+", default=None, metavar="P",
                   help="control-arm event rates of a binary endpoint, e.g. 0.08:0.20:0.04")
    p.add_argument("--ratio", dest="ratios", nargs="+", default=None, metavar="R",
                   help="allocation ratios n_treatment / n_control, e.g. 1 2 (default: the design's)")
    p.add_argument("--endpoint", default=None, help="the endpoint of the range figure (default: the primary)")
    p.add_argument("--test", nargs="+", default=None, help="its test(s) (default: its first, the primary analysis)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = subparsers.add_parser("report", help="grant-ready report: HTML (self-contained), PDF, Markdown, Word and the "
                                             "justification paragraph as text",
                              description="Simulates the design, searches sample sizes, minimal detectable effects and pilot "
                                          "numbers, draws the curves (figures/, PNG and SVG) and writes "
                                          f"{', '.join(document_file(f) for f in DEFAULT_FORMATS)} (--formats chooses; "
                                          f"{JUSTIFICATION_FILE} is always written), the results as CSV, and "
                                          f"{CHECK_FILE} when a reference needs checking.")
    _config_or_dir(p)
    add_sim_options(p, sims_help="trials of the power table (default: run.n_sims)")
    add_run_options(p)
    p.add_argument("--out", type=folder, required=True, help="output folder (results, figures/, report.*)")
    # None = not given: a report's own folder (--from) is refused what it would ignore (_folder_settings)
    p.add_argument("--power", type=float, nargs="+", default=None, help="target powers (default 0.8 0.9)")
    p.add_argument("--search-sims", type=int, default=None,
                   help=f"trials per sample-size / MDE search step (default {SEARCH_SIMS}, as samplesize --sims)")
    p.add_argument("--curve-sims", type=int, default=None, help=f"trials per simulated curve point (default {CURVE_SIMS})")
    p.add_argument("--search", choices=["key", "all"], default=None,
                   help="pairs with simulated sample sizes and MDEs: the key endpoints (default; the others get their "
                        "analytic answer) or every endpoint and test")
    p.add_argument("--formats", nargs="+", default=list(DEFAULT_FORMATS), choices=list(FORMATS),
                   help=f"documents to write (default: {' '.join(DEFAULT_FORMATS)})")
    p.add_argument("--paper", choices=["A4", "Letter"], default="A4", help="page size of the PDF and Word documents (default A4)")
    p.add_argument("--compare", type=Path, default=None, metavar="DIR",
                   help="add a \"Choosing a design\" section from a `trialsim compare --out DIR` folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _jobs(args, scenario=None) -> int | None:
    """--jobs, else the config's run.n_jobs (as the help says); results do not depend on it."""
    if args.jobs is not None:
        return args.jobs
    return scenario.run.n_jobs if scenario is not None else None


def _source(args) -> tuple[str | None, Path | None]:
    """(config file, results folder) from the positional argument and --from."""
    from_dir = args.from_dir
    config = args.config
    if config is not None and Path(config).is_dir():
        if from_dir is not None:
            raise ConfigError("give either a config file or --from DIR, not a folder twice")
        from_dir, config = Path(config), None
    if config is None and from_dir is None:
        raise ConfigError("give a config file (e.g. configs/exosome_lar_20.toml) or --from DIR (a results folder)")
    if config is not None and from_dir is not None:
        raise ConfigError("give a config file or --from DIR (a results folder), not both")
    if from_dir is not None and args.overrides:
        raise ConfigError("--set applies to a config file, not to a finished run read with --from")
    return config, from_dir


def _run_settings(args, from_dir: Path | None = None) -> None:
    """--backend, --scheduler, --max-memory and --chunk-blocks as the config's [run] values they stand for (they
    change where and in what pieces the work runs, never a number)."""
    values = {"run.backend": "dask" if args.scheduler and not args.backend else args.backend,
              "run.scheduler": args.scheduler, "run.max_memory_mb": args.max_memory,
              "run.chunk_blocks": args.chunk_blocks}
    given = [f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}" for key, value in values.items()
             if value is not None]
    if given and from_dir is not None:
        raise ConfigError("--backend, --scheduler, --max-memory and --chunk-blocks apply to a config file; a results "
                          "folder is completed with the run settings it was run with")
    if args.scheduler is not None and args.backend not in (None, "dask"):
        raise ConfigError(f"--scheduler {args.scheduler} is a Dask scheduler address: use it with --backend dask")
    args.overrides = [*args.overrides, *given]


SAMPLESIZE_FILES = COMMAND_FILES["samplesize"]
# curves takes a folder by the files report never writes, not by planning.json: a report's folder holds one too
CURVES_FILES = CURVES_OWN


# what report --from does not use of a results folder: its seed and trials always (the run's own); a report's folder
# (planning.json) holds every table, so nothing is computed again and none of the planning settings applies either
RUN_FLAGS = {"seed": "--seed", "sims": "--sims"}
PLANNING_FLAGS = {"power": "--power", "search_sims": "--search-sims", "curve_sims": "--curve-sims", "search": "--search"}
PLANNING_DEFAULTS = {"power": [0.8, 0.9], "search_sims": SEARCH_SIMS, "curve_sims": CURVE_SIMS, "search": "key"}


def _folder_settings(args, from_dir: Path | None, flags: dict[str, str]) -> None:
    """Refuse the flags of ``flags`` (dest -> flag) given with ``--from``: a results folder is reported with the
    settings it was made with, so a flag it would ignore must not look as if it applied."""
    if from_dir is None:
        return
    given = [flag for dest, flag in flags.items() if getattr(args, dest, None) is not None]
    if given:
        raise ConfigError(f"{', '.join(given)} cannot be used with --from {from_dir}: a results folder is reported with "
                          f"its own settings ({'its seed and trials' if flags is RUN_FLAGS else 'its seed, trials and planning settings'}); "
                          f"give a config file to choose them, or leave them out")


def _check_powers(powers, scenario) -> None:
    """--power against the design's alpha, before any work (the flag's own rule has checked the rest)."""
    for p in powers:
        problem = target_power_problem(p, scenario.design.alpha)
        if problem:
            raise ConfigError(f"--power {p:g} {problem}")


def cmd_samplesize(args) -> int:
    _run_settings(args)
    check_out(args.out, command="samplesize", ours=SAMPLESIZE_FILES)
    if args.n is not None and not args.mde:
        raise ConfigError(f"--n {args.n} is the size of the minimal detectable effect: add --mde, or leave --n out (the "
                          "sample sizes are searched, not given)")
    scenario = load_scenario(args.config, args.overrides)
    _check_powers(args.power, scenario)
    primary = build_model(scenario).primary
    endpoint = primary.name if args.endpoint is None else (None if args.endpoint == "all" else args.endpoint)
    if args.sensitivity and endpoint != primary.name:
        raise ConfigError(f"--sensitivity is for the primary endpoint ({primary.name}): leave --endpoint out, or give "
                          f"--endpoint {primary.name}")
    sims = args.sims or SEARCH_SIMS
    try:
        table = sample_sizes(scenario, endpoint=endpoint, test=args.test, power=args.power, ratio=args.ratio,
                             dropout=args.dropout, n_max=args.n_max, n_sims=sims, seed=args.seed,
                             n_jobs=_jobs(args, scenario), progress=not args.quiet)
        d = scenario.design
        simulated = (table.to_frame()["method"] == "monte_carlo").any()
        ratio = design_ratio(scenario) if args.ratio is None else args.ratio
        arms = "equal arms" if ratio == 1 else f"control vs treatment, {ratio:g} times as many treated"
        print(f"Sample size per arm: analysable patients ({arms}), two-sided alpha {num(d.alpha)}" + (f"; {sims:,} simulated trials per search step, seed {table.seed}"
                                                  if simulated else ""))
        print()
        print(table.summary())
        mde = None
        if args.mde:
            mde = minimal_detectable_effects(scenario, endpoint=endpoint, test=args.test, power=args.power[0],
                                             n_per_arm=args.n, n_sims=sims, seed=table.seed, n_jobs=_jobs(args, scenario),
                                             progress=not args.quiet)
            print()
            print(f"Smallest detectable effect with {target_pct(args.power[0])} power at the planned size"
                  if args.n is None else f"Smallest detectable effect with {target_pct(args.power[0])} power at {args.n} per arm")
            print()
            print("\n".join(mde_lines(mde.to_frame())))
        grid = None
        if args.sensitivity:
            grid = size_sensitivity(scenario, power=args.power[0], ratio=args.ratio, dropout=args.dropout,
                                    n_max=args.n_max, n_jobs=_jobs(args, scenario))
            print()
            print("\n".join(sensitivity_lines(grid, {primary.name: primary.label})))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.out:
        claim_out(args.out, command="samplesize", ours=SAMPLESIZE_FILES)
        frame = table.to_frame()
        replace_file(args.out / "sample_sizes.csv", lambda tmp: frame.to_csv(tmp, index=False))
        if mde is not None:
            mde_frame = mde.to_frame()
            replace_file(args.out / "mde.csv", lambda tmp: mde_frame.to_csv(tmp, index=False))
        if grid is not None:
            replace_file(args.out / "size_sensitivity.csv", lambda tmp: grid.to_csv(tmp, index=False))
        print(f"\nwritten: {args.out}/sample_sizes.csv" + (", mde.csv" if mde is not None else "")
              + (", size_sensitivity.csv" if grid is not None else ""))
    return 0


def sensitivity_lines(frame: pd.DataFrame, label_of: dict[str, str]) -> list[str]:
    """The size over the control rate x the effect (:func:`~trialsim.planning.sensitivity.size_sensitivity`) as the
    report's table, aligned, with its caption and notes; one line saying why where there is none."""
    table = size_sensitivity_table(frame, label_of)
    if table is None:
        return ["No sizes over the control rate and the effect: the primary endpoint needs an exact answer (a binary law, "
                "a test with exact power, arms not allocated on covariates) and a control rate and an effect its family "
                "names (a ratio or a difference)."]
    header = list(table.frame.columns)
    rows = [list(r) for r in table.frame.itertuples(index=False)]
    return [*textwrap.wrap(table.caption, 118), "", *aligned_table(header, rows, right=set(range(1, len(header)))), "",
            *textwrap.wrap(table.notes, 118)]


def mde_lines(frame: pd.DataFrame) -> list[str]:
    """A minimal-detectable-effect frame (:data:`trialsim.planning.mde.MDE_COLUMNS`) as an aligned table with notes."""
    header = ["Endpoint", "Test", "n per arm", "Effect measure", "Smallest effect", "How found", "Assumed (power)", "Closed form"]
    rows, notes, last = [], [], (None, None)
    for r in frame.to_dict("records"):
        how = {"exact": "exact", "monte_carlo": "simulated"}.get(r["method"], "-")
        note = ""
        if r["method"] == "skipped":
            effect, note = "not computed", str(r["note"] or "")
        elif r["method"] == "analytic":
            effect = "not simulated"
        elif not r["reachable"]:
            effect = "none"
            note = f"Even {r['parameter_label']} {num(r['best_effect'])} gives {pct(r['best_power'], 1)} power."
        else:
            effect = num(r["effect"])
            if r["method"] == "monte_carlo" and not is_missing(r["effect_low"]):
                effect += f" ({num(r['effect_low'])}-{num(r['effect_high'])})"
        if note:
            notes.append(note)
            how += f" [{len(notes)}]"
        assumed = f"{num(r['assumed'])} ({pct(r['power_at_assumed'], 1)})" if not is_missing(r["power_at_assumed"]) else num(r["assumed"])
        closed = "-" if is_missing(r["analytic_effect"]) else num(r["analytic_effect"])
        key = (r["endpoint"], r["test"])
        rows.append([r["label"] if key[0] != last[0] else "", test_label(r["test"]),
                     sizes(r["n_control"], r["n_treatment"]), r["parameter_label"], effect, how, assumed, closed])
        last = key
    lines = aligned_table(header, rows, right={2})
    lines += ["", "Simulated effects with their 95% Monte Carlo interval; closed form: the normal approximation (two "
                  "proportions) or the noncentral t on the model's SD, at the expected analysable sizes."]
    lines += [f"[{i}] {text}" for i, text in enumerate(notes, 1)]
    return lines


MAX_RANGE_VALUES = 1_000  # values one range flag of `curves` may give
MAX_RANGE_POINTS = 20_000  # points of the whole grid: sizes x effects x control rates x ratios x tests

# what each range flag allows: (low, high, low_open, high_open, what); effects are bounded by their config key
_RANGE_BOUNDS = {
    "--n": (2, N_PER_ARM_MAX, False, False, "whole numbers of patients per arm from 2 to {high:,}"),
    "--effect": (-1e12, 1e12, False, False, "finite numbers (the config key of the endpoint's effect bounds them further)"),
    "--control-rate": (0.0, 1.0, True, True, "event rates between 0 and 1, both excluded"),
    "--ratio": (1 / MAX_RATIO_PART, MAX_RATIO_PART, False, False,
                "allocation ratios n_treatment / n_control from 1/{high:g} to {high:g}"),
}


def _values(items: list[str] | None, *, whole: bool, flag: str) -> list | None:
    """Values of a range flag: numbers, or LOW:HIGH[:STEP] (see the curves epilog), each finite and within the
    flag's bounds, at most :data:`MAX_RANGE_VALUES` of them (counted before any is made)."""
    if not items:
        return None
    low_bound, high_bound, low_open, high_open, what = _RANGE_BOUNDS[flag]
    allowed = what.format(high=high_bound)

    def number(text: str, item: str, step: bool = False) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{flag} {item!r}: {text!r} is not a number; use numbers, LOW:HIGH or LOW:HIGH:STEP "
                              f"({allowed})") from None
        if step:  # a step is bounded by the count of values it makes, not by the flag's bounds
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{flag} {item!r}: STEP {text} is not allowed: use a finite number above 0")
            return value
        inside = math.isfinite(value) and (low_bound < value if low_open else low_bound <= value) and \
            (value < high_bound if high_open else value <= high_bound)
        if not inside or (whole and value != int(value)):
            raise ConfigError(f"{flag} {item!r}: {text} is not allowed: use {allowed}")
        return value

    out: list = []
    for item in items:
        parts = [number(x, item, step=i == 2) for i, x in enumerate(item.split(":"))]
        if len(parts) == 1:
            out.append(parts[0])
        elif len(parts) in (2, 3):
            low, high = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else None
            if high < low:
                raise ConfigError(f"{flag} {item!r}: LOW must not exceed HIGH")
            if whole and step is not None and step != int(step):
                raise ConfigError(f"{flag} {item!r}: STEP {parts[2]:g} is not allowed: sizes step by whole numbers")
            steps = (high - low) / step if step is not None else 0.0  # inf for a step too small to count
            if step is None:
                count = min(int(high - low) + 1, N_GRID_MAX) if whole else 6
            elif not math.isfinite(steps) or steps > MAX_RANGE_VALUES:
                count = math.inf
            else:
                count = math.floor(steps) + 1 if whole else math.ceil(steps + 0.5)  # as range() / np.arange make them
            if len(out) + count > MAX_RANGE_VALUES:
                asked = "more than 10^308" if not math.isfinite(steps) else f"{len(out) + math.floor(steps) + 1:,}"
                asked = f"{len(out) + count:,}" if math.isfinite(count) else asked
                raise ConfigError(f"{flag} {item!r} asks for {asked} values; at most {MAX_RANGE_VALUES:,} are allowed: "
                                  "use a larger STEP or a narrower range")
            if whole:
                out += n_grid(int(low), int(high), None if step is None else int(step))
            elif step is None:
                out += list(np.linspace(low, high, 6))
            else:
                out += list(np.arange(low, high + step / 2, step))
        else:
            raise ConfigError(f"{flag} {item!r}: use numbers, LOW:HIGH or LOW:HIGH:STEP ({allowed})")
    if len(out) > MAX_RANGE_VALUES:
        raise ConfigError(f"{flag} asks for {len(out):,} values; at most {MAX_RANGE_VALUES:,} are allowed")
    return sorted({int(v) if whole else round(float(v), 10) for v in out})


def endpoint_named(scenario, name: str) -> None:
    """Refuse ``--endpoint NAME`` when the scenario analyses no endpoint of that name, listing those it does."""
    names = [a.name for a in build_model(scenario).analysed]
    if name not in names:
        raise ConfigError(f"--endpoint {name!r} is not an endpoint of this scenario: use one of {', '.join(names)}")


def cmd_curves(args) -> int:
    config, from_dir = _source(args)
    _run_settings(args, from_dir)
    out = Path(args.out)
    ranges = {"n_values": _values(args.n_range, whole=True, flag="--n"),
              "effects": _values(args.effect, whole=False, flag="--effect"),
              "control_rates": _values(args.control_rate, whole=False, flag="--control-rate"),
              "ratios": _values(args.ratios, whole=False, flag="--ratio")}
    asked = any(v is not None for v in ranges.values())
    check_out(out, command="curves", ours=CURVES_FILES)
    try:
        if from_dir is not None:
            if asked:
                raise ConfigError("--n, --effect, --control-rate and --ratio apply to a config file; a results folder is "
                                  "drawn on its own grid")
            _folder_settings(args, from_dir, RUN_FLAGS)
            grid = load_sweep_grid(from_dir, endpoint=args.endpoint)
            if not grid.empty:  # a sweep: its own scenarios, as run
                claim_out(out, command="curves", ours=CURVES_FILES)
                replace_file(out / "sweep_grid.csv", lambda tmp: grid.to_csv(tmp, index=False))
                files = draw_range_figures(grid, out, stem="sweep_grid")
                print(f"The sweep's own grid: {len(grid):,} points from {from_dir}/power.csv (written: {out}/sweep_grid.csv)")
            else:
                planning = load_planning(from_dir, parts=("curves",))
                files = draw_figures(planning, claim_out(out, command="curves", ours=CURVES_FILES))
        else:
            scenario = load_scenario(config, args.overrides)
            if not asked:
                swept = ranges_from_sweep(scenario, args.endpoint)
                if swept is not None:
                    ignored = swept.pop("ignored")
                    ranges = swept
                    print("Ranges from the config's [sweep]" + (f" (not shown: {', '.join(ignored)})" if ignored else ""))
            if args.endpoint is not None:
                endpoint_named(scenario, args.endpoint)
            if any(v is not None for v in ranges.values()):
                points = math.prod(len(v) for v in ranges.values() if v) * len(args.test or [None])
                if points > MAX_RANGE_POINTS:
                    raise ConfigError(f"--n, --effect, --control-rate, --ratio and --test ask for {points:,} points; at "
                                      f"most {MAX_RANGE_POINTS:,} are allowed: use fewer values")
                frame = power_ranges(scenario, endpoint=args.endpoint, test=args.test, **ranges,
                                     n_sims=args.sims or CURVE_SIMS, seed=args.seed, n_jobs=_jobs(args, scenario),
                                     progress=not args.quiet)
                claim_out(out, command="curves", ours=CURVES_FILES)
                replace_file(out / "power_ranges.csv", lambda tmp: frame.to_csv(tmp, index=False))
                files = draw_range_figures(frame, out, alpha=scenario.design.alpha)
                print(f"{len(frame):,} points, {', '.join(sorted(set(frame['method'])))} "
                      f"(written: {out}/power_ranges.csv)")
            else:
                result = plan(config, overrides=args.overrides, parts=("curves",), curve_sims=args.sims or CURVE_SIMS,
                              seed=args.seed, n_jobs=_jobs(args), progress=not args.quiet)
                result.save(out, command="curves")
                files = draw_figures(result, out)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for f in files:
        print(f"written: {f.png} and {f.svg.name}")
    return 0


def cmd_report(args) -> int:
    config, from_dir = _source(args)
    _run_settings(args, from_dir)
    out = Path(args.out)
    check_out(out, command="report", ours=(PLANNING_JSON,))  # a folder report did not write: refused before any work
    rewrite = from_dir is not None and out.resolve() == Path(from_dir).resolve()  # documents again, from the folder
    _folder_settings(args, from_dir, RUN_FLAGS)
    if from_dir is not None and (Path(from_dir) / PLANNING_JSON).exists():
        _folder_settings(args, from_dir, PLANNING_FLAGS)
    for dest, default in PLANNING_DEFAULTS.items():
        if getattr(args, dest) is None:
            setattr(args, dest, default)
    if from_dir is not None:
        result = load_planning(from_dir, power=args.power, search_sims=args.search_sims, curve_sims=args.curve_sims,
                               search=args.search)
        scenario = result.scenario
    else:
        scenario = load_scenario(config, args.overrides)
        _check_powers(args.power, scenario)
    comparison = load_comparison(args.compare) if args.compare is not None else None
    n_jobs = _jobs(args, scenario)
    # the documents' helper processes start now, warming up (matplotlib, WeasyPrint) on what the simulation leaves
    with document_helpers(args.formats, n_jobs, early=from_dir is None) as helpers:
        if from_dir is None:
            result = plan(scenario, overrides=args.overrides, config_file=config, power=args.power, n_sims=args.sims,
                          search_sims=args.search_sims, curve_sims=args.curve_sims, seed=args.seed, n_jobs=n_jobs,
                          progress=not args.quiet, search=args.search)
        with report_session(out, ours=(PLANNING_JSON,), keep_earlier=rewrite):
            if not rewrite:
                result.save(out)
            written = write_report(result, out, formats=args.formats, page_size=args.paper, comparison=comparison,
                                   helpers=helpers)
    print((out / JUSTIFICATION_FILE).read_text(encoding="utf-8").strip())
    print()
    for fmt, path in written.items():
        print(f"written: {path}")
    if "check" in written:
        print(f"\nBefore submitting: {CHECK_FILE} lists the references whose details trialsim's sources do not confirm.")
    return 0


COMMANDS = {"samplesize": cmd_samplesize, "curves": cmd_curves, "report": cmd_report}
