"""The patient flow of S trials at once: the SimPy processes' arithmetic replayed on arrays (trials x patients).

The flow's processes (:mod:`trialsim.flow.processes`) interact only through the operating list (first
come, first served) and the ward's bed count, and every random input is drawn before the event loop.
So the order of events is known patient by patient: patient ``p`` joins the operating list after
patient ``p - 1`` (their ready times increase with referral), and is operated at the first slot, at or
after the one following ``p - 1``'s, at which fewer than ``beds`` earlier patients are in the ward. This
module walks the enrolment positions in order, vectorised over trials, and repeats SimPy's own
floating-point steps (``now + (target - now)`` for every timeout, the ward's running bed-day sum in
event order), so each trial's results are bit-identical to its SimPy run. Simultaneous events mean
the same in both: a slot is taken after every discharge, readmission and arrival of the same instant
(:class:`trialsim.flow.processes.SlotTimeout`). :func:`trialsim.flow.run.run_flow` checks trial 0 of
every block against SimPy all the same.

The bed count at a slot looks at the last ``WINDOW`` patients operated, widened whenever a patient
left of the window may still be in the ward; while the ward is full, slots before the next discharge
are skipped at once (they would be lost), as SimPy's clock lands on them exactly.
"""
from __future__ import annotations

import math

import numpy as np

from trialsim.config.flow import FlowConfig
from trialsim.flow.processes import ARMS, slot_offsets

INF = math.inf
WINDOW = 32  # earlier patients looked at for the bed count (widened when one of them may still be in the ward)


def _first_slot(now: np.ndarray, offsets: np.ndarray, per_week: int) -> np.ndarray:
    """Index of the first slot at or after day ``now`` (Theatre.first_slot on arrays)."""
    week = np.floor(now / 7.0)
    return week.astype(np.int64) * per_week + np.searchsorted(offsets, now - 7.0 * week, side="left")


def _slot_day(j: np.ndarray, offsets: np.ndarray, per_week: int) -> np.ndarray:
    return 7.0 * (j // per_week) + offsets[j % per_week]


def _after(now: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The time SimPy reaches waiting from ``now`` until ``target`` (processes.until; not always ``target`` in floating point)."""
    return now + np.maximum(target - now, 0.0)


def _recruitment(flow: FlowConfig, draws, n_max: int) -> dict[str, np.ndarray]:
    """Screening, enrolment and closure of every trial (recruitment() on arrays)."""
    referral = np.asarray(draws.referral_days, dtype=float)
    s, k = referral.shape
    rows = np.arange(s)
    screened = referral + flow.days_referral_to_screening
    deadline = INF if flow.deadline_days is None else flow.deadline_days
    in_time = screened < deadline  # a prefix of each row: referrals increase
    joins = np.asarray(draws.eligible, dtype=bool) & np.asarray(draws.consents, dtype=bool) & in_time
    count = np.cumsum(joins, axis=1)
    reached = count[:, -1] >= n_max
    k_target = np.argmax(count >= n_max, axis=1)
    n_in_time = in_time.sum(axis=1)
    exhausted = ~reached & (n_in_time == k)  # only with hand-made draws: draw_flow always reaches the target
    n_screened = np.where(reached, k_target + 1, n_in_time)
    # the clock of the recruitment process: one timeout per screening, each from the previous one's time
    clock = np.empty_like(screened)
    now = np.zeros(s)
    for col in range(k):
        now = _after(now, screened[:, col])
        clock[:, col] = now
    closes = np.where(reached, screened[rows, k_target], np.where(exhausted, clock[:, -1], deadline))
    screened_mask = np.arange(k)[None, :] < n_screened[:, None]
    enrols = joins & screened_mask
    n_enrolled = enrols.sum(axis=1)
    # referral index of each enrolment position (positions past n_enrolled point at unused referrals)
    which = np.argsort(~enrols, axis=1, kind="stable")[:, :n_max]
    if which.shape[1] < n_max:
        which = np.pad(which, ((0, 0), (0, n_max - which.shape[1])))
    enrolled = np.arange(n_max)[None, :] < n_enrolled[:, None]
    t_enrolled = np.where(enrolled, np.take_along_axis(screened, which, axis=1), np.nan)
    ready = _after(np.take_along_axis(clock, which, axis=1),
                   np.take_along_axis(referral, which, axis=1) + flow.days_referral_to_surgery)
    n_referred = np.maximum(n_screened, (referral < closes[:, None]).sum(axis=1))
    last = np.maximum(n_enrolled - 1, 0)
    return {
        "n_screened": n_screened, "n_eligible": (np.asarray(draws.eligible, dtype=bool) & screened_mask).sum(axis=1),
        "n_enrolled": n_enrolled, "n_referred": n_referred, "closes": closes,
        "closed_by_deadline": ~reached & ~exhausted, "enrolled": enrolled, "t_enrolled": t_enrolled, "ready": ready,
        "t_first_enrolment": np.where(n_enrolled > 0, t_enrolled[:, 0], np.nan),
        "t_last_enrolment": np.where(n_enrolled > 0, t_enrolled[rows, last], np.nan),
    }


def _by_position(outcomes: dict, is_treatment: np.ndarray, index: np.ndarray) -> dict[str, np.ndarray]:
    """Each position's outcome row: outcomes[arm][key][s, index within the arm]."""
    out = {}
    for key in outcomes["control"]:
        control = np.take_along_axis(np.asarray(outcomes["control"][key], dtype=float), index, axis=1)
        treatment = np.take_along_axis(np.asarray(outcomes["treatment"][key], dtype=float), index, axis=1)
        out[key] = np.where(is_treatment, treatment, control)
    return out


def _bed_days(times: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """The ward's running sum of occupied x elapsed over its admissions (+1) and discharges (-1), in time order."""
    order = np.argsort(times, axis=1, kind="stable")
    times = np.take_along_axis(times, order, axis=1)
    steps = np.take_along_axis(steps, order, axis=1)
    occupied_before = np.cumsum(steps, axis=1) - steps
    total = np.zeros(times.shape[0])
    since = np.zeros(times.shape[0])
    with np.errstate(invalid="ignore"):  # 0 x inf on the unused (infinite) columns, discarded
        for col in range(times.shape[1]):
            t = times[:, col]
            live = steps[:, col] != 0
            total = np.where(live, total + occupied_before[:, col] * (t - since), total)
            since = np.where(live, t, since)
    return total


def walk_flow(flow: FlowConfig, draws, *, n_control: int, n_treatment: int, outcomes: dict) -> dict[str, object]:
    """Every trial's flow results (the fields run_flow collects from SimPy), computed on arrays.

    Returns a dict with the per-patient fields (``enrolled``, ``visit_attended``, ``procedure_done``,
    ``t_enrolled``, ``t_surgery``, ``t_visit``: dicts by arm of (S, n_max) arrays, by the patient's
    index within the arm) and the per-trial fields of the SimPy run (arrays (S,)).
    """
    n_max = n_control + n_treatment
    rec = _recruitment(flow, draws, n_max)
    s = rec["ready"].shape[0]
    is_treatment = np.asarray(draws.is_treatment, dtype=bool)
    index = np.where(is_treatment, np.cumsum(is_treatment, axis=1) - 1, np.cumsum(~is_treatment, axis=1) - 1)
    out = _by_position(outcomes, is_treatment, index)
    died = out["died"] != 0
    death = np.where(died, out["death_day"], INF)
    event_day = out["event_day"]
    event = ~np.isnan(event_day)
    base, extra = out["stay_days"], out["event_extra_days"]
    in_hospital = event & (event_day <= base)
    stay = np.where(in_hospital, base + extra, base)
    died_in_stay = death <= stay
    readmitted = ~died_in_stay & event & ~in_hospital & (event_day < death)
    leaves = event_day + extra

    per_week = flow.or_slots_per_week
    offsets = np.asarray(slot_offsets(per_week, flow.start_date.weekday()), dtype=float)
    enrolled = rec["enrolled"]
    ready = rec["ready"]
    t0 = np.full((s, n_max), np.nan)
    t_out = np.full((s, n_max), INF)  # end of the index stay
    t_back = np.full((s, n_max), INF)  # readmission
    t_back_out = np.full((s, n_max), INF)  # its discharge
    last_out = np.full((s, n_max), -INF)  # the patient's last discharge
    j_prev = np.full(s, -1, dtype=np.int64)
    t_prev = np.full(s, -INF)
    window, dropped = WINDOW, np.full(s, -INF)  # latest discharge among patients left of the window
    for p in range(n_max):
        live = np.nonzero(enrolled[:, p])[0]
        if live.size == 0:
            break
        # the operating list resumes at the previous surgery if p was waiting then, else when p joins
        now = np.where(ready[live, p] < t_prev[live], t_prev[live], ready[live, p])
        j = np.maximum(j_prev[live] + 1, _first_slot(now, offsets, per_week))
        lo = max(0, p - window)
        if lo > 0:
            dropped = np.maximum(dropped, last_out[:, lo - 1])
        done_t = np.empty(live.size)
        done_j = np.empty(live.size, dtype=np.int64)
        pending = np.arange(live.size)
        while pending.size:
            trials = live[pending]
            t = _after(now[pending], _slot_day(j[pending], offsets, per_week))
            while lo > 0 and (dropped[trials] > t).any():  # an earlier patient may still be in the ward
                window *= 2
                lo = max(0, p - window)
                dropped = last_out[:, :lo].max(axis=1) if lo > 0 else np.full(s, -INF)
            tt = t[:, None]
            stays = tt < t_out[trials, lo:p]
            backs = (t_back[trials, lo:p] <= tt) & (tt < t_back_out[trials, lo:p])
            free = stays.sum(axis=1) + backs.sum(axis=1) < flow.beds
            done_t[pending[free]] = t[free]
            done_j[pending[free]] = j[pending[free]]
            full = ~free
            keep = pending[full]
            # Nobody in the ward leaves before its first discharge, so every slot before it is lost too. From a
            # slot time that is exactly its day, SimPy's next timeouts land exactly on slot days: jump there.
            # Otherwise take one slot, as SimPy does.
            first_out = np.minimum(np.where(stays[full], t_out[trials[full], lo:p], INF).min(axis=1, initial=INF),
                                np.where(backs[full], t_back_out[trials[full], lo:p], INF).min(axis=1, initial=INF))
            exact = t[full] == _slot_day(j[keep], offsets, per_week)
            jump = np.maximum(j[keep] + 1, _first_slot(np.where(exact, first_out, 0.0), offsets, per_week))
            j[keep] = np.where(exact, jump, j[keep] + 1)
            now[keep] = np.where(exact, _slot_day(j[keep], offsets, per_week), t[full])
            pending = keep
        t0[live, p] = done_t
        j_prev[live], t_prev[live] = done_j, done_t
        t_out[live, p] = done_t + np.minimum(stay[live, p], death[live, p])
        back = readmitted[live, p]
        b = live[back]
        t_back[b, p] = _after(t_out[b, p], done_t[back] + event_day[b, p])
        t_back_out[b, p] = _after(t_back[b, p], done_t[back] + np.minimum(leaves[b, p], death[b, p]))
        last_out[live, p] = np.where(back, t_back_out[live, p], t_out[live, p])

    # follow-up (follow_up() on arrays), in its order of precedence
    offset = np.asarray(draws.visit_offset_days, dtype=float)
    visit_pod = flow.visit_day + offset
    t_visit = t0 + visit_pod
    dies_first = death < visit_pod
    withdraws = ~dies_first & np.asarray(draws.withdraws, dtype=bool)
    lost = ~dies_first & ~withdraws & np.asarray(draws.misses_visit, dtype=bool)
    outside = ~dies_first & ~withdraws & ~lost & (np.abs(offset) > flow.visit_window_days)
    attended = enrolled & ~dies_first & ~withdraws & ~lost & ~outside
    ends = np.where(dies_first, t0 + death,
                    np.where(withdraws, t0 + np.asarray(draws.withdrawal_fraction, dtype=float) * visit_pod, t_visit))
    ends = np.where(enrolled, ends, -INF)
    procedure = attended & ~np.asarray(draws.misses_procedure, dtype=bool)

    times = np.concatenate([np.where(enrolled, t0, INF), t_out, t_back, t_back_out], axis=1)
    admitted, back = enrolled.astype(np.int64), np.isfinite(t_back).astype(np.int64)
    steps = np.concatenate([admitted, -admitted, back, -back], axis=1)
    times = np.where(steps != 0, times, INF)

    per_patient_values = {"enrolled": enrolled, "visit_attended": attended, "procedure_done": procedure,
                          "t_enrolled": rec["t_enrolled"], "t_surgery": np.where(enrolled, t0, np.nan),
                          "t_visit": np.where(attended, t_visit, np.nan)}
    per_patient = {}
    for name, values in per_patient_values.items():
        fill = False if values.dtype == bool else np.nan
        by_arm = {}
        for a, arm in enumerate(ARMS):
            target = np.full((s, n_max), fill, dtype=values.dtype)
            mine = enrolled & (is_treatment == bool(a))
            r, c = np.nonzero(mine)
            target[r, index[r, c]] = values[r, c]
            by_arm[arm] = target
        per_patient[name] = by_arm
    return {
        **per_patient,
        "t_first_enrolment": rec["t_first_enrolment"], "t_last_enrolment": rec["t_last_enrolment"],
        "t_last_followup": np.maximum(rec["closes"], ends.max(axis=1, initial=-INF)),
        "n_referred": rec["n_referred"], "n_screened": rec["n_screened"], "n_eligible": rec["n_eligible"],
        "n_enrolled": rec["n_enrolled"], "readmissions": (readmitted & enrolled).sum(axis=1),
        "visit_window_misses": (outside & enrolled).sum(axis=1), "closed_by_deadline": rec["closed_by_deadline"],
        "bed_days": _bed_days(times, steps),
    }
