"""Benchmarks (printed figures, never timed tests).

    python scripts/bench.py                 # everything
    python scripts/bench.py --only engine   # engine | exact | sweep | flow

engine: simulated trials per second of the full default design (every endpoint and test), with
        n_jobs=1 and n_jobs=2, and the ratio against a naive per-trial loop of scipy calls on the
        same design, measured in the same run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trialsim.api import run  # noqa: E402
from trialsim.config.loader import load_scenario, with_values  # noqa: E402
from trialsim.endpoints import endpoints  # noqa: E402
from trialsim.outcomes.patients import observe, simulate_arm  # noqa: E402

DEFAULT = ROOT / "configs" / "exosome_lar_20.toml"


def naive_trial(scenario, rng) -> int:
    """One trial the slow way: its patients, then one scipy call per endpoint and test."""
    d = scenario.design
    obs = {arm: observe(scenario, simulate_arm(scenario, arm, 1, n, rng=rng))
           for arm, n in (("control", d.n_control), ("treatment", d.n_treatment))}
    rejections = 0
    for e in endpoints(scenario):
        x = obs["control"][e.name][0]
        y = obs["treatment"][e.name][0]
        x, y = x[~np.isnan(x)], y[~np.isnan(y)]
        for test in e.tests:
            if e.family == "binary":
                table = [[int(x.sum()), int(len(x) - x.sum())], [int(y.sum()), int(len(y) - y.sum())]]
                if test == "fisher":
                    p = stats.fisher_exact(table).pvalue
                elif test == "boschloo":
                    p = stats.boschloo_exact(table).pvalue if min(map(sum, table)) > 0 else 1.0
                else:
                    p = stats.chi2_contingency(table, correction=False).pvalue if (x.sum() + y.sum()) not in (0, len(x) + len(y)) else 1.0
            elif test == "welch_log":
                p = stats.ttest_ind(x, y, equal_var=False).pvalue
            else:
                p = stats.mannwhitneyu(x, y).pvalue
            rejections += bool(p <= d.alpha)
    return rejections


def bench_engine(n_sims: int, n_naive: int) -> None:
    scenario = load_scenario(DEFAULT)
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    for _ in range(n_naive):
        naive_trial(scenario, rng)
    naive_rate = n_naive / (time.perf_counter() - t0)
    print(f"naive per-trial scipy loop: {naive_rate:,.0f} trials/s ({n_naive} trials)")
    n_tests = sum(len(e.tests) for e in endpoints(scenario))
    run(scenario, n_sims=2000, seed=1, n_jobs=1)  # warm caches (rejection regions, exact tables)

    def timed(jobs: int) -> float:
        t0 = time.perf_counter()
        run(scenario, n_sims=n_sims, seed=1, n_jobs=jobs)
        return n_sims / (time.perf_counter() - t0)

    # the first parallel run also starts the worker pool (processes importing numpy, scipy and
    # trialsim; about 1.5 s here); later runs in the same session reuse it
    rates = [(1, "", timed(1)), (2, ", incl. worker start-up", timed(2)), (2, ", workers running", timed(2))]
    for jobs, note, rate in rates:
        print(f"trialsim, n_jobs={jobs}{note}: {rate:,.0f} full trials/s ({n_sims:,} trials, {len(endpoints(scenario))} "
              f"endpoints, {n_tests} tests each) = {rate / naive_rate:,.0f}x the naive loop")


def bench_flow(n_sims: int = 10_000) -> None:
    """The default 20-patient flow (SimPy) with every analysis on who is analysable."""
    scenario = with_values(load_scenario(DEFAULT), {"flow": {}})
    for jobs in (1, 2):
        t0 = time.perf_counter()
        run(scenario, n_sims=n_sims, seed=1, n_jobs=jobs)
        seconds = time.perf_counter() - t0
        print(f"flow + analyses, n_jobs={jobs}: {n_sims:,} trials in {seconds:.1f} s ({n_sims / seconds:,.0f} trials/s; "
              f"target: 10,000 in under 30 s on 2 cores)")


def bench_planning() -> None:
    from trialsim.planning.bench import bench_exact_fisher, bench_sweep

    exact = bench_exact_fisher()
    print("exact Fisher power, every n per arm 5..500: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in exact.items()))
    sweep = bench_sweep()
    print("50-scenario sweep at 10,000 trials each: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in sweep.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["engine", "exact", "sweep", "flow"], default=None)
    parser.add_argument("--sims", type=int, default=400_000)
    parser.add_argument("--naive", type=int, default=200)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, numpy {np.__version__}")
    if args.only in (None, "engine"):
        bench_engine(args.sims, args.naive)
    if args.only in (None, "flow"):
        bench_flow()
    if args.only in (None, "exact", "sweep"):
        bench_planning()


if __name__ == "__main__":
    main()
