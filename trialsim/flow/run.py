"""Batch API of the patient flow: draw a block's random inputs at once, then walk every trial's events.

``simulate_flow = run_flow(draw_flow(...))``: every random number is drawn vectorised in
:func:`draw_flow`; :func:`run_flow` only walks the events, so tests can hand it fixed draws. It walks
them on arrays over all trials (:mod:`trialsim.flow.vectorised`) or with one SimPy environment per
trial (:mod:`trialsim.flow.processes`, the model's definition); both give the same numbers.
"""
from __future__ import annotations

import datetime
import math
from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np
import simpy

from trialsim.config.flow import DAYS_PER_MONTH, FlowConfig
from trialsim.flow.processes import ARMS, DRAW_FIELDS, Trial, operating_list, recruitment
from trialsim.flow.vectorised import walk_flow

if TYPE_CHECKING:
    import pandas as pd

OUTCOME_KEYS = ("stay_days", "event_day", "event_extra_days", "died", "death_day")

TRIAL_FIELDS = (
    "t_first_enrolment", "t_last_enrolment", "t_last_followup", "n_referred", "n_screened", "n_eligible",
    "n_consented", "n_enrolled_control", "n_enrolled_treatment", "n_analysable_control", "n_analysable_treatment",
    "bed_days", "readmissions", "visit_window_misses", "reached_target", "closed_by_deadline",
)

EVENT_LOG_COLUMNS = ("time_days", "date", "patient_id", "arm", "event", "detail")


@dataclass(frozen=True)
class FlowDraws:
    """Every random input of the flow for S trials (the SimPy processes draw nothing).

    Attributes
    ----------
    referral_days : (S, K) float
        Referral times, increasing along each row; K referrals are enough to reach the target.
    eligible, consents : (S, K) bool
        Screening outcome of each referral (consent matters only if eligible).
    is_treatment : (S, N) bool
        Arm of the patient at each enrolment position (N = n_control + n_treatment).
    visit_offset_days : (S, N) float
        Actual minus planned postoperative day of the 1-month visit.
    withdraws : (S, N) bool
        Withdraws between surgery and the visit ...
    withdrawal_fraction : (S, N) float
        ... at this fraction of the time from surgery to the visit.
    misses_visit, misses_procedure : (S, N) bool
        Lost to follow-up; the visit's procedure (e.g. a colonoscopy) not done at an attended visit.
    """

    referral_days: np.ndarray
    eligible: np.ndarray
    consents: np.ndarray
    is_treatment: np.ndarray
    visit_offset_days: np.ndarray
    withdraws: np.ndarray
    withdrawal_fraction: np.ndarray
    misses_visit: np.ndarray
    misses_procedure: np.ndarray


@dataclass(frozen=True)
class FlowBatch:
    """Flow results of S simulated trials.

    Per arm (dicts keyed "control", "treatment"), arrays (S, n_max) indexed by the patient's order
    within the arm: ``enrolled``, ``visit_attended`` (visit within the window; False if died,
    withdrew, lost or out of window), ``procedure_done`` and the times ``t_enrolled``,
    ``t_surgery``, ``t_visit`` (days, NaN if it did not happen). Per trial, arrays (S,): the
    fields of :data:`TRIAL_FIELDS`. ``event_log``: trial 0's events (a DataFrame) or None.
    """

    flow: FlowConfig
    n_control: int
    n_treatment: int
    enrolled: dict[str, np.ndarray]
    visit_attended: dict[str, np.ndarray]
    procedure_done: dict[str, np.ndarray]
    t_enrolled: dict[str, np.ndarray]
    t_surgery: dict[str, np.ndarray]
    t_visit: dict[str, np.ndarray]
    t_first_enrolment: np.ndarray
    t_last_enrolment: np.ndarray
    t_last_followup: np.ndarray
    n_referred: np.ndarray
    n_screened: np.ndarray
    n_eligible: np.ndarray
    n_consented: np.ndarray
    n_enrolled_control: np.ndarray
    n_enrolled_treatment: np.ndarray
    n_analysable_control: np.ndarray
    n_analysable_treatment: np.ndarray
    bed_days: np.ndarray
    readmissions: np.ndarray
    visit_window_misses: np.ndarray
    reached_target: np.ndarray
    closed_by_deadline: np.ndarray
    event_log: pd.DataFrame | None = None

    @property
    def n_trials(self) -> int:
        return len(self.t_last_followup)

    @property
    def target(self) -> int:
        return self.n_control + self.n_treatment

    def per_trial(self) -> dict[str, np.ndarray]:
        """The per-trial outputs by name (what the engine keeps and the summaries read)."""
        return {name: getattr(self, name) for name in TRIAL_FIELDS}

    def to_frame(self) -> pd.DataFrame:
        """One row per simulated trial."""
        import pandas as pd  # noqa: PLC0415 - frames are for users; worker processes never need pandas

        return pd.DataFrame(self.per_trial()).rename_axis("trial").reset_index()


# ------------------------------------------------------------------------------------------- referrals
def _rate_segments(flow: FlowConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Piecewise referral rate: segment starts, kind (0 gap, 1 ramp, 2 full rate), cumulative rate at each start."""
    ramp = flow.ramp_up_months * DAYS_PER_MONTH
    rate = flow.referrals_per_day
    starts = sorted({0.0, ramp, *(day for gap in flow.gaps for day in gap)})
    ends = starts[1:] + [math.inf]
    kinds, cumulative = [], [0.0]
    for a, b in zip(starts, ends):
        kind = 0 if any(g0 <= a < g1 for g0, g1 in flow.gaps) else (1 if a < ramp else 2)
        kinds.append(kind)
        if b < math.inf:
            mass = 0.0 if kind == 0 else (rate * (b * b - a * a) / (2 * ramp) if kind == 1 else rate * (b - a))
            cumulative.append(cumulative[-1] + mass)
    return np.array(starts), np.array(kinds), np.array(cumulative)


def referral_days_from_unit(unit_times: np.ndarray, flow: FlowConfig) -> np.ndarray:
    """Map the points of a unit-rate Poisson process to referral days (inverse cumulative rate).

    The rate is ``referrals_per_month`` per month, rising linearly from 0 over ``ramp_up_months``
    and zero in the ``gaps``. Inverting its integral Lambda(t) maps a unit-rate Poisson process to
    this inhomogeneous one exactly, one exponential per referral.
    """
    starts, kinds, cumulative = _rate_segments(flow)
    i = np.searchsorted(cumulative, unit_times, side="right") - 1  # flat (gap) segments are never chosen
    a, excess = starts[i], unit_times - cumulative[i]
    rate = flow.referrals_per_day
    ramp = flow.ramp_up_months * DAYS_PER_MONTH
    full = a + excess / rate
    if ramp == 0:
        return full
    return np.where(kinds[i] == 1, np.sqrt(a * a + 2.0 * ramp * excess / rate), full)


def draw_flow(flow: FlowConfig, *, n_trials: int, n_control: int, n_treatment: int, p_missing_visit: float,
              p_missing_procedure: float, is_treatment: np.ndarray, rng: np.random.Generator) -> FlowDraws:
    """Draw every random input of the flow for ``n_trials`` trials, vectorised.

    Parameters
    ----------
    flow : FlowConfig
    n_trials : int
    n_control, n_treatment : int
        Target arm sizes; recruitment closes when ``n_control + n_treatment`` are enrolled.
    p_missing_visit, p_missing_procedure : float
        Chance a living patient misses the follow-up visit, and its procedure at an attended visit;
        the scenario's ``follow_up.p_missing_visit`` and its visit procedure's ``p_missing`` (one source
        for the model with and without a flow).
    is_treatment : ndarray of bool, shape (n_trials, n_control + n_treatment)
        The arm of each enrolment position (from the design's allocation scheme).
    rng : numpy.random.Generator

    Returns
    -------
    FlowDraws
        With enough referrals in every trial to reach the target (columns are added until so).
    """
    n = n_control + n_treatment
    shape = (n_trials, n)
    p = flow.p_eligible * flow.p_consent
    # mean + 6 SD of the negative binomial number of referrals needed for n enrolments
    width = int(math.ceil(n / p + 6.0 * math.sqrt(n * (1.0 - p)) / p)) + 4
    gaps, eligible, consents = [], [], []
    enrolments = np.zeros(n_trials, dtype=np.int64)
    while enrolments.min(initial=n) < n:
        gaps.append(rng.standard_exponential((n_trials, width)))
        eligible.append(rng.random((n_trials, width)) < flow.p_eligible)
        consents.append(rng.random((n_trials, width)) < flow.p_consent)
        enrolments += np.count_nonzero(eligible[-1] & consents[-1], axis=1)
    unit_times = np.cumsum(np.concatenate(gaps, axis=1), axis=1)
    is_treatment = np.asarray(is_treatment, dtype=bool)
    if is_treatment.shape != shape:
        raise ValueError(f"is_treatment has shape {is_treatment.shape}, expected {shape}")
    if flow.visit_timing_sd_days > 0:
        # whole days, and never before postoperative day 1
        offset = np.maximum(np.rint(rng.normal(0.0, flow.visit_timing_sd_days, shape)), 1.0 - flow.visit_day)
    else:
        offset = np.zeros(shape)
    return FlowDraws(
        referral_days=referral_days_from_unit(unit_times, flow),
        eligible=np.concatenate(eligible, axis=1),
        consents=np.concatenate(consents, axis=1),
        is_treatment=is_treatment,
        visit_offset_days=offset,
        withdraws=rng.random(shape) < flow.p_withdraw,
        withdrawal_fraction=rng.random(shape),
        misses_visit=rng.random(shape) < p_missing_visit,
        misses_procedure=rng.random(shape) < p_missing_procedure,
    )


# ------------------------------------------------------------------------------------------------ run
def _check_outcomes(outcomes: dict, n_trials: int, n_max: int) -> None:
    if set(outcomes) != set(ARMS):
        raise ValueError(f"outcomes must have the keys {ARMS}, got {sorted(outcomes)}")
    for arm in ARMS:
        missing = [k for k in OUTCOME_KEYS if k not in outcomes[arm]]
        if missing:
            raise ValueError(f"outcomes[{arm!r}] lacks {missing}; needs {OUTCOME_KEYS}")
        for key in OUTCOME_KEYS:
            shape = np.shape(outcomes[arm][key])
            if shape != (n_trials, n_max):
                raise ValueError(f"outcomes[{arm!r}][{key!r}] has shape {shape}, expected (n_trials, n_control + n_treatment) = {(n_trials, n_max)}")


FLOW_ENGINES = ("vectorised", "simpy")
PER_PATIENT = ("enrolled", "visit_attended", "procedure_done", "t_enrolled", "t_surgery", "t_visit")
SCALARS = ("t_first_enrolment", "t_last_enrolment", "t_last_followup", "n_referred", "n_screened", "n_eligible",
           "n_enrolled", "readmissions", "visit_window_misses", "closed_by_deadline", "bed_days")


def _simpy_fields(flow: FlowConfig, draws: FlowDraws, *, n_max: int, outcomes: dict, n_trials: int,
                  log: list | None) -> dict[str, object]:
    """The flow of the first ``n_trials`` trials, one SimPy environment each (the fields walk_flow returns)."""
    pick = slice(0, n_trials)
    # Python lists: scalar access in the event loop is several times faster than on numpy arrays
    rows = {arm: np.stack([np.asarray(outcomes[arm][k], dtype=float)[pick] for k in OUTCOME_KEYS], axis=-1).tolist()
            for arm in ARMS}
    inputs = {name: getattr(draws, name)[pick].tolist() for name in DRAW_FIELDS}
    first_weekday = flow.start_date.weekday()
    per_patient = {name: {arm: np.zeros((n_trials, n_max), dtype=bool) for arm in ARMS} for name in PER_PATIENT[:3]}
    per_patient.update({name: {arm: np.full((n_trials, n_max), np.nan) for arm in ARMS} for name in PER_PATIENT[3:]})
    per_trial = {name: [None] * n_trials for name in SCALARS}
    for s in range(n_trials):
        env = simpy.Environment()
        trial = Trial(env, flow=flow, outcomes=(rows["control"][s], rows["treatment"][s]), first_weekday=first_weekday,
                      log=log if s == 0 else None, **{name: inputs[name][s] for name in DRAW_FIELDS})
        env.process(operating_list(env, trial))
        env.process(recruitment(env, trial))
        env.run()
        for name in SCALARS:
            per_trial[name][s] = trial.ward.bed_days if name == "bed_days" else getattr(trial, name)
        for name, by_arm in per_patient.items():
            values = getattr(trial, name)
            for a, arm in enumerate(ARMS):
                by_arm[arm][s] = values[a]
    dtypes = {"closed_by_deadline": bool, "t_first_enrolment": float, "t_last_enrolment": float, "t_last_followup": float,
              "bed_days": float}
    return {**per_patient, **{name: np.array(v, dtype=dtypes.get(name, np.int64)) for name, v in per_trial.items()}}


def _differ_on_trial_0(a: dict, b: dict) -> list[str]:
    """Names of the fields on which trial 0 of ``a`` and of ``b`` differ (NaN equals NaN)."""
    differ = [name for name in PER_PATIENT
              if any(not np.array_equal(a[name][arm][0], b[name][arm][0], equal_nan=True) for arm in ARMS)]
    return differ + [name for name in SCALARS if not np.array_equal(a[name][0], b[name][0], equal_nan=True)]


def run_flow(
    flow: FlowConfig,
    draws: FlowDraws,
    *,
    n_control: int,
    n_treatment: int,
    outcomes: dict[str, dict[str, np.ndarray]],
    event_log: bool = False,
    engine: str = "vectorised",
) -> FlowBatch:
    """Run the flow of every trial in ``draws`` with the given outcomes.

    Parameters are as for :func:`simulate_flow`, with the random inputs given as ``draws``, and

    engine : {"vectorised", "simpy"}
        The run's ``run.flow_engine``. "simpy" runs one SimPy environment per trial (the model's definition). "vectorised" (the
        default) replays the same processes on arrays over all trials at once
        (:func:`trialsim.flow.vectorised.walk_flow`, bit-identical and tens of times faster), and
        still runs trial 0 in SimPy: for its event log, and as a check that stops the run if the two
        ever disagree.
    """
    if engine not in FLOW_ENGINES:
        raise ValueError(f"flow engine must be one of {FLOW_ENGINES}, got {engine!r}")
    n_max = n_control + n_treatment
    n_trials = draws.is_treatment.shape[0]
    if draws.is_treatment.shape != (n_trials, n_max):
        raise ValueError(f"draws are for {draws.is_treatment.shape[1]} patients, not n_control + n_treatment = {n_max}")
    _check_outcomes(outcomes, n_trials, n_max)
    referral = np.asarray(draws.referral_days, dtype=float)
    if referral.ndim != 2 or referral.shape[0] != n_trials or referral.shape[1] == 0 or (np.diff(referral, axis=1) < 0).any():
        raise ValueError(f"draws.referral_days must be (n_trials, K) with K >= 1 referrals per trial in time order, "
                         f"got shape {referral.shape}")
    log: list[tuple] | None = [] if event_log else None
    if engine == "simpy":
        fields = _simpy_fields(flow, draws, n_max=n_max, outcomes=outcomes, n_trials=n_trials, log=log)
    else:
        fields = walk_flow(flow, draws, n_control=n_control, n_treatment=n_treatment, outcomes=outcomes)
        if n_trials:
            reference = _simpy_fields(flow, draws, n_max=n_max, outcomes=outcomes, n_trials=1, log=log)
            differ = _differ_on_trial_0(fields, reference)
            if differ:
                raise RuntimeError(f"internal error: the vectorised flow and SimPy disagree on trial 0 ({', '.join(differ)}); "
                                   "please report it with the config and seed (run.flow_engine = 'simpy' runs every trial in SimPy)")
    return _batch(flow, fields, n_control=n_control, n_treatment=n_treatment, log=log)


def _batch(flow: FlowConfig, fields: dict, *, n_control: int, n_treatment: int, log: list | None) -> FlowBatch:
    n_max = n_control + n_treatment
    enrolled_by_arm = {arm: fields["enrolled"][arm].sum(axis=1) for arm in ARMS}
    analysable = {arm: fields["visit_attended"][arm].sum(axis=1) for arm in ARMS}
    return FlowBatch(
        flow=flow, n_control=n_control, n_treatment=n_treatment,
        **{name: fields[name] for name in PER_PATIENT},
        t_first_enrolment=fields["t_first_enrolment"], t_last_enrolment=fields["t_last_enrolment"],
        t_last_followup=fields["t_last_followup"],
        n_referred=fields["n_referred"], n_screened=fields["n_screened"], n_eligible=fields["n_eligible"],
        n_consented=fields["n_enrolled"],  # consent is enrolment
        n_enrolled_control=enrolled_by_arm["control"], n_enrolled_treatment=enrolled_by_arm["treatment"],
        n_analysable_control=analysable["control"], n_analysable_treatment=analysable["treatment"],
        bed_days=fields["bed_days"], readmissions=fields["readmissions"], visit_window_misses=fields["visit_window_misses"],
        reached_target=fields["n_enrolled"] == n_max,
        closed_by_deadline=fields["closed_by_deadline"],
        event_log=event_log_frame(log, flow.start_date) if log is not None else None,
    )


def event_log_frame(rows: list[tuple], start_date: datetime.date | None = None) -> pd.DataFrame:
    """The event log as a DataFrame in time order (stable: same-time events keep their logical order)."""
    import pandas as pd  # noqa: PLC0415 - see FlowResult.to_frame

    frame = pd.DataFrame(rows, columns=["time_days", "patient_id", "arm", "event", "detail"])
    frame = frame.sort_values("time_days", kind="stable").reset_index(drop=True)
    if start_date is not None:
        dates = pd.Timestamp(start_date) + pd.to_timedelta(np.floor(frame["time_days"]), unit="D")
        frame.insert(1, "date", dates.dt.date.astype(str))
    return frame


def simulate_flow(
    flow: FlowConfig,
    *,
    n_control: int,
    n_treatment: int,
    outcomes: dict[str, dict[str, np.ndarray]],
    p_missing_visit: float,
    p_missing_procedure: float,
    is_treatment: np.ndarray,
    rng: np.random.Generator,
    event_log: bool = False,
    engine: str = "vectorised",
) -> FlowBatch:
    """Simulate the patient flow of S trials: referral, screening, allocation, surgery, ward, follow-up, closure.

    Parameters
    ----------
    flow : FlowConfig
        The ``[flow]`` config section.
    n_control, n_treatment : int
        Target arm sizes; recruitment closes when their sum is enrolled (or at ``flow.deadline_days``).
    outcomes : dict
        ``outcomes[arm][key]`` for arm in ("control", "treatment") and key in :data:`OUTCOME_KEYS`:
        float arrays (S, n_control + n_treatment). The k-th patient allocated to an arm in trial s
        takes row [s, k]: ``stay_days`` (index stay without the linked event, > 0), ``event_day``
        (day the event is diagnosed; NaN = none), ``event_extra_days`` (days it adds), ``died`` (0/1,
        before the visit), ``death_day`` (NaN if alive).
    p_missing_visit, p_missing_procedure : float
        See :func:`draw_flow`.
    rng : numpy.random.Generator
        Every random number is drawn from it, vectorised, before the event loop.
    event_log : bool
        Also return trial 0's per-patient event log as a DataFrame (``FlowBatch.event_log``).
    engine : {"vectorised", "simpy"}
        See :func:`run_flow`; the same results either way.

    Returns
    -------
    FlowBatch
        Per-patient and per-trial results. For a given ``rng`` state the results of trial s depend on
        S (draws are vectorised over the block), as for the other vectorised generators of a block.
    """
    if n_control < 0 or n_treatment < 0 or n_control + n_treatment < 1:
        raise ValueError(f"need n_control, n_treatment >= 0 with a positive sum, got {n_control}, {n_treatment}")
    try:
        n_trials = np.shape(outcomes["control"]["stay_days"])[0]
    except (KeyError, TypeError, IndexError):
        raise ValueError(f"outcomes must map 'control' and 'treatment' to dicts of arrays with keys {OUTCOME_KEYS}") from None
    draws = draw_flow(flow, n_trials=n_trials, n_control=n_control, n_treatment=n_treatment, p_missing_visit=p_missing_visit,
                      p_missing_procedure=p_missing_procedure, is_treatment=is_treatment, rng=rng)
    return run_flow(flow, draws, n_control=n_control, n_treatment=n_treatment, outcomes=outcomes, event_log=event_log,
                    engine=engine)
