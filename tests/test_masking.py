"""Assessor bias: an unmasked assessor's misclassification moves the estimates by the closed-form amount,
the exact law follows it, the truth does not, and a masked design draws exactly what it drew before."""
from __future__ import annotations

import numpy as np
import pytest

from trialsim.config.loader import ConfigError, with_values
from trialsim.decide import decide
from trialsim.endpoints.assessor import GradeAssessorBias
from trialsim.exact import exact_binary_power
from trialsim.model import build_model
from trialsim.rng import Streams
from trialsim.simulate import simulate_trials

LEAK_BIAS = {"endpoints.leak_1m.assessor_bias.p_undercall_treatment": 0.3,
             "endpoints.leak_1m.assessor_bias.p_overcall_control": 0.1,
             "endpoints.colonoscopy.assessor_bias.p_better_grade_treatment": 0.4}
UNMASKED = {"design.masking": "single", "design.assessor_masked": False}


def _batch(scenario, n_sims=400, seed=11):
    return simulate_trials(scenario, n_sims, streams=Streams(seed, 0), keep_patients=True)


def _same_batches(a, b, skip=()):
    for name, x in a.patients.observed.items():
        if name not in skip:
            np.testing.assert_array_equal(x, b.patients.observed[name], err_msg=name)
    for k, s in a.stats.items():
        if k[0] not in skip:
            np.testing.assert_array_equal(s.pvalue, b.stats[k].pvalue, err_msg=str(k))
            np.testing.assert_array_equal(s.estimate, b.stats[k].estimate, err_msg=str(k))


# ---------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("masking, expected", [("none", False), ("single", False), ("double", True),
                                               ("triple", True), ("quadruple", True)])
def test_assessor_masking_derived_from_the_registered_level(default_scenario, masking, expected):
    assert with_values(default_scenario, {"design.masking": masking}).design.assessor_is_masked is expected


@pytest.mark.parametrize("masking, flag, expected", [("single", True, True), ("double", False, False),
                                                     ("triple", False, False)])
def test_assessor_masking_given_explicitly(default_scenario, masking, flag, expected):
    sc = with_values(default_scenario, {"design.masking": masking, "design.assessor_masked": flag})
    assert sc.design.assessor_is_masked is expected


@pytest.mark.parametrize("masking, flag, word", [("none", True, "none"), ("quadruple", False, "quadruple")])
def test_contradictory_assessor_masking_is_refused(default_scenario, masking, flag, word):
    with pytest.raises(ConfigError, match=f"design.*assessor_masked.*{word}"):
        with_values(default_scenario, {"design.masking": masking, "design.assessor_masked": flag})


@pytest.mark.parametrize("key", ["endpoints.leak_1m.assessor_bias.p_undercall_treatment",
                                 "endpoints.colonoscopy.assessor_bias.p_better_grade_treatment"])
def test_assessor_bias_is_bounded(default_scenario, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        with_values(default_scenario, {key: 1.5})


# ------------------------------------------------------------------------------------ invariance
def test_masked_design_ignores_the_bias_bit_for_bit(default_scenario):
    """Quadruple masking: configured biases change nothing, not even a draw."""
    biased = with_values(default_scenario, LEAK_BIAS)
    _same_batches(_batch(default_scenario), _batch(biased))


def test_unmasked_without_bias_is_unchanged(default_scenario):
    _same_batches(_batch(default_scenario), _batch(with_values(default_scenario, UNMASKED)))


def test_unmasked_bias_leaves_every_other_endpoint_alone(default_scenario):
    """The misclassification draws come from their own stream: the unjudged endpoints keep their values."""
    base = _batch(with_values(default_scenario, UNMASKED))
    biased = _batch(with_values(default_scenario, UNMASKED | LEAK_BIAS))
    judged = {"leak_1m", "colonoscopy_grade", "colonoscopy_abnormal", "colonoscopy_worse_than_baseline"}
    _same_batches(base, biased, skip=judged)
    assert not np.array_equal(np.nan_to_num(base.patients.observed["leak_1m"], nan=-1),
                              np.nan_to_num(biased.patients.observed["leak_1m"], nan=-1))


# ---------------------------------------------------------------------------- closed forms and laws
def test_recorded_leak_rates_move_by_the_configured_amount(default_scenario):
    """Observed per-arm rates p_t (1 - u) and p_c + (1 - p_c) o; the truth stays the unbiased difference."""
    u, o = 0.3, 0.1
    sc = with_values(default_scenario, UNMASKED | LEAK_BIAS | {"design.n_control": 40, "design.n_treatment": 40})
    masked = with_values(sc, {"design.assessor_masked": True})
    model, model_masked = build_model(sc), build_model(masked)
    p_c, p_t = (model_masked.binary_law("leak_1m", arm).p_event for arm in ("control", "treatment"))
    assert model.binary_law("leak_1m", "treatment").p_event == pytest.approx(p_t * (1 - u), rel=1e-12)
    assert model.binary_law("leak_1m", "control").p_event == pytest.approx(p_c + (1 - p_c) * o, rel=1e-12)
    assert model.true_effect("leak_1m", "risk_difference") == pytest.approx(p_t - p_c, rel=1e-12)

    n_sims = 4000
    batch = simulate_trials(sc, n_sims, streams=Streams(5, 0))
    for arm, expected in (("treatment", p_t * (1 - u)), ("control", p_c + (1 - p_c) * o)):
        rate = batch.arm_estimates[("leak_1m", arm, "rate")]
        se = rate.std(ddof=1) / np.sqrt(n_sims)
        assert abs(rate.mean() - expected) < 4 * se, (arm, rate.mean(), expected, se)
    # the chi-square's risk-difference estimate is biased by exactly the recorded minus the true difference
    stats = batch.stats[("leak_1m", "chi2")]
    shift = (p_t * (1 - u) - (p_c + (1 - p_c) * o)) - (p_t - p_c)
    bias = stats.estimate - decide(batch).truth[("leak_1m", "chi2")]
    assert abs(bias.mean() - shift) < 4 * bias.std(ddof=1) / np.sqrt(n_sims)


def test_exact_power_follows_the_misclassification(default_scenario):
    """Exact power from the recorded law equals the simulated rejection rate (and differs from the masked one)."""
    sc = with_values(default_scenario, UNMASKED | LEAK_BIAS | {"design.n_control": 30, "design.n_treatment": 30})
    masked = with_values(sc, {"design.assessor_masked": True})
    exact = exact_binary_power(build_model(sc), "leak_1m", "fisher")
    exact_masked = exact_binary_power(build_model(masked), "leak_1m", "fisher")
    n_sims = 4000
    batch = simulate_trials(sc, n_sims, streams=Streams(21, 0))
    power = batch.stats[("leak_1m", "fisher")].reject.mean()
    se = np.sqrt(exact * (1 - exact) / n_sims)
    assert abs(power - exact) < 4 * se, (power, exact, se)
    assert abs(exact - exact_masked) > 8 * se  # the check above can tell the two apart


def test_recorded_grade_law_closed_form():
    """One grade better with chance b: q_0 = p_0 + b p_1, q_g = (1 - b) p_g + b p_(g+1), q_last = (1 - b) p_last."""
    p = np.array([0.5, 0.2, 0.2, 0.1])
    b = 0.25
    q = GradeAssessorBias(p_better_grade_treatment=b).recorded_law(p)
    np.testing.assert_allclose(q, [0.5 + 0.05, 0.15 + 0.05, 0.15 + 0.025, 0.075], rtol=1e-12)
    assert q.sum() == pytest.approx(1.0)


def test_recorded_grades_match_their_law_and_the_truth_stays(default_scenario):
    sc = with_values(default_scenario, UNMASKED | LEAK_BIAS | {"design.n_control": 40, "design.n_treatment": 40})
    masked = with_values(sc, {"design.assessor_masked": True})
    model, model_masked = build_model(sc), build_model(masked)
    section = sc.endpoints["colonoscopy"]
    law = section.grade_law("treatment", model)
    np.testing.assert_allclose(law, section.assessor_bias.recorded_law(section.grade_law("treatment", model_masked)))
    for name, estimand in (("colonoscopy_grade", "p_treatment_lower"), ("colonoscopy_abnormal", "risk_difference")):
        assert model.true_effect(name, estimand) == pytest.approx(model_masked.true_effect(name, estimand), rel=1e-12)
    n_sims = 2000
    batch = simulate_trials(sc, n_sims, streams=Streams(8, 0), keep_patients=True)
    grades = batch.patients.observed["colonoscopy_grade"][batch.patients.treated]
    grades = grades[~np.isnan(grades)]
    counts = np.bincount(grades.astype(int), minlength=len(law))
    # chi-square goodness of fit of the recorded treated grades to the recorded law (3 df, 0.1% level: 16.27)
    chi2 = float(((counts - grades.size * law) ** 2 / (grades.size * law)).sum())
    assert chi2 < 16.27, (counts / grades.size, law)
    abnormal = model.binary_law("colonoscopy_abnormal", "treatment").p_event
    assert abnormal == pytest.approx(law[section.abnormal_index:].sum(), rel=1e-12)
