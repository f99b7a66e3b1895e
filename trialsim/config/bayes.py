"""The ``[bayes]`` section: priors of the Bayesian analyses and the go / no-go rule read from them.

The Bayesian tests (``beta_binomial`` for binary endpoints, ``normal_log`` for continuous ones, see
:mod:`trialsim.analysis.bayes`) take their priors, the direction of benefit and the confirmatory
trial behind the predictive probability of success from here (defaults when the section is absent);
the decision rule ``go_nogo`` (:mod:`trialsim.decide.bayes`) runs only when the section is present.

The rule is the dual-criterion form of the early-phase decision frameworks of Lalonde et al. (2007,
Clin Pharmacol Ther 82:21-32) and Frewer et al. (2016, Pharm Stat 15:255-263): "go" when the
posterior probability of a clinically meaningful benefit is high, "no-go" when the probability of
any benefit or of a meaningful one is low, "inconclusive" otherwise. Every threshold is an ASSUMPTION
for the designer to set; the defaults are the values those papers use as examples.
"""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from trialsim.config.base import StrictModel

BetaPrior = tuple[float, float]
PRIOR_MIN, PRIOR_MAX = 0.01, 10_000.0  # Beta parameters: from near-improper to ~10,000 patients' worth


class BayesConfig(StrictModel):
    """Priors, direction of benefit, meaningful effects, go / no-go thresholds and the confirmatory trial."""

    prior_control: BetaPrior = Field(
        (1.0, 1.0),
        description="Beta(a, b) prior of the control arm's event probability (binary endpoints). Default Beta(1, 1) "
                    "(uniform, Bayes-Laplace): ASSUMPTION. a - 1 and b - 1 act as prior events and non-events.")
    prior_treatment: BetaPrior = Field(
        (1.0, 1.0),
        description="Beta(a, b) prior of the treatment arm's event probability. The same as prior_control gives a "
                    "sceptical prior centred on no difference (Spiegelhalter et al. 2004, ch. 5): ASSUMPTION.")
    normal_prior_mean: float = Field(
        0.0, ge=-20.0, le=20.0,
        description="Mean of the normal prior of the difference in means (treatment - control; of natural logs for "
                    "log-scale endpoints). 0 = sceptical, centred on no effect (Spiegelhalter et al. 2004, ch. 5).")
    normal_prior_sd: float = Field(
        1.0, ge=0.001, le=100.0,
        description="SD of that normal prior. On the log scale 1.0 is weakly informative (95% of its mass on ratios "
                    "0.14-7.1); 0.35 is sceptical (ratios 0.5-2): ASSUMPTION. From 0.001 (already a point mass for "
                    "any trial's data; smaller values would overflow the posterior's precision).")
    benefit: Literal["lower", "higher"] = Field(
        "lower",
        description="Which direction of treatment vs control is a benefit, for every endpoint with a Bayesian test: "
                    "'lower' (fewer events, lower markers) or 'higher'. A config value because a trial's assumed "
                    "effect may sit on the null (effect = 1) and sweeps cross it.")
    meaningful_risk_ratio: float = Field(
        0.75, gt=0.0, le=100.0,
        description="Binary endpoints: the risk ratio p_t / p_c that is a clinically meaningful benefit (at most this "
                    "when benefit = 'lower', at least when 'higher'). 0.75 = a quarter fewer events: ASSUMPTION.")
    meaningful_difference: float = Field(
        -0.223, ge=-20.0, le=20.0,
        description="Continuous endpoints: the difference in means (treatment - control, of natural logs for "
                    "log-scale endpoints) that is a clinically meaningful benefit; -0.223 = log(0.8), a 20% lower "
                    "geometric mean: ASSUMPTION.")
    go_threshold: float = Field(
        0.8, gt=0.0, lt=1.0,
        description="Go when P(meaningful benefit | data) >= this (Lalonde et al. 2007; Frewer et al. 2016): ASSUMPTION.")
    nogo_benefit: float = Field(
        0.2, ge=0.0, lt=1.0,
        description="No-go when P(any benefit | data) < this: ASSUMPTION (Frewer et al. 2016 style).")
    nogo_meaningful: float = Field(
        0.1, ge=0.0, lt=1.0,
        description="No-go when P(meaningful benefit | data) < this: ASSUMPTION (Lalonde et al. 2007 style).")
    confirmatory_n_per_arm: int = Field(
        100, ge=2, le=100_000,
        description="Analysable patients per arm of the confirmatory trial behind the predictive probability of "
                    "success (PPoS): ASSUMPTION.")
    confirmatory_alpha: float = Field(
        0.05, ge=1e-6, lt=0.5,
        description="Two-sided level of the confirmatory trial's test (a two-proportion z test for binary endpoints, "
                    "a z test of the difference in means for continuous ones); success = significant in the "
                    "direction of benefit. Convention.")

    @field_validator("prior_control", "prior_treatment")
    @classmethod
    def _beta(cls, v):
        if not all(PRIOR_MIN <= x <= PRIOR_MAX for x in v):
            raise ValueError(f"Beta prior parameters [a, b] must lie in [{PRIOR_MIN:g}, {PRIOR_MAX:g}], got {list(v)}")
        return v

    @model_validator(mode="after")
    def _coherent(self):
        lower = self.benefit == "lower"
        if (self.meaningful_risk_ratio >= 1.0) if lower else (self.meaningful_risk_ratio <= 1.0):
            raise ValueError(f"meaningful_risk_ratio = {self.meaningful_risk_ratio:g} is not a benefit when "
                             f"benefit = {self.benefit!r}: use a ratio {'below' if lower else 'above'} 1")
        if (self.meaningful_difference >= 0.0) if lower else (self.meaningful_difference <= 0.0):
            raise ValueError(f"meaningful_difference = {self.meaningful_difference:g} is not a benefit when "
                             f"benefit = {self.benefit!r}: use a {'negative' if lower else 'positive'} difference")
        if max(self.nogo_benefit, self.nogo_meaningful) >= self.go_threshold:
            raise ValueError(f"nogo_benefit = {self.nogo_benefit:g} and nogo_meaningful = {self.nogo_meaningful:g} must "
                             f"both lie below go_threshold = {self.go_threshold:g}, or one trial could be both go and no-go")
        return self

    @property
    def sign(self) -> float:
        """-1 when lower is better, +1 when higher is: the sign of a beneficial contrast."""
        return -1.0 if self.benefit == "lower" else 1.0

    @property
    def meaningful_log_risk_ratio(self) -> float:
        return math.log(self.meaningful_risk_ratio)
