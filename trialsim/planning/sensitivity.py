"""How the main trial's size rests on its assumptions: the sample size of the primary endpoint over its control
rate x its effect.

A proposal's sample size comes from two guesses, the control arm's event rate and the treatment's effect, and a
reviewer's first question is how much it moves when either is off. :func:`size_sensitivity` answers with the
same computation as the report's sample sizes (:func:`trialsim.planning.samplesize.sample_sizes`: exact for a
binary primary with an exact test; per analysable patient and to enrol, the design's allocation ratio and losses),
on a grid around the assumed values: the control rate at about 1/2, 3/4, 1, 5/4 and 3/2 of the assumed one (of its
complement above 0.5), and the effect at the assumed value and its neighbours on a ladder of round values (risk
ratios 0.25 ... 0.9 within a factor of two, and their reciprocals where higher is better; differences at 1/2 ... 2
times the assumed). Only for a primary endpoint with an exact answer (a binary law and a test with exact power,
arms not allocated on the patients' covariates) whose family names both values (``Analysed.baseline`` and
``Analysed.effect``, a ratio or a difference): otherwise the frame is empty (a simulated sample size per cell
would cost a search each).
"""
from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from trialsim.config.loader import ConfigError, with_values
from trialsim.config.schema import Scenario
from trialsim.endpoints.base import BaselineParameter, EffectParameter
from trialsim.engine import map_calls
from trialsim.model import build_model
from trialsim.planning.model import effect_values, exact_available
from trialsim.planning.samplesize import sample_sizes

__all__ = ["SENSITIVITY_COLUMNS", "size_sensitivity", "baseline_grid", "effect_ladder"]

SENSITIVITY_COLUMNS = [
    "endpoint", "test", "baseline_path", "baseline_label", "baseline", "effect_path", "effect_label", "effect",
    "assumed", "p_control", "p_treatment", "target_power", "ratio", "method", "reachable", "n", "n_treatment",
    "n_enrolled", "n_enrolled_treatment", "n_max", "dropout",
]
BASELINE_FACTORS = (0.5, 0.75, 1.0, 1.25, 1.5)
RATIO_LADDER = (0.25, 0.33, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # benefit below 1; reciprocals where higher is better
DIFFERENCE_FACTORS = (0.5, 0.75, 1.0, 1.5, 2.0)
NEIGHBOURS = 2  # ladder values on each side of the assumed effect
SENSITIVITY_N_MAX = 5000


def _round(x: float, digits: int = 2) -> float:
    """``x`` to ``digits`` significant digits."""
    return float(f"{x:.{digits}g}")


def baseline_grid(baseline: BaselineParameter) -> list[float]:
    """The assumed control level and round values at :data:`BASELINE_FACTORS` of it (of its complement above 0.5, so
    that a rate near 1 moves both ways), within its bounds."""
    assumed = baseline.assumed
    if assumed <= 0.5:
        values = {_round(assumed * f) for f in BASELINE_FACTORS if f != 1.0}
    else:
        values = {1.0 - _round((1.0 - assumed) * f) for f in BASELINE_FACTORS if f != 1.0}
    return sorted(v for v in {assumed} | values if baseline.lower <= v <= baseline.upper)


def effect_ladder(effect: EffectParameter) -> list[float]:
    """The assumed effect and its :data:`NEIGHBOURS` neighbours on each side: on a ladder of round ratios within a
    factor of two of it, or at multiples of a difference; none closer than 5% to it. Empty for an effect given as the
    treatment arm's own rate, or at no effect."""
    if effect.kind == "rate" or effect.assumed == effect.null:
        return []
    assumed = effect.assumed
    if effect.kind == "difference":
        others = [_round(assumed * f) for f in DIFFERENCE_FACTORS if f != 1.0]
        values = {assumed, *(v for v in others if abs(v / assumed - 1.0) > 0.05)}
    else:
        helps_below = assumed < effect.null
        ladder = RATIO_LADDER if helps_below else tuple(_round(1.0 / r) for r in RATIO_LADDER)
        near = [r for r in ladder if 0.05 < abs(math.log(r / assumed)) <= math.log(2.0)]
        stronger = sorted((r for r in near if (r < assumed) == helps_below), key=lambda r: abs(math.log(r / assumed)))
        weaker = sorted((r for r in near if (r > assumed) == helps_below), key=lambda r: abs(math.log(r / assumed)))
        values = {assumed, *stronger[:NEIGHBOURS], *weaker[:NEIGHBOURS]}
    return sorted(v for v in values if effect.lower <= v <= effect.upper)


def size_sensitivity(scenario: Scenario, *, power: float = 0.8, ratio: float | None = None,
                     dropout: float | None = None, baselines: Sequence[float] | None = None,
                     effects: Sequence[float] | None = None, n_max: int = SENSITIVITY_N_MAX,
                     n_jobs: int = 1) -> pd.DataFrame:
    """The primary endpoint's sample size for ``power`` with its primary test, over its control level x its effect.

    Parameters
    ----------
    scenario : Scenario
        The design and assumptions (``design.alpha``, the allocation ratio and losses as in the report's sizes).
    power : float
        Target power.
    ratio : float, optional
        ``n_treatment / n_control`` (default: the design's), as for the report's sample sizes.
    dropout : float, optional
        Expected loss to follow-up for the sizes to enrol (default: the scenario's), as for the sample sizes.
    baselines, effects : sequence of float, optional
        The control levels and effects (default: :func:`baseline_grid` and :func:`effect_ladder`).
    n_max : int
        Largest n per arm searched (beyond it a cell is unreachable).
    n_jobs : int
        Workers for the cells' exact searches (``run.backend``; the results do not depend on it).

    Returns
    -------
    DataFrame with :data:`SENSITIVITY_COLUMNS`, one row per valid (control level, effect), ``assumed`` marking the
    design's own; empty where the primary endpoint's family names no control level or effect.
    """
    model = build_model(scenario)
    primary = model.primary
    baseline, effect = primary.baseline, primary.effect
    if baseline is None or effect is None or not exact_available(model, primary.name, primary.tests[0]):
        return pd.DataFrame(columns=SENSITIVITY_COLUMNS)
    effect_list = list(effects) if effects is not None else effect_ladder(effect)
    baseline_list = list(baselines) if baselines is not None else baseline_grid(baseline)
    test = primary.tests[0]
    cells = []
    for level in baseline_list:
        for value in effect_list:
            try:
                base = with_values(scenario, {baseline.path: float(level)}, source=f"{baseline.path} = {level:g}")
                cells.append((level, value, with_values(base, effect_values(base, effect, value),
                                                        source=f"{effect.path} = {value:g}")))
            except ConfigError:  # a rate pushed out of its family's range by the other value: no such trial
                continue
    # one exact search per cell, spread over the workers, the dearest first (rarer events, weaker effects)
    order = sorted(range(len(cells)), key=lambda i: (cells[i][0], -_strength(effect, cells[i][1])))
    found = map_calls(_size_at, [(cells[i][2], primary.name, test, power, ratio, dropout, n_max) for i in order],
                      n_jobs=n_jobs, backend=scenario.run.backend, scheduler=scenario.run.scheduler)
    by_cell = dict(zip(order, found))
    rows = [{"endpoint": primary.name, "test": test, "baseline_path": baseline.path, "baseline_label": baseline.label,
             "baseline": float(level), "effect_path": effect.path, "effect_label": effect.label, "effect": float(value),
             "assumed": level == baseline.assumed and value == effect.assumed, **by_cell[i]}
            for i, (level, value, _) in enumerate(cells)]
    return pd.DataFrame(rows, columns=SENSITIVITY_COLUMNS)


_FOUND = ("p_control", "p_treatment", "target_power", "ratio", "method", "reachable", "n", "n_treatment", "n_enrolled",
          "n_enrolled_treatment", "n_max", "dropout")


def _size_at(cell: Scenario, endpoint: str, test: str, power: float, ratio: float | None, dropout: float | None,
             n_max: int) -> dict:
    """One cell's exact sample size (the columns of :data:`_FOUND`), on a worker."""
    found = sample_sizes(cell, endpoint=endpoint, test=test, power=(power,), ratio=ratio, dropout=dropout,
                         simulate=False, n_max=n_max).to_frame().iloc[0]
    return {k: found[k] for k in _FOUND}


def _strength(effect: EffectParameter, value: float) -> float:
    """How far ``value`` is from no effect (a weaker effect needs a larger, dearer search)."""
    return abs(math.log(value / effect.null)) if effect.kind == "ratio" else abs(value - effect.null)
