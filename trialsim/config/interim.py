"""Config sections of interim looks: ``[interim]`` (group-sequential efficacy/futility) and ``[safety]`` (harm).

Looks are information fractions of the planned patients: the look at fraction ``t`` analyses the first
``round(t * (n_control + n_treatment))`` patients in enrolment order (in a fixed-size design they are
the ones whose 1-month outcome is known by then). Boundaries are computed in
:mod:`trialsim.analysis.group_sequential`; the rules that apply them are in :mod:`trialsim.decide.sequential`.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from trialsim.config.base import StrictModel
from trialsim.config.bayes import PRIOR_MAX, PRIOR_MIN

MAX_LOOKS = 10
# Efficacy boundary kinds (keys of trialsim.decide.sequential.EFFICACY): Lan-DeMets spending functions and
# the classical designs. A test checks the two lists agree.
EfficacyKind = Literal["obf_spending", "pocock_spending", "hsd_spending", "obrien_fleming", "pocock"]
SpendingKind = Literal["obf", "pocock", "hsd"]


def check_fractions(v: list[float], *, last_is_final: bool) -> list[float]:
    """Information fractions: increasing, within (0, 1], at most MAX_LOOKS, ending at 1 when the last look is the final analysis."""
    if not v:
        raise ValueError("give at least one look, e.g. [0.5, 1.0]")
    if len(v) > MAX_LOOKS:
        raise ValueError(f"at most {MAX_LOOKS} looks, got {len(v)}")
    if any(not 0 < t <= 1 for t in v):
        raise ValueError(f"each look is a fraction of the planned patients in (0, 1], got {v}")
    if any(b <= a for a, b in zip(v, v[1:])):
        raise ValueError(f"looks must increase strictly, got {v}")
    if last_is_final and v[-1] != 1.0:
        raise ValueError(f"the last look is the final analysis: end the list with 1.0, got {v}")
    return v


class Futility(StrictModel):
    """Non-binding futility stopping at the interim looks (the efficacy bounds ignore it)."""

    kind: Literal["z", "beta_spending", "conditional_power"] = Field(
        "z", description="'z': stop when the look's z is below a fixed threshold; 'beta_spending': bounds that spend "
                         "beta under the planned drift (Jennison & Turnbull 2000 ch. 7; rpact typeBetaSpending); "
                         "'conditional_power': stop when the chance of rejecting at the end, under the drift, is below "
                         "conditional_power (Lachin 2005).")
    z: list[float] = Field(default_factory=list, description="kind = 'z': one threshold per interim look (stop if z < it); "
                           "0 stops when the estimate points to harm. ASSUMPTION: a planning choice.")
    beta: float = Field(0.2, ge=1e-6, le=0.5, description="kind = 'beta_spending': type II error spent over the looks (convention 0.1-0.2).")
    spending: SpendingKind = Field("obf", description="kind = 'beta_spending': the beta spending function.")
    hsd_gamma: float = Field(-2.0, ge=-40.0, le=40.0, description="Gamma of the Hwang-Shih-DeCani beta spending (spending = 'hsd').")
    conditional_power: float = Field(0.1, ge=1e-6, le=0.999999,
                                     description="kind = 'conditional_power': stop below this conditional power (0.1-0.2 usual; ASSUMPTION).")
    drift: float = Field(
        2.8016, ge=0.0, le=20.0,
        description="kind = 'beta_spending' or 'conditional_power': expected final z under the planned effect; 2.8016 = "
                    "z_0.975 + z_0.8 (a fixed design with 80% power at two-sided 0.05). ASSUMPTION unless computed for the design.")

    @field_validator("z")
    @classmethod
    def _z(cls, v):
        if any(not -5.0 <= x <= 5.0 for x in v):
            raise ValueError(f"futility z thresholds lie within [-5, 5], got {v}")
        return v


class InterimConfig(StrictModel):
    """Group-sequential interim analyses of one endpoint and test: stop early for efficacy or futility."""

    looks: list[float] = Field(description="Information fractions of the planned patients at each analysis, the last "
                                           "1.0 (the final analysis), e.g. [0.5, 1.0].")
    endpoint: str | None = Field(None, description="The analysed endpoint monitored; default the primary.")
    test: str | None = Field(None, description="Its test giving the look's z (from the one-sided p-value); default its first test.")
    efficacy: EfficacyKind = Field(
        "obf_spending",
        description="Efficacy bounds: Lan-DeMets spending ('obf_spending', 'pocock_spending', 'hsd_spending'; Lan & DeMets "
                    "1983) or classical ('obrien_fleming', O'Brien & Fleming 1979; 'pocock', Pocock 1977).")
    hsd_gamma: float = Field(-4.0, ge=-40.0, le=40.0,
                             description="Gamma of Hwang-Shih-DeCani alpha spending (-4 is close to O'Brien-Fleming; Hwang et al. 1990).")
    alpha: float | None = Field(None, ge=1e-6, lt=0.5, description="One-sided type I error; default design.alpha / 2 (bounds as design.alpha).")
    benefit: Literal["lower", "higher"] = Field(
        "lower", description="Direction of benefit of the estimate (treatment - control): 'lower' for harmful events "
                             "such as leaks, 'higher' for good outcomes.")
    futility: Futility | None = Field(None, description="Non-binding futility stopping; absent = none.")

    @field_validator("looks")
    @classmethod
    def _looks(cls, v):
        return check_fractions(v, last_is_final=True)

    @model_validator(mode="after")
    def _futility(self):
        f = self.futility
        if f is not None and f.kind == "z" and len(f.z) != len(self.looks) - 1:
            raise ValueError(f"interim.futility.z needs one threshold per interim look of interim.looks "
                             f"({len(self.looks) - 1}), got {f.z}")
        if f is not None and len(self.looks) < 2:
            raise ValueError("interim.futility needs interim.looks to have at least one interim look before the final 1.0")
        return self


class SafetyConfig(StrictModel):
    """Monitoring for harm: stop when the treated arm's events (e.g. leaks) cross a boundary at a look."""

    looks: list[float] = Field(description="Information fractions of the planned patients at each safety review, e.g. [0.25, 0.5, 0.75].")
    endpoint: str | None = Field(None, description="A binary analysed endpoint whose events are harms; default the primary.")
    method: Literal["binomial", "bayes"] = Field(
        "bayes", description="'binomial': exact one-sided binomial test of the treated events against reference_rate; "
                             "'bayes': P(p_treatment > p_control | data) with Beta priors.")
    reference_rate: float = Field(0.12, gt=0.0, lt=1.0,
                                  description="method = 'binomial': the control event rate the treated arm is compared with "
                                              "(default the planned 12% grade B/C leak rate [intact2025, watanabe2023]).")
    level: float = Field(0.01, gt=0.0, lt=0.5,
                         description="method = 'binomial': one-sided level of each look's test (ASSUMPTION: a planning choice; "
                                     "repeated looks raise the chance of a false stop, reported under the null).")
    threshold: float = Field(0.9, gt=0.5, lt=1.0,
                             description="method = 'bayes': stop when P(p_treatment > p_control | data) exceeds it (ASSUMPTION).")
    prior_treatment: list[float] = Field([1.0, 1.0], description="method = 'bayes': Beta(a, b) prior of the treated event rate (1, 1 = uniform).")
    prior_control: list[float] = Field([1.0, 1.0], description="method = 'bayes': Beta(a, b) prior of the control event rate.")
    min_events: int = Field(1, ge=0, le=1000, description="No stop before the treated arm has at least this many events.")

    @field_validator("looks")
    @classmethod
    def _looks(cls, v):
        return check_fractions(v, last_is_final=False)

    @field_validator("prior_treatment", "prior_control")
    @classmethod
    def _prior(cls, v):
        if len(v) != 2 or any(not PRIOR_MIN <= x <= PRIOR_MAX for x in v):
            raise ValueError(f"a Beta prior is [a, b] with each within [{PRIOR_MIN:g}, {PRIOR_MAX:g}], got {v}")
        return v
