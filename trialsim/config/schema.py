"""The scenario schema: design, population, allocation, follow-up, run and sweep; endpoints by family.

A scenario lists its endpoints in ``[endpoints.<id>]`` sections, each validated by the endpoint family
its ``family`` key names (see :mod:`trialsim.registry`): what is not declared is not simulated. The
defaults of the sections here are those of the planned exosome/LAR trial (NCT06536712) and cite
``shared/clinical_evidence.md`` (section numbers in brackets); values marked ASSUMPTION are planning
values, not measurements.
"""
from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, PlainValidator, SerializeAsAny, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from trialsim.config.bayes import BayesConfig
from trialsim.config.base import IDENTIFIER, MISSING_MAX, FileName, Identifier, LongText, StrictModel, Text
from trialsim.config.flow import FlowConfig, Ratio
from trialsim.config.interim import InterimConfig, SafetyConfig
from trialsim.registry import ALLOCATION_SCHEMES, ENDPOINT_FAMILIES, MULTIPLICITY_METHODS, TESTS

MAX_RATIO_PART = 100  # allocation ratio parts
MAX_TARGET_POWER = 0.999  # of planning's searches: a higher target is not one a sample size is planned to
MAX_STRATA_COVARIATES = 6  # 2^6 = 64 strata at most: the state of stratified blocks is (trials x strata)
MAX_ENDPOINT_SECTIONS = 50
MAX_SWEEP_SCENARIOS = 10_000  # scenarios one sweep may expand to
_KEY_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*|\.\d+|\[\d+\])*\Z")
# A flow simulates every referral until the target is enrolled: its arrays and events grow with the
# referrals a trial needs, (n_control + n_treatment) / (p_eligible * p_consent), and its calendar
# with the months they take.
MAX_REFERRALS_PER_TRIAL = 20_000
MAX_RECRUITMENT_MONTHS = 1200.0


def registered(name: str, registry, what: str) -> str:
    """``name`` when ``registry`` holds it, else the error listing what is allowed."""
    if name not in registry:
        raise ValueError(f"allowed {what}: {', '.join(registry.names())}")
    return name


class Design(StrictModel):
    """Arms, sizes and the error rate of the planned comparison."""

    control_name: Text = Field("placebo", min_length=1, max_length=60, description="Label of the control arm [0].")
    treatment_name: Text = Field("exosome", min_length=1, max_length=60, description="Label of the experimental arm [0].")
    n_control: int = Field(10, ge=1, le=100_000, description="Patients in the control arm (registered: 10 placebo) [0].")
    n_treatment: int = Field(10, ge=1, le=100_000, description="Patients in the experimental arm (registered: 10) [0].")
    masking: Literal["none", "single", "double", "triple", "quadruple"] = Field(
        "quadruple", description="Masking as registered (QUADRUPLE) [0]."
    )
    assessor_masked: bool | None = Field(
        None,
        description=(
            "Whether the outcome assessor knows no patient's arm. Not set: derived from masking (quadruple, triple and "
            "double -> masked, ASSUMPTION for double/triple, whose masked roles ClinicalTrials.gov does not fix; none and "
            "single -> not masked); set it when the registration names the roles. An unmasked assessor applies each "
            "endpoint's assessor_bias."
        ),
    )
    alpha: float = Field(0.05, ge=1e-6, lt=0.5, description="Two-sided significance level (convention) [9].")
    label: Text = Field("", max_length=60, description=(
        "Short name of this design in comparisons (`trialsim compare`), e.g. 'registered 10:10 sequential'; "
        "empty = made from the allocation scheme and arm sizes."))

    @model_validator(mode="after")
    def _assessor_fits_masking(self):
        if self.control_name.strip().casefold() == self.treatment_name.strip().casefold():
            raise ValueError(f"control_name and treatment_name are both {self.treatment_name!r}: every table and figure "
                             "names the arms by them, so give the arms different names")
        if self.assessor_masked is True and self.masking == "none":
            raise ValueError("assessor_masked = true contradicts masking = 'none' (nobody is masked); set masking to the "
                             "registered level, e.g. 'single' for an outcomes-assessor-only masking")
        if self.assessor_masked is False and self.masking == "quadruple":
            raise ValueError("assessor_masked = false contradicts masking = 'quadruple' (participant, care provider, "
                             "investigator and outcomes assessor are all masked); use 'triple' or lower")
        return self

    @property
    def assessor_is_masked(self) -> bool:
        """The outcome assessor's masking: ``assessor_masked`` when set, else derived from ``masking``."""
        if self.assessor_masked is not None:
            return self.assessor_masked
        return self.masking in ("double", "triple", "quadruple")


class AllocationConfig(StrictModel):
    """Who gets which arm, by position in the enrolment sequence (see ``trialsim.designs.allocation``)."""

    scheme: str = Field(
        "sequential",
        description=(
            "Allocation scheme. The registration (NCT06536712) says NON_RANDOMIZED with 10 placebo but does not "
            "state how patients are assigned [0]; 'sequential' (first n_control patients to control, then "
            "treatment) is one plausible reading, ASSUMPTION. 'alternating', 'permuted_block', 'simple' "
            "(coin flip), 'stratified_block' (blocks within strata), 'minimisation' (Pocock-Simon) and 'selected' "
            "(not randomised: surgeons choose on baseline risk, see selection_odds_ratio) are the alternatives."
        ),
    )
    block_size: int = Field(
        4, ge=2, le=1000,
        description="Block size of 'permuted_block' and 'stratified_block'; a multiple of sum(ratio). ASSUMPTION (common choice).",
    )
    ratio: Ratio = Field(
        (1, 1),
        description="Allocation ratio control:treatment of the randomised schemes (registered 10:10 -> 1:1) [0].",
    )
    strata: tuple[Identifier, ...] | None = Field(
        None, max_length=MAX_STRATA_COVARIATES,
        description=(
            "Population covariates that 'stratified_block' forms strata from (every combination is a stratum) and "
            "'minimisation' balances (marginally). Not set: the covariates of the primary endpoint's risk model "
            f"(its declared risk factors). At most {MAX_STRATA_COVARIATES}: beyond that most strata hold one patient "
            "and stratified blocks no longer balance [kernan1999]."
        ),
    )
    p_minimise: float = Field(
        0.8, ge=0.5, le=1.0,
        description=(
            "'minimisation': chance of the arm that minimises the imbalance (0.5 = a coin, 1 = deterministic). "
            "0.8 as Pocock & Simon's example (Biometrics 1975;31:103-115); ASSUMPTION."
        ),
    )
    imbalance: Literal["range", "variance"] = Field(
        "range",
        description="'minimisation': imbalance of a covariate level across arms, as the range or the variance of its "
                    "ratio-weighted arm counts, summed over covariates [pocock1975].",
    )
    selection_odds_ratio: float = Field(
        1.0, ge=0.01, le=100.0,
        description=(
            "'selected': odds ratio of being chosen for treatment per unit of the patient's risk score (the log-odds "
            "linear predictor of the selection endpoint's covariate risk model). Below 1 = lower-risk patients get the "
            "new product more often (selection by surgeons). No data on this trial: ASSUMPTION, vary it."
        ),
    )
    selection_endpoint: Identifier | None = Field(
        None,
        description=("'selected': endpoint id whose covariate risk model gives the risk score. Not set: the primary's (its "
                     "baseline log-odds risk is what surgeons are assumed to select on), ASSUMPTION."),
    )
    adjust_for: tuple[Identifier, ...] | None = Field(
        None, max_length=16,
        description=(
            "Covariates the adjusted analyses ('mantel_haenszel' strata, 'logistic' terms) adjust for. Not set: the "
            "covariates of the primary endpoint's risk model, as the prognostic factors known at design [ema2015]."
        ),
    )

    @field_validator("scheme")
    @classmethod
    def _known_scheme(cls, v):
        return registered(v, ALLOCATION_SCHEMES, "schemes")

    @field_validator("ratio")
    @classmethod
    def _positive_ratio(cls, v):
        if min(v) < 1 or max(v) > MAX_RATIO_PART:
            raise ValueError(f"both parts of the ratio must be integers from 1 to {MAX_RATIO_PART}, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _block_fits_ratio(self):
        if getattr(ALLOCATION_SCHEMES.get(self.scheme), "uses_blocks", False) and self.block_size % sum(self.ratio):
            raise ValueError(
                f"allocation.block_size = {self.block_size} is not a multiple of the sum of allocation.ratio = "
                f"{list(self.ratio)} ({sum(self.ratio)}); use e.g. block_size = {2 * sum(self.ratio)}"
            )
        return self

    @property
    def p_treatment(self) -> float:
        """Chance of the treatment arm implied by the ratio."""
        return self.ratio[1] / sum(self.ratio)


class Covariate(StrictModel):
    """A binary baseline covariate, drawn once per patient (independent Bernoulli)."""

    name: Identifier = Field(description="Identifier, e.g. 'male'.")
    prevalence: float = Field(0.5, ge=0.0, le=1.0, description="Share of eligible patients with the covariate.")
    source: Text = Field("", max_length=500, description="Where the number comes from.")


class Population(StrictModel):
    """The patients: baseline covariates drawn once per simulated trial, before allocation."""

    covariates: tuple[Covariate, ...] = Field((), max_length=16, description="Baseline covariates [2].")

    @field_validator("covariates")
    @classmethod
    def _unique_names(cls, v):
        names = [c.name for c in v]
        if len(set(names)) != len(names):
            raise ValueError(f"covariate names must be unique, got {names}")
        return v


class FollowUp(StrictModel):
    """Death and loss to follow-up before the 1-month visit (a patient-level state every endpoint sees)."""

    p_missing_visit: float = Field(0.03, ge=0.0, le=MISSING_MAX, description="Chance a living patient misses the follow-up visit (outcomes assessed there are missing); ASSUMPTION (<1% sourced, plus margin) [6].")
    p_death: float = Field(0.014, ge=0.0, le=MISSING_MAX, description="Death before the visit without the linked event (in-hospital figure) [6] SOURCED; at most 0.95, or next to no patient would reach the visit.")
    death_event: str | None = Field(None, description="Endpoint id of an event that changes the chance of death (the registered trial: its leak); none = no link.")
    p_death_after_event: float = Field(0.075, ge=0.0, le=1.0, description="Death before the visit after the linked event (in-hospital figure) [6] SOURCED.")
    horizon_days: float = Field(30.0, ge=1.0, le=3650.0, description="Day of the follow-up visit; deaths fall before it [0].")


def _family_section(value: Any):
    """Validate one ``[endpoints.<id>]`` section with the family its ``family`` key names."""
    if isinstance(value, StrictModel):
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError("endpoint", "an endpoint is a table with a 'family' key")
    name = value.get("family")
    if not isinstance(name, str) or name not in ENDPOINT_FAMILIES:
        raise PydanticCustomError("endpoint", "family = {got} is not a registered endpoint family; allowed: {allowed}",
                                  {"got": json.dumps(name), "allowed": ", ".join(ENDPOINT_FAMILIES.names())})
    cls = ENDPOINT_FAMILIES.get(name)
    try:
        return cls.model_validate_json(json.dumps(value))
    except ValidationError as exc:
        details = []
        for err in exc.errors():
            msg, kind = err["msg"], err["type"]
            if kind == "extra_forbidden":
                msg, kind = f"unknown key; allowed keys here: {', '.join(cls.model_fields)}", "unknown_family_key"
            details.append(InitErrorDetails(type=PydanticCustomError(kind, msg.replace("{", "(").replace("}", ")")),
                                            loc=err["loc"], input=err.get("input")))
        raise ValidationError.from_exception_data(cls.__name__, details) from None


EndpointSection = Annotated[SerializeAsAny[StrictModel], PlainValidator(_family_section)]


class Multiplicity(StrictModel):
    """A family of hypotheses tested together, with a multiplicity adjustment (see ``trialsim.decide.multiplicity``)."""

    method: str = Field(
        "holm",
        description="Adjustment: 'bonferroni', 'holm', 'hochberg' (independent or positively dependent tests) or "
                    "'fixed_sequence' (the family's order; stops at the first non-rejection). Holm keeps the family-wise "
                    "error at alpha under any dependence (Holm 1979, Scand J Stat 6:65) and is the usual default.",
    )
    family: tuple[str, ...] | None = Field(
        None, min_length=1, max_length=200,
        description="The hypotheses, each 'endpoint:test' (e.g. 'infection:fisher'), in testing order for "
                    "'fixed_sequence'. Not set: the first test of every analysed endpoint, the primary first, then the "
                    "others in declaration order.",
    )

    @field_validator("method")
    @classmethod
    def _known_method(cls, v):
        return registered(v, MULTIPLICITY_METHODS, "methods")


class Run(StrictModel):
    """How many trials to simulate and how; none of these changes the statistics, only their precision."""

    n_sims: int = Field(10_000, ge=1, le=1_000_000_000, description="Simulated trials per scenario.")
    seed: int | None = Field(None, ge=0, description="Root seed; drawn and recorded when not given.")
    n_jobs: int = Field(1, ge=-1, le=512, description="Parallel workers; -1 = all cores (0 is not allowed).")
    block_size: int | None = Field(
        None, ge=1, le=1_000_000,
        description="Trials per random stream (one SeedSequence child per block). Part of the seed's meaning: results are identical for any n_jobs and chunk_blocks, not for another block_size. Not set: 1000, or fewer when a block of 1000 would take more than a quarter of max_memory_mb (chosen from the design alone, recorded in the provenance).",
    )
    chunk_blocks: int = Field(10, ge=1, le=100_000, description="At most this many blocks per parallel task (tasks are also cut small enough for 4 per worker).")
    backend: Literal["loky", "threading", "sequential", "dask"] = Field(
        "loky", description="Where the workers run: loky processes, threads, this process, or a Dask cluster (see scheduler).")
    scheduler: str | None = Field(
        None, min_length=1, max_length=500,
        description="Dask scheduler address (e.g. tcp://10.0.0.5:8786), only with backend = 'dask'. Not set: a local Dask cluster on 127.0.0.1 is started and closed by trialsim.",
    )
    flow_engine: Literal["vectorised", "simpy"] = Field(
        "vectorised",
        description="How a [flow] is run: 'vectorised' replays its SimPy processes on arrays over all trials (bit-identical; trial 0 of every block is still run in SimPy and checked), 'simpy' runs one SimPy environment per trial (the model's definition, tens of times slower).",
    )
    max_memory_mb: int = Field(
        2048, ge=64, le=16_777_216,
        description="Memory budget (MB) of the simulation's arrays over all workers at once, on top of each process's Python and libraries (about 150-200 MB). Picks the block size when block_size is not set, caps the workers running at once, and refuses before it starts a run that cannot fit.",
    )

    @model_validator(mode="after")
    def _run_settings(self):
        if self.n_jobs == 0:
            raise ValueError("n_jobs = 0 runs nothing: use 1 or more, or -1 for all cores")
        if self.scheduler is not None and self.backend != "dask":
            raise ValueError(f"scheduler = {self.scheduler!r} is a Dask scheduler address: set backend = 'dask' too")
        if self.scheduler is not None:
            check_scheduler_address(self.scheduler)
        return self


_SCHEDULER_ADDRESS = re.compile(r"(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})")


def check_scheduler_address(address: str) -> None:
    """A Dask scheduler address trialsim can connect to: ``tcp://HOST:PORT`` (or ``HOST:PORT``), port 1-65535.
    TLS and UCX addresses need security or transport settings that trialsim does not pass, so they are refused here
    rather than failing inside Dask."""
    m = _SCHEDULER_ADDRESS.fullmatch(address)
    if m is None:
        raise ValueError(f"scheduler = {address!r} is not an address: use tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786)")
    if (m["scheme"] or "tcp") != "tcp":
        raise ValueError(f"scheduler = {address!r}: only tcp:// addresses are supported (a {m['scheme']}:// scheduler "
                         "needs settings trialsim does not pass); use tcp://HOST:PORT")
    if not 1 <= int(m["port"]) <= 65535:
        raise ValueError(f"scheduler = {address!r}: the port must lie in 1-65535, got {int(m['port'])}")


class Sweep(StrictModel):
    """Vary config values: `values` maps a key path (e.g. 'design.n_control', or an endpoint's 'endpoints.<id>.effect') to a list of values."""

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
            if not _KEY_PATH.match(key):
                raise ValueError(f"sweep.values: {json.dumps(key)} is not a key path such as 'design.n_control' or "
                                 "'endpoints.<id>.effect'")
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
        if self.mode == "zip":
            count = len(next(iter(self.values.values()), []))
        else:
            factors = [len(self.values[g[0]]) for g in self.zip_groups if g]
            count = math.prod(factors + [len(v) for k, v in self.values.items() if k not in grouped])
        if count > MAX_SWEEP_SCENARIOS:
            raise ValueError(f"sweep.values expand to {count:,} scenarios; at most {MAX_SWEEP_SCENARIOS:,} (split the sweep)")
        return self


# the patient-flow model fills its beds with the stays a 'duration' endpoint draws: without one it has nothing to time
FLOW_NEEDS_STAYS = "a [flow] needs an endpoint that gives the hospital stays (family 'duration', e.g. a length of stay)"


def gives_stays(scenario) -> bool:
    """The scenario has an endpoint drawing the hospital stays the patient-flow model needs."""
    return any(getattr(s, "gives_stays", False) for s in scenario.endpoints.values())


class Scenario(StrictModel):
    """A whole trial scenario: design, population, allocation, endpoints, follow-up, flow, run, sweep."""

    name: FileName = Field("scenario", min_length=1, max_length=120, description="Short identifier used in file names.")
    title: Text = Field("", max_length=300, description="Human-readable title for reports.")
    description: LongText = Field("", max_length=5000, description="Free text for reports.")
    primary: str | None = Field(None, description="The primary endpoint (an analysed endpoint name); default: the first one declared.")
    design: Design = Field(default_factory=Design)
    allocation: AllocationConfig = Field(default_factory=AllocationConfig)
    population: Population = Field(default_factory=Population)
    endpoints: dict[str, EndpointSection] = Field(description="Endpoint sections by id; each names its family.")
    follow_up: FollowUp = Field(default_factory=FollowUp)
    flow: FlowConfig | None = Field(None, description="Patient flow (SimPy); absent = fixed arm sizes, no calendar.")
    bayes: BayesConfig | None = Field(
        None, description="Priors of the Bayesian tests and the go / no-go rule; absent = the tests' default priors, no go / no-go.")
    multiplicity: Multiplicity | None = Field(None, description="A family of tests adjusted for multiplicity; absent = none.")
    interim: InterimConfig | None = Field(None, description="Group-sequential interim analyses; absent = one final analysis.")
    safety: SafetyConfig | None = Field(None, description="Monitoring for harm at safety reviews; absent = none.")
    run: Run = Field(default_factory=Run)
    sweep: Sweep | None = Field(None, description="Scenario grid; absent = one scenario.")

    @field_validator("endpoints")
    @classmethod
    def _endpoint_ids(cls, v):
        if not v:
            raise ValueError("declare at least one endpoint, e.g. [endpoints.crp] with family = \"plain_continuous\"")
        for cid in v:
            if not IDENTIFIER.match(cid) or len(cid) > 60:
                raise ValueError(f"endpoint id {json.dumps(cid)}: use an ASCII letter, then ASCII letters, digits and '_' "
                                 "(at most 60; it becomes part of endpoint names and file names)")
        if len(v) > MAX_ENDPOINT_SECTIONS:
            raise ValueError(f"at most {MAX_ENDPOINT_SECTIONS} endpoint sections, got {len(v)}")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        covariates = {c.name for c in self.population.covariates}
        names: dict[str, str] = {}
        analysed: list[str] = []  # endpoints with at least one test (the others are generated, not analysed)
        tests_of: dict[str, tuple[str, ...]] = {}
        kinds: dict[str, str] = {}
        for cid, section in self.endpoints.items():
            # _where walks the section's whole dump: only for a message (eagerly it was 15% of planning's time)
            for link in section.links():
                if link not in self.endpoints:
                    raise ValueError(f"{_where(cid, section, link)} links to {link!r}, which is not an endpoint of this "
                                     f"scenario (declared: {', '.join(self.endpoints)})")
                if not self.endpoints[link].is_event:
                    raise ValueError(f"{_where(cid, section, link)} links to {link!r}, which is not an event other "
                                     "endpoints can follow")
            problem = section.link_problem({link: self.endpoints[link] for link in section.links()})
            if problem is not None:
                raise ValueError(f"endpoints.{cid}: {problem}")
            for name in section.covariates_used():
                if name not in covariates:
                    raise ValueError(f"{_where(cid, section, name)} uses covariate {name!r}, which population.covariates "
                                     f"does not declare (declared names: {', '.join(sorted(covariates)) or 'none'})")
            for a in section.analysed(cid):
                if a.name in names:
                    raise ValueError(f"analysed endpoint {a.name!r} comes from both endpoints.{names[a.name]} and endpoints.{cid}")
                names[a.name] = cid
                tests_of[a.name], kinds[a.name] = tuple(a.tests), a.kind
                if a.tests:
                    analysed.append(a.name)
                for test in a.tests:
                    if test not in TESTS:
                        raise ValueError(f"{_where(cid, section, test)}: test {test!r} is not registered; allowed: "
                                         f"{', '.join(TESTS.names())}")
                    spec = TESTS.get(test)
                    if a.kind not in spec.kinds:
                        allowed = [n for n, s in TESTS.items() if a.kind in s.kinds]
                        raise ValueError(f"{_where(cid, section, test)}: test {test!r} does not apply to the {a.kind} "
                                         f"endpoint {a.name!r}; allowed: {', '.join(allowed)}")
                    if a.tests.count(test) > 1:
                        raise ValueError(f"{_list_of(_where(cid, section, test))} lists the test {test!r} twice "
                                         f"({list(a.tests)}); each test once, or the endpoint would get duplicate rows")
                    largest = max(self.design.n_control, self.design.n_treatment)
                    if spec.max_n is not None and largest > spec.max_n:
                        raise ValueError(
                            f"endpoints.{cid} uses {test!r} (in {_list_of(_where(cid, section, test))}), which runs for "
                            "arms of up to "
                            f"{spec.max_n} patients, but design.n_control = {self.design.n_control} and "
                            f"design.n_treatment = {self.design.n_treatment}; leave {test!r} out of its tests for this design")
        _check_cycles(self.endpoints)
        if not analysed:
            raise ValueError("no endpoint is analysed: every endpoint section has an empty list of tests")
        if self.primary is not None and self.primary not in analysed:
            why = f" (endpoints.{names[self.primary]} gives it no tests)" if self.primary in names else ""
            raise ValueError(f"primary = {self.primary!r} is not an analysed endpoint{why}; choose one of: {', '.join(analysed)}")
        if self.flow is not None and not gives_stays(self):
            raise ValueError(f"{FLOW_NEEDS_STAYS}; declared: {', '.join(f'{c} ({s.family})' for c, s in self.endpoints.items())}")
        if self.flow is not None:
            _check_recruitment(self.flow, self.design.n_control + self.design.n_treatment)
        _check_allocation(self, covariates, names[self.primary or analysed[0]])
        if self.multiplicity is not None and self.multiplicity.family is not None:
            _check_family(self.multiplicity.family, tests_of)
        _check_looks(self, analysed, tests_of, kinds)
        if self.follow_up.death_event is not None:
            target = self.endpoints.get(self.follow_up.death_event)
            if target is None or not target.is_event:
                events = [cid for cid, section in self.endpoints.items() if section.is_event]
                raise ValueError(f"follow_up.death_event = {self.follow_up.death_event!r} is not an event endpoint "
                                 f"(event endpoints of this scenario: {', '.join(events) or 'none'})")
        return self


def _check_allocation(scenario: "Scenario", covariates: set[str], primary_cid: str) -> None:
    """Covariates named by the allocation exist; the selection endpoint exists and has a risk score."""
    alloc = scenario.allocation
    for key in ("strata", "adjust_for"):
        names = getattr(alloc, key) or ()
        unknown = [n for n in names if n not in covariates]
        if unknown:
            raise ValueError(f"allocation.{key} = {list(names)} names {unknown}, which population.covariates does not "
                             f"declare (declared names: {', '.join(sorted(covariates)) or 'none'})")
        if len(set(names)) != len(names):
            raise ValueError(f"allocation.{key} = {list(names)} names a covariate twice")
    scheme = ALLOCATION_SCHEMES.get(alloc.scheme)
    cid = alloc.selection_endpoint
    if cid is not None or getattr(scheme, "uses_score", False):
        cid = primary_cid if cid is None else cid
        if cid not in scenario.endpoints or not scenario.endpoints[cid].gives_risk_score:
            scored = [c for c, s in scenario.endpoints.items() if s.gives_risk_score]
            raise ValueError(f"allocation.selection_endpoint = {json.dumps(alloc.selection_endpoint)} (not set: the primary's "
                             f"endpoint {primary_cid!r}): {cid!r} is not an endpoint with a covariate risk score; allowed: "
                             f"{', '.join(scored) or 'none in this scenario'}")
    if getattr(scheme, "uses_covariates", False) and alloc.strata is None:
        default = scenario.endpoints[primary_cid].covariates_used()
        if len(default) > MAX_STRATA_COVARIATES:
            raise ValueError(f"allocation.strata is not set, so it would be the {len(default)} covariates of the primary's "
                             f"risk model ({', '.join(default)}); at most {MAX_STRATA_COVARIATES}: list the ones to balance")


def _check_family(family: tuple[str, ...], tests_of: dict[str, tuple[str, ...]]) -> None:
    """Each member of ``multiplicity.family`` names an analysed endpoint and one of its tests, once."""
    analysed = [n for n, t in tests_of.items() if t]
    seen: set[str] = set()
    for i, member in enumerate(family):
        where = f"multiplicity.family[{i}] = {json.dumps(member)}"
        endpoint, sep, test = member.partition(":")
        if not sep:
            raise ValueError(f"{where}: write each member as 'endpoint:test', e.g. 'infection:fisher'")
        if endpoint not in analysed:
            raise ValueError(f"{where}: {endpoint!r} is not an analysed endpoint; choose one of: {', '.join(analysed)}")
        if test not in tests_of[endpoint]:
            raise ValueError(f"{where}: {endpoint!r} is not tested with {test!r}; its tests: {', '.join(tests_of[endpoint])}")
        if member in seen:
            raise ValueError(f"{where} is listed twice; each hypothesis once")
        seen.add(member)


def _check_looks(scenario: "Scenario", analysed: list[str], tests_of: dict[str, tuple[str, ...]],
                 kinds: dict[str, str]) -> None:
    """The monitored endpoints and tests of [interim] and [safety] exist, and every look has patients."""
    primary = scenario.primary or analysed[0]
    n = scenario.design.n_control + scenario.design.n_treatment
    for section, name in ((scenario.interim, "interim"), (scenario.safety, "safety")):
        if section is None:
            continue
        endpoint = section.endpoint or primary
        if endpoint not in analysed:
            raise ValueError(f"{name}.endpoint = {endpoint!r} is not an analysed endpoint; choose one of: {', '.join(analysed)}")
        first = round(section.looks[0] * n)
        if first < 2:
            raise ValueError(f"{name}.looks[0] = {section.looks[0]:g} of the {n} planned patients is {first} patient(s); "
                             "a look needs at least 2 (raise the fraction)")
        one_arm = _one_arm_at(scenario, first)
        if one_arm is not None:
            alloc = scenario.allocation.scheme
            raise ValueError(f"{name}.looks[0] = {section.looks[0]:g}: with allocation.scheme = {alloc!r} the first {first} "
                             f"of the {n} planned patients are all {one_arm}, so that look compares nothing; start the looks "
                             f"once both arms have patients, or use an allocation that mixes the arms from the start")
        if name == "interim" and section.test is not None and section.test not in tests_of[endpoint]:
            raise ValueError(f"interim.test = {section.test!r} is not a test of {endpoint!r}; choose one of: "
                             f"{', '.join(tests_of[endpoint])}")
        if name == "safety" and kinds[endpoint] != "binary":
            raise ValueError(f"safety.endpoint = {endpoint!r} is a {kinds[endpoint]} endpoint; harm monitoring counts "
                             "events of a binary endpoint")


def _one_arm_at(scenario: "Scenario", m: int) -> str | None:
    """The arm ("control" or "treatment") that holds all of the first ``m`` patients under a deterministic allocation
    (the same arms in every trial, e.g. sequential), or None: both arms have some, or chance or covariates decide."""
    scheme = ALLOCATION_SCHEMES.get(scenario.allocation.scheme)
    if scheme.randomised or scheme.uses_covariates or scheme.uses_score:
        return None
    d = scenario.design
    arms = np.asarray(scheme.sequence(scenario.allocation, n_trials=1, n_control=d.n_control, n_treatment=d.n_treatment,
                                      rng=None))[0, :m]
    if arms.all():
        return "treatment"
    return "control" if not arms.any() else None


def _where(cid: str, section: StrictModel, value: str) -> str:
    """The key path in ``endpoints.<cid>`` that holds ``value`` (a link, covariate or test name) as a value or a
    table's key, for messages."""
    def walk(node, path):
        if node == value:
            return path
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            if key == value and isinstance(node, dict):
                return f"{path}.{key}"
            found = walk(child, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}")
            if found:
                return found
        return None

    return walk(section.model_dump(mode="json"), f"endpoints.{cid}") or f"endpoints.{cid}"


def _list_of(path: str) -> str:
    """``endpoints.x.tests[1]`` -> ``endpoints.x.tests``."""
    return re.sub(r"\[\d+\]$", "", path)


def _check_recruitment(flow: FlowConfig, n_patients: int) -> None:
    """Refuse a flow whose recruitment would need more referrals or months than can be simulated."""
    p = flow.p_eligible * flow.p_consent
    referrals = n_patients / p
    if referrals > MAX_REFERRALS_PER_TRIAL:
        raise ValueError(
            f"flow.p_eligible = {flow.p_eligible:g} and flow.p_consent = {flow.p_consent:g} enrol one referral in "
            f"{1 / p:,.0f}: the {n_patients} patients of design.n_control + design.n_treatment would need about "
            f"{referrals:,.0f} referrals per simulated trial, and at most {MAX_REFERRALS_PER_TRIAL:,} are simulated "
            "(each is drawn and walked); raise flow.p_eligible or flow.p_consent, or lower the arm sizes")
    months = referrals / flow.referrals_per_month
    if months > MAX_RECRUITMENT_MONTHS:
        raise ValueError(
            f"flow.referrals_per_month = {flow.referrals_per_month:g}: recruiting the {n_patients} patients of "
            f"design.n_control + design.n_treatment would take about {months / 12:,.0f} years (at most "
            f"{MAX_RECRUITMENT_MONTHS / 12:,.0f} are simulated); raise flow.referrals_per_month, flow.p_eligible or "
            "flow.p_consent, or lower the arm sizes")


def _check_cycles(sections: dict) -> None:
    state: dict[str, int] = {}

    def visit(cid: str, path: tuple[str, ...]):
        if state.get(cid) == 2:
            return
        if state.get(cid) == 1:
            raise ValueError(f"endpoint links form a cycle: {' -> '.join(path + (cid,))}")
        state[cid] = 1
        for link in sections[cid].links():
            visit(link, path + (cid,))
        state[cid] = 2

    for cid in sections:
        visit(cid, ())


def positive_definite(matrix: np.ndarray) -> bool:
    """True when ``matrix`` is a valid (positive definite) correlation matrix."""
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        return False
    return True
