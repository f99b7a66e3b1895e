"""The ``log_normal_markers`` family on its own: config checks, the law of the levels, streams, true effects."""
from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from trialsim.endpoints.base import PatientContext, Status
from trialsim.endpoints.binary_event import BinaryEvent
from trialsim.endpoints.markers import DEFAULT_MARKERS, LogNormalMarkers, correlation_matrix, mean_weights
from trialsim.endpoints.registry import family
from trialsim.rng import Streams
from tests.fakes import FakeModel, alternating_arms, difference_and_se

CID = "cytokines"


def section(**changes) -> LogNormalMarkers:
    """A markers section validated from JSON, as the config loader does."""
    return LogNormalMarkers.model_validate_json(json.dumps({"family": "log_normal_markers", **changes}))


def default_markers() -> list[dict]:
    return [m.model_dump() for m in DEFAULT_MARKERS]


def context(n_trials: int, n_patients: int, treated=None, latent=None) -> PatientContext:
    if treated is None:
        treated = np.zeros((n_trials, n_patients), dtype=bool)
    return PatientContext(n_trials, n_patients, covariates={}, treated=treated, latent=dict(latent or {}))


def fake_event(n_trials: int, n_patients: int, *, rate: float, day_range=(1.0, 12.0), seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    event = rng.random((n_trials, n_patients)) < rate
    day = np.where(event, rng.uniform(*day_range, (n_trials, n_patients)), np.nan)
    return {"event": event, "day": day, "grade": np.where(event, 1, -1)}




# ------------------------------------------------------------------------------------ config
def test_defaults_register_and_validate_from_json():
    assert family("log_normal_markers") is LogNormalMarkers
    sc = section(event="leak_1m")
    assert sc == LogNormalMarkers(event="leak_1m")
    assert sc.links() == ("leak_1m",) and section().links() == ()
    assert [m.name for m in sc.markers] == ["il6_serum", "tnf_serum", "il6_drain", "tnf_drain"]
    assert "[3a]" in sc.markers[0].source and "[8]" in sc.markers[0].source
    assert hash(sc) == hash(section(event="leak_1m"))  # frozen: usable as a cache key


@pytest.mark.parametrize("changes, message", [
    ({"days": [1, 5, 3]}, "increasing"),
    ({"days": [1, 1, 5]}, "distinct"),
    ({"days": [1, 3]}, "markers[0] ('il6_serum'): median has 3 values but there are 2 days"),
    ({"markers": default_markers()[:1] * 2}, "names must be unique"),
    ({"markers": [default_markers()[0], {**default_markers()[0], "name": "other"}]}, "correlation would be 1"),
    ({"markers": [{**default_markers()[0], "median": [60.0, 0.0, 12.0]}]}, "every value must be > 0"),
    ({"markers": [{**default_markers()[0], "p_missing": [0.0, 1.0, 0.0]}]}, "in [0, 1)"),
    ({"corr_days": 1.0}, "corr_days"),
    ({"event": ""}, "event"),
    ({"summaries": ["mean_log", "mean_log"]}, "once"),
    ({"colour": "red"}, "colour"),
    ({"days": ["1", "3", "5"]}, "days"),  # strict: no strings for numbers
])
def test_bad_configs_are_rejected_naming_the_field(changes, message):
    with pytest.raises(ValidationError, match=None) as info:
        section(**changes)
    assert message in str(info.value)


def test_analysed_endpoints_names_labels_and_effects():
    sc = section(event="leak_1m")
    analysed = sc.analysed(CID)
    names = [a.name for a in analysed]
    assert names[:4] == ["il6_serum_pod1", "il6_serum_pod3", "il6_serum_pod5", "il6_serum_mean_log"]
    assert len(names) == 16 and len(set(names)) == 16
    first, mean = analysed[0], analysed[3]
    assert first.label == "IL-6 (serum), POD 1"
    assert mean.label == "IL-6 (serum), mean of log over POD 1, 3, 5"
    assert analysed[4].label == "TNF-alpha (serum), POD 1"
    for a in analysed:
        assert (a.component, a.kind, a.scale, a.summary, a.measured_at_visit) == (CID, "continuous", "log", "mean", False)
        assert a.tests == ("welch_log", "mann_whitney") and a.unit == "pg/mL"
    drain = [a for a in analysed if a.name == "il6_drain_pod3"][0]
    assert drain.effect.path == "endpoints.cytokines.markers[2].treatment_gmr"
    assert (drain.effect.kind, drain.effect.null, drain.effect.assumed) == ("ratio", 1.0, 0.7)
    own_label = section(markers=[{**default_markers()[0], "label": "Serum IL-6"}], summaries=["per_day"])
    assert [a.label for a in own_label.analysed(CID)] == ["Serum IL-6, POD 1", "Serum IL-6, POD 3", "Serum IL-6, POD 5"]
    no_label = section(markers=[{**default_markers()[0], "label": None}], summaries=["mean_log"])
    assert [a.label for a in no_label.analysed(CID)] == ["il6 (serum), mean of log over POD 1, 3, 5"]


def test_narrowed_leaves_out_the_summaries_not_asked_for_and_keeps_every_draw():
    """Planning's reduced scenarios: only the means (or only the days) asked for are observed and tested."""
    sc = section(event=None)
    assert sc.narrowed(CID, {"il6_serum_mean_log", "tnf_drain_mean_log"}) == {
        "summaries": ["mean_log"], "analysed_markers": ["il6_serum", "tnf_drain"]}
    assert sc.narrowed(CID, {"il6_serum_pod3"}) == {"summaries": ["per_day"], "analysed_markers": ["il6_serum"]}
    every = {f"{m.name}_{s}" for m in DEFAULT_MARKERS for s in ("pod3", "mean_log")}
    assert sc.narrowed(CID, every) == {}  # both kinds of every marker: nothing to leave out
    assert sc.narrowed(CID, {"not_a_marker"}) == {}
    means = section(event=None, summaries=["mean_log"])
    assert [a.name for a in means.analysed(CID)] == [f"{m.name}_mean_log" for m in DEFAULT_MARKERS]
    ctx = context(40, 12)
    full, narrow = sc.generate(CID, ctx, Streams(3, 1)), means.generate(CID, ctx, Streams(3, 1))
    for name in narrow:
        np.testing.assert_array_equal(full[name], narrow[name])


@pytest.mark.parametrize("kept", [["il6_serum"], ["tnf_drain"], ["tnf_serum", "il6_drain"]])
@pytest.mark.parametrize("summaries", [["per_day", "mean_log"], ["mean_log"]])
def test_analysed_markers_compute_only_those_with_the_same_values(kept, summaries):
    """Leaving markers out changes no value of the others: linked event, treatment, missing samples and means included."""
    markers = [{**m, "p_missing": [0.1, 0.2, 0.3]} for m in default_markers()]
    full = section(markers=markers, event="leak")
    some = section(markers=markers, event="leak", summaries=summaries, analysed_markers=kept)
    s, n = 50, 14
    treated = alternating_arms(s, n)
    ctx = context(s, n, treated=treated, latent={"leak": fake_event(s, n, rate=0.3)})
    a = full.generate(CID, ctx, Streams(5, 2))
    b = some.generate(CID, ctx, Streams(5, 2))
    assert {x.name for x in some.analysed(CID)} <= set(b)
    assert {name.removesuffix("_mean_log") if name.endswith("_mean_log") else name.rsplit("_", 1)[0] for name in b} == set(kept)
    for name, values in b.items():
        np.testing.assert_array_equal(a[name], values, err_msg=name)


def test_analysed_markers_must_name_markers():
    with pytest.raises(ValidationError, match="analysed_markers"):
        section(analysed_markers=["il6_serum", "crp_serum"])
    with pytest.raises(ValidationError, match="analysed_markers"):
        section(analysed_markers=["il6_serum", "il6_serum"])


# ------------------------------------------------------------------------------------ values
def test_shapes_contiguity_and_missing_pattern():
    sc = section()
    s, n = 40, 500
    out = sc.generate(CID, context(s, n), Streams(1, 0))
    assert set(out) == {a.name for a in sc.analysed(CID)}
    for name, x in out.items():
        assert x.shape == (s, n) and x.dtype == float and x.T.flags.c_contiguous, name  # views of patient-major levels
        assert not np.isinf(x).any()
    for m in sc.markers:
        for k, d in enumerate(sc.days):
            missing = np.isnan(out[f"{m.name}_pod{d}"]).mean()
            p = m.p_missing[k]
            assert abs(missing - p) <= 5 * np.sqrt(p * (1 - p) / (s * n)) + 1e-12, (m.name, d)
        assert not np.isnan(out[f"{m.name}_mean_log"]).any()  # only POD 5 can be missing


def test_mean_log_averages_the_available_days_and_is_nan_when_none():
    markers = [{**default_markers()[2], "p_missing": [0.5, 0.5, 0.5]}]
    out = section(markers=markers).generate(CID, context(20, 300), Streams(2, 0))
    days = np.stack([out[f"il6_drain_pod{d}"] for d in (1, 3, 5)])
    none = np.isnan(days).all(axis=0)
    assert none.any() and (~none).any()
    mean = out["il6_drain_mean_log"]
    assert np.array_equal(np.isnan(mean), none)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        np.testing.assert_allclose(mean[~none], np.nanmean(days, axis=0)[~none], rtol=0, atol=1e-12)


def _levels(out: dict, sc: LogNormalMarkers) -> np.ndarray:
    """(patients, day-major (day, marker) columns) of the per-day log levels."""
    return np.stack([out[f"{m.name}_pod{d}"].ravel() for d in sc.days for m in sc.markers], axis=1)


def test_marginal_mean_sd_and_correlation_match_the_config():
    sc = section(markers=[{**m, "p_missing": [0.0, 0.0, 0.0]} for m in default_markers()])
    s, n = 100, 2000
    x = _levels(sc.generate(CID, context(s, n), Streams(3, 0)), sc)
    big_n = s * n
    mu = np.array([np.log(m.median[k]) for k in range(3) for m in sc.markers])
    sd = np.array([m.log_sd for _ in range(3) for m in sc.markers])
    assert np.all(np.abs(x.mean(axis=0) - mu) <= 5 * sd / np.sqrt(big_n))
    assert np.all(np.abs(x.std(axis=0) - sd) <= 5 * sd / np.sqrt(2 * big_n))
    target = correlation_matrix(sc)
    got = np.corrcoef(x, rowvar=False)
    assert np.all(np.abs(got - target) <= 5 * (1 - target**2) / np.sqrt(big_n) + 1e-12)
    # the configured structure itself: AR(1) in days, compartments and groups multiply
    il6_serum, tnf_serum, il6_drain, tnf_drain = range(4)
    assert target[il6_serum, 4 + il6_serum] == pytest.approx(0.6)  # POD 1 vs POD 3 (step 2 days)
    assert target[il6_serum, 8 + il6_serum] == pytest.approx(0.36)  # POD 1 vs POD 5
    assert target[il6_serum, il6_drain] == pytest.approx(0.3)
    assert target[il6_serum, tnf_serum] == pytest.approx(0.4)
    assert target[il6_serum, 4 + tnf_drain] == pytest.approx(0.6 * 0.3 * 0.4)


def test_irregular_days_follow_the_ar1_law():
    sc = section(days=[0, 1, 7], markers=[{**default_markers()[0], "median": [1.0, 1.0, 1.0], "event_gmr": [1.0, 1.0, 1.0],
                                           "p_missing": [0.0, 0.0, 0.0]}], corr_days=0.5, corr_days_step=3.0)
    x = _levels(sc.generate(CID, context(50, 2000), Streams(4, 0)), sc)
    target = correlation_matrix(sc)
    assert target[0, 2] == pytest.approx(0.5 ** (7 / 3))
    assert np.all(np.abs(np.corrcoef(x, rowvar=False) - target) <= 5 * (1 - target**2) / np.sqrt(len(x)) + 1e-12)


def test_treatment_multiplies_by_the_gmr_per_patient():
    sc = section()
    s, n = 50, 2000
    rng = np.random.default_rng(5)
    treated = rng.random((s, n)) < 0.3  # per patient, not per arm
    out = sc.generate(CID, context(s, n, treated), Streams(5, 0))
    for m in sc.markers:
        x = out[f"{m.name}_pod1"]
        gap = x[treated].mean() - x[~treated].mean()
        se = m.log_sd * np.sqrt(1 / treated.sum() + 1 / (~treated).sum())
        assert abs(gap - np.log(m.treatment_gmr)) <= 5 * se, m.name
    # and exactly: same draws, with and without treatment
    untreated = sc.generate(CID, context(s, n), Streams(5, 0))
    gap = out["il6_drain_pod3"] - untreated["il6_drain_pod3"]
    np.testing.assert_allclose(gap[treated], np.log(0.7), atol=1e-9)
    assert np.all(gap[~treated] == 0)


def test_event_raises_days_from_lead_before_diagnosis():
    sc = section(event="leak_1m", event_lead_days=2.0)
    s, n = 4, 6
    day = np.full((s, n), np.nan)
    day[0, :5] = [2.0, 3.0, 4.0, 7.0, 8.0]  # raised from POD 1 (<= 3), POD 3 (<= 5), POD 5 (<= 7); never (8)
    event = ~np.isnan(day)
    latent = {"leak_1m": {"event": event, "day": day, "grade": np.where(event, 1, -1)}}
    raised = sc.generate(CID, context(s, n, latent=latent), Streams(6, 0))
    none = {"event": np.zeros((s, n), bool), "day": np.full((s, n), np.nan), "grade": np.full((s, n), -1)}
    plain = sc.generate(CID, context(s, n, latent={"leak_1m": none}), Streams(6, 0))
    expected_days = {0: {1, 3, 5}, 1: {1, 3, 5}, 2: {3, 5}, 3: {5}, 4: set()}
    for m in sc.markers:
        for k, d in enumerate(sc.days):
            gap = raised[f"{m.name}_pod{d}"] - plain[f"{m.name}_pod{d}"]
            for j in range(n):
                want = np.log(m.event_gmr[k]) if d in expected_days.get(j, set()) else 0.0
                if np.isnan(gap[0, j]):
                    continue
                assert gap[0, j] == pytest.approx(want, abs=1e-9), (m.name, d, j)
            assert np.nan_to_num(gap[1:]).max() == 0.0  # no event in other trials
    with pytest.raises(KeyError, match="leak_1m"):
        sc.generate(CID, context(s, n), Streams(6, 0))


# ----------------------------------------------------------------------------------- streams
def _extend(marker: dict, median: float, gmr: float, p: float) -> dict:
    return {**marker, "median": [*marker["median"], median], "event_gmr": [*marker["event_gmr"], gmr],
            "p_missing": [*marker["p_missing"], p]}


def test_adding_a_later_day_leaves_earlier_days_bit_identical():
    s, n = 30, 200
    latent = {"leak_1m": fake_event(s, n, rate=0.3)}
    treated = np.random.default_rng(7).random((s, n)) < 0.5
    three = section(event="leak_1m")
    four = section(event="leak_1m", days=[1, 3, 5, 7], markers=[_extend(m, 10.0, 2.0, 0.3) for m in default_markers()])
    a = three.generate(CID, context(s, n, treated, latent), Streams(7, 3))
    b = four.generate(CID, context(s, n, treated, latent), Streams(7, 3))
    for m in three.markers:
        for d in three.days:
            assert np.array_equal(a[f"{m.name}_pod{d}"], b[f"{m.name}_pod{d}"], equal_nan=True), (m.name, d)
    assert not np.array_equal(a["il6_serum_mean_log"], b["il6_serum_mean_log"])
    # another section id (another endpoint) draws from other streams
    other = three.generate("other_markers", context(s, n, treated, latent), Streams(7, 3))
    assert not np.array_equal(a["il6_serum_pod1"], other["il6_serum_pod1"])


def test_first_patients_do_not_depend_on_the_trial_size():
    sc = section(event="leak_1m", markers=[{**m, "p_missing": [0.1, 0.2, 0.3]} for m in default_markers()])
    s, n_big, n_small = 7, 90, 40
    latent = fake_event(s, n_big, rate=0.3)
    treated = np.random.default_rng(8).random((s, n_big)) < 0.5
    small_latent = {k: v[:, :n_small] for k, v in latent.items()}
    big = sc.generate(CID, context(s, n_big, treated, {"leak_1m": latent}), Streams(8, 1))
    small = sc.generate(CID, context(s, n_small, treated[:, :n_small], {"leak_1m": small_latent}), Streams(8, 1))
    for name in small:
        assert np.array_equal(small[name], big[name][:, :n_small], equal_nan=True), name


def test_observe_keeps_in_hospital_values_of_enrolled_patients():
    sc = section(summaries=["per_day"])
    s, n = 3, 10
    ctx = context(s, n)
    latent = sc.generate(CID, ctx, Streams(9, 0))
    attended = np.zeros((s, n), bool)  # lost to follow-up does not matter in hospital
    died = np.zeros((s, n), bool)
    seen = sc.observe(CID, ctx, latent, Status(attended, died))
    assert set(seen) == {a.name for a in sc.analysed(CID)} and not any(k.endswith("mean_log") for k in seen)
    assert all(np.array_equal(seen[k], latent[k], equal_nan=True) for k in seen)
    enrolled = np.ones((s, n), bool)
    enrolled[:, -3:] = False
    flowed = sc.observe(CID, ctx, latent, Status(attended, died, enrolled=enrolled))
    assert np.isnan(flowed["il6_serum_pod1"][:, -3:]).all()
    assert np.array_equal(flowed["il6_serum_pod1"][:, :-3], latent["il6_serum_pod1"][:, :-3])


# -------------------------------------------------------------------------------------- laws
def test_mean_weights_enumerate_the_available_days():
    assert np.allclose(mean_weights((0.0, 0.0, 0.0)), 1 / 3)
    p = np.array([0.1, 0.3, 0.5])
    brute = np.zeros(3)
    for bits in range(1, 8):
        a = np.array([(bits >> i) & 1 for i in range(3)], bool)
        brute += np.prod(np.where(a, 1 - p, p)) * a / a.sum()
    np.testing.assert_allclose(mean_weights(tuple(p)), brute / (1 - p.prod()), rtol=1e-12)
    assert mean_weights(tuple(p)).sum() == pytest.approx(1.0)


def test_true_effect_without_a_link_is_the_log_gmr():
    sc = section()
    model = FakeModel({})
    assert sc.true_effect(CID, "il6_drain_pod3", "difference", model) == pytest.approx(np.log(0.7))
    assert sc.true_effect(CID, "tnf_serum_mean_log", "difference", model) == pytest.approx(np.log(0.85))
    assert sc.true_effect(CID, "il6_drain_pod3", "p_treatment_lower", model) is None
    assert sc.true_effect(CID, "not_an_endpoint", "difference", model) is None


def test_true_effect_matches_a_large_simulation_with_a_linked_event():
    leak = BinaryEvent(risk_factors=(), rate_control=0.3, effect=0.5)
    markers = [{**m, "p_missing": [0.3, 0.0, 0.5]} for m in default_markers()]
    sc = section(event="leak_1m", markers=markers, event_lead_days=2.0)
    model = FakeModel({"leak_1m": leak, CID: sc})
    s, n = 100, 2000
    treated = alternating_arms(s, n)
    streams = Streams(10, 0)
    ctx = context(s, n, treated)
    ctx.latent["leak_1m"] = leak.generate("leak_1m", ctx, streams)
    out = sc.generate(CID, ctx, streams)
    for name, x in out.items():
        t, c = x[treated], x[~treated]
        t, c = t[~np.isnan(t)], c[~np.isnan(c)]
        diff, se = difference_and_se(t, c)
        truth = sc.true_effect(CID, name, "difference", model)
        assert abs(diff - truth) <= 4.5 * se, (name, diff, truth, se)
    # the raise matters: the truth differs from the plain log GMR where the event GMR is large
    assert abs(sc.true_effect(CID, "il6_drain_pod5", "difference", model) - np.log(0.7)) > 0.05
