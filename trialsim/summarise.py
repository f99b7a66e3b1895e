"""Bounded running sums per block of trials; blocks combine exactly, in block order.

Per (endpoint, test): rejections, valid trials, and the moments of the estimate and of its error
against the true effect, and interval coverage. Per (endpoint, arm, statistic): the moments of the
per-arm estimates. Nothing per trial survives here (that is ``--keep-trials``' job).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trialsim.decide import Decisions
from trialsim.simulate import TrialBatch

# sums kept per (endpoint, test)
TEST_SUMS = ("rejects", "valid", "est_n", "est_sum", "est_sumsq", "err_sum", "err_sumsq", "covered", "coverable")


def key(*parts: str) -> str:
    return "|".join(parts)


@dataclass
class BlockSummary:
    """Sums over one block of trials: enough to combine blocks exactly, in block order."""

    block: int
    n_sims: int
    tests: dict[str, dict[str, float]] = field(default_factory=dict)  # "endpoint|test" -> sums
    est_sum: dict[str, float] = field(default_factory=dict)
    est_sumsq: dict[str, float] = field(default_factory=dict)
    est_count: dict[str, int] = field(default_factory=dict)
    flow: dict[str, list[float]] | None = None

    def to_json(self) -> dict:
        return self.__dict__.copy()

    @classmethod
    def from_json(cls, data: dict) -> "BlockSummary":
        return cls(**data)


def summarise_batch(batch: TrialBatch, decisions: Decisions, *, block: int) -> BlockSummary:
    out = BlockSummary(block=block, n_sims=batch.n_trials)
    reject = decisions.outcomes.get("reject", {})
    covered = decisions.outcomes.get("covered", {})
    for k, s in batch.stats.items():
        est = np.asarray(s.estimate, dtype=float)
        ok = np.isfinite(est)
        kept = est[ok]
        sums = {"rejects": int(np.count_nonzero(reject.get(k, s.reject))), "valid": int(np.count_nonzero(s.valid)),
                "est_n": int(kept.size), "est_sum": float(kept.sum()), "est_sumsq": float((kept * kept).sum()),
                "err_sum": 0.0, "err_sumsq": 0.0, "covered": 0, "coverable": 0}
        truth = decisions.truth.get(k)
        if truth is not None:
            err = kept - truth
            sums["err_sum"], sums["err_sumsq"] = float(err.sum()), float((err * err).sum())
        if k in covered:
            sums["covered"] = int(np.count_nonzero(covered[k] & ok))
            sums["coverable"] = int(kept.size)
        out.tests[key(*k)] = sums
    values = np.stack(list(batch.arm_estimates.values())) if batch.arm_estimates else np.zeros((0, batch.n_trials))
    ok = np.isfinite(values)
    count = np.count_nonzero(ok, axis=1)
    clean = np.where(ok, values, 0.0)
    total, total_sq = clean.sum(axis=1), (clean * clean).sum(axis=1)
    names = [key(*parts) for parts in batch.arm_estimates]
    out.est_sum = dict(zip(names, total.tolist()))
    out.est_sumsq = dict(zip(names, total_sq.tolist()))
    out.est_count = dict(zip(names, count.tolist()))
    if batch.flow is not None:
        out.flow = {name: values.tolist() for name, values in batch.flow.items()}
    return out


@dataclass
class Totals:
    """Blocks of one scenario combined in block order."""

    n_sims: int
    tests: dict[str, dict[str, float]]
    est_sum: dict[str, float]
    est_sumsq: dict[str, float]
    est_count: dict[str, int]
    flow: dict[str, np.ndarray] | None

    @classmethod
    def combine(cls, blocks: list[BlockSummary]) -> "Totals":
        blocks = sorted(blocks, key=lambda b: b.block)
        tests: dict[str, dict[str, float]] = {}
        for b in blocks:
            for k, sums in b.tests.items():
                acc = tests.setdefault(k, {name: 0 for name in TEST_SUMS})
                for name in TEST_SUMS:
                    acc[name] += sums[name]

        def total(attr: str) -> dict:
            out: dict = {}
            for b in blocks:
                for k, v in getattr(b, attr).items():
                    out[k] = out.get(k, 0) + v
            return out

        flow = None
        if blocks and blocks[0].flow is not None:
            flow = {name: np.concatenate([np.asarray(b.flow[name], dtype=float) for b in blocks]) for name in blocks[0].flow}
        return cls(sum(b.n_sims for b in blocks), tests, total("est_sum"), total("est_sumsq"), total("est_count"), flow)


TRIAL_COLUMNS = ("trial", "endpoint", "test", "pvalue", "estimate", "ci_low", "ci_high", "reject", "covered")


def trial_table(batch: TrialBatch, decisions: Decisions, *, first_trial: int) -> dict[str, np.ndarray]:
    """The per-trial table of a batch: one row per trial x endpoint x test (columns as arrays).

    ``trial`` is the trial's index in the run (block start + row), the key ``trialsim replay`` takes.
    ``covered`` is NaN where the true effect is not known.
    """
    n = batch.n_trials
    trial = np.arange(first_trial, first_trial + n)
    cols: dict[str, list] = {c: [] for c in TRIAL_COLUMNS}
    covered = decisions.outcomes.get("covered", {})
    reject = decisions.outcomes.get("reject", {})
    for (e, t), s in batch.stats.items():
        low, high = s.ci()
        cols["trial"].append(trial)
        cols["endpoint"].append(np.full(n, e, dtype=object))
        cols["test"].append(np.full(n, t, dtype=object))
        cols["pvalue"].append(np.asarray(s.pvalue, dtype=float))
        cols["estimate"].append(np.asarray(s.estimate, dtype=float))
        cols["ci_low"].append(np.asarray(low, dtype=float))
        cols["ci_high"].append(np.asarray(high, dtype=float))
        cols["reject"].append(np.asarray(reject.get((e, t), s.reject), dtype=bool))
        cov = covered.get((e, t))
        cols["covered"].append(np.full(n, np.nan) if cov is None else cov.astype(float))
    return {c: np.concatenate(v) if v else np.array([]) for c, v in cols.items()}
