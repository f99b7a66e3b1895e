"""Simulation subcommands: ``run``, ``flow``, ``show``."""
from __future__ import annotations

import sys
from pathlib import Path

from trialsim.api import flow, run
from trialsim.cli.common import add_config, add_sim_options, folder
from trialsim.config.loader import ConfigError, load_scenario, scenario_to_toml
from trialsim.engine import BACKENDS
from trialsim.model import build_model
from trialsim.registry import TESTS
from trialsim.report.console import run_summary

TRIALS = "trials"  # the per-trial table's folder under --out


def add_run_options(p) -> None:
    """Where the work runs and how much memory it may take (``run`` and ``flow``)."""
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="where the workers run (default: run.backend): loky processes, threads, this process, or Dask")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="with --backend dask: the Dask scheduler to use, e.g. tcp://10.0.0.5:8786 (default: run.scheduler; "
                        "none: a local Dask cluster on 127.0.0.1, started and closed by trialsim)")
    p.add_argument("--max-memory", type=int, default=None, metavar="MB",
                   help="memory budget of the simulation over all workers, in MB (default: run.max_memory_mb, 2048); "
                        "a run that cannot fit is refused before it starts")


def add_parsers(sub) -> None:
    """Add ``run``, ``flow`` and ``show``."""
    p = sub.add_parser("run", help="simulate a scenario (and its sweep): power of every endpoint")
    add_config(p)
    add_sim_options(p)
    add_run_options(p)
    p.add_argument("--out", type=folder, default=None,
                   help="the run folder: power.csv/json, estimates.csv, provenance, checkpoints; locked while the run works, "
                        "resumes an interrupted run, refuses a folder holding another run")
    p.add_argument("--keep-trials", action="store_true",
                   help=f"also write the per-trial table (p-value, estimate, CI, decision per trial x endpoint x test) as "
                        f"Parquet under OUT/{TRIALS}/ (needs --out; read it with trialsim.results.read_trials)")
    p.add_argument("--no-sweep", action="store_true", help="run only the base scenario of a config with a sweep")
    p.add_argument("--detail", action="store_true", help="print every scenario of a sweep in full")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("flow", help="patient flow (SimPy): time to enrol, study duration, analysable patients")
    add_config(p)
    add_sim_options(p)
    add_run_options(p)
    p.add_argument("--out", type=folder, default=None,
                   help="the run folder: flow_summary.csv, an event log, figures and the power table; resumes like `run --out`")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("show", help="print the resolved config (defaults filled in, `extends` applied) as TOML")
    add_config(p)


def _run_options(args) -> dict:
    if args.scheduler is not None and (args.backend or "dask") != "dask":
        raise ConfigError(f"--scheduler {args.scheduler} is a Dask scheduler address: use it with --backend dask")
    return {"backend": "dask" if args.scheduler and not args.backend else args.backend, "scheduler": args.scheduler,
            "max_memory_mb": args.max_memory}


def cmd_run(args) -> int:
    if args.keep_trials and args.out is None:
        raise ConfigError("--keep-trials needs --out DIR: the per-trial table is written to DIR/trials/")
    trials = args.out / TRIALS if args.keep_trials else None
    result = run(args.config, overrides=args.overrides, n_sims=args.sims, seed=args.seed, n_jobs=args.jobs,
                 chunk_blocks=args.chunk_blocks, progress=not args.quiet, out=args.out, sweep=not args.no_sweep,
                 keep_trials=trials, **_run_options(args))
    print(run_summary(result, detail=True if args.detail else None))
    _note_unused_bayes(result)
    if args.out:
        names = [n for n in ("power.csv", "power.json", "estimates.csv", "decisions.csv", "flow_trials.csv",
                             "provenance.json") if (Path(args.out) / n).is_file()]
        print(f"\nwritten: {args.out}/{', '.join(names)}" + (f"; per-trial table {trials}/" if trials else ""))
    return 0


def _note_unused_bayes(result) -> None:
    """A [bayes] section that no test reads: say so (its go / no-go rule decides only on Bayesian tests)."""
    bayesian = [name for name in TESTS.names() if TESTS.get(name).options is not None]
    for r in result.results:
        sc = r.spec.scenario
        if sc.bayes is not None and not any(t in bayesian for a in build_model(sc).analysed for t in a.tests):
            print(f"trialsim: note: scenario {r.spec.id!r} sets [bayes], but none of its endpoints has a Bayesian test "
                  f"({', '.join(bayesian)}) among its tests, so no go / no-go decision was made", file=sys.stderr)
            return


def cmd_flow(args) -> int:
    report = flow(args.config, overrides=args.overrides, n_sims=args.sims, seed=args.seed, n_jobs=args.jobs,
                  progress=not args.quiet, out=args.out, **_run_options(args))
    sc = report.result.results[0].spec.scenario
    print(f"trialsim flow | {sc.name} | {report.summary.n_trials:,} simulated trials | seed {report.result.seed}")
    print(f"  {sc.design.n_control} + {sc.design.n_treatment} patients, allocation {sc.allocation.scheme}, "
          f"{sc.flow.referrals_per_month:g} referrals/month, eligible {sc.flow.p_eligible:g}, consent {sc.flow.p_consent:g}")
    print("\n".join("  " + line for line in report.summary.to_text().splitlines()))
    if args.out:
        print(f"\nwritten: {', '.join(str(p) for p in report.written)}")
    return 0


def cmd_show(args) -> int:
    print(scenario_to_toml(load_scenario(args.config, args.overrides)), end="")
    return 0


COMMANDS = {"run": cmd_run, "flow": cmd_flow, "show": cmd_show}
