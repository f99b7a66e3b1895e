"""A plain continuous endpoint (family ``plain_continuous``): normal, or log-normal analysed on logs.

On the analysed scale (the value, or its natural log when ``scale = "log"``) a patient's value is

    mu + effect_term * treated + sum_k beta_k * (x_k - prevalence_k) + event_shift * event + sd * z

with ``mu`` = ``mean_control`` (identity) or ``log(mean_control)`` (log), ``effect_term`` = ``effect``
(identity: difference) or ``log(effect)`` (log: ratio of geometric means), ``beta_k`` =
``covariate_effects[k]`` and ``event`` the linked event (if any). Covariate shifts are centred on the
covariate's prevalence, so ``mean_control`` is the control arm's mean on the analysed scale over the
whole population (for the log scale: its geometric mean, the median of a log-normal) among patients
without the linked event; a covariate present still shifts a patient by ``beta_k``.

The value is missing with ``p_missing`` (independently) and, when ``measured_at_visit``, for patients
not seen at the follow-up visit (dead or lost). No trial-specific defaults: ``mean_control``, ``sd``
and ``effect`` must be given.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator
from scipy.special import ndtr

from trialsim.config.base import MISSING_MAX, Identifier, Text
from trialsim.endpoints.base import Analysed, EffectParameter, EndpointFamily, PatientContext, Status
from trialsim.endpoints.registry import register
from trialsim.rng import Streams, patient_draws

MAX_EXACT_COVARIATES = 10  # P(treatment < control) enumerates 2^k covariate patterns per arm


# Magnitudes of means, SDs, differences and shifts on the identity scale (their squares stay far from
# overflow); on the log scale shifts are logs of factors.
MAGNITUDE = 1e12
LOG_SHIFT_MAX = 20.0


@register
class PlainContinuous(EndpointFamily):
    """A continuous endpoint: control mean (or median), SD, one treatment effect, optional shifts."""

    family: Literal["plain_continuous"] = "plain_continuous"

    label: Text = Field("", max_length=200, description="Endpoint label; empty = the section id.")
    unit: Text = Field("", max_length=60, description="Unit of the value (e.g. 'mg/L').")
    scale: Literal["identity", "log"] = Field(
        "identity", description="'identity': normal values; 'log': log-normal values, analysed on natural logs.")
    mean_control: float = Field(ge=-MAGNITUDE, le=MAGNITUDE, description="Control arm, on the analysed scale: the mean (identity) or the median = geometric mean (log, > 0).")
    sd: float = Field(gt=0.0, le=MAGNITUDE, description="Within-arm SD on the analysed scale: the SD (identity) or the SD of the log (log).")
    effect: float = Field(ge=-MAGNITUDE, le=MAGNITUDE, description="Treatment effect: difference treatment - control (identity) or ratio of geometric means (log, > 0).")
    covariate_effects: dict[Identifier, float] = Field(
        default_factory=dict, max_length=16, description="Additive shift on the analysed scale when a covariate is present (centred on its prevalence).")
    event: str | None = Field(None, description="Id of an event endpoint that shifts the value when it occurred; none = no link.")
    event_shift: float = Field(0.0, ge=-MAGNITUDE, le=MAGNITUDE, description="Additive shift on the analysed scale when the linked event occurred (log scale: log of a ratio).")
    p_missing: float = Field(0.0, ge=0.0, le=MISSING_MAX, description="Chance the value is missing, independently of everything else.")
    measured_at_visit: bool = Field(False, description="Measured at the follow-up visit: missing for patients not seen there (dead or lost).")
    tests: tuple[str, ...] = Field(("welch",), max_length=10, description="Analyses ('welch', 'welch_log', 'mann_whitney'); the first is the primary one.")

    @model_validator(mode="after")
    def _positive_on_log_scale(self):
        if self.scale == "log" and self.mean_control <= 0.0:
            raise ValueError(f"with scale = 'log', mean_control is a median and must be > 0, got {self.mean_control}")
        if self.scale == "log" and self.effect <= 0.0:
            raise ValueError(f"with scale = 'log', effect is a ratio of geometric means and must be > 0, got {self.effect}")
        if self.event is None and self.event_shift != 0.0:
            raise ValueError("event_shift needs an `event` to link to")
        shifts = {"event_shift": self.event_shift} | {f"covariate_effects.{k}": v for k, v in self.covariate_effects.items()}
        if self.scale == "log":
            for name, value, low, high in (("mean_control", self.mean_control, 1e-12, 1e12), ("sd", self.sd, 1e-3, 10.0),
                                           ("effect", self.effect, 1e-6, 1e6)):
                if not low <= value <= high:
                    raise ValueError(f"{name} = {value} is not allowed with scale = 'log': it must lie in [{low:g}, {high:g}]")
            for name, value in shifts.items():
                if abs(value) > LOG_SHIFT_MAX:
                    raise ValueError(f"{name} = {value} is a log-scale shift (a factor exp({value:g})): at most {LOG_SHIFT_MAX:g} in size")
        else:
            scale = max(abs(self.mean_control), abs(self.mean_control + self.effect))
            if self.sd < 1e-6 * scale:
                raise ValueError(f"sd = {self.sd} is below a millionth of the mean ({scale:g}): raise sd or move the origin")
        return self

    @property
    def effect_measure(self) -> str:
        return "ratio" if self.scale == "log" else "difference"

    @property
    def mu(self) -> float:
        """Control mean on the analysed scale."""
        return float(np.log(self.mean_control)) if self.scale == "log" else self.mean_control

    @property
    def effect_term(self) -> float:
        """Treatment shift on the analysed scale."""
        return float(np.log(self.effect)) if self.scale == "log" else self.effect

    # ------------------------------------------------------------------------------ structure
    def links(self) -> tuple[str, ...]:
        return () if self.event is None else (self.event,)

    def covariates_used(self) -> tuple[str, ...]:
        return tuple(self.covariate_effects)

    def analysed(self, cid: str) -> tuple[Analysed, ...]:
        if self.scale == "log":
            effect = EffectParameter(f"endpoints.{cid}.effect", "ratio of geometric means", "ratio", 1.0, self.effect)
        else:
            effect = EffectParameter(f"endpoints.{cid}.effect", "difference in means", "difference", 0.0, self.effect,
                                     lower=-10.0 * self.sd, upper=10.0 * self.sd)
        return (Analysed(cid, cid, "continuous", self.label or cid, self.unit, self.scale, self.tests, effect,
                         measured_at_visit=self.measured_at_visit, summary="median" if self.scale == "log" else "mean"),)

    # ------------------------------------------------------------------------------- patients
    def generate(self, cid: str, ctx: PatientContext, streams: Streams) -> dict[str, np.ndarray]:
        rng = streams("endpoint", cid)
        s, n = ctx.shape
        z = patient_draws(rng, "standard_normal", s, n, extra=(2,))  # value, missing (as a uniform)
        y = self.mu + self.effect_term * np.asarray(ctx.treated, dtype=float) + self.sd * z[..., 0]
        for name, beta in self.covariate_effects.items():
            y = y + beta * (ctx.covariates[name] - ctx.prevalence[name])
        if self.event is not None:
            y = y + self.event_shift * ctx.latent[self.event]["event"]
        value = np.exp(y) if self.scale == "log" else y
        return {"analysed": y, "value": value, "missing_u": ndtr(z[..., 1])}

    def observe(self, cid: str, ctx: PatientContext, latent: dict[str, np.ndarray], status: Status) -> dict[str, np.ndarray]:
        known = (latent["missing_u"] >= self.p_missing) & status.seen(at_visit=self.measured_at_visit)
        return {cid: np.where(known, latent["analysed"], np.nan)}

    # ----------------------------------------------------------------------------------- laws
    def event_shares(self, arm: str, model) -> np.ndarray | None:
        """P(no event), P(event) among analysable patients of ``arm`` (``[1.0]`` without a link).

        None when analysability and the value are related in a way with no closed form: with a
        visit, death linked to an event, and either covariate shifts (the event's risk moves the
        covariate mix of survivors by arm) or a link to another event than death's.
        """
        fu = model.scenario.follow_up
        selected = self.measured_at_visit and fu.death_event is not None and fu.p_death != fu.p_death_after_event
        if selected and (self.covariate_effects or (self.event is not None and self.event != fu.death_event)):
            return None
        if self.event is None:
            return np.array([1.0])
        p = model.event_probability(self.event, arm)
        if p is None:
            return None
        shares = np.array([1.0 - p, p])
        if selected:  # death follows our own event: survivors are less often after it
            shares = shares * (1.0 - np.array([fu.p_death, fu.p_death_after_event]))
        return shares / shares.sum()

    def true_effect(self, cid: str, name: str, estimand: str, model) -> float | None:
        w_c, w_t = self.event_shares("control", model), self.event_shares("treatment", model)
        if w_c is None or w_t is None:
            return None
        if estimand == "difference":  # mean difference on the analysed scale (covariates cancel)
            if self.event is None:
                return self.effect_term
            return self.effect_term + self.event_shift * float(w_t[1] - w_c[1])
        if estimand == "p_treatment_lower":
            return self._p_treatment_lower(w_c, w_t, model.prevalence)
        return None

    def _p_treatment_lower(self, w_c: np.ndarray, w_t: np.ndarray, prevalence: dict[str, float]) -> float | None:
        """P(Y_t < Y_c) (no ties: continuous), exact when the covariates and the event act independently."""
        if self.covariate_effects and self.event is not None and self.event_shift != 0.0:
            return None  # the event's risk may depend on the covariates: their joint law is not known here
        # mean shifts of one patient (analysed scale) and their probabilities, the same in both arms
        shifts, probs = np.array([0.0]), np.array([1.0])
        if self.covariate_effects:
            if len(self.covariate_effects) > MAX_EXACT_COVARIATES:
                return None
            for name, beta in self.covariate_effects.items():
                p = prevalence[name]
                shifts = np.concatenate([shifts - beta * p, shifts + beta * (1.0 - p)])
                probs = np.concatenate([probs * (1.0 - p), probs * p])
        ev = np.array([0.0, self.event_shift]) if self.event is not None else np.array([0.0])
        m_c = (shifts[:, None] + ev[None, :]).ravel()
        p_c = (probs[:, None] * w_c[None, :]).ravel()
        m_t = (shifts[:, None] + ev[None, :]).ravel() + self.effect_term
        p_t = (probs[:, None] * w_t[None, :]).ravel()
        z = (m_c[None, :] - m_t[:, None]) / (self.sd * np.sqrt(2.0))
        return float(p_t @ ndtr(z) @ p_c)
