"""Replay one simulated trial of a finished run: its patients, what was observed and every analysis.

A run records its root seed and block size (``provenance.json``) and each scenario's resolved config
(``scenarios/<id>.toml``). Trial ``K`` lives in block ``K // block_size`` at row ``K % block_size``;
regenerating that block on its own random streams gives the trial back bit for bit, so its
statistics equal its rows in the run's ``--keep-trials`` table.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trialsim.config.loader import ConfigError
from trialsim.decide import decide
from trialsim.results import PROVENANCE, read_run_folder, run_scenario
from trialsim.rng import Streams
from trialsim.simulate import simulate_trials
from trialsim.summarise import trial_table


@dataclass(frozen=True)
class Replay:
    """One simulated trial: ``patients`` (one row per patient) and ``analyses`` (one row per endpoint x test)."""

    scenario: str
    trial: int
    seed: int
    patients: pd.DataFrame
    analyses: pd.DataFrame

    def save(self, out: str | Path) -> list[Path]:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / f"trial{self.trial}_patients.csv", out / f"trial{self.trial}_analyses.csv"]
        self.patients.to_csv(paths[0], index=False)
        self.analyses.to_csv(paths[1], index=False)
        return paths


def replay(run_dir: str | Path, trial: int, *, scenario: str | None = None) -> Replay:
    """Regenerate simulated trial ``trial`` of the run saved in ``run_dir`` (scenario ``scenario`` of a sweep)."""
    run_dir = Path(run_dir)
    prov_path = run_dir / PROVENANCE
    if not prov_path.exists():
        raise ConfigError(f"{str(run_dir)!r} holds no finished run (no {PROVENANCE}); run `trialsim run CONFIG --out {run_dir}` first")
    prov = read_run_folder(run_dir)  # checked: sealed, and the seed, trials and block size of the manifest
    ids = prov.get("scenarios", ["base"])
    if scenario is None:
        if len(ids) > 1:
            raise ConfigError(f"this run has {len(ids)} scenarios; choose one with --scenario: {', '.join(ids)}")
        scenario = ids[0]
    if scenario not in ids:
        raise ConfigError(f"--scenario {scenario!r} is not in this run; it has: {', '.join(ids)}")
    n_sims, block_size, seed = int(prov["n_sims"]), int(prov["block_size"]), int(prov["seed"])
    if not 0 <= trial < n_sims:
        raise ConfigError(f"--trial {trial} is not allowed: this run simulated trials 0 to {n_sims - 1}")
    sc = run_scenario(run_dir, prov, scenario)
    block, row = divmod(trial, block_size)
    size = min(block_size, n_sims - block * block_size)
    batch = simulate_trials(sc, size, streams=Streams(seed, block), keep_patients=True)
    decisions = decide(batch)
    table = pd.DataFrame(trial_table(batch, decisions, first_trial=block * block_size))
    analyses = table[table["trial"] == trial].reset_index(drop=True)
    return Replay(scenario, trial, seed, _patients(batch, row), analyses)


def _patients(batch, row: int) -> pd.DataFrame:
    p = batch.patients
    d = batch.model.scenario.design
    cols: dict[str, np.ndarray] = {"position": np.arange(p.treated.shape[1]),
                                   "arm": np.where(p.treated[row], d.treatment_name, d.control_name)}
    for name, values in p.covariates.items():
        cols[name] = values[row]
    for cid, latent in p.latent.items():
        for key, values in latent.items():
            if np.ndim(values) == 2:
                cols[f"{cid}.{key}"] = values[row]
    cols["died"] = p.follow_up.died[row]
    cols["misses_visit"] = p.follow_up.misses_visit[row]
    if p.status.enrolled is not None:
        cols["enrolled"] = p.status.enrolled[row]
    for a in batch.model.analysed:
        x = p.observed[a.name][row]
        cols[a.name] = np.exp(x) if a.scale == "log" else x
    return pd.DataFrame(cols)
