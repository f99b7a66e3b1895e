"""Planning subcommands: ``samplesize``, ``curves``, ``report`` (merged into :mod:`trialsim.cli`).

Thin: parse, call :mod:`trialsim.planning` / :mod:`trialsim.report`, print. Config errors raise
``ConfigError`` (exit status 2 in ``trialsim.cli.main``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from trialsim.cli.common import add_config, add_overrides, add_sim_options
from trialsim.config.loader import ConfigError, load_scenario
from trialsim.model import build_model
from trialsim.planning.mde import minimal_detectable_effects
from trialsim.planning.plan import load_planning, plan
from trialsim.planning.samplesize import sample_sizes
from trialsim.report.document import write_report
from trialsim.report.figures import draw_figures

DEFAULT_JOBS = -1  # planning searches are long; results do not depend on the number of workers
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
    add_sim_options(p, sims_help=f"trials of each search step (default {SEARCH_SIMS}, as report --search-sims)")
    p.add_argument("--endpoint", default=None, help="an analysed endpoint's name, as in power.csv (default: the primary; "
                                                    "'all' = every endpoint)")
    p.add_argument("--test", default=None, help="one test of the endpoint (default: every test)")
    p.add_argument("--power", type=float, nargs="+", default=[0.8], help="target power(s), e.g. --power 0.8 0.9")
    p.add_argument("--ratio", type=float, default=1.0, help="allocation ratio n_treatment / n_control (default 1)")
    p.add_argument("--dropout", type=float, default=None,
                   help="expected loss to follow-up used to inflate n (default: the scenario's, per endpoint)")
    p.add_argument("--n-max", type=int, default=1500, help="largest n per arm searched (default 1500)")
    p.add_argument("--mde", action="store_true", help="also the minimal detectable effect at --n (default: the planned size)")
    p.add_argument("--n", type=int, default=None, help="control-arm size for --mde (default: design.n_control)")
    p.add_argument("--out", type=Path, default=None, help="also write sample_sizes.csv (and mde.csv) here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = subparsers.add_parser("curves", help="power curves and heat map (PNG + SVG), from a config or a results folder")
    _config_or_dir(p)
    add_sim_options(p, sims_help=f"trials per simulated curve point (default {CURVE_SIMS}, as report --curve-sims)")
    p.add_argument("--out", type=Path, required=True, help="folder for curves.csv, effect_curves.csv, heatmap.csv and figures/")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = subparsers.add_parser("report", help="grant-ready report: HTML (self-contained), Markdown and Word",
                              description="Simulates the design, searches sample sizes, minimal detectable effects and pilot "
                                          "numbers, draws the curves and writes report.html, report.md, report.docx.")
    _config_or_dir(p)
    add_sim_options(p, sims_help="trials of the power table (default: run.n_sims)")
    p.add_argument("--out", type=Path, required=True, help="output folder (results, figures/, report.*)")
    p.add_argument("--power", type=float, nargs="+", default=[0.8, 0.9], help="target powers (default 0.8 0.9)")
    p.add_argument("--search-sims", type=int, default=SEARCH_SIMS,
                   help=f"trials per sample-size / MDE search step (default {SEARCH_SIMS}, as samplesize --sims)")
    p.add_argument("--curve-sims", type=int, default=CURVE_SIMS, help=f"trials per simulated curve point (default {CURVE_SIMS})")
    p.add_argument("--search", choices=["key", "all"], default="key",
                   help="pairs with simulated sample sizes and MDEs: the key endpoints (default; the others get their "
                        "analytic answer) or every endpoint and test")
    p.add_argument("--formats", nargs="+", default=["html", "md", "docx"], choices=["html", "md", "docx"])
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _jobs(args) -> int:
    return args.jobs if args.jobs is not None else DEFAULT_JOBS


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


def cmd_samplesize(args) -> int:
    scenario = load_scenario(args.config, args.overrides)
    endpoint = build_model(scenario).primary.name if args.endpoint is None else (None if args.endpoint == "all" else args.endpoint)
    sims = args.sims or SEARCH_SIMS
    try:
        table = sample_sizes(scenario, endpoint=endpoint, test=args.test, power=args.power, ratio=args.ratio,
                             dropout=args.dropout, n_max=args.n_max, n_sims=sims, seed=args.seed, n_jobs=_jobs(args),
                             progress=not args.quiet)
        d = scenario.design
        print(f"Sample size per arm (analysable patients, control arm; alpha {d.alpha} two-sided; ratio {args.ratio:g}; "
              f"seed {table.seed})")
        print(table.summary())
        mde = None
        if args.mde:
            mde = minimal_detectable_effects(scenario, endpoint=endpoint, test=args.test, power=args.power[0],
                                             n_per_arm=args.n, n_sims=sims, seed=table.seed, n_jobs=_jobs(args),
                                             progress=not args.quiet)
            print()
            print(mde.summary())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        table.to_frame().to_csv(args.out / "sample_sizes.csv", index=False)
        if mde is not None:
            mde.to_frame().to_csv(args.out / "mde.csv", index=False)
        print(f"\nwritten: {args.out}/sample_sizes.csv" + (", mde.csv" if mde is not None else ""))
    return 0


def cmd_curves(args) -> int:
    config, from_dir = _source(args)
    if from_dir is not None:
        result = load_planning(from_dir, parts=("curves",))
    else:
        result = plan(config, overrides=args.overrides, parts=("curves",), curve_sims=args.sims or CURVE_SIMS, seed=args.seed,
                      n_jobs=_jobs(args), progress=not args.quiet)
        result.save(args.out)
    files = draw_figures(result, Path(args.out) / "figures")
    for f in files:
        print(f"written: {f.png} and {f.svg.name}")
    return 0


def cmd_report(args) -> int:
    config, from_dir = _source(args)
    if from_dir is not None:
        result = load_planning(from_dir)
        if Path(args.out).resolve() != Path(from_dir).resolve():
            result.save(args.out)
    else:
        result = plan(config, overrides=args.overrides, power=args.power, n_sims=args.sims, search_sims=args.search_sims,
                      curve_sims=args.curve_sims, seed=args.seed, n_jobs=_jobs(args), progress=not args.quiet,
                      search=args.search)
        result.save(args.out)
    written = write_report(result, args.out, formats=args.formats)
    print(open(Path(args.out) / "justification.txt", encoding="utf-8").read().strip())
    print()
    for fmt, path in written.items():
        print(f"written: {path}")
    return 0


COMMANDS = {"samplesize": cmd_samplesize, "curves": cmd_curves, "report": cmd_report}
