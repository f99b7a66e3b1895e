"""Tables without pandas: rows (dicts) as columns, as CSV text and as JSON records.

A run writes its own tables (power.csv, estimates.csv, decisions.csv, flow_trials.csv) from here, so that
``trialsim run`` never imports pandas, which was a quarter of its start-up. The CSV is byte for byte what
``pandas.DataFrame(rows).to_csv(path, index=False)`` writes on Linux (a test holds the two together):

* a column's type is inferred as pandas infers it: whole numbers with a gap become floats (``356.0``),
  flags with a gap stay objects (``True`` beside an empty cell), numbers mixed with text print as text;
* floats print in their shortest round-trip form (``0.1``, ``1e-05``), through the same NumPy conversion pandas uses;
* gaps (None, NaN) are empty cells; lines end in ``\\n`` on every system.
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np


def _missing(v) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and math.isnan(v))


def _is_bool(v) -> bool:
    return isinstance(v, (bool, np.bool_))


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not _is_bool(v)


def _is_number(v) -> bool:
    return _is_int(v) or isinstance(v, (float, np.floating))


def _names(rows: Sequence[Mapping], columns: Iterable[str] | None) -> list[str]:
    """The given columns, else every key of ``rows`` in the order it first appears."""
    return list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))


def as_columns(rows: Sequence[Mapping], columns: Iterable[str] | None = None) -> dict[str, list]:
    """``rows`` as ``{column: values}`` over :func:`_names`; a key a row lacks is a gap (None)."""
    return {c: [r.get(c) for r in rows] for c in _names(rows, columns)}


def cells(values: Sequence | np.ndarray) -> list[str]:
    """The CSV cells of one column, as pandas writes the column it would infer from ``values``."""
    if not isinstance(values, np.ndarray):
        present = [v for v in values if not _missing(v)]
        whole = len(present) == len(values)
        if present and whole and all(_is_bool(v) for v in present):
            values = np.array(values, dtype=bool)
        elif present and whole and all(_is_int(v) for v in present):  # any size (pandas: int64, uint64 or object)
            return [str(int(v)) for v in values]
        elif all(_is_number(v) for v in present):  # floats, or whole numbers with a gap, or only gaps
            values = np.array([np.nan if _missing(v) else float(v) for v in values], dtype=float)
        else:
            return ["" if _missing(v) else str(v) for v in values]
    if values.dtype.kind == "f":
        out = values.astype(str)
        out[np.isnan(values)] = ""
        return out.tolist()
    if values.dtype.kind in "biu":
        return values.astype(str).tolist()
    return ["" if _missing(v) else str(v) for v in values.tolist()]


def csv_text(table: Mapping[str, Sequence | np.ndarray]) -> str:
    """``{column: values}`` (lists or NumPy arrays of one length) as CSV text with a header line."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(list(table))
    writer.writerows(zip(*(cells(v) for v in table.values())))
    return text.getvalue()


def _plain(v):
    """A JSON value: NumPy scalars as Python ones, NaN and infinities as null."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def json_records(rows: Sequence[Mapping], columns: Iterable[str] | None = None) -> list[dict]:
    """``rows`` as JSON-ready records over the same columns (gaps as null, numbers at full precision)."""
    names = _names(rows, columns)
    return [{c: _plain(r.get(c)) for c in names} for r in rows]
