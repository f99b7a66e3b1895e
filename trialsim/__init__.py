"""trialsim: Monte Carlo operating characteristics of small clinical trials.

Notebook use::

    import trialsim
    scenario = trialsim.load_scenario("configs/exosome_lar_20.toml", ["design.n_control=30", "design.n_treatment=30"])
    result = trialsim.run(scenario, n_sims=20_000, seed=1, keep_trials="trials")
    result.to_frame()
    trialsim.read_trials("trials")          # one row per trial x endpoint x test

The names below are imported on first use (PEP 562), so that importing one submodule (a worker
process importing the simulation, the command line's launcher) does not import the whole package.
"""
from __future__ import annotations

import importlib

from trialsim.version import __version__

_EXPORTS = {
    "run": "trialsim.api",
    "load_scenario": "trialsim.config.loader",
    "ConfigError": "trialsim.config.loader",
    "replay": "trialsim.replay",
    "read_trials": "trialsim.results",
}

__all__ = ["run", "load_scenario", "read_trials", "replay", "ConfigError", "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'trialsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
