"""The plain_binary and plain_continuous endpoint families, exercised directly (no engine).

Statistical checks compare simulated rates and means with the families' exact laws within a few
Monte Carlo standard errors (fixed seeds, so the tests are deterministic).
"""
from __future__ import annotations

import numpy as np
import pytest

from trialsim.config.loader import ConfigError, load_scenario, validate, with_values
from trialsim.endpoints.base import PatientContext, Status
from trialsim.endpoints.plain_binary import PlainBinary
from trialsim.endpoints.plain_continuous import PlainContinuous
from trialsim.followup import draw_follow_up
from trialsim.model import build_model
from trialsim.rng import Streams, patient_draws
from trialsim.simulate import simulate_trials

Z = 4.5  # tolerance in Monte Carlo standard errors


def scenario(endpoints: dict, *, covariates=(), **follow_up):
    raw = {"endpoints": endpoints, "population": {"covariates": [{"name": n, "prevalence": p} for n, p in covariates]}}
    if follow_up:
        raw["follow_up"] = follow_up
    return validate(raw)


def simulate_patients(sc, n_trials: int, n_per_arm: int, *, seed: int = 1, block: int = 0, status: Status | None = None):
    """Generate and observe every section of ``sc`` for ``n_trials`` trials of ``n_per_arm`` per arm.

    Covariates are independent Bernoulli, the first half of each trial is the control arm, and death
    and missed visits come from :func:`trialsim.followup.draw_follow_up` (unless ``status`` is given).
    Returns the model, the context, the status and the observations.
    """
    model = build_model(sc)
    streams = Streams(seed, block)
    n = 2 * n_per_arm
    shape = (n_trials, n)
    draws = patient_draws(streams("test", "population"), "random", n_trials, n, extra=(max(1, len(model.prevalence)),))
    covariates = {name: (draws[..., i] < p).astype(float) for i, (name, p) in enumerate(model.prevalence.items())}
    treated = np.zeros(shape, dtype=bool)
    treated[:, n_per_arm:] = True
    ctx = PatientContext(n_trials, n, covariates, treated, prevalence=model.prevalence)
    for cid in model.order:
        ctx.latent[cid] = model.section(cid).generate(cid, ctx, streams)
    if status is None:
        fu = sc.follow_up
        event = model.section(fu.death_event).event_values(ctx.latent[fu.death_event]) if fu.death_event else None
        follow = draw_follow_up(fu, ctx, event, streams=streams)
        status = Status(attended=~follow.died & ~follow.misses_visit, died=follow.died)
    obs = {}
    for cid in model.order:
        obs.update(model.section(cid).observe(cid, ctx, ctx.latent[cid], status))
    return model, ctx, status, obs


def arm_rate(values: np.ndarray, treated: np.ndarray, arm: str) -> tuple[float, float, float]:
    """(rate among observed, its binomial SE, share missing) in ``arm``."""
    x = values[treated] if arm == "treatment" else values[~treated]
    seen = x[~np.isnan(x)]
    p = float(seen.mean())
    return p, float(np.sqrt(p * (1 - p) / seen.size)), float(np.isnan(x).mean())


def binary(**kw) -> dict:
    return {"family": "plain_binary", **kw}


def continuous(**kw) -> dict:
    return {"family": "plain_continuous", **kw}


# ------------------------------------------------------------------------------------ plain_binary
def test_binary_requires_rate_and_effect():
    with pytest.raises(ConfigError, match="rate_control"):
        scenario({"ssi": binary(effect=0.5)})
    with pytest.raises(ConfigError, match="effect"):
        scenario({"ssi": binary(rate_control=0.2)})
    with pytest.raises(ConfigError, match="treatment rate"):
        scenario({"ssi": binary(rate_control=0.6, effect=2.0)})
    with pytest.raises(ConfigError, match="treatment rate"):
        scenario({"ssi": binary(rate_control=0.2, effect_measure="risk_difference", effect=-0.3)})


@pytest.mark.parametrize("measure, effect, expected", [
    ("risk_ratio", 0.5, 0.10),
    ("odds_ratio", 0.5, (0.5 * 0.2 / 0.8) / (1 + 0.5 * 0.2 / 0.8)),
    ("risk_difference", -0.05, 0.15),
    ("rate", 0.07, 0.07),
])
def test_binary_effect_measures(measure, effect, expected):
    section = PlainBinary(family="plain_binary", rate_control=0.2, effect_measure=measure, effect=effect)
    assert section.rate("control") == 0.2
    assert section.rate("treatment") == pytest.approx(expected, abs=1e-12)
    (a,) = section.analysed("ssi")
    assert a.name == "ssi" and a.kind == "binary" and a.label == "ssi" and a.measured_at_visit
    kind = {"risk_ratio": "ratio", "odds_ratio": "ratio", "risk_difference": "difference", "rate": "rate"}[measure]
    assert a.effect.kind == kind and a.effect.path == "endpoints.ssi.effect" and a.effect.assumed == effect
    assert a.effect.lower < a.effect.null < a.effect.upper


def test_binary_event_shapes_and_nan_pattern():
    sc = scenario({"ssi": binary(rate_control=0.3, effect=0.5, p_missing=0.2)}, p_missing_visit=0.3, p_death=0.1)
    _, ctx, status, obs = simulate_patients(sc, 20, 500)
    latent, x = ctx.latent["ssi"], obs["ssi"]
    assert x.shape == (20, 1000) and x.dtype == float
    assert np.array_equal(np.isnan(x), ~(status.assessed & (latent["missing_u"] >= 0.2)))
    assert not np.isnan(x[status.died & (latent["missing_u"] >= 0.2)]).any()  # a death is known
    ev = sc.endpoints["ssi"].event_values(latent)
    assert np.array_equal(ev["day"] == 0.0, ev["event"]) and np.isnan(ev["day"][~ev["event"]]).all()
    assert np.array_equal(ev["grade"], np.where(ev["event"], 1, -1))
    model = build_model(sc)
    assert model.event_probability("ssi", "treatment") == pytest.approx(0.15)
    assert sc.endpoints["ssi"].event_by_day("ssi", "control", 3.0, model) == 0.3
    assert sc.endpoints["ssi"].event_by_day("ssi", "control", 0.0, model) == 0.0


def test_binary_not_at_visit_only_misses_at_random():
    sc = scenario({"ssi": binary(rate_control=0.3, effect=0.5, p_missing=0.1, measured_at_visit=False)},
                  p_missing_visit=0.5, p_death=0.2)
    model, ctx, status, obs = simulate_patients(sc, 20, 500)
    assert np.array_equal(np.isnan(obs["ssi"]), ctx.latent["ssi"]["missing_u"] < 0.1)
    law = model.binary_law("ssi", "control")
    assert law.p_event == 0.3 and law.p_missing == pytest.approx(0.1)
    enrolled = np.ones((20, 1000), bool)
    enrolled[:, ::2] = False
    flow = Status(status.attended, status.died, enrolled=enrolled)
    _, _, _, obs = simulate_patients(sc, 20, 500, status=flow)
    assert np.isnan(obs["ssi"][:, ::2]).all()


@pytest.mark.parametrize("follow_up", [
    {"p_missing_visit": 0.2, "p_death": 0.05},
    {"p_missing_visit": 0.3, "p_death": 0.05, "death_event": "ssi", "p_death_after_event": 0.5},
])
def test_binary_rates_match_law_and_config(follow_up):
    # covariates with strong odds ratios: each arm's marginal rate must still be the configured one
    sc = scenario({"ssi": binary(rate_control=0.25, effect_measure="odds_ratio", effect=0.5, p_missing=0.1,
                                 risk_factors=[{"covariate": "open", "odds_ratio": 4.0}, {"covariate": "male", "odds_ratio": 0.5}])},
                  covariates=[("open", 0.3), ("male", 0.6)], **follow_up)
    model, ctx, status, obs = simulate_patients(sc, 50, 2000, seed=7)
    section = sc.endpoints["ssi"]
    for arm in ("control", "treatment"):
        treated = ctx.treated
        events = ctx.latent["ssi"]["event"][treated if arm == "treatment" else ~treated]
        assert abs(events.mean() - section.rate(arm)) < Z * np.sqrt(section.rate(arm) * (1 - section.rate(arm)) / events.size)
        p, se, missing = arm_rate(obs["ssi"], treated, arm)
        law = model.binary_law("ssi", arm)
        assert abs(p - law.p_event) < Z * se
        assert abs(missing - law.p_missing) < Z * np.sqrt(law.p_missing * (1 - law.p_missing) / events.size)
    if "death_event" in follow_up:  # deaths after the event are kept, the lost are mostly event-free
        assert model.binary_law("ssi", "control").p_event > 0.25


def test_binary_true_effect_matches_simulation():
    sc = scenario({"ssi": binary(rate_control=0.3, effect=0.5, p_missing=0.05)},
                  p_missing_visit=0.4, p_death=0.02, death_event="ssi", p_death_after_event=0.6)
    model, ctx, _, obs = simulate_patients(sc, 50, 2000, seed=3)
    truth = model.true_effect("ssi", "risk_difference")
    (p_c, se_c, _), (p_t, se_t, _) = (arm_rate(obs["ssi"], ctx.treated, arm) for arm in ("control", "treatment"))
    assert abs((p_t - p_c) - truth) < Z * np.hypot(se_c, se_t)
    assert truth != pytest.approx(0.15 - 0.30)  # death and loss change the analysable risk difference
    assert model.true_effect("ssi", "p_treatment_lower") is None


def test_binary_law_unknown_when_death_follows_another_event():
    sc = scenario({"ssi": binary(rate_control=0.3, effect=0.5), "leak": binary(rate_control=0.1, effect=0.5)},
                  death_event="leak")
    model = build_model(sc)
    assert model.binary_law("ssi", "control") is None and model.true_effect("ssi", "risk_difference") is None
    assert model.binary_law("leak", "control") is not None


def test_binary_first_patients_do_not_depend_on_trial_size():
    sc = scenario({"ssi": binary(rate_control=0.3, effect=0.5, p_missing=0.2)})
    section = sc.endpoints["ssi"]
    out = []
    for n in (10, 25):
        ctx = PatientContext(4, n, {}, np.zeros((4, n), bool), prevalence={})
        out.append(section.generate("ssi", ctx, Streams(5, 0)))
    for key in ("event", "missing_u"):
        assert np.array_equal(out[0][key], out[1][key][:, :10])


# -------------------------------------------------------------------------------- plain_continuous
def test_continuous_validation():
    with pytest.raises(ConfigError, match="sd"):
        scenario({"crp": continuous(mean_control=1.0, effect=0.5)})
    with pytest.raises(ConfigError, match="median"):
        scenario({"crp": continuous(scale="log", mean_control=0.0, sd=0.5, effect=0.8)})
    with pytest.raises(ConfigError, match="ratio"):
        scenario({"crp": continuous(scale="log", mean_control=100.0, sd=0.5, effect=-0.2)})
    with pytest.raises(ConfigError, match="event_shift"):
        scenario({"crp": continuous(mean_control=1.0, sd=1.0, effect=0.0, event_shift=1.0)})
    with pytest.raises(ConfigError, match="covariate 'open'"):
        scenario({"crp": continuous(mean_control=1.0, sd=1.0, effect=0.0, covariate_effects={"open": 0.3})})


@pytest.mark.parametrize("scale, kind, null", [("identity", "difference", 0.0), ("log", "ratio", 1.0)])
def test_continuous_analysed(scale, kind, null):
    section = PlainContinuous(family="plain_continuous", scale=scale, mean_control=100.0, sd=0.6, effect=0.75,
                              covariate_effects={"open": 0.3}, unit="mg/L")
    (a,) = section.analysed("crp")
    assert (a.name, a.kind, a.scale, a.unit, a.tests, a.measured_at_visit) == ("crp", "continuous", scale, "mg/L", ("welch",), False)
    assert a.effect.kind == kind and a.effect.null == null and a.effect.path == "endpoints.crp.effect"
    assert section.effect_measure == kind
    assert section.covariates_used() == ("open",)


def test_continuous_log_scale_moments_and_covariate_shift():
    sc = scenario({"crp": continuous(scale="log", mean_control=130.0, sd=0.6, effect=0.75, covariate_effects={"open": 0.3},
                                     p_missing=0.1)}, covariates=[("open", 0.3)])
    model, ctx, _, obs = simulate_patients(sc, 40, 2500, seed=11)
    x, latent = obs["crp"], ctx.latent["crp"]
    assert np.array_equal(np.isnan(x), latent["missing_u"] < 0.1)  # in hospital: no visit loss
    np.testing.assert_allclose(latent["value"], np.exp(latent["analysed"]))
    control, treated = x[~ctx.treated], x[ctx.treated]
    n = np.sum(~np.isnan(control))
    sd_total = np.sqrt(0.6**2 + 0.3**2 * 0.3 * 0.7)
    # centred covariate shift: the control mean of the logs is log(median) over the population
    assert abs(np.nanmean(control) - np.log(130.0)) < Z * sd_total / np.sqrt(n)
    assert abs(np.nanmean(treated) - np.nanmean(control) - np.log(0.75)) < Z * sd_total * np.sqrt(2 / n)
    assert model.true_effect("crp", "difference") == pytest.approx(np.log(0.75))
    open_ = ctx.covariates["open"][~ctx.treated].astype(bool)
    shift = np.nanmean(control[open_]) - np.nanmean(control[~open_])
    assert abs(shift - 0.3) < Z * 0.6 * np.sqrt(1 / np.sum(open_) + 1 / np.sum(~open_))
    # Mann-Whitney's estimand P(treatment < control), exact over the covariate patterns
    truth = model.true_effect("crp", "p_treatment_lower")
    c, t = np.sort(control[~np.isnan(control)]), treated[~np.isnan(treated)]
    estimate = float(np.mean(len(c) - np.searchsorted(c, t, side="right"))) / len(c)
    assert abs(estimate - truth) < 0.01  # SE of a U-statistic of ~45,000 per arm is ~0.0015
    assert truth > 0.5


def test_continuous_visit_missingness():
    sc = scenario({"qol": continuous(mean_control=50.0, sd=10.0, effect=5.0, measured_at_visit=True, p_missing=0.05)},
                  p_missing_visit=0.2, p_death=0.1)
    _, ctx, status, obs = simulate_patients(sc, 10, 500)
    assert np.array_equal(np.isnan(obs["qol"]), ~(status.attended & (ctx.latent["qol"]["missing_u"] >= 0.05)))
    assert np.isnan(obs["qol"][status.died]).all()


def test_continuous_event_link_true_effect_matches_simulation():
    # the event is more common in control; death follows it, so survivors (analysable) are selected
    sc = scenario({"leak": binary(rate_control=0.3, effect=0.4),
                   "crp": continuous(scale="log", mean_control=100.0, sd=0.5, effect=0.9, event="leak", event_shift=0.8,
                                     measured_at_visit=True)},
                  p_missing_visit=0.1, p_death=0.02, death_event="leak", p_death_after_event=0.5)
    model, ctx, _, obs = simulate_patients(sc, 50, 2000, seed=21)
    assert model.order == ("leak", "crp")
    x = obs["crp"]
    c, t = x[~ctx.treated], x[ctx.treated]
    diff = np.nanmean(t) - np.nanmean(c)
    se = np.sqrt(np.nanvar(t) / np.sum(~np.isnan(t)) + np.nanvar(c) / np.sum(~np.isnan(c)))
    truth = model.true_effect("crp", "difference")
    assert abs(diff - truth) < Z * se
    p_c, p_t = 0.3 * 0.5 / (0.3 * 0.5 + 0.7 * 0.98), 0.12 * 0.5 / (0.12 * 0.5 + 0.88 * 0.98)
    assert truth == pytest.approx(np.log(0.9) + 0.8 * (p_t - p_c))
    u_truth = model.true_effect("crp", "p_treatment_lower")
    cs = np.sort(c[~np.isnan(c)])
    tt = t[~np.isnan(t)]
    estimate = float(np.mean(len(cs) - np.searchsorted(cs, tt, side="right"))) / len(cs)
    assert abs(estimate - u_truth) < 0.01


def test_continuous_true_effect_unknown_when_selection_mixes_covariates():
    endpoints = {"leak": binary(rate_control=0.3, effect=0.4, risk_factors=[{"covariate": "open", "odds_ratio": 3.0}]),
                 "crp": continuous(mean_control=1.0, sd=1.0, effect=0.5, covariate_effects={"open": 0.3}, measured_at_visit=True)}
    sc = scenario(endpoints, covariates=[("open", 0.3)], death_event="leak", p_death_after_event=0.5)
    assert build_model(sc).true_effect("crp", "difference") is None
    endpoints["crp"]["measured_at_visit"] = False  # in hospital: no selection by death
    sc = scenario(endpoints, covariates=[("open", 0.3)], death_event="leak", p_death_after_event=0.5)
    assert build_model(sc).true_effect("crp", "difference") == 0.5


def test_crp_config_loads():
    sc = load_scenario("configs/crp_randomised_30.toml")
    model = build_model(sc)
    assert model.primary.name == "crp_pod3" and model.primary.scale == "log"
    assert sc.allocation.scheme == "permuted_block" and sc.follow_up.death_event is None
    assert {a.name for a in model.analysed} == {"crp_pod3", "ssi_30d"}
    assert model.true_effect("crp_pod3", "difference") == pytest.approx(np.log(0.75))
    law_c, law_t = model.binary_law("ssi_30d", "control"), model.binary_law("ssi_30d", "treatment")
    assert law_c.p_event == pytest.approx(0.15) and law_t.p_event == pytest.approx(0.09)


def test_crp_trials_through_the_pipeline_estimate_the_true_effects():
    sc = with_values(load_scenario("configs/crp_randomised_30.toml"), {"endpoints.ssi_30d.tests": ["fisher", "chi2"]})
    model = build_model(sc)
    batch = simulate_trials(sc, 2000, streams=Streams(2, 0))
    for (name, test), estimand, tolerance in ((("crp_pod3", "welch_log"), "difference", 0.015),
                                              (("crp_pod3", "mann_whitney"), "p_treatment_lower", 0.007),
                                              (("ssi_30d", "chi2"), "risk_difference", 0.008)):
        estimate = np.nanmean(batch.stats[(name, test)].estimate)  # mean of 2,000 trials: tolerance about 4 SE
        assert abs(estimate - model.true_effect(name, estimand)) < tolerance, (name, test)
