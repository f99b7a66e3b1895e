"""Stand-ins shared by the family tests."""
from __future__ import annotations


class FakeModel:
    """The part of :class:`trialsim.model.Model` the laws use."""

    def __init__(self, sections: dict):
        self.sections = sections

    def section(self, cid):
        return self.sections[cid]

    def event_probability(self, cid, arm):
        return self.sections[cid].event_probability(cid, arm, self)
