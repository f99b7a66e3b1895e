"""Benchmarks (printed figures, never timed tests).

    python scripts/bench.py                 # everything (the memory part runs 10^7 trials: minutes)
    python scripts/bench.py --quick         # every part at small sizes (memory at 10^6), a quick look
    python scripts/bench.py --only engine   # engine | exact | sweep | flow | cli | memory | report | boschloo | compare

engine:   simulated trials per second of the full default design (every endpoint and test), with
          n_jobs=1 and n_jobs=2 (the fastest of 3 runs, as rpact's below), and the ratio against a naive per-trial loop of scipy calls on the
          same design, measured in the same run; for scale, also the primary endpoint with one test
          alone (the workload of rpact's figure that the target compares with the full design); and
          rpact itself on the same machine and workload (`getSimulationRates`, the primary endpoint's arm
          rates, the design's subjects), timed inside R, when Rscript with rpact is installed (Debian:
          `apt install r-cran-rpact`), so the target is checked against a figure from this machine.
flow:     the default design with its [flow] section: trials/s, and its cost per trial relative to the
          same design without the flow at equal n_sims (target under 3x).
cli:      `trialsim run CONFIG --sims 1000 --seed 1 --out DIR` end to end in a fresh process: wall and
          CPU time (target under 1.5 s wall on an idle 2-core machine), on a machine's first run (nothing
          cached) and with an empty and a filled exact-table cache; then a run of 200,000 trials on 2 workers
          (long enough for the compiled loops, trialsim.kernels) with the loops' compilation (a machine's first
          long run) and with them cached.
memory:   peak resident memory of `trialsim run --sims N` (largest process of the run, from wait4),
          at 4 x 10^5 trials and at --mem-sims (default 10^7), both with the compiled loops: target flat in N
          and under 400 MB.
report:   `trialsim report CONFIG` end to end: wall and CPU (target under 30 s on 2 cores), with an empty and then
          a filled disk cache; then its documents alone (`report --from` the folder it wrote), with figures
          and PDF in two helper processes and with --jobs 1.
boschloo: exact Boschloo power for every n per arm from 5 to 200 (target under 10 s), with the
          disk cache off (the computation itself) and then filled (what a later command pays).
compare:  `trialsim compare` of the registered design and its shipped alternatives (the README's "Choosing a
          design"), 10,000 trials per design and per null run.
Wall times on a shared machine overstate; CPU (user + sys) is printed beside them. Commands run in fresh
processes with Python's bytecode cache on and filled first (as an installed package has it), even where the
environment sets PYTHONDONTWRITEBYTECODE.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trialsim.api import run  # noqa: E402
from trialsim.cache import ENV_DIR, ENV_SWITCH  # noqa: E402
from trialsim.config.loader import load_scenario, with_values  # noqa: E402
from trialsim.model import build_model  # noqa: E402
from trialsim.planning.bench import bench_exact_fisher, bench_sweep  # noqa: E402
from trialsim.planning.model import binary_rates, reduced  # noqa: E402
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


RUNS = 3  # timed runs of the engine on one core and with the pool running (and of rpact): the fastest is kept


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
    # trialsim; about 1.5 s here); later runs in the same session reuse it. Runs with the pool running, and those on
    # one core, are repeated and the fastest kept, as rpact's figure below is the fastest of its three runs
    one = [timed(1) for _ in range(RUNS)]
    starting = timed(2)
    running = [timed(2) for _ in range(RUNS)]
    rates = [(1, f", the fastest of {RUNS} runs", one), (2, ", incl. worker start-up", [starting]),
             (2, f", workers running, the fastest of {RUNS} runs", running)]
    best_jobs, _, best = max(((jobs, note, max(r)) for jobs, note, r in rates), key=lambda r: r[2])
    for jobs, note, runs in rates:
        rate = max(runs)
        spread = f"; runs {min(runs):,.0f}-{rate:,.0f}" if len(runs) > 1 else ""
        print(f"trialsim, n_jobs={jobs}{note}: {rate:,.0f} full trials/s ({n_sims:,} trials, {len(model.analysed)} "
              f"endpoints, {n_tests} tests each{spread}) = {rate / naive_rate:,.0f}x the naive loop")
    # rpact's figure is for ONE binary endpoint (getSimulationRates, 20 subjects); the target compares it with the full
    # design above. For scale, the same engine on rpact's workload: the primary endpoint and its chi-square test alone
    primary = model.primary
    one = reduced(scenario, [(primary.name, "chi2" if "chi2" in primary.tests else primary.tests[0])])
    run(one, n_sims=2000, seed=1, n_jobs=1)
    for jobs in (1, 2):
        t0 = time.perf_counter()
        run(one, n_sims=n_sims, seed=1, n_jobs=jobs)
        rate = n_sims / (time.perf_counter() - t0)
        print(f"  for scale, one binary endpoint and one test (rpact's workload: {primary.name}, "
              f"{build_model(one).analysed[0].tests[0]}), n_jobs={jobs}: {rate:,.0f} trials/s")
    law, d = binary_rates(model, primary.name), scenario.design  # the event rates among analysable patients
    rpact = bench_rpact(n_sims, law.p_control, law.p_treatment, d.n_control, d.n_treatment)
    if rpact is not None:
        verdict = "met" if best > rpact else f"not met ({rpact / best:.2f}x to go)"
        print(f"target: the full design ({best:,.0f} trials/s, the best above, on {best_jobs} core{'s' * (best_jobs > 1)}) faster "
              f"than rpact on one binary endpoint on this machine ({rpact:,.0f} trials/s, on 1 core): {verdict}")


# rpact's getSimulationRates on the primary endpoint's rates: one binary endpoint, one fixed-sample analysis (kMax = 1),
# the design's subjects; timed inside R around the call alone (no R start-up or package load), as the engine is timed
# above with its workers running, and the fastest of three runs, as the engine's best rate is compared with it.
# Arguments: iterations, control rate, treatment rate, subjects, allocation ratio (treatment : control).
RPACT_SCRIPT = """
suppressMessages(library(rpact))
a <- as.numeric(commandArgs(trailingOnly = TRUE))
design <- getDesignGroupSequential(kMax = 1, alpha = 0.025, sided = 1)
simulate <- function(n) getSimulationRates(design = design, groups = 2, pi1 = a[3], pi2 = a[2],
    directionUpper = a[3] > a[2], plannedSubjects = a[4], allocationRatioPlanned = a[5],
    maxNumberOfIterations = n, seed = 1)
invisible(simulate(1000))
t <- min(sapply(1:3, function(i) system.time(s <<- simulate(a[1]))[["elapsed"]]))
cat(as.character(packageVersion("rpact")), t, s$overallReject, "\n")
"""


def bench_rpact(n_sims: int, p_control: float, p_treatment: float, n_control: int, n_treatment: int) -> float | None:
    """rpact's trials/s on one binary endpoint (``RPACT_SCRIPT``), or None (with the reason printed) where R or rpact
    is missing or the run fails."""
    if shutil.which("Rscript") is None:
        print("rpact: not measured (no Rscript here; on Debian: apt install r-cran-rpact)")
        return None
    subjects = n_control + n_treatment
    args = [str(n_sims), repr(float(p_control)), repr(float(p_treatment)), str(subjects), repr(n_treatment / n_control)]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "rpact_rates.R"
        script.write_text(RPACT_SCRIPT)
        try:
            done = subprocess.run(["Rscript", str(script), *args], capture_output=True, text=True, timeout=1800)
        except subprocess.TimeoutExpired:
            print("rpact: not measured (Rscript ran for more than 30 minutes)")
            return None
    said = done.stdout.split()
    if done.returncode != 0 or len(said) != 3:
        lines = done.stderr.splitlines()
        first = next((i for i, line in enumerate(lines) if line.startswith("Error")), max(len(lines) - 1, 0))
        errors = [line.strip() for line in lines[first:first + 2]]  # R puts the message on the line after "Error in"'s
        print(f"rpact: not measured (Rscript failed: {' '.join(errors) or done.stdout.strip()!r}; "
              "on Debian: apt install r-cran-rpact)")
        return None
    version, seconds, power = said
    rate = n_sims / max(float(seconds), 1e-3)  # R's clock counts milliseconds
    print(f"rpact {version} getSimulationRates, one binary endpoint ({p_control:.4g} vs {p_treatment:.4g}, {subjects} "
          f"subjects, one analysis), 1 core (R is single-threaded): {rate:,.0f} trials/s ({n_sims:,} trials in "
          f"{float(seconds):.2f} s, the fastest of 3 runs; one-sided 2.5% power {float(power):.4f})")
    return rate


def _cpu_seconds() -> float:
    """CPU (user + sys) of this process so far."""
    t = os.times()
    return t.user + t.system


def bench_flow(n_sims: int = 10_000) -> None:
    """The default 20-patient flow (SimPy) with every analysis on who is analysable, against no flow."""
    base = load_scenario(DEFAULT)
    with_flow = base if base.flow is not None else with_values(base, {"flow": {}})
    without = base if base.flow is None else with_values(base, {"flow": None})
    run(without, n_sims=1000, seed=1, n_jobs=1)  # warm caches (tables) outside the timings
    run(with_flow, n_sims=1000, seed=1, n_jobs=1)
    cpu = {}
    for name, scenario in (("no flow", without), ("flow", with_flow)):
        c0 = _cpu_seconds()
        run(scenario, n_sims=n_sims, seed=1, n_jobs=1)
        cpu[name] = _cpu_seconds() - c0
    print(f"flow cost per trial: {cpu['flow'] / cpu['no flow']:.1f}x no flow (CPU, n_jobs=1, {n_sims:,} trials each: "
          f"{cpu['flow']:.2f} s vs {cpu['no flow']:.2f} s; target under 3x)")
    for jobs in (1, 2):
        t0 = time.perf_counter()
        run(with_flow, n_sims=n_sims, seed=1, n_jobs=jobs)
        seconds = time.perf_counter() - t0
        print(f"flow + analyses, n_jobs={jobs}: {n_sims:,} trials in {seconds:.1f} s ({n_sims / seconds:,.0f} trials/s)")


def _user_env(env: dict | None = None) -> dict:
    """The environment of a command as a user runs it: Python's bytecode cache on (``PYTHONDONTWRITEBYTECODE``,
    set on some build and CI machines, makes every process compile the package's 20,000 lines again)."""
    env = dict(os.environ if env is None else env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def warm_bytecode() -> None:
    """Compile every module of the package into its bytecode cache once (what an installed package has)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "trialsim")], check=False, env=_user_env())


def _child(args: list[str], env: dict | None = None) -> tuple[float, float, float, int]:
    """Run a command; its wall seconds, CPU seconds (its process tree, as waited for), peak RSS in MB, status."""
    t0 = time.perf_counter()
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_user_env(env), cwd=ROOT)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if p.returncode != 0:
        print(f"  (exit {p.returncode}: {err.strip()[-300:]})")
    # ru_maxrss is in KB on Linux: the largest process of the tree that was waited for
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, p.returncode


def _trialsim(*args: str) -> list[str]:
    return [sys.executable, "-m", "trialsim", *args]


def bench_cli(n_sims: int = 1000, n_long: int = 200_000) -> None:
    """`trialsim run` of ``n_sims`` trials end to end: the first run on a machine (nothing cached), then with an
    empty and a filled exact-table cache; and a run of ``n_long`` trials on 2 workers, long enough for the compiled
    loops (trialsim.kernels, from runner.COMPILED_FROM trials per worker), with their compilation on a machine's first
    long run and with them cached."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != ENV_SWITCH} | {ENV_DIR: str(Path(tmp) / "cache")}
        cold = {"NUMBA_CACHE_DIR": str(Path(tmp) / "numba")}  # no compiled loop cached yet
        runs = [("first run on a machine: nothing cached", env | cold, n_sims, 1),
                ("empty table cache", env | {ENV_DIR: str(Path(tmp) / "cache2")}, n_sims, 1),
                ("filled table cache", env, n_sims, 1), ("filled table cache", env, n_sims, 1),
                ("2 workers, compiled loops: their compilation on a machine's first long run", env | cold, n_long, 2),
                ("2 workers, compiled loops cached", env | cold, n_long, 2)]
        for label, run_env, n, jobs in runs:
            out = Path(tmp) / "out"
            wall, cpu, _, _ = _child(_trialsim("run", str(DEFAULT), "--sims", str(n), "--seed", "1", "--out", str(out),
                                               "--jobs", str(jobs), "--quiet"), run_env)
            subprocess.run(["rm", "-rf", str(out)], check=False)
            target = " (target under 1.5 s wall on an idle 2-core machine)" if n == n_sims else ""
            print(f"CLI run of {n:,} trials end to end ({label}): {wall:.2f} s wall, {cpu:.2f} s CPU{target}")


def bench_memory(n_sims: int) -> None:
    """Peak resident memory of a CLI run at 4 x 10^5 trials and at ``n_sims`` (flat in the number of trials; both long
    enough for the compiled loops, whose numba adds about 75 MB to a process)."""
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted({400_000, n_sims}):
            out = Path(tmp) / f"run{n}"
            wall, cpu, peak, _ = _child(_trialsim("run", str(DEFAULT), "--sims", str(n), "--seed", "1", "--out", str(out),
                                                  "--quiet"))
            print(f"peak resident memory, run of {n:,} trials: {peak:,.0f} MB (largest process; {wall:.0f} s wall, "
                  f"{cpu:.0f} s CPU; target flat in trials and under 400 MB)")


def bench_report() -> None:
    """`trialsim report` on the default config, end to end in a fresh process: first with an empty disk cache (a
    machine's first report: Boschloo tables, exact scans and MDEs built), then again with it filled (a report
    after an earlier one on this machine); then the documents alone, written again from that folder (`report
    --from`), with and without the helper processes that draw the figures and render the PDF."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != ENV_SWITCH} | {ENV_DIR: str(Path(tmp) / "cache")}
        for label in ("empty disk cache", "filled disk cache"):
            first = Path(tmp) / "report"
            subprocess.run(["rm", "-rf", str(first)], check=False)
            wall, cpu, peak, _ = _child(_trialsim("report", str(DEFAULT), "--out", str(first), "--quiet"), env)
            print(f"report on the default config ({label}): {wall:.1f} s wall, {cpu:.1f} s CPU (all processes), "
                  f"peak {peak:,.0f} MB (target under 30 s on 2 cores)")
        for jobs in ((), ("--jobs", "1")):
            wall, cpu, _, _ = _child(_trialsim("report", "--from", str(first), "--out", str(Path(tmp) / f"docs{len(jobs)}"),
                                               "--quiet", *jobs), env)
            how = "in one process (--jobs 1)" if jobs else "figures and PDF in two helper processes"
            print(f"  its documents alone (report --from that folder), {how}: {wall:.1f} s wall, {cpu:.1f} s CPU "
                  "(start-up included)")


def bench_boschloo(n_max: int = 200) -> None:
    """Exact Boschloo power at every n per arm from 5 to ``n_max``, without and with the disk cache."""
    ns = np.arange(5, n_max + 1)
    saved = {k: os.environ.get(k) for k in (ENV_DIR, ENV_SWITCH)}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for label, env in (("cache off", {ENV_SWITCH: "0"}), ("filling the cache", {ENV_DIR: tmp}),
                               ("cache filled", {ENV_DIR: tmp})):
                for k in (ENV_DIR, ENV_SWITCH):
                    os.environ.pop(k, None)
                os.environ.update(env)
                # a fresh process: the in-memory caches of this one would hide the cost
                code = ("import time, numpy as np; from trialsim.analysis.binary import exact_power_curve; "
                        f"t0 = time.perf_counter(); p = exact_power_curve('boschloo', 0.15, 0.05, np.arange(5, {n_max + 1}), "
                        "alpha=0.05); print(time.perf_counter() - t0, int(np.argmax(p >= 0.8)) + 5)")
                done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
                seconds, first80 = done.stdout.split()
                print(f"Boschloo exact power, every n per arm 5..{n_max} at 15% vs 5% ({label}): {float(seconds):.2f} s "
                      f"({ns.size} sizes; first n at 80%: {first80}; target under 10 s)")
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


# the README's "Choosing a design": the registered design and its shipped alternatives
COMPARED = ["exosome_lar_20.toml", "designs/registered_selection.toml", "designs/unmasked_20.toml",
            "designs/randomised_blocks_20.toml", "designs/ratio_2to1_30.toml", "designs/stratified_40.toml",
            "designs/minimisation_40.toml", "designs/bayes_pilot_20.toml", "leak_powered.toml",
            "designs/interim_leak_400.toml", "designs/safety_leak_400.toml"]


def bench_compare(n_sims: int = 10_000) -> None:
    """`trialsim compare` of the shipped alternatives, ``n_sims`` trials per design and per null run."""
    configs = [str(ROOT / "configs" / c) for c in COMPARED]
    wall, cpu, peak, _ = _child(_trialsim("compare", *configs, "--no-sweep", "--sims", str(n_sims), "--seed", "20240831",
                                          "--quiet"))
    print(f"compare, {len(configs)} shipped designs at {n_sims:,} trials each (and as many under the null): {wall:.0f} s wall, "
          f"{cpu:.0f} s CPU, peak {peak:,.0f} MB")


def bench_planning(quick: bool = False) -> None:
    exact = bench_exact_fisher()
    print("exact Fisher power, every n per arm 5..500: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in exact.items()))
    n_sims = 2000 if quick else 10_000
    sweep = bench_sweep(n_sims=n_sims)
    print(f"50-scenario sweep at {n_sims:,} trials each: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in sweep.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["engine", "exact", "sweep", "flow", "cli", "memory", "report", "boschloo", "compare"],
                        default=None)
    parser.add_argument("--quick", action="store_true", help="small sizes everywhere (memory at 10^6 trials)")
    parser.add_argument("--sims", type=int, default=None, help="trials of the engine part (default 400,000)")
    parser.add_argument("--naive", type=int, default=None, help="trials of the naive loop (default 200)")
    parser.add_argument("--flow-sims", type=int, default=None, help="trials of the flow part (default 10,000)")
    parser.add_argument("--mem-sims", type=int, default=None, help="trials of the memory part (default 10^7)")
    args = parser.parse_args()
    quick = args.quick
    sims = args.sims or (20_000 if quick else 400_000)
    naive = args.naive or (20 if quick else 200)
    flow_sims = args.flow_sims or (1000 if quick else 10_000)
    mem_sims = args.mem_sims or (1_000_000 if quick else 10_000_000)
    print(f"machine: {os.cpu_count()} cores, numpy {np.__version__}, load average {os.getloadavg()[0]:.1f}")
    warm_bytecode()  # commands below run as from an installed package: bytecode compiled once, as pip does
    if args.only in (None, "engine"):
        bench_engine(sims, naive)
    if args.only in (None, "flow"):
        bench_flow(flow_sims)
    if args.only in (None, "cli"):
        bench_cli()
    if args.only in (None, "boschloo"):
        bench_boschloo()
    if args.only in (None, "report"):
        bench_report()
    if args.only in (None, "memory"):
        bench_memory(mem_sims)
    if args.only in (None, "exact", "sweep"):
        bench_planning(quick)
    if args.only in (None, "compare"):
        bench_compare(1000 if quick else 10_000)


if __name__ == "__main__":
    main()
