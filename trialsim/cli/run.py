"""Simulation subcommands: ``run``, ``flow``, ``show``."""
from __future__ import annotations

from pathlib import Path

from trialsim.api import flow, run
from trialsim.cli.common import add_config, add_sim_options
from trialsim.config.loader import load_scenario, scenario_to_toml
from trialsim.report.console import run_summary


def add_parsers(sub) -> None:
    """Add ``run``, ``flow`` and ``show``."""
    p = sub.add_parser("run", help="simulate a scenario (and its sweep): power of every endpoint")
    add_config(p)
    add_sim_options(p)
    p.add_argument("--out", type=Path, default=None, help="write power.csv/json, estimates.csv, provenance here; resumes an interrupted run")
    p.add_argument("--no-sweep", action="store_true", help="run only the base scenario of a config with a sweep")
    p.add_argument("--detail", action="store_true", help="print every scenario of a sweep in full")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("flow", help="patient flow (SimPy): time to enrol, study duration, analysable patients")
    add_config(p)
    add_sim_options(p)
    p.add_argument("--out", type=Path, default=None, help="write flow_summary.csv, an event log, figures and the power table here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("show", help="print the resolved config (defaults filled in) as TOML")
    add_config(p)


def cmd_run(args) -> int:
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
    print(scenario_to_toml(load_scenario(args.config, args.overrides)), end="")
    return 0


COMMANDS = {"run": cmd_run, "flow": cmd_flow, "show": cmd_show}
