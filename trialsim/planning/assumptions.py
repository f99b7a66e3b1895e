"""Every value of a scenario with its source, for the report's assumptions table.

The source of a value is the comment the config file gives it (``rate_control = 0.12  # ... [qu2015]``),
else the ``source`` string of its table (a covariate, a risk factor, a marker); a config that
``extends`` another inherits that file's comments for the values it does not set itself. A value the
config does not set shows the schema's description, which cites its own source, marked as a
default. Citation keys stay as written: the report resolves them (:mod:`trialsim.report.references`).
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from trialsim.config.schema import Scenario
from trialsim.designs.allocation import scheme

ASSUMPTION_COLUMNS = ["section", "key", "shown", "value", "source", "origin"]
# Not clinical assumptions: how to simulate, and the sweep (reported on its own).
_SKIP = {"run", "sweep", "name", "title", "description"}
# Identifiers and display names: not assumptions, no source to cite (left out of the table).
_LABELS = {"name", "label", "unit", "family", "control_name", "treatment_name", "short", "covariate"}


def config_comments(text: str) -> dict[str, str]:
    """Map key path -> trailing comment in a TOML config (tables and arrays of tables understood)."""
    out: dict[str, str] = {}
    section = ""
    counts: dict[str, int] = {}
    pending: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            pending = []
            continue
        if line.startswith("#"):
            pending.append(line.lstrip("#").strip())
            continue
        if line.startswith("[["):
            name = line[2:line.index("]]")].strip()
            counts[name] = counts.get(name, -1) + 1
            section = f"{name}[{counts[name]}]"
            pending = []
            continue
        if line.startswith("["):
            section = line[1:line.index("]")].strip()
            pending = []
            continue
        if "=" not in line:
            continue
        key, rest = line.split("=", 1)
        key = key.strip().strip('"')
        comment = _trailing_comment(rest)
        path = f"{section}.{key}" if section else key
        out[path] = comment or " ".join(pending)
        pending = []
    return out


def _trailing_comment(rest: str) -> str:
    quote = None
    for i, c in enumerate(rest):
        if quote:
            if c == quote and rest[i - 1] != "\\":
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "#":
            return rest[i + 1:].strip()
    return ""


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_format(v) for v in value) + "]"
    if isinstance(value, BaseModel):
        return json.dumps(json.loads(value.model_dump_json()))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_format(v)}" for k, v in value.items()) + "}"
    return str(value)


def _item_name(item: BaseModel, index: int) -> str:
    """How a table in an array of tables is shown: its name (a covariate, a marker) or its position."""
    for attr in ("name", "covariate"):
        value = getattr(item, attr, None)
        if isinstance(value, str) and value:
            return value
    return str(index)


def _origin(path: str, value, field, comments: dict[str, str] | None, overrides: dict[str, object]) -> str:
    """Where a value was set: "override" (--set), "config" (the file), "default" (the schema's), or
    "scenario" (a scenario given without its file, at a value that is not the default)."""
    if path in overrides:
        return "override"
    if comments is not None:
        return "config" if path in comments else "default"
    return "default" if value == field.get_default(call_default_factory=True) else "scenario"


def _walk(model: BaseModel, prefix: str, rows: list[dict], comments: dict[str, str] | None, section: str,
          shown: str = "", overrides: dict[str, object] | None = None) -> None:
    overrides = overrides or {}
    for name, field in type(model).model_fields.items():
        if not prefix and name in _SKIP:
            continue
        value = getattr(model, name)
        path = f"{prefix}.{name}" if prefix else name
        label = f"{shown}.{name}" if shown else name
        top = section or name
        if value is None:
            continue
        if isinstance(value, BaseModel):
            _walk(value, path, rows, comments, top, label, overrides)
        elif isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
            for key, item in value.items():  # named sections, e.g. [endpoints.<id>]
                _walk(item, f"{path}.{key}", rows, comments, f"{path}.{key}", f"{label}.{key}", overrides)
        elif isinstance(value, tuple) and value and isinstance(value[0], BaseModel):
            for i, item in enumerate(value):
                _walk(item, f"{path}[{i}]", rows, comments, top, f"{label}[{_item_name(item, i)}]", overrides)
        else:
            if name == "source" or name in _LABELS:
                continue  # a source is shown with its siblings; names are not assumptions
            origin = _origin(path, value, field, comments, overrides)
            sibling = str(getattr(model, "source", "") or "")
            if origin == "config":
                source = (comments or {}).get(path) or sibling
            elif origin == "override":
                source = "set on the command line (--set)"
            elif origin == "scenario":
                source = sibling
            else:
                source = field.description or ""
            rows.append({"section": top, "key": path, "shown": label, "value": _format(value), "source": source,
                         "origin": origin})


def assumptions_frame(scenario: Scenario, comments: dict[str, str] | None = None,
                      overrides: dict[str, object] | None = None) -> pd.DataFrame:
    """One row per scenario value: section, key path, the path as shown (array items by name), value, source,
    origin ("config", "override", "default" or "scenario").

    ``comments`` maps key paths to their comments (:func:`file_comments`; None: no config file, so a
    value is a default when it equals the schema's and "scenario" otherwise); ``overrides`` the key
    paths set on the command line.
    """
    rows: list[dict] = []
    _walk(scenario, "", rows, comments, "", "", dict(overrides or {}))
    unused = unused_keys(scenario)
    rows = [r for r in rows if not (r["key"] in unused and r["origin"] == "default")]
    return pd.DataFrame(rows, columns=ASSUMPTION_COLUMNS)


def unused_keys(scenario: Scenario) -> set[str]:
    """Key paths of values the design does not read: the ``[allocation]`` settings of other schemes (a sequential
    design has no block size). Left out of the assumptions where they are only the schema's defaults."""
    used = set(scheme(scenario.allocation.scheme).settings) | {"scheme"}
    return {f"allocation.{name}" for name in type(scenario.allocation).model_fields if name not in used}


def file_comments(path: str | Path | None) -> dict[str, str] | None:
    """Key path -> comment of a config file, with those of the files it ``extends`` beneath its own.

    None without a file (no path, or a file that is not there).
    """
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        return None
    text = p.read_text(encoding="utf-8-sig")  # as the loader reads it: a byte-order mark is not TOML
    try:
        parent = tomllib.loads(text).get("extends")
    except tomllib.TOMLDecodeError:
        return {}
    inherited = file_comments(p.parent / parent) if isinstance(parent, str) and (p.parent / parent) != p else None
    return (inherited or {}) | config_comments(text)
