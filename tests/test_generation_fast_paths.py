"""Patient generation gives the same bits as its plain formulation: draws transposed first, then computed.

Each fast path (compare or compute patient-major, transpose only what is kept, gather the few values an
event needs, work in slabs of patients) is checked against the straightforward code it replaced, bit for
bit (np.array_equal with NaN in the same places, same dtypes and shapes), at shapes that cross the slab
and transpose block boundaries, so a change that moves a single number fails here.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import ndtr, ndtri

from trialsim.config.loader import with_values
from trialsim.endpoints.assessor import assessor_uniforms
from trialsim.endpoints.base import PatientContext
from trialsim.endpoints.binary_event import arm_rates
from trialsim.endpoints.markers import LogNormalMarkers, _parameters
from trialsim.endpoints.risk import patient_risk
from trialsim.followup import draw_follow_up
from trialsim.model import build_model
from trialsim.population import draw_covariates
from trialsim.rng import Streams, patient_draws, patient_major, trials_first

# (trials, patients): many patients, one trial, one patient, trials across several markers slabs, empty
SHAPES = [(40, 700), (7, 3), (1, 300), (60, 1), (3000, 11), (0, 5), (4, 0)]


def assert_same(got: np.ndarray, expected: np.ndarray) -> None:
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected, equal_nan=expected.dtype.kind == "f")
    if expected.dtype.kind == "f":
        assert np.array_equal(np.signbit(got), np.signbit(expected))


def assert_same_dicts(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for key in expected:
        assert_same(got[key], expected[key])


def context(scenario, n_trials: int, n_patients: int, seed: int = 5) -> PatientContext:
    model = build_model(scenario)
    streams = Streams(seed, 1)
    covariates = draw_covariates(scenario.population, n_trials, n_patients, streams=streams)
    treated = np.random.default_rng(seed).random((n_trials, n_patients)) < 0.5
    return PatientContext(n_trials, n_patients, covariates, treated, model.prevalence)


# ------------------------------------------------------------------------------------------- rng
@pytest.mark.parametrize("shape", [(200, 70, 4), (65, 1000, 3), (33, 5, 2), (1, 9, 3), (9, 1, 4), (0, 4, 2)])
@pytest.mark.parametrize("dtype", [np.float64, np.bool_, np.int64])
def test_blocked_transpose_of_a_strided_plane_equals_the_plain_copy(shape, dtype):
    draw = (np.random.default_rng(2).random(shape) * 10).astype(dtype)
    for k in range(shape[-1]):
        plane = draw[..., k]
        got = trials_first(plane)
        assert got.flags.c_contiguous
        assert_same(got, np.ascontiguousarray(plane.T))
    assert_same(trials_first(draw[::3, :, 1]), np.ascontiguousarray(draw[::3, :, 1].T))


@pytest.mark.parametrize("method, extra", [("random", ()), ("random", (3,)), ("standard_normal", (4,)),
                                           ("standard_normal", ())])
def test_patient_draws_is_the_transposed_patient_major_draw(method, extra, loops):
    def rng():
        return Streams(9, 2)("test")

    plain = np.ascontiguousarray(np.swapaxes(getattr(rng(), method)(size=(130, 45) + extra), 0, 1))
    assert_same(patient_draws(rng(), method, 45, 130, extra=extra), plain)
    assert_same(trials_first(patient_major(rng(), method, 45, 130, extra=extra)), plain)


# ------------------------------------------------------------------------------------ population
@pytest.mark.parametrize("n_trials, n_patients", SHAPES)
def test_covariates_equal_the_comparison_of_the_transposed_uniforms(default_scenario, n_trials, n_patients):
    streams = Streams(4, 3)
    got = draw_covariates(default_scenario.population, n_trials, n_patients, streams=streams)
    expected = {c.name: (patient_draws(streams("population", c.name), "random", n_trials, n_patients) < c.prevalence).astype(float)
                for c in default_scenario.population.covariates}
    assert_same_dicts(got, expected)


# ------------------------------------------------------------------------------------- follow-up
def plain_follow_up(follow_up, ctx, event, streams):
    u = patient_draws(streams("follow_up"), "random", ctx.n_trials, ctx.n_patients, extra=(3,))
    if event is None:
        p_death = np.full(ctx.shape, follow_up.p_death)
        start = np.ones(ctx.shape)
    else:
        p_death = np.where(event["event"], follow_up.p_death_after_event, follow_up.p_death)
        start = np.where(event["event"], np.nan_to_num(event["day"], nan=1.0), 1.0)
    died = u[..., 0] < p_death
    death_day = np.where(died, start + u[..., 1] * np.maximum(follow_up.horizon_days - start, 0.0), np.nan)
    return died, death_day, (u[..., 2] < follow_up.p_missing_visit) & ~died


@pytest.mark.parametrize("n_trials, n_patients", SHAPES)
@pytest.mark.parametrize("linked", [False, True])
def test_follow_up_equals_the_plain_formulation(default_scenario, n_trials, n_patients, linked):
    fu = with_values(default_scenario, {"follow_up.p_death": 0.2, "follow_up.p_death_after_event": 0.6}).follow_up
    ctx = PatientContext(n_trials, n_patients, {}, np.zeros((n_trials, n_patients), bool))
    event = None
    if linked:  # events, some diagnosed after the visit (no time left to die in)
        rng = np.random.default_rng(n_trials + n_patients)
        occurred = rng.random(ctx.shape) < 0.3
        event = {"event": occurred, "day": np.where(occurred, rng.random(ctx.shape) * 45.0, np.nan)}
    got = draw_follow_up(fu, ctx, event, streams=Streams(3, 1))
    for value, expected in zip((got.died, got.death_day, got.misses_visit), plain_follow_up(fu, ctx, event, Streams(3, 1))):
        assert_same(value, expected)


# ----------------------------------------------------------------------------------- binary event
def plain_binary_event(section, cid, ctx, streams):
    s, n = ctx.shape
    risk = patient_risk(section.risk_factors, ctx.covariates, ctx.prevalence, ctx.treated,
                        arm_rates(section, "control")[0], arm_rates(section, "treatment")[0])
    u = patient_draws(streams("endpoint", cid), "random", s, n, extra=(4,))
    occurred = u[..., 0] < risk
    hit = np.nonzero(occurred)
    events = u[hit]
    grade = np.full((s, n), -1, dtype=np.intp)
    grade[hit] = np.searchsorted(np.cumsum(section.grade_split)[:-1], events[:, 1], side="right")
    mu, sd = np.log(section.day_median), section.day_log_sd
    upper = ndtr((np.log(section.horizon_days) - mu) / sd)
    day = np.full((s, n), np.nan)
    day[hit] = np.exp(mu + sd * ndtri(events[:, 2] * upper))
    detected = np.zeros((s, n), dtype=bool)
    detected[hit] = (grade[hit] > 0) | (events[:, 3] < section.p_detect_first_grade)
    latent = {"event": occurred, "grade": grade, "day": day, "detected": detected, "risk": risk}
    return latent | assessor_uniforms(cid, ctx, streams, section.assessor_bias)


@pytest.mark.parametrize("n_trials, n_patients", SHAPES)
def test_binary_event_equals_the_plain_formulation(default_scenario, n_trials, n_patients):
    ctx = context(default_scenario, n_trials, n_patients)
    section = default_scenario.endpoints["leak_1m"]
    assert_same_dicts(section.generate("leak_1m", ctx, Streams(8, 0)), plain_binary_event(section, "leak_1m", ctx, Streams(8, 0)))


# ---------------------------------------------------------------------------------------- ordinal
def plain_ordinal(section, cid, ctx, streams):
    u = patient_draws(streams("endpoint", cid), "random", *ctx.shape, extra=(3,))
    after = ctx.latent[section.event]["event"].astype(bool) if section.event is not None else np.zeros(ctx.shape, bool)
    treated = np.asarray(ctx.treated, dtype=bool)
    cum = np.empty(ctx.shape + (len(section.grades) - 1,))
    for ev in (False, True):
        for tr in (False, True):
            cum[(after == ev) & (treated == tr)] = section._cumulative(ev, tr)
    grade = (cum <= u[..., :1]).sum(axis=-1)
    baseline = np.searchsorted(np.cumsum(section.baseline_probs)[:-1], u[..., 1], side="right")
    latent = {"grade": grade, "baseline": baseline, "missing_u": u[..., 2]}
    return latent | assessor_uniforms(cid, ctx, streams, section.assessor_bias)


@pytest.mark.parametrize("n_trials, n_patients", SHAPES)
@pytest.mark.parametrize("changes", [{}, {"endpoints.colonoscopy.treatment_odds_ratio": 2.5,
                                          "endpoints.colonoscopy.baseline_probs": [0.5, 0.3, 0.0, 0.2]}])
def test_ordinal_grade_equals_the_plain_formulation(default_scenario, n_trials, n_patients, changes):
    scenario = with_values(default_scenario, changes) if changes else default_scenario
    ctx = context(scenario, n_trials, n_patients)
    ctx.latent["leak_1m"] = scenario.endpoints["leak_1m"].generate("leak_1m", ctx, Streams(8, 0))
    section = scenario.endpoints["colonoscopy"]
    assert_same_dicts(section.generate("colonoscopy", ctx, Streams(8, 0)), plain_ordinal(section, "colonoscopy", ctx, Streams(8, 0)))


# ---------------------------------------------------------------------------------------- markers
def plain_mean_log(section, levels, p_missing):
    n_days = len(section.days)
    means = levels[:, n_days]
    np.sum(levels[:, :n_days], axis=1, out=means)
    means /= n_days
    for j in np.nonzero(p_missing.any(axis=0))[0]:
        gap = np.nonzero(np.isnan(means[j]))
        if gap[0].size:
            values = levels[j, :n_days][:, gap[0], gap[1]]
            observed = ~np.isnan(values)
            counts = observed.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                means[j][gap] = np.where(counts > 0, np.where(observed, values, 0.0).sum(axis=0) / counts, np.nan)


def plain_markers(section, cid, ctx, streams):
    """Trials-first: the normals transposed, then each step over every patient at once."""
    p = _parameters(section)
    s, n = ctx.shape
    n_days, keep = len(section.days), section.kept()
    levels = np.empty((len(keep), n_days + 1, s, n))
    state = np.empty((len(keep), s, n))
    for k, day in enumerate(section.days):
        z = patient_draws(streams("endpoint", cid, "day", str(day)), "standard_normal", s, n, extra=(len(section.markers),))
        for i, m in enumerate(keep):
            w = p.chol[m, 0] * z[..., 0]
            for j in range(1, m + 1):
                w += p.chol[m, j] * z[..., j]
            if k:
                w *= p.innovation[k]
                w += p.rho[k] * state[i]
            state[i] = w
            levels[i, k] = p.log_median[k, m] + p.log_sd[m] * w
    by_day, rows = levels[:, :n_days], list(keep)
    if section.event is not None:
        linked = ctx.latent[section.event]
        hit = np.nonzero(linked["event"])
        if hit[0].size:
            raised = p.days[:, None] >= (np.asarray(linked["day"])[hit] - section.event_lead_days)
            by_day[:, :, hit[0], hit[1]] += np.where(raised[None], p.log_event_gmr.T[rows][:, :, None], 0.0)
    if p.any_treatment and ctx.treated.any():
        np.add(by_day, p.log_treatment_gmr[rows][:, None, None, None], out=by_day, where=ctx.treated)
    at = {m: i for i, m in enumerate(keep)}
    for k, j in zip(*np.nonzero(p.p_missing)):
        if j in at:
            u = patient_draws(streams("endpoint", cid, "missing", section.markers[j].name, str(section.days[k])), "random", s, n)
            by_day[at[j], k][u < p.p_missing[k, j]] = np.nan
    if "mean_log" in section.summaries:
        plain_mean_log(section, levels, p.p_missing[:, rows])
    out = {}
    for i, j in enumerate(keep):
        m = section.markers[j]
        for k, d in enumerate(section.days):
            out[f"{m.name}_pod{d}"] = levels[i, k]
        if "mean_log" in section.summaries:
            out[f"{m.name}_mean_log"] = levels[i, n_days]
    return out


def markers_section(base: LogNormalMarkers, **changes) -> LogNormalMarkers:
    return LogNormalMarkers.model_validate_json(json.dumps({**base.model_dump(mode="json"), **changes}))


@pytest.mark.parametrize("n_trials, n_patients", SHAPES)
@pytest.mark.parametrize("changes", [
    {},
    {"summaries": ["mean_log"]},
    {"summaries": ["per_day"], "analysed_markers": ["tnf_drain", "il6_serum"]},
    {"summaries": ["mean_log"], "analysed_markers": ["il6_drain"], "event": None},
    {"days": [0, 1, 2, 4, 7, 9, 12, 14, 20, 30], "event_lead_days": 0.0},  # more days than the pairwise sum's block
])
def test_markers_equal_the_plain_trials_first_formulation(default_scenario, n_trials, n_patients, changes, loops):
    base = default_scenario.endpoints["cytokines"]
    if "days" in changes:  # every per-day field one value per day, missing samples on the last days
        k = len(changes["days"])
        changes = changes | {"markers": [m.model_dump(mode="json") | {"median": [m.median[0]] * k, "event_gmr": [m.event_gmr[-1]] * k,
                                                                      "p_missing": [0.0] * (k - 3) + [0.3, 0.6, 0.9]}
                                         for m in base.markers]}
    section = markers_section(base, **changes)
    ctx = context(default_scenario, n_trials, n_patients)
    ctx.latent["leak_1m"] = default_scenario.endpoints["leak_1m"].generate("leak_1m", ctx, Streams(8, 0))
    got = section.generate("cytokines", ctx, Streams(8, 0))
    assert_same_dicts(got, plain_markers(section, "cytokines", ctx, Streams(8, 0)))
    for a in section.analysed("cytokines"):  # what is analysed is a (trials, patients) view of patient-major values
        assert got[a.name].T.flags.c_contiguous


def test_markers_slabs_do_not_move_a_bit(default_scenario, monkeypatch):
    """Slabs of one patient, of a few, and of everyone give the same levels (numpy's formulation, _Slabs)."""
    import trialsim.endpoints.markers as markers

    ctx = context(default_scenario, 30, 50)
    ctx.latent["leak_1m"] = default_scenario.endpoints["leak_1m"].generate("leak_1m", ctx, Streams(8, 0))
    section = default_scenario.endpoints["cytokines"]
    results = []
    for values in (1, 7 * 30, 10**9):
        monkeypatch.setattr(markers, "SLAB_VALUES", values)
        results.append(section.generate("cytokines", ctx, Streams(8, 0)))
    assert_same_dicts(results[0], results[1])
    assert_same_dicts(results[0], results[2])


def test_untested_batch_has_the_same_patients_and_no_statistics(default_scenario):
    # model_moments reads the patients of one large trial and nothing else: generating them without running the
    # tests (a conditional odds ratio at 100,000 per arm was half its cost) must not move a bit of them
    from trialsim.simulate import simulate_trials

    tested = simulate_trials(default_scenario, 30, streams=Streams(8, 2), keep_patients=True)
    alone = simulate_trials(default_scenario, 30, streams=Streams(8, 2), keep_patients=True, tested=False)
    assert tested.stats and not alone.stats and not alone.arm_estimates
    assert_same(alone.patients.treated, tested.patients.treated)
    assert_same_dicts(alone.patients.observed, tested.patients.observed)
