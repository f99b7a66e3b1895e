"""A run's tables written without pandas are byte for byte what pandas writes, and read back the same."""
from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import CONFIGS, DEFAULT_CONFIG
from trialsim.api import run
from trialsim.config.loader import load_scenario, with_values
from trialsim.results import POWER_COLUMNS
from trialsim.tabular import as_columns, cells, csv_text, json_records


def _pandas_csv(frame: pd.DataFrame) -> str:
    text = io.StringIO()
    frame.to_csv(text, index=False, lineterminator="\n")
    return text.getvalue()


@pytest.fixture(scope="module")
def results():
    """A single design with decisions, a sweep with swept values, and a design with a flow (per-trial table)."""
    single = run(DEFAULT_CONFIG, n_sims=300, seed=3, n_jobs=1)
    sweep = run(CONFIGS / "cytokine_pilot.toml", n_sims=200, seed=4, n_jobs=1)
    flow = run(with_values(load_scenario(DEFAULT_CONFIG), {"flow": {}}), n_sims=200, seed=5, n_jobs=1)
    return {"single": single, "sweep": sweep, "flow": flow}


def _frame_as_pandas_built_it(result) -> pd.DataFrame:
    """The power table as it was built with pandas before the run wrote it without: the scenarios' rows over
    POWER_COLUMNS, then a left merge of the swept values."""
    frame = pd.DataFrame([r for res in result.results for r in res.power_rows()], columns=POWER_COLUMNS)
    values = pd.DataFrame([{"scenario": r.spec.id, **r.spec.values} for r in result.results])
    if not values.empty and len(values.columns) > 1:
        frame = frame.merge(values, on="scenario", how="left")
    return frame


@pytest.mark.parametrize("which", ["single", "sweep", "flow"])
def test_run_tables_equal_pandas_to_csv(results, which):
    result = results[which]
    assert csv_text(result.power_columns()) == _pandas_csv(_frame_as_pandas_built_it(result))
    assert csv_text(result.power_columns()) == _pandas_csv(result.to_frame())
    assert csv_text(as_columns(result.estimate_rows())) == _pandas_csv(result.estimates_frame())
    if result.decision_rows():
        assert csv_text(as_columns(result.decision_rows(), list(result.decisions_frame().columns))) == _pandas_csv(
            result.decisions_frame())
    if which == "flow":
        assert csv_text(result.flow_columns()) == _pandas_csv(result.flow_frame())
    if which == "sweep":  # the swept key paths are columns of the power table, one value per scenario
        frame = result.to_frame()
        assert len(frame.columns) > len(result.power_rows()[0]) - len(result.results[0].spec.values) > 0
        assert frame.filter(like=".").notna().all().all()


def test_power_json_is_valid_json_at_full_precision(results, tmp_path):
    result = results["single"]
    result.save(tmp_path)
    text = (tmp_path / "power.json").read_text()
    assert "NaN" not in text  # gaps are null, as JSON requires
    rows = json.loads(text)["rows"]
    powers = [float(line.split(",")[6]) for line in (tmp_path / "power.csv").read_text().splitlines()[1:]]
    assert [r["power"] for r in rows] == powers  # the same floats as the CSV, every digit
    assert rows[0]["n_sims"] == 300 and isinstance(rows[0]["n_sims"], int)


# a column as a run's rows hold it: numbers, flags, words and gaps, mixed as they come
_value = st.one_of(
    st.none(), st.just(float("nan")), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=False, allow_infinity=True, width=64), st.text(max_size=6),
)
_columns = st.lists(_value, min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["ints", "floats", "flags", "mixed"]).flatmap(lambda kind: {
    # within int64: beyond it pandas' own choices vary (object, uint64, float64 with quoted gaps); cells() writes
    # such whole numbers as they are (test_numpy_columns_and_gaps)
    "ints": st.lists(st.one_of(st.none(), st.integers(-2**63, 2**63 - 1)), min_size=1, max_size=6),
    "floats": st.lists(st.one_of(st.none(), st.just(float("nan")), st.floats(width=64), st.integers(-99, 99)), min_size=1, max_size=6),
    "flags": st.lists(st.one_of(st.none(), st.booleans()), min_size=1, max_size=6),
    "mixed": _columns,
}[kind]))
def test_any_column_is_written_as_pandas_writes_it(values):
    table = {"a": values, "b": list(range(len(values)))}
    assert csv_text(table) == _pandas_csv(pd.DataFrame(table))


def test_numpy_columns_and_gaps():
    assert cells(np.array([0.1, np.nan, 1e-05, 1e16])) == ["0.1", "", "1e-05", "1e+16"]
    assert cells([356, None]) == ["356.0", ""]  # whole numbers with a gap are floats, as in pandas
    assert cells([True, None]) == ["True", ""]
    assert cells([np.int64(3), 4]) == ["3", "4"]
    assert cells([2**63, 2**64]) == ["9223372036854775808", "18446744073709551616"]  # beyond int64: as written
    assert json_records([{"x": np.float64(math.nan), "y": np.int64(2)}]) == [{"x": None, "y": 2}]
