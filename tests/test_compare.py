"""`trialsim compare`: each row is what `trialsim run` gives for the design and for its null, on one seed."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import CRP_CONFIG, DEFAULT_CONFIG, ROOT
from tests.test_report import planned
from trialsim.api import run
from trialsim.cli import main
import trialsim.planning.compare as compare_module
import trialsim.report.compare as report_compare
from trialsim.config.loader import ConfigError, with_values
from trialsim.labels import NOT_COMPUTABLE_METHOD
from trialsim.planning.compare import COMPARE_COLUMNS, compare, design_label, load_comparison
from trialsim.planning.plan import null_scenario
from trialsim.report.compare import comparison_text
from trialsim.report.document import build_report

SIMS = 400


@pytest.fixture(scope="module")
def designs(default_scenario):
    randomised = with_values(default_scenario, {"allocation.scheme": "permuted_block", "design.n_control": 30,
                                                "design.n_treatment": 30, "design.label": "randomised 30:30 blocks"})
    return [default_scenario, randomised]


@pytest.fixture(scope="module")
def comparison(designs):
    return compare(designs, n_sims=SIMS, seed=7, n_jobs=1, flow_sims=200)


def _row(frame, endpoint, test, method):
    r = frame[(frame.endpoint == endpoint) & (frame.test == test) & (frame.method == method)]
    assert len(r) == 1
    return r.iloc[0]


def test_each_row_is_the_runs_power_and_the_nulls_rejection_rate(designs, comparison):
    frame = comparison.frame
    assert list(frame.columns) == COMPARE_COLUMNS and len(frame) == 2
    for sc, row in zip(designs, frame.itertuples()):
        planned = run(sc, n_sims=SIMS, seed=7, n_jobs=1).to_frame()
        null = run(null_scenario(sc), n_sims=SIMS, seed=7, n_jobs=1).to_frame()
        method = row.power_method
        assert row.power == _row(planned, row.endpoint, row.test, method).power
        assert row.type_i == _row(null, row.endpoint, row.test, row.type_i_method).power
        judged = _row(planned, row.endpoint, row.estimate_test, "monte_carlo")
        assert row.bias == judged.bias and row.coverage == judged.coverage and row.ci_width == judged.ci_width
        assert row.patients == sc.design.n_control + sc.design.n_treatment and row.treated == sc.design.n_treatment


def test_the_registered_design_cannot_tell_an_effect_from_none(comparison):
    registered = comparison.frame.iloc[0]
    # exact Fisher at 10 vs 10: the rejection rate is about 0.37% with the assumed halving of leaks and with none
    assert registered.power_method == registered.type_i_method == "exact"
    assert registered.power == pytest.approx(0.0037, abs=0.0005)
    assert abs(registered.power - registered.type_i) < 0.001
    assert registered.design == "registered 10:10 non-randomised" and not registered.randomised


def test_one_estimate_is_judged_on_one_scale_in_every_design(comparison):
    frame = comparison.frame
    assert frame.estimate_test.nunique() == 1
    assert np.isfinite(frame.bias).all() and (frame.coverage > 0.8).all()


def test_duration_comes_from_the_flow_defaults_and_grows_with_patients(comparison):
    frame = comparison.frame
    assert (frame.duration_source == "flow defaults").all()
    assert frame.duration_months.iloc[1] > frame.duration_months.iloc[0] > 0


def test_saved_files_read_back_and_the_table_names_every_design(comparison, tmp_path):
    paths = comparison.save(tmp_path)
    assert {p.name for p in paths} == {"compare.csv", "compare.json", "compare.png", "compare.svg"}
    back = load_comparison(tmp_path)
    pd.testing.assert_frame_equal(back[["design", "power", "type_i"]], comparison.frame[["design", "power", "type_i"]])
    text = comparison_text(back)
    assert "registered 10:10 non-randomised" in text and "randomised 30:30 blocks" in text


def test_designs_with_one_label_are_refused(default_scenario):
    with pytest.raises(ConfigError, match="share the label"):
        compare([default_scenario, default_scenario], n_sims=10, seed=1, n_jobs=1)
    assert design_label(with_values(default_scenario, {"design.label": ""})) == "non-randomised 10:10 sequential"


def test_cli_compare_prints_the_table_and_refuses_a_missing_config(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "trialsim", "compare", *map(str, args)], capture_output=True, text=True,
                              cwd=ROOT)

    proc = cli(DEFAULT_CONFIG, "--set", "design.label=registered", "--sims", "200", "--seed", "3", "--jobs", "1",
               "--quiet", "--out", tmp_path / "cmp")
    assert proc.returncode == 0, proc.stderr
    assert "registered" in proc.stdout and "(exact)" in proc.stdout and (tmp_path / "cmp" / "compare.png").is_file()
    bad = cli(tmp_path / "nope.toml", "--sims", "10")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_the_report_gains_a_choosing_a_design_section(comparison, tmp_path):
    report = build_report(planned(DEFAULT_CONFIG), [], comparison=comparison.frame, figure_dir=tmp_path)
    titles = [s.title for s in report.sections]
    assert "Choosing a design" in titles
    assert titles.index("Choosing a design") == titles.index("Power and type I error at the planned design") + 1
    table = report.tables["designs"]
    assert list(table.frame["Design"]) == list(comparison.frame.design)
    assert (tmp_path / "compare.png").is_file()
    assert "Choosing a design\" below shows what randomised alternatives would change" in report.all_text()


def test_a_group_sequential_design_is_compared_by_its_rule_and_its_harm_reviews(default_scenario):
    looks = with_values(default_scenario, {
        "design.n_control": 60, "design.n_treatment": 60, "design.label": "60:60 with looks",
        "allocation.scheme": "permuted_block", "allocation.block_size": 2,
        "endpoints.leak_1m.tests": ["chi2", "fisher"],
        "interim": {"looks": [0.5, 1.0], "test": "chi2", "benefit": "lower", "efficacy": "obf_spending"},
        "safety": {"looks": [0.5], "method": "bayes", "threshold": 0.99, "min_events": 2}})
    row = compare([looks], n_sims=SIMS, seed=5, n_jobs=1, flow_sims=100).frame.iloc[0]
    planned = run(looks, n_sims=SIMS, seed=5, n_jobs=1).decisions_frame()
    null = run(null_scenario(looks), n_sims=SIMS, seed=5, n_jobs=1).decisions_frame()

    def mean(frame, rule, outcome):
        return frame[(frame.rule == rule) & (frame.outcome == outcome)]["mean"].iloc[0]

    assert row.power_method == row.type_i_method == "group_sequential" and row.test == "chi2"
    assert row.power == mean(planned, "group_sequential", "reject")
    assert row.type_i == mean(null, "group_sequential", "reject_nonbinding")
    assert row.patients == mean(planned, "group_sequential", "patients") <= 120
    assert row.treated == row.patients / 2
    assert row.p_stop_harm == mean(planned, "harm", "stop_harm") and row.p_stop_harm_null == mean(null, "harm", "stop_harm")


def test_a_rate_no_trial_could_compute_reads_not_computable_not_0_percent():
    """compare printed "0.00% ± 0.00%" for a design whose 4-day deadline left no analysable patient."""
    frame = pd.DataFrame([{"endpoint": "leak_1m", "test": "fisher", "method": "monte_carlo", "power": 0.0, "mc_se": 0.0,
                           "n_valid": 0, "n_sims": 200}])
    power, se, method, _ = compare_module._rate(frame, "leak_1m", "fisher")
    assert np.isnan(power) and np.isnan(se) and method == NOT_COMPUTABLE_METHOD
    assert report_compare._rate(power, se, method) == "not computable (n_valid 0)"
    assert report_compare._rate(0.0, 0.0, "monte_carlo") == "0.00% \u00b1 0.00%"


def test_a_config_without_stays_is_compared_without_a_duration_and_flow_says_why(capsys):
    """configs/crp_randomised_30.toml has no length of stay for the flow's beds: compare once failed with "a [flow]
    needs an endpoint that gives the hospital stays"; it now compares it without its Months, saying so."""
    result = compare([CRP_CONFIG], n_sims=200, seed=1, n_jobs=1)
    row = result.frame.iloc[0]
    assert np.isnan(row.duration_months) and row.duration_source == report_compare.NO_DURATION
    assert "Months: none for" in comparison_text(result.frame)
    assert main(["flow", str(CRP_CONFIG), "--sims", "10"]) == 2
    err = capsys.readouterr().err
    assert "trialsim flow cannot run 'crp_randomised_30': a [flow] needs an endpoint that gives the hospital stays" in err
