"""``trialsim compare CONFIG [CONFIG ...]``: designs side by side (thin: parse, call the API, print)."""
from __future__ import annotations

import argparse
from pathlib import Path

from trialsim.cli.common import add_overrides, check_out, claim_out, folder
from trialsim.planning.compare import compare
from trialsim.report.compare import comparison_text

COMPARE_SIMS = 10_000
COMPARE_FILES = ("compare.csv", "compare.json")


def add_parsers(sub) -> None:
    """Add ``compare``."""
    p = sub.add_parser(
        "compare", help="designs side by side: power, type I error, bias, coverage, go/no-go, patients, duration",
        description="Each config (or each scenario of a config's [sweep]) is one design, simulated as configured and "
                    "with no treatment effect on one seed. One row per design for its primary endpoint.",
        epilog="Example: trialsim compare configs/exosome_lar_20.toml configs/designs/*.toml --out results/compare",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="+", type=Path, metavar="CONFIG", help="scenario TOML files (one design each)")
    add_overrides(p)
    p.add_argument("--sims", type=int, default=COMPARE_SIMS,
                   help=f"simulated trials per design and per null run (default {COMPARE_SIMS:,})")
    p.add_argument("--seed", type=int, default=None, help="root seed shared by every design (default: drawn and recorded)")
    p.add_argument("--jobs", type=int, default=None, help="parallel workers, -1 = all cores (default: each config's run.n_jobs)")
    p.add_argument("--test", default=None, help="the primary endpoint's test to compare (default: each design's first)")
    p.add_argument("--no-sweep", action="store_true", help="one design per config (its base scenario), ignoring [sweep]")
    p.add_argument("--out", type=folder, default=None, help="write compare.csv, compare.json and compare.png/.svg here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_compare(args) -> int:
    check_out(args.out, command="compare", ours=COMPARE_FILES)
    result = compare(args.configs, overrides=args.overrides, n_sims=args.sims, seed=args.seed, n_jobs=args.jobs,
                     test=args.test, sweep=not args.no_sweep, progress=not args.quiet)
    print(comparison_text(result.frame))
    print(f"\nseed {result.seed}")
    if args.out is not None:
        claim_out(args.out, command="compare", ours=COMPARE_FILES)
        for path in result.save(args.out):
            print(f"wrote {path}")
    return 0


COMMANDS = {"compare": cmd_compare}
