"""Death and loss to follow-up before the visit: the patient-level state every endpoint's observation sees."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trialsim.config.schema import FollowUp
from trialsim.endpoints.base import PatientContext
from trialsim.rng import Streams, patient_major, trials_first


@dataclass(frozen=True)
class FollowUpDraws:
    """Per patient: died before the visit, the day of death (NaN alive), missed the visit while alive."""

    died: np.ndarray
    death_day: np.ndarray
    misses_visit: np.ndarray


def draw_follow_up(follow_up: FollowUp, ctx: PatientContext, event: dict[str, np.ndarray] | None, *,
                   streams: Streams) -> FollowUpDraws:
    """Deaths (more likely after the linked event, when there is one) and missed visits.

    A death after the event falls uniformly between the event's day and the visit; other deaths
    uniformly between day 1 and the visit.
    """
    u = patient_major(streams("follow_up"), "random", ctx.n_trials, ctx.n_patients, extra=(3,))
    # element-wise steps on the patient-major draw, then only bools are transposed (and the few deaths gathered)
    died = trials_first(u[..., 0] < follow_up.p_death)
    if event is not None:  # patients with the event (a few) compare with their own chance of death
        occurred = np.asarray(event["event"], dtype=bool)
        after = np.nonzero(occurred)
        died[after] = u[after[1], after[0], 0] < follow_up.p_death_after_event
    hit = np.nonzero(died)
    if event is None:
        start = np.ones(hit[0].size)
    else:
        start = np.where(occurred[hit], np.nan_to_num(np.asarray(event["day"])[hit], nan=1.0), 1.0)
    horizon = follow_up.horizon_days
    death_day = np.full(ctx.shape, np.nan)
    death_day[hit] = start + u[hit[1], hit[0], 1] * np.maximum(horizon - start, 0.0)
    misses = trials_first(u[..., 2] < follow_up.p_missing_visit) & ~died
    return FollowUpDraws(died=died, death_day=death_day, misses_visit=misses)
