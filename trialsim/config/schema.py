"""The scenario schema: every number of a trial is a field here, with its default and its source.

Defaults are those of the planned exosome/LAR trial (NCT06536712) and cite
``shared/clinical_evidence.md`` (section numbers in brackets). Values marked ASSUMPTION are planning
values, not measurements; the treatment effects of the exosomes are all assumptions.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from trialsim.config.base import StrictModel
from trialsim.config.flow import FlowConfig


BinaryTest = Literal["fisher", "boschloo", "chi2"]
BOSCHLOO_MAX_N = 100  # per arm; its exact table costs ~2 s at 100 vs 100 and grows ~n^3
ContinuousTest = Literal["welch_log", "mann_whitney"]


def _probability(default: float, description: str):
    return Field(default, ge=0.0, le=1.0, description=description)


def _check_simplex(values: tuple[float, ...], what: str) -> tuple[float, ...]:
    if any(v < 0 for v in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"{what} must be non-negative and sum to 1 (they sum to {sum(values):.6g})")
    return values


class Design(StrictModel):
    """Arms, sizes and the error rate of the planned comparison."""

    control_name: str = Field("placebo", description="Label of the control arm [0].")
    treatment_name: str = Field("exosome", description="Label of the experimental arm [0].")
    n_control: int = Field(10, ge=1, le=100_000, description="Patients in the control arm (registered: 10 placebo) [0].")
    n_treatment: int = Field(10, ge=1, le=100_000, description="Patients in the experimental arm (registered: 10) [0].")
    allocation: Literal["non_randomized", "randomized"] = Field(
        "non_randomized", description="Allocation as registered (NON_RANDOMIZED) [0]; the flow model's scheme decides who goes where."
    )
    masking: Literal["none", "single", "double", "triple", "quadruple"] = Field(
        "quadruple", description="Masking as registered (QUADRUPLE) [0]."
    )
    alpha: float = Field(0.05, gt=0.0, lt=0.5, description="Two-sided significance level (convention) [9].")


class RiskFactor(StrictModel):
    """A binary baseline risk factor of leak: prevalence and odds ratio in the logistic leak model."""

    name: str = Field(description="Identifier, e.g. 'male'.")
    prevalence: float = _probability(0.5, "Share of LAR patients with the factor.")
    odds_ratio: float = Field(1.0, gt=0.0, le=100.0, description="Odds ratio of leak with vs without the factor.")
    source: str = Field("", description="Where the numbers come from.")


DEFAULT_RISK_FACTORS = (
    RiskFactor(name="male", prevalence=0.62, odds_ratio=2.0,
               source="prevalence Dutch 2011 62%, IntAct 65%; OR 2.04 (1.50-2.77) Qu 2015 [2] SOURCED"),
    RiskFactor(name="low_anastomosis", prevalence=0.5, odds_ratio=2.5,
               source="<5 cm: PILLAR III mean 5.2+/-3.1 cm; OR 1.9-9.6 reported, plan 2.5 [2] ASSUMPTION within range"),
    RiskFactor(name="neoadjuvant_crt", prevalence=0.65, odds_ratio=1.2,
               source="PILLAR III 64-66%; OR 1.16-1.23 (Hu 2017) [2] SOURCED"),
    RiskFactor(name="diverting_stoma", prevalence=0.5, odds_ratio=0.42,
               source="prevalence 41-76% [2] ASSUMPTION 0.5; RR 0.45 (Pisarska 2018) expressed as OR 0.42 at a 12-16% base rate"),
    RiskFactor(name="bmi_ge_25", prevalence=0.55, odds_ratio=1.46,
               source="prevalence ASSUMPTION (Iran); OR 1.46 (1.00-2.14) Qu 2015 [2]"),
    RiskFactor(name="asa_ge_3", prevalence=0.25, odds_ratio=1.74,
               source="prevalence 25-40% ASSUMPTION 0.25; OR 1.74 (1.04-2.93) Qu 2015 [2]"),
)


class Population(StrictModel):
    """Baseline risk factors; they are independent Bernoulli draws per patient."""

    risk_factors: tuple[RiskFactor, ...] = Field(DEFAULT_RISK_FACTORS, max_length=16, description="Risk factors in the logistic leak model [2].")

    @field_validator("risk_factors")
    @classmethod
    def _unique_names(cls, v):
        names = [f.name for f in v]
        if len(set(names)) != len(names):
            raise ValueError(f"risk factor names must be unique, got {names}")
        return v


class Leak(StrictModel):
    """Early anastomotic leak (primary endpoint: leak found within 1 month by interview and examination)."""

    rate_control: float = Field(
        0.12, gt=0.0, lt=1.0,
        description="Marginal 30-day clinical (ISREC grade B/C) leak rate in the control arm; sourced range 0.06-0.20 [1].",
    )
    effect_measure: Literal["risk_ratio", "odds_ratio", "rate"] = Field(
        "risk_ratio", description="How `effect` is given: risk ratio or odds ratio vs control, or the treatment arm's B/C rate itself."
    )
    effect: float = Field(
        0.5, gt=0.0,
        description="Treatment effect on leak; ASSUMPTION RR 0.5 (sweep 1.0, 0.7, 0.5, 0.33): no human data, stoma RR 0.33-0.43 [8].",
    )
    grade_split: tuple[float, float, float] = Field(
        (0.25, 0.35, 0.40), description="Share of ISREC grades A/B/C among all leaks (Kulu 2013, Huang 2020, IntAct) [1]."
    )
    p_detect_grade_a: float = _probability(
        0.10, "Chance a grade A (clinically silent) leak is found by interview + examination at 1 month; ASSUMPTION [1]."
    )
    day_median: float = Field(7.0, gt=0.0, le=60.0, description="Median postoperative day of leak diagnosis (median POD 6-7) [1].")
    day_log_sd: float = Field(0.6, gt=0.0, le=3.0, description="Log-SD of the leak day; ASSUMPTION (no IQR reported) [1].")
    horizon_days: float = Field(30.0, gt=0.0, le=365.0, description="Endpoint window: leaks diagnosed up to this day (1 month) [0].")
    tests: tuple[BinaryTest, ...] = Field(
        ("fisher", "boschloo", "chi2"), min_length=1, description="Analyses of the leak endpoint; the first is primary (Fisher) [9]."
    )

    @field_validator("grade_split")
    @classmethod
    def _grades(cls, v):
        return _check_simplex(v, "leak.grade_split")

    @model_validator(mode="after")
    def _effect_range(self):
        if self.effect_measure == "rate" and not 0.0 < self.effect < 1.0:
            raise ValueError(f"with effect_measure = 'rate', effect is the treatment B/C rate and must lie in (0, 1), got {self.effect}")
        all_control = self.rate_control / (1.0 - self.grade_split[0])
        if all_control >= 1.0:
            raise ValueError("rate_control / (1 - share of grade A) is the all-grade leak rate and must be below 1")
        if self.effect_measure == "risk_ratio" and self.effect * all_control >= 1.0:
            raise ValueError(
                f"risk ratio {self.effect} times the all-grade control rate {all_control:.4g} is a treatment rate >= 1; "
                f"use a risk ratio below {1 / all_control:.4g}"
            )
        if self.effect_measure == "rate" and self.effect / (1.0 - self.grade_split[0]) >= 1.0:
            raise ValueError("the treatment B/C rate divided by (1 - share of grade A) must be below 1")
        return self


class Marker(StrictModel):
    """One cytokine in one compartment, sampled on the configured postoperative days."""

    name: str = Field(description="Identifier used in endpoint names, e.g. 'il6_drain'.")
    cytokine: str = Field(description="Cytokine, e.g. 'il6' or 'tnf'; markers of different cytokines correlate by corr_cytokines.")
    compartment: Literal["serum", "drain"] = Field(description="Serum or peritoneal drain fluid.")
    unit: str = Field("pg/mL", description="Unit of the medians.")
    median_no_leak: tuple[float, ...] = Field(description="Median per sampling day in patients without leak (placebo).")
    log_sd: float = Field(gt=0.0, le=5.0, description="SD of the natural log of the level.")
    leak_gmr: tuple[float, ...] = Field(description="Geometric mean ratio leak vs no leak per sampling day, once the leak has begun.")
    treatment_gmr: float = Field(gt=0.0, le=100.0, description="Geometric mean ratio treatment vs control in every patient.")
    p_missing: tuple[float, ...] = Field(description="Chance the sample is missing, per day (drains removed by POD 4-5).")
    source: str = Field("", description="Where the numbers come from.")

    @field_validator("median_no_leak", "leak_gmr")
    @classmethod
    def _positive(cls, v):
        if any(x <= 0 for x in v):
            raise ValueError(f"every value must be > 0, got {list(v)}")
        return v

    @field_validator("p_missing")
    @classmethod
    def _probabilities(cls, v):
        if any(not 0.0 <= x < 1.0 for x in v):
            raise ValueError(f"every value must be in [0, 1), got {list(v)}")
        return v


def _marker(name, cytokine, compartment, medians, log_sd, leak_gmr, treatment_gmr, p_missing, source):
    return Marker(name=name, cytokine=cytokine, compartment=compartment, median_no_leak=medians, log_sd=log_sd,
                  leak_gmr=leak_gmr, treatment_gmr=treatment_gmr, p_missing=p_missing, source=source)


DEFAULT_MARKERS = (
    _marker("il6_serum", "il6", "serum", (60.0, 25.0, 12.0), 0.8, (1.3, 2.0, 2.5), 0.85, (0.0, 0.0, 0.0),
            "Prochazka 2023 cut-offs, Zawadzki 2018 [3a]; table 3b ASSUMPTION; treatment GMR 0.85 ASSUMPTION [8]"),
    _marker("tnf_serum", "tnf", "serum", (6.0, 6.0, 5.0), 0.6, (1.1, 1.3, 1.5), 0.85, (0.0, 0.0, 0.0),
            "Liu cut-offs [3a]; table 3b ASSUMPTION; treatment GMR 0.85 ASSUMPTION [8]"),
    _marker("il6_drain", "il6", "drain", (35000.0, 22000.0, 12000.0), 0.8, (1.9, 2.5, 3.0), 0.7, (0.0, 0.0, 0.2),
            "BMC Surg 2015 scale, Sammour 2016 AUROC 0.72 [3a]; table 3b ASSUMPTION; treatment GMR 0.7 ASSUMPTION [8]"),
    _marker("tnf_drain", "tnf", "drain", (60.0, 50.0, 50.0), 0.8, (1.3, 1.8, 2.5), 0.7, (0.0, 0.0, 0.2),
            "Sparreboom 2016, Surg Infect 2017 [3a]; table 3b ASSUMPTION; treatment GMR 0.7 ASSUMPTION [8]"),
)


class Cytokines(StrictModel):
    """IL-6 and TNF-alpha in serum and drain fluid: log-normal, correlated within a patient."""

    days: tuple[int, ...] = Field((1, 3, 5), min_length=1, description="Postoperative sampling days [0], [3b].")
    markers: tuple[Marker, ...] = Field(DEFAULT_MARKERS, min_length=1, description="Markers [3b].")
    corr_days: float = Field(0.6, ge=0.0, lt=1.0, description="Log-scale correlation of samples corr_days_step days apart (AR(1) in days); ASSUMPTION [3b].")
    corr_days_step: float = Field(2.0, gt=0.0, description="Day distance at which the correlation equals corr_days [3b].")
    corr_compartments: float = Field(0.3, ge=0.0, lt=1.0, description="Correlation of serum and drain, same cytokine, same day; ASSUMPTION [3b].")
    corr_cytokines: float = Field(0.4, ge=0.0, lt=1.0, description="Correlation of IL-6 and TNF in the same fluid; ASSUMPTION [3b].")
    leak_lead_days: float = Field(2.0, ge=0.0, le=30.0, description="A leak raises levels from this many days before its diagnosis on; ASSUMPTION [3b].")
    summaries: tuple[Literal["per_day", "mean_log"], ...] = Field(
        ("per_day", "mean_log"), min_length=1,
        description="Endpoints per marker: each day, and the per-patient mean of log levels over available days."
    )
    tests: tuple[ContinuousTest, ...] = Field(("welch_log", "mann_whitney"), min_length=1, description="Analyses of each cytokine endpoint.")

    @field_validator("days")
    @classmethod
    def _days(cls, v):
        if any(d < 0 for d in v) or len(set(v)) != len(v) or list(v) != sorted(v):
            raise ValueError(f"days must be distinct, non-negative and increasing, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _lengths(self):
        k = len(self.days)
        names = [m.name for m in self.markers]
        if len(set(names)) != len(names):
            raise ValueError(f"marker names must be unique, got {names}")
        for m in self.markers:
            for field in ("median_no_leak", "leak_gmr", "p_missing"):
                if len(getattr(m, field)) != k:
                    raise ValueError(f"marker {m.name!r}: {field} has {len(getattr(m, field))} values but there are {k} days {list(self.days)}")
        return self


class Colonoscopy(StrictModel):
    """Anastomosis at the 1-month colonoscopy, an ordinal grade, compared with the baseline colonoscopy."""

    grades: tuple[str, ...] = Field(("intact", "minor", "defect", "stricture"), min_length=2,
                                    description="Ordered grades, best first [4].")
    probs_no_leak: tuple[float, ...] = Field((0.88, 0.08, 0.01, 0.03), description="Grade probabilities without leak; ASSUMPTION [4].")
    probs_leak: tuple[float, ...] = Field((0.15, 0.25, 0.50, 0.10), description="Grade probabilities after a leak; ASSUMPTION [4].")
    baseline_probs: tuple[float, ...] = Field(
        (1.0, 0.0, 0.0, 0.0),
        description="Grade of the mucosa at the baseline (preoperative) colonoscopy; ASSUMPTION: normal, so any abnormal finding is new.",
    )
    abnormal_from: str = Field("defect", description="Grades from this one on count as abnormal (dehiscence or stricture).")
    p_missing: float = Field(0.10, ge=0.0, lt=1.0, description="Chance the 1-month colonoscopy is not done; ASSUMPTION [6].")
    tests: tuple[Literal["mann_whitney"], ...] = Field(("mann_whitney",), description="Ordinal test of the grade (Mann-Whitney on grades).")
    dichotomised_tests: tuple[BinaryTest, ...] = Field(("fisher",), description="Tests of 'abnormal' and of 'worse than baseline'.")

    @model_validator(mode="after")
    def _shapes(self):
        k = len(self.grades)
        for field in ("probs_no_leak", "probs_leak", "baseline_probs"):
            values = getattr(self, field)
            if len(values) != k:
                raise ValueError(f"{field} has {len(values)} values but there are {k} grades {list(self.grades)}")
            _check_simplex(values, f"colonoscopy.{field}")
        if self.abnormal_from not in self.grades:
            raise ValueError(f"abnormal_from = {self.abnormal_from!r} is not one of the grades {list(self.grades)}")
        return self

    @property
    def abnormal_index(self) -> int:
        return self.grades.index(self.abnormal_from)


class LengthOfStay(StrictModel):
    """Postoperative length of stay (index stay plus any readmission for leak within 30 days)."""

    median_no_leak: float = Field(7.0, gt=0.0, le=365.0, description="Median days without leak; ASSUMPTION (sourced 6-10 d) [5].")
    log_sd: float = Field(0.35, gt=0.0, le=3.0, description="Log-SD of the stay without leak; ASSUMPTION [5].")
    extra_days_by_grade: tuple[float, float, float] = Field(
        (1.0, 7.0, 16.0), description="Mean extra days with an ISREC grade A/B/C leak; ASSUMPTION (sourced +7 to +14) [5]."
    )
    extra_days_cv: float = Field(0.5, ge=0.0, le=5.0, description="Coefficient of variation of the extra days (gamma); ASSUMPTION.")
    treatment_ratio: float = Field(1.0, gt=0.0, le=10.0, description="Direct effect of treatment on the stay (ratio); ASSUMPTION none [8].")
    tests: tuple[ContinuousTest, ...] = Field(("mann_whitney", "welch_log"), min_length=1, description="Analyses of the stay.")

    @field_validator("extra_days_by_grade")
    @classmethod
    def _non_negative(cls, v):
        if any(x < 0 for x in v):
            raise ValueError(f"extra days must be >= 0, got {list(v)}")
        return v


class FollowUp(StrictModel):
    """Loss to follow-up and death before the 1-month visit."""

    p_missing_1m_visit: float = Field(0.03, ge=0.0, lt=1.0, description="Chance the 1-month visit is missed (leak outcome missing); ASSUMPTION (<1% sourced, plus margin) [6].")
    p_death_30d_no_leak: float = _probability(0.014, "30-day death without leak (in-hospital figure) [6] SOURCED.")
    p_death_30d_leak: float = _probability(0.075, "30-day death after a leak (in-hospital figure) [6] SOURCED.")


class Run(StrictModel):
    """How many trials to simulate and how; none of these changes the statistics, only their precision."""

    n_sims: int = Field(10_000, ge=1, le=1_000_000_000, description="Simulated trials per scenario.")
    seed: int | None = Field(None, ge=0, description="Root seed; drawn and recorded when not given.")
    n_jobs: int = Field(1, ge=-1, le=512, description="Parallel workers (joblib); -1 = all cores.")
    block_size: int = Field(
        1000, ge=1, le=1_000_000,
        description="Trials per random stream (one SeedSequence child per block). Part of the seed's meaning: results are identical for any n_jobs and chunk_blocks, not for another block_size.",
    )
    chunk_blocks: int = Field(10, ge=1, le=100_000, description="Blocks per parallel task (memory and scheduling only).")
    backend: Literal["loky", "threading", "sequential", "dask"] = Field("loky", description="joblib backend.")


class Sweep(StrictModel):
    """Vary config values: `values` maps a key path (e.g. 'leak.effect') to a list of values."""

    mode: Literal["grid", "zip"] = Field("grid", description="Full factorial grid, or lists zipped element by element.")
    values: dict[str, list] = Field(default_factory=dict, description="Key path -> list of values.")
    zip_groups: list[list[str]] = Field(
        default_factory=list,
        description="With mode = 'grid': groups of key paths whose lists are zipped together and crossed with the rest, "
                    "e.g. [['design.n_control', 'design.n_treatment']].",
    )
    include_base: bool = Field(False, description="Also run the unswept base scenario.")

    @model_validator(mode="after")
    def _lists(self):
        for key, v in self.values.items():
            if len(v) == 0:
                raise ValueError(f"sweep.values.{key} is an empty list")
            if key.startswith("sweep") or key.startswith("run"):
                raise ValueError(f"sweep.values.{key}: sweep and run settings cannot be swept")
        if self.mode == "zip":
            lengths = {k: len(v) for k, v in self.values.items()}
            if len(set(lengths.values())) > 1:
                raise ValueError(f"mode = 'zip' needs lists of equal length, got {lengths}")
        if self.zip_groups and self.mode != "grid":
            raise ValueError("zip_groups only applies to mode = 'grid' (mode = 'zip' zips every key already)")
        grouped = [k for group in self.zip_groups for k in group]
        if len(set(grouped)) != len(grouped):
            raise ValueError(f"a key path appears in more than one zip group: {self.zip_groups}")
        for group in self.zip_groups:
            missing = [k for k in group if k not in self.values]
            if missing:
                raise ValueError(f"zip_groups names {missing}, which are not in sweep.values")
            lengths = {k: len(self.values[k]) for k in group}
            if len(set(lengths.values())) > 1:
                raise ValueError(f"keys zipped together need lists of equal length, got {lengths}")
        return self


class Scenario(StrictModel):
    """A whole trial scenario: the design and every clinical assumption."""

    name: str = Field("scenario", min_length=1, max_length=120, description="Short identifier used in file names.")
    title: str = Field("", description="Human-readable title for reports.")
    description: str = Field("", description="Free text for reports.")
    design: Design = Field(default_factory=Design)
    population: Population = Field(default_factory=Population)
    leak: Leak = Field(default_factory=Leak)
    cytokines: Cytokines = Field(default_factory=Cytokines)
    colonoscopy: Colonoscopy = Field(default_factory=Colonoscopy)
    los: LengthOfStay = Field(default_factory=LengthOfStay)
    follow_up: FollowUp = Field(default_factory=FollowUp)
    flow: FlowConfig | None = Field(None, description="Patient flow (SimPy); absent = fixed arm sizes, no calendar.")
    run: Run = Field(default_factory=Run)
    sweep: Sweep | None = Field(None, description="Scenario grid; absent = one scenario.")

    @model_validator(mode="after")
    def _boschloo_size(self):
        largest = max(self.design.n_control, self.design.n_treatment)
        for key, tests in (("leak.tests", self.leak.tests), ("colonoscopy.dichotomised_tests", self.colonoscopy.dichotomised_tests)):
            if "boschloo" in tests and largest > BOSCHLOO_MAX_N:
                raise ValueError(
                    f"{key} includes 'boschloo' but an arm has {largest} patients; Boschloo's exact tables are built for "
                    f"arms of up to {BOSCHLOO_MAX_N} (seconds each, one per analysable size pair). "
                    f"Use {key} = [\"fisher\", \"chi2\"] for larger designs"
                )
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if not all(c.isalnum() or c in "-_." for c in v):
            raise ValueError(f"use letters, digits, '-', '_' or '.', got {v!r}")
        return v


def positive_definite(matrix: np.ndarray) -> bool:
    """True when ``matrix`` is a valid (positive definite) correlation matrix."""
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        return False
    return True
