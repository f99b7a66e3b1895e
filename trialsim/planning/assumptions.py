"""Every value of a scenario with its source, for the report's assumptions table.

The source of a value is the comment the config file gives it (``rate_control = 0.12  # ... [1]``);
a value the file does not set shows the schema's description, which cites its own source, marked
as a default.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from trialsim.config.schema import Scenario

ASSUMPTION_COLUMNS = ["section", "key", "value", "source", "origin"]
# Not clinical assumptions: how to simulate, and the sweep (reported on its own).
_SKIP = {"run", "sweep", "name", "title", "description"}
# Identifiers and display names: no source to cite.
_LABELS = {"name", "label", "unit", "family", "control_name", "treatment_name"}


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


def _walk(model: BaseModel, prefix: str, rows: list[dict], comments: dict[str, str], section: str) -> None:
    for name, field in type(model).model_fields.items():
        if not prefix and name in _SKIP:
            continue
        value = getattr(model, name)
        path = f"{prefix}.{name}" if prefix else name
        top = section or name
        if value is None:
            continue
        if isinstance(value, BaseModel):
            _walk(value, path, rows, comments, top)
        elif isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
            for key, item in value.items():  # named sections, e.g. [endpoints.<id>]
                _walk(item, f"{path}.{key}", rows, comments, f"{path}.{key}")
        elif isinstance(value, tuple) and value and isinstance(value[0], BaseModel):
            for i, item in enumerate(value):
                _walk(item, f"{path}[{i}]", rows, comments, top)
        else:
            if name == "source":
                continue  # shown with its siblings
            source = comments.get(path)
            origin = "config" if path in comments else "default"
            if not source and name in _LABELS:
                source = "label"
            elif not source:
                sibling = getattr(model, "source", "") if hasattr(model, "source") else ""
                source = (sibling + "; " if sibling and origin == "config" else "") + (field.description or "")
            rows.append({"section": top, "key": path, "value": _format(value), "source": source, "origin": origin})


def assumptions_frame(scenario: Scenario, config_text: str | None = None) -> pd.DataFrame:
    """One row per scenario value: section, key path, value, source, origin ("config" or "default")."""
    comments = config_comments(config_text) if config_text else {}
    rows: list[dict] = []
    _walk(scenario, "", rows, comments, "")
    return pd.DataFrame(rows, columns=ASSUMPTION_COLUMNS)


def read_config_text(path: str | Path | None) -> str | None:
    if path is None:
        return None
    p = Path(path)
    return p.read_text(encoding="utf-8") if p.is_file() else None
