"""Simulated patients reproduce their configured laws: covariate risk, the graded event, and what is observed.

Drawn through the engine's own batch (population -> allocation -> outcomes -> follow-up -> observed).
The markers, the ordinal grade and the duration have their own family tests (tests/test_family_*.py);
here are the event family (``binary_event``, the leak) and the covariate risk model it shares with
``plain_binary``, and the exact laws of the registered trial's binary endpoints against simulation.
"""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special

from trialsim.config.loader import with_values
from trialsim.endpoints.binary_event import arm_rates
from trialsim.endpoints.risk import RiskFactor, calibrate_intercept, patient_risk
from trialsim.model import build_model
from trialsim.population import draw_covariates
from trialsim.rng import Streams
from trialsim.simulate import simulate_trials

N = 200_000


def test_intercept_calibration_gives_the_marginal_rate_exactly(default_scenario):
    model = build_model(default_scenario)
    leak = default_scenario.endpoints["leak_1m"]
    covariates = draw_covariates(default_scenario.population, N, 1, streams=Streams(3, 0))
    treated = np.zeros((N, 1), dtype=bool)
    for rate in (0.02, 0.16, 0.6):
        risk = patient_risk(leak.risk_factors, covariates, model.prevalence, treated, rate, rate)
        se = np.sqrt(rate * (1 - rate) / N)
        assert abs(risk.mean() - rate) < 4 * se + 0.002  # risk is averaged over a sample of covariates
    # the expectation over all 2^6 covariate patterns is the rate itself (the intercept is solved for it)
    prevalence = tuple(model.prevalence[f.covariate] for f in leak.risk_factors)
    log_or = tuple(float(np.log(f.odds_ratio)) for f in leak.risk_factors)
    patterns = np.array(np.meshgrid(*[[0, 1]] * len(prevalence))).reshape(len(prevalence), -1).T
    weights = np.prod(np.where(patterns == 1, prevalence, 1 - np.array(prevalence)), axis=1)
    b0 = calibrate_intercept(prevalence, log_or, 0.16)
    assert weights @ (1 / (1 + np.exp(-(b0 + patterns @ np.array(log_or))))) == pytest.approx(0.16, abs=1e-12)
    # risk factors matter: males have higher risk than females
    risk = patient_risk(leak.risk_factors, covariates, model.prevalence, treated, 0.16, 0.16)[:, 0]
    male = covariates["male"][:, 0] == 1
    assert risk[male].mean() > 1.5 * risk[~male].mean()
    assert np.isfinite(calibrate_intercept(prevalence, log_or, 0.999))
    one = (RiskFactor(covariate="male", odds_ratio=1.0),)
    assert calibrate_intercept((0.62,), (0.0,), 0.3) == pytest.approx(np.log(0.3 / 0.7))
    assert patient_risk(one, covariates, model.prevalence, treated, 0.3, 0.3) == pytest.approx(0.3)


@pytest.mark.parametrize("measure,effect,expected_all", [
    ("risk_ratio", 0.5, 0.08),
    ("odds_ratio", 0.5, 0.16 * 0.5 / (1 - 0.16 + 0.16 * 0.5)),
    ("rate", 0.06, 0.08),
])
def test_effect_measures(default_scenario, measure, effect, expected_all):
    sc = with_values(default_scenario, {"endpoints.leak_1m.effect_measure": measure, "endpoints.leak_1m.effect": effect})
    leak = sc.endpoints["leak_1m"]
    assert arm_rates(leak, "treatment")[0] == pytest.approx(expected_all)
    assert arm_rates(leak, "control")[0] == pytest.approx(0.16)  # 0.12 of grades B/C over 75% of all leaks
    assert arm_rates(leak, "control")[1] == pytest.approx(0.12)
    # found at the visit: B/C, and 10% of the silent grade A
    assert arm_rates(leak, "control")[2] == pytest.approx(0.16 * (0.75 + 0.25 * 0.10))


@pytest.fixture(scope="module")
def big_batch(default_scenario):
    """20,000 simulated trials of the registered design (10 vs 10, sequential): 200,000 patients per arm."""
    return simulate_trials(default_scenario, N // 10, streams=Streams(11, 0), keep_patients=True)


def test_simulated_event_and_endpoint_rates_match_the_law(default_scenario, big_batch):
    model = build_model(default_scenario)
    p = big_batch.patients
    leak = p.latent["leak_1m"]
    for arm, treated in (("control", False), ("treatment", True)):
        in_arm = p.treated == treated
        all_grade = arm_rates(default_scenario.endpoints["leak_1m"], arm)[0]
        n = int(in_arm.sum())
        assert abs(leak["event"][in_arm].mean() - all_grade) < 4 * np.sqrt(all_grade / n)
        for endpoint in ("leak_1m", "colonoscopy_abnormal", "colonoscopy_worse_than_baseline"):
            law = model.binary_law(endpoint, arm)
            x = p.observed[endpoint][in_arm]
            miss = np.isnan(x).mean()
            assert abs(miss - law.p_missing) < 4 * np.sqrt(law.p_missing * (1 - law.p_missing) / n) + 1e-4, endpoint
            rate = np.nanmean(x)
            assert abs(rate - law.p_event) < 4 * np.sqrt(law.p_event * (1 - law.p_event) / n), endpoint
    # grade split among events and the 30-day horizon
    grades = leak["grade"][leak["event"]]
    split = default_scenario.endpoints["leak_1m"].grade_split
    assert np.allclose(np.bincount(grades, minlength=3) / grades.size, split, atol=0.01)
    assert np.nanmax(leak["day"]) <= default_scenario.endpoints["leak_1m"].horizon_days
    assert np.isnan(leak["day"][~leak["event"]]).all() and (leak["grade"][~leak["event"]] == -1).all()
    # silent first-grade events are found with p_detect_first_grade, the others always
    first = leak["event"] & (leak["grade"] == 0)
    assert leak["detected"][leak["event"] & (leak["grade"] > 0)].all()
    assert abs(leak["detected"][first].mean() - 0.10) < 4 * np.sqrt(0.09 / first.sum())


def test_deaths_follow_the_linked_event(default_scenario, big_batch):
    p = big_batch.patients
    event = p.latent["leak_1m"]["event"]
    fu = default_scenario.follow_up
    for with_event, rate in ((True, fu.p_death_after_event), (False, fu.p_death)):
        died = p.follow_up.died[event == with_event]
        assert abs(died.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / died.size)
    # a death is known from the records: the event endpoint is observed, the visit's procedure is not
    dead = p.follow_up.died
    assert not np.isnan(p.observed["leak_1m"][dead]).any()
    assert np.isnan(p.observed["colonoscopy_grade"][dead]).all()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(0.001, 0.999), st.floats(-4.6, 4.6)), min_size=1, max_size=6),
       st.floats(1e-6, 1 - 1e-6))
def test_intercept_equals_brentq(factors, rate):
    """The bracketed Newton solver finds the root brentq finds (xtol = rtol = 1e-13), as closely as the rate pins the
    root down: its rate is as close to the target, and the two roots differ by rounding of the rate over the slope."""
    prevalence, log_or = tuple(p for p, _ in factors), tuple(b for _, b in factors)
    combos = np.array(list(itertools.product((0, 1), repeat=len(prevalence))), dtype=float)
    weights = np.prod(np.where(combos == 1, prevalence, 1 - np.array(prevalence)), axis=1)
    linear = combos @ np.array(log_or)
    ref = optimize.brentq(lambda b: float(weights @ special.expit(b + linear)) - rate, -60, 60, xtol=1e-13, rtol=1e-13)
    mine = calibrate_intercept.__wrapped__(prevalence, log_or, rate)

    def residual(b):
        return abs(float(weights @ special.expit(b + linear)) - rate)

    p = special.expit(ref + linear)
    slope = float(weights @ (p * (1 - p)))
    # rounding: a few units in the last place of the rate (its sum is rounded), and what two of the root's move it by
    ulps = 4 * np.spacing(rate) + 2 * slope * np.spacing(abs(ref))
    assert residual(mine) <= residual(ref) + ulps
    assert mine == pytest.approx(ref, rel=1e-12, abs=1e-12 + 4e-16 / slope)


def test_an_intercept_outside_the_bracket_is_refused():
    """A rate of 0 or one outside [0, 1] (a caller skipping check_rate) has no intercept: an error, as brentq gave."""
    for rate in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="no intercept"):
            calibrate_intercept.__wrapped__((0.5,), (1.0,), rate)
