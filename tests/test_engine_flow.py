"""The flow model linked to the analyses: a deadline or dropout lowers power honestly; jobs-invariant."""
import subprocess
import sys

import numpy as np
import pandas as pd

from tests.conftest import CRP_CONFIG, DEFAULT_CONFIG, ROOT
from trialsim.api import run
from trialsim.config.loader import with_values
from trialsim.results import read_trials

STRONG = {"endpoints.leak_1m.rate_control": 0.3, "endpoints.leak_1m.effect": 0.2, "flow": {}}


def _power(result, endpoint="leak_1m", test="fisher"):
    f = result.to_frame()
    return f[(f.endpoint == endpoint) & (f.test == test) & (f.method == "monte_carlo")].iloc[0]


def test_deadline_shorter_than_enrolment_gives_fewer_patients_and_lower_power(default_scenario):
    open_ended = with_values(default_scenario, STRONG | {"allocation.scheme": "alternating"})
    deadline = with_values(open_ended, {"flow.deadline_days": 90.0})
    a = run(open_ended, n_sims=1_500, seed=4, n_jobs=1)
    b = run(deadline, n_sims=1_500, seed=4, n_jobs=1)
    fa, fb = a.results[0].flow, b.results[0].flow
    assert fa["reached_target"].mean() == 1.0 and fb["reached_target"].mean() < 0.2
    n_a = fa["n_analysable_control"] + fa["n_analysable_treatment"]
    n_b = fb["n_analysable_control"] + fb["n_analysable_treatment"]
    assert n_b.mean() < n_a.mean() - 5
    pa, pb = _power(a), _power(b)
    assert pb.power < pa.power - 3 * np.hypot(pa.mc_se, pb.mc_se)
    # no exact row with a flow: arm sizes are random
    assert set(a.to_frame().method) == {"monte_carlo"}


def test_analysed_counts_follow_the_flow(default_scenario):
    """The leak endpoint is analysed in everyone who attended the visit plus those who died (known from
    the records); the flow's ``n_analysable`` counts visit attenders, so the gap is the deaths (~2%)."""
    sc = with_values(default_scenario, {"flow": {}})
    res = run(sc, n_sims=800, seed=2, n_jobs=1)
    est = res.estimates_frame().set_index(["endpoint", "arm", "statistic"])
    flow = res.results[0].flow
    for arm in ("control", "treatment"):
        analysed = est.loc[("leak_1m", arm, "n_analysable"), "mean"]
        attended = np.mean(flow[f"n_analysable_{arm}"])
        enrolled = np.mean(flow[f"n_enrolled_{arm}"])
        assert attended < analysed < attended + 0.06 * enrolled
        assert est.loc[("colonoscopy_grade", arm, "n_analysable"), "mean"] < attended


def test_flow_results_identical_for_any_jobs(default_scenario):
    sc = with_values(default_scenario, {"flow": {}, "allocation.scheme": "permuted_block", "run.block_size": 100})
    a = run(sc, n_sims=400, seed=8, n_jobs=1, chunk_blocks=1)
    b = run(sc, n_sims=400, seed=8, n_jobs=2, chunk_blocks=2)
    assert a.to_frame().equals(b.to_frame())
    for name, values in a.results[0].flow.items():
        np.testing.assert_array_equal(values, b.results[0].flow[name])


def test_cli_flow_writes_summary_event_log_and_figures(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "trialsim", "flow", str(DEFAULT_CONFIG), "--sims", "300", "--jobs", "1",
                           "--quiet", "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "Time to full enrolment: median" in proc.stdout and "Study duration" in proc.stdout
    assert "allocation sequential" in proc.stdout
    for name in ("flow_summary.csv", "event_log_trial0.csv", "flow_enrolment.png", "flow_duration.svg", "power.csv"):
        assert (tmp_path / name).stat().st_size > 0
    log = (tmp_path / "event_log_trial0.csv").read_text()
    assert "surgery" in log and "enrolled" in log


def test_flow_per_trial_table_identical_for_any_jobs(default_scenario, tmp_path):
    sc = with_values(default_scenario, {"flow": {}, "allocation.scheme": "simple", "run.block_size": 50})
    run(sc, n_sims=200, seed=8, n_jobs=1, chunk_blocks=1, keep_trials=tmp_path / "a")
    run(sc, n_sims=200, seed=8, n_jobs=2, chunk_blocks=3, keep_trials=tmp_path / "b")
    pd.testing.assert_frame_equal(read_trials(tmp_path / "a"), read_trials(tmp_path / "b"))


def test_a_flow_without_a_stay_is_refused_clearly(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "trialsim", "flow", str(CRP_CONFIG), "--sims", "100", "--quiet"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "needs an endpoint that gives the hospital stays" in proc.stderr
