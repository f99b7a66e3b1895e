"""A clinical event with grades, timing and detection (family ``binary_event``): the anastomotic leak.

Per patient: the event occurs with a covariate-dependent risk (logistic, each arm calibrated to its
marginal all-grade rate), has a grade (e.g. ISREC A/B/C), a diagnosis day (log-normal truncated to the
endpoint window) and is found at the follow-up assessment if its grade is clinical or, for the first
(silent) grade, with ``p_detect_first_grade``. The analysed endpoint (named by the section id) is
"event found", missing for living patients lost before the assessment. Other endpoints link to it.

Defaults are the registered exosome/LAR trial's leak (primary endpoint) with sources [n] =
section n of shared/clinical_evidence.md.
"""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator
from scipy.special import ndtr, ndtri

from trialsim.config.base import Text
from trialsim.endpoints.assessor import EventAssessorBias, assessor_uniforms
from trialsim.endpoints.base import (
    Analysed, BaselineParameter, BinaryLaw, EffectParameter, EndpointFamily, PatientContext, Status, binary_contrast,
    check_simplex,
)
from trialsim.endpoints.registry import register
from trialsim.endpoints.risk import (
    RATE_MIN, RiskFactor, check_rate, check_unique, conditional_log_or, linear_score, patient_risk,
)
from trialsim.rng import Streams, patient_major, trials_first

DEFAULT_RISK_FACTORS = (
    RiskFactor(covariate="male", odds_ratio=2.0, source="OR 2.04 (1.50-2.77) Qu 2015 [2] SOURCED"),
    RiskFactor(covariate="low_anastomosis", odds_ratio=2.5, source="OR 1.9-9.6 reported, plan 2.5 [2] ASSUMPTION within range"),
    RiskFactor(covariate="neoadjuvant_crt", odds_ratio=1.2, source="OR 1.16-1.23 (Hu 2017) [2] SOURCED"),
    RiskFactor(covariate="diverting_stoma", odds_ratio=0.42, source="RR 0.45 (Pisarska 2018) as OR 0.42 at a 12-16% base rate [2]"),
    RiskFactor(covariate="bmi_ge_25", odds_ratio=1.46, source="OR 1.46 (1.00-2.14) Qu 2015 [2]"),
    RiskFactor(covariate="asa_ge_3", odds_ratio=1.74, source="OR 1.74 (1.04-2.93) Qu 2015 [2]"),
)


def arm_rates(section: "BinaryEvent", arm: str) -> tuple[float, float, float]:
    """(all grades, clinical grades, found at assessment) marginal rates of ``arm``."""
    share_first = section.grade_split[0]
    all_control = section.rate_control / (1.0 - share_first)
    if arm == "control":
        all_grade = all_control
    elif section.effect_measure == "risk_ratio":
        all_grade = section.effect * all_control
    elif section.effect_measure == "odds_ratio":
        odds = section.effect * all_control / (1.0 - all_control)
        all_grade = odds / (1.0 + odds)
    else:  # "rate": effect is the treatment arm's clinical rate
        all_grade = section.effect / (1.0 - share_first)
    clinical = all_grade * (1.0 - share_first)
    found = all_grade * (1.0 - share_first + share_first * section.p_detect_first_grade)
    return all_grade, clinical, found


MIN_SHARE_BY_HORIZON = 1e-6  # of the diagnosis days' law by the horizon (below: the days of events cannot be drawn)


@register
class BinaryEvent(EndpointFamily):
    """An event with grades, a diagnosis day and detection at the follow-up assessment."""

    family: Literal["binary_event"] = "binary_event"
    is_event: ClassVar[bool] = True
    gives_risk_score: ClassVar[bool] = True

    label: Text = Field("Anastomotic leak within 1 month", min_length=1, max_length=200, description="Endpoint label [0].")
    rate_control: float = Field(
        0.12, ge=RATE_MIN, le=1.0 - RATE_MIN,
        description="Marginal rate of the clinical grades (ISREC B/C) in the control arm; sourced range 0.06-0.20 [1].",
    )
    effect_measure: Literal["risk_ratio", "odds_ratio", "rate"] = Field(
        "risk_ratio", description="How `effect` is given: risk ratio or odds ratio vs control, or the treatment arm's clinical rate."
    )
    effect: float = Field(
        0.5, ge=RATE_MIN, le=1000.0,
        description="Treatment effect; ASSUMPTION RR 0.5 (sweep 1.0, 0.7, 0.5, 0.33): no human data, stoma RR 0.33-0.43 [8].",
    )
    grades: tuple[Annotated[Text, Field(min_length=1, max_length=30)], ...] = Field(("A", "B", "C"), min_length=1, max_length=10, description="Grades, the silent one first (ISREC A/B/C) [1].")
    grade_split: tuple[float, ...] = Field(
        (0.25, 0.35, 0.40), description="Share of each grade among all events (Kulu 2013, Huang 2020, IntAct) [1]."
    )
    p_detect_first_grade: float = Field(
        0.10, ge=0.0, le=1.0,
        description="Chance a first-grade (clinically silent) event is found at the assessment; ASSUMPTION [1].",
    )
    day_median: float = Field(7.0, ge=0.01, le=3650.0, description="Median day of diagnosis (median POD 6-7) [1].")
    day_log_sd: float = Field(0.6, ge=0.01, le=3.0, description="Log-SD of the diagnosis day; ASSUMPTION (no IQR reported) [1].")
    horizon_days: float = Field(30.0, ge=1.0, le=3650.0, description="Endpoint window: events diagnosed up to this day (1 month) [0].")
    risk_factors: tuple[RiskFactor, ...] = Field(DEFAULT_RISK_FACTORS, max_length=16, description="Covariate odds ratios (logistic risk) [2].")
    assessor_bias: EventAssessorBias = Field(
        default_factory=EventAssessorBias,
        description="How an assessor who knows the arm records the event (interview and examination); applies only "
                    "when design.assessor_masked is false; ASSUMPTION none.",
    )
    tests: tuple[str, ...] = Field(
        ("fisher", "boschloo", "chi2"), max_length=10, description="Analyses; the first is the primary analysis (Fisher) [9]."
    )

    @field_validator("risk_factors")
    @classmethod
    def _unique(cls, v):
        return check_unique(v)

    @model_validator(mode="after")
    def _shapes(self):
        if len(set(self.grades)) != len(self.grades):
            raise ValueError(f"grades must be distinct, got {list(self.grades)}")
        if len(self.grade_split) != len(self.grades):
            raise ValueError(f"grade_split has {len(self.grade_split)} values but there are {len(self.grades)} grades")
        check_simplex(self.grade_split, "grade_split")
        by_horizon = float(ndtr((np.log(self.horizon_days) - np.log(self.day_median)) / self.day_log_sd))
        if by_horizon < MIN_SHARE_BY_HORIZON:
            raise ValueError(f"day_median = {self.day_median:g} with day_log_sd = {self.day_log_sd:g} puts {by_horizon:.2g} of "
                             f"diagnoses by horizon_days = {self.horizon_days:g}, and this endpoint's events are those diagnosed "
                             f"by then (their days are drawn from that share): give a day_median nearer the horizon or a "
                             f"larger day_log_sd (at least {MIN_SHARE_BY_HORIZON:g} of diagnoses by the horizon)")
        if self.grade_split[0] >= 1.0:
            raise ValueError("grade_split: the silent first grade cannot hold every event")
        if self.effect_measure == "rate" and not 0.0 < self.effect < 1.0:
            raise ValueError(f"with effect_measure = 'rate', effect is the treatment clinical rate and must lie in (0, 1), got {self.effect}")
        all_control = self.rate_control / (1.0 - self.grade_split[0])
        if all_control >= 1.0:
            raise ValueError("rate_control / (1 - share of the first grade) is the all-grade rate and must be below 1")
        if self.effect_measure == "risk_ratio" and self.effect * all_control >= 1.0:
            raise ValueError(f"effect = {self.effect}: risk ratio {self.effect} times the all-grade control rate {all_control:.4g} "
                             f"is a treatment rate >= 1; use a risk ratio below {1 / all_control:.4g}")
        if self.effect_measure == "rate" and self.effect / (1.0 - self.grade_split[0]) >= 1.0:
            raise ValueError("effect: the treatment clinical rate divided by (1 - share of the first grade) must be below 1")
        check_rate("rate_control / (1 - grade_split[0]), the all-grade control rate", all_control)
        check_rate(f"with effect = {self.effect} ({self.effect_measure}), the all-grade treatment rate",
                   arm_rates(self, "treatment")[0])
        return self

    # ------------------------------------------------------------------------------ structure
    def covariates_used(self) -> tuple[str, ...]:
        return tuple(f.covariate for f in self.risk_factors)

    def analysed(self, cid: str) -> tuple[Analysed, ...]:
        kind = "rate" if self.effect_measure == "rate" else "ratio"
        label = {"risk_ratio": "risk ratio", "odds_ratio": "odds ratio", "rate": "treatment clinical rate"}[self.effect_measure]
        null = self.rate_control if kind == "rate" else 1.0
        effect = EffectParameter(f"endpoints.{cid}.effect", label, kind, null, self.effect,
                                 lower=1e-4 if kind == "rate" else 0.01, upper=0.9999 if kind == "rate" else 100.0)
        # the configured rate is of the clinical grades: their share of all grades caps it (the all-grade rate < 1)
        baseline = BaselineParameter(f"endpoints.{cid}.rate_control", "control rate", self.rate_control, 1e-4,
                                     (1.0 - self.grade_split[0]) * 0.9999)
        return (Analysed(cid, cid, "binary", self.label, "patients", "identity", self.tests, effect,
                         measured_at_visit=True, summary="rate", baseline=baseline),)

    # ------------------------------------------------------------------------------- patients
    def generate(self, cid: str, ctx: PatientContext, streams: Streams) -> dict[str, np.ndarray]:
        rng = streams("endpoint", cid)
        s, n = ctx.shape
        all_c, _, _ = arm_rates(self, "control")
        all_t, _, _ = arm_rates(self, "treatment")
        risk = patient_risk(self.risk_factors, ctx.covariates, ctx.prevalence, ctx.treated, all_c, all_t)
        u = patient_major(rng, "random", s, n, extra=(4,))  # occurrence, grade, day, detection
        occurred = trials_first(u[..., 0]) < risk
        # grade, day and detection only for the patients with the event (the same values, computed for a few)
        hit = np.nonzero(occurred)
        events = u[hit[1], hit[0]]
        grade = np.full((s, n), -1, dtype=np.intp)
        grade[hit] = np.searchsorted(np.cumsum(self.grade_split)[:-1], events[:, 1], side="right")
        mu, sd = np.log(self.day_median), self.day_log_sd
        upper = ndtr((np.log(self.horizon_days) - mu) / sd)
        day = np.full((s, n), np.nan)
        day[hit] = np.exp(mu + sd * ndtri(events[:, 2] * upper))
        detected = np.zeros((s, n), dtype=bool)
        detected[hit] = (grade[hit] > 0) | (events[:, 3] < self.p_detect_first_grade)
        latent = {"event": occurred, "grade": grade, "day": day, "detected": detected, "risk": risk}
        return latent | assessor_uniforms(cid, ctx, streams, self.assessor_bias)

    def event_values(self, latent: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"event": latent["event"], "day": latent["day"], "grade": latent["grade"]}

    def observe(self, cid: str, ctx: PatientContext, latent: dict[str, np.ndarray], status: Status) -> dict[str, np.ndarray]:
        recorded = latent["detected"]
        if "assessor_u" in latent:  # an unmasked assessor judges the event (its uniforms are drawn only then)
            recorded = self.assessor_bias.record(recorded, np.asarray(ctx.treated, dtype=bool), latent["assessor_u"])
        return {cid: np.where(status.assessed, recorded, np.nan)}

    # ----------------------------------------------------------------------------------- laws
    def event_probability(self, cid: str, arm: str, model) -> float:
        return arm_rates(self, arm)[0]

    def event_by_day(self, cid: str, arm: str, day: float, model) -> float:
        if day <= 0:
            return 0.0
        mu, sd = np.log(self.day_median), self.day_log_sd
        upper = ndtr((np.log(self.horizon_days) - mu) / sd)
        cdf = min(1.0, float(ndtr((np.log(day) - mu) / sd)) / upper)
        return arm_rates(self, arm)[0] * cdf

    def binary_law(self, cid: str, name: str, arm: str, model) -> BinaryLaw | None:
        """The recorded event's law among assessable patients, with the assessor's misclassification when unmasked."""
        law = self.found_law(cid, arm, model)
        if law is None or model.scenario.design.assessor_is_masked:
            return law
        return BinaryLaw(self.assessor_bias.recorded_probability(law.p_event, arm), law.p_missing)

    def found_law(self, cid: str, arm: str, model) -> BinaryLaw | None:
        """The law of the event as found at the assessment (before any assessor bias) among assessable patients."""
        states = model.alive_by_event(cid, arm)
        if states is None:
            return None
        weights, alive = np.asarray(states[0]), np.asarray(states[1])
        miss = model.scenario.follow_up.p_missing_visit
        found = arm_rates(self, arm)[2]
        # lost = visit missed while alive; a death is assessed from the records
        p_assessed = 1.0 - miss * float(weights @ alive)
        p_joint = found * (1.0 - miss * alive[-1])
        return BinaryLaw(p_joint / p_assessed, 1.0 - p_assessed)

    def risk_score(self, covariates: dict[str, np.ndarray]) -> np.ndarray:
        return linear_score(self.risk_factors, covariates)

    def true_effect(self, cid: str, name: str, estimand: str, model) -> float | None:
        if estimand == "log_conditional_odds_ratio":
            return self._conditional_log_or(model)
        # the truth is the unbiased contrast: an unmasked assessor's misclassification shows as bias
        return binary_contrast(estimand, self.found_law(cid, "control", model), self.found_law(cid, "treatment", model))

    def _conditional_log_or(self, model) -> float | None:
        """The arm's log odds ratio at fixed covariates of the endpoint as observed ("event found").

        Found = event x (found | grade): P(found | covariates, arm) = k * risk with k = 1 - share_first *
        (1 - p_detect_first_grade), logistic only when k = 1; then it is the risk model's conditional log OR
        (assessment depends on the event alone, which keeps odds ratios, as case-control sampling does).
        With k < 1 the odds ratio varies with the covariates: there is no single value, except 0 when the
        arms' rates are equal (found is then independent of the arm given the covariates).
        """
        all_c, all_t = arm_rates(self, "control")[0], arm_rates(self, "treatment")[0]
        complete = self.grade_split[0] == 0.0 or self.p_detect_first_grade == 1.0
        if not complete:
            return 0.0 if all_c == all_t else None
        return conditional_log_or(self.risk_factors, model.prevalence, all_c, all_t)
