"""The one base class for every config section: strict, frozen, unknown keys rejected."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base of all config sections.

    ``extra="forbid"`` turns a misspelt key into an error instead of a silently ignored value;
    ``strict=True`` refuses ``"10"`` where a number is expected (an int is still accepted for a float);
    ``frozen=True`` makes a validated scenario immutable, so it can be hashed and shared across workers.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, validate_default=True)
