"""The endpoint-family protocol: one config section that knows how to generate, observe and describe itself.

A family is a pydantic config class (a subclass of :class:`EndpointFamily`) registered by name with
:func:`trialsim.endpoints.registry.register`. A scenario's ``[endpoints.<id>]`` sections are
validated by the family named in their ``family`` key; ``<id>`` is the component id. Everything the
engine needs from a family goes through the methods below, so no other module learns a family's
name or fields:

``links()``
    ids of the components whose latent values this one reads (a leak raises cytokines, ...).
``analysed(cid)``
    the endpoints it analyses (one section can give several: a marker panel gives one per marker
    and day), with their kind, scale, tests, label and effect parameter.
``generate(cid, ctx, streams)``
    latent per-patient values, arrays ``(n_trials, n_patients)``, given covariates, arms and the
    latent values of its links. Randomness only from ``streams(...)`` keyed by this component.
``observe(cid, ctx, latent, status)``
    what the protocol analyses: float arrays, NaN where not observed, log-scale endpoints logged.
``event_values(latent)``
    for families that are an event others can link to: ``{"event", "day", "grade"}``.
``binary_law(cid, name, arm, model)``
    the exact law of a binary analysed endpoint among analysable patients (None if unknown).
``true_effect(cid, name, estimand, model)``
    the true value of a contrast (risk difference, log ratio) for bias and coverage (None if unknown).
``risk_score(covariates)``
    a patient's baseline risk (log-odds linear predictor of its covariates), for allocation by selection.
"""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Collection, Literal

import numpy as np

from trialsim.config.base import StrictModel

from trialsim.rng import Streams

# Laws receive the scenario's trialsim.model.Model (a layer above this one), typed loosely here.
Model = Any

Kind = Literal["binary", "continuous", "ordinal"]
Scale = Literal["identity", "log"]
ARMS = ("control", "treatment")


@dataclass(frozen=True)
class EffectParameter:
    """The config value that sets an endpoint's treatment effect (varied by MDE, curves and sweeps).

    ``path`` is the full key path (``"endpoints.leak_1m.effect"``); ``kind`` says how to read it:
    ``"ratio"`` (1 = no effect), ``"difference"`` (0 = no effect) or ``"rate"`` (the treatment
    arm's own rate; ``null`` is the control rate). ``lower``/``upper`` bound a search. ``benefit`` is the side of
    ``null`` where the treatment helps (-1: values below it, as a risk ratio under 1; +1: values above it, as an odds
    ratio of a better grade): MDE searches and effect curves go that way when the assumed value is no effect.
    """

    path: str
    label: str
    kind: Literal["ratio", "difference", "rate"]
    null: float
    assumed: float
    lower: float = 0.01
    upper: float = 100.0
    benefit: float = -1.0


@dataclass(frozen=True)
class BaselineParameter:
    """The config value that sets an endpoint's level without treatment (``"endpoints.leak_1m.rate_control"``), with
    the range a sensitivity analysis may move it over (planning's table of sizes over the control rate and effect)."""

    path: str
    label: str
    assumed: float
    lower: float
    upper: float


@dataclass(frozen=True)
class Analysed:
    """One analysed endpoint. Values of ``scale == "log"`` endpoints are natural logs."""

    name: str
    component: str
    kind: Kind
    label: str
    unit: str
    scale: Scale
    tests: tuple[str, ...]
    effect: EffectParameter | None = None
    primary: bool = False
    measured_at_visit: bool = False  # lost with the follow-up visit (dropout applies)
    summary: Literal["mean", "median", "rate"] = "mean"  # per-arm summary in estimates.csv
    short: str = ""  # a figure-legend length label ("" = the label)
    baseline: BaselineParameter | None = None  # the level without treatment, where the family has one config value for it

    @property
    def family_kind(self) -> str:  # the old name, kept for tables
        return self.kind


@dataclass(frozen=True)
class BinaryLaw:
    """An arm's binary endpoint: P(event | analysable) and P(not analysable)."""

    p_event: float
    p_missing: float


@dataclass
class PatientContext:
    """What generation sees: the patients of a batch of trials, their arms and what is generated so far."""

    n_trials: int
    n_patients: int
    covariates: dict[str, np.ndarray]  # name -> (n_trials, n_patients) float
    treated: np.ndarray  # bool (n_trials, n_patients)
    prevalence: dict[str, float] = field(default_factory=dict)  # covariate -> population prevalence
    latent: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # component -> values
    assessor_masked: bool = True  # the outcome assessor does not know the arm (no assessor bias applies)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_trials, self.n_patients)


@dataclass
class Status:
    """Who can be assessed: from the follow-up model, and from the flow when there is one.

    ``attended``: alive and seen at the follow-up visit. ``died``: died before the visit (an event
    is then known from the records). ``enrolled``: None without a flow (everyone is). ``procedure_done``:
    the flow's record of the visit procedure (e.g. the colonoscopy); None without a flow, where each
    family applies its own chance of a missed procedure to the patients who attended.
    """

    attended: np.ndarray
    died: np.ndarray
    enrolled: np.ndarray | None = None
    procedure_done: np.ndarray | None = None

    @property
    def assessed(self) -> np.ndarray:
        """Outcome known at the visit: attended, or died (known from the records); enrolled only."""
        seen = self.attended | self.died
        return seen if self.enrolled is None else seen & self.enrolled

    def seen(self, *, at_visit: bool, death_known: bool = False):
        """Who has a value: at the visit, those who attended (and the dead, when a death reveals the
        outcome, as for an event known from the records); in hospital, every enrolled patient."""
        if at_visit:
            return self.assessed if death_known else (self.attended if self.enrolled is None else self.attended & self.enrolled)
        return True if self.enrolled is None else self.enrolled

    def in_hospital(self, x: np.ndarray) -> np.ndarray:
        """``x`` for enrolled patients (in-hospital measurements are never lost to follow-up)."""
        return x if self.enrolled is None else np.where(self.enrolled, x, np.nan)


class EndpointFamily(StrictModel):
    """Base of every endpoint family's config section (see the module docstring for the protocol)."""

    family: str

    is_event: ClassVar[bool] = False  # others can link to it (it provides event, day and grade)
    gives_stays: ClassVar[bool] = False  # gives the patient flow its hospital stays (``flow_inputs``)
    gives_risk_score: ClassVar[bool] = False  # has a baseline-covariate risk score (``risk_score``)

    # --------------------------------------------------------------------------------- structure
    def links(self) -> tuple[str, ...]:
        return ()

    def link_problem(self, linked: dict[str, "EndpointFamily"]) -> str | None:
        """Why this section does not fit the sections it links to (``linked``: id -> section), or None."""
        return None

    @abstractmethod
    def analysed(self, cid: str) -> tuple[Analysed, ...]:
        """The endpoints this section analyses."""

    def covariates_used(self) -> tuple[str, ...]:
        """Covariate names this family reads (checked against the population)."""
        return ()

    # ---------------------------------------------------------------------------------- patients
    @abstractmethod
    def generate(self, cid: str, ctx: PatientContext, streams: "Streams") -> dict[str, np.ndarray]:
        """Latent per-patient values, arrays (n_trials, n_patients), from this component's own streams."""

    @abstractmethod
    def observe(self, cid: str, ctx: PatientContext, latent: dict[str, np.ndarray], status: Status) -> dict[str, np.ndarray]:
        """Analysed endpoint name -> float array, NaN where not observed (log-scale endpoints logged)."""

    def event_values(self, latent: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """``{"event": bool, "day": float (NaN none), "grade": int (-1 none)}`` if others can link to it."""
        return None

    def visit_procedure_missing(self) -> float | None:
        """Chance the visit's procedure (e.g. a colonoscopy) is not done, for the patient flow (None: none)."""
        return None

    def without_visit_loss(self, cid: str) -> dict[str, Any]:
        """Raw values (key path -> value) that remove the loss this family declares at the visit (its
        procedure not done), for complete-case planning; ``{}`` when it declares none."""
        return {}

    def narrowed(self, cid: str, names: Collection[str]) -> dict[str, Any]:
        """Raw section values (field -> value) that leave out analysed endpoints other than ``names`` without
        changing any draw or any value of ``names``, for planning's reduced scenarios; ``{}`` when the family
        has nothing to leave out (endpoints whose tests are all removed are already dropped)."""
        return {}

    def risk_score(self, covariates: dict[str, np.ndarray]) -> np.ndarray | None:
        """Each patient's baseline risk score, arrays (n_trials, n_patients), for allocation by selection: the
        linear predictor (log-odds scale, no intercept) of the family's covariate risk model; None without one."""
        return None

    def flow_inputs(self, latent: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """Hospital-stay inputs of the patient flow (``stay_days``, ``event_extra_days``), if this is a stay."""
        return None

    # ------------------------------------------------------------------------------------- laws
    def event_probability(self, cid: str, arm: str, model: "Model") -> float | None:
        """P(event) in ``arm`` for an event family (used by linked families' exact laws)."""
        return None

    def event_by_day(self, cid: str, arm: str, day: float, model: "Model") -> float | None:
        """P(event and diagnosed by ``day``) in ``arm`` for an event family (None if unknown)."""
        return None

    def binary_law(self, cid: str, name: str, arm: str, model: "Model") -> BinaryLaw | None:
        return None

    def true_effect(self, cid: str, name: str, estimand: str, model: "Model") -> float | None:
        return None

    def with_effect(self, path: str, value: float) -> dict:
        """Raw values to set for an effect change (usually ``{path: value}``)."""
        return {path: value}


def binary_contrast(estimand: str, control: BinaryLaw | None, treatment: BinaryLaw | None) -> float | None:
    """The true value of a binary test's estimand from the two arms' laws (None where undefined).

    ``risk_difference``: p_t - p_c; ``log_odds_ratio``: logit(p_t) - logit(p_c).
    """
    if control is None or treatment is None:
        return None
    pc, pt = control.p_event, treatment.p_event
    if estimand == "risk_difference":
        return pt - pc
    if estimand == "log_odds_ratio" and 0.0 < pc < 1.0 and 0.0 < pt < 1.0:
        return float(np.log(pt / (1.0 - pt)) - np.log(pc / (1.0 - pc)))
    return None


def check_simplex(values: tuple[float, ...], what: str) -> tuple[float, ...]:
    if any(v < 0 for v in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"{what} = {[float(v) for v in values]} must be non-negative and sum to 1 (they sum to "
                         f"{sum(values):.6g})")
    return values


def draw_categorical(probs, u: np.ndarray) -> np.ndarray:
    """Category index of uniforms ``u`` under probabilities ``probs`` (inverse CDF)."""
    return np.searchsorted(np.cumsum(np.asarray(probs, dtype=float))[:-1], u, side="right")
