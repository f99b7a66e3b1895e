"""Expand a config's sweep into named scenarios with stable, readable ids."""
from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from trialsim.config.loader import ConfigError, with_values
from trialsim.config.schema import Scenario


@dataclass(frozen=True)
class ScenarioSpec:
    """One scenario of a run: its id, the values that differ from the base, and the validated scenario.

    ``nested``: smaller ``(n_control, n_treatment)`` sizes analysed on each trial's first patients of each arm
    (planning's searches over n: :func:`trialsim.simulate.nesting_problem`); their decisions reach only the
    per-trial tables.
    """

    id: str
    scenario: Scenario
    values: dict[str, Any] = field(default_factory=dict)
    nested: tuple[tuple[int, int], ...] = ()


FILE_NAME_MAX = 120  # characters of a scenario's file name (file systems allow 255 bytes)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
        if float(text) != value:  # 6 digits would merge it with a neighbour (0.5 and 0.5000004): all of them
            text = repr(value)
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
    seen: dict[str, dict] = {spec.id: {} for spec in specs}
    # file names compared without case: names differing only in case are one file on macOS and Windows
    files: dict[str, str] = {safe_name(spec.id).casefold(): spec.id for spec in specs}
    for values in _points(sweep, keys):
        sid = scenario_id(values)
        if sid in seen:
            raise ConfigError(
                f"sweep points {_show(seen[sid]) or 'base'} and {_show(values)} both get the scenario id {sid!r}"
                + (" (the same point twice)" if seen[sid] == values else
                   " (ids keep letters, digits and . + - of each value): make the values differ there"))
        if safe_name(sid).casefold() in files:  # ids differing only in case, or a hash collision (never in practice)
            raise ConfigError(f"scenarios {files[safe_name(sid).casefold()]!r} and {sid!r} would share the file name "
                              f"{safe_name(sid)!r} (names that differ only in case are one file on macOS and Windows): "
                              "make the swept values differ by more than case")
        seen[sid] = values
        files[safe_name(sid).casefold()] = sid
        specs.append(ScenarioSpec(sid, with_values(scenario, values, source=f"sweep point {sid}"), values))
    return specs


def _show(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {v!r}" for k, v in values.items())


def safe_name(scenario_id: str) -> str:
    """A scenario id as a file name: the id itself when it is short and uses only safe characters,
    else its safe characters cut short and a hash of the whole id (so distinct ids never share a file).
    """
    clean = re.sub(r"[^A-Za-z0-9._,=+-]", "_", scenario_id)
    if clean == scenario_id and len(clean) <= FILE_NAME_MAX and not clean.startswith("."):
        return clean
    digest = hashlib.sha256(scenario_id.encode("utf-8")).hexdigest()[:12]
    return f"{clean[:FILE_NAME_MAX - 13].lstrip('.')}-{digest}"
