"""Result objects: power tables with Monte Carlo error, estimates, flow summaries, provenance, files."""
from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from trialsim.analysis import registry as tests
from trialsim.analysis import laws
from trialsim.config.loader import config_hash, load_scenario, scenario_to_toml
from trialsim.config.schema import Scenario
from trialsim.engine import atomic_write, layout_of
from trialsim.engine.rundir import MANIFEST, scenario_hash
from trialsim.exact import exact_rows, exact_sizes
from trialsim.files import RERUN, DamagedFileError, Ledger, read_sealed, sealed_json, verify_files
from trialsim.labels import is_missing
from trialsim.model import build_model
from trialsim.scenarios import ScenarioSpec, safe_name
from trialsim.summarise import BlockSummary, Totals
from trialsim.tabular import as_columns, csv_text, json_records
from trialsim.version import __version__

if TYPE_CHECKING:
    import pandas as pd

POWER_COLUMNS = [
    "scenario", "endpoint", "test", "n_control", "n_treatment", "alpha", "power", "mc_se", "ci_low", "ci_high",
    "method", "n_sims", "n_valid", "primary", "family", "label", "null",
    "estimand", "estimate_mean", "true_effect", "bias", "bias_se", "rmse", "coverage", "coverage_se", "n_estimable", "ci_width", "ci_width_se",
    "size", "size_exceeds_alpha",
]
# An exact type I error counts as above alpha when it exceeds it by more than this share of alpha
# (0.01: 5.05% at alpha 5%), so that rounding noise of a test converging to alpha is not flagged.
SIZE_TOLERANCE = 0.01
PROVENANCE = "provenance.json"
TRIALS_COMPLETE = "complete.json"  # in a per-trial table's folder once every block is written
# Columns of a results table that hold a probability (power, a rate, its interval or standard error) or a count: a
# table read back is refused when one of them holds anything else (a second line of defence after the checksums).
PROBABILITY_COLUMNS = frozenset({
    "power", "alpha", "size", "coverage", "coverage_se", "power_se", "type_i", "type_i_se", "type_i_error",
    "target_power", "power_at_assumed", "best_power", "power_at_n", "power_at_n_se", "p_control", "p_treatment",
    "p_go", "p_no_go", "p_inconclusive", "p_go_null", "p_stop_harm", "p_stop_harm_null"})
# ... and these, in a table of powers (elsewhere, e.g. a ratio's interval, they are not probabilities)
POWER_INTERVAL_COLUMNS = frozenset({"mc_se", "ci_low", "ci_high"})
DECISION_COLUMNS = ["scenario", "rule", "subject", "detail", "outcome", "mean", "mc_se", "n"]


def exceeds(rate, alpha, ci_low=None, exact: bool = True) -> bool:
    """Whether a type I error exceeds the significance level (exact: beyond :data:`SIZE_TOLERANCE`;
    simulated: the whole Monte Carlo interval above it)."""
    if is_missing(rate):
        return False
    if exact:
        return float(rate) > float(alpha) * (1 + SIZE_TOLERANCE)
    return not is_missing(ci_low) and float(ci_low) > float(alpha)


ABOVE, BELOW, WITHIN = "above", "below", "within Monte Carlo error"


def mc_side(threshold: float, low: float, high: float) -> str:
    """Which side of ``threshold`` a rate lies, from its 95% Monte Carlo interval ``[low, high]``.

    :data:`ABOVE` (at or above) when the whole interval is at or above it, :data:`BELOW` when the whole
    interval is below it, else :data:`WITHIN` Monte Carlo error of it: so a sentence chosen by the side
    does not change with Monte Carlo noise. An exact figure is its own interval (``low == high``), so
    it is compared directly and is never within Monte Carlo error.
    """
    if float(low) >= float(threshold):
        return ABOVE
    if float(high) < float(threshold):
        return BELOW
    return WITHIN


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval for k rejections in n simulated trials."""
    low, high = laws.clopper_pearson(k, n, level)
    return float(low), float(high)


@dataclass(frozen=True)
class ScenarioResult:
    """Combined blocks of one scenario."""

    spec: ScenarioSpec
    totals: Totals

    @property
    def n_sims(self) -> int:
        return self.totals.n_sims

    @property
    def flow(self):
        return self.totals.flow

    @classmethod
    def combine(cls, spec: ScenarioSpec, blocks: Totals | list[BlockSummary]) -> "ScenarioResult":
        """A scenario's result from the engine's totals, or from block summaries (summed in block order,
        so float sums are identical for any n_jobs)."""
        return cls(spec, blocks if isinstance(blocks, Totals) else Totals.combine(blocks))

    def is_null(self) -> bool:
        """True when every effect parameter of the scenario is at its null (the rows are type I errors)."""
        model = build_model(self.spec.scenario)
        effects = [a.effect for a in model.analysed if a.effect is not None]
        return bool(effects) and all(e.assumed == e.null for e in effects)

    def power_rows(self) -> list[dict]:
        sc = self.spec.scenario
        d = sc.design
        model = build_model(sc)
        null = self.is_null()
        rows = []
        exact = {(r["endpoint"], r["test"]): r["power"] for r in exact_rows(sc)}
        sizes = exact_sizes(sc)
        for a, test in model.pairs():
            sums = self.totals.tests[f"{a.name}|{test}"]
            k, n = int(sums["rejects"]), self.n_sims
            p = k / n
            low, high = clopper_pearson(k, n)
            base = {"scenario": self.spec.id, "endpoint": a.name, "test": test, "n_control": d.n_control,
                    "n_treatment": d.n_treatment, "alpha": d.alpha, "primary": a.primary, "family": a.kind,
                    "label": a.label, "null": null}
            size = sizes.get((a.name, test))  # exact type I error at this design (binary endpoints with an exact law)
            base |= {"size": float("nan") if size is None else size,
                     "size_exceeds_alpha": None if size is None else exceeds(size, d.alpha)}
            est = estimation(sums, model.true_effect(a.name, tests.get(test).estimand), n_valid=int(sums["valid"]))
            est["estimand"] = tests.estimand_label(tests.get(test).estimand, a.scale)
            rows.append(base | {"power": p, "mc_se": float(np.sqrt(p * (1 - p) / n)), "ci_low": low, "ci_high": high,
                                "method": "monte_carlo", "n_sims": n, "n_valid": int(sums["valid"])} | est)
            if (a.name, test) in exact:
                pe = exact[(a.name, test)]
                rows.append(base | {"power": pe, "mc_se": 0.0, "ci_low": pe, "ci_high": pe, "method": "exact",
                                    "n_sims": 0, "n_valid": 0})
        return rows

    def estimate_rows(self) -> list[dict]:
        rows = []
        t = self.totals
        for k, total in t.est_sum.items():
            endpoint, arm, statistic = k.split("|")
            n = t.est_count[k]
            mean = total / n if n else float("nan")
            var = (t.est_sumsq[k] / n - mean**2) * n / (n - 1) if n > 1 else float("nan")
            row = {"scenario": self.spec.id, "endpoint": endpoint, "arm": arm, "statistic": statistic,
                   "mean": mean, "sd": float(np.sqrt(max(var, 0.0))) if n > 1 else float("nan"),
                   "n_estimable": n, "n_sims": self.n_sims}
            rows.append(row)
            if statistic == "log_ratio":  # the geometric mean ratio: exp of the mean log ratio
                rows.append(row | {"statistic": "geometric_mean_ratio", "mean": float(np.exp(mean)), "sd": float("nan")})
        return rows


    def decision_rows(self) -> list[dict]:
        """One row per outcome of every decision rule beyond reject/covered: its mean over trials and MC SE.

        A bool outcome's mean is the probability of that decision (go, stop at look 2, any rejection
        in the family ...); a numeric one's (sample size, duration) is its expectation.
        """
        rows = []
        for k, sums in self.totals.outcomes.items():
            rule, *parts = k.split("|")
            parts = (parts + ["", "", ""])[:3]
            n = int(sums["n"])
            mean = sums["sum"] / n if n else float("nan")
            var = max(sums["sumsq"] / n - mean * mean, 0.0) * n / (n - 1) if n > 1 else float("nan")
            rows.append({"scenario": self.spec.id, "rule": rule, "subject": parts[0], "detail": parts[1],
                         "outcome": parts[2], "mean": mean, "mc_se": float(np.sqrt(var / n)) if n > 1 else float("nan"),
                         "n": n})
        return rows


def estimation(sums: dict, truth: float | None, *, n_valid: int | None = None) -> dict:
    """Mean estimate, bias, RMSE and coverage (with Monte Carlo SEs) from one (endpoint, test)'s sums.

    An estimator that is infinite in some analysable trials (the conditional MLE of an odds ratio when
    an arm has no event) has no finite mean: its bias and RMSE are then left undefined (NaN), and
    ``n_estimable`` says in how many trials it was finite. Coverage is defined for every trial.
    """
    n = sums["est_n"]
    nan = float("nan")
    out = {"estimate_mean": sums["est_sum"] / n if n else nan, "true_effect": nan if truth is None else truth,
           "bias": nan, "bias_se": nan, "rmse": nan, "coverage": nan, "coverage_se": nan, "n_estimable": n,
           "ci_width": nan, "ci_width_se": nan}
    w = sums.get("width_n", 0)
    if w:
        width = sums["width_sum"] / w
        var = max(sums["width_sumsq"] / w - width * width, 0.0) * w / (w - 1) if w > 1 else 0.0
        out.update(ci_width=width, ci_width_se=float(np.sqrt(var / w)))
    if n_valid is not None and n < n_valid:
        out["estimate_mean"] = nan
        truth = None
    if truth is not None and n > 1:
        bias = sums["err_sum"] / n
        mse = sums["err_sumsq"] / n
        var = max(mse - bias * bias, 0.0) * n / (n - 1)
        out.update(bias=bias, bias_se=float(np.sqrt(var / n)), rmse=float(np.sqrt(mse)))
    m = sums["coverable"]
    if m:
        c = sums["covered"] / m
        out.update(coverage=c, coverage_se=float(np.sqrt(c * (1 - c) / m)))
    return out


@dataclass(frozen=True)
class RunResult:
    """Everything a run produced; ``to_frame()`` gives the tidy power table."""

    results: list[ScenarioResult]
    seed: int
    provenance: dict[str, Any] = field(default_factory=dict)

    # The run's tables as rows (dicts) and columns, without pandas: `trialsim run` writes and prints them so (pandas
    # costs 0.4 s to import); the *_frame methods give the same tables as DataFrames for users and reports.
    def power_rows(self) -> list[dict]:
        """One row per scenario x endpoint x test x method (the :data:`POWER_COLUMNS`, then each swept key path)."""
        values = {r.spec.id: r.spec.values for r in self.results}
        keys = list(dict.fromkeys(k for v in values.values() for k in v))
        rows = [r for res in self.results for r in res.power_rows()]
        return [{c: row.get(c) for c in POWER_COLUMNS} | {k: values[row["scenario"]].get(k) for k in keys} for row in rows]

    def power_columns(self) -> dict[str, list]:
        return as_columns(self.power_rows())

    def decision_rows(self) -> list[dict]:
        return [r for res in self.results for r in res.decision_rows()]

    def estimate_rows(self) -> list[dict]:
        return [r for res in self.results for r in res.estimate_rows()]

    def flow_columns(self) -> dict[str, np.ndarray] | None:
        """Per-trial flow outputs (calendar, counts) of every scenario with a flow model, and its scenario id."""
        flows = [(r.spec.id, r.flow) for r in self.results if r.flow is not None]
        if not flows:
            return None
        names = list(dict.fromkeys(k for _, flow in flows for k in flow))
        out = {k: np.concatenate([np.asarray(flow[k]) for _, flow in flows]) for k in names}
        out["scenario"] = np.concatenate([np.full(len(np.asarray(next(iter(flow.values())))), sid, dtype=object)
                                          for sid, flow in flows])
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per scenario x endpoint x test x method."""
        import pandas as pd  # noqa: PLC0415 - frames are for users and reports; a run itself never imports pandas

        return pd.DataFrame(self.power_columns())

    def decisions_frame(self) -> pd.DataFrame:
        """Every decision rule's outcomes (go/no-go, multiplicity, interim looks) per scenario."""
        import pandas as pd  # noqa: PLC0415 - see to_frame

        return pd.DataFrame(self.decision_rows(), columns=DECISION_COLUMNS)

    def estimates_frame(self) -> pd.DataFrame:
        import pandas as pd  # noqa: PLC0415 - see to_frame

        return pd.DataFrame(self.estimate_rows())

    def values_frame(self) -> pd.DataFrame:
        """The swept values of each scenario (one column per key path)."""
        import pandas as pd  # noqa: PLC0415 - see to_frame

        return pd.DataFrame([{"scenario": r.spec.id, **r.spec.values} for r in self.results])

    def flow_frame(self) -> pd.DataFrame | None:
        """Per-trial flow outputs (calendar, counts) of every scenario with a flow model."""
        import pandas as pd  # noqa: PLC0415 - see to_frame

        columns = self.flow_columns()
        return None if columns is None else pd.DataFrame(columns)

    def save(self, out: str | Path, *, ledger: Ledger | None = None) -> Path:
        """Write power.csv/json, estimates.csv, decisions.csv, flow_trials.csv, the resolved configs and provenance.json.

        Each file goes through a temporary file and an atomic rename (a kill or a full disk leaves
        the old file or none, never a truncated one), its SHA-256 recorded in ``ledger`` (a new one
        by default); provenance.json comes last, sealed, listing them (:func:`read_run_folder` checks
        them). What an earlier result left and this one does not have (another scenario's TOML, a flow
        table) is removed.
        """
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        ledger = ledger if ledger is not None else Ledger(out)
        power = self.power_rows()
        atomic_write(out / "power.csv", csv_text(as_columns(power)), ledger=ledger)
        atomic_write(out / "power.json", json.dumps({"provenance": self.provenance, "rows": json_records(power)}, indent=1),
                     ledger=ledger)
        atomic_write(out / "estimates.csv", csv_text(as_columns(self.estimate_rows())), ledger=ledger)
        decisions = self.decision_rows()
        if decisions:
            atomic_write(out / "decisions.csv", csv_text(as_columns(decisions, DECISION_COLUMNS)), ledger=ledger)
        else:
            (out / "decisions.csv").unlink(missing_ok=True)
        flow = self.flow_columns()
        if flow is not None:
            atomic_write(out / "flow_trials.csv", csv_text(flow), ledger=ledger)
        else:
            (out / "flow_trials.csv").unlink(missing_ok=True)
        folder = out / "scenarios"
        folder.mkdir(exist_ok=True)
        names = {f"{safe_name(r.spec.id)}.toml" for r in self.results}
        for old in folder.glob("*.toml"):
            if old.name not in names:
                old.unlink()
        for r in self.results:
            atomic_write(folder / f"{safe_name(r.spec.id)}.toml", scenario_to_toml(r.spec.scenario), ledger=ledger)
        atomic_write(out / PROVENANCE, sealed_json({**self.provenance, "files": dict(ledger.files)}), ledger=ledger)
        return out


class TrialWriter:
    """Writes each block's per-trial table as Parquet as it arrives: ``<dir>/<scenario>/block-<b>.parquet``.

    One file per block, written to a temporary name and renamed, so an interrupted run leaves only
    whole files and a resumed run rewrites the same blocks with the same numbers.
    """

    def __init__(self, folder: Path, scenario_ids: list[str]):
        self.folder = Path(folder)
        self.ids = scenario_ids
        # until the run completes the table is partial: read_trials refuses it (a rerun without --keep-trials
        # leaves it so)
        (self.folder / TRIALS_COMPLETE).unlink(missing_ok=True)

    def finish(self, n_sims: int) -> None:
        """Mark the table complete: every block of every scenario is written (:func:`read_trials` checks it)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self.folder / TRIALS_COMPLETE, json.dumps({"scenarios": self.ids, "n_sims": int(n_sims)}))

    def _path(self, spec_index: int, block: int) -> Path:
        return self.folder / safe_name(self.ids[spec_index]) / f"block-{block:06d}.parquet"

    def has(self, spec_index: int, block: int, first_trial: int, n_trials: int) -> bool:
        """Whether block ``block``'s table is there whole: a Parquet file that reads and holds every trial from
        ``first_trial`` on, ``n_trials`` of them, and no other."""
        import pyarrow.parquet as pq

        path = self._path(spec_index, block)
        try:
            trials = np.unique(pq.read_table(path, columns=["trial"]).column("trial").to_numpy())
        except Exception:  # missing, truncated, not Parquet: written again (never trusted)
            return False
        return len(trials) == n_trials and (n_trials == 0 or (trials[0] == first_trial
                                                              and trials[-1] == first_trial + n_trials - 1))

    def write(self, spec_index: int, block: int, table: dict | None) -> None:
        if table is None:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self._path(spec_index, block)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = pa.table({k: pa.array(v) for k, v in table.items()})
        atomic_write(path, lambda p: pq.write_table(frame, p))


def read_trials(folder: str | Path, scenario: str | None = None) -> pd.DataFrame:
    """The per-trial table written by ``run(..., keep_trials=folder)`` (one scenario, or all with a column).

    Only a whole table is read: a table whose run did not complete (killed, then finished without keeping its
    trials) or that lacks some of the run's trials is a :class:`~trialsim.files.DamagedFileError` saying so.
    """
    import pandas as pd  # noqa: PLC0415 - see RunResult.to_frame
    import pyarrow.parquet as pq

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no per-trial table under {str(folder)!r}")
    again = "run it again with --keep-trials (keep_trials=) to complete it"
    partial = (f"the per-trial table under {str(folder)!r} is partial: the run writing it was interrupted (or is still "
               f"running); {again}")
    try:
        done = json.loads((folder / TRIALS_COMPLETE).read_bytes().decode("utf-8"))
        ids, n_sims = [str(i) for i in done["scenarios"]], int(done["n_sims"])
    except FileNotFoundError:
        raise DamagedFileError(partial) from None
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError):
        raise DamagedFileError(f"{folder / TRIALS_COMPLETE} is damaged, so the table cannot be trusted whole: {again}") from None
    if scenario is not None and scenario not in ids:
        raise FileNotFoundError(f"no per-trial table of scenario {scenario!r} under {str(folder)!r}; it has: {', '.join(ids)}")
    frames = []
    for sid in [scenario] if scenario is not None else ids:
        d = folder / safe_name(sid)
        parts = []
        for path in sorted(d.glob("block-*.parquet")):
            try:
                parts.append(pq.read_table(path).to_pandas())
            except Exception:  # pyarrow's errors for a truncated or foreign file
                raise DamagedFileError(f"{path} is damaged (not the Parquet file trialsim wrote): {again}") from None
        table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"trial": []})
        trials = np.unique(table["trial"].to_numpy())
        if len(trials) != n_sims or (n_sims and (trials[0] != 0 or trials[-1] != n_sims - 1)):
            raise DamagedFileError(f"{d} holds {len(trials):,} of the run's {n_sims:,} trials: {again}")
        frames.append(table.assign(scenario=d.name))
    return pd.concat(frames, ignore_index=True).sort_values(["scenario", "trial"], kind="stable").reset_index(drop=True)


def read_run_folder(folder: str | Path) -> dict[str, Any]:
    """The provenance of a finished run folder, checked before anything of the folder is used.

    provenance.json must match its own checksum and carry usable seed, trials and block size; a
    folder whose manifest.json names another seed, number of trials or block size mixes two runs.
    The files it lists are checked by :func:`check_run_files` as they are read.

    Raises
    ------
    DamagedFileError
        What is wrong, naming the file.
    """
    folder = Path(folder)
    path = folder / PROVENANCE
    prov = read_sealed(path)
    for key, low in (("seed", 0), ("n_sims", 1), ("block_size", 1)):
        value = prov.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise DamagedFileError(f"{path}: {key} is {value!r}, not a whole number >= {low}: {RERUN}")
    ids = prov.get("scenarios", ["base"])
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise DamagedFileError(f"{path}: scenarios is {ids!r}, not a list of scenario ids: {RERUN}")
    manifest = folder / MANIFEST
    recorded = _recorded_manifest(manifest)
    if recorded is not None:
        for key in ("seed", "n_sims", "block_size"):
            if not isinstance(recorded, dict) or recorded.get(key) != prov[key]:
                there = recorded.get(key) if isinstance(recorded, dict) else None
                raise DamagedFileError(f"{path} says {key} {prov[key]!r} but {manifest} says {there!r}: the folder mixes "
                                       f"two runs; {RERUN}")
        there = _manifest_hashes(manifest, recorded)
        if list(there) != ids:
            raise DamagedFileError(f"{path} lists the scenarios {ids} but {manifest} {list(there)}: the folder mixes two "
                                   f"runs; {RERUN}")
    return prov


def _recorded_manifest(manifest: Path) -> Any:
    """The run folder's manifest as parsed JSON (None where the folder has none)."""
    if not manifest.is_file():
        return None
    try:
        return json.loads(manifest.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise DamagedFileError(f"{manifest} is damaged (not the JSON trialsim wrote): {RERUN}") from None


def _manifest_hashes(manifest: Path, recorded: Any) -> dict[str, str]:
    """Scenario id -> config hash (:func:`~trialsim.engine.rundir.scenario_hash`) as the manifest records them."""
    entries = recorded.get("scenarios") if isinstance(recorded, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("id"), str)
                                                and isinstance(e.get("config_hash"), str) for e in entries):
        raise DamagedFileError(f"{manifest} is damaged (its scenarios are not the list trialsim wrote): {RERUN}")
    return {e["id"]: e["config_hash"] for e in entries}


def check_run_files(folder: str | Path, prov: dict[str, Any], names: list[str]) -> None:
    """Refuse any of ``names`` (relative to ``folder``) that is not the file the run wrote (see :func:`read_run_folder`)."""
    verify_files(folder, names, prov.get("files"), listed_in=PROVENANCE)


def run_scenario(folder: str | Path, prov: dict[str, Any], scenario: str) -> Scenario:
    """Scenario ``scenario`` of a checked run folder (its scenarios/<id>.toml, checked; the first one's config hash must
    be the provenance's)."""
    folder = Path(folder)
    name = f"scenarios/{safe_name(scenario)}.toml"
    check_run_files(folder, prov, [name])
    sc = load_scenario(folder / name)
    if scenario == prov.get("scenarios", ["base"])[0] and config_hash(sc) != prov.get("config_hash"):
        raise DamagedFileError(f"{folder / name} is not the config of this run (its config hash {config_hash(sc)} differs "
                               f"from {PROVENANCE}'s {prov.get('config_hash')}): {RERUN}")
    manifest = folder / MANIFEST
    recorded = _recorded_manifest(manifest)  # the run's own record, written before any result: its scenarios' configs
    if recorded is not None:
        there, here = _manifest_hashes(manifest, recorded).get(scenario), scenario_hash(sc)
        if there != here:
            raise DamagedFileError(f"{folder / name} is not the config {manifest} records for scenario {scenario!r} "
                                   f"(config hash {here} here, {there} there): the folder mixes two runs; {RERUN}")
    return sc


def check_table(frame: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """``frame`` (read from ``path``) if every probability column (:data:`PROBABILITY_COLUMNS`, and in a table of powers
    :data:`POWER_INTERVAL_COLUMNS`) holds numbers in [0, 1]
    and every count (``n``, ``n_*``) numbers >= 0, missing values aside; else :class:`DamagedFileError`."""
    import pandas as pd  # noqa: PLC0415 - see RunResult.to_frame

    of_power = "power" in frame.columns
    for col in frame.columns:
        probability = col in PROBABILITY_COLUMNS or (of_power and col in POWER_INTERVAL_COLUMNS)
        if not (probability or col == "n" or str(col).startswith("n_")):
            continue
        values = frame[col]
        if values.dtype == bool:
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() & values.notna()
        bad |= numbers < 0
        if probability:
            bad |= numbers > 1
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            allowed = "a probability in [0, 1]" if probability else "a count >= 0"
            shown = values.iloc[row]
            shown = shown.item() if hasattr(shown, "item") else shown  # -0.25, not np.float64(-0.25)
            raise DamagedFileError(f"{path}: column {col} holds {shown!r} (row {row + 2}), not {allowed}: "
                                   f"the file was changed after trialsim wrote it; {RERUN}")
    return frame


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV table of a results folder (empty for a part with no rows), range-checked (:func:`check_table`); a file
    that is not such a table is a :class:`DamagedFileError` naming it."""
    import pandas as pd  # noqa: PLC0415 - see RunResult.to_frame

    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:  # a part with no rows (e.g. no exact sample size to check)
        return pd.DataFrame()
    except FileNotFoundError:
        raise DamagedFileError(f"{path} is missing: {RERUN}") from None
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError) as exc:
        raise DamagedFileError(f"{path} is not a table trialsim wrote ({str(exc).splitlines()[0]}): {RERUN}") from None
    return check_table(frame, path)


def provenance(base_spec: ScenarioSpec, *, seed: int, seed_given: bool, n_sims: int, n_jobs: int, seconds: float,
               source: str | None, block_size: int | None = None, backend: str | None = None,
               run_dir: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a result records about how it was made: versions, config hash, seed (drawn or given), layout.

    ``block_size`` is the one the run used (default: ``run.block_size``, else the one the engine
    would choose for ``base_spec``); ``run_dir`` what the run folder says (sessions, resumed blocks).
    """
    import scipy
    import simpy

    sc = base_spec.scenario
    if block_size is None:
        block_size = sc.run.block_size or layout_of([base_spec], n_sims=n_sims).block_size
    return {
        "trialsim": __version__,
        "scenario": sc.name,
        "config_file": source,
        "config_hash": config_hash(sc),
        "seed": seed,
        "seed_given": seed_given,
        "n_sims": n_sims,
        "block_size": block_size,
        "block_size_chosen": sc.run.block_size is None,
        "n_jobs": n_jobs,
        "backend": backend or sc.run.backend,
        "max_memory_mb": sc.run.max_memory_mb,
        **(run_dir or {}),
        "run_seconds": round(seconds, 3),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": metadata.version("pandas"),  # without importing it
        "simpy": simpy.__version__,
        "joblib": metadata.version("joblib"),  # without importing it (a run on one core never needs joblib)
        "platform": platform.platform(),
    }
