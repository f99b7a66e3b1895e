"""The Python API behind every CLI command."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable

from trialsim.config.loader import load_scenario
from trialsim.config.schema import Scenario
from trialsim.engine import run_specs
from trialsim.results import RunResult, ScenarioResult, provenance
from trialsim.rng import draw_seed
from trialsim.scenarios import ScenarioSpec, expand


def run(
    scenario: Scenario | str | Path,
    *,
    overrides: Iterable[str] = (),
    n_sims: int | None = None,
    seed: int | None = None,
    n_jobs: int | None = None,
    chunk_blocks: int | None = None,
    progress: bool = False,
    checkpoint_dir: str | Path | None = None,
    sweep: bool = True,
) -> RunResult:
    """Simulate a scenario (and its sweep) and return the results.

    Arguments given here take precedence over the config's ``[run]`` section. Without a seed anywhere
    one is drawn, used and recorded in ``result.provenance``.
    """
    source = None
    if not isinstance(scenario, Scenario):
        source = str(scenario)
        scenario = load_scenario(scenario, overrides)
    cfg = scenario.run
    n_sims = n_sims if n_sims is not None else cfg.n_sims
    seed_given = seed is not None or cfg.seed is not None
    seed = seed if seed is not None else (cfg.seed if cfg.seed is not None else draw_seed())
    n_jobs = n_jobs if n_jobs is not None else cfg.n_jobs
    specs = expand(scenario) if sweep else [ScenarioSpec("base", scenario, {})]
    t0 = time.perf_counter()
    blocks = run_specs(specs, seed=seed, n_sims=n_sims, n_jobs=n_jobs,
                       chunk_blocks=chunk_blocks if chunk_blocks is not None else cfg.chunk_blocks,
                       backend=cfg.backend, progress=progress,
                       checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir is not None else None)
    seconds = time.perf_counter() - t0
    results = [ScenarioResult.combine(spec, b) for spec, b in zip(specs, blocks)]
    prov = provenance(specs[0], seed=seed, seed_given=seed_given, n_sims=n_sims, n_jobs=n_jobs, seconds=seconds, source=source)
    prov["scenarios"] = [s.id for s in specs]
    return RunResult(results=results, seed=seed, provenance=prov)
