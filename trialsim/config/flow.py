"""The ``[flow]`` config section: accrual, operating slots, ward beds, follow-up and closure.

Calendar time is in days from the trial start (a month is 30.4375 days). Defaults are the planned
exosome/LAR trial (NCT06536712); [n] cites section n of ``shared/clinical_evidence.md``. Values
marked ASSUMPTION are planning values without a direct source.
"""
from __future__ import annotations

import datetime
from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator, model_validator

from trialsim.config.base import MISSING_MAX, StrictModel

DAYS_PER_MONTH = 30.4375  # 365.25 / 12


def _tuples(value):
    """TOML gives lists; the frozen (hashable) config keeps tuples. Nested lists become nested tuples."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


Pair = Annotated[tuple[float, float], BeforeValidator(_tuples)]
Gaps = Annotated[tuple[Pair, ...], BeforeValidator(_tuples)]

# Calendar bounds: dates a report can print and day counts that stay within them.
FIRST_DATE, LAST_DATE = datetime.date(1900, 1, 1), datetime.date(2199, 12, 31)
MAX_DAY = 36_500.0  # 100 years from the start
Ratio = Annotated[tuple[int, int], BeforeValidator(_tuples)]

class FlowConfig(StrictModel):
    """Patient flow of a single-centre surgical trial: referral to the 1-month visit."""

    start_date: datetime.date = Field(
        datetime.date(2024, 8, 31), description="Calendar date of day 0: registered start 2024-08-31 [0] SOURCED."
    )
    planned_completion_date: datetime.date = Field(
        datetime.date(2024, 12, 31),
        description="Registered study completion 2024-12-31 [0] SOURCED; the default date for 'finished by the deadline'.",
    )
    referrals_per_month: float = Field(
        6.0, ge=0.01, le=10_000.0,
        description="LAR candidates referred per month (Poisson). ASSUMPTION 6 (sweep 3-10): no TUMS figure; Shiraz registry ~3.4 rectal operations/month [7].",
    )
    ramp_up_months: float = Field(
        0.0, ge=0.0, le=120.0,
        description="Referral rate rises linearly from 0 to full over this many months (site activation); 0 = none. ASSUMPTION.",
    )
    gaps: Gaps = Field(
        (), max_length=200,
        description="[start_day, end_day) periods without referrals (holidays, e.g. Nowruz); sorted, not overlapping. ASSUMPTION: none.",
    )
    p_eligible: float = Field(0.75, ge=0.001, le=1.0, description="Share of screened referrals who are eligible. ASSUMPTION [7].")
    p_consent: float = Field(
        0.65, ge=0.001, le=1.0,
        description="Share of eligible patients who consent (placebo refusal, treatment preference [7]). ASSUMPTION; with p_eligible ~2.9 enrolled/month [7].",
    )
    days_referral_to_screening: float = Field(
        3.0, ge=0.0, le=365.0,
        description="Referral to the clinic visit where eligibility is checked and consent taken (enrolment). ASSUMPTION.",
    )
    days_referral_to_surgery: float = Field(
        14.0, ge=0.0, le=365.0,
        description="Referral to the day the patient is ready for surgery (then the next free operating slot). ASSUMPTION.",
    )
    or_slots_per_week: int = Field(
        2, ge=1, le=70,
        description="Operating slots a week for trial LARs, spread over Monday-Friday (start_date fixes the weekday of day 0). ASSUMPTION.",
    )
    beds: int = Field(
        4, ge=1, le=100_000,
        description="Ward beds available to trial patients; surgery is postponed to the next slot when all are full. ASSUMPTION.",
    )
    visit_day: float = Field(30.0, ge=1.0, le=365.0, description="Postoperative day of the follow-up visit and colonoscopy ('1 month') [0].")
    visit_window_days: float = Field(
        7.0, ge=0.0, le=365.0,
        description="Visit window +/- days; a visit outside it leaves the 1-month outcomes missing per protocol. ASSUMPTION.",
    )
    visit_timing_sd_days: float = Field(
        3.0, ge=0.0, le=365.0,
        description="SD of the actual visit day around visit_day (normal, rounded to whole days); 0 = on the day. ASSUMPTION.",
    )
    p_withdraw: float = Field(
        0.02, ge=0.0, le=MISSING_MAX,
        description="Chance a patient withdraws between surgery and the visit (uniform time). ASSUMPTION (small).",
    )
    deadline_days: float | None = Field(
        None, ge=1.0, le=MAX_DAY,
        description=(
            "Recruitment closes on this day even if the target is not reached; enrolled patients finish follow-up. "
            "None = no deadline. Scenario: 122 = registered start to completion [0]."
        ),
    )

    @field_validator("gaps")
    @classmethod
    def _check_gaps(cls, v):
        previous_end = 0.0
        for start, end in v:
            if not 0.0 <= start < end <= MAX_DAY:
                raise ValueError(f"each gap needs 0 <= start_day < end_day <= {MAX_DAY:g}, got [{start}, {end}]")
            if start < previous_end:
                raise ValueError(f"gaps must be sorted and not overlap; [{start}, {end}] starts before day {previous_end}")
            previous_end = end
        return v

    @field_validator("start_date", "planned_completion_date")
    @classmethod
    def _calendar(cls, v):
        if not FIRST_DATE <= v <= LAST_DATE:
            raise ValueError(f"use a date from {FIRST_DATE} to {LAST_DATE}, got {v}")
        return v

    @model_validator(mode="after")
    def _check_order(self):
        if self.days_referral_to_surgery < self.days_referral_to_screening:
            raise ValueError(
                f"days_referral_to_surgery ({self.days_referral_to_surgery}) must be >= days_referral_to_screening "
                f"({self.days_referral_to_screening}): patients are enrolled before surgery"
            )
        if self.deadline_days is not None and self.deadline_days <= self.days_referral_to_screening:
            raise ValueError(
                f"deadline_days ({self.deadline_days}) must be after days_referral_to_screening "
                f"({self.days_referral_to_screening}): recruitment would close before the first referral is screened")
        if self.planned_completion_date <= self.start_date:
            raise ValueError(f"planned_completion_date {self.planned_completion_date} must be after start_date {self.start_date}")
        return self

    @property
    def referrals_per_day(self) -> float:
        return self.referrals_per_month / DAYS_PER_MONTH

    @property
    def planned_duration_days(self) -> float:
        """Days from start_date to planned_completion_date (122 for the registered trial)."""
        return float((self.planned_completion_date - self.start_date).days)
