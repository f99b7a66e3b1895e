"""Summaries of the patient flow over simulated trials: durations, deadlines, who is analysable.

Work from a :class:`~trialsim.flow.run.FlowBatch` or from the per-trial arrays the engine keeps
(``TRIAL_FIELDS``, possibly as floats). The cumulative-enrolment curve needs per-patient times and
so only comes from a batch.
"""
from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from trialsim.config.flow import DAYS_PER_MONTH, FlowConfig
from trialsim.flow.run import FlowBatch
from trialsim.labels import num, pct, power_with_se

if TYPE_CHECKING:
    import pandas as pd

# quantile levels of the reported intervals: median, 80% and 95% central intervals
LEVELS = {"median": 0.5, "lower_80": 0.1, "upper_80": 0.9, "lower_95": 0.025, "upper_95": 0.975}

FLOW_LABELS = {
    "time_days": "Time since trial start (days)",
    "enrolled_cumulative": "Patients enrolled (cumulative)",
    "time_to_full_enrolment": "Full enrolment",
    "study_duration": "Last 1-month visit (study end)",
    "p_reached_target": "Target enrolment reached",
    "p_enrolled_by_deadline": "Full enrolment by the deadline",
    "p_finished_by_deadline": "Full enrolment and last visit by the deadline",
    "analysable_control": "Analysable patients, control",
    "analysable_treatment": "Analysable patients, treatment",
    "enrolled_control": "Enrolled patients, control",
    "enrolled_treatment": "Enrolled patients, treatment",
    "referred": "Referred",
    "screened": "Screened",
    "bed_days": "Bed-days",
    "readmissions": "Readmissions",
    "visit_window_misses": "Visits outside the window",
    "deadline": "Deadline",
    "planned_completion": "Planned completion",
    "target": "Target",
}


def _quantiles(values: np.ndarray, axis: int = 0) -> dict[str, np.ndarray]:
    # empirical quantiles without interpolation, so "never" (+inf) stays usable
    return {name: np.quantile(values, q, axis=axis, method="inverted_cdf") for name, q in LEVELS.items()}


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate and its standard error."""

    value: float
    mcse: float

    @classmethod
    def mean(cls, values: np.ndarray) -> "Estimate":
        values = np.asarray(values, dtype=float)
        se = float(np.std(values, ddof=1) / np.sqrt(values.size)) if values.size > 1 else float("nan")
        return cls(float(np.mean(values)), se)

    @classmethod
    def proportion(cls, hits: np.ndarray) -> "Estimate":
        p = float(np.mean(hits))
        return cls(p, float(np.sqrt(p * (1.0 - p) / np.size(hits))))


@dataclass(frozen=True)
class Quantiles:
    """Median and 80% / 95% central intervals (days); +inf = not reached in that share of trials."""

    median: float
    lower_80: float
    upper_80: float
    lower_95: float
    upper_95: float

    @classmethod
    def of(cls, values: np.ndarray) -> "Quantiles":
        return cls(**{k: float(v) for k, v in _quantiles(np.asarray(values, dtype=float)).items()})

    def text(self) -> str:
        def d(x):
            return "not reached" if np.isinf(x) else f"{x:.0f}"
        if np.isinf(self.median):
            return "median not reached (in under half of the trials)"
        median = f"{self.median:.0f} d ({self.median / DAYS_PER_MONTH:.1f} mo)"
        return f"median {median}; 80% {d(self.lower_80)} to {d(self.upper_80)}; 95% {d(self.lower_95)} to {d(self.upper_95)}"


@dataclass(frozen=True)
class FlowSummary:
    """Flow over ``n_trials`` simulated trials.

    ``time_to_full_enrolment`` counts a trial that never reached the target as +inf;
    "by the deadline" means on or before ``deadline_days``. The raw per-trial times are kept for
    figures; ``enrolment_curve`` (a tidy frame) only when built from a :class:`FlowBatch`.
    """

    n_trials: int
    deadline_days: float | None
    deadline_date: datetime.date | None
    deadline_label: str
    target: int | None
    time_to_full_enrolment: Quantiles
    study_duration: Quantiles
    p_reached_target: Estimate
    p_enrolled_by_deadline: Estimate | None
    p_finished_by_deadline: Estimate | None
    enrolled_control: Estimate
    enrolled_treatment: Estimate
    analysable_control: Estimate
    analysable_treatment: Estimate
    referred: Estimate
    screened: Estimate
    bed_days: Estimate
    readmissions: Estimate
    visit_window_misses: Estimate
    enrolment_days: np.ndarray
    study_duration_days: np.ndarray
    enrolment_curve: pd.DataFrame | None = None

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per (quantity, statistic) with value, Monte Carlo SE (NaN for quantiles) and label."""
        import pandas as pd  # noqa: PLC0415 - frames are for users; a run without them never imports pandas

        rows = []
        for name in ("time_to_full_enrolment", "study_duration"):
            for stat, value in getattr(self, name).__dict__.items():
                rows.append((name, stat, value, np.nan))
        for name in ("p_reached_target", "p_enrolled_by_deadline", "p_finished_by_deadline", "enrolled_control",
                     "enrolled_treatment", "analysable_control", "analysable_treatment", "referred", "screened",
                     "bed_days", "readmissions", "visit_window_misses"):
            est = getattr(self, name)
            if est is not None:
                rows.append((name, "probability" if name.startswith("p_") else "mean", est.value, est.mcse))
        frame = pd.DataFrame(rows, columns=["quantity", "statistic", "value", "mcse"])
        frame["label"] = frame["quantity"].map(FLOW_LABELS)
        frame["n_trials"] = self.n_trials
        frame["deadline_days"] = self.deadline_days
        return frame

    def _share(self, est: "Estimate") -> str:
        """A share of the trials with its Monte Carlo SE and count; a share of a few trials as the count says it
        ("0.002% (2 of 100,000)"), not rounded to 0.00%."""
        hits = round(est.value * self.n_trials)
        if 0 < est.value < 0.001:
            return f"{100 * est.value:.2g}% ({hits:,} of {self.n_trials:,})"
        return f"{power_with_se(est.value, est.mcse)} ({hits:,} of {self.n_trials:,})"

    def to_text(self) -> str:
        """A few lines for the console report."""
        def pm(est, digits=3):
            return f"{num(est.value, digits)} ± {num(est.mcse, 2)}"

        lines = [
            f"Time to full enrolment: {self.time_to_full_enrolment.text()}  "
            f"(target reached in {pct(self.p_reached_target.value)} of {self.n_trials:,} trials)",
            f"Study duration (last 1-month visit): {self.study_duration.text()}",
        ]
        if self.deadline_days is not None:
            when = f"{self.deadline_date} (day {self.deadline_days:g})" if self.deadline_date else f"day {self.deadline_days:g}"
            finished, enrolled = self.p_finished_by_deadline, self.p_enrolled_by_deadline
            lines.append(
                f"By {self.deadline_label.lower()} {when}: finished (full enrolment and last visit) "
                f"{self._share(finished)}; fully enrolled {self._share(enrolled)}"
            )
        lines += [
            f"Analysable per arm (mean ± MC SE): control {pm(self.analysable_control)}, treatment {pm(self.analysable_treatment)}"
            f"  of enrolled {pm(self.enrolled_control)} / {pm(self.enrolled_treatment)}",
            f"Referred {num(self.referred.value)}, screened {num(self.screened.value)} per trial; "
            f"bed-days {num(self.bed_days.value)}, readmissions {num(self.readmissions.value)}, "
            f"visits outside the window {num(self.visit_window_misses.value)}",
        ]
        return "\n".join(lines)


def enrolment_curve(batch: FlowBatch, days: np.ndarray | None = None) -> pd.DataFrame:
    """Quantiles over trials of the cumulative number enrolled at each day.

    Uses ``N(t) >= k  <=>  T_k <= t`` (T_k = day of the k-th enrolment): the q-quantile of N(t)
    steps up to k where t passes the (1 - q)-quantile of T_k. Exact, and costs one sort per trial.

    Returns
    -------
    pandas.DataFrame
        Columns ``time_days`` and the :data:`LEVELS` names.
    """
    import pandas as pd  # noqa: PLC0415 - see FlowSummary.to_frame

    times = np.concatenate([batch.t_enrolled["control"], batch.t_enrolled["treatment"]], axis=1)
    times = np.sort(np.where(np.isnan(times), np.inf, times), axis=1)[:, : batch.target]
    if days is None:  # up to a little past the day by which 97.5% of trials are fully enrolled (or the last enrolment)
        finite = times[np.isfinite(times)]
        last = np.quantile(times[:, -1], 0.975, method="inverted_cdf")
        end = float(last if np.isfinite(last) else (finite.max() if finite.size else 1.0))
        days = np.linspace(0.0, end * 1.15, 400)
    out = {"time_days": days}
    for name, q in LEVELS.items():
        t_k = np.quantile(times, 1.0 - q, axis=0, method="inverted_cdf")
        out[name] = np.searchsorted(t_k, days, side="right")
    return pd.DataFrame(out)


def summarise_flow(
    source: FlowBatch | Mapping[str, np.ndarray],
    *,
    flow: FlowConfig | None = None,
    deadline_days: float | None = None,
) -> FlowSummary:
    """Summarise the flow over simulated trials.

    Parameters
    ----------
    source : FlowBatch or mapping
        A batch, or the per-trial arrays by name (``TRIAL_FIELDS``; booleans may be 0/1 floats).
    flow : FlowConfig, optional
        Gives the default deadline (the planned completion date) and its date; taken from the batch
        when ``source`` is one.
    deadline_days : float, optional
        Deadline for "finished by" (days from the start). Default: ``flow.planned_duration_days``
        (122 days, 2024-08-31 to 2024-12-31, for the registered trial); None without a flow.

    Returns
    -------
    FlowSummary
    """
    batch = source if isinstance(source, FlowBatch) else None
    arrays = batch.per_trial() if batch is not None else source
    flow = flow if flow is not None else (batch.flow if batch is not None else None)
    deadline_label = FLOW_LABELS["deadline"]
    if deadline_days is None and flow is not None:
        deadline_days = flow.planned_duration_days
        deadline_label = FLOW_LABELS["planned_completion"]
    deadline_date = (flow.start_date + datetime.timedelta(days=deadline_days)
                     if flow is not None and deadline_days is not None and float(deadline_days).is_integer() else None)

    def get(name):
        return np.asarray(arrays[name], dtype=float)

    reached = get("reached_target").astype(bool)
    enrolment = np.where(reached, get("t_last_enrolment"), np.inf)
    duration = get("t_last_followup")
    p_enrolled = p_finished = None
    if deadline_days is not None:
        p_enrolled = Estimate.proportion(enrolment <= deadline_days)
        p_finished = Estimate.proportion(reached & (duration <= deadline_days))
    return FlowSummary(
        n_trials=reached.size,
        deadline_days=deadline_days,
        deadline_date=deadline_date,
        deadline_label=deadline_label,
        target=batch.target if batch is not None else None,
        time_to_full_enrolment=Quantiles.of(enrolment),
        study_duration=Quantiles.of(duration),
        p_reached_target=Estimate.proportion(reached),
        p_enrolled_by_deadline=p_enrolled,
        p_finished_by_deadline=p_finished,
        enrolled_control=Estimate.mean(get("n_enrolled_control")),
        enrolled_treatment=Estimate.mean(get("n_enrolled_treatment")),
        analysable_control=Estimate.mean(get("n_analysable_control")),
        analysable_treatment=Estimate.mean(get("n_analysable_treatment")),
        referred=Estimate.mean(get("n_referred")),
        screened=Estimate.mean(get("n_screened")),
        bed_days=Estimate.mean(get("bed_days")),
        readmissions=Estimate.mean(get("readmissions")),
        visit_window_misses=Estimate.mean(get("visit_window_misses")),
        enrolment_days=enrolment,
        study_duration_days=duration,
        enrolment_curve=enrolment_curve(batch) if batch is not None else None,
    )


def summarise_flow_arrays(arrays: Mapping[str, np.ndarray], flow: FlowConfig | None = None) -> str:
    """Console text of :func:`summarise_flow` for the engine's per-trial arrays."""
    return summarise_flow(arrays, flow=flow).to_text()
