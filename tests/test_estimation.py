"""Estimation performance from the decision layer: bias, RMSE and interval coverage against the true effect.

Tolerances come from the Monte Carlo standard errors the results carry (4 SE).
"""
from __future__ import annotations

import numpy as np
import pytest

from trialsim.api import run
from trialsim.config.loader import load_scenario, read_config, validate

DEFAULT = "configs/exosome_lar_20.toml"


def _row(frame, endpoint, test):
    rows = frame[(frame.endpoint == endpoint) & (frame.test == test) & (frame.method == "monte_carlo")]
    assert len(rows) == 1
    return rows.iloc[0]


@pytest.fixture(scope="module")
def default_run():
    return run(load_scenario(DEFAULT), n_sims=40_000, seed=11).to_frame()


def test_risk_difference_unbiased_against_the_exact_law(default_run):
    """The sample risk difference is unbiased for p_t - p_c of the family's exact law."""
    r = _row(default_run, "leak_1m", "chi2")
    assert r.estimand == "risk difference"
    assert r.true_effect == pytest.approx(-0.062089, abs=1e-6)  # rates found at the visit among assessed patients
    assert abs(r.bias) < 4 * r.bias_se
    # Newcombe's hybrid score interval is near nominal (it is not exact): within a point of 95%
    assert 0.94 < r.coverage < 0.999


def test_log_ratio_of_a_linked_marker_unbiased(default_run):
    """A marker raised by leaks: the Welch estimate of the log GMR is unbiased for the family's truth."""
    for name in ("il6_drain_mean_log", "il6_serum_pod1", "tnf_drain_pod5"):
        r = _row(default_run, name, "welch_log")
        assert r.estimand == "ratio of geometric means"
        assert abs(r.bias) < 4 * r.bias_se, name
        # Welch's interval on (nearly) normal logs covers at about its nominal level
        assert abs(r.coverage - 0.95) < 4 * r.coverage_se + 0.005, name


def _plain(n: int, effect: float, scale: str = "log") -> dict:
    return {
        "name": "plain", "design": {"n_control": n, "n_treatment": n}, "allocation": {"scheme": "permuted_block"},
        "endpoints": {"crp": {"family": "plain_continuous", "scale": scale, "mean_control": 120.0, "sd": 0.6,
                              "effect": effect, "tests": ["welch_log", "mann_whitney"]}},
        "follow_up": {"p_missing_visit": 0.0, "p_death": 0.0},
    }


@pytest.mark.parametrize("effect", [1.0, 0.75])
def test_gmr_bias_and_coverage_exact_model(effect):
    """Log-normal outcome, known GMR: the Welch estimate is unbiased and its interval covers at 95%."""
    res = run(validate(_plain(15, effect)), n_sims=20_000, seed=5).to_frame()
    r = _row(res, "crp", "welch_log")
    assert r.true_effect == pytest.approx(np.log(effect))
    assert abs(r.bias) < 4 * r.bias_se
    assert abs(r.coverage - 0.95) < 4 * r.coverage_se
    assert r.rmse == pytest.approx(np.sqrt(0.6**2 * 2 / 15), rel=0.05)  # SD of a difference of two means of 15
    if effect == 1.0:
        assert bool(r.null)


def test_null_scenario_is_flagged():
    res = run(validate(_plain(10, 1.0)), n_sims=2_000, seed=5).to_frame()
    assert res["null"].all()
    res = run(validate(_plain(10, 0.8)), n_sims=2_000, seed=5).to_frame()
    assert not res["null"].any()


def test_estimates_table_reports_geometric_mean_ratio_from_mean_log_ratio():
    res = run(validate(_plain(10, 1.0)), n_sims=20_000, seed=3)
    est = res.estimates_frame()
    log_ratio = est[(est.endpoint == "crp") & (est.statistic == "log_ratio")].iloc[0]
    gmr = est[(est.endpoint == "crp") & (est.statistic == "geometric_mean_ratio")].iloc[0]
    assert gmr["mean"] == pytest.approx(np.exp(log_ratio["mean"]))
    # under the null the geometric mean ratio is 1 within Monte Carlo error (a mean of ratios is biased up)
    assert abs(np.log(gmr["mean"])) < 4 * log_ratio["sd"] / np.sqrt(log_ratio["n_estimable"])


def test_raw_config_without_endpoints_is_refused():
    raw = read_config(DEFAULT)
    raw["endpoints"] = {}
    with pytest.raises(ValueError, match="declare at least one endpoint"):
        validate(raw)


def test_exact_conditional_interval_covers_at_least_nominally(default_run):
    """Fisher's exact conditional interval for the odds ratio: coverage >= 95% (within MC error)."""
    for name in ("leak_1m", "colonoscopy_abnormal"):
        r = _row(default_run, name, "fisher")
        assert r.estimand == "odds ratio"
        assert np.isfinite(r.true_effect)
        assert r.coverage >= 0.95 - 3 * r.coverage_se, name


def test_interpolated_t_critical_values_are_as_accurate_as_documented():
    from scipy import special

    from trialsim.analysis.continuous import t_critical_value

    for alpha in (0.05, 0.01, 0.1):
        df = np.concatenate([np.linspace(1.0, 5.0, 2001), np.geomspace(5.0, 1e7, 4001)])
        exact = -special.stdtrit(df, alpha / 2.0)
        rel = np.abs(t_critical_value(df, alpha) / exact - 1.0)
        assert rel[df < 5.0].max() < 2e-5 and rel[df >= 5.0].max() < 1e-6, alpha
    odd = t_critical_value(np.array([0.5, np.nan]), 0.05)
    assert odd[0] == pytest.approx(-special.stdtrit(0.5, 0.025)) and np.isnan(odd[1])
