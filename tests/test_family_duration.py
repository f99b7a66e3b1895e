"""The ``duration`` family on its own: config checks, the base and extra days, streams, true effects."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import integrate, stats
from scipy.special import gammaincinv, roots_hermitenorm

from trialsim.endpoints.base import PatientContext, Status
from trialsim.endpoints.binary_event import BinaryEvent
from trialsim.endpoints.duration import Duration, expected_log_total
from trialsim.endpoints.markers import LogNormalMarkers
from trialsim.endpoints.registry import family
from trialsim.rng import Streams
from tests.fakes import FakeModel, alternating_arms, difference_and_se

CID = "los_days"


def section(**changes) -> Duration:
    return Duration.model_validate_json(json.dumps({"family": "duration", **changes}))


def context(n_trials: int, n_patients: int, treated=None, latent=None) -> PatientContext:
    if treated is None:
        treated = np.zeros((n_trials, n_patients), dtype=bool)
    return PatientContext(n_trials, n_patients, covariates={}, treated=treated, latent=dict(latent or {}))


def fake_event(grade: np.ndarray) -> dict[str, np.ndarray]:
    event = grade >= 0
    return {"event": event, "day": np.where(event, 7.0, np.nan), "grade": grade}




# ------------------------------------------------------------------------------------ config
def test_defaults_register_and_validate_from_json():
    assert family("duration") is Duration
    sc = section(event="leak_1m")
    assert sc == Duration(event="leak_1m") and sc.links() == ("leak_1m",) and section().links() == ()
    assert (sc.median, sc.log_sd, sc.extra_days_by_grade, sc.extra_days_cv, sc.treatment_ratio) == (7.0, 0.35, (1.0, 7.0, 16.0), 0.5, 1.0)


@pytest.mark.parametrize("changes, message", [
    ({"extra_days_by_grade": [1.0, -7.0]}, "extra days must be >= 0"),
    ({"extra_days_by_grade": []}, "extra_days_by_grade"),
    ({"median": 0.0}, "median"),
    ({"treatment_ratio": "1"}, "treatment_ratio"),  # strict: no strings for numbers
    ({"event": ""}, "event"),
    ({"median_no_leak": 7.0}, "median_no_leak"),  # the old key is not silently ignored
])
def test_bad_configs_are_rejected_naming_the_field(changes, message):
    with pytest.raises(ValidationError) as info:
        section(**changes)
    assert message in str(info.value)


def test_analysed_endpoint():
    (a,) = section(event="leak_1m", treatment_ratio=0.9).analysed(CID)
    assert (a.name, a.component, a.kind, a.scale, a.summary, a.unit) == (CID, CID, "continuous", "log", "median", "days")
    assert a.label == "Postoperative length of stay" and a.tests == ("mann_whitney", "welch_log") and not a.measured_at_visit
    assert a.effect.path == "endpoints.los_days.treatment_ratio"
    assert (a.effect.kind, a.effect.null, a.effect.assumed) == ("ratio", 1.0, 0.9)


# ------------------------------------------------------------------------------------ values
def test_base_is_log_normal_and_treatment_scales_the_median():
    sc = section(treatment_ratio=0.8)
    s, n = 100, 2000
    treated = np.random.default_rng(1).random((s, n)) < 0.4  # per patient
    out = sc.generate(CID, context(s, n, treated), Streams(1, 0))
    assert set(out) == {"base", "extra", "total"}
    assert all(x.shape == (s, n) and np.isfinite(x).all() for x in out.values())
    assert np.all(out["extra"] == 0) and np.array_equal(out["total"], out["base"])
    log_base = np.log(out["base"])
    for arm, median in ((~treated, 7.0), (treated, 5.6)):
        x = log_base[arm]
        assert abs(x.mean() - np.log(median)) <= 5 * 0.35 / np.sqrt(x.size)
        assert abs(x.std() - 0.35) <= 5 * 0.35 / np.sqrt(2 * x.size)
    assert stats.kstest((log_base[~treated] - np.log(7.0)) / 0.35, "norm").pvalue > 1e-4


def test_extra_days_are_gamma_with_the_mean_of_the_grade():
    sc = section(event="leak_1m", extra_days_by_grade=[0.0, 7.0, 16.0], extra_days_cv=0.5)
    s, n = 50, 4000
    grade = np.random.default_rng(2).integers(-1, 4, (s, n))  # grade 3 is past the list: the last mean applies
    out = sc.generate(CID, context(s, n, latent={"leak_1m": fake_event(grade)}), Streams(2, 0))
    extra = out["extra"]
    assert np.all(extra[grade <= 0] == 0)
    np.testing.assert_allclose(out["total"], out["base"] + extra, rtol=0, atol=0)
    for g, mean in ((1, 7.0), (2, 16.0), (3, 16.0)):
        x = extra[grade == g]
        assert abs(x.mean() - mean) <= 5 * 0.5 * mean / np.sqrt(x.size), g
        assert abs(x.std() / x.mean() - 0.5) <= 0.02, g
        assert stats.kstest(x, "gamma", args=(4.0, 0.0, mean / 4.0)).pvalue > 1e-4, g
    fixed = section(event="leak_1m", extra_days_cv=0.0).generate(CID, context(s, n, latent={"leak_1m": fake_event(grade)}), Streams(2, 0))
    assert np.array_equal(fixed["extra"][grade == 1], np.full((grade == 1).sum(), 7.0))


def test_flow_inputs_and_observe():
    sc = section(event="leak_1m")
    s, n = 3, 8
    grade = np.full((s, n), -1)
    grade[:, 0] = 2
    ctx = context(s, n, latent={"leak_1m": fake_event(grade)})
    latent = sc.generate(CID, ctx, Streams(3, 0))
    flow = sc.flow_inputs(latent)
    assert set(flow) == {"stay_days", "event_extra_days"}
    assert flow["stay_days"] is latent["base"] and flow["event_extra_days"] is latent["extra"]
    nobody = np.zeros((s, n), bool)
    seen = sc.observe(CID, ctx, latent, Status(attended=nobody, died=nobody))
    np.testing.assert_array_equal(seen[CID], np.log(latent["total"]))
    enrolled = np.ones((s, n), bool)
    enrolled[0] = False
    flowed = sc.observe(CID, ctx, latent, Status(attended=nobody, died=nobody, enrolled=enrolled))
    assert np.isnan(flowed[CID][0]).all() and np.isfinite(flowed[CID][1:]).all()


# ----------------------------------------------------------------------------------- streams
def test_values_do_not_depend_on_markers_or_on_the_event_for_the_base():
    s, n = 20, 100
    grade = np.random.default_rng(4).integers(-1, 3, (s, n))
    leak = fake_event(grade)
    streams = Streams(4, 2)
    alone = section(event="leak_1m").generate(CID, context(s, n, latent={"leak_1m": leak}), streams)
    ctx = context(s, n, latent={"leak_1m": leak})
    ctx.latent["cytokines"] = LogNormalMarkers(event="leak_1m").generate("cytokines", ctx, streams)
    after_markers = section(event="leak_1m").generate(CID, ctx, streams)
    for key in alone:
        assert np.array_equal(alone[key], after_markers[key]), key
    unlinked = section().generate(CID, context(s, n), streams)
    assert np.array_equal(unlinked["base"], alone["base"])


def test_first_patients_do_not_depend_on_the_trial_size():
    sc = section(event="leak_1m", treatment_ratio=0.9)
    s, n_big, n_small = 6, 70, 25
    grade = np.random.default_rng(5).integers(-1, 3, (s, n_big))
    treated = np.random.default_rng(6).random((s, n_big)) < 0.5
    big = sc.generate(CID, context(s, n_big, treated, {"leak_1m": fake_event(grade)}), Streams(5, 0))
    small = sc.generate(CID, context(s, n_small, treated[:, :n_small], {"leak_1m": fake_event(grade[:, :n_small])}), Streams(5, 0))
    for key in small:
        assert np.array_equal(small[key], big[key][:, :n_small]), key


# -------------------------------------------------------------------------------------- laws
@pytest.mark.parametrize("log_median, log_sd, mean, cv", [
    (np.log(7.0), 0.35, 7.0, 0.5), (np.log(7.0), 0.35, 16.0, 5.0), (0.0, 2.0, 3.0, 1.0), (np.log(7.0), 0.35, 7.0, 0.0),
])
def test_expected_log_total_against_direct_integration(log_median, log_sd, mean, cv):
    if cv == 0:
        ref = integrate.quad(lambda z: np.log(np.exp(log_median + log_sd * z) + mean) * stats.norm.pdf(z), -14, 14)[0]
    else:
        k = 1 / cv**2
        ref = integrate.dblquad(lambda u, z: np.log(np.exp(log_median + log_sd * z) + gammaincinv(k, u) * mean / k)
                                * np.exp(-z * z / 2) / np.sqrt(2 * np.pi), -14, 14, 0, 1, epsabs=1e-10)[0]
    assert expected_log_total(log_median, log_sd, mean, cv) == pytest.approx(ref, abs=1e-7)


def test_expected_log_total_tanh_sinh_against_quad():
    """The tanh-sinh rule (and, where its steps disagree, quad) against the adaptive integral it replaced, over
    medians, spreads, means and CVs from nearly fixed (0.01) to very skewed (5)."""
    z, wz = roots_hermitenorm(160)
    wz = wz / wz.sum()
    for log_median, log_sd, mean, cv in itertools.product([0.0, np.log(6.0), np.log(40.0)], [0.05, 0.4, 1.0, 3.0],
                                                           [0.01, 3.0, 60.0, 500.0], [0.01, 0.2, 0.5, 1.0, 2.0, 5.0]):
        base = np.exp(log_median + log_sd * z)
        k = 1 / cv**2
        ref = integrate.quad(lambda u: float(wz @ np.log(base + mean * gammaincinv(k, u) / k)), 0, 1, limit=200,
                             epsabs=1e-11, epsrel=1e-10)[0]
        assert expected_log_total.__wrapped__(log_median, log_sd, mean, cv) == pytest.approx(ref, abs=1e-9)


def test_true_effect_without_a_link_is_the_log_ratio():
    sc = section(treatment_ratio=0.8)
    assert sc.true_effect(CID, CID, "difference", FakeModel({})) == pytest.approx(np.log(0.8))
    assert sc.true_effect(CID, CID, "p_treatment_lower", FakeModel({})) is None
    assert sc.true_effect(CID, "other", "difference", FakeModel({})) is None


def test_true_effect_matches_a_large_simulation_with_a_linked_event():
    leak = BinaryEvent(risk_factors=(), rate_control=0.3, effect=0.5)
    sc = section(event="leak_1m", treatment_ratio=0.9, extra_days_by_grade=[1.0, 7.0, 16.0], extra_days_cv=0.8)
    model = FakeModel({"leak_1m": leak, CID: sc})
    truth = sc.true_effect(CID, CID, "difference", model)
    assert abs(truth - np.log(0.9)) > 0.05  # fewer events shorten the stay
    s, n = 100, 4000
    treated = alternating_arms(s, n)
    streams = Streams(7, 0)
    ctx = context(s, n, treated)
    ctx.latent["leak_1m"] = leak.generate("leak_1m", ctx, streams)
    y = np.log(sc.generate(CID, ctx, streams)["total"])
    diff, se = difference_and_se(y[treated], y[~treated])
    assert abs(diff - truth) <= 4.5 * se
