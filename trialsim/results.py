"""Result objects: power tables with Monte Carlo error, estimates, flow summaries, provenance, files."""
from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import beta

from trialsim.config.loader import config_hash, scenario_to_toml
from trialsim.endpoints import endpoints
from trialsim.exact import exact_rows
from trialsim.scenarios import ScenarioSpec
from trialsim.simulate import BlockSummary

POWER_COLUMNS = [
    "scenario", "endpoint", "test", "n_control", "n_treatment", "alpha", "power", "mc_se", "ci_low", "ci_high",
    "method", "n_sims", "n_valid", "primary", "family", "label",
]


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval for k rejections in n simulated trials."""
    a = (1 - level) / 2
    low = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return low, high


@dataclass(frozen=True)
class ScenarioResult:
    """Combined blocks of one scenario."""

    spec: ScenarioSpec
    n_sims: int
    rejects: dict[str, int]
    valid: dict[str, int]
    est_sum: dict[str, float]
    est_sumsq: dict[str, float]
    est_count: dict[str, int]
    flow: dict[str, np.ndarray] | None = None

    @classmethod
    def combine(cls, spec: ScenarioSpec, blocks: list[BlockSummary]) -> "ScenarioResult":
        """Sum block summaries in block order (so float sums are identical for any n_jobs)."""
        blocks = sorted(blocks, key=lambda b: b.block)

        def total(attr: str) -> dict:
            out: dict = {}
            for b in blocks:
                for k, v in getattr(b, attr).items():
                    out[k] = out.get(k, 0) + v
            return out

        flow = None
        if blocks and blocks[0].flow is not None:
            flow = {name: np.concatenate([np.asarray(b.flow[name], dtype=float) for b in blocks]) for name in blocks[0].flow}
        return cls(spec, sum(b.n_sims for b in blocks), total("rejects"), total("valid"), total("est_sum"),
                   total("est_sumsq"), total("est_count"), flow)

    def power_rows(self) -> list[dict]:
        sc = self.spec.scenario
        d = sc.design
        rows = []
        exact = {(r["endpoint"], r["test"]): r["power"] for r in exact_rows(sc)}
        for e in endpoints(sc):
            for test in e.tests:
                k = self.rejects[f"{e.name}|{test}"]
                n = self.n_sims
                p = k / n
                low, high = clopper_pearson(k, n)
                base = {"scenario": self.spec.id, "endpoint": e.name, "test": test, "n_control": d.n_control,
                        "n_treatment": d.n_treatment, "alpha": d.alpha, "primary": e.primary, "family": e.family,
                        "label": e.label}
                rows.append(base | {"power": p, "mc_se": float(np.sqrt(p * (1 - p) / n)), "ci_low": low, "ci_high": high,
                                    "method": "monte_carlo", "n_sims": n, "n_valid": self.valid[f"{e.name}|{test}"]})
                if (e.name, test) in exact:
                    pe = exact[(e.name, test)]
                    rows.append(base | {"power": pe, "mc_se": 0.0, "ci_low": pe, "ci_high": pe, "method": "exact",
                                        "n_sims": 0, "n_valid": 0})
        return rows

    def estimate_rows(self) -> list[dict]:
        rows = []
        for k, total in self.est_sum.items():
            endpoint, arm, statistic = k.split("|")
            n = self.est_count[k]
            mean = total / n if n else float("nan")
            var = (self.est_sumsq[k] / n - mean**2) * n / (n - 1) if n > 1 else float("nan")
            rows.append({"scenario": self.spec.id, "endpoint": endpoint, "arm": arm, "statistic": statistic,
                         "mean": mean, "sd": float(np.sqrt(max(var, 0.0))) if n > 1 else float("nan"),
                         "n_estimable": n, "n_sims": self.n_sims})
        return rows


@dataclass(frozen=True)
class RunResult:
    """Everything a run produced; ``to_frame()`` gives the tidy power table."""

    results: list[ScenarioResult]
    seed: int
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """One row per scenario x endpoint x test x method."""
        rows = [r for res in self.results for r in res.power_rows()]
        frame = pd.DataFrame(rows, columns=POWER_COLUMNS)
        values = self.values_frame()
        if not values.empty and len(values.columns) > 1:
            frame = frame.merge(values, on="scenario", how="left")
        return frame

    def estimates_frame(self) -> pd.DataFrame:
        return pd.DataFrame([r for res in self.results for r in res.estimate_rows()])

    def values_frame(self) -> pd.DataFrame:
        """The swept values of each scenario (one column per key path)."""
        return pd.DataFrame([{"scenario": r.spec.id, **r.spec.values} for r in self.results])

    def flow_frame(self) -> pd.DataFrame | None:
        """Per-trial flow outputs (calendar, counts) of every scenario with a flow model."""
        frames = [pd.DataFrame(r.flow).assign(scenario=r.spec.id) for r in self.results if r.flow is not None]
        return pd.concat(frames, ignore_index=True) if frames else None

    def save(self, out: str | Path) -> Path:
        """Write power.csv/json, estimates.csv, flow_trials.csv, the resolved configs and provenance.json."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        power = self.to_frame()
        power.to_csv(out / "power.csv", index=False)
        (out / "power.json").write_text(json.dumps({"provenance": self.provenance, "rows": _records(power)}, indent=1))
        self.estimates_frame().to_csv(out / "estimates.csv", index=False)
        flow = self.flow_frame()
        if flow is not None:
            flow.to_csv(out / "flow_trials.csv", index=False)
        (out / "provenance.json").write_text(json.dumps(self.provenance, indent=1))
        for r in self.results:
            (out / "scenarios").mkdir(exist_ok=True)
            (out / "scenarios" / f"{r.spec.id}.toml").write_text(scenario_to_toml(r.spec.scenario))
        return out


def _records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))


def provenance(base_spec: ScenarioSpec, *, seed: int, seed_given: bool, n_sims: int, n_jobs: int, seconds: float,
               source: str | None) -> dict[str, Any]:
    import joblib
    import scipy
    import simpy

    import trialsim

    sc = base_spec.scenario
    return {
        "trialsim": trialsim.__version__,
        "scenario": sc.name,
        "config_file": source,
        "config_hash": config_hash(sc),
        "seed": seed,
        "seed_given": seed_given,
        "n_sims": n_sims,
        "block_size": sc.run.block_size,
        "n_jobs": n_jobs,
        "run_seconds": round(seconds, 3),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "simpy": simpy.__version__,
        "joblib": joblib.__version__,
        "platform": platform.platform(),
    }
