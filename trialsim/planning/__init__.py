"""Planning: sample sizes, minimal detectable effects, pilot numbers and power curves.

Notebook use::

    from trialsim.config.loader import load_scenario
    from trialsim import planning

    sc = load_scenario("configs/exosome_lar_20.toml")
    planning.sample_size(sc, "leak_1m", "fisher", power=0.8).summary()
    planning.minimal_detectable_effect(sc, "il6_drain_mean_log", "welch_log").summary()
    planning.pilot_summary(sc).summary()
    result = planning.plan("configs/exosome_lar_20.toml", n_jobs=-1)   # everything, for the report
    result.save("out/")

Every size is per analysable patient, inflated for loss to follow-up in ``n_enrolled``; binary
endpoints are exact, the others simulated with common random numbers and a Monte Carlo interval.
"""
from trialsim.planning.curves import leak_power_grid, power_vs_effect, power_vs_n
from trialsim.planning.mde import MDEResult, MDETable, minimal_detectable_effect, minimal_detectable_effects
from trialsim.planning.pilot import PilotSummary, pilot_summary
from trialsim.planning.plan import PlanningResult, load_planning, plan
from trialsim.planning.samplesize import (
    ExactScan,
    SampleSizeResult,
    SampleSizeTable,
    exact_scan,
    sample_size,
    sample_sizes,
)

__all__ = [
    "ExactScan",
    "MDEResult",
    "MDETable",
    "PilotSummary",
    "PlanningResult",
    "SampleSizeResult",
    "SampleSizeTable",
    "exact_scan",
    "leak_power_grid",
    "load_planning",
    "minimal_detectable_effect",
    "minimal_detectable_effects",
    "pilot_summary",
    "plan",
    "power_vs_effect",
    "power_vs_n",
    "sample_size",
    "sample_sizes",
]
