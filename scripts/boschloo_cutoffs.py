"""Write (or check) trialsim/analysis/boschloo_cutoffs.csv: Boschloo's cutoffs for the usual designs.

    python scripts/boschloo_cutoffs.py            # compute every row by search and write the file
    python scripts/boschloo_cutoffs.py --check    # compute every row again and compare with the file

A cutoff is the largest one-sided ('less') Fisher statistic whose one-sided Boschloo p-value is at most
alpha / 2 (see trialsim.analysis.binary). Finding it is a search of about four rounds of fifteen sup-over-nuisance
evaluations per size pair; the package reads a shipped cutoff as a hint and confirms it with two evaluations before
use, so a machine's first exact scans of Boschloo (a report's sample sizes at hundreds per arm) cost a fraction of
the search. The rows: equal arms 2-500 per arm at alpha 1%, 2.5%, 5% and 10%; treatment arms twice and half the
control arm (ratio x control, rounded half up, each arm at most 500) at 5%.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from joblib import Parallel, delayed

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trialsim.analysis.binary import HINT_RTOL, SHIPPED_CUTOFFS, searched_cutoff, shipped_cutoff  # noqa: E402
from trialsim.analysis.registry import BOSCHLOO_MAX_N  # noqa: E402
from trialsim.planning.model import n_treatment_for  # noqa: E402
from trialsim.version import __version__  # noqa: E402

EQUAL_ALPHAS = (0.01, 0.025, 0.05, 0.1)
RATIOS = (2.0, 0.5)
RATIO_ALPHA = 0.05
N_MIN = 2


def pairs() -> list[tuple[int, int, float]]:
    """Every (n_control, n_treatment, alpha) the file holds."""
    rows = [(n, n, a) for a in EQUAL_ALPHAS for n in range(N_MIN, BOSCHLOO_MAX_N + 1)]
    for ratio in RATIOS:
        rows += [(n, n_treatment_for(n, ratio), RATIO_ALPHA) for n in range(N_MIN, BOSCHLOO_MAX_N + 1)
                 if n_treatment_for(n, ratio) <= BOSCHLOO_MAX_N]
    return rows


def compute(rows: list[tuple[int, int, float]], n_jobs: int) -> list[float]:
    # the largest first, so the two workers finish together
    order = sorted(range(len(rows)), key=lambda i: -(rows[i][0] * rows[i][1]))
    found = Parallel(n_jobs=n_jobs, batch_size=4)(delayed(searched_cutoff)(*rows[i]) for i in order)
    out = [0.0] * len(rows)
    for i, value in zip(order, found):
        out[i] = value
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="recompute every row and compare with the file")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    rows = pairs()
    values = compute(rows, args.jobs)
    if args.check:
        # what the package reads; a last-bit difference (another maths library) is what it accepts too
        shipped = [shipped_cutoff(*r) for r in rows]
        missing = [r for r, s in zip(rows, shipped) if s is None]
        bad = [(r, v, s) for r, v, s in zip(rows, values, shipped) if s is not None and abs(s - v) > HINT_RTOL * v]
        exact = sum(s == v for v, s in zip(values, shipped))
        for r, v, s in bad[:20]:
            print(f"{r}: searched {v!r}, shipped {s!r}")
        print(f"{len(rows)} rows: {exact} equal the search to the bit, {len(rows) - len(missing) - len(bad) - exact} "
              f"within {HINT_RTOL:g}, {len(bad)} differ, {len(missing)} missing")
        return 1 if bad or missing else 0
    lines = [f"# Boschloo cutoffs written by scripts/boschloo_cutoffs.py (trialsim {__version__}): the largest one-sided",
             "# 'less' Fisher statistic whose one-sided Boschloo p-value is <= alpha / 2. trialsim confirms each before use.",
             "# n1 = control arm, n2 = treatment arm; columns n1,n2,alpha,cutoff"]
    lines += [f"{n1},{n2},{alpha!r},{value!r}" for (n1, n2, alpha), value in zip(rows, values)]
    SHIPPED_CUTOFFS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(rows)} rows to {SHIPPED_CUTOFFS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
