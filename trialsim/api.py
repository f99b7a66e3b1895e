"""The Python API behind every CLI command."""
from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from trialsim.config.loader import ConfigError, scenario_of, with_values
from trialsim.config.schema import FLOW_NEEDS_STAYS, Scenario, gives_stays
from trialsim.engine import RunDir, atomic_write, resolve_seed, run_specs
from trialsim.flow.summary import summarise_flow
from trialsim.report.flow_figures import plot_duration, plot_enrolment
from trialsim.results import RunResult, ScenarioResult, TrialWriter, provenance
from trialsim.rng import Streams
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
    backend: str | None = None,
    scheduler: str | None = None,
    max_memory_mb: int | None = None,
    progress: bool = False,
    out: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    sweep: bool = True,
    keep_trials: str | Path | None = None,
) -> RunResult:
    """Simulate a scenario (and its sweep) and return the results.

    Arguments given here take precedence over the config's ``[run]`` section. Without a seed anywhere
    one is drawn, used and recorded in ``result.provenance`` (and in the run folder, so an
    interrupted unseeded run resumes with it). ``out`` is the run folder: locked for the whole run,
    checkpointed (an interrupted run resumes where it stopped) and given the result files
    (:meth:`RunResult.save`). ``checkpoint_dir`` is a run folder without the result files.
    ``keep_trials`` is a folder for the per-trial table (Parquet, one file per scenario and block:
    p-value, estimate, interval, decision). ``backend`` ("loky", "threading", "sequential", "dask"),
    ``scheduler`` (a Dask scheduler address; none: a local cluster) and ``max_memory_mb`` override
    ``run.backend``, ``run.scheduler`` and ``run.max_memory_mb``.
    """
    scenario, source = _load(scenario, overrides)
    specs = expand(scenario) if sweep else [ScenarioSpec("base", scenario, {})]
    with _run_dir(out, checkpoint_dir) as rd:
        result = _simulate(specs, source=source, n_sims=n_sims, seed=seed, n_jobs=n_jobs, chunk_blocks=chunk_blocks,
                           backend=backend, scheduler=scheduler, max_memory_mb=max_memory_mb, progress=progress,
                           run_dir=rd, keep_trials=keep_trials)
        if out is not None:
            result.save(out)
        if rd is not None:
            rd.finish()
    return result


def _load(scenario: Scenario | str | Path, overrides: Iterable[str]) -> tuple[Scenario, str | None]:
    return scenario_of(scenario, overrides), None if isinstance(scenario, Scenario) else str(scenario)


def _run_dir(out, checkpoint_dir):
    if out is not None and checkpoint_dir is not None:
        raise ValueError("give out (a run folder with its results) or checkpoint_dir (checkpoints only), not both")
    folder = out if out is not None else checkpoint_dir
    return RunDir(folder) if folder is not None else contextlib.nullcontext(None)


def _simulate(specs: list[ScenarioSpec], *, source: str | None, n_sims, seed, n_jobs, chunk_blocks, backend, scheduler,
              max_memory_mb, progress: bool, run_dir: RunDir | None, keep_trials) -> RunResult:
    cfg = specs[0].scenario.run
    n_sims = n_sims if n_sims is not None else cfg.n_sims
    seed, seed_given = resolve_seed(seed if seed is not None else cfg.seed, run_dir)
    n_jobs = n_jobs if n_jobs is not None else cfg.n_jobs
    backend = backend or ("dask" if scheduler else cfg.backend)
    t0 = time.perf_counter()
    writer = TrialWriter(Path(keep_trials), [s.id for s in specs]) if keep_trials is not None else None
    totals = run_specs(specs, seed=seed, n_sims=n_sims, n_jobs=n_jobs,
                       chunk_blocks=chunk_blocks if chunk_blocks is not None else cfg.chunk_blocks,
                       backend=backend, scheduler=scheduler, max_memory_mb=max_memory_mb, progress=progress,
                       run_dir=run_dir, seed_given=seed_given, on_trials=writer.write if writer is not None else None,
                       trials_kept=writer.has if writer is not None else None)
    if writer is not None:
        writer.finish(n_sims)
    seconds = time.perf_counter() - t0
    results = [ScenarioResult(spec, t) for spec, t in zip(specs, totals)]
    prov = provenance(specs[0], seed=seed, seed_given=seed_given, n_sims=n_sims, n_jobs=n_jobs, seconds=seconds,
                      source=source, block_size=totals[0].block_size, backend=backend,
                      run_dir=run_dir.provenance() if run_dir is not None else None)
    prov["scenarios"] = [s.id for s in specs]
    return RunResult(results=results, seed=seed, provenance=prov)


@dataclass(frozen=True)
class FlowReport:
    """What ``trialsim flow`` shows: the duration summary over all trials and one block in detail."""

    result: RunResult
    summary: object  # trialsim.flow.summary.FlowSummary over every simulated trial
    sample: object  # trialsim.flow.run.FlowBatch of block 0 (per-patient times, event log of trial 0)
    sample_summary: object
    written: tuple[Path, ...] = ()  # the files flow(..., out=) wrote

    def save(self, out: str | Path) -> list[Path]:
        """Write flow_summary.csv, the event log of one simulated trial, and the two figures (PNG and SVG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = Path(out)
        self.result.save(out)
        paths = [out / "flow_summary.csv", out / "event_log_trial0.csv"]
        summary = self.summary.to_frame()
        atomic_write(paths[0], lambda p: summary.to_csv(p, index=False))
        atomic_write(paths[1], lambda p: self.sample.event_log.to_csv(p, index=False))
        for name, plot, source in (("enrolment", plot_enrolment, self.sample_summary), ("duration", plot_duration, self.summary)):
            ax = plot(source)
            for ext in ("png", "svg"):
                paths.append(atomic_write(out / f"flow_{name}.{ext}", lambda p: ax.figure.savefig(p, dpi=200)))
            plt.close(ax.figure)
        return paths


def flow(
    scenario: Scenario | str | Path,
    *,
    overrides: Iterable[str] = (),
    n_sims: int | None = None,
    seed: int | None = None,
    n_jobs: int | None = None,
    backend: str | None = None,
    scheduler: str | None = None,
    max_memory_mb: int | None = None,
    progress: bool = False,
    out: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
) -> FlowReport:
    """Simulate the patient flow (and the analyses on who is analysable) of a scenario.

    A config without a ``[flow]`` section gets the flow's cited defaults. The per-patient figure and
    event log come from block 0 of the same run (same seed, same trials). ``out`` is the run folder
    (see :func:`run`); the report's files are written there (:meth:`FlowReport.save`) before its
    lock is released. The flow keeps 16 numbers per trial (128 bytes) for its quantiles: counted in
    the memory budget.
    """
    scenario, source = _load(scenario, overrides)
    if scenario.flow is None:
        if not gives_stays(scenario):
            raise ConfigError(f"trialsim flow cannot run {scenario.name!r}: {FLOW_NEEDS_STAYS}, to fill its beds, and this "
                              f"config declares {', '.join(f'{c} ({s.family})' for c, s in scenario.endpoints.items())}; "
                              "its power runs without the flow (trialsim run)")
        scenario = with_values(scenario, {"flow": {}}, source="flow defaults")
    with _run_dir(out, checkpoint_dir) as rd:
        result = _simulate([ScenarioSpec("base", scenario, {})], source=source, n_sims=n_sims, seed=seed, n_jobs=n_jobs,
                           chunk_blocks=None, backend=backend, scheduler=scheduler, max_memory_mb=max_memory_mb,
                           progress=progress, run_dir=rd, keep_trials=None)
        summary = summarise_flow(result.results[0].flow, flow=scenario.flow)
        size = min(result.provenance["block_size"], result.results[0].n_sims)
        sample = simulate_trials(scenario, size, streams=Streams(result.seed, 0), event_log=True).flow_batch
        report = FlowReport(result=result, summary=summary, sample=sample, sample_summary=summarise_flow(sample))
        if out is not None:
            report = dataclasses.replace(report, written=tuple(report.save(out)))
        if rd is not None:
            rd.finish()
    return report
