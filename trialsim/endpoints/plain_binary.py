"""A plain binary endpoint (family ``plain_binary``): an event with a rate per arm and nothing more.

Per patient: the event occurs with a covariate-dependent risk (logistic, each arm calibrated with
:func:`trialsim.endpoints.risk.patient_risk` so the arm's marginal rate is exactly the configured
one); the value is missing with ``p_missing`` (independently) and, when ``measured_at_visit``, when a
living patient misses the follow-up visit (a death is known from the records). The event has no day
or grade of its own: others linking to it see it from day 0, grade 1.

No trial-specific defaults: ``rate_control`` and ``effect`` must be given.
"""
from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from trialsim.config.base import MISSING_MAX, Text
from trialsim.endpoints.base import (
    Analysed, BaselineParameter, BinaryLaw, EffectParameter, EndpointFamily, PatientContext, Status, binary_contrast,
)
from trialsim.endpoints.registry import register
from trialsim.endpoints.risk import (
    RATE_MIN, RiskFactor, check_rate, check_unique, conditional_log_or, linear_score, patient_risk,
)
from trialsim.rng import Streams, patient_draws


@register
class PlainBinary(EndpointFamily):
    """A binary endpoint: control rate, one treatment effect, optional covariate odds ratios."""

    family: Literal["plain_binary"] = "plain_binary"
    is_event: ClassVar[bool] = True
    gives_risk_score: ClassVar[bool] = True

    label: Text = Field("", max_length=200, description="Endpoint label; empty = the section id.")
    unit: Text = Field("patients", max_length=60, description="What is counted.")
    rate_control: float = Field(ge=RATE_MIN, le=1.0 - RATE_MIN, description="Marginal event rate in the control arm.")
    effect_measure: Literal["risk_ratio", "odds_ratio", "risk_difference", "rate"] = Field(
        "risk_ratio",
        description="How `effect` is given: risk ratio, odds ratio or risk difference (treatment - control), or the treatment arm's rate.",
    )
    effect: float = Field(ge=-1.0, le=1000.0, description="Treatment effect on the scale of `effect_measure`.")
    risk_factors: tuple[RiskFactor, ...] = Field((), max_length=16, description="Covariate odds ratios (logistic risk; arms calibrated to their marginal rates).")
    p_missing: float = Field(0.0, ge=0.0, le=MISSING_MAX, description="Chance the value is missing, independently of everything else.")
    measured_at_visit: bool = Field(True, description="Assessed at the follow-up visit: missing for living patients who miss it (a death is known).")
    tests: tuple[str, ...] = Field(("fisher",), max_length=10, description="Analyses; the first is the primary one.")

    @field_validator("risk_factors")
    @classmethod
    def _unique(cls, v):
        return check_unique(v)

    @model_validator(mode="after")
    def _treatment_rate(self):
        if self.effect_measure in ("risk_ratio", "odds_ratio") and self.effect <= 0.0:
            raise ValueError(f"effect = {self.effect}: a {self.effect_measure.replace('_', ' ')} must be > 0")
        check_rate(f"with effect = {self.effect} ({self.effect_measure}), the treatment rate", self.rate("treatment"))
        return self

    def rate(self, arm: str) -> float:
        """Marginal event rate of ``arm``."""
        rc, e = self.rate_control, self.effect
        if arm == "control":
            return rc
        if self.effect_measure == "risk_ratio":
            return e * rc
        if self.effect_measure == "odds_ratio":
            odds = e * rc / (1.0 - rc)
            return odds / (1.0 + odds)
        if self.effect_measure == "risk_difference":
            return rc + e
        return e

    # ------------------------------------------------------------------------------ structure
    def covariates_used(self) -> tuple[str, ...]:
        return tuple(f.covariate for f in self.risk_factors)

    def analysed(self, cid: str) -> tuple[Analysed, ...]:
        rc = self.rate_control
        if self.effect_measure == "rate":
            effect = EffectParameter(f"endpoints.{cid}.effect", "treatment rate", "rate", rc, self.effect, lower=1e-4, upper=0.9999)
        elif self.effect_measure == "risk_difference":
            effect = EffectParameter(f"endpoints.{cid}.effect", "risk difference", "difference", 0.0, self.effect,
                                     lower=1e-4 - rc, upper=0.9999 - rc)
        else:
            effect = EffectParameter(f"endpoints.{cid}.effect", self.effect_measure.replace("_", " "), "ratio", 1.0, self.effect)
        baseline = BaselineParameter(f"endpoints.{cid}.rate_control", "control rate", rc, 1e-4, 0.9999)
        return (Analysed(cid, cid, "binary", self.label or cid, self.unit, "identity", self.tests, effect,
                         measured_at_visit=self.measured_at_visit, summary="rate", baseline=baseline),)

    # ------------------------------------------------------------------------------- patients
    def generate(self, cid: str, ctx: PatientContext, streams: Streams) -> dict[str, np.ndarray]:
        rng = streams("endpoint", cid)
        s, n = ctx.shape
        risk = patient_risk(self.risk_factors, ctx.covariates, ctx.prevalence, ctx.treated,
                            self.rate("control"), self.rate("treatment"))
        u = patient_draws(rng, "random", s, n, extra=(2,))  # event, missing
        occurred = u[..., 0] < risk
        return {"event": occurred, "day": np.where(occurred, 0.0, np.nan), "grade": np.where(occurred, 1, -1),
                "risk": risk, "missing_u": u[..., 1]}

    def event_values(self, latent: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"event": latent["event"], "day": latent["day"], "grade": latent["grade"]}

    def observe(self, cid: str, ctx: PatientContext, latent: dict[str, np.ndarray], status: Status) -> dict[str, np.ndarray]:
        known = (latent["missing_u"] >= self.p_missing) & status.seen(at_visit=self.measured_at_visit, death_known=True)
        return {cid: np.where(known, latent["event"], np.nan)}

    # ----------------------------------------------------------------------------------- laws
    def event_probability(self, cid: str, arm: str, model) -> float:
        return self.rate(arm)

    def event_by_day(self, cid: str, arm: str, day: float, model) -> float:
        return self.rate(arm) if day > 0 else 0.0

    def binary_law(self, cid: str, name: str, arm: str, model) -> BinaryLaw | None:
        rate = self.rate(arm)
        kept = 1.0 - self.p_missing
        if not self.measured_at_visit:
            return BinaryLaw(rate, 1.0 - kept)
        fu = model.scenario.follow_up
        miss = fu.p_missing_visit
        if fu.death_event is None:
            weights, alive = np.array([1.0 - rate, rate]), np.full(2, 1.0 - fu.p_death)
        elif fu.death_event == cid:
            weights, alive = (np.asarray(x, float) for x in model.alive_by_event(cid, arm))
        else:
            return None  # death follows another event, whose joint law with this one is not known
        # lost = visit missed while alive; a death is assessed from the records
        assessed = kept * (1.0 - miss * alive)
        p_assessed = float(weights @ assessed)
        return BinaryLaw(float(weights[1] * assessed[1]) / p_assessed, 1.0 - p_assessed)

    def risk_score(self, covariates: dict[str, np.ndarray]) -> np.ndarray:
        return linear_score(self.risk_factors, covariates)

    def true_effect(self, cid: str, name: str, estimand: str, model) -> float | None:
        if estimand == "log_conditional_odds_ratio":
            # missingness depends on the event or on other components given the covariates, never on this
            # event and the covariates together, so the risk model's conditional odds ratio is what is observed
            return conditional_log_or(self.risk_factors, model.prevalence, self.rate("control"), self.rate("treatment"))
        c, t = self.binary_law(cid, name, "control", model), self.binary_law(cid, name, "treatment", model)
        return binary_contrast(estimand, c, t)
