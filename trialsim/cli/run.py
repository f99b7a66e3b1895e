"""Simulation subcommands: ``run``, ``flow``, ``replay``, ``show``."""
from __future__ import annotations

from pathlib import Path

from trialsim.api import flow, run
from trialsim.cli.common import add_config, add_sim_options
from trialsim.config.loader import ConfigError, load_scenario, scenario_to_toml
from trialsim.model import build_model
from trialsim.replay import replay
from trialsim.report.console import replay_summary, run_summary
from trialsim.results import safe_name

TRIALS = "trials"  # the per-trial table's folder under --out


def add_parsers(sub) -> None:
    """Add ``run``, ``flow``, ``replay`` and ``show``."""
    p = sub.add_parser("run", help="simulate a scenario (and its sweep): power of every endpoint")
    add_config(p)
    add_sim_options(p)
    p.add_argument("--out", type=Path, default=None, help="write power.csv/json, estimates.csv, provenance here; resumes an interrupted run")
    p.add_argument("--keep-trials", action="store_true",
                   help=f"also write the per-trial table (p-value, estimate, CI, decision per trial x endpoint x test) as "
                        f"Parquet under OUT/{TRIALS}/ (needs --out; read it with trialsim.results.read_trials)")
    p.add_argument("--no-sweep", action="store_true", help="run only the base scenario of a config with a sweep")
    p.add_argument("--detail", action="store_true", help="print every scenario of a sweep in full")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("flow", help="patient flow (SimPy): time to enrol, study duration, analysable patients")
    add_config(p)
    add_sim_options(p)
    p.add_argument("--out", type=Path, default=None, help="write flow_summary.csv, an event log, figures and the power table here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("replay", help="regenerate one simulated trial of a finished run: its patients and every analysis",
                       description="Rebuilds trial K of the run saved in RUN_DIR (`trialsim run --out RUN_DIR`) from its "
                                   "recorded seed; its statistics equal the trial's rows of --keep-trials.")
    p.add_argument("run_dir", type=Path, help="a finished run's folder (trialsim run ... --out RUN_DIR)")
    p.add_argument("--trial", type=int, required=True, metavar="K", help="the trial's index in the run (0 = the first)")
    p.add_argument("--scenario", default=None, metavar="ID", help="scenario id of a sweep (see power.csv); default: the only one")
    p.add_argument("--out", type=Path, default=None, help="also write trial<K>_patients.csv and trial<K>_analyses.csv here")

    p = sub.add_parser("show", help="print the resolved config (defaults filled in, `extends` applied) as TOML")
    add_config(p)


def cmd_run(args) -> int:
    if args.keep_trials and args.out is None:
        raise ConfigError("--keep-trials needs --out DIR: the per-trial table is written to DIR/trials/")
    trials = args.out / TRIALS if args.keep_trials else None
    # a run keeping its trials resumes only from blocks whose trials were kept: its own checkpoints
    checkpoint = args.out / ("checkpoints_with_trials" if args.keep_trials else "checkpoints") if args.out else None
    result = run(args.config, overrides=args.overrides, n_sims=args.sims, seed=args.seed, n_jobs=args.jobs,
                 chunk_blocks=args.chunk_blocks, progress=not args.quiet, checkpoint_dir=checkpoint,
                 sweep=not args.no_sweep, keep_trials=trials)
    print(run_summary(result, detail=True if args.detail else None))
    if args.out:
        result.save(args.out)
        print(f"\nwritten: {args.out}/power.csv, power.json, estimates.csv, provenance.json"
              + (f"; per-trial table {trials}/" if trials else ""))
    return 0


def cmd_flow(args) -> int:
    report = flow(args.config, overrides=args.overrides, n_sims=args.sims, seed=args.seed, n_jobs=args.jobs,
                  progress=not args.quiet, checkpoint_dir=args.out / "checkpoints" if args.out else None)
    sc = report.result.results[0].spec.scenario
    print(f"trialsim flow | {sc.name} | {report.summary.n_trials:,} simulated trials | seed {report.result.seed}")
    print(f"  {sc.design.n_control} + {sc.design.n_treatment} patients, allocation {sc.allocation.scheme}, "
          f"{sc.flow.referrals_per_month:g} referrals/month, eligible {sc.flow.p_eligible:g}, consent {sc.flow.p_consent:g}")
    print("\n".join("  " + line for line in report.summary.to_text().splitlines()))
    if args.out:
        paths = report.save(args.out)
        print(f"\nwritten: {', '.join(str(p) for p in paths)}")
    return 0


def cmd_replay(args) -> int:
    rep = replay(args.run_dir, args.trial, scenario=args.scenario)
    model = build_model(load_scenario(args.run_dir / "scenarios" / f"{safe_name(rep.scenario)}.toml"))
    print(replay_summary(rep, model))
    if args.out:
        paths = rep.save(args.out)
        print(f"\nwritten: {', '.join(str(p) for p in paths)}")
    return 0


def cmd_show(args) -> int:
    print(scenario_to_toml(load_scenario(args.config, args.overrides)), end="")
    return 0


COMMANDS = {"run": cmd_run, "flow": cmd_flow, "replay": cmd_replay, "show": cmd_show}
