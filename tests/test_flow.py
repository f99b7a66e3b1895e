"""Patient flow (SimPy): exact event logs with fixed inputs, then statistical checks of the random flow."""
from __future__ import annotations

import datetime
import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy import stats

from trialsim.config.flow import DAYS_PER_MONTH, FlowConfig
from trialsim.config.schema import AllocationConfig
from trialsim.designs import allocation_sequence
from trialsim.flow import FlowDraws, draw_flow, run_flow, simulate_flow
from trialsim.flow.run import TRIAL_FIELDS, referral_days_from_unit
from trialsim.flow.summary import enrolment_curve, summarise_flow
from trialsim.report.flow_figures import plot_duration, plot_enrolment

matplotlib.use("Agg")

MONDAY = datetime.date(2024, 9, 2)
NAN = math.nan

# the registered trial's follow_up.p_missing_visit and colonoscopy p_missing [6]
MISSING = dict(p_missing_visit=0.03, p_missing_procedure=0.10)


def arms(n_trials, n_control, n_treatment, rng, scheme="sequential"):
    """The arm of each enrolment position (True = treatment), from the design's allocation scheme."""
    config = AllocationConfig(scheme=scheme, block_size=2)
    return allocation_sequence(config, n_trials=n_trials, n_control=n_control, n_treatment=n_treatment, rng=rng)


def outcome_arrays(rows_control, rows_treatment, n_max):
    """Outcome dict of one trial from per-patient rows (los, event_day, leak_extra, died, death_day); unused rows are filler."""
    out = {}
    for arm, rows in (("control", rows_control), ("treatment", rows_treatment)):
        table = np.array(list(rows) + [(1.0, NAN, 0.0, 0.0, NAN)] * (n_max - len(rows)), dtype=float)
        out[arm] = {key: table[None, :, j] for j, key in enumerate(("stay_days", "event_day", "event_extra_days", "died", "death_day"))}
    return out


def simple_outcomes(n_trials, n_max, rng, *, p_leak=0.0, event_day=10.0, leak_extra=5.0):
    """Log-normal stays (median 7, log-SD 0.35), leaks on a fixed day with fixed extra days, nobody dies."""
    out = {}
    for arm in ("control", "treatment"):
        shape = (n_trials, n_max)
        leak = rng.random(shape) < p_leak
        out[arm] = {
            "stay_days": 7.0 * np.exp(0.35 * rng.standard_normal(shape)),
            "event_day": np.where(leak, event_day, np.nan),
            "event_extra_days": np.where(leak, leak_extra, 0.0),
            "died": np.zeros(shape),
            "death_day": np.full(shape, np.nan),
        }
    return out


def one_trial_draws(referral_days, eligible, consents, is_treatment, *, offsets, withdraws, fractions, lost, no_colonoscopy):
    row = lambda v, dtype=float: np.array([v], dtype=dtype)  # noqa: E731
    return FlowDraws(
        referral_days=row(referral_days), eligible=row(eligible, bool), consents=row(consents, bool),
        is_treatment=row(is_treatment, bool), visit_offset_days=row(offsets), withdraws=row(withdraws, bool),
        withdrawal_fraction=row(fractions), misses_visit=row(lost, bool), misses_procedure=row(no_colonoscopy, bool),
    )


# Fixed-delay trial: screening 2 days after referral, ready for surgery 10 days after referral, one operating
# slot a week (Mondays = days 0, 7, 14, ...), one bed, visit on postoperative day 30 +/- 7.
FIXED = FlowConfig(start_date=MONDAY, days_referral_to_screening=2.0, days_referral_to_surgery=10.0,
                   or_slots_per_week=1, beds=1, visit_day=30.0, visit_window_days=7.0)
REFERRALS = [1.0, 3.0, 4.0, 6.0, 8.0, 9.0, 10.0, 30.0]
ELIGIBLE = [1, 0, 1, 1, 1, 1, 1, 1]
CONSENTS = [1, 0, 0, 1, 1, 1, 1, 1]
SEQUENTIAL_2_2 = [0, 0, 1, 1]
# per enrolment position (patients 1, 4, 5, 6): visit offsets, withdrawal, lost, colonoscopy missed
FOLLOW_UP = dict(offsets=[0, 9, 0, 0], withdraws=[0, 0, 0, 1], fractions=[0, 0, 0, 0.5], lost=[0, 0, 0, 0], no_colonoscopy=[1, 0, 0, 0])
OUTCOMES = outcome_arrays(
    [(5.0, NAN, 0.0, 0, NAN),     # patient 1: 5 days, no leak
     (6.0, 9.0, 4.0, 0, NAN)],    # patient 4: 6 days, leak on day 9 after discharge -> readmitted 4 days
    [(4.5, 2.0, 3.0, 1, 12.0),    # patient 5: leak day 2 in hospital (+3 days), dies on day 12 at home
     (8.0, NAN, 0.0, 0, NAN)],    # patient 6: 8 days
    n_max=4,
)


def run_fixed(flow=FIXED, **follow_up):
    draws = one_trial_draws(REFERRALS, ELIGIBLE, CONSENTS, SEQUENTIAL_2_2, **{**FOLLOW_UP, **follow_up})
    return run_flow(flow, draws, n_control=2, n_treatment=2, outcomes=OUTCOMES, event_log=True)


def test_fixed_delays_give_the_exact_event_log():
    batch = run_fixed()
    log = batch.event_log
    rows = list(log[["time_days", "patient_id", "arm", "event", "detail"]].itertuples(index=False, name=None))
    assert rows == [
        (1.0, 1, "", "referred", ""),
        (3.0, 1, "control", "enrolled", "consented; enrolment 1 of 4"),
        (3.0, 2, "", "referred", ""),
        (4.0, 3, "", "referred", ""),
        (5.0, 2, "", "screened", "ineligible"),
        (6.0, 3, "", "screened", "eligible, declined consent"),
        (6.0, 4, "", "referred", ""),
        (8.0, 4, "control", "enrolled", "consented; enrolment 2 of 4"),
        (8.0, 5, "", "referred", ""),
        (9.0, 6, "", "referred", ""),
        (10.0, 5, "treatment", "enrolled", "consented; enrolment 3 of 4"),
        (10.0, 7, "", "referred", ""),
        (11.0, 6, "treatment", "enrolled", "consented; enrolment 4 of 4"),
        (11.0, 7, "", "not_screened", "recruitment closed"),
        (11.0, 0, "", "recruitment_closed", "target reached; 4 enrolled"),
        (14.0, 1, "control", "surgery", ""),            # ready day 11, next Monday slot day 14
        (19.0, 1, "control", "discharged", ""),
        (21.0, 4, "control", "surgery", ""),            # ready day 16, slot day 21
        (27.0, 4, "control", "discharged", ""),
        (28.0, 5, "treatment", "surgery", ""),          # ready day 18; patient 6 (ready 19) waits behind
        (30.0, 5, "treatment", "event_diagnosed", "in hospital"),
        (30.0, 4, "control", "event_diagnosed", "after discharge"),
        (30.0, 4, "control", "readmitted", ""),         # emergency: admitted above the one-bed limit
        (34.0, 4, "control", "discharged", "after readmission"),
        (35.0, 6, "treatment", "surgery_postponed", "no free bed"),   # patient 5 stays until 28 + 4.5 + 3
        (35.5, 5, "treatment", "discharged", ""),
        (40.0, 5, "treatment", "died", "after discharge"),           # day 12 after surgery: no visit
        (42.0, 6, "treatment", "surgery", ""),
        (44.0, 1, "control", "visit", "postoperative day 30"),
        (44.0, 1, "control", "procedure_missed", ""),
        (50.0, 6, "treatment", "discharged", ""),
        (57.0, 6, "treatment", "withdrew", ""),                      # half-way from surgery to the visit
        (60.0, 4, "control", "visit_out_of_window", "postoperative day 39, window 30 +/- 7"),
    ]
    assert list(log.columns) == ["time_days", "date", "patient_id", "arm", "event", "detail"]
    assert log.loc[log.event == "recruitment_closed", "date"].item() == "2024-09-13"


def test_fixed_delays_give_the_exact_per_trial_and_per_patient_results():
    b = run_fixed()
    trial = {name: np.asarray(v)[0].item() for name, v in b.per_trial().items()}
    assert trial == {
        "t_first_enrolment": 3.0, "t_last_enrolment": 11.0, "t_last_followup": 60.0,
        "n_referred": 7, "n_screened": 6, "n_eligible": 5, "n_consented": 4,
        "n_enrolled_control": 2, "n_enrolled_treatment": 2, "n_analysable_control": 1, "n_analysable_treatment": 0,
        "bed_days": 5.0 + (6.0 + 4.0) + 7.5 + 8.0, "readmissions": 1, "visit_window_misses": 1,
        "reached_target": True, "closed_by_deadline": False,
    }
    assert b.enrolled["control"].tolist() == [[True, True, False, False]]
    assert b.enrolled["treatment"].tolist() == [[True, True, False, False]]
    assert b.visit_attended["control"].tolist() == [[True, False, False, False]]
    assert not b.visit_attended["treatment"].any() and not b.procedure_done["control"].any()
    np.testing.assert_array_equal(b.t_surgery["treatment"][0, :2], [28.0, 42.0])
    np.testing.assert_array_equal(b.t_visit["control"][0, :2], [44.0, NAN])


def test_follow_up_branches_lost_colonoscopy_and_an_early_visit_in_the_window():
    b = run_fixed(offsets=[-7, 0, 0, 8], withdraws=[0, 0, 0, 0], lost=[0, 1, 0, 0], no_colonoscopy=[0, 0, 0, 0])
    events = b.event_log.groupby("patient_id")["event"].apply(list)
    assert events[1][-2:] == ["visit", "procedure"]                      # day 23 is inside 30 +/- 7
    assert "visit_missed" in events[4] and "visit" not in events[4]        # lost to follow-up
    assert events[6][-1] == "visit_out_of_window"                          # day 38
    assert b.procedure_done["control"][0].tolist() == [True, False, False, False]
    assert b.visit_window_misses[0] == 1 and b.n_analysable_control[0] == 1


def test_a_fixed_deadline_closes_recruitment_early():
    b = run_fixed(FIXED.model_copy(update={"deadline_days": 9.0}))
    assert (b.n_enrolled_control[0], b.n_enrolled_treatment[0]) == (2, 0)  # screenings on days 3 and 8 only
    assert not b.reached_target[0] and b.closed_by_deadline[0]
    assert (b.n_referred[0], b.n_screened[0]) == (5, 4)                   # patient 5 referred day 8, screening day 10
    closed = b.event_log[b.event_log.event == "recruitment_closed"]
    assert closed[["time_days", "detail"]].values.tolist() == [[9.0, "deadline; 2 enrolled"]]


def test_outcome_shapes_are_checked():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="shape"):
        simulate_flow(FlowConfig(), n_control=2, n_treatment=2, outcomes=simple_outcomes(3, 3, rng),
                      **MISSING, is_treatment=arms(3, 2, 2, rng), rng=rng)
    with pytest.raises(ValueError, match="is_treatment has shape"):
        simulate_flow(FlowConfig(), n_control=2, n_treatment=2, outcomes=simple_outcomes(3, 4, rng),
                      **MISSING, is_treatment=arms(3, 2, 1, rng), rng=rng)


def run_random(flow, n_trials, n_control, n_treatment, seed, scheme="sequential", **kw):
    rng = np.random.default_rng(seed)
    outcomes = simple_outcomes(n_trials, n_control + n_treatment, rng, **kw)
    is_treatment = arms(n_trials, n_control, n_treatment, rng, scheme)
    return simulate_flow(flow, n_control=n_control, n_treatment=n_treatment, outcomes=outcomes, **MISSING,
                         is_treatment=is_treatment, rng=rng)


def test_same_seed_same_results_and_another_seed_differs():
    flow = FlowConfig()
    a, b, c = (run_random(flow, 50, 10, 10, seed, scheme="simple") for seed in (7, 7, 8))
    for name in TRIAL_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name in ("enrolled", "visit_attended", "procedure_done", "t_surgery"):
        for arm in ("control", "treatment"):
            np.testing.assert_array_equal(getattr(a, name)[arm], getattr(b, name)[arm])
    assert not np.array_equal(a.t_last_enrolment, c.t_last_enrolment)


def test_mean_time_to_enrol_n_is_n_over_rate_with_full_eligibility():
    # time of the n-th point of a Poisson process of rate r is Gamma(n, 1/r): mean n/r
    rate, n, sims = 6.0, 5, 4000
    flow = FlowConfig(referrals_per_month=rate, p_eligible=1.0, p_consent=1.0, days_referral_to_screening=0.0)
    b = run_random(flow, sims, 2, 3, seed=11)
    months = b.t_last_enrolment / DAYS_PER_MONTH
    se = math.sqrt(n) / rate / math.sqrt(sims)
    assert abs(months.mean() - n / rate) < 4 * se
    assert stats.kstest(months, stats.gamma(n, scale=1 / rate).cdf).pvalue > 1e-3
    assert (b.n_referred == n).all() and b.reached_target.all()


def test_enrolment_rate_is_referrals_times_eligible_times_consent():
    flow = FlowConfig()  # 6/month x 0.75 x 0.65 = 2.925 enrolled/month
    b = run_random(flow, 1500, 10, 10, seed=3)
    months = (b.t_last_enrolment - flow.days_referral_to_screening) / DAYS_PER_MONTH
    n, rate = 20, 6.0 * 0.75 * 0.65
    assert abs(months.mean() - n / rate) < 4 * math.sqrt(n) / rate / math.sqrt(b.n_trials)


def test_ramp_up_and_gaps_shape_the_referral_process():
    flow = FlowConfig(referrals_per_month=10.0, ramp_up_months=2.0, gaps=[[100.0, 130.0]])
    rng = np.random.default_rng(5)
    unit = np.cumsum(rng.standard_exponential((4000, 60)), axis=1)
    days = referral_days_from_unit(unit, flow)
    assert (np.diff(days, axis=1) > 0).all()
    assert not ((days >= 100.0) & (days < 130.0)).any()
    ramp_days = 2.0 * DAYS_PER_MONTH
    per_day = 10.0 / DAYS_PER_MONTH
    for lo, hi, expected in ((0.0, ramp_days, per_day * ramp_days / 2),   # linear ramp: half the full count
                             (ramp_days / 2, ramp_days, per_day * ramp_days * 3 / 8),
                             (130.0, 160.0, per_day * 30.0)):           # full rate after the gap
        counts = ((days >= lo) & (days < hi)).sum(axis=1)
        assert abs(counts.mean() - expected) < 4 * math.sqrt(expected / counts.size)


def test_bed_occupancy_agrees_with_littles_law():
    # Long runs closed by a deadline: mean beds occupied = enrolment rate x mean stay (index + leak readmission)
    horizon, rate = 1500.0, 20.0
    flow = FlowConfig(referrals_per_month=rate, p_eligible=0.8, p_consent=1.0, days_referral_to_screening=0.0,
                      beds=10_000, or_slots_per_week=35, deadline_days=horizon)
    b = run_random(flow, 12, 1000, 1000, seed=2, p_leak=0.2, event_day=10.0, leak_extra=5.0)
    assert b.closed_by_deadline.all() and (b.readmissions > 0).all()
    mean_stay = 7.0 * math.exp(0.35**2 / 2) + 0.2 * 5.0
    arrivals = rate * 0.8 / DAYS_PER_MONTH
    occupancy = b.bed_days / horizon
    expected = arrivals * mean_stay
    # compound Poisson: Var(sum of stays) = arrivals * horizon * E[stay^2]; E[stay^2] bounded by 1.5 mean^2 here
    se = math.sqrt(arrivals * horizon * 1.5 * mean_stay**2) / horizon / math.sqrt(b.n_trials)
    assert abs(occupancy.mean() - expected) < 4 * se


def test_beds_and_operating_slots_are_respected():
    flow = FlowConfig(referrals_per_month=20.0, beds=2, or_slots_per_week=3, p_eligible=1.0, p_consent=1.0)
    rng = np.random.default_rng(4)
    b = simulate_flow(flow, n_control=15, n_treatment=15, outcomes=simple_outcomes(1, 30, rng, p_leak=0.3),
                      **MISSING, is_treatment=arms(1, 15, 15, rng), rng=rng, event_log=True)
    occupied, log = 0, b.event_log
    for event, detail in zip(log.event, log.detail):
        if event == "surgery":
            assert occupied < flow.beds
        if event in ("surgery", "readmitted"):
            occupied += 1
        if event == "discharged" or (event == "died" and detail == "in hospital"):
            occupied -= 1
    assert occupied == 0 and (log.event == "surgery_postponed").any()
    surgery = np.concatenate([b.t_surgery[arm][0] for arm in ("control", "treatment")])
    surgery = surgery[~np.isnan(surgery)]
    weekdays = {(flow.start_date + datetime.timedelta(days=int(d))).weekday() for d in surgery}
    assert np.all(surgery == np.round(surgery)) and weekdays <= {0, 1, 3}  # 3 slots: Mon, Tue, Thu
    assert np.bincount((surgery // 7).astype(int)).max() <= 3


def test_a_deadline_shorter_than_enrolment_yields_fewer_patients():
    deadline = 60.0
    full, cut = (run_random(FlowConfig(deadline_days=d), 2000, 10, 10, seed=9) for d in (None, deadline))
    enrolled = cut.n_enrolled_control + cut.n_enrolled_treatment
    assert full.reached_target.all() and not cut.reached_target.any() and cut.closed_by_deadline.all()
    assert (full.n_analysable_control + full.n_analysable_treatment).mean() > (cut.n_analysable_control + cut.n_analysable_treatment).mean()
    assert np.nanmax(cut.t_last_enrolment) < deadline
    # enrolments by the deadline are Poisson with mean 2.925/month x (deadline - screening delay)
    expected = 6.0 * 0.75 * 0.65 * (deadline - 3.0) / DAYS_PER_MONTH
    assert abs(enrolled.mean() - expected) < 4 * math.sqrt(expected / enrolled.size)
    # sequential allocation fills control first: the treatment arm is what a deadline cuts
    np.testing.assert_array_equal(cut.n_enrolled_treatment, np.maximum(enrolled - 10, 0))


def test_draws_always_reach_the_target():
    rng = np.random.default_rng(0)
    draws = draw_flow(FlowConfig(p_eligible=0.05, p_consent=0.2), n_trials=200, n_control=3, n_treatment=3, **MISSING,
                      is_treatment=arms(200, 3, 3, rng), rng=rng)
    assert ((draws.eligible & draws.consents).sum(axis=1) >= 6).all()


def test_summary_from_a_batch_and_from_engine_arrays_agree():
    b = run_random(FlowConfig(), 300, 10, 10, seed=1)
    from_batch = summarise_flow(b)
    from_arrays = summarise_flow({k: np.asarray(v, dtype=float) for k, v in b.per_trial().items()}, flow=b.flow)
    frame_a, frame_b = from_batch.to_frame(), from_arrays.to_frame()
    np.testing.assert_array_equal(frame_a["value"], frame_b["value"])
    assert from_batch.deadline_days == 122.0 and from_batch.deadline_date == datetime.date(2024, 12, 31)
    assert from_batch.p_finished_by_deadline.value == np.mean(b.t_last_followup <= 122.0)
    assert from_batch.study_duration.median == np.quantile(b.t_last_followup, 0.5, method="inverted_cdf")
    assert from_batch.time_to_full_enrolment.lower_95 <= from_batch.time_to_full_enrolment.median <= from_batch.time_to_full_enrolment.upper_95
    assert "Time to full enrolment" in from_arrays.to_text() and from_arrays.enrolment_curve is None


def test_enrolment_curve_quantiles_match_counts_on_a_day():
    b = run_random(FlowConfig(), 400, 10, 10, seed=6)
    curve = enrolment_curve(b, days=np.array([0.0, 60.0, 120.0, 1e4]))
    times = np.concatenate([b.t_enrolled["control"], b.t_enrolled["treatment"]], axis=1)
    for i, day in enumerate(curve.time_days):
        counts = (times <= day).sum(axis=1)
        assert curve["median"][i] == np.quantile(counts, 0.5, method="inverted_cdf")
        assert curve["lower_80"][i] == np.quantile(counts, 0.1, method="inverted_cdf")
        assert curve["upper_95"][i] == np.quantile(counts, 0.975, method="inverted_cdf")
    assert curve["median"].iloc[-1] == 20


def test_figures_have_labelled_axes():
    b = run_random(FlowConfig(), 100, 10, 10, seed=1)
    for plot in (plot_enrolment, plot_duration):
        ax = plot(b)
        assert "(days)" in ax.get_xlabel() and ax.get_ylabel()
        assert any("2024-12-31" in t.get_text() for t in ax.get_legend().get_texts())
        plt.close(ax.figure)
    with pytest.raises(ValueError, match="FlowBatch"):
        plot_enrolment(summarise_flow(b.per_trial(), flow=b.flow))


def test_every_config_field_has_a_source_or_says_assumption():
    for model in (FlowConfig, AllocationConfig):
        for name, field in model.model_fields.items():
            assert field.description, name
            assert "ASSUMPTION" in field.description or "[" in field.description or "SOURCED" in field.description, name


@pytest.mark.parametrize("bad, match", [
    ({"p_eligible": 1.5}, "p_eligible"),
    ({"referrals_per_month": 0.0}, "referrals_per_month"),
    ({"referrals_per_month": "6"}, "valid number"),
    ({"gaps": [[20.0, 10.0]]}, "start_day < end_day"),
    ({"gaps": [[0.0, 10.0], [5.0, 20.0]]}, "not overlap"),
    ({"days_referral_to_surgery": 1.0}, "days_referral_to_screening"),
    ({"allocation": {"scheme": "simple"}}, "Extra inputs"),  # allocation is the design's: [allocation], not [flow]
    ({"beds": 0}, "beds"),
    ({"visit_window": 7}, "Extra inputs"),
])
def test_bad_flow_config_is_rejected_with_a_clear_message(bad, match):
    with pytest.raises(ValidationError, match=match):
        FlowConfig.model_validate(bad)


def test_toml_lists_become_tuples_and_the_config_is_hashable():
    import tomllib

    flow = FlowConfig.model_validate(tomllib.loads("gaps = [[10, 20.5]]\n"))
    assert flow.gaps == ((10.0, 20.5),)
    assert AllocationConfig.model_validate(tomllib.loads("ratio = [1, 2]\nscheme = 'simple'\n")).ratio == (1, 2)
    assert hash(flow) == hash(FlowConfig.model_validate(flow.model_dump()))
    assert FlowConfig().planned_duration_days == 122.0


@given(
    rate=st.floats(1.0, 30.0), p_eligible=st.floats(0.2, 1.0), p_consent=st.floats(0.2, 1.0),
    beds=st.integers(1, 6), slots=st.integers(1, 10), deadline=st.one_of(st.none(), st.floats(20.0, 400.0)),
    scheme=st.sampled_from(["sequential", "alternating", "permuted_block", "simple"]),
    n_control=st.integers(1, 8), n_treatment=st.integers(1, 8), seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=40, deadline=None)
def test_flow_invariants_hold_for_any_valid_config(rate, p_eligible, p_consent, beds, slots, deadline, scheme,
                                                   n_control, n_treatment, seed):
    flow = FlowConfig(referrals_per_month=rate, p_eligible=p_eligible, p_consent=p_consent, beds=beds,
                      or_slots_per_week=slots, deadline_days=deadline)
    b = run_random(flow, 15, n_control, n_treatment, seed, scheme=scheme, p_leak=0.3)
    assert (b.n_referred >= b.n_screened).all() and (b.n_screened >= b.n_eligible).all() and (b.n_eligible >= b.n_consented).all()
    assert (b.n_consented == b.n_enrolled_control + b.n_enrolled_treatment).all()
    assert (b.reached_target == (b.n_consented == n_control + n_treatment)).all()
    assert (b.reached_target | b.closed_by_deadline).all()
    for arm in ("control", "treatment"):
        enrolled = b.enrolled[arm]
        assert (enrolled[:, :-1] >= enrolled[:, 1:]).all()  # the k-th patient of an arm uses row k: no holes
        assert (b.visit_attended[arm] <= enrolled).all() and (b.procedure_done[arm] <= b.visit_attended[arm]).all()
        assert (np.isnan(b.t_surgery[arm]) == ~enrolled).all()
        assert (b.t_surgery[arm][enrolled] >= b.t_enrolled[arm][enrolled] + flow.days_referral_to_surgery - flow.days_referral_to_screening).all()
    assert (b.n_analysable_control <= b.n_enrolled_control).all() and (b.n_analysable_treatment <= b.n_enrolled_treatment).all()
    some = b.n_consented > 0
    assert (b.t_first_enrolment[some] <= b.t_last_enrolment[some]).all() and (b.t_last_enrolment[some] < b.t_last_followup[some]).all()
    if deadline is not None:
        assert (b.t_last_enrolment[some] < deadline).all()
