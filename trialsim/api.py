"""The Python API behind every CLI command."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from trialsim.config.loader import load_scenario, with_values
from trialsim.config.schema import Scenario
from trialsim.engine import run_specs
from trialsim.flow.summary import summarise_flow
from trialsim.report.flow_figures import plot_duration, plot_enrolment
from trialsim.results import RunResult, ScenarioResult, TrialWriter, provenance
from trialsim.rng import Streams, draw_seed
from trialsim.scenarios import ScenarioSpec, expand
from trialsim.simulate import simulate_trials


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
    keep_trials: str | Path | None = None,
) -> RunResult:
    """Simulate a scenario (and its sweep) and return the results.

    Arguments given here take precedence over the config's ``[run]`` section. Without a seed anywhere
    one is drawn, used and recorded in ``result.provenance``. ``keep_trials`` is a folder for the
    per-trial table (Parquet, one file per scenario and block: p-value, estimate, interval, decision).
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
    writer = TrialWriter(Path(keep_trials), [s.id for s in specs]) if keep_trials is not None else None
    blocks = run_specs(specs, seed=seed, n_sims=n_sims, n_jobs=n_jobs,
                       chunk_blocks=chunk_blocks if chunk_blocks is not None else cfg.chunk_blocks,
                       backend=cfg.backend, progress=progress,
                       checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir is not None else None,
                       on_trials=writer.write if writer is not None else None)
    seconds = time.perf_counter() - t0
    results = [ScenarioResult.combine(spec, b) for spec, b in zip(specs, blocks)]
    prov = provenance(specs[0], seed=seed, seed_given=seed_given, n_sims=n_sims, n_jobs=n_jobs, seconds=seconds, source=source)
    prov["scenarios"] = [s.id for s in specs]
    return RunResult(results=results, seed=seed, provenance=prov)


@dataclass(frozen=True)
class FlowReport:
    """What ``trialsim flow`` shows: the duration summary over all trials and one block in detail."""

    result: RunResult
    summary: object  # trialsim.flow.summary.FlowSummary over every simulated trial
    sample: object  # trialsim.flow.run.FlowBatch of block 0 (per-patient times, event log of trial 0)
    sample_summary: object

    def save(self, out: str | Path) -> list[Path]:
        """Write flow_summary.csv, the event log of one simulated trial, and the two figures (PNG and SVG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = Path(out)
        self.result.save(out)
        paths = [out / "flow_summary.csv", out / "event_log_trial0.csv"]
        self.summary.to_frame().to_csv(paths[0], index=False)
        self.sample.event_log.to_csv(paths[1], index=False)
        for name, plot, source in (("enrolment", plot_enrolment, self.sample_summary), ("duration", plot_duration, self.summary)):
            ax = plot(source)
            for ext in ("png", "svg"):
                path = out / f"flow_{name}.{ext}"
                ax.figure.savefig(path, dpi=200)
                paths.append(path)
            plt.close(ax.figure)
        return paths


def flow(
    scenario: Scenario | str | Path,
    *,
    overrides: Iterable[str] = (),
    n_sims: int | None = None,
    seed: int | None = None,
    n_jobs: int | None = None,
    progress: bool = False,
    checkpoint_dir: str | Path | None = None,
) -> FlowReport:
    """Simulate the patient flow (and the analyses on who is analysable) of a scenario.

    A config without a ``[flow]`` section gets the flow's cited defaults. The per-patient figure and
    event log come from block 0 of the same run (same seed, same trials).
    """

    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, overrides)
    if scenario.flow is None:
        scenario = with_values(scenario, {"flow": {}}, source="flow defaults")
    result = run(scenario, n_sims=n_sims, seed=seed, n_jobs=n_jobs, progress=progress, checkpoint_dir=checkpoint_dir,
                 sweep=False)
    summary = summarise_flow(result.results[0].flow, flow=scenario.flow)
    size = min(scenario.run.block_size, result.results[0].n_sims)
    sample = simulate_trials(scenario, size, streams=Streams(result.seed, 0), event_log=True).flow_batch
    return FlowReport(result=result, summary=summary, sample=sample, sample_summary=summarise_flow(sample))
