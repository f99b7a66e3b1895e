"""One call for everything a planning report needs, saved to (and read back from) a results folder.

``plan(config)`` runs the scenario (the power table), the sample sizes for each target power, the
minimal detectable effects at the planned size, the pilot numbers and the curve data, and returns a
:class:`PlanningResult` of tidy frames. Everything simulated goes through the one engine
(:func:`trialsim.engine.run_specs`) with one root seed (given, else ``run.seed``, else drawn and
recorded) and the run's block layout, so a number here is the number ``trialsim run`` or
``trialsim samplesize`` gives for the same quantity, seed and trials.

Besides the power table it computes what a reviewer asks first: the type I error of every test at
this design (every effect parameter set to its null; exact for binary endpoints, else simulated),
the type I error of exact tests at each sample size it proposes, and, for a config with a ``[flow]``
section, the timeline of the run's simulated trials.

``result.save(dir)`` writes the frames next to the run's own files (power.csv, estimates.csv,
provenance.json, scenarios/*.toml written by :meth:`trialsim.results.RunResult.save`) into a folder
it creates (or one it wrote before: it never writes into a folder it did not create);
:func:`load_planning` reads such a folder back, so figures and reports are redrawn without
simulating again. A folder written by ``trialsim run --out`` alone (no planning.json) is completed
by :func:`plan` with the run's seed and number of trials, reusing its power table: the result is
the one ``plan(config)`` gives for the same seed.
"""
from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy

from trialsim.config.loader import (
    ConfigError,
    config_hash,
    load_scenario,
    scenario_of,
    parse_override,
    scenario_to_toml,
    with_values,
)
from trialsim.config.schema import Scenario
from trialsim.designs.allocation import scheme
from trialsim.engine import run_specs
from trialsim.exact import exact_rows, no_effect
from trialsim.files import RERUN, DamagedFileError, Ledger, read_sealed, sealed_json, verify_files
from trialsim.flow.summary import summarise_flow
from trialsim.model import build_model
from trialsim.planning.assumptions import assumptions_frame, file_comments
from trialsim.planning.curves import default_n_values, power_grid, power_vs_effect, power_vs_n
from trialsim.planning.mde import minimal_detectable_effects
from trialsim.planning.model import (
    binary_rates,
    design_ratio,
    dropout,
    endpoint_rows,
    exact_power,
    flow_only,
    is_null,
    key_pairs,
    resolve_seed,
)
from trialsim.planning.pilot import REFERENCES, pilot_summary
from trialsim.planning.samplesize import sample_sizes
from trialsim.planning.sensitivity import size_sensitivity
from trialsim.report.output import PLANNING_JSON, REPORT, check_complete, claim_folder
from trialsim.results import (
    RunResult,
    ScenarioResult,
    check_run_files,
    provenance as run_provenance,
    read_run_folder,
    read_table,
    run_scenario,
)
from trialsim.scenarios import ScenarioSpec, expand
from trialsim.version import __version__

PARTS = ("run", "samplesize", "mde", "pilot", "curves")
FRAME_FILES = {
    "power": "power.csv",
    "estimates": "estimates.csv",
    "sweep_power": "sweep_power.csv",
    "endpoints": "endpoints.csv",
    "sample_sizes": "sample_sizes.csv",
    "sample_size_curves": "sample_size_curves.csv",
    "mde": "mde.csv",
    "pilot_rates": "pilot_rates.csv",
    "pilot_ratios": "pilot_ratios.csv",
    "pilot_sd_limits": "pilot_sd_limits.csv",
    "pilot_guidance": "pilot_guidance.csv",
    "curves": "curves.csv",
    "effect_curves": "effect_curves.csv",
    "heatmap": "heatmap.csv",
    "size_sensitivity": "size_sensitivity.csv",
    "assumptions": "assumptions.csv",
    "null_power": "null_power.csv",
    "null_decisions": "null_decisions.csv",
    "type_i_at_n": "type_i_at_n.csv",
    "flow": "flow_summary.csv",
}
SCENARIO_TOML = "scenario.toml"
# A sweep in the config is run with at most this many trials per scenario (the base gets run.n_sims).
SWEEP_MAX_SIMS = 20_000
# The type I errors (every effect at its null) are simulated with at most this many trials (Monte Carlo
# SE 0.15 percentage points at 5%); binary endpoints with an exact law get their exact figure anyway.
NULL_MAX_SIMS = 20_000
# A design without a [flow] section gets its timeline from the flow's cited defaults, with at most this many trials
# (its analyses keep assuming every planned patient).
TIMELINE_MAX_SIMS = 20_000
# Libraries whose versions a report names (with trialsim's and Python's).
LIBRARIES = ("numpy", "scipy", "pandas", "simpy", "matplotlib", "seaborn")


@dataclass
class PlanningResult:
    """Every planning table of one design as tidy frames, plus the design, settings and provenance.

    ``frames`` keys are those of :data:`FRAME_FILES`; a part not computed is absent. ``design`` holds
    the design in plain values (:func:`design_facts`), ``references`` the literature the tables cite.
    """

    scenario: Scenario
    frames: dict[str, pd.DataFrame]
    design: dict[str, Any]
    settings: dict[str, Any]
    provenance: dict[str, Any]
    references: dict[str, str] = field(default_factory=lambda: dict(REFERENCES))
    run_result: Any = field(default=None, repr=False)

    def frame(self, name: str) -> pd.DataFrame:
        f = self.frames.get(name)
        return f if f is not None else pd.DataFrame()

    def save(self, out: str | Path, *, command: str = REPORT) -> Path:
        """Write the frames (CSV), planning.json and the resolved scenario; the run's own files too.

        ``out`` must be new, empty or written by ``command`` before (see
        :func:`trialsim.report.output.claim_folder`): a folder it did not create is never overwritten. ``command``:
        the trialsim command whose folder it is ("report", or "curves" for ``trialsim curves`` without ranges).
        """
        out = claim_folder(out, ours=(PLANNING_JSON,), command=command)
        ledger = Ledger(out)  # every file's SHA-256, sealed into planning.json: load_planning checks them
        if self.run_result is not None:
            self.run_result.save(out, ledger=ledger)
        for name, frame in self.frames.items():
            if name in ("power", "estimates") and self.run_result is not None:
                continue  # written by RunResult.save
            ledger.write(out / FRAME_FILES[name], lambda tmp, frame=frame: frame.to_csv(tmp, index=False))
        ledger.write(out / SCENARIO_TOML, scenario_to_toml(self.scenario))
        meta = {"design": self.design, "settings": self.settings, "provenance": self.provenance,
                "references": self.references, "files": {k: FRAME_FILES[k] for k in self.frames},
                "checksums": dict(ledger.files)}
        ledger.write(out / PLANNING_JSON, sealed_json(meta, default=_json_default))
        return out


def _json_default(x):
    if hasattr(x, "item"):
        return x.item()
    if isinstance(x, (set, tuple)):
        return list(x)
    return str(x)


def design_facts(scenario: Scenario, config_file: str | None = None) -> dict[str, Any]:
    """The design in plain values (for headings, the design table and the justification paragraph)."""
    d = scenario.design
    model = build_model(scenario)
    prim = model.primary
    rates = binary_rates(model, prim.name)
    e = prim.effect
    allocation = scheme(scenario.allocation.scheme)
    nan = math.nan
    return {
        "name": scenario.name, "title": scenario.title, "description": scenario.description, "config_file": config_file,
        "control_name": d.control_name, "treatment_name": d.treatment_name, "n_control": d.n_control,
        "n_treatment": d.n_treatment, "alpha": d.alpha, "allocation": allocation.label, "randomised": allocation.randomised,
        "masking": d.masking, "primary_endpoint": prim.name, "primary_label": prim.label, "primary_kind": prim.kind,
        "primary_scale": prim.scale, "primary_test": prim.tests[0], "primary_tests": list(prim.tests),
        "primary_effect_label": e.label if e else "", "primary_effect_kind": e.kind if e else "",
        "primary_effect_null": e.null if e else nan, "primary_effect_assumed": e.assumed if e else nan,
        "primary_p_control": rates.p_control if rates else nan,
        "primary_p_treatment": rates.p_treatment if rates else nan,
        "primary_dropout": dropout(model, prim.name),
        "null": is_null(model),
        "key_pairs": [list(p) for p in key_pairs(model)],
        "has_sweep": scenario.sweep is not None and bool(scenario.sweep.values),
        "has_flow": scenario.flow is not None,
    }


def null_scenario(scenario: Scenario) -> Scenario:
    """``scenario`` with every analysed endpoint's effect parameter at its null (no treatment effect)."""
    return no_effect(scenario)


def type_i_errors(scenario: Scenario, *, n_sims: int, seed: int, n_jobs: int, simulate: bool = True,
                  progress: bool = False) -> pd.DataFrame:
    """The power table of :func:`null_scenario`: every test's type I error at this design.

    Binary endpoints with an exact law get their exact row (as in the power table); with
    ``simulate`` every test also gets a simulated one (``n_sims`` trials, Monte Carlo interval).
    """
    return null_tables(scenario, n_sims=n_sims, seed=seed, n_jobs=n_jobs, simulate=simulate, progress=progress)[0]


def null_tables(scenario: Scenario, *, n_sims: int, seed: int, n_jobs: int, simulate: bool = True,
                progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`type_i_errors` and the null run's decisions (e.g. the chance that any test rejects; empty unsimulated)."""
    null = null_scenario(scenario)
    if simulate:
        run = run_design(null, n_sims=n_sims, seed=seed, seed_given=True, n_jobs=n_jobs, progress=progress)
        return run.to_frame(), run.decisions_frame()
    model = build_model(null)
    rows = []
    for r in exact_rows(null):
        a = model.endpoint(r["endpoint"])
        rows.append({"scenario": "base", "endpoint": r["endpoint"], "test": r["test"], "power": r["power"], "mc_se": 0.0,
                     "ci_low": r["power"], "ci_high": r["power"], "method": "exact", "n_sims": 0, "n_valid": 0,
                     "primary": a.primary, "family": a.kind, "label": a.label, "null": True})
    return pd.DataFrame(rows), pd.DataFrame()


def type_i_at_sizes(scenario: Scenario, sizes: pd.DataFrame) -> pd.DataFrame:
    """Exact type I error (no effect, at the assumed control rate) at each exact sample size found.

    One row per reachable exact row of a sample-size frame: the test's rejection rate when both arms
    have the control arm's event rate, at the analysable sizes the row proposes.
    """
    columns = ["endpoint", "test", "target_power", "n", "n_treatment", "p_control", "alpha", "type_i_error"]
    if sizes.empty:
        return pd.DataFrame(columns=columns)
    model = build_model(scenario)
    alpha = scenario.design.alpha
    rows = []
    ok = sizes[(sizes["method"] == "exact") & sizes["reachable"].astype(bool)]
    for r in ok.itertuples():
        rates = binary_rates(model, str(r.endpoint))
        if rates is None:
            continue
        n_c, n_t = int(r.n), int(r.n_treatment)
        rows.append({"endpoint": r.endpoint, "test": r.test, "target_power": r.target_power, "n": n_c, "n_treatment": n_t,
                     "p_control": rates.p_control, "alpha": alpha,
                     "type_i_error": exact_power(str(r.test), rates.p_control, rates.p_control, n_c, n_t, alpha=alpha)})
    return pd.DataFrame(rows, columns=columns)


def flow_frame(flow_arrays: Mapping[str, Any] | None, scenario: Scenario, *, in_analyses: bool = True) -> pd.DataFrame | None:
    """The timeline of the simulated trials (:meth:`~trialsim.flow.summary.FlowSummary.to_frame`), None without a flow.

    Its column ``in_analyses`` says whether the analyses of the power table were run on who the flow enrolled
    (a config with a ``[flow]`` section) or on every planned patient (:func:`timeline_frame`)."""
    if flow_arrays is None or scenario.flow is None:
        return None
    frame = summarise_flow(flow_arrays, flow=scenario.flow).to_frame()
    frame["in_analyses"] = in_analyses
    return frame


def timeline_frame(scenario: Scenario, *, n_sims: int, seed: int, n_jobs: int, progress: bool = False) -> pd.DataFrame | None:
    """The timeline of a design without a ``[flow]`` section, from the flow's cited defaults (as ``trialsim flow``
    gives it, for the same seed): how long enrolment takes and the chance of the planned completion date. The power
    table keeps assuming every planned patient; the timeline says what that assumption takes. None where the flow's
    model does not fit the design (it needs an endpoint giving the hospital stays)."""
    try:
        with_flow = with_values(scenario, {"flow": {}}, source="flow defaults")
        lean = flow_only(with_flow)  # the same flow, without the analyses' cost
        result = run_design(lean, n_sims=n_sims, seed=seed, seed_given=True, n_jobs=n_jobs, progress=progress)
    except ConfigError:  # the flow's model does not fit this design (no hospital stays to fill its beds), or memory
        return None
    return flow_frame(result.results[0].flow, with_flow, in_analyses=False)


def timeline_assumptions(scenario: Scenario) -> pd.DataFrame:
    """The assumption rows of the flow's cited defaults that :func:`timeline_frame` runs a design without ``[flow]`` on,
    each source saying that only the timeline reads it."""
    rows = assumptions_frame(with_values(scenario, {"flow": {}}, source="flow defaults"))
    rows = rows[rows["section"] == "flow"].copy()
    rows["source"] = "the timeline only (the power figures assume every planned patient): " + rows["source"]
    return rows


def software_versions() -> dict[str, str]:
    """Versions of Python and of the libraries a report names ("" for one not installed)."""
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = ""
    return out


def run_design(scenario: Scenario, *, n_sims: int, seed: int, seed_given: bool, n_jobs: int, progress: bool = False,
               sweep: bool = False, config_file: str | None = None) -> RunResult:
    """The power table of ``scenario`` (and its sweep): the engine's blocks combined, with provenance.

    What ``trialsim run`` computes for the same scenario, seed and number of trials.
    """
    specs = expand(scenario) if sweep else [ScenarioSpec("base", scenario, {})]
    cfg = scenario.run
    t0 = time.perf_counter()
    blocks = run_specs(specs, seed=seed, n_sims=n_sims, n_jobs=n_jobs, chunk_blocks=cfg.chunk_blocks,
                       backend=cfg.backend, progress=progress)
    seconds = time.perf_counter() - t0
    results = [ScenarioResult.combine(spec, b) for spec, b in zip(specs, blocks)]
    prov = run_provenance(specs[0], seed=seed, seed_given=seed_given, n_sims=n_sims, n_jobs=n_jobs, seconds=seconds,
                          source=config_file)
    prov["scenarios"] = [s.id for s in specs]
    return RunResult(results=results, seed=seed, provenance=prov)


def simulated_power(power: pd.DataFrame) -> dict[tuple[str, str], float]:
    """(endpoint, test) -> the power table's Monte Carlo power (its base scenario)."""
    if power.empty:
        return {}
    mc = power[power["method"] == "monte_carlo"]
    return {(str(r.endpoint), str(r.test)): float(r.power) for r in mc.itertuples()}


def plan(
    scenario: Scenario | str | Path,
    *,
    overrides: Iterable[str] = (),
    parts: Sequence[str] = PARTS,
    power: Sequence[float] = (0.8, 0.9),
    ratio: float | None = None,
    n_sims: int | None = None,
    search_sims: int = 2000,
    curve_sims: int = 2000,
    n_max: int = 1500,
    curve_n_max: int = 500,
    seed: int | None = None,
    n_jobs: int | None = None,
    progress: bool = False,
    simulate: bool = True,
    search: Literal["key", "all"] = "key",
    run_result: RunResult | None = None,
    known: Mapping[str, pd.DataFrame] | None = None,
    config_file: str | Path | None = None,
) -> PlanningResult:
    """Compute the planning tables of a scenario.

    Parameters
    ----------
    scenario : Scenario or path
        A validated scenario or a TOML config (``overrides`` apply to either).
    parts : sequence of str
        Any of ``"run"`` (power table by simulation, with the type I errors), ``"samplesize"``,
        ``"mde"``, ``"pilot"``, ``"curves"``.
    power : sequence of float
        Target powers of the sample sizes (the first is also the MDE's target).
    ratio : float, optional
        Allocation ratio ``n_treatment / n_control`` of the sample sizes (default: the design's).
    n_sims : int, optional
        Trials of the power table (default ``run.n_sims``); the type I errors use at most
        :data:`NULL_MAX_SIMS` of them.
    search_sims, curve_sims : int
        Trials of the sample-size / MDE searches and of the simulated curves (as ``trialsim
        samplesize --sims`` and ``trialsim curves --sims``; the same defaults).
    n_max : int
        Largest n per arm of the sample-size search.
    curve_n_max : int
        Largest n per arm of the power-versus-n curves.
    seed : int, optional
        Root seed of every step (default ``run.seed``, else drawn; recorded in ``provenance``).
    n_jobs : int, optional
        Workers (default ``run.n_jobs``); results do not depend on it.
    progress : bool
        Progress bars on the long steps.
    simulate : bool
        False: no simulated trials (exact and analytic parts only).
    search : {"key", "all"}
        Which pairs get simulated sample sizes and MDEs: the key ones
        (:func:`~trialsim.planning.model.key_pairs`; the others get their analytic answer), or all.
        A pair's answer does not depend on which others are searched.
    run_result : RunResult, optional
        An existing run to use for the power table instead of simulating.
    known : mapping of str to DataFrame, optional
        Frames already computed for this scenario and seed (e.g. a run folder's ``power``,
        ``estimates``, ``sweep_power``, and ``flow_trials``, its per-trial flow outputs): used
        instead of computing them.
    config_file : path, optional
        The config file of a scenario given as an object: its comments are the assumptions'
        sources (a path ``scenario`` is its own config file).
    """
    overrides = list(overrides)  # read twice: a generator would be used up by the first
    override_values = dict(parse_override(item) for item in overrides)
    if not isinstance(scenario, Scenario):
        config_file = str(scenario)
    scenario = scenario_of(scenario, overrides)
    config_file = None if config_file is None else str(config_file)
    ratio = design_ratio(scenario) if ratio is None else float(ratio)
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown planning parts {sorted(unknown)}; choose from {PARTS}")
    if search not in ("key", "all"):
        raise ValueError(f"search must be 'key' or 'all', got {search!r}")
    known = dict(known or {})
    seed_given = seed is not None or scenario.run.seed is not None
    seed = resolve_seed(scenario, seed)
    n_jobs = n_jobs if n_jobs is not None else scenario.run.n_jobs
    n_sims = n_sims if n_sims is not None else scenario.run.n_sims
    null_sims = min(n_sims, NULL_MAX_SIMS)
    power = tuple(sorted(float(p) for p in power))
    model = build_model(scenario)
    searched = (True if search == "all" else key_pairs(model)) if simulate else False
    frames: dict[str, pd.DataFrame] = {}
    seconds: dict[str, float] = {}
    sim = dict(seed=seed, n_jobs=n_jobs, progress=progress)

    def timed(name, fn):
        t0 = time.perf_counter()
        value = fn()
        seconds[name] = round(time.perf_counter() - t0, 3)
        return value

    frames["assumptions"] = assumptions_frame(scenario, file_comments(config_file), override_values)
    frames["endpoints"] = pd.DataFrame(endpoint_rows(model))
    flow_arrays = None
    if "run" in parts and "power" in known:
        frames["power"] = known["power"]
        if "estimates" in known:
            frames["estimates"] = known["estimates"]
        flow_arrays = known.get("flow_trials")
    elif "run" in parts and (simulate or run_result is not None):
        if run_result is None:
            run_result = timed("run", lambda: run_design(scenario, n_sims=n_sims, seed=seed, seed_given=seed_given,
                                                         n_jobs=n_jobs, progress=progress, config_file=config_file))
        # the power table includes the exact rows of binary endpoints, which can take long at large n
        frames["power"] = timed("run_table", run_result.to_frame)
        frames["estimates"] = run_result.estimates_frame()
        flow_arrays = run_result.results[0].flow
    if "run" in parts:
        if "sweep_power" in known:
            frames["sweep_power"] = known["sweep_power"]
        elif scenario.sweep is not None and scenario.sweep.values and simulate:
            sweep = timed("sweep", lambda: run_design(scenario, n_sims=min(n_sims, SWEEP_MAX_SIMS), seed=seed,
                                                      seed_given=seed_given, n_jobs=n_jobs, progress=progress,
                                                      sweep=True, config_file=config_file))
            frames["sweep_power"] = timed("sweep_table", sweep.to_frame)
        if "null_power" in known:
            frames["null_power"] = known["null_power"]
            if "null_decisions" in known:
                frames["null_decisions"] = known["null_decisions"]
        elif is_null(model) and "power" in frames:
            frames["null_power"] = frames["power"]
            if run_result is not None:
                frames["null_decisions"] = run_result.decisions_frame()
        else:
            frames["null_power"], frames["null_decisions"] = timed("null", lambda: null_tables(
                scenario, n_sims=null_sims, seed=seed, n_jobs=n_jobs, simulate=simulate, progress=progress))
        flow = flow_frame(flow_arrays, scenario)
        if flow is None and scenario.flow is None and simulate:
            flow = timed("timeline", lambda: timeline_frame(scenario, n_sims=min(n_sims, TIMELINE_MAX_SIMS), **sim))
            if flow is not None:  # its inputs are assumptions too: listed, marked as the timeline's alone
                frames["assumptions"] = pd.concat([frames["assumptions"], timeline_assumptions(scenario)],
                                                  ignore_index=True)
        if flow is not None:
            frames["flow"] = flow
    if "samplesize" in parts:
        table = timed("samplesize", lambda: sample_sizes(scenario, power=power, ratio=ratio, n_max=n_max, n_sims=search_sims,
                                                          simulate=searched, **sim))
        frames["sample_sizes"] = table.to_frame()
        frames["sample_size_curves"] = table.curves_frame()
        frames["type_i_at_n"] = timed("type_i_at_n", lambda: type_i_at_sizes(scenario, frames["sample_sizes"]))
        frames["size_sensitivity"] = timed("size_sensitivity", lambda: size_sensitivity(
            scenario, power=power[0], ratio=ratio, n_max=n_max, n_jobs=n_jobs))
    if "mde" in parts:
        known_power = simulated_power(frames.get("power", pd.DataFrame()))
        mde = timed("mde", lambda: minimal_detectable_effects(scenario, power=power[0], n_sims=search_sims, simulate=searched,
                                                             power_at_assumed=known_power, **sim))
        frames["mde"] = mde.to_frame()
    if "pilot" in parts:
        pilot = timed("pilot", lambda: pilot_summary(scenario, seed=seed))
        frames.update(pilot.frames())
    if "curves" in parts:
        frames["curves"] = timed("curves_n", lambda: power_vs_n(scenario, n_values=default_n_values(scenario, curve_n_max),
                                                                n_sims=curve_sims, simulate=simulate, **sim))
        frames["effect_curves"] = timed("curves_effect", lambda: power_vs_effect(scenario, n_sims=curve_sims, simulate=simulate, **sim))
        frames["heatmap"] = timed("heatmap", lambda: power_grid(scenario, n_jobs=n_jobs))
    settings = {"parts": list(parts), "power": list(power), "ratio": ratio, "n_sims": n_sims, "null_sims": null_sims,
                "search_sims": search_sims, "curve_sims": curve_sims, "n_max": n_max, "curve_n_max": curve_n_max,
                "simulate": simulate, "search": search, "sweep_max_sims": SWEEP_MAX_SIMS}
    prov = {"trialsim": __version__, "scenario": scenario.name, "config_file": config_file,
            "config_hash": config_hash(scenario), "seed": seed, "seed_given": seed_given, "n_jobs": n_jobs,
            "block_size": scenario.run.block_size, "seconds": seconds, "versions": software_versions(),
            "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "pandas": pd.__version__, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    if run_result is not None:
        prov["run"] = run_result.provenance
    return PlanningResult(scenario, frames, design_facts(scenario, config_file), settings, prov, run_result=run_result)


def is_planning_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and ((p / PLANNING_JSON).is_file() or (p / "power.csv").is_file())


def load_planning(path: str | Path, *, complete: bool = True, parts: Sequence[str] = PARTS, simulate: bool = True,
                  **options) -> PlanningResult:
    """Read a results folder back.

    A folder with planning.json gives back exactly what was saved (nothing is computed). A folder
    written only by ``trialsim run --out`` gives its power table, and with ``complete=True`` the
    other parts of ``parts`` are computed by :func:`plan` with the run's seed and number of trials,
    reusing what the run holds (power table, estimates, sweep, per-trial flow): the result equals
    ``plan(config)`` for the same seed and options. ``simulate=False`` computes only what needs no
    simulated trials (exact and analytic parts). ``options`` (e.g. ``power``, ``search_sims``,
    ``n_max``) go to :func:`plan`.

    The assumptions' sources are the comments of the config file the run names in its provenance,
    when that file is still there and gives the same scenario (the same config hash).

    Nothing is trusted unchecked: every file read must be the one trialsim wrote (its SHA-256 as
    planning.json or provenance.json records it, themselves sealed) and the scenario's config hash
    the one the folder records; a changed, missing or unreadable file is a :class:`DamagedFileError`
    naming it.
    """
    p = Path(path)
    if not p.is_dir():
        raise ConfigError(f"results folder {str(p)!r} does not exist")
    check_complete(p)  # an interrupted report is never read back as a finished one
    meta_file = p / PLANNING_JSON
    if meta_file.exists():
        return _load_saved_planning(p)
    if not (p / "power.csv").is_file():
        raise ConfigError(f"{str(p)!r} is not a results folder: it has neither {PLANNING_JSON} nor power.csv "
                          "(write one with `trialsim run --out DIR` or `trialsim report CONFIG --out DIR`)")
    run_prov = read_run_folder(p)
    sid = "base" if "base" in run_prov.get("scenarios", ["base"]) else run_prov["scenarios"][0]
    scenario = run_scenario(p, run_prov, sid)
    listed = run_prov.get("files") or {}
    names = ["power.csv", *(n for n in ("estimates.csv", "flow_trials.csv") if n in listed)]
    check_run_files(p, run_prov, names)
    power = _read_csv(p / "power.csv")
    known = {"power": power[power["scenario"].astype(str) == sid].reset_index(drop=True)}
    if power["scenario"].nunique() > 1:
        known["sweep_power"] = power
    if "estimates.csv" in names:
        est = _read_csv(p / "estimates.csv")
        known["estimates"] = est[est["scenario"].astype(str) == sid].reset_index(drop=True)
    if "flow_trials.csv" in names:
        trials = read_table(p / "flow_trials.csv")
        trials = trials[trials["scenario"].astype(str) == sid]
        known["flow_trials"] = {c: trials[c].to_numpy() for c in trials.columns if c != "scenario"}
    config_file = _config_of_run(run_prov, scenario)
    if complete:
        options.setdefault("n_sims", run_prov.get("n_sims"))
        result = plan(scenario, parts=parts, simulate=simulate, seed=run_prov.get("seed"), known=known,
                      config_file=config_file, **options)
    else:
        model = build_model(scenario)
        result = PlanningResult(scenario, {"endpoints": pd.DataFrame(endpoint_rows(model)), **known},
                                design_facts(scenario, config_file), {"simulate": False}, {})
        result.frames.pop("flow_trials", None)
    result.provenance["run"] = run_prov
    result.provenance["from_dir"] = str(p)
    return result


def _load_saved_planning(p: Path) -> PlanningResult:
    """A folder :meth:`PlanningResult.save` wrote, checked (see :func:`load_planning`)."""
    meta_file = p / PLANNING_JSON
    meta = read_sealed(meta_file)
    parts = {"design": dict, "settings": dict, "provenance": dict, "files": dict, "checksums": dict}
    for key, kind in parts.items():
        if not isinstance(meta.get(key), kind):
            raise DamagedFileError(f"{meta_file} has no {key} of the kind trialsim writes: {RERUN}")
    files = {name: fname for name, fname in meta["files"].items() if name in FRAME_FILES}
    if "power" not in files and "power.csv" in meta["checksums"]:
        files["power"] = "power.csv"
        if "estimates.csv" in meta["checksums"]:
            files["estimates"] = "estimates.csv"
    names = [*files.values(), SCENARIO_TOML]
    verify_files(p, names, meta["checksums"], listed_in=PLANNING_JSON)
    frames = {name: _read_csv(p / fname) for name, fname in files.items()}
    scenario = load_scenario(p / SCENARIO_TOML)
    recorded = meta["provenance"].get("config_hash")
    if config_hash(scenario) != recorded:
        raise DamagedFileError(f"{p / SCENARIO_TOML} is not the config of this report (its config hash "
                               f"{config_hash(scenario)} differs from {PLANNING_JSON}'s {recorded}): {RERUN}")
    return PlanningResult(scenario, frames, meta["design"], meta["settings"], meta["provenance"],
                          references=meta.get("references", dict(REFERENCES)))


def _config_of_run(run_prov: dict, scenario: Scenario) -> str | None:
    """The config file a run names, if it is still there and still gives the run's scenario."""
    name = run_prov.get("config_file")
    if not name or not Path(name).is_file():
        return None
    try:
        same = config_hash(load_scenario(name)) == config_hash(scenario)
    except ConfigError:
        return None
    return str(name) if same else None


def _read_csv(path: Path) -> pd.DataFrame:
    frame = read_table(path)
    # pandas reads integer columns with missing values as float; keep whole numbers whole where possible
    for col in frame.columns:
        counts = col == "n" or col.startswith("n_")
        if counts and frame[col].dtype == float and frame[col].dropna().apply(float.is_integer).all():
            frame[col] = frame[col].astype("Int64")
    return frame
