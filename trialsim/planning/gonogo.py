"""Operating characteristics of the Bayesian go / no-go rule against the true effect, exactly.

:func:`go_nogo_curve` varies a binary endpoint's effect parameter (e.g. a risk ratio) over a
grid that always holds the null and the assumed effect, and gives at each value the exact
probabilities of go, no-go and inconclusive (:func:`trialsim.decide.bayes.exact_go_nogo`) with the
expected posterior probabilities and PPoS. Simulation reproduces them within Monte Carlo error
(tests/test_bayes.py).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from trialsim.config.loader import with_values
from trialsim.config.schema import Scenario
from trialsim.decide.bayes import exact_go_nogo
from trialsim.model import build_model

DEFAULT_POINTS = 15


def default_effects(kind: str, null: float, assumed: float, lower: float, upper: float) -> list[float]:
    """A grid around the null and the assumed effect: ratios from half the smaller to 1.5 x the larger
    (log-spaced), others half the distance beyond each; within the parameter's bounds."""
    small, large = min(null, assumed), max(null, assumed)
    if kind == "ratio":
        grid = np.geomspace(max(small / 2.0, lower), min(large * 1.5, upper), DEFAULT_POINTS)
    else:
        spread = 0.5 * max(large - small, 1e-3)
        grid = np.linspace(max(small - spread, lower), min(large + spread, upper), DEFAULT_POINTS)
    return [float(round(v, 4)) for v in grid]


def go_nogo_curve(scenario: Scenario, effects: Sequence[float] | None = None, *, endpoint: str | None = None) -> pd.DataFrame:
    """Exact P(go), P(no-go), P(inconclusive) of a binary endpoint at each true effect.

    Parameters
    ----------
    scenario : Scenario
        Fixed arm sizes, no ``[flow]``; its ``[bayes]`` section sets priors and thresholds.
    effects : sequence of float, optional
        Values of the endpoint's effect parameter (e.g. the risk ratio). Default: from the null to
        beyond the assumed effect, ``DEFAULT_POINTS`` values, with the null and the assumed value added.
    endpoint : str, optional
        An analysed binary endpoint with an effect parameter; default the primary.

    Returns
    -------
    pandas.DataFrame
        One row per effect: ``endpoint, effect_kind, effect, go, no_go, inconclusive, p_benefit,
        p_meaningful, ppos, is_null, is_assumed``.
    """
    model = build_model(scenario)
    a = model.endpoint(endpoint) if endpoint else model.primary
    if a.effect is None:
        raise ValueError(f"endpoint {a.name!r} has no effect parameter to vary")
    e = a.effect
    if effects is None:
        effects = default_effects(e.kind, e.null, e.assumed, e.lower, e.upper)
    values = sorted({float(v) for v in effects} | {float(e.null), float(e.assumed)})
    rows = []
    for v in values:
        probs = exact_go_nogo(with_values(scenario, {e.path: v}), a.name)
        if probs is None:
            raise ValueError(f"no exact law for {a.name!r} in this scenario (a [flow] or random arm sizes): simulate it")
        rows.append({"endpoint": a.name, "effect_kind": e.kind, "effect": v, **probs,
                     "is_null": v == e.null, "is_assumed": v == e.assumed})
    return pd.DataFrame(rows)
