"""Run every endpoint's tests and estimates on one batch of simulated trials (vectorised over trials)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trialsim.analysis.binary import binary_test
from trialsim.analysis.continuous import mann_whitney, welch_t
from trialsim.config.schema import Scenario
from trialsim.endpoints import Endpoint, endpoints


@dataclass(frozen=True)
class TestOutcome:
    """Per-trial p-values and decisions of one test on one endpoint; arrays of shape (n_sims,)."""

    pvalue: np.ndarray
    reject: np.ndarray


def run_test(endpoint: Endpoint, test: str, x_control: np.ndarray, x_treatment: np.ndarray, *, alpha: float) -> TestOutcome:
    """One test along the patient axis. Endpoints on the log scale are already logged."""
    if endpoint.family == "binary":
        res = binary_test(test, x_control, x_treatment, alpha=alpha)
        return TestOutcome(res.pvalue, res.reject)
    if test == "welch_log":
        p = welch_t(x_control, x_treatment).pvalue
    elif test == "mann_whitney":
        p = mann_whitney(x_control, x_treatment, method="auto").pvalue
    else:
        raise ValueError(f"test {test!r} does not apply to {endpoint.family} endpoint {endpoint.name!r}")
    with np.errstate(invalid="ignore"):
        reject = np.asarray(p <= alpha) & ~np.isnan(p)
    return TestOutcome(p, reject)


def analyse(scenario: Scenario, control: dict[str, np.ndarray], treatment: dict[str, np.ndarray]) -> dict[tuple[str, str], TestOutcome]:
    """Every (endpoint, test) of the scenario on observed endpoint arrays of each arm."""
    alpha = scenario.design.alpha
    return {
        (e.name, t): run_test(e, t, control[e.name], treatment[e.name], alpha=alpha)
        for e in endpoints(scenario)
        for t in e.tests
    }


ESTIMATE_KINDS = {"binary": "rate", "continuous": "geometric_mean", "ordinal": "mean_grade"}


def _arm_estimate(endpoint: Endpoint, x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"), _quiet():
        if endpoint.name == "los_days":
            return np.exp(np.nanmedian(x, axis=-1))
        m = np.nanmean(x, axis=-1)
        return np.exp(m) if endpoint.scale == "log" else m


class _quiet:
    """Silence numpy's 'mean of empty slice' warnings: an arm with no data gives NaN on purpose."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def estimate_kind(endpoint: Endpoint) -> str:
    return "median" if endpoint.name == "los_days" else ESTIMATE_KINDS[endpoint.family]


def estimates(scenario: Scenario, control: dict[str, np.ndarray], treatment: dict[str, np.ndarray]) -> dict[tuple[str, str, str], np.ndarray]:
    """Per-trial estimates: (endpoint, arm, statistic) -> array (n_sims,), NaN where not estimable.

    Arms give the rate, geometric mean, median stay or mean grade; ``contrast`` gives the risk
    difference (treatment - control) for binary endpoints and the ratio of geometric means for
    log-scale endpoints. ``n_analysable`` per arm is included so dropout shows in the summary.
    """
    out: dict[tuple[str, str, str], np.ndarray] = {}
    for e in endpoints(scenario):
        kind = estimate_kind(e)
        est_c = _arm_estimate(e, control[e.name])
        est_t = _arm_estimate(e, treatment[e.name])
        out[(e.name, "control", kind)] = est_c
        out[(e.name, "treatment", kind)] = est_t
        if e.family == "binary":
            out[(e.name, "contrast", "risk_difference")] = est_t - est_c
            out[(e.name, "control", "any_event")] = (est_c > 0).astype(float)
            out[(e.name, "treatment", "any_event")] = (est_t > 0).astype(float)
        elif e.scale == "log":
            out[(e.name, "contrast", "ratio")] = est_t / est_c
        out[(e.name, "control", "n_analysable")] = np.sum(~np.isnan(control[e.name]), axis=-1).astype(float)
        out[(e.name, "treatment", "n_analysable")] = np.sum(~np.isnan(treatment[e.name]), axis=-1).astype(float)
    return out
