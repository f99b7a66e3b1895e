"""Options shared by every subcommand (the CLI is thin: parse, call the API, print)."""
from __future__ import annotations

import argparse


def add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="scenario TOML file, e.g. configs/exosome_lar_20.toml")
    add_overrides(p)


def add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a config value, e.g. --set design.n_control=30 or --set endpoints.<id>.effect=0.7 (repeatable; see `trialsim show`)")


def add_sim_options(p: argparse.ArgumentParser, *, sims_help: str | None = None) -> None:
    p.add_argument("--sims", type=int, default=None, help=sims_help or "simulated trials per scenario (default: run.n_sims)")
    p.add_argument("--seed", type=int, default=None, help="root seed (default: run.seed, else drawn and recorded)")
    p.add_argument("--jobs", type=int, default=None, help="parallel workers, -1 = all cores (default: run.n_jobs)")
    p.add_argument("--chunk-blocks", type=int, default=None, help="blocks per parallel task (does not change results)")
