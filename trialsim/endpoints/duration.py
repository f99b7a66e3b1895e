"""A duration lengthened by a linked event (family ``duration``): the postoperative length of stay.

Per patient: a base duration, log-normal with the configured median (times ``treatment_ratio`` if
treated), plus extra days if the linked event occurred, gamma-distributed with a mean by the event's
grade. The analysed endpoint (named by the section id) is the log of the total, measured in hospital;
the base and extra days are also the stay inputs of the patient flow.

Defaults are the exosome/LAR trial's stay with sources [n] = section n of shared/clinical_evidence.md.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator
from scipy.special import expit, gammainccinv, gammaincinv, ndtri, roots_hermitenorm

from trialsim.config.base import Text
from trialsim.endpoints.base import Analysed, EffectParameter, EndpointFamily, PatientContext, Status
from trialsim.endpoints.registry import register
from trialsim.rng import Streams, patient_draws

HALF_STEP = 2.0**-54  # Generator.random gives multiples of 2**-53 in [0, 1); shifted, never 0, symmetric about 1/2


@register
class Duration(EndpointFamily):
    """Log-normal base duration plus gamma extra days by the grade of a linked event."""

    family: Literal["duration"] = "duration"
    gives_stays: ClassVar[bool] = True

    label: Text = Field("Postoperative length of stay", min_length=1, max_length=200, description="Endpoint label [0].")
    unit: Text = Field("days", min_length=1, max_length=30, description="Unit of the duration.")
    median: float = Field(7.0, ge=0.01, le=3650.0, description="Median without the event; ASSUMPTION (sourced 6-10 d) [5].")
    log_sd: float = Field(0.35, ge=0.001, le=3.0, description="Log-SD of the duration without the event; ASSUMPTION [5].")
    event: str | None = Field(None, min_length=1, description="Id of the event endpoint that adds days (e.g. 'leak_1m'); none = no link.")
    extra_days_by_grade: tuple[float, ...] = Field(
        (1.0, 7.0, 16.0), min_length=1, max_length=10,
        description="Mean extra days by grade of the linked event (ISREC A/B/C); ASSUMPTION (sourced +7 to +14) [5].",
    )
    extra_days_cv: float = Field(0.5, ge=0.0, le=5.0, description="Coefficient of variation of the extra days (gamma); 0 = fixed, else at least 0.01; ASSUMPTION.")
    treatment_ratio: float = Field(1.0, ge=0.01, le=10.0, description="Direct effect of treatment on the duration (ratio); ASSUMPTION none [8].")
    tests: tuple[str, ...] = Field(("mann_whitney", "welch_log"), max_length=10, description="Analyses of the duration.")

    @field_validator("extra_days_by_grade")
    @classmethod
    def _non_negative(cls, v):
        if any(not 0 <= x <= 3650 for x in v):
            raise ValueError(f"extra days must be >= 0 and at most 3650, got {list(v)}")
        return v

    @field_validator("extra_days_cv")
    @classmethod
    def _cv(cls, v):
        if 0.0 < v < 0.01:
            raise ValueError(f"use 0 (fixed extra days) or a coefficient of variation of at least 0.01, got {v}")
        return v

    # ------------------------------------------------------------------------------ structure
    def links(self) -> tuple[str, ...]:
        return (self.event,) if self.event is not None else ()

    def link_problem(self, linked: dict[str, EndpointFamily]) -> str | None:
        grades = getattr(linked.get(self.event), "grades", None) if self.event is not None else None
        if grades is not None and len(grades) != len(self.extra_days_by_grade):
            return (f"extra_days_by_grade has {len(self.extra_days_by_grade)} values but event {self.event!r} has "
                    f"{len(grades)} grades ({', '.join(map(str, grades))}): give one mean of extra days per grade")
        return None

    def analysed(self, cid: str) -> tuple[Analysed, ...]:
        effect = EffectParameter(f"endpoints.{cid}.treatment_ratio", "ratio of medians", "ratio", 1.0, self.treatment_ratio)
        return (Analysed(cid, cid, "continuous", self.label, self.unit, "log", self.tests, effect, summary="median"),)

    # ------------------------------------------------------------------------------- patients
    def generate(self, cid: str, ctx: PatientContext, streams: Streams) -> dict[str, np.ndarray]:
        """``base`` (as if no event), ``extra`` (days added by the event) and ``total`` (their sum)."""
        s, n = ctx.shape
        u = patient_draws(streams("endpoint", cid), "random", s, n, extra=(2,))
        median = np.where(ctx.treated, self.median * self.treatment_ratio, self.median)
        base = median * np.exp(self.log_sd * ndtri(u[..., 0] + HALF_STEP))
        extra = np.zeros((s, n))
        if self.event is not None:
            try:
                grade = ctx.latent[self.event]["grade"]
            except KeyError:
                raise KeyError(f"{self.event!r} (the event linked to the duration) has not been generated yet") from None
            means = np.asarray(self.extra_days_by_grade)
            hit = np.nonzero(grade >= 0)
            mean = means[np.clip(np.asarray(grade[hit], dtype=np.intp), 0, len(means) - 1)]
            extra[hit] = mean * _gamma_unit(self.extra_days_cv, u[..., 1][hit])
        return {"base": base, "extra": extra, "total": base + extra}

    def observe(self, cid: str, ctx: PatientContext, latent: dict[str, np.ndarray], status: Status) -> dict[str, np.ndarray]:
        return {cid: status.in_hospital(np.log(latent["total"]))}

    def flow_inputs(self, latent: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"stay_days": latent["base"], "event_extra_days": latent["extra"]}

    # ----------------------------------------------------------------------------------- laws
    def true_effect(self, cid: str, name: str, estimand: str, model) -> float | None:
        """Treatment minus control difference in E[log duration] (``estimand="difference"``).

        With a linked event, E[log(base + extra)] of each arm mixes "no event" and each grade with
        P(event) of the arm times the event's ``grade_split``; each term is a numerical integral over the log-normal base
        and the gamma extra days (:func:`expected_log_total`).
        """
        if estimand != "difference" or name != cid:
            return None
        if self.event is None or not any(self.extra_days_by_grade):
            return float(np.log(self.treatment_ratio))
        linked = model.section(self.event)
        split = getattr(linked, "grade_split", None)
        if split is None:
            return None
        means = np.asarray(self.extra_days_by_grade)[np.clip(np.arange(len(split)), 0, len(self.extra_days_by_grade) - 1)]
        by_arm = []
        for arm, ratio in (("treatment", self.treatment_ratio), ("control", 1.0)):
            p_event = model.event_probability(self.event, arm)
            if p_event is None:
                return None
            log_median = float(np.log(self.median * ratio))
            with_event = sum(w * expected_log_total(log_median, self.log_sd, mu, self.extra_days_cv) for w, mu in zip(split, means))
            by_arm.append((1.0 - p_event) * log_median + p_event * with_event)
        return by_arm[0] - by_arm[1]


def _gamma_unit(cv: float, u: np.ndarray) -> np.ndarray:
    """Gamma draws of mean 1 and coefficient of variation ``cv`` by inverse CDF of uniforms ``u``."""
    if cv == 0:
        return np.ones_like(u)
    shape = 1.0 / cv**2
    return gammaincinv(shape, u + HALF_STEP) / shape


@lru_cache(maxsize=1)
def _hermite_nodes() -> tuple[np.ndarray, np.ndarray]:
    """The 160 Gauss-Hermite nodes and normalised weights of :func:`expected_log_total` (read-only)."""
    z, wz = roots_hermitenorm(160)
    wz = wz / wz.sum()
    z.flags.writeable = wz.flags.writeable = False
    return z, wz


# The tanh-sinh rule of expected_log_total: step sizes (the result of the finer one is used when the two agree
# within TANH_SINH_AGREE) and the reach of t, where the weights have fallen below 1e-60.
TANH_SINH_STEPS = (1 / 8, 1 / 16)
TANH_SINH_REACH = 4.5
TANH_SINH_AGREE = 1e-10


@lru_cache(maxsize=2)
def _tanh_sinh(step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodes ``u`` in (0, 1), their distances ``1 - u`` (exact, not rounded from u) and weights of the
    tanh-sinh rule with this step (read-only)."""
    t = np.arange(-math.floor(TANH_SINH_REACH / step), math.floor(TANH_SINH_REACH / step) + 1) * step
    s = 0.5 * math.pi * np.sinh(t)
    u, rest = expit(2 * s), expit(-2 * s)
    w = step * 0.25 * math.pi * np.cosh(t) / np.cosh(s) ** 2
    for a in (u, rest, w):
        a.flags.writeable = False
    return u, rest, w


@lru_cache(maxsize=4096)  # planning asks for the control arm's terms again at every effect it tries
def expected_log_total(log_median: float, log_sd: float, mean_extra: float, cv: float) -> float:
    """E[log(B + X)], B log-normal (``log_median``, ``log_sd``), X gamma of mean ``mean_extra`` and CV ``cv``.

    Gauss-Hermite over the base inside an integral over the gamma's probability scale (``x = F^-1(u)``),
    which stays accurate for any shape, even the very skewed ones of large ``cv``. The integral is a
    tanh-sinh rule, which takes the quantile's blow-up at u -> 1 in its stride; where its two step sizes
    disagree (very skewed gammas, cv of about 2 and more) it is scipy's adaptive ``quad`` instead, imported only
    then (scipy.integrate costs 0.3 s to import). Tests hold both to a direct double integral.
    """
    if mean_extra == 0:
        return log_median
    z, wz = _hermite_nodes()
    base = np.exp(log_median + log_sd * z)

    def given_extra(x: float) -> float:
        return float(wz @ np.log(base + x))

    if cv == 0:
        return given_extra(mean_extra)
    shape = 1.0 / cv**2
    values = []
    for step in TANH_SINH_STEPS:
        u, rest, w = _tanh_sinh(step)
        x = np.where(u < 0.5, gammaincinv(shape, u), gammainccinv(shape, rest)) * (mean_extra / shape)
        values.append(float(w @ (np.log(base[None, :] + x[:, None]) @ wz)))
    if abs(values[-1] - values[0]) <= TANH_SINH_AGREE:
        return values[-1]
    from scipy.integrate import quad  # noqa: PLC0415 - see the docstring

    value, _ = quad(lambda u: given_extra(mean_extra * gammaincinv(shape, u) / shape), 0.0, 1.0, limit=200, epsabs=1e-11, epsrel=1e-10)
    return float(value)
