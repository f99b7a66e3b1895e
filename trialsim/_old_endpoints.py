"""The endpoints a scenario analyses, with their family, scale, label and tests (one registry)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trialsim.config.schema import Scenario

Family = Literal["binary", "continuous", "ordinal"]


@dataclass(frozen=True)
class Endpoint:
    """One analysed endpoint. Values of ``scale == "log"`` endpoints are stored as natural logs."""

    name: str
    family: Family
    label: str
    unit: str
    scale: Literal["identity", "log"]
    tests: tuple[str, ...]
    primary: bool = False
    group: str = ""


def endpoints(scenario: Scenario) -> tuple[Endpoint, ...]:
    """Every endpoint of ``scenario``, primary first, in the order results are reported."""
    out = [
        Endpoint("leak_1m", "binary", "Anastomotic leak within 1 month", "patients", "identity",
                 scenario.leak.tests, primary=True, group="leak"),
    ]
    cyto = scenario.cytokines
    for m in cyto.markers:
        pretty = f"{m.cytokine.upper().replace('IL6', 'IL-6').replace('TNF', 'TNF-alpha')} ({m.compartment})"
        if "per_day" in cyto.summaries:
            for d in cyto.days:
                out.append(Endpoint(f"{m.name}_pod{d}", "continuous", f"{pretty}, POD {d}", m.unit, "log", cyto.tests, group="cytokines"))
        if "mean_log" in cyto.summaries:
            out.append(Endpoint(f"{m.name}_mean_log", "continuous", f"{pretty}, mean of log over POD {', '.join(map(str, cyto.days))}",
                                m.unit, "log", cyto.tests, group="cytokines"))
    colo = scenario.colonoscopy
    out.append(Endpoint("colonoscopy_grade", "ordinal", "Anastomosis grade at 1-month colonoscopy", "grade", "identity", colo.tests, group="colonoscopy"))
    out.append(Endpoint("colonoscopy_abnormal", "binary", f"Colonoscopy {colo.abnormal_from} or worse", "patients", "identity",
                        colo.dichotomised_tests, group="colonoscopy"))
    out.append(Endpoint("colonoscopy_worse_than_baseline", "binary", "Colonoscopy worse than baseline", "patients", "identity",
                        colo.dichotomised_tests, group="colonoscopy"))
    out.append(Endpoint("los_days", "continuous", "Postoperative length of stay", "days", "log", scenario.los.tests, group="stay"))
    return tuple(e for e in out if e.tests)


def endpoint_names(scenario: Scenario) -> list[str]:
    return [e.name for e in endpoints(scenario)]


def primary(scenario: Scenario) -> Endpoint:
    return endpoints(scenario)[0]
