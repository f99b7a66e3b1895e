"""trialsim: Monte Carlo operating characteristics of small clinical trials.

Notebook use::

    import trialsim
    scenario = trialsim.load_scenario("configs/exosome_lar_20.toml", ["leak.effect=0.33"])
    result = trialsim.run(scenario, n_sims=20_000, seed=1)
    result.to_frame()
"""
from trialsim.version import __version__

__all__ = ["run", "load_scenario", "ConfigError", "__version__"]


def __getattr__(name):  # lazy, so `import trialsim.config` does not pull in scipy and joblib
    if name == "run":
        from trialsim.api import run

        return run
    if name in ("load_scenario", "ConfigError"):
        from trialsim.config import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'trialsim' has no attribute {name!r}")
