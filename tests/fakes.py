"""Stand-ins shared by the family tests."""
from __future__ import annotations

import numpy as np


class FakeModel:
    """The part of :class:`trialsim.model.Model` the laws use."""

    def __init__(self, sections: dict):
        self.sections = sections

    def section(self, cid):
        return self.sections[cid]

    def event_probability(self, cid, arm):
        return self.sections[cid].event_probability(cid, arm, self)


def alternating_arms(n_trials: int, n_patients: int):
    """Treated flags (n_trials, n_patients): every second patient treated."""
    treated = np.zeros((n_trials, n_patients), bool)
    treated[:, 1::2] = True
    return treated


def difference_and_se(treatment, control) -> tuple[float, float]:
    """Difference of means (treatment - control) and its standard error."""
    return float(treatment.mean() - control.mean()), float(np.sqrt(treatment.var() / treatment.size + control.var() / control.size))
