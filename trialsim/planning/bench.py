"""Planning benchmarks, called from scripts/bench.py (figures to print, never timed tests).

``bench_exact_fisher``: exact Fisher power for every n per arm from 5 to 500 (target: under 1 s).
``bench_sweep``: a 50-scenario sweep of the full default design at 10,000 trials each on 2 workers
(target: under 60 s).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from trialsim.analysis.binary import exact_power_curve
from trialsim.config.loader import load_scenario, with_values
from trialsim.model import build_model
from trialsim.planning.plan import run_design
from trialsim.scenarios import expand

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "exosome_lar_20.toml"


def bench_exact_fisher(p_control: float = 0.15, p_treatment: float = 0.05, n_min: int = 5, n_max: int = 500,
                       alpha: float = 0.05, repeats: int = 3) -> dict:
    """Time :func:`~trialsim.analysis.binary.exact_power_curve` for Fisher at every n in [n_min, n_max].

    Returns the best of ``repeats`` timings (seconds), the first (cold) one, the number of sizes and
    the first n reaching 80% power (a check that the curve is the real one).
    """
    ns = np.arange(n_min, n_max + 1)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        power = exact_power_curve("fisher", p_control, p_treatment, ns, alpha=alpha)
        times.append(time.perf_counter() - t0)
    hit = np.flatnonzero(power >= 0.8)
    return {"name": "exact_fisher", "n_sizes": int(ns.size), "n_range": [n_min, n_max], "p_control": p_control,
            "p_treatment": p_treatment, "seconds": min(times), "seconds_cold": times[0],
            "ms_per_size": 1000 * min(times) / ns.size, "first_n_80": int(ns[hit[0]]) if hit.size else None,
            "target_seconds": 1.0}


def bench_sweep(config: str | Path = DEFAULT_CONFIG, *, n_scenarios: int = 50, n_sims: int = 10_000, n_jobs: int = 2,
                seed: int = 1) -> dict:
    """Time a sweep of ``n_scenarios`` scenarios of the full design at ``n_sims`` trials each.

    The sweep is a grid of 10 values of the primary endpoint's effect parameter (from no effect to a
    tenth of it, or out to twice the assumed difference) x 5 values of the next effect parameter of
    the model (from no effect to 60% of it), every scenario with every endpoint and test of the
    config, on ``n_jobs`` workers.
    """
    base = load_scenario(config)
    params = list(dict.fromkeys(a.effect for a in build_model(base).analysed if a.effect is not None))
    values = {params[0].path: _bench_values(params[0], 10, 0.1)}
    if len(params) > 1:
        values[params[1].path] = _bench_values(params[1], 5, 0.6)
    sweep = with_values(base, {"sweep": {"mode": "grid", "values": values}}, source="bench sweep")
    specs = expand(sweep)[:n_scenarios]
    if len(specs) < n_scenarios:
        raise ValueError(f"the bench grid has only {len(specs)} scenarios")
    run_design(base, n_sims=2000, seed=seed, seed_given=True, n_jobs=1)  # warm caches (exact tables) outside the timing
    t0 = time.perf_counter()
    result = run_design(sweep, n_sims=n_sims, seed=seed, seed_given=True, n_jobs=n_jobs, sweep=True)
    seconds = time.perf_counter() - t0
    n_done = len(result.results)
    return {"name": "sweep", "n_scenarios": n_done, "n_sims": n_sims, "n_jobs": n_jobs, "cores": os.cpu_count(),
            "seconds": seconds, "trials_per_second": n_done * n_sims / seconds, "target_seconds": 60.0}


def _bench_values(effect, k: int, far: float) -> list[float]:
    if effect.kind == "difference":
        step = effect.assumed - effect.null or 1.0
        return [round(float(effect.null + x), 4) for x in np.linspace(0.0, 2 * step, k)]
    return [round(float(effect.null * x), 4) for x in np.linspace(1.0, far, k)]
