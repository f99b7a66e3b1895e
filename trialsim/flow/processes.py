"""SimPy processes of one simulated trial: recruitment, then per patient surgery, ward stay and follow-up.

The processes draw no random numbers: every random quantity comes pre-drawn in a :class:`Trial`
(see ``trialsim.flow.run.draw_flow``), so a test can give fixed values and check the exact event
log. Time is in days from the trial start.

Shared resources are the operating list (:class:`Theatre`, a fixed number of slots a week, first
come first served) and the ward (:class:`Ward`, beds for trial patients). A slot is taken after
everything else that happens at the same instant (:class:`SlotTimeout`). Surgery needs a slot and a
free bed; a readmission for an event (e.g. a leak) found after discharge is always admitted (an emergency), even
above the bed count, and later surgeries wait for it.
"""
from __future__ import annotations

import bisect
import math
from collections import deque

from simpy.core import NORMAL
from simpy.events import Timeout

ARMS = ("control", "treatment")
LATE = NORMAL + 1  # scheduling priority of the operating slots: after every other event at the same time
INF = math.inf
DRAW_FIELDS = ("referral_days", "eligible", "consents", "is_treatment", "visit_offset_days", "withdraws",
               "withdrawal_fraction", "misses_visit", "misses_procedure")  # the fields of run.FlowDraws


def slot_offsets(slots_per_week: int, first_weekday: int = 0) -> list[int]:
    """Days of the week's operating slots counted from the weekday of day 0, sorted (Monday-Friday spread)."""
    weekdays = [(k * 5) // slots_per_week for k in range(slots_per_week)]
    return sorted((w - first_weekday) % 7 for w in weekdays)


def until(env, day: float):
    """A timeout to ``day``; no wait when ``day`` is already past by a rounding error (e.g. surgery ready the
    day of screening, when the clock reached screening by a sum that rounded up)."""
    return env.timeout(max(0.0, day - env.now))


class SlotTimeout(Timeout):
    """A timeout processed after every other event due at the same time (SimPy's Timeout at a lower priority).

    The operating list waits on these, so a slot sees the ward and the waiting list after every
    discharge, readmission and arrival of that instant, whatever order they were scheduled in: ties
    have one meaning, the one the vectorised flow (:mod:`trialsim.flow.vectorised`) uses.
    """

    def __init__(self, env, delay: float):
        if delay < 0:
            raise ValueError(f"Negative delay {delay}")
        self.env = env
        self.callbacks = []
        self._value = None
        self._delay = delay
        self._ok = True
        env.schedule(self, LATE, delay)


class Theatre:
    """Operating slots for trial patients and their waiting list (first come, first served).

    Parameters
    ----------
    env : simpy.Environment
    slots_per_week : int
        Slots a week, spread over Monday-Friday (more than 5 puts several on one day).
    first_weekday : int
        Weekday of day 0 (0 = Monday), so that slots fall on real weekdays.
    """

    __slots__ = ("env", "waiting", "idle", "_offsets", "_per_week")

    def __init__(self, env, slots_per_week: int, first_weekday: int = 0):
        self._offsets = slot_offsets(slots_per_week, first_weekday)
        self._per_week = slots_per_week
        self.env = env
        self.waiting: deque = deque()  # (event, patient_id, arm) in order of readiness
        self.idle = None  # event the operating list sleeps on while nobody waits

    def request(self, patient_id: int, arm: int):
        """Join the waiting list; the returned event fires at the patient's surgery."""
        ready = self.env.event()
        self.waiting.append((ready, patient_id, arm))
        if self.idle is not None and not self.idle.triggered:
            self.idle.succeed()
        return ready

    def first_slot(self, now: float) -> int:
        """Index of the first slot at or after day ``now``."""
        week = math.floor(now / 7.0)
        return week * self._per_week + bisect.bisect_left(self._offsets, now - 7.0 * week)

    def slot_day(self, j: int) -> float:
        return 7.0 * (j // self._per_week) + self._offsets[j % self._per_week]


def operating_list(env, trial: "Trial"):
    """Run the trial's operating slots: at each slot the first waiting patient is operated if a bed is free.

    A slot without a free bed is lost and the patient keeps the head of the waiting list. While
    nobody waits, the process sleeps (no events), so it costs nothing between patients.
    """
    theatre, ward = trial.theatre, trial.ward
    j = 0
    while True:
        if not theatre.waiting:
            theatre.idle = env.event()
            yield theatre.idle
        j = max(j, theatre.first_slot(env.now))
        yield SlotTimeout(env, theatre.slot_day(j) - env.now)
        j += 1
        ready, patient_id, arm = theatre.waiting[0]
        if ward.occupied < ward.beds:
            theatre.waiting.popleft()
            ward.admit(env.now)  # here, not in the patient, so two slots on one day cannot overfill the ward
            ready.succeed()
        else:
            trial.note(env.now, patient_id, arm, "surgery_postponed", "no free bed")


class Ward:
    """Beds for trial patients, with the time integral of occupancy (bed-days)."""

    __slots__ = ("beds", "occupied", "bed_days", "_since")

    def __init__(self, beds: int):
        self.beds = beds
        self.occupied = 0
        self.bed_days = 0.0
        self._since = 0.0

    def _accrue(self, now: float) -> None:
        self.bed_days += self.occupied * (now - self._since)
        self._since = now

    def admit(self, now: float) -> None:
        self._accrue(now)
        self.occupied += 1

    def discharge(self, now: float) -> None:
        self._accrue(now)
        self.occupied -= 1


class Trial:
    """One simulated trial: its pre-drawn inputs, shared resources, running counts and per-patient results.

    Referral-level inputs are indexed by referral order ``k``; patient-level draws by enrolment
    position; outcomes by arm and the patient's index within the arm (``outcomes[arm][i]`` is
    ``(stay_days, event_day, event_extra_days, died, death_day)``).
    """

    __slots__ = (
        # inputs
        "referral_days", "eligible", "consents", "is_treatment", "visit_offset_days", "withdraws", "withdrawal_fraction",
        "misses_visit", "misses_procedure", "outcomes", "target", "deadline", "days_to_screening",
        "days_to_surgery", "visit_day", "visit_window", "theatre", "ward", "log",
        # counts and results
        "n_referred", "n_screened", "n_eligible", "n_enrolled", "n_in_arm", "readmissions", "visit_window_misses",
        "t_first_enrolment", "t_last_enrolment", "closed_by_deadline", "t_last_followup",
        "enrolled", "visit_attended", "procedure_done", "t_enrolled", "t_surgery", "t_visit",
    )

    def __init__(self, env, *, flow, outcomes, first_weekday=0, log=None, **draws):
        # draws: one trial's row of each FlowDraws field, as Python lists
        for name in DRAW_FIELDS:
            setattr(self, name, draws.pop(name))
        if draws:
            raise TypeError(f"unexpected draws {sorted(draws)}")
        self.outcomes = outcomes
        self.target = len(self.is_treatment)
        self.deadline = INF if flow.deadline_days is None else flow.deadline_days
        self.days_to_screening = flow.days_referral_to_screening
        self.days_to_surgery = flow.days_referral_to_surgery
        self.visit_day, self.visit_window = flow.visit_day, flow.visit_window_days
        self.theatre = Theatre(env, flow.or_slots_per_week, first_weekday)
        self.ward = Ward(flow.beds)
        self.log = log
        self.n_referred = self.n_screened = self.n_eligible = self.n_enrolled = 0
        self.n_in_arm = [0, 0]
        self.readmissions = self.visit_window_misses = 0
        self.t_first_enrolment = self.t_last_enrolment = math.nan
        self.closed_by_deadline = False
        self.t_last_followup = 0.0
        n = self.target
        # per arm (control, treatment), by the patient's index within the arm
        self.enrolled, self.visit_attended, self.procedure_done = (([False] * n, [False] * n) for _ in range(3))
        self.t_enrolled, self.t_surgery, self.t_visit = (([math.nan] * n, [math.nan] * n) for _ in range(3))

    def note(self, time: float, patient_id: int, arm: int, event: str, detail: str = "") -> None:
        """Add a row to the event log (kept for one trial only). ``arm`` -1 = not allocated; ``patient_id`` 0 = the trial."""
        if self.log is not None:
            self.log.append((time, patient_id, ARMS[arm] if arm >= 0 else "", event, detail))


def recruitment(env, trial: Trial):
    """Referral, screening and enrolment of candidates, in referral order, until the trial closes.

    Each referral is screened ``days_referral_to_screening`` later (eligibility, then consent); a
    consenting eligible patient is enrolled there, gets the next allocation and a :func:`patient`
    process. Recruitment closes at the target enrolment or at the deadline, whichever comes first;
    referrals not yet screened then are not screened.
    """
    referral_days, delay = trial.referral_days, trial.days_to_screening
    closes, reason = trial.deadline, "deadline"
    for k, referred in enumerate(referral_days):
        screened = referred + delay
        if screened >= closes:
            break
        yield until(env, screened)
        patient_id = k + 1
        trial.n_screened += 1
        trial.note(referred, patient_id, -1, "referred")
        if not trial.eligible[k]:
            trial.note(screened, patient_id, -1, "screened", "ineligible")
            continue
        trial.n_eligible += 1
        if not trial.consents[k]:
            trial.note(screened, patient_id, -1, "screened", "eligible, declined consent")
            continue
        position = trial.n_enrolled
        arm = int(trial.is_treatment[position])
        index = trial.n_in_arm[arm]
        trial.n_in_arm[arm] += 1
        trial.n_enrolled += 1
        trial.enrolled[arm][index] = True
        trial.t_enrolled[arm][index] = screened
        if position == 0:
            trial.t_first_enrolment = screened
        trial.t_last_enrolment = screened
        trial.note(screened, patient_id, arm, "enrolled", f"consented; enrolment {position + 1} of {trial.target}")
        env.process(patient(env, trial, patient_id, arm, index, position, ready=referred + trial.days_to_surgery))
        if trial.n_enrolled == trial.target:
            closes, reason = screened, "target reached"
            break
    else:  # only with hand-made draws: draw_flow always gives enough referrals to reach the target
        closes, reason = env.now, "no more referrals"
    trial.closed_by_deadline = reason == "deadline"
    trial.n_referred = max(trial.n_screened, bisect.bisect_left(referral_days, closes))
    for k in range(trial.n_screened, trial.n_referred):
        trial.note(referral_days[k], k + 1, -1, "referred")
        trial.note(closes, k + 1, -1, "not_screened", "recruitment closed")
    trial.note(closes, 0, -1, "recruitment_closed", f"{reason}; {trial.n_enrolled} enrolled")
    trial.t_last_followup = max(trial.t_last_followup, closes)


def patient(env, trial: Trial, patient_id: int, arm: int, index: int, position: int, *, ready: float):
    """One enrolled patient: the waiting list for surgery, the ward stay, a readmission, follow-up.

    The index stay lasts ``stay_days``, plus ``event_extra_days`` when the linked event (e.g. a leak)
    is diagnosed in hospital (``event_day <= stay_days``); a later event is a readmission at
    ``event_day`` for ``event_extra_days``. Death ends any stay and cancels what would come after it.
    """
    yield until(env, ready)
    yield trial.theatre.request(patient_id, arm)  # admitted to the ward by the operating list
    t0 = env.now
    ward = trial.ward
    trial.t_surgery[arm][index] = t0
    trial.note(t0, patient_id, arm, "surgery")
    base_stay, event_day, event_extra, died, death_day = trial.outcomes[arm][index]
    if not died:
        death_day = INF
    event = event_day == event_day  # NaN = no event
    event_in_hospital = event and event_day <= base_stay
    stay = base_stay + event_extra if event_in_hospital else base_stay
    if event_in_hospital and event_day < death_day:
        trial.note(t0 + event_day, patient_id, arm, "event_diagnosed", "in hospital")
    yield env.timeout(min(stay, death_day))
    ward.discharge(env.now)
    died_in_hospital = death_day <= stay
    if died_in_hospital:
        trial.note(env.now, patient_id, arm, "died", "in hospital")
    else:
        trial.note(env.now, patient_id, arm, "discharged")
        if event and not event_in_hospital and event_day < death_day:
            yield until(env, t0 + event_day)
            ward.admit(env.now)
            trial.readmissions += 1
            trial.note(env.now, patient_id, arm, "event_diagnosed", "after discharge")
            trial.note(env.now, patient_id, arm, "readmitted")
            leaves = event_day + event_extra
            yield until(env, t0 + min(leaves, death_day))
            ward.discharge(env.now)
            died_in_hospital = death_day <= leaves
            trial.note(env.now, patient_id, arm, "died" if died_in_hospital else "discharged",
                       "in hospital" if died_in_hospital else "after readmission")
    if death_day < INF and not died_in_hospital:
        trial.note(t0 + death_day, patient_id, arm, "died", "after discharge")
    follow_up(trial, patient_id, arm, index, position, t0, death_day)


def follow_up(trial: Trial, patient_id: int, arm: int, index: int, position: int, t_surgery: float, death_day: float) -> None:
    """The follow-up visit and its procedure (e.g. a colonoscopy), settled once the hospital course is known.

    A plain function, not a process: the visit uses no shared resource, so it needs no scheduled
    event; its rows carry their own times in the log. In order of precedence: death before the
    visit, withdrawal (at a uniform time between surgery and the visit), loss to follow-up, a visit
    outside the window (outcomes missing per protocol), an attended visit with or without its procedure.
    """
    offset = trial.visit_offset_days[position]
    visit_pod = trial.visit_day + offset
    t_visit = t_surgery + visit_pod
    if death_day < visit_pod:
        ends = t_surgery + death_day
    elif trial.withdraws[position]:
        ends = t_surgery + trial.withdrawal_fraction[position] * visit_pod
        trial.note(ends, patient_id, arm, "withdrew")
    elif trial.misses_visit[position]:
        ends = t_visit
        trial.note(ends, patient_id, arm, "visit_missed", "lost to follow-up")
    elif abs(offset) > trial.visit_window:
        ends = t_visit
        trial.visit_window_misses += 1
        trial.note(ends, patient_id, arm, "visit_out_of_window",
                   f"postoperative day {visit_pod:g}, window {trial.visit_day:g} +/- {trial.visit_window:g}")
    else:
        ends = t_visit
        trial.visit_attended[arm][index] = True
        trial.t_visit[arm][index] = t_visit
        trial.note(t_visit, patient_id, arm, "visit", f"postoperative day {visit_pod:g}")
        if trial.misses_procedure[position]:
            trial.note(t_visit, patient_id, arm, "procedure_missed")
        else:
            trial.procedure_done[arm][index] = True
            trial.note(t_visit, patient_id, arm, "procedure")
    if ends > trial.t_last_followup:
        trial.t_last_followup = ends
