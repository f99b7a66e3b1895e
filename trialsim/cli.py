"""Command line: parse, call the API, print. Config errors exit with status 2 and no traceback."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trialsim.config.loader import ConfigError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="scenario TOML file, e.g. configs/exosome_lar_20.toml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a config value, e.g. --set leak.effect=0.7 (repeatable; see `trialsim show`)")


def _sim_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sims", type=int, default=None, help="simulated trials per scenario (default: run.n_sims)")
    p.add_argument("--seed", type=int, default=None, help="root seed (default: run.seed, else drawn and recorded)")
    p.add_argument("--jobs", type=int, default=None, help="parallel workers, -1 = all cores (default: run.n_jobs)")
    p.add_argument("--chunk-blocks", type=int, default=None, help="blocks per parallel task (does not change results)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trialsim", description="Monte Carlo operating characteristics of a clinical trial.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="simulate a scenario (and its sweep): power of every endpoint")
    _common(p)
    _sim_options(p)
    p.add_argument("--out", type=Path, default=None, help="write power.csv/json, estimates.csv, provenance here; resumes an interrupted run")
    p.add_argument("--no-sweep", action="store_true", help="run only the base scenario of a config with a sweep")
    p.add_argument("--detail", action="store_true", help="print every scenario of a sweep in full")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("flow", help="patient flow (SimPy): time to enrol, study duration, analysable patients")
    _common(p)
    _sim_options(p)
    p.add_argument("--out", type=Path, default=None, help="write flow_summary.csv, an event log, figures and the power table here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("show", help="print the resolved config (defaults filled in) as TOML")
    _common(p)

    from trialsim.cli_planning import add_parsers

    add_parsers(sub)  # samplesize, curves, report
    return parser


def cmd_run(args) -> int:
    from trialsim.api import run
    from trialsim.report.console import run_summary

    checkpoint = args.out / "checkpoints" if args.out else None
    result = run(args.config, overrides=args.overrides, n_sims=args.sims, seed=args.seed, n_jobs=args.jobs,
                 chunk_blocks=args.chunk_blocks, progress=not args.quiet, checkpoint_dir=checkpoint,
                 sweep=not args.no_sweep)
    print(run_summary(result, detail=True if args.detail else None))
    if args.out:
        result.save(args.out)
        print(f"\nwritten: {args.out}/power.csv, power.json, estimates.csv, provenance.json")
    return 0


def cmd_flow(args) -> int:
    from trialsim.api import flow

    report = flow(args.config, overrides=args.overrides, n_sims=args.sims, seed=args.seed, n_jobs=args.jobs,
                  progress=not args.quiet, checkpoint_dir=args.out / "checkpoints" if args.out else None)
    sc = report.result.results[0].spec.scenario
    print(f"trialsim flow | {sc.name} | {report.summary.n_trials:,} simulated trials | seed {report.result.seed}")
    print(f"  {sc.design.n_control} + {sc.design.n_treatment} patients, allocation {sc.flow.allocation.scheme}, "
          f"{sc.flow.referrals_per_month:g} referrals/month, eligible {sc.flow.p_eligible:g}, consent {sc.flow.p_consent:g}")
    print("\n".join("  " + line for line in report.summary.to_text().splitlines()))
    if args.out:
        paths = report.save(args.out)
        print(f"\nwritten: {', '.join(str(p) for p in paths)}")
    return 0


def cmd_show(args) -> int:
    from trialsim.config.loader import load_scenario, scenario_to_toml

    print(scenario_to_toml(load_scenario(args.config, args.overrides)), end="")
    return 0


COMMANDS = {"run": cmd_run, "flow": cmd_flow, "show": cmd_show}


def _commands() -> dict:
    from trialsim.cli_planning import COMMANDS as PLANNING

    return {**COMMANDS, **PLANNING}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("sims", "jobs", "chunk_blocks"):
        value = getattr(args, name, None)
        if value is not None and (value < 1 and not (name == "jobs" and value == -1)):
            print(f"trialsim: error: --{name.replace('_', '-')} = {value} is not allowed: must be a positive whole number"
                  + (" (or -1 for all cores)" if name == "jobs" else ""), file=sys.stderr)
            return 2
    try:
        return _commands()[args.command](args)
    except ConfigError as exc:
        print(f"trialsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ntrialsim: interrupted; finished blocks are kept in the --out checkpoint and resume on the next run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
