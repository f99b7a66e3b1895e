"""Death and loss to follow-up before the visit: the patient-level state every endpoint's observation sees."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trialsim.config.schema import FollowUp
from trialsim.endpoints.base import PatientContext
from trialsim.rng import Streams, patient_draws


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
    u = patient_draws(streams("follow_up"), "random", ctx.n_trials, ctx.n_patients, extra=(3,))
    if event is None:
        p_death = np.full(ctx.shape, follow_up.p_death)
        start = np.ones(ctx.shape)
    else:
        p_death = np.where(event["event"], follow_up.p_death_after_event, follow_up.p_death)
        start = np.where(event["event"], np.nan_to_num(event["day"], nan=1.0), 1.0)
    died = u[..., 0] < p_death
    horizon = follow_up.horizon_days
    death_day = np.where(died, start + u[..., 1] * np.maximum(horizon - start, 0.0), np.nan)
    misses = (u[..., 2] < follow_up.p_missing_visit) & ~died
    return FollowUpDraws(died=died, death_day=death_day, misses_visit=misses)
