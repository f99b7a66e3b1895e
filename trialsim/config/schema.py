"""The scenario schema: design, population, allocation, follow-up, run and sweep; endpoints by family.

A scenario lists its endpoints in ``[endpoints.<id>]`` sections, each validated by the endpoint family
its ``family`` key names (see :mod:`trialsim.registry`): what is not declared is not simulated. The
defaults of the sections here are those of the planned exosome/LAR trial (NCT06536712) and cite
``shared/clinical_evidence.md`` (section numbers in brackets); values marked ASSUMPTION are planning
values, not measurements.
"""
from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, PlainValidator, SerializeAsAny, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from trialsim.config.base import StrictModel
from trialsim.config.flow import FlowConfig, Ratio
from trialsim.registry import ALLOCATION_SCHEMES, ENDPOINT_FAMILIES, TESTS


class Design(StrictModel):
    """Arms, sizes and the error rate of the planned comparison."""

    control_name: str = Field("placebo", min_length=1, max_length=60, description="Label of the control arm [0].")
    treatment_name: str = Field("exosome", min_length=1, max_length=60, description="Label of the experimental arm [0].")
    n_control: int = Field(10, ge=1, le=100_000, description="Patients in the control arm (registered: 10 placebo) [0].")
    n_treatment: int = Field(10, ge=1, le=100_000, description="Patients in the experimental arm (registered: 10) [0].")
    masking: Literal["none", "single", "double", "triple", "quadruple"] = Field(
        "quadruple", description="Masking as registered (QUADRUPLE) [0]."
    )
    alpha: float = Field(0.05, gt=0.0, lt=0.5, description="Two-sided significance level (convention) [9].")


class AllocationConfig(StrictModel):
    """Who gets which arm, by position in the enrolment sequence (see ``trialsim.designs.allocation``)."""

    scheme: str = Field(
        "sequential",
        description=(
            "Allocation scheme. The registration (NCT06536712) says NON_RANDOMIZED with 10 placebo but does not "
            "state how patients are assigned [0]; 'sequential' (first n_control patients to control, then "
            "treatment) is one plausible reading, ASSUMPTION. 'alternating', 'permuted_block' and 'simple' "
            "(coin flip) are the alternatives."
        ),
    )
    block_size: int = Field(
        4, ge=2, le=1000,
        description="Block size of 'permuted_block'; a multiple of sum(ratio). ASSUMPTION (common choice).",
    )
    ratio: Ratio = Field(
        (1, 1),
        description="Allocation ratio control:treatment of the randomised schemes (registered 10:10 -> 1:1) [0].",
    )

    @field_validator("scheme")
    @classmethod
    def _known_scheme(cls, v):
        if v not in ALLOCATION_SCHEMES:
            raise ValueError(f"allowed schemes: {', '.join(ALLOCATION_SCHEMES.names())}")
        return v

    @field_validator("ratio")
    @classmethod
    def _positive_ratio(cls, v):
        if min(v) < 1:
            raise ValueError(f"both parts of the ratio must be integers >= 1, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _block_fits_ratio(self):
        if self.scheme == "permuted_block" and self.block_size % sum(self.ratio):
            raise ValueError(
                f"block_size {self.block_size} is not a multiple of sum(ratio) = {sum(self.ratio)} "
                f"(ratio {list(self.ratio)}); use e.g. {2 * sum(self.ratio)}"
            )
        return self

    @property
    def p_treatment(self) -> float:
        """Chance of the treatment arm implied by the ratio."""
        return self.ratio[1] / sum(self.ratio)


class Covariate(StrictModel):
    """A binary baseline covariate, drawn once per patient (independent Bernoulli)."""

    name: str = Field(min_length=1, max_length=60, description="Identifier, e.g. 'male'.")
    prevalence: float = Field(0.5, ge=0.0, le=1.0, description="Share of eligible patients with the covariate.")
    source: str = Field("", description="Where the number comes from.")

    @field_validator("name")
    @classmethod
    def _identifier(cls, v):
        if not v.replace("_", "").isalnum():
            raise ValueError("use letters, digits and '_'")
        return v


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

    p_missing_visit: float = Field(0.03, ge=0.0, lt=1.0, description="Chance a living patient misses the follow-up visit (outcomes assessed there are missing); ASSUMPTION (<1% sourced, plus margin) [6].")
    p_death: float = Field(0.014, ge=0.0, le=1.0, description="Death before the visit without the linked event (in-hospital figure) [6] SOURCED.")
    death_event: str | None = Field(None, description="Endpoint id of an event that changes the chance of death (the registered trial: its leak); none = no link.")
    p_death_after_event: float = Field(0.075, ge=0.0, le=1.0, description="Death before the visit after the linked event (in-hospital figure) [6] SOURCED.")
    horizon_days: float = Field(30.0, gt=0.0, le=3650.0, description="Day of the follow-up visit; deaths fall before it [0].")


def _family_section(value: Any):
    """Validate one ``[endpoints.<id>]`` section with the family its ``family`` key names."""
    if isinstance(value, StrictModel):
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError("endpoint", "an endpoint is a table with a 'family' key")
    name = value.get("family")
    if name not in ENDPOINT_FAMILIES:
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
    """A whole trial scenario: design, population, allocation, endpoints, follow-up, flow, run, sweep."""

    name: str = Field("scenario", min_length=1, max_length=120, description="Short identifier used in file names.")
    title: str = Field("", max_length=300, description="Human-readable title for reports.")
    description: str = Field("", max_length=5000, description="Free text for reports.")
    primary: str | None = Field(None, description="The primary endpoint (an analysed endpoint name); default: the first one declared.")
    design: Design = Field(default_factory=Design)
    allocation: AllocationConfig = Field(default_factory=AllocationConfig)
    population: Population = Field(default_factory=Population)
    endpoints: dict[str, EndpointSection] = Field(description="Endpoint sections by id; each names its family.")
    follow_up: FollowUp = Field(default_factory=FollowUp)
    flow: FlowConfig | None = Field(None, description="Patient flow (SimPy); absent = fixed arm sizes, no calendar.")
    run: Run = Field(default_factory=Run)
    sweep: Sweep | None = Field(None, description="Scenario grid; absent = one scenario.")

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if not all(c.isalnum() or c in "-_." for c in v):
            raise ValueError(f"use letters, digits, '-', '_' or '.', got {v!r}")
        return v

    @field_validator("endpoints")
    @classmethod
    def _endpoint_ids(cls, v):
        if not v:
            raise ValueError("declare at least one endpoint, e.g. [endpoints.crp] with family = \"plain_continuous\"")
        for cid in v:
            if not cid.replace("_", "").isalnum() or not cid[0].isalpha():
                raise ValueError(f"endpoint id {cid!r}: use a letter, then letters, digits and '_'")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        covariates = {c.name for c in self.population.covariates}
        names: dict[str, str] = {}
        analysed: list[str] = []  # endpoints with at least one test (the others are generated, not analysed)
        for cid, section in self.endpoints.items():
            for link in section.links():
                if link not in self.endpoints:
                    raise ValueError(f"endpoints.{cid} links to {link!r}, which is not an endpoint of this scenario "
                                     f"(declared: {', '.join(self.endpoints)})")
                if not self.endpoints[link].is_event:
                    raise ValueError(f"endpoints.{cid} links to {link!r}, which is not an event other endpoints can follow")
            for name in section.covariates_used():
                if name not in covariates:
                    raise ValueError(f"endpoints.{cid} uses covariate {name!r}, which population.covariates does not declare "
                                     f"(declared: {', '.join(sorted(covariates)) or 'none'})")
            for a in section.analysed(cid):
                if a.name in names:
                    raise ValueError(f"analysed endpoint {a.name!r} comes from both endpoints.{names[a.name]} and endpoints.{cid}")
                names[a.name] = cid
                if a.tests:
                    analysed.append(a.name)
                for test in a.tests:
                    if test not in TESTS:
                        raise ValueError(f"endpoints.{cid}: test {test!r} is not registered; allowed: {', '.join(TESTS.names())}")
                    spec = TESTS.get(test)
                    if a.kind not in spec.kinds:
                        allowed = [n for n, s in TESTS.items() if a.kind in s.kinds]
                        raise ValueError(f"endpoints.{cid}: test {test!r} does not apply to the {a.kind} endpoint {a.name!r}; "
                                         f"allowed: {', '.join(allowed)}")
                    if len(set(a.tests)) != len(a.tests):
                        raise ValueError(f"endpoints.{cid}: a test is listed twice for {a.name!r}: {list(a.tests)}")
                    largest = max(self.design.n_control, self.design.n_treatment)
                    if spec.max_n is not None and largest > spec.max_n:
                        raise ValueError(
                            f"endpoints.{cid} uses {test!r}, which runs for arms of up to {spec.max_n} patients, "
                            f"but an arm has {largest}; leave {test!r} out of its tests for this design")
        _check_cycles(self.endpoints)
        if not analysed:
            raise ValueError("no endpoint is analysed: every endpoint section has an empty list of tests")
        if self.primary is not None and self.primary not in analysed:
            raise ValueError(f"primary = {self.primary!r} is not an analysed endpoint; choose one of: {', '.join(analysed)}")
        if self.flow is not None and not any(getattr(s, "gives_stays", False) for s in self.endpoints.values()):
            raise ValueError("a [flow] needs an endpoint that gives the hospital stays (family 'duration', e.g. a length of "
                             f"stay); declared: {', '.join(f'{c} ({s.family})' for c, s in self.endpoints.items())}")
        if self.follow_up.death_event is not None:
            target = self.endpoints.get(self.follow_up.death_event)
            if target is None or not target.is_event:
                raise ValueError(f"follow_up.death_event = {self.follow_up.death_event!r} is not an event endpoint "
                                 f"(declared: {', '.join(self.endpoints)})")
        return self


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
