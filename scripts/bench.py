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
from trialsim.model import build_model  # noqa: E402
from trialsim.planning.bench import bench_exact_fisher, bench_sweep  # noqa: E402
from trialsim.rng import Streams  # noqa: E402
from trialsim.simulate import simulate_trials  # noqa: E402

DEFAULT = ROOT / "configs" / "exosome_lar_20.toml"


def naive_pvalue(test: str, x: np.ndarray, y: np.ndarray) -> float:
    """One scipy call: the p-value of ``test`` for control values ``x`` and treatment values ``y``."""
    if test in ("fisher", "boschloo", "chi2"):
        table = [[int(x.sum()), int(len(x) - x.sum())], [int(y.sum()), int(len(y) - y.sum())]]
        if test == "fisher":
            return stats.fisher_exact(table).pvalue
        if test == "boschloo":
            return stats.boschloo_exact(table).pvalue if min(map(sum, table)) > 0 else 1.0
        return stats.chi2_contingency(table, correction=False).pvalue if (x.sum() + y.sum()) not in (0, len(x) + len(y)) else 1.0
    if test in ("welch", "welch_log"):  # log-scale endpoints are observed as logs already
        return stats.ttest_ind(x, y, equal_var=False).pvalue
    return stats.mannwhitneyu(x, y).pvalue


def naive_trial(scenario, model, trial: int) -> int:
    """One trial the slow way: its patients (one trial of the engine's generator), then one scipy call per
    endpoint and test on its arms."""
    batch = simulate_trials(scenario, 1, streams=Streams(1, trial), keep_patients=True)
    treated = batch.patients.treated[0]
    rejections = 0
    for a in model.analysed:
        values = batch.patients.observed[a.name][0]
        x, y = values[~treated], values[treated]
        x, y = x[~np.isnan(x)], y[~np.isnan(y)]
        for test in a.tests:
            rejections += bool(naive_pvalue(test, x, y) <= scenario.design.alpha)
    return rejections


def bench_engine(n_sims: int, n_naive: int) -> None:
    scenario = load_scenario(DEFAULT)
    model = build_model(scenario)
    t0 = time.perf_counter()
    for trial in range(n_naive):
        naive_trial(scenario, model, trial)
    naive_rate = n_naive / (time.perf_counter() - t0)
    print(f"naive per-trial scipy loop: {naive_rate:,.0f} trials/s ({n_naive} trials)")
    n_tests = len(model.pairs())
    run(scenario, n_sims=2000, seed=1, n_jobs=1)  # warm caches (rejection regions, exact tables)

    def timed(jobs: int) -> float:
        t0 = time.perf_counter()
        run(scenario, n_sims=n_sims, seed=1, n_jobs=jobs)
        return n_sims / (time.perf_counter() - t0)

    # the first parallel run also starts the worker pool (processes importing numpy, scipy and
    # trialsim; about 1.5 s here); later runs in the same session reuse it
    rates = [(1, "", timed(1)), (2, ", incl. worker start-up", timed(2)), (2, ", workers running", timed(2))]
    for jobs, note, rate in rates:
        print(f"trialsim, n_jobs={jobs}{note}: {rate:,.0f} full trials/s ({n_sims:,} trials, {len(model.analysed)} "
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
