"""Expand a config's sweep into named scenarios with stable, readable ids."""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from trialsim.config.loader import with_values
from trialsim.config.schema import Scenario


@dataclass(frozen=True)
class ScenarioSpec:
    """One scenario of a run: its id, the values that differ from the base, and the validated scenario."""

    id: str
    scenario: Scenario
    values: dict[str, Any] = field(default_factory=dict)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (list, tuple)):
        text = "-".join(_fmt(v) for v in value)
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "_", text)


def scenario_id(values: dict[str, Any]) -> str:
    """``{"design.n_control": 20, "leak.effect": 0.5}`` -> ``"n_control=20,effect=0.5"``.

    The last part of each key path names it (the whole path when two keys share a last part); the
    id depends only on the values, so it is the same in every run.
    """
    if not values:
        return "base"
    last = [k.split(".")[-1] for k in values]
    names = [k if last.count(k.split(".")[-1]) > 1 else k.split(".")[-1] for k in values]
    return ",".join(f"{n}={_fmt(v)}" for n, v in zip(names, values.values()))


def _points(sweep, keys: list[str]):
    """Each sweep point as {key path: value}, keys in the order of ``sweep.values``.

    mode "zip": element by element. mode "grid": the product of axes, where an axis is one key, or
    a zip group of keys moving together.
    """
    if sweep.mode == "zip":
        for point in zip(*(sweep.values[k] for k in keys)):
            yield dict(zip(keys, point))
        return
    group_of = {k: tuple(g) for g in sweep.zip_groups for k in g}
    axes: list[tuple[str, ...]] = []
    for k in keys:
        axis = group_of.get(k, (k,))
        if axis not in axes:
            axes.append(axis)
    choices = [list(zip(*(sweep.values[k] for k in axis))) for axis in axes]
    for combo in itertools.product(*choices):
        flat = {k: v for axis, point in zip(axes, combo) for k, v in zip(axis, point)}
        yield {k: flat[k] for k in keys}


def expand(scenario: Scenario) -> list[ScenarioSpec]:
    """The scenarios of a config: the base alone, or one per point of its sweep."""
    sweep = scenario.sweep
    if sweep is None or not sweep.values:
        return [ScenarioSpec("base", scenario, {})]
    keys = list(sweep.values)
    specs = [ScenarioSpec("base", scenario, {})] if sweep.include_base else []
    seen = set()
    for values in _points(sweep, keys):
        sid = scenario_id(values)
        if sid in seen:
            continue
        seen.add(sid)
        specs.append(ScenarioSpec(sid, with_values(scenario, values, source=f"sweep point {sid}"), values))
    return specs
