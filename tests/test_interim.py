"""Interim looks in the simulation: group-sequential stopping and harm monitoring.

Statistical checks compare simulated stopping probabilities with the boundaries' crossing probabilities
(recursive integration, itself checked against rpact in test_group_sequential.py), with tolerances of
4 Monte Carlo standard errors.
"""
from __future__ import annotations

import json
import math
import re
import typing

import numpy as np
import pytest
from scipy import integrate, stats

from tests.conftest import CONFIGS, CRP_CONFIG, DEFAULT_CONFIG
from trialsim.api import run
from trialsim.config import interim as interim_config
from trialsim.config.loader import ConfigError, load_scenario, with_values
from trialsim.decide import sequential
from trialsim.planning.model import reduced
from trialsim.simulate import look_sizes

LOOKS = [0.5, 0.75, 1.0]
N_ARM = 100
LOG_SD = 0.6


def crp(effect: float, **interim) -> object:
    """The CRP trial, 100 vs 100 in blocks of 4, no covariate shift or missing values: the Welch t of the log
    CRP is then exactly a t statistic and the looks' z statistics have (nearly) the canonical joint law."""
    base = load_scenario(CRP_CONFIG)
    return with_values(base, {
        "design.n_control": N_ARM, "design.n_treatment": N_ARM, "endpoints.crp_pod3.effect": effect,
        "endpoints.crp_pod3.covariate_effects": {}, "endpoints.crp_pod3.p_missing": 0.0, "follow_up.p_death": 0.0,
        "follow_up.p_missing_visit": 0.0, "interim": {"looks": LOOKS, "test": "welch_log"} | interim})


def outcomes(result) -> dict[str, tuple[float, float]]:
    f = result.decisions_frame()
    return {row.outcome: (row.mean, row.mc_se) for row in f.itertuples() if row.rule == "group_sequential"}


def close(simulated: tuple[float, float], expected: float, n: int) -> bool:
    se = max(simulated[1], math.sqrt(expected * (1 - expected) / n), 1 / n)
    return abs(simulated[0] - expected) < 4 * se


@pytest.mark.slow
@pytest.mark.parametrize("futility", [{"z": [0.0, 0.0]}, {"kind": "conditional_power", "conditional_power": 0.2}])
def test_type_one_error_and_stops_per_look_match_the_boundaries_under_the_null(futility):
    n = 20_000
    sc = crp(1.0, futility=futility)
    res = run(sc, n_sims=n, seed=11, n_jobs=1)
    got = outcomes(res)
    bounds = sequential.design_bounds(sc.interim, sc.design.alpha)
    assert bounds.alpha == 0.025  # half the design's two-sided 0.05
    # futility ignored: the type I error the non-binding design guarantees, alpha
    assert close(got["reject_nonbinding"], 0.025, n)
    as_run = bounds.crossing()
    assert close(got["reject"], as_run.total_upper, n)
    for k in range(3):
        assert close(got[f"stop_efficacy_look{k + 1}"], as_run.upper[k], n)
    for k in range(2):
        assert close(got[f"stop_futility_look{k + 1}"], as_run.lower[k], n)
    if "z" in futility:  # under the null half the trials stop for futility at the first look (z < 0)
        assert got["stop_futility_look1"][0] == pytest.approx(0.5, abs=0.02)
    sizes = look_sizes(LOOKS, 2 * N_ARM)
    stop = np.append(as_run.upper[:2] + as_run.lower[:2], 1 - (as_run.upper[:2] + as_run.lower[:2]).sum())
    assert got["patients"][0] == pytest.approx(float(stop @ sizes), abs=4 * got["patients"][1])


@pytest.mark.slow
def test_power_and_expected_size_under_the_planned_effect():
    n = 5_000
    sc = crp(0.75)
    got = outcomes(run(sc, n_sims=n, seed=12, n_jobs=1))
    bounds = sequential.design_bounds(sc.interim, sc.design.alpha)
    # expected final z: |log 0.75| / (log-SD sqrt(2 / n per arm)); the t statistic's heavier tails at the first
    # look (df ~ 98) lower it by well under 1 percentage point
    drift = abs(math.log(0.75)) / (LOG_SD * math.sqrt(2 / N_ARM))
    theory = bounds.crossing(drift)
    for k in range(3):
        assert abs(got[f"stop_efficacy_look{k + 1}"][0] - theory.upper[k]) < 4 * got[f"stop_efficacy_look{k + 1}"][1] + 0.01
    assert got["patients"][0] < 2 * N_ARM - 20
    assert got["patients"][0] == pytest.approx(2 * N_ARM * theory.expected_fraction(bounds.fractions), abs=3.0)
    # the planned effect lowers CRP: with benefit = "higher" the same trials would never stop for efficacy
    wrong = outcomes(run(crp(0.75, benefit="higher"), n_sims=500, seed=12, n_jobs=1))
    assert wrong["reject"][0] == 0.0


@pytest.mark.slow
def test_binary_endpoint_at_200_per_arm_keeps_alpha():
    # chi-square (z) test of a 15% rate at 200 per arm: close to normal, so the OBF-type design keeps alpha
    n = 10_000
    base = load_scenario(CRP_CONFIG)
    sc = with_values(base, {
        "design.n_control": 200, "design.n_treatment": 200, "endpoints.ssi_30d.effect": 1.0,
        "endpoints.ssi_30d.tests": ["chi2"], "endpoints.ssi_30d.risk_factors": [], "follow_up.p_missing_visit": 0.0,
        "follow_up.p_death": 0.0, "interim": {"looks": [0.5, 1.0], "endpoint": "ssi_30d"}})
    got = outcomes(run(sc, n_sims=n, seed=13, n_jobs=1))
    assert close(got["reject"], 0.025, n)
    bounds = sequential.design_bounds(sc.interim, sc.design.alpha)
    assert close(got["stop_efficacy_look1"], bounds.crossing().upper[0], n)


def test_first_stop_picks_the_earliest_crossing():
    eff = np.array([[False, False, True, False], [True, False, True, False], [True, True, True, False]])
    fut = np.array([[True, False, False, False], [False, True, False, False], [False, False, False, False]])
    look, efficacy, futility = sequential.first_stop(eff, fut)
    np.testing.assert_array_equal(look, [0, 1, 0, 2])
    np.testing.assert_array_equal(efficacy, [False, False, True, False])
    np.testing.assert_array_equal(futility, [True, True, False, False])


def test_posterior_probability_of_harm_matches_quadrature():
    # P(p_t > p_c) for Beta posteriors, reference by scipy quadrature of f_t(p) F_c(p)
    cases = [(3, 10, 1, 10), (0, 5, 0, 5), (30, 200, 18, 200), (1, 400, 0, 400), (0, 400, 5, 400), (50, 400, 50, 400)]
    got = sequential.prob_treatment_higher(*np.array(cases).T, prior_t=(1.0, 1.0), prior_c=(0.5, 0.5))
    for (x_t, n_t, x_c, n_c), value in zip(cases, got):
        t, c = stats.beta(1 + x_t, 1 + n_t - x_t), stats.beta(0.5 + x_c, 0.5 + n_c - x_c)
        ref, _ = integrate.quad(lambda p: t.pdf(p) * c.cdf(p), 0, 1, points=[t.mean()], limit=400, epsabs=1e-12)
        assert value == pytest.approx(ref, abs=1e-5)
    # equal data and priors: a coin flip
    assert sequential.prob_treatment_higher(4, 20, 4, 20)[()] == pytest.approx(0.5, abs=1e-6)


def harm_scenario(effect: float, method: str, **safety):
    base = load_scenario(CRP_CONFIG)
    return with_values(base, {
        "design.n_control": 100, "design.n_treatment": 100, "endpoints.ssi_30d.effect": effect,
        "endpoints.ssi_30d.risk_factors": [], "follow_up.p_missing_visit": 0.0, "follow_up.p_death": 0.0,
        "safety": {"looks": [0.5, 1.0], "endpoint": "ssi_30d", "method": method} | safety})


def harm_outcomes(result) -> dict[str, tuple[float, float]]:
    f = result.decisions_frame()
    return {row.outcome: (row.mean, row.mc_se) for row in f.itertuples() if row.rule == "harm"}


def test_binomial_harm_stop_at_the_first_review_is_the_exact_binomial_tail():
    n = 4_000
    got = harm_outcomes(run(harm_scenario(1.0, "binomial", reference_rate=0.15, level=0.05), n_sims=n, seed=21, n_jobs=1))
    # 50 treated patients at the first review (blocks of 4 fill both arms equally), SSI rate 15%:
    # stop when P(X >= x | 50, 0.15) <= 0.05, i.e. from the smallest such x on
    x = np.arange(51)
    critical = x[stats.binom.sf(x - 1, 50, 0.15) <= 0.05][0]
    exact = stats.binom.sf(critical - 1, 50, 0.15)
    assert close(got["stop_harm_look1"], exact, n)
    assert got["stop_harm"][0] >= got["stop_harm_look1"][0]


def test_bayes_harm_stops_more_often_under_harm_than_under_the_null():
    n = 2_000
    null = harm_outcomes(run(harm_scenario(1.0, "bayes", threshold=0.95), n_sims=n, seed=22, n_jobs=1))
    harmful = harm_outcomes(run(harm_scenario(2.0, "bayes", threshold=0.95), n_sims=n, seed=22, n_jobs=1))
    assert null["stop_harm"][0] < 0.15
    assert harmful["stop_harm"][0] > null["stop_harm"][0] + 0.4
    assert harmful["patients"][0] < 200


@pytest.mark.slow
def test_look_months_come_from_the_flow():
    sc = with_values(load_scenario(DEFAULT_CONFIG), {
        "flow": {}, "allocation.scheme": "permuted_block", "run.block_size": 100,
        "endpoints.leak_1m.tests": ["chi2"], "interim": {"looks": [0.5, 1.0]}})
    res = run(sc, n_sims=100, seed=3, n_jobs=1)
    got = outcomes(res)
    assert 0 < got["month_look1"][0] < got["month_look2"][0]
    assert got["month_look1"][0] <= got["duration_months"][0] <= got["month_look2"][0]
    # by the halfway look's month more than half the patients are enrolled (the overrun in follow-up), never fewer
    assert got["patients"][0] <= got["patients_enrolled"][0] <= 20
    # the final look is when the last patient's visit is done: no later than the flow's last follow-up
    last = res.results[0].flow["t_last_followup"] / 30.4375
    assert got["month_look2"][0] <= last.mean() + 1e-9


def test_config_names_agree_with_the_rules_and_bad_sections_are_refused():
    assert set(typing.get_args(interim_config.EfficacyKind)) == set(sequential.EFFICACY)
    assert set(typing.get_args(interim_config.Futility.model_fields["kind"].annotation)) == set(sequential.FUTILITY)
    assert set(typing.get_args(interim_config.SafetyConfig.model_fields["method"].annotation)) == set(sequential.HARM_METHODS)
    base = load_scenario(CRP_CONFIG)
    bad = [({"interim": {"looks": [0.5, 0.9]}}, "1.0"),
           ({"interim": {"looks": [0.6, 0.5, 1.0]}}, "increase"),
           ({"interim": {"looks": [0.5, 1.0], "test": "fisher"}}, "interim.test"),
           ({"interim": {"looks": [0.5, 1.0], "futility": {"z": [0.0, 0.0]}}}, "one threshold per interim look"),
           ({"interim": {"looks": [0.01, 1.0]}}, "interim.looks[0]"),
           ({"safety": {"looks": [0.5], "endpoint": "crp_pod3"}}, "binary"),
           ({"safety": {"looks": [0.5], "prior_control": [1.0]}}, "Beta prior")]
    for values, says in bad:
        with pytest.raises(ConfigError, match=says.replace("[", r"\[").replace("]", r"\]")):
            with_values(base, values)


def test_scenarios_without_looks_get_no_look_outcomes():
    res = run(load_scenario(CRP_CONFIG), n_sims=50, seed=1, n_jobs=1)
    assert not {"group_sequential", "harm"} & set(res.decisions_frame().get("rule", []))


def test_shipped_design_configs_load_with_their_looks():
    interim = load_scenario(CONFIGS / "designs" / "interim_leak_400.toml")
    assert interim.interim.looks == [0.5, 0.75, 1.0] and interim.interim.test == "chi2"
    assert 1.0 in interim.sweep.values["endpoints.leak_1m.effect"]  # the null is always run
    safety = load_scenario(CONFIGS / "designs" / "safety_leak_400.toml")
    assert safety.safety.method == "bayes" and safety.interim == interim.interim
    assert 1.0 in safety.sweep.values["endpoints.leak_1m.effect"]


FULL = {"interim": {"looks": [0.5, 1.0], "test": "welch_log", "efficacy": "hsd_spending", "hsd_gamma": -4.0, "alpha": 0.025,
                    "benefit": "lower", "futility": {"kind": "beta_spending", "z": [0.0], "beta": 0.2, "spending": "hsd",
                                                     "hsd_gamma": -2.0, "conditional_power": 0.1, "drift": 2.8}},
        "safety": {"looks": [0.5], "endpoint": "ssi_30d", "method": "binomial", "reference_rate": 0.15, "level": 0.01,
                   "threshold": 0.9, "prior_treatment": [1.0, 1.0], "prior_control": [1.0, 1.0], "min_events": 1}}


def _leaves(node, prefix):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{prefix}.{k}")
    else:
        yield prefix, node
        if isinstance(node, list):
            for i in range(len(node)):
                yield f"{prefix}[{i}]", node[i]


LOOK_KEYS = [k for section, body in FULL.items() for k, _ in _leaves(body, section)]
ODD = [math.nan, math.inf, -math.inf, -1, 0, 0.5, 1, 1.5, 1e308, -1e308, 5e-324, 10**20, True, "x", "", [], [1.0, 2.0],
       [0.5, 0.5, 1.0], {"a": 1}, None]


def _set(raw: dict, key: str, value) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        node = node[part]
    last = parts[-1]
    if "[" in last:
        name, index = last[:-1].split("[")
        node[name][int(index)] = value
    else:
        node[last] = value


@pytest.mark.parametrize("key", LOOK_KEYS)
def test_every_look_key_refuses_odd_values_naming_it_or_runs(key):
    """The look sections' own small fuzz (the CLI fuzz of test_bad_input walks the shipped configs, which have none)."""
    base = with_values(load_scenario(CRP_CONFIG), {"design.n_control": 40, "design.n_treatment": 40})
    kinds = ("z", "beta_spending", "conditional_power") if key.startswith("interim.futility") else ("beta_spending",)
    for kind, value in ((k, v) for k in kinds for v in ODD):
        values = json.loads(json.dumps(FULL))
        values["interim"]["futility"]["kind"] = kind
        _set(values, key, value)
        try:
            sc = with_values(base, values)
        except ConfigError as exc:
            flat = re.sub(r"\[\d+\]", "", str(exc))
            parts = re.sub(r"\[\d+\]", "", key).split(".")
            assert ".".join(parts[:2]) in flat and parts[-1] in flat, (key, value, str(exc))
            continue
        f = run(sc, n_sims=20, seed=1, n_jobs=1).decisions_frame()
        means = f["mean"].to_numpy(dtype=float)
        assert np.all(np.isfinite(means) | f.outcome.str.startswith("month")), (key, value)


def test_look_outcomes_identical_for_any_chunking_and_default_to_the_primarys_first_test():
    sc = with_values(load_scenario(CRP_CONFIG), {
        "run.block_size": 50, "interim": {"looks": [0.5, 1.0], "futility": {"z": [0.0]}},
        "safety": {"looks": [0.5], "endpoint": "ssi_30d", "method": "bayes"}})
    a = run(sc, n_sims=300, seed=5, n_jobs=1, chunk_blocks=1).decisions_frame()
    b = run(sc, n_sims=300, seed=5, n_jobs=1, chunk_blocks=6).decisions_frame()
    assert a.equals(b)
    gs_rows = a[a.rule == "group_sequential"]
    assert set(gs_rows.subject) == {"crp_pod3"} and set(gs_rows.detail) == {"welch_log"}


def test_planning_reductions_drop_the_looks():
    """Sample sizes and curves are searched for the fixed design; the looks name tests that may be reduced away."""
    sc = load_scenario(CONFIGS / "designs" / "safety_leak_400.toml")
    small = reduced(sc, [("il6_serum_mean_log", "welch_log")])
    assert small.interim is None and small.safety is None and small.primary == "il6_serum_mean_log"
