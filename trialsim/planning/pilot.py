"""Pilot and feasibility numbers: what a small trial can estimate (CONSORT pilot extension, Eldridge 2016).

When a design cannot test its primary hypothesis, its justification is the precision of what it
estimates for the main trial. For the planned sizes this module computes, exactly or in closed form:

* each arm's event rate: the expected width of its 95% Clopper-Pearson interval, the interval at
  the expected count and at the most likely one, and the chance of observing at least one event (per arm and in both);
* each log-scale endpoint's geometric mean ratio: the 95% Welch interval expected at the model's SDs
  (its large-sample moments, simulated through the engine: :func:`trialsim.planning.analytic.model_moments`);
* each SD: the upper one-sided 80% confidence limit a pilot of this size gives, the SD to plan the
  main trial on (Browne 1995), and the resulting inflation of the main trial's size;
* the design against published pilot-size guidance: Julious (2005), Teare et al. (2014),
  Whitehead et al. (2016).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from trialsim.analysis.laws import binom_pmf, chi2_ppf, t_ppf
from trialsim.analysis.laws import clopper_pearson as clopper_pearson_bounds
from trialsim.config.schema import Scenario
from trialsim.labels import pct
from trialsim.model import build_model
from trialsim.planning.analytic import model_moments
from trialsim.planning.model import Pair, binary_rates, key_pairs, resolve_seed

# Published guidance on pilot sizes (per arm), with the basis of each figure.
JULIOUS_2005 = 12
TEARE_2014_CONTINUOUS = 35
TEARE_2014_BINARY = 60
# Whitehead et al. (2016), main trial with 90% power, two-sided 5%: (smallest d of the band, pilot n per arm)
WHITEHEAD_2016 = ((0.8, 10), (0.5, 15), (0.2, 25), (0.0, 75))

REFERENCES = {
    "eldridge2016": "Eldridge SM, Chan CL, Campbell MJ, et al. CONSORT 2010 statement: extension to randomised pilot and "
                    "feasibility trials. BMJ 2016;355:i5239.",
    "lancaster2019": "Lancaster GA, Thabane L. Guidelines for reporting non-randomised pilot and feasibility studies. Pilot "
                     "Feasibility Stud 2019;5:114.",
    "browne1995": "Browne RH. On the use of a pilot sample for sample size determination. Stat Med 1995;14:1933-1940.",
    "julious2005": "Julious SA. Sample size of 12 per group rule of thumb for a pilot study. Pharm Stat 2005;4:287-291.",
    "teare2014": "Teare MD, Dimairo M, Shephard N, et al. Sample size requirements to estimate key design parameters from "
                 "external pilot randomised controlled trials: a simulation study. Trials 2014;15:264.",
    "whitehead2016": "Whitehead AL, Julious SA, Cooper CL, Campbell MJ. Estimating the sample size for a pilot randomised trial "
                     "to minimise the overall trial sample size for the external pilot and main trial for a continuous "
                     "outcome variable. Stat Methods Med Res 2016;25:1057-1073.",
    "noether1987": "Noether GE. Sample size determination for some common nonparametric tests. J Am Stat Assoc 1987;82:645-647.",
}


def expected_rate_ci_width(p: float, n: int, p_missing: float = 0.0, level: float = 0.95) -> float:
    """Expected width of the Clopper-Pearson interval of an arm's rate, exactly.

    The number analysable is Binomial(n, 1 - p_missing) and the events Binomial(analysable, p);
    an arm with nobody analysable has the uninformative interval [0, 1].
    """
    total = 0.0
    w = binom_pmf(np.arange(n + 1), n, 1 - p_missing)
    total += w[0] * 1.0
    for k in range(1, n + 1):
        if w[k] < 1e-15:
            continue
        x = np.arange(k + 1)
        low, high = clopper_pearson_bounds(x, np.full(k + 1, k), level)
        total += w[k] * float(binom_pmf(x, k, p) @ (high - low))
    return total


@dataclass(frozen=True)
class PilotSummary:
    """Pilot/feasibility tables for one design (each a DataFrame; see :func:`pilot_summary`)."""

    n_control: int
    n_treatment: int
    rates: pd.DataFrame
    ratios: pd.DataFrame
    sd_limits: pd.DataFrame
    guidance: pd.DataFrame
    settings: dict = field(default_factory=dict)

    def frames(self) -> dict[str, pd.DataFrame]:
        return {"pilot_rates": self.rates, "pilot_ratios": self.ratios, "pilot_sd_limits": self.sd_limits,
                "pilot_guidance": self.guidance}

    def summary(self) -> str:
        lines = [f"Pilot numbers at {self.n_control} vs {self.n_treatment}:"]
        for _, r in self.rates.iterrows():
            lines.append(f"  {r.endpoint} {r.arm}: rate {pct(r.rate)}, expected 95% CI width {pct(r.expected_ci_width)}, "
                         f"P(at least one event) {pct(r.p_at_least_one)}")
        for _, r in self.ratios.iterrows():
            lines.append(f"  {r.endpoint}: GMR {r.gmr:.3g}, expected 95% CI {r.ci_low:.3g}-{r.ci_high:.3g} "
                         f"(upper/lower {r.fold_width:.3g})")
        for _, r in self.sd_limits.iterrows():
            lines.append(f"  {r.endpoint}: SD {r.sd:.3g}, 80% upper limit x{r.ucl_factor:.3g} = {r.sd_ucl:.3g}")
        for _, r in self.guidance.iterrows():
            lines.append(f"  {r.guideline}: {r.recommended_per_arm} per arm {r.basis}"
                         + (f" {r.standardised_effect:.2f} ({r.endpoint})" if r.endpoint else "")
                         + f" -> {'meets' if r.meets else 'below'}")
        return "\n".join(lines)


def whitehead_pilot_size(d: float) -> int:
    """Whitehead et al. (2016) pilot size per arm for a main trial (90% power) with standardised effect d.

    The table gives 75, 25, 15 and 10 per arm for d <= 0.1, 0.2, 0.5 and 0.8; an effect between two
    benchmarks takes the figure of the smaller one (the conservative reading).
    """
    for threshold, n in WHITEHEAD_2016:
        if d >= threshold:
            return n
    return WHITEHEAD_2016[-1][1]


def pilot_summary(scenario: Scenario, *, seed: int | None = None, level: float = 0.95, ucl_level: float = 0.80,
                  pairs: list[Pair] | None = None) -> PilotSummary:
    """The pilot/feasibility numbers of the planned design (enrolled sizes, the scenario's dropout).

    Parameters
    ----------
    scenario : Scenario
    seed : int, optional
        Seed of the model's large-sample moments (:func:`~trialsim.planning.analytic.model_moments`).
    level : float
        Two-sided level of the rate and ratio intervals.
    ucl_level : float
        One-sided level of the SD upper confidence limit (Browne 1995 suggests e.g. 80%).
    pairs : list of (endpoint, test), optional
        Endpoints to tabulate (default: :func:`~trialsim.planning.model.key_pairs`): binary ones with
        an exact law get rates, log-scale continuous ones ratios and SD limits.
    """
    seed = resolve_seed(scenario, seed)
    d = scenario.design
    model = build_model(scenario)
    pairs = pairs if pairs is not None else key_pairs(model)
    names = list(dict.fromkeys(name for name, _ in pairs))
    arms = (("control", d.control_name, d.n_control), ("treatment", d.treatment_name, d.n_treatment))

    rate_rows = []
    for name in names:
        a = model.endpoint(name)
        r = binary_rates(model, name)
        if r is None:
            continue
        p_any = {}
        for arm, arm_name, n in arms:
            p, pm = (r.p_control, r.missing_control) if arm == "control" else (r.p_treatment, r.missing_treatment)
            n_a = n * (1 - pm)
            x_exp = int(round(n_a * p))
            low, high = clopper_pearson_bounds(np.array([x_exp]), np.array([max(int(round(n_a)), 1)]), level)
            # the most likely outcome: the mode of the analysable count, then of the events among them (0 events of 10
            # where 0.6 are expected: the expected count rounded to 1 was a less likely outcome, and read as a rate)
            m_mode = max(min(int(math.floor((n + 1) * (1 - pm))), n), 1)
            x_mode = min(int(math.floor((m_mode + 1) * p)), m_mode)
            low_mode, high_mode = clopper_pearson_bounds(np.array([x_mode]), np.array([m_mode]), level)
            p_any[arm] = 1 - (1 - p * (1 - pm)) ** n
            rate_rows.append({"endpoint": name, "label": a.label, "arm": arm, "arm_name": arm_name, "n": n, "rate": p,
                              "p_missing": pm, "expected_analysable": n_a, "expected_ci_width": expected_rate_ci_width(p, n, pm, level),
                              "expected_events": n_a * p, "ci_low_at_expected": float(low[0]), "ci_high_at_expected": float(high[0]),
                              "events_at_expected": x_exp, "events_most_likely": x_mode, "analysable_most_likely": m_mode,
                              "ci_low_most_likely": float(low_mode[0]), "ci_high_most_likely": float(high_mode[0]),
                              "p_at_least_one": p_any[arm], "p_none": 1 - p_any[arm]})
        for row in rate_rows[-2:]:
            row["p_at_least_one_both_arms"] = p_any["control"] * p_any["treatment"]

    continuous = [n for n in names if model.endpoint(n).kind == "continuous" and model.endpoint(n).scale == "log"]
    moments = model_moments(scenario, seed=seed) if continuous else {}
    ratio_rows, sd_rows = [], []
    for name in continuous:
        m = moments[name]
        a = model.endpoint(name)
        n_c = d.n_control * (1 - m.missing_control)
        n_t = d.n_treatment * (1 - m.missing_treatment)
        vc, vt = m.sd_control**2 / n_c, m.sd_treatment**2 / n_t
        df = (vc + vt) ** 2 / (vc**2 / max(n_c - 1, 1e-9) + vt**2 / max(n_t - 1, 1e-9))
        hw = float(t_ppf(0.5 + level / 2, df) * math.sqrt(vc + vt))
        truth = model.true_effect(name, "difference")
        log_gmr = truth if truth is not None else m.mean_treatment - m.mean_control
        gmr = math.exp(log_gmr)
        ratio_rows.append({"endpoint": name, "label": a.label, "primary": a.primary, "gmr": gmr,
                           "ci_low": gmr * _exp(-hw), "ci_high": gmr * _exp(hw), "fold_width": _exp(2 * hw),
                           "expected_analysable_control": n_c,
                           "expected_analysable_treatment": n_t, "sd_log_control": m.sd_control,
                           "sd_log_treatment": m.sd_treatment, "df": df})
        df_sd = max(int(math.floor(n_c + n_t - 2)), 1)
        k = math.sqrt(df_sd / chi2_ppf(1 - ucl_level, df_sd))
        d_main = abs(log_gmr) / m.sd_pooled if m.sd_pooled > 0 else 0.0
        sd_rows.append({"endpoint": name, "label": a.label, "primary": a.primary, "sd": m.sd_pooled, "df": df_sd,
                        "ucl_level": ucl_level, "ucl_factor": k, "sd_ucl": k * m.sd_pooled, "n_inflation": k * k,
                        "d_main": d_main, "whitehead_per_arm": whitehead_pilot_size(d_main)})

    guide = []
    n_min = min(d.n_control, d.n_treatment)
    nan = float("nan")
    # ``primary_kind``: the kind of primary endpoint a guideline is about ("any" = every trial)
    guide.append({"guideline": "Julious (2005)", "basis": "as a rule of thumb to estimate a mean and SD", "endpoint": "",
                  "standardised_effect": nan, "recommended_per_arm": JULIOUS_2005, "design_per_arm": n_min,
                  "meets": n_min >= JULIOUS_2005, "primary_kind": "any"})
    guide.append({"guideline": "Teare et al. (2014)", "basis": "to estimate the pooled SD of a continuous outcome",
                  "endpoint": "", "standardised_effect": nan, "recommended_per_arm": TEARE_2014_CONTINUOUS,
                  "design_per_arm": n_min, "meets": n_min >= TEARE_2014_CONTINUOUS, "primary_kind": "any"})
    guide.append({"guideline": "Teare et al. (2014)", "basis": "to estimate an event rate when the primary outcome is binary",
                  "endpoint": "", "standardised_effect": nan, "recommended_per_arm": TEARE_2014_BINARY,
                  "design_per_arm": n_min, "meets": n_min >= TEARE_2014_BINARY, "primary_kind": "binary"})
    for row in sd_rows:
        guide.append({"guideline": "Whitehead et al. (2016)",
                      "basis": "for a main trial with 90% power and a standardised effect",
                      "endpoint": row["endpoint"], "standardised_effect": row["d_main"],
                      "recommended_per_arm": row["whitehead_per_arm"], "design_per_arm": n_min,
                      "meets": n_min >= row["whitehead_per_arm"], "primary_kind": "any"})
    return PilotSummary(d.n_control, d.n_treatment, pd.DataFrame(rate_rows), pd.DataFrame(ratio_rows), pd.DataFrame(sd_rows),
                        pd.DataFrame(guide), settings={"level": level, "ucl_level": ucl_level, "seed": seed})


def _exp(x: float) -> float:
    """``math.exp`` that gives inf instead of an OverflowError (an interval of a pilot with under two analysable
    patients in an arm has almost no degrees of freedom: its half-width is astronomically large)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf
