"""TOML file -> validated, frozen :class:`Scenario`; overrides; errors that name the key; TOML out.

This is the only module that handles raw dictionaries. Everything downstream receives a frozen
``Scenario``.
"""
from __future__ import annotations

import copy
import datetime
import hashlib
import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from trialsim.config.schema import Scenario


class ConfigError(ValueError):
    """A config value is malformed or out of range. The message names key path, value and what is allowed."""


# ---------------------------------------------------------------------------------------------- paths
def split_path(path: str) -> list[str | int]:
    """``"population.risk_factors[2].odds_ratio"`` or ``...risk_factors.2...`` -> ``[..., 2, ...]``."""
    parts: list[str | int] = []
    for token in path.replace("[", ".").replace("]", "").split("."):
        if token == "":
            raise ConfigError(f"malformed key path {path!r}: empty part")
        parts.append(int(token) if token.isascii() and token.isdigit() else token)
    return parts


def format_path(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Key path -> value of a raw config (:func:`to_raw`), paths as :func:`split_path` reads them: an array of
    tables by item (``endpoints.cytokines.markers[0].median``); a value that is not set (None) is left out."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(node, list) and node and all(isinstance(item, dict) for item in node):
        out = {}
        for i, item in enumerate(node):
            out.update(flatten(item, f"{prefix}[{i}]"))
        return out
    return {} if node is None else {prefix: node}


def set_path(raw: dict, path: str, value: Any) -> None:
    """Set ``value`` at ``path`` in a nested dict, creating sections as needed."""
    parts = split_path(path)
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise ConfigError(f"key path {path!r}: index [{part}] does not exist at {format_path(parts[:i]) or 'top level'}")
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"key path {path!r}: {format_path(parts[:i])} is a value, not a section")
        if node.get(part) is None:
            node[part] = [] if isinstance(nxt, int) else {}
        node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise ConfigError(f"key path {path!r}: index [{last}] does not exist")
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"key path {path!r}: {format_path(parts[:-1])} is a value, not a section")


def parse_value(text: str) -> Any:
    """Parse an override value as a TOML value (``0.5``, ``[1, 2]``, ``true``, ``"x"``); bare words are strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if text[:1] in ('"', "'", "[", "{"):  # meant as a TOML string, array or table: not a bare word
            raise ConfigError(f"the value {_short_text(text)} is not valid TOML ({exc}); write text as \"text\", "
                              "a list as [1, 2]") from None
        return text
    except RecursionError:  # arrays nested hundreds deep: no config value is
        raise ConfigError(f"the value {_short_text(text)} nests arrays more than {MAX_NESTING} levels deep, which no "
                          "config value does") from None


def _short_text(text: str, width: int = 40) -> str:
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. --set design.n_control=30")
    key, text = item.split("=", 1)
    try:
        return key.strip(), parse_value(text.strip())
    except ConfigError as exc:
        raise ConfigError(f"--set {key.strip()}: {exc}") from None


# ---------------------------------------------------------------------------------------------- errors
def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that owns the section at ``loc`` (for listing allowed keys)."""
    model: Any = Scenario
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        model = _unwrap_model(field.annotation)
        if model is None:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def _describe(err: dict) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in ("function-after", "json-or-python"))))
    path = format_path(loc) or "(top level)"
    value = err.get("input")
    if err["type"] == "extra_forbidden":
        owner = _model_at(loc[:-1])
        allowed = ", ".join(owner.model_fields) if owner else "see `trialsim show`"
        return f"unknown key {path!r} (value {value!r}); allowed keys here: {allowed}"
    msg = err["msg"].removeprefix("Value error, ")
    if isinstance(value, dict):  # a check across several keys of one section
        return msg if not loc else f"section {path!r} is not allowed as given: {msg}"
    shown = json.dumps(value) if isinstance(value, (int, float, str, bool, list)) else repr(value)
    return f"{path} = {shown} is not allowed: {msg}"


def error_from_validation(exc: ValidationError, source: str) -> ConfigError:
    errors = exc.errors()
    # an error inside a list makes its parent fail too ("at least 1 item"): report the inner one only
    locs = [tuple(e["loc"]) for e in errors]
    errors = [e for e, loc in zip(errors, locs) if not any(o != loc and o[: len(loc)] == loc for o in locs)]
    lines = list(dict.fromkeys(_describe(e) for e in errors))
    head = f"invalid config ({source}): "
    if len(lines) == 1:
        return ConfigError(head + lines[0])
    return ConfigError(head + f"{len(lines)} problems:\n  - " + "\n  - ".join(lines))


# ---------------------------------------------------------------------------------------------- loading
MAX_NESTING = 16  # levels of tables and arrays in a config (the shipped ones use 5: endpoints.<id>.markers[0].name)


def _plain(value: Any, path: str, source: str, depth: int = 0) -> Any:
    """``value`` with TOML dates and times as ISO strings; NaN, inf, other types and absurd nesting refused naming
    the key."""
    if depth > MAX_NESTING:
        key = re.sub(r"(\[\d+\])+$", "", path) or "(top level)"
        raise ConfigError(f"invalid config ({source}): {key} nests tables or arrays more than {MAX_NESTING} levels deep, "
                          "which no config value does: give a number, a string or a short list")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"invalid config ({source}): {path or '(top level)'} = {value} is not allowed: "
                          "use a finite number")
    if isinstance(value, (datetime.datetime, datetime.time)):  # no key takes a time of day: a slip for a date or text
        kind = "date and time" if isinstance(value, datetime.datetime) else "time of day"
        raise ConfigError(f"invalid config ({source}): {path or '(top level)'} = {value.isoformat()} is a TOML {kind}, "
                          "which no key takes: write a date as 2024-08-31, and text in quotes")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v, f"{path}.{k}" if path else str(k), source, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{path}[{i}]", source, depth + 1) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(f"invalid config ({source}): {path or '(top level)'} = {value!r} is not allowed: only strings, "
                      "numbers, booleans, dates, lists and tables")


def validate(raw: dict, *, source: str = "config") -> Scenario:
    """Validate a raw dict (as read from TOML) into a frozen :class:`Scenario`."""
    return _validate_plain(_plain(raw, "", source), source)


def _validate_plain(raw: dict, source: str) -> Scenario:
    """:func:`validate` of a raw dict already made of JSON values (:func:`_plain`)."""
    text = json.dumps(raw, allow_nan=False)
    try:
        return Scenario.model_validate_json(text)
    except ValidationError as exc:
        raise error_from_validation(exc, source) from None


def read_toml(path: str | Path) -> dict:
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {str(p)!r} is a folder: give a TOML file such as configs/exosome_lar_20.toml")
    if p.exists() and not p.is_file():
        raise ConfigError(f"config file {str(p)!r} is not a regular file (a device or a pipe): give a TOML file")
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist (expected a TOML file such as configs/exosome_lar_20.toml)")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8-sig"))  # a byte-order mark (some editors write one) is not TOML
    except OSError as exc:  # unreadable: permissions, or a special file such as /proc/self/mem
        raise ConfigError(f"config file {str(p)!r} cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config file {str(p)!r} nests tables or arrays hundreds of levels deep, which no config "
                          f"value does (at most {MAX_NESTING} are read)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(p)!r} is not UTF-8 text") from None


def merge(base: dict, changes: dict) -> dict:
    """``changes`` laid over ``base``: tables merge key by key, any other value replaces."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_config(path: str | Path, _seen: tuple[str, ...] = (), _via: str = "") -> dict:
    """A config file as a raw dict, with ``extends = "other.toml"`` (relative to the file) resolved.

    The file's own values are laid over those of the file it extends (tables merge key by key; lists
    and values replace), so a variant of a trial names only what differs.
    """
    p = Path(path)
    try:
        raw = read_toml(p)
    except ConfigError as exc:  # the file an `extends` names: say which key of which file named it
        raise ConfigError(f"{_via}: {exc}" if _via else str(exc)) from None
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ConfigError(f"config file {str(p)!r}: extends = {parent!r} must be a file name (a string)")
    via = f"config file {str(p)!r}: extends = {parent!r}"
    if not parent.strip() or any(ord(c) < 32 or ord(c) == 127 for c in parent):
        raise ConfigError(f"{via} is not allowed: give the path of a TOML file, without control characters")
    target = (p.parent / parent).resolve()
    if str(target) in _seen:
        raise ConfigError(f"{via} makes a cycle")
    return merge(read_config(target, _seen + (str(p.resolve()),), via), raw)


def load_scenario(path: str | Path, overrides: Iterable[str] = ()) -> Scenario:
    """Read, override (``["endpoints.<id>.effect=0.7", ...]``) and validate a scenario file."""
    raw = read_config(path)
    pairs = [parse_override(item) for item in overrides]
    _check_new_endpoints(raw, [key for key, _ in pairs], path)
    for key, value in pairs:
        set_path(raw, key, value)
    return validate(raw, source=str(path))


def _check_new_endpoints(raw: dict, keys: list[str], path: str | Path) -> None:
    """An override into an endpoint the config does not declare is a typo of an id, unless it also sets the new
    section's family (then it adds an endpoint): say so, with the declared ids."""
    declared = raw.get("endpoints") if isinstance(raw.get("endpoints"), dict) else {}
    added: dict[str, set] = {}
    for key in keys:
        parts = split_path(key)
        if len(parts) >= 3 and parts[0] == "endpoints" and isinstance(parts[1], str) and parts[1] not in declared:
            added.setdefault(parts[1], set()).add(parts[2])
    for cid, fields in added.items():
        if "family" not in fields:
            raise ConfigError(f"--set endpoints.{cid}...: {cid!r} is not an endpoint of {str(path)!r} (declared: "
                              f"{', '.join(declared) or 'none'}); to add an endpoint, also set endpoints.{cid}.family")


def with_values(scenario: Scenario, values: dict[str, Any], *, source: str = "override") -> Scenario:
    """A new validated scenario with ``values`` (key path -> value) replaced."""
    raw = to_raw(scenario)  # JSON values already: only the new values are checked (checking all took 2.5 ms a call)
    for key, value in values.items():
        set_path(raw, key, _plain(copy.deepcopy(value), key, source))
    return _validate_plain(raw, source)


def scenario_of(source: "Scenario | str | Path", overrides: Iterable[str] = ()) -> Scenario:
    """A scenario object or config file, with the overrides (``["key=value", ...]``) applied either way."""
    if not isinstance(source, Scenario):
        return load_scenario(source, overrides)
    pairs = [parse_override(item) for item in overrides]
    if not pairs:
        return source
    _check_new_endpoints(to_raw(source), [key for key, _ in pairs], "the scenario")
    return with_values(source, dict(pairs))


def to_raw(scenario: Scenario) -> dict:
    return json.loads(scenario.model_dump_json())


def config_hash(scenario: Scenario) -> str:
    """Hash of everything that changes the numbers (not parallelism settings)."""
    raw = to_raw(scenario)
    for key in ("n_jobs", "chunk_blocks", "backend", "scheduler", "max_memory_mb", "flow_engine"):
        raw["run"].pop(key, None)
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- TOML out
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value)
        raise ValueError(f"cannot write {value} to TOML")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime.date):  # written as a string, as the loader reads dates
        return json.dumps(value.isoformat())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise ValueError(f"cannot write {value!r} to TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _emit(model: BaseModel, prefix: str, out: list[str]) -> None:
    scalars, tables, arrays = [], [], []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if value is None:
            continue
        if isinstance(value, BaseModel):
            tables.append((name, value))
        elif isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
            tables.extend((f"{name}.{_toml_key(k)}", v) for k, v in value.items())
        elif isinstance(value, tuple) and value and isinstance(value[0], BaseModel):
            arrays.append((name, value))
        else:
            scalars.append((name, field, value))
    for name, field, value in scalars:
        if field.description:
            out.append(f"# {field.description}")
        plain = json.loads(json.dumps(value)) if isinstance(value, dict) else value
        out.append(f"{_toml_key(name)} = {_toml_value(plain)}")
    for name, value in tables:
        out.append("")
        out.append(f"[{prefix}{name}]")
        _emit(value, f"{prefix}{name}.", out)
    for name, items in arrays:
        for item in items:
            out.append("")
            out.append(f"[[{prefix}{name}]]")
            _emit(item, f"{prefix}{name}.", out)


def scenario_to_toml(scenario: Scenario) -> str:
    """The resolved scenario (defaults filled in) as TOML, each key preceded by its description."""
    out: list[str] = ["# trialsim resolved scenario: every key a user can set, with its value and source"]
    _emit(scenario, "", out)
    return "\n".join(out) + "\n"
