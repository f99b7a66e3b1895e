"""Planning: sample sizes, minimal detectable effects, pilot numbers and power curves, for any trial.

Notebook use::

    from trialsim.config.loader import load_scenario
    from trialsim.model import build_model
    from trialsim import planning

    sc = load_scenario("configs/crp_randomised_30.toml")
    primary = build_model(sc).primary                      # or any analysed endpoint's name
    planning.sample_size(sc, primary.name, power=0.8).summary()
    planning.minimal_detectable_effect(sc, primary.name).summary()
    planning.pilot_summary(sc).summary()
    result = planning.plan("configs/crp_randomised_30.toml", n_jobs=-1)   # everything, for the report
    result.save("out/")

Nothing here knows a trial: endpoints, effect parameters and laws come from the scenario's model
(:func:`trialsim.model.build_model`), what a test can do from the test registry. Every size is per
analysable patient, inflated for loss to follow-up in ``n_enrolled``. Pairs with an exact law are
exact; everything else is simulated through the one engine (:func:`trialsim.engine.run_specs`) with
the run's seed and block layout, so the same quantity with the same seed is the same number in
``run``, ``samplesize``, ``curves`` and ``report``.
"""
from trialsim.planning.curves import power_grid, power_vs_effect, power_vs_n
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
    "load_planning",
    "minimal_detectable_effect",
    "minimal_detectable_effects",
    "pilot_summary",
    "plan",
    "power_grid",
    "power_vs_effect",
    "power_vs_n",
    "sample_size",
    "sample_sizes",
]
