"""The main trial's size over the control rate x the effect (planning.sensitivity) and its table in the report."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import CRP_CONFIG, DEFAULT_CONFIG, ROOT
from trialsim.config.loader import load_scenario, with_values
from trialsim.endpoints.base import BaselineParameter, EffectParameter
from trialsim.planning.model import binary_rates
from trialsim.planning.plan import load_planning, plan
from trialsim.planning.samplesize import exact_power, sample_sizes
from trialsim.planning.sensitivity import SENSITIVITY_COLUMNS, baseline_grid, effect_ladder, size_sensitivity
from trialsim.model import build_model
from trialsim.report.document import build_report, render_markdown
from trialsim.report.tables import build_tables, size_sensitivity_table

FISHER_ONLY = 'endpoints.leak_1m.tests=["fisher"]'


@pytest.fixture(scope="module")
def grid(default_scenario):
    return size_sensitivity(default_scenario, n_max=3000)


def test_the_grid_is_around_the_assumed_values():
    rate = BaselineParameter("endpoints.leak_1m.rate_control", "control rate", 0.12, 1e-4, 0.9999)
    assert baseline_grid(rate) == [0.06, 0.09, 0.12, 0.15, 0.18]
    rr = EffectParameter("endpoints.leak_1m.effect", "risk ratio", "ratio", 1.0, 0.5)
    assert effect_ladder(rr) == [0.33, 0.4, 0.5, 0.6, 0.7]
    odds = EffectParameter("endpoints.x.treatment_odds_ratio", "odds ratio", "ratio", 1.0, 2.0, benefit=1.0)
    assert effect_ladder(odds) == [1.4, 1.7, 2.0, 2.5, 3.0]
    difference = EffectParameter("endpoints.x.effect", "risk difference", "difference", 0.0, -0.06, lower=-0.5, upper=0.5)
    assert effect_ladder(difference) == [-0.12, -0.09, -0.06, -0.045, -0.03]
    assert effect_ladder(EffectParameter("endpoints.x.effect", "treatment rate", "rate", 0.12, 0.06)) == []
    # no column next to a near-equal one, neighbours within a factor of two, rates near 1 moved both ways
    assert effect_ladder(EffectParameter("endpoints.x.effect", "risk ratio", "ratio", 1.0, 0.333)) == [0.25, 0.333, 0.4, 0.5]
    assert effect_ladder(EffectParameter("endpoints.x.effect", "risk ratio", "ratio", 1.0, 0.05)) == [0.05]
    odd = EffectParameter("endpoints.x.effect", "risk difference", "difference", 0.0, -0.0625, lower=-0.5, upper=0.5)
    assert effect_ladder(odd) == [-0.12, -0.094, -0.0625, -0.047, -0.031]
    assert baseline_grid(BaselineParameter("p", "control rate", 0.9, 1e-4, 0.9999)) == [0.85, 0.88, 0.9, 0.925, 0.95]
    assert effect_ladder(EffectParameter("endpoints.x.effect", "risk ratio", "ratio", 1.0, 1.0)) == []


def test_the_design_cell_is_the_reports_sample_size(default_scenario, grid):
    assert list(grid.columns) == SENSITIVITY_COLUMNS and len(grid) == 25
    own = grid[grid["assumed"]]
    assert len(own) == 1 and own["baseline"].item() == 0.12 and own["effect"].item() == 0.5
    alone = sample_sizes(default_scenario, endpoint="leak_1m", test=own["test"].item(), power=(0.8,), simulate=False,
                         n_max=3000).to_frame().iloc[0]
    for key in ("n", "n_treatment", "n_enrolled", "n_enrolled_treatment", "p_control", "p_treatment", "method"):
        assert own[key].item() == alone[key], key


def test_each_cell_is_the_design_at_those_values(default_scenario, grid):
    """A cell: the scenario with its control rate and effect set, its exact power at n on target and below at n - 1
    (Fisher's power saw-tooths, but the stable n has power at or above target from n on and below it just before)."""
    cell = grid[(grid["baseline"] == 0.09) & (grid["effect"] == 0.6)].iloc[0]
    changed = with_values(default_scenario, {"endpoints.leak_1m.rate_control": 0.09, "endpoints.leak_1m.effect": 0.6})
    law = binary_rates(build_model(changed), "leak_1m")
    assert (cell["p_control"], cell["p_treatment"]) == (law.p_control, law.p_treatment)
    n = int(cell["n"])
    assert exact_power("fisher", law.p_control, law.p_treatment, n, n, alpha=0.05) >= 0.8
    assert exact_power("fisher", law.p_control, law.p_treatment, n - 1, n - 1, alpha=0.05) < 0.8
    assert cell["n_enrolled"] == int(np.ceil(n / (1 - cell["dropout"])))


def test_sizes_fall_with_a_higher_control_rate_and_a_stronger_effect(grid):
    table = grid.pivot(index="baseline", columns="effect", values="n")
    assert (np.diff(table.to_numpy(), axis=0) < 0).all()  # down the rows: higher control rates
    assert (np.diff(table.to_numpy(), axis=1) > 0).all()  # across: weaker effects (risk ratios towards 1)


def test_cells_beyond_the_limit_or_out_of_range(default_scenario):
    frame = size_sensitivity(default_scenario, baselines=[0.06, 0.98], effects=[0.7], n_max=500)
    assert list(frame["baseline"]) == [0.06]  # 0.98 is no valid control rate with this grade split: left out
    assert not frame["reachable"].item() and frame["n_max"].item() == 500


def test_a_primary_without_a_control_rate_or_an_exact_answer_has_no_grid():
    assert size_sensitivity(load_scenario(CRP_CONFIG)).empty
    # allocation on the patients' covariates: no exact answer, and a simulated search per cell is not run
    assert size_sensitivity(load_scenario(DEFAULT_CONFIG.parent / "designs" / "registered_selection.toml")).empty


def test_the_table_marks_the_design_even_out_of_reach_and_keeps_rare_rates_apart(default_scenario):
    rare = with_values(default_scenario, {"endpoints.leak_1m.rate_control": 0.001})
    table = size_sensitivity_table(size_sensitivity(rare, effects=[0.5], n_max=300), {})
    labels = list(table.frame.iloc[:, 0])
    assert len(set(labels)) == len(labels) == 5, labels
    assert table.cell("0.001", "risk ratio 0.5") == "> 300 *"


def test_the_report_shows_the_grid_and_marks_the_design(tmp_path):
    res = plan(DEFAULT_CONFIG, overrides=(FISHER_ONLY,),
               parts=("run", "samplesize"), power=(0.8,), n_sims=500, seed=3, n_jobs=1, n_max=800, simulate=False)
    frame = res.frame("size_sensitivity")
    assert len(frame) == 25 and frame["assumed"].sum() == 1
    table = build_tables(res)["size_sensitivity"]
    assert table.cell("0.12", "risk ratio 0.5").endswith(" *")
    assert table.cell("0.06", "risk ratio 0.7") == "> 800"
    assert table.cell("0.12", "risk ratio 0.5").split(" ")[0] == f"{int(frame[frame['assumed']]['n'].item()):,}"
    text = render_markdown(build_report(res, []))
    assert "Patients per arm a main trial would need for 80% power" in text
    res.save(tmp_path / "saved")
    back = load_planning(tmp_path / "saved", complete=False)
    pd.testing.assert_frame_equal(back.frame("size_sensitivity"), frame, check_dtype=False)
    # a folder written before the grid existed lists no such frame: its report has no such table, and says so nowhere
    del back.frames["size_sensitivity"]
    assert "size_sensitivity" not in build_tables(back)
    assert "Patients per arm a main trial" not in render_markdown(build_report(back, []))


def test_the_command_line_prints_and_writes_the_grid(tmp_path):
    out = tmp_path / "sizes"
    done = subprocess.run([sys.executable, "-m", "trialsim", "samplesize", str(DEFAULT_CONFIG), "--set", FISHER_ONLY,
                           "--sensitivity", "--n-max", "800", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "Patients per arm a main trial would need for 80% power" in done.stdout
    assert "367 (379) *" in done.stdout and "> 800" in done.stdout
    written = pd.read_csv(out / "size_sensitivity.csv")
    assert len(written) == 25 and written["assumed"].sum() == 1
    refused = subprocess.run([sys.executable, "-m", "trialsim", "samplesize", str(DEFAULT_CONFIG), "--endpoint",
                              "il6_drain_mean_log", "--sensitivity"], capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode == 2 and "--sensitivity is for the primary endpoint (leak_1m)" in refused.stderr
    assert "Traceback" not in refused.stderr
