"""Designs side by side: ``trialsim compare CONFIG [CONFIG ...]``.

Each config (and each scenario of a config's sweep) is one design. Every design is simulated twice on
the same root seed (common random numbers): as configured, and with every effect parameter at its null
(:func:`~trialsim.planning.plan.null_scenario`). One row per design then says what the design buys and
costs for its primary endpoint: power and type I error (exact where the design has an exact law, else
Monte Carlo with its SE), bias, RMSE, coverage and width of the main estimate's interval, the chance
of each go / no-go decision (when the design has a Bayesian rule), the expected number of patients and
of patients given the new treatment (when interim looks can stop it early), and the trial's duration
from the patient-flow model (the design's own ``[flow]``, else the flow's cited defaults).

Everything goes through the one engine (:func:`~trialsim.planning.plan.run_design`), so a design's
numbers are those ``trialsim run`` prints for the same seed and number of trials.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from trialsim.config.flow import DAYS_PER_MONTH
from trialsim.config.loader import ConfigError, scenario_of, with_values
from trialsim.config.schema import Scenario, gives_stays
from trialsim.designs.allocation import scheme
from trialsim.engine import atomic_write, resolve_seed
from trialsim.flow.summary import summarise_flow
from trialsim.labels import NOT_COMPUTABLE_METHOD, none_valid
from trialsim.model import build_model
from trialsim.planning.plan import null_scenario, run_design
from trialsim.report.compare import NO_DURATION, plot_comparison
from trialsim.report.figures import DPI
from trialsim.files import Ledger, read_sealed, sealed_json, verify_files
from trialsim.results import RunResult, read_table
from trialsim.scenarios import ScenarioSpec, expand
from trialsim.version import __version__

COMPARE_COLUMNS = [
    "design", "config", "scenario", "allocation", "randomised", "n_control", "n_treatment", "alpha",
    "endpoint", "endpoint_label", "test", "estimate_test", "estimand",
    "power", "power_se", "power_method", "type_i", "type_i_se", "type_i_method",
    "estimate_mean", "true_effect", "bias", "bias_se", "rmse", "coverage", "coverage_se", "ci_width",
    "p_go", "p_no_go", "p_inconclusive", "p_go_null", "decision_rule", "p_stop_harm", "p_stop_harm_null",
    "patients", "treated", "duration_months", "duration_months_p90", "duration_source", "n_sims",
]
DECISIONS = ("go", "no_go", "inconclusive")
COMPARE_JSON = "compare.json"
FLOW_SIMS = 2000  # trials of the flow run that times a design without its own [flow]


@dataclass(frozen=True)
class Design:
    """One design to compare: a readable label, where it came from and the scenario itself."""

    label: str
    config: str
    scenario_id: str
    scenario: Scenario


@dataclass(frozen=True)
class Tables:
    """What the comparison reads of one run: its power table and its decisions, each built once."""

    power: pd.DataFrame
    decisions: pd.DataFrame

    @classmethod
    def of(cls, run: RunResult) -> "Tables":
        return cls(run.to_frame(), run.decisions_frame())


@dataclass
class Comparison:
    """The comparison table (one row per design) with how it was made."""

    frame: pd.DataFrame
    seed: int
    n_sims: int
    provenance: dict[str, Any] = field(default_factory=dict)

    def save(self, out: str | Path) -> list[Path]:
        """Write compare.csv, compare.json (rows and provenance) and the figure (PNG and SVG) into ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        ledger = Ledger(out)  # compare.csv's SHA-256, sealed into compare.json: load_comparison checks it
        paths = [atomic_write(out / "compare.csv", lambda p: self.frame.to_csv(p, index=False), ledger=ledger)]
        paths.append(atomic_write(out / COMPARE_JSON, sealed_json(
            {"provenance": self.provenance, "rows": json.loads(self.frame.to_json(orient="records")),
             "files": dict(ledger.files)})))
        axes = plot_comparison(self.frame)
        fig = np.asarray(axes).flat[0].figure
        for ext in ("png", "svg"):
            paths.append(atomic_write(out / f"compare.{ext}", lambda p: fig.savefig(p, dpi=DPI, facecolor="white")))
        return paths


def design_label(scenario: Scenario) -> str:
    """``design.label`` when set, else "<randomised or not> <n_control>:<n_treatment> <scheme>"."""
    if scenario.design.label:
        return scenario.design.label
    s = scheme(scenario.allocation.scheme)
    d = scenario.design
    kind = "randomised" if s.randomised else "non-randomised"
    return f"{kind} {d.n_control}:{d.n_treatment} {s.name.replace('_', ' ')}"


def designs_of(sources: Sequence[Scenario | str | Path], *, overrides: Iterable[str] = (), sweep: bool = True) -> list[Design]:
    """The designs of ``sources``: one per config, or one per scenario of a config's sweep (``sweep=False``: its base)."""
    out: list[Design] = []
    for src in sources:
        sc = scenario_of(src, list(overrides))
        name = "" if isinstance(src, Scenario) else str(src)
        specs = expand(sc) if sweep else [ScenarioSpec("base", sc, {})]
        for spec in specs:
            label = design_label(spec.scenario)
            if len(specs) > 1:
                label = f"{label} ({spec.id})"
            out.append(Design(label, name, spec.id, spec.scenario))
    labels = [d.label for d in out]
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        raise ConfigError(f"designs to compare share the label {repeated[0]!r}; give each a design.label "
                          "(e.g. --set design.label=\"randomised 20:20 blocks\" or in its config)")
    return out


def compare(
    sources: Sequence[Scenario | str | Path],
    *,
    overrides: Iterable[str] = (),
    n_sims: int = 10_000,
    seed: int | None = None,
    n_jobs: int | None = None,
    test: str | None = None,
    flow_sims: int = FLOW_SIMS,
    sweep: bool = True,
    progress: bool = False,
) -> Comparison:
    """Simulate each design as configured and under the null, and tabulate them side by side.

    Parameters
    ----------
    sources : sequence of Scenario or TOML paths
        The designs (a config with a ``[sweep]`` gives one design per scenario).
    n_sims : int
        Simulated trials per design and per null run.
    seed : int, optional
        Root seed shared by every design (common random numbers); drawn and recorded when absent.
    test : str, optional
        The primary endpoint's test to compare (default: the first design's first primary test when every
        design runs it, else each design's first).
    flow_sims : int
        Trials of the flow run timing a design that has no ``[flow]`` of its own.
    sweep : bool
        False: one design per config (its base scenario), ignoring its ``[sweep]``.

    Returns
    -------
    Comparison
        ``frame`` has one row per design (:data:`COMPARE_COLUMNS`).
    """
    designs = designs_of(sources, overrides=overrides, sweep=sweep)
    if not designs:
        raise ConfigError("give at least one config to compare")
    seed, seed_given = resolve_seed(seed, None)
    t0 = time.perf_counter()
    runs, times = [], []
    for d in designs:
        jobs = n_jobs if n_jobs is not None else d.scenario.run.n_jobs
        kw = dict(n_sims=n_sims, seed=seed, seed_given=seed_given, n_jobs=jobs, progress=progress)
        planned = run_design(d.scenario, **kw)
        runs.append((Tables.of(planned), Tables.of(run_design(null_scenario(d.scenario), **kw))))
        times.append(_timeline(d.scenario, planned, kw | {"n_sims": min(n_sims, flow_sims)}))
    test = test or common_test([d.scenario for d in designs])
    judged = estimate_test([d.scenario for d in designs], [p for p, _ in runs], test)
    rows = [design_row(d, planned, null, test=test, judge=judged) | t for d, (planned, null), t in zip(designs, runs, times)]
    frame = pd.DataFrame(rows, columns=COMPARE_COLUMNS)
    prov = {"trialsim": __version__, "seed": seed, "seed_given": seed_given, "n_sims": n_sims, "flow_sims": flow_sims,
            "configs": [d.config for d in designs], "designs": [d.label for d in designs],
            "run_seconds": round(time.perf_counter() - t0, 3)}
    return Comparison(frame=frame, seed=seed, n_sims=n_sims, provenance=prov)


def _timeline(scenario: Scenario, planned: RunResult, kw: dict) -> dict[str, Any]:
    """Duration from the design's own flow run, or from a flow run with the flow's cited defaults."""
    flow = planned.results[0].flow
    if flow is not None:
        return duration(flow, scenario) | {"duration_source": "design's [flow]"}
    if not gives_stays(scenario):  # the flow's model has no stays to time: no duration, and the table says why
        return duration(None, scenario) | {"duration_source": NO_DURATION}
    timed = with_values(scenario, {"flow": {}}, source="flow defaults")
    return duration(run_design(timed, **kw).results[0].flow, timed) | {"duration_source": "flow defaults"}


def common_test(scenarios: Sequence[Scenario]) -> str | None:
    """The first design's first primary test that every design runs on its primary (one test compared), else None."""
    primaries = [build_model(sc).primary for sc in scenarios]
    for t in primaries[0].tests:
        if all(t in p.tests for p in primaries):
            return t
    return None


def estimate_test(scenarios: Sequence[Scenario], planned: Sequence[Tables], test: str | None) -> str | None:
    """The primary's test whose effect estimate is judged in every design (bias, coverage on one scale).

    The compared test itself when its estimator has a finite mean in every design; else the first test
    of the first design's primary that every design runs with a finite mean (Fisher's conditional MLE
    odds ratio is infinite when an arm has no event; the risk difference of chi-square or Boschloo is
    not); None when there is none (each design then falls back on its own).
    """
    primaries = [build_model(sc).primary for sc in scenarios]
    candidates = ([test] if test else []) + list(primaries[0].tests)
    for t in dict.fromkeys(candidates):
        if all(t in p.tests and np.isfinite(_rate(r.power, p.name, t)[3].get("bias", np.nan))
               for p, r in zip(primaries, planned)):
            return t
    return None


def design_row(d: Design, planned: Tables, null: Tables, *, test: str | None = None,
               judge: str | None = None) -> dict[str, Any]:
    """The comparison row of one design from its planned and null runs (primary endpoint, one test).

    ``judge``: the test whose estimate's bias and coverage are reported (default: ``test``, or the
    first test of the primary whose estimator has a finite mean).
    """
    sc = d.scenario
    model = build_model(sc)
    primary = model.primary
    test = test or primary.tests[0]
    if test not in primary.tests:
        raise ConfigError(f"--test {test!r}: the primary endpoint {primary.name!r} of {d.label!r} is analysed with "
                          f"{', '.join(primary.tests)}")
    power, type_i = planned.power, null.power
    p_power, se_power, how_power, mc = _rate(power, primary.name, test)
    p_null, se_null, how_null, _ = _rate(type_i, primary.name, test)
    judged, mc_est = test, mc
    if judge is not None and judge in primary.tests:
        judged, mc_est = judge, _rate(power, primary.name, judge)[3]
    elif not np.isfinite(mc.get("bias", np.nan)):
        for other in primary.tests:
            cand = _rate(power, primary.name, other)[3]
            if np.isfinite(cand.get("bias", np.nan)):
                judged, mc_est = other, cand
                break
    s = scheme(sc.allocation.scheme)
    row: dict[str, Any] = {
        "design": d.label, "config": d.config, "scenario": d.scenario_id, "allocation": s.label,
        "randomised": s.randomised, "n_control": sc.design.n_control, "n_treatment": sc.design.n_treatment,
        "alpha": sc.design.alpha, "endpoint": primary.name, "endpoint_label": primary.label, "test": test,
        "estimate_test": judged, "estimand": mc_est.get("estimand"), "power": p_power, "power_se": se_power, "power_method": how_power,
        "type_i": p_null, "type_i_se": se_null, "type_i_method": how_null, "n_sims": int(mc.get("n_sims", 0)),
    }
    for k in ("estimate_mean", "true_effect", "bias", "bias_se", "rmse", "coverage", "coverage_se", "ci_width"):
        row[k] = mc_est.get(k, np.nan)
    row |= _decisions(planned.decisions, null.decisions, primary.name)
    row |= _sequential(planned.decisions, null.decisions, primary.name)
    row |= _patients(planned.decisions, sc)
    return row


def _outcome(frame: pd.DataFrame, rule: str, subject: str, outcome: str) -> pd.Series | None:
    if frame.empty:
        return None
    hit = frame[(frame["rule"] == rule) & (frame["subject"] == subject) & (frame["outcome"] == outcome)]
    return hit.iloc[0] if len(hit) else None


def _sequential(planned: pd.DataFrame, null: pd.DataFrame, endpoint: str) -> dict[str, Any]:
    """With interim looks, power and type I error are the group-sequential trial's; with safety reviews, P(stop for harm).

    Power: the trial as run rejects (futility stops honoured). Type I error: futility ignored (non-binding),
    the figure regulators count. Both Monte Carlo.
    """
    out: dict[str, Any] = {"p_stop_harm": np.nan, "p_stop_harm_null": np.nan}
    run_as, nonbinding = _outcome(planned, "group_sequential", endpoint, "reject"), _outcome(null, "group_sequential", endpoint,
                                                                                            "reject_nonbinding")
    if run_as is not None and nonbinding is not None:
        out |= {"power": float(run_as["mean"]), "power_se": float(run_as["mc_se"]), "power_method": "group_sequential",
                "type_i": float(nonbinding["mean"]), "type_i_se": float(nonbinding["mc_se"]),
                "type_i_method": "group_sequential", "test": f"{run_as['detail']}"}
    for frame, key in ((planned, "p_stop_harm"), (null, "p_stop_harm_null")):
        harm = _outcome(frame, "harm", endpoint, "stop_harm")
        if harm is not None:
            out[key] = float(harm["mean"])
    return out


def _rate(frame: pd.DataFrame, endpoint: str, test: str) -> tuple[float, float, str, dict]:
    """The rejection rate of (endpoint, test): exact where there is an exact row, else Monte Carlo."""
    rows = frame[(frame["endpoint"] == endpoint) & (frame["test"] == test)]
    mc = rows[rows["method"] == "monte_carlo"]
    mc_row = mc.iloc[0].to_dict() if len(mc) else {}
    exact = rows[rows["method"] == "exact"]
    if len(exact):
        return float(exact.iloc[0]["power"]), 0.0, "exact", mc_row
    if mc_row and none_valid(mc_row.get("n_valid")):  # no trial could compute the test: no rate, not 0%
        return np.nan, np.nan, NOT_COMPUTABLE_METHOD, mc_row
    if mc_row:
        return float(mc_row["power"]), float(mc_row["mc_se"]), "monte_carlo", mc_row
    return np.nan, np.nan, "", mc_row


def _decisions(planned: pd.DataFrame, null: pd.DataFrame, endpoint: str) -> dict[str, Any]:
    """P(go), P(no-go), P(inconclusive) of the first rule that decides about ``endpoint``, and P(go) under the null."""
    out: dict[str, Any] = {f"p_{k}": np.nan for k in DECISIONS} | {"p_go_null": np.nan, "decision_rule": ""}
    if planned.empty:
        return out
    mine = planned[(planned["subject"] == endpoint) & planned["outcome"].isin(DECISIONS)]
    if mine.empty:
        return out
    rule, detail = mine.iloc[0]["rule"], mine.iloc[0]["detail"]
    chosen = mine[(mine["rule"] == rule) & (mine["detail"] == detail)]
    for r in chosen.itertuples():
        out[f"p_{r.outcome}"] = float(r.mean)
    if not null.empty:
        go = null[(null["rule"] == rule) & (null["subject"] == endpoint) & (null["detail"] == detail)
                  & (null["outcome"] == "go")]
        if len(go):
            out["p_go_null"] = float(go.iloc[0]["mean"])
    out["decision_rule"] = f"{rule}: {detail}"
    return out


def _patients(decisions: pd.DataFrame, sc: Scenario) -> dict[str, float]:
    """Expected patients analysed and treated: the interim looks' (or safety reviews') expected patients, else the design's."""
    n = sc.design.n_control + sc.design.n_treatment
    out = {"patients": float(n), "treated": float(sc.design.n_treatment)}
    if decisions.empty:
        return out
    for rule in ("group_sequential", "harm"):  # the efficacy looks' stopping first, else the safety reviews'
        hit = decisions[(decisions["rule"] == rule) & (decisions["outcome"] == "patients")]
        if len(hit):
            # stopped trials stop both arms: the treated share of the patients is the design's
            out = {"patients": float(hit.iloc[0]["mean"]), "treated": float(hit.iloc[0]["mean"]) * sc.design.n_treatment / n}
            break
    return out


def duration(flow: dict[str, np.ndarray] | None, scenario: Scenario) -> dict[str, float]:
    """Median and 90th percentile of the time from first referral to the last follow-up visit (months)."""
    if flow is None:
        return {"duration_months": np.nan, "duration_months_p90": np.nan}
    summary = summarise_flow(flow, flow=scenario.flow)
    days = np.asarray(summary.study_duration_days, dtype=float)
    return {"duration_months": float(np.quantile(days, 0.5, method="inverted_cdf")) / DAYS_PER_MONTH,
            "duration_months_p90": float(np.quantile(days, 0.9, method="inverted_cdf")) / DAYS_PER_MONTH}


def load_comparison(path: str | Path) -> pd.DataFrame:
    """The comparison table a ``trialsim compare --out DIR`` wrote (for the report's "Choosing a design")."""
    p = Path(path)
    f = p / "compare.csv" if p.is_dir() else p
    if not f.is_file():
        raise ConfigError(f"{str(f)!r} is not a comparison (write one with `trialsim compare CONFIG ... --out DIR`)")
    # never trusted unchecked: compare.csv must be the file whose SHA-256 the sealed compare.json records
    verify_files(f.parent, [f.name], read_sealed(f.parent / COMPARE_JSON).get("files"), listed_in=COMPARE_JSON)
    frame = read_table(f)
    missing = [c for c in COMPARE_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"{str(f)!r} is not a comparison written by this version: columns {', '.join(missing)} missing")
    return frame
