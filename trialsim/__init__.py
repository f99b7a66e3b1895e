"""trialsim: Monte Carlo operating characteristics of small clinical trials.

Notebook use::

    import trialsim
    scenario = trialsim.load_scenario("configs/exosome_lar_20.toml", ["design.n_control=30", "design.n_treatment=30"])
    result = trialsim.run(scenario, n_sims=20_000, seed=1, keep_trials="trials")
    result.to_frame()
    trialsim.read_trials("trials")          # one row per trial x endpoint x test
"""
from trialsim.api import run
from trialsim.config.loader import ConfigError, load_scenario
from trialsim.replay import replay
from trialsim.results import read_trials
from trialsim.version import __version__

__all__ = ["run", "load_scenario", "read_trials", "replay", "ConfigError", "__version__"]
