"""``trialsim replay``: one simulated trial of a finished run, regenerated. Its own module, so that ``run``
does not import what a replay needs (pandas, for the patient tables)."""
from __future__ import annotations

from pathlib import Path

from trialsim.cli.common import check_out, claim_out, folder
from trialsim.config.loader import load_scenario
from trialsim.model import build_model
from trialsim.replay import replay
from trialsim.report.output import COMMAND_FILES
from trialsim.report.replay_text import replay_summary
from trialsim.results import safe_name


def add_parsers(sub) -> None:
    """Add ``replay``."""
    p = sub.add_parser("replay", help="regenerate one simulated trial of a finished run: its patients and every analysis",
                       description="Rebuilds trial K of the run saved in RUN_DIR (`trialsim run --out RUN_DIR`) from its "
                                   "recorded seed; its statistics equal the trial's rows of --keep-trials.")
    p.add_argument("run_dir", type=Path, help="a finished run's folder (trialsim run ... --out RUN_DIR)")
    p.add_argument("--trial", type=int, required=True, metavar="K", help="the trial's index in the run (0 = the first)")
    p.add_argument("--scenario", default=None, metavar="ID", help="scenario id of a sweep (see power.csv); default: the only one")
    p.add_argument("--out", type=folder, default=None, help="also write trial<K>_patients.csv and trial<K>_analyses.csv here")


def cmd_replay(args) -> int:
    check_out(args.out, command="replay", ours=COMMAND_FILES["replay"])
    rep = replay(args.run_dir, args.trial, scenario=args.scenario)
    model = build_model(load_scenario(args.run_dir / "scenarios" / f"{safe_name(rep.scenario)}.toml"))
    print(replay_summary(rep, model))
    if args.out:
        paths = rep.save(claim_out(args.out, command="replay", ours=COMMAND_FILES["replay"]))
        print(f"\nwritten: {', '.join(str(p) for p in paths)}")
    return 0


COMMANDS = {"replay": cmd_replay}
