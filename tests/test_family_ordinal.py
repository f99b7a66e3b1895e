"""The ordinal_grade endpoint family (the 1-month colonoscopy), exercised directly (no engine).

Statistical checks compare simulated frequencies with the family's exact laws within a few Monte
Carlo standard errors (fixed seeds, so the tests are deterministic).
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.test_family_plain import Z, arm_rate, binary, scenario, simulate_patients
from trialsim.config.loader import ConfigError
from trialsim.endpoints.base import PatientContext, Status
from trialsim.endpoints.ordinal import OrdinalGrade, proportional_odds
from trialsim.model import build_model
from trialsim.rng import Streams

GRADE = "ordinal_grade"


def grade_section(**kw) -> dict:
    return {"family": GRADE, **kw}


def linked(**follow_up):
    """A grade linked to a plain binary event (30% control, RR 0.5) with a treatment odds ratio of 2."""
    return scenario({"leak": binary(rate_control=0.3, effect=0.5),
                     "colonoscopy": grade_section(event="leak", treatment_odds_ratio=2.0, p_missing=0.1)}, **follow_up)


def grade_frequencies(x: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    seen = x[~np.isnan(x)].astype(int)
    return np.bincount(seen, minlength=k) / seen.size, seen.size


# ------------------------------------------------------------------------------------- structure
def test_defaults_are_the_exosome_colonoscopy():
    section = OrdinalGrade(family=GRADE)
    assert section.grades == ("intact", "minor", "defect", "stricture")
    assert section.probs == (0.88, 0.08, 0.01, 0.03) and section.probs_after_event == (0.15, 0.25, 0.50, 0.10)
    assert section.abnormal_index == 2 and section.p_missing == 0.10 and section.treatment_odds_ratio == 1.0
    assert section.links() == () and OrdinalGrade(family=GRADE, event="leak_1m").links() == ("leak_1m",)
    assert section.visit_procedure_missing() == 0.10
    grade, abnormal, worse = section.analysed("colonoscopy")
    assert (grade.name, grade.kind, grade.tests) == ("colonoscopy_grade", "ordinal", ("mann_whitney",))
    assert (abnormal.name, abnormal.kind, abnormal.tests, abnormal.label) == (
        "colonoscopy_abnormal", "binary", ("fisher",), "Colonoscopy defect or worse")
    assert (worse.name, worse.label) == ("colonoscopy_worse_than_baseline", "Colonoscopy worse than baseline")
    assert all(a.measured_at_visit for a in (grade, abnormal, worse))
    assert grade.effect.path == "endpoints.colonoscopy.treatment_odds_ratio" and grade.effect.kind == "ratio"
    assert grade.effect.null == 1.0


@pytest.mark.parametrize("bad, message", [
    ({"probs": [0.5, 0.5]}, "probs has 2 values"),
    ({"baseline_probs": [0.5, 0.5, 0.5, -0.5]}, "non-negative"),
    ({"abnormal_from": "leak"}, "not one of the grades"),
    ({"treatment_odds_ratio": 0.0}, "treatment_odds_ratio"),
])
def test_bad_sections_are_rejected(bad, message):
    with pytest.raises(ConfigError, match=message):
        scenario({"colonoscopy": grade_section(**bad)})


def test_link_must_be_an_event():
    with pytest.raises(ConfigError, match="not an endpoint"):
        scenario({"colonoscopy": grade_section(event="leak")})


# ---------------------------------------------------------------------------- proportional odds
@pytest.mark.parametrize("odds_ratio", [0.3, 1.0, 2.5])
def test_proportional_odds_convention(odds_ratio):
    probs = np.array([0.5, 0.2, 0.0, 0.3])
    shifted = proportional_odds(probs, odds_ratio)
    assert shifted.sum() == pytest.approx(1.0) and (shifted >= 0).all() and shifted[2] == 0.0
    for k in (1, 3):  # odds of a grade better than cut k, treated / untreated (cut 2 = cut 3 here)
        before, after = probs[:k].sum(), shifted[:k].sum()
        assert (after / (1 - after)) / (before / (1 - before)) == pytest.approx(odds_ratio)
    if odds_ratio > 1:  # stochastically better (lower) grades
        assert (np.cumsum(shifted) >= np.cumsum(probs) - 1e-12).all() and shifted[0] > probs[0]
    assert np.array_equal(proportional_odds(probs, 1.0), probs)


# ------------------------------------------------------------------------------------- patients
def test_shapes_and_nan_pattern():
    sc = linked(p_missing_visit=0.2, p_death=0.1)
    _, ctx, status, obs = simulate_patients(sc, 20, 300)
    latent = ctx.latent["colonoscopy"]
    done = status.attended & (latent["missing_u"] >= 0.1)
    for name in ("colonoscopy_grade", "colonoscopy_abnormal", "colonoscopy_worse_than_baseline"):
        assert obs[name].shape == (20, 600) and obs[name].dtype == float
        assert np.array_equal(np.isnan(obs[name]), ~done)
    assert np.isnan(obs["colonoscopy_grade"][status.died]).all()  # a death has no colonoscopy
    g = obs["colonoscopy_grade"][done]
    assert set(np.unique(g)) <= {0.0, 1.0, 2.0, 3.0}
    np.testing.assert_array_equal(obs["colonoscopy_abnormal"][done], g >= 2)
    np.testing.assert_array_equal(obs["colonoscopy_worse_than_baseline"][done], g > latent["baseline"][done])


def test_flow_procedure_record_is_used():
    sc = linked()
    shape = (3, 40)
    procedure = np.zeros(shape, bool)
    procedure[:, :25] = True
    enrolled = np.ones(shape, bool)
    enrolled[:, 20:] = False
    status = Status(attended=np.ones(shape, bool), died=np.zeros(shape, bool), enrolled=enrolled, procedure_done=procedure)
    _, _, _, obs = simulate_patients(sc, 3, 20, status=status)
    assert np.array_equal(~np.isnan(obs["colonoscopy_grade"]), procedure & enrolled)


def test_first_patients_do_not_depend_on_trial_size():
    section = OrdinalGrade(family=GRADE, treatment_odds_ratio=3.0)
    out = []
    for n in (10, 30):
        treated = np.zeros((4, n), bool)
        treated[:, ::2] = True
        out.append(section.generate("colonoscopy", PatientContext(4, n, {}, treated), Streams(9, 2)))
    for key in ("grade", "baseline", "missing_u"):
        assert np.array_equal(out[0][key], out[1][key][:, :10])


def test_treatment_odds_ratio_on_simulated_grades():
    # no event link: each arm's grade law is probs, shifted by the odds ratio in the treatment arm
    sc = scenario({"colonoscopy": grade_section(treatment_odds_ratio=0.4, p_missing=0.0)}, p_missing_visit=0.0, p_death=0.0)
    _, ctx, _, obs = simulate_patients(sc, 40, 2500, seed=4)
    x = obs["colonoscopy_grade"]
    f_c, n_c = grade_frequencies(x[~ctx.treated], 4)
    f_t, n_t = grade_frequencies(x[ctx.treated], 4)
    expected_t = proportional_odds((0.88, 0.08, 0.01, 0.03), 0.4)
    for f, expected, n in ((f_c, np.array([0.88, 0.08, 0.01, 0.03]), n_c), (f_t, expected_t, n_t)):
        assert (np.abs(f - expected) < Z * np.sqrt(expected * (1 - expected) / n)).all()
    # empirical cumulative odds ratio of a better grade (cut below "minor"), harmful here (< 1)
    odds = lambda p: p / (1 - p)
    assert odds(f_t[0]) / odds(f_c[0]) == pytest.approx(0.4, rel=0.1)
    assert f_t[0] < f_c[0]


@pytest.mark.parametrize("follow_up", [
    {"p_missing_visit": 0.1, "p_death": 0.05},
    {"p_missing_visit": 0.1, "p_death": 0.05, "death_event": "leak", "p_death_after_event": 0.4},
])
def test_binary_laws_match_simulation(follow_up):
    sc = linked(**follow_up)
    model, ctx, _, obs = simulate_patients(sc, 50, 2000, seed=13)
    for name in ("colonoscopy_abnormal", "colonoscopy_worse_than_baseline"):
        for arm in ("control", "treatment"):
            law = model.binary_law(name, arm)
            p, se, missing = arm_rate(obs[name], ctx.treated, arm)
            assert abs(p - law.p_event) < Z * se, (name, arm)
            n = obs[name].size // 2
            assert abs(missing - law.p_missing) < Z * np.sqrt(law.p_missing * (1 - law.p_missing) / n)
    section = sc.endpoints["colonoscopy"]
    for arm in ("control", "treatment"):
        f, n = grade_frequencies(obs["colonoscopy_grade"][ctx.treated if arm == "treatment" else ~ctx.treated], 4)
        expected = section.grade_law(arm, model)
        assert (np.abs(f - expected) < Z * np.sqrt(expected * (1 - expected) / n)).all()


def test_law_of_the_registered_design():
    # the old exact law: leak states weighted by survival, visit and colonoscopy kept, no treatment OR
    sc = scenario({"leak": binary(rate_control=0.16, effect=0.5), "colonoscopy": grade_section(event="leak")},
                  p_missing_visit=0.03, p_death=0.014, death_event="leak", p_death_after_event=0.075)
    model = build_model(sc)
    for arm, leak in (("control", 0.16), ("treatment", 0.08)):
        done = np.array([1 - leak, leak]) * np.array([1 - 0.014, 1 - 0.075]) * 0.97 * 0.90
        abnormal = np.array([0.01 + 0.03, 0.50 + 0.10])
        law = model.binary_law("colonoscopy_abnormal", arm)
        assert law.p_event == pytest.approx(done @ abnormal / done.sum())
        assert law.p_missing == pytest.approx(1 - done.sum())
        # baseline all intact: worse than baseline = any grade but intact
        worse = model.binary_law("colonoscopy_worse_than_baseline", arm)
        assert worse.p_event == pytest.approx(done @ np.array([0.12, 0.85]) / done.sum())


def test_laws_without_a_link():
    sc = scenario({"leak": binary(rate_control=0.2, effect=0.5), "colonoscopy": grade_section()},
                  p_missing_visit=0.05, p_death=0.02, death_event="leak", p_death_after_event=0.3)
    law = build_model(sc).binary_law("colonoscopy_abnormal", "control")
    alive = 0.8 * 0.98 + 0.2 * 0.7
    assert law.p_event == pytest.approx(0.04) and law.p_missing == pytest.approx(1 - alive * 0.95 * 0.9)
    sc = scenario({"colonoscopy": grade_section()}, p_death=0.02)
    assert build_model(sc).binary_law("colonoscopy_abnormal", "treatment").p_missing == pytest.approx(1 - 0.98 * 0.97 * 0.9)


def test_laws_unknown_when_death_follows_another_event():
    sc = scenario({"leak": binary(rate_control=0.2, effect=0.5), "other": binary(rate_control=0.1, effect=1.0),
                   "colonoscopy": grade_section(event="leak")}, death_event="other")
    model = build_model(sc)
    assert model.binary_law("colonoscopy_abnormal", "control") is None
    assert model.true_effect("colonoscopy_grade", "p_treatment_lower") is None
    assert model.true_effect("colonoscopy_abnormal", "risk_difference") is None


def test_true_effects_match_simulation():
    sc = linked(p_missing_visit=0.1, p_death=0.05, death_event="leak", p_death_after_event=0.4)
    model, ctx, _, obs = simulate_patients(sc, 50, 2000, seed=17)
    x = obs["colonoscopy_grade"]
    f_c, _ = grade_frequencies(x[~ctx.treated], 4)
    f_t, _ = grade_frequencies(x[ctx.treated], 4)
    # P(G_t < G_c) + ties / 2 from the two arms' grade frequencies (the Mann-Whitney estimand)
    estimate = float(f_t @ np.less.outer(np.arange(4), np.arange(4)) @ f_c + 0.5 * f_t @ f_c)
    truth = model.true_effect("colonoscopy_grade", "p_treatment_lower")
    assert abs(estimate - truth) < 0.006  # SE of a U-statistic at ~80,000 per arm is below 0.0015
    assert truth > 0.5  # fewer events and a better grade law under treatment
    for name in ("colonoscopy_abnormal", "colonoscopy_worse_than_baseline"):
        (p_c, se_c, _), (p_t, se_t, _) = (arm_rate(obs[name], ctx.treated, arm) for arm in ("control", "treatment"))
        assert abs((p_t - p_c) - model.true_effect(name, "risk_difference")) < Z * np.hypot(se_c, se_t)
    assert model.true_effect("colonoscopy_grade", "risk_difference") is None


def test_odds_ratio_direction_of_the_effect():
    def truth(odds_ratio):
        sc = scenario({"colonoscopy": grade_section(treatment_odds_ratio=odds_ratio)})
        return build_model(sc).true_effect("colonoscopy_grade", "p_treatment_lower")

    assert truth(1.0) == pytest.approx(0.5)
    assert truth(0.5) < 0.5 < truth(2.0) < truth(4.0)
    sc = scenario({"colonoscopy": grade_section(treatment_odds_ratio=3.0)})
    assert build_model(sc).true_effect("colonoscopy_abnormal", "risk_difference") < 0
