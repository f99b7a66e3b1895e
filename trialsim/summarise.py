"""Bounded running sums per block of trials; blocks combine exactly, in block order.

Per (endpoint, test): rejections, valid trials, and the moments of the estimate and of its error
against the true effect, interval coverage and interval width. Per (endpoint, arm, statistic): the
moments of the per-arm estimates. Per outcome of every other decision rule (go/no-go, multiplicity,
interim looks ...): the count, sum and sum of squares of its per-trial values (a bool is 0/1, so its mean
is a probability). Nothing per trial survives here (that is ``--keep-trials``' job).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from trialsim.decide import Decisions
from trialsim.simulate import TrialBatch

# sums kept per (endpoint, test)
TEST_SUMS = ("rejects", "valid", "est_n", "est_sum", "est_sumsq", "err_sum", "err_sumsq", "covered", "coverable",
             "width_n", "width_sum", "width_sumsq")
# rules whose outcomes feed TEST_SUMS; every other rule's outcomes are summarised as OUTCOME_SUMS
TEST_RULES = ("reject", "covered")
OUTCOME_SUMS = ("n", "sum", "sumsq")


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
    outcomes: dict[str, dict[str, float]] = field(default_factory=dict)  # "rule|part|..." -> OUTCOME_SUMS

    def to_json(self) -> dict:
        return self.__dict__.copy()

    @classmethod
    def from_json(cls, data: dict) -> "BlockSummary":
        return cls(**data)

    def problem(self, *, n_sims: int, tests: set[str], flow_fields: tuple[str, ...] | None,
                estimates: set[str] | None = None, outcomes: set[str] | None = None) -> str | None:
        """Why this (stored) block cannot be trusted, or None: every key, type and count is checked.

        ``n_sims``: trials the block must hold; ``tests``: its "endpoint|test" keys; ``flow_fields``:
        the per-trial flow values it must carry (None: no flow); ``estimates`` and ``outcomes``: the names of its
        per-arm estimates and decision outcomes, where known.
        """
        if not _count(self.block) or not _count(self.n_sims) or self.n_sims != n_sims:
            return f"holds {self.n_sims!r} trials, not {n_sims}"
        if not isinstance(self.tests, dict) or set(self.tests) != tests:
            return "does not hold the scenario's (endpoint, test) pairs"
        for k, sums in self.tests.items():
            if not isinstance(sums, dict) or set(sums) != set(TEST_SUMS):
                return f"{k}: not every sum is there"
            if not all(_count(sums[name]) for name in ("rejects", "valid", "est_n", "covered", "coverable", "width_n")):
                return f"{k}: a count is not a whole number >= 0"
            if not all(_finite(sums[name]) for name in TEST_SUMS):
                return f"{k}: a sum is not a finite number"
            if not (sums["rejects"] <= sums["valid"] <= n_sims and sums["est_n"] <= n_sims
                    and sums["covered"] <= sums["coverable"] <= n_sims and sums["width_n"] <= n_sims
                    and sums["est_sumsq"] >= 0 <= sums["err_sumsq"] and sums["width_sumsq"] >= 0):
                return f"{k}: counts out of range (rejects {sums['rejects']}, valid {sums['valid']}, trials {n_sims})"
        names = self.est_count.keys() if isinstance(self.est_count, dict) else None
        if names is None or not isinstance(self.est_sum, dict) or not isinstance(self.est_sumsq, dict) \
                or self.est_sum.keys() != names or self.est_sumsq.keys() != names:
            return "per-arm estimates do not match"
        if estimates is not None and set(names) != estimates:
            return "its per-arm estimates are not the scenario's"
        if not all(_count(v) and v <= n_sims for v in self.est_count.values()) \
                or not all(_finite(v) for v in (*self.est_sum.values(), *self.est_sumsq.values())):
            return "per-arm estimates out of range"
        if not isinstance(self.outcomes, dict):
            return "decision outcomes missing"
        if outcomes is not None and set(self.outcomes) != outcomes:
            return "its decision outcomes are not the scenario's"
        for k, sums in self.outcomes.items():
            if not isinstance(sums, dict) or set(sums) != set(OUTCOME_SUMS) or not _count(sums["n"]) \
                    or sums["n"] > n_sims or not all(_finite(sums[name]) for name in OUTCOME_SUMS) or sums["sumsq"] < 0:
                return f"decision outcome {k}: sums missing or out of range"
        if flow_fields is None:
            return None if self.flow is None else "carries flow values but the scenario has no flow"
        if not isinstance(self.flow, dict) or set(self.flow) != set(flow_fields):
            return "flow values missing"
        if not all(isinstance(v, list) and len(v) == n_sims and all(_number(x) for x in v) for v in self.flow.values()):
            return "flow values are not one number per trial"
        return None


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _finite(x) -> bool:
    return _number(x) and np.isfinite(x)


def _count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def summarise_batch(batch: TrialBatch, decisions: Decisions, *, block: int) -> BlockSummary:
    return summarise_blocks(batch, decisions, [(block, batch.n_trials)])[0]


def summarise_blocks(batch: TrialBatch, decisions: Decisions, blocks: Sequence[tuple[int, int]]) -> list[BlockSummary]:
    """The summary of each block of a batch whose trials are consecutive blocks of one size (``(block, trials)``
    pairs, in order): each the bits of its trials summarised alone, every sum taken for all the blocks at once."""
    reject = decisions.outcomes.get("reject", {})
    covered = decisions.outcomes.get("covered", {})
    keys, stats = list(batch.stats), list(batch.stats.values())
    n = batch.n_trials
    m = blocks[0][1] if blocks else 0
    if any(size != m for _, size in blocks) or m * len(blocks) != n:
        raise ValueError(f"blocks of {[size for _, size in blocks]} trials in a batch of {n}: they must be equal and fill it")
    # Every (endpoint, test) at once, one row each: counts are whole numbers, and the sums of a row without a
    # non-finite value are numpy's pairwise sums of that contiguous row, the bits of the row's own sum.
    est = _rows([s.estimate for s in stats], n)
    ok = np.isfinite(est)
    rejected = _rows([reject.get(k, s.reject) for k, s in zip(keys, stats)], n, dtype=bool)
    valid = _rows([s.valid for s in stats], n, dtype=bool)
    truth = [decisions.truth.get(k) for k in keys]
    known = [i for i, t in enumerate(truth) if t is not None]
    err = est[known] - np.array([truth[i] for i in known])[:, None] if known else None
    cover = [i for i, k in enumerate(keys) if k in covered]
    hit = _rows([covered[keys[i]] for i in cover], n, dtype=bool) & ok[cover] if cover else None
    interval = [i for i, s in enumerate(stats) if s.has_interval]
    width = _rows([stats[i].widths() for i in interval], n) if interval else None
    values = np.stack(list(batch.arm_estimates.values())) if batch.arm_estimates else np.zeros((0, n))
    names = [key(*parts) for parts in batch.arm_estimates]
    seen = np.isfinite(values)
    clean = np.where(seen, values, 0.0)
    others = [(key(rule, *parts), np.asarray(v, dtype=float)) for rule, outcomes in decisions.outcomes.items()
              if rule not in TEST_RULES for parts, v in outcomes.items()]
    # each block's trials as a row of their own, (rows, blocks, trials): one call per quantity for all the blocks
    g = len(blocks)

    def by_block(x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[:-1] + (g, m))

    def counts(x: np.ndarray) -> np.ndarray:
        return np.add.reduce(by_block(x), axis=-1, dtype=np.int64)

    zeros = np.zeros((len(keys), g))
    ok_b = by_block(ok)
    est_n = counts(ok)
    est_sum, est_sumsq = _finite_sums(by_block(est), ok_b)
    err_sum, err_sumsq = zeros.copy(), zeros.copy()
    if known:
        err_sum[known], err_sumsq[known] = _finite_sums(by_block(err), ok_b[known])
    n_covered = np.zeros((len(keys), g), dtype=np.int64)
    if cover:
        n_covered[cover] = counts(hit)
    width_n, width_sum, width_sumsq = np.zeros((len(keys), g), dtype=np.int64), zeros.copy(), zeros.copy()
    if interval:
        finite = np.isfinite(width)
        width_n[interval] = counts(finite)
        width_sum[interval], width_sumsq[interval] = _finite_sums(by_block(width), by_block(finite))
    columns = (counts(rejected), counts(valid), est_n, est_sum, est_sumsq, err_sum, err_sumsq, n_covered, est_n,
               width_n, width_sum, width_sumsq)  # "coverable" is the finite estimates where the interval is judged
    columns = [c.T.tolist() for c in columns]  # [block][row]
    mine = by_block(clean)  # each row of a block summed as that block's own contiguous row
    arm_sums = (mine.sum(axis=-1).T.tolist(), (mine * mine).sum(axis=-1).T.tolist(), counts(seen).T.tolist())
    out = []
    for j, (block, _) in enumerate(blocks):
        part = slice(j * m, (j + 1) * m)
        summary = BlockSummary(block=block, n_sims=m)
        for i, k in enumerate(keys):
            sums = dict(zip(TEST_SUMS, (c[j][i] for c in columns)))
            if k not in covered:
                sums["coverable"] = 0
            summary.tests[key(*k)] = sums
        summary.est_sum, summary.est_sumsq, summary.est_count = (dict(zip(names, part[j])) for part in arm_sums)
        if batch.flow is not None:
            summary.flow = {name: v[part].tolist() for name, v in batch.flow.items()}
        for name, v in others:
            x = v[..., part]
            x = x[np.isfinite(x)]
            summary.outcomes[name] = {"n": int(x.size), "sum": float(x.sum()), "sumsq": float((x * x).sum())}
        out.append(summary)
    return out


def _rows(values: list, n: int, dtype=float) -> np.ndarray:
    """Per-trial arrays as the rows of one C-contiguous ``(len(values), n)`` array."""
    out = np.empty((len(values), n), dtype=dtype)
    for row, v in zip(out, values):
        row[...] = v
    return out


def _finite_sums(x: np.ndarray, finite: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``x`` (the last axis): the sum and the sum of squares of its values where ``finite``, each summed as
    the compressed row ``x[i][finite[i]]`` is summed; rows without a non-finite value in one call each (as a
    contiguous copy: a row of any layout is summed as its contiguous values are)."""
    total, total_sq = np.empty(x.shape[:-1]), np.empty(x.shape[:-1])
    whole = finite.all(axis=-1)
    if whole.any():
        rows = x[whole]
        total[whole], total_sq[whole] = rows.sum(axis=-1), (rows * rows).sum(axis=-1)
    for i in zip(*np.nonzero(~whole)):
        kept = x[i][finite[i]]
        total[i], total_sq[i] = kept.sum(), (kept * kept).sum()
    return total, total_sq


@dataclass
class Totals:
    """Blocks of one scenario folded in block order: running sums, flat in the number of trials.

    ``add`` takes the blocks one at a time, in block order (the float sums are then identical for any
    ``n_jobs`` and chunking); nothing per trial is kept except the flow's per-trial values
    (``flow``: 8 bytes x 16 fields per trial, needed for its quantiles and ``flow_trials.csv``).
    """

    n_sims: int = 0
    tests: dict[str, dict[str, float]] = field(default_factory=dict)
    est_sum: dict[str, float] = field(default_factory=dict)
    est_sumsq: dict[str, float] = field(default_factory=dict)
    est_count: dict[str, int] = field(default_factory=dict)
    flow: dict[str, np.ndarray] | None = None
    outcomes: dict[str, dict[str, float]] = field(default_factory=dict)
    block_size: int | None = None  # trials per block of the layout that produced these sums (None: unknown)
    capacity: int | None = field(default=None, repr=False)  # trials expected: the flow arrays are allocated once

    def add(self, block: BlockSummary) -> None:
        """Add the next block (the caller keeps block order)."""
        if self.n_sims and (block.tests.keys() != self.tests.keys() or block.est_sum.keys() != self.est_sum.keys()
                            or block.outcomes.keys() != self.outcomes.keys()):
            raise ValueError(f"block {block.block} has other endpoints, tests or decisions than the blocks before it")
        for k, sums in block.tests.items():
            acc = self.tests.setdefault(k, {name: 0 for name in TEST_SUMS})
            for name in TEST_SUMS:
                acc[name] += sums[name]
        for k, sums in block.outcomes.items():
            acc = self.outcomes.setdefault(k, {name: 0 for name in OUTCOME_SUMS})
            for name in OUTCOME_SUMS:
                acc[name] += sums[name]
        for attr in ("est_sum", "est_sumsq", "est_count"):
            out = getattr(self, attr)
            for k, v in getattr(block, attr).items():
                out[k] = out.get(k, 0) + v
        if block.flow is not None:
            self._add_flow(block)
        self.n_sims += block.n_sims

    def _add_flow(self, block: BlockSummary) -> None:
        end = self.n_sims + block.n_sims
        if self.flow is None:
            size = max(self.capacity or 0, end)
            self.flow = {name: np.empty(size) for name in block.flow}
        for name, values in block.flow.items():
            column = self.flow[name]
            if column.size < end:  # more trials than announced: grow geometrically
                column = np.concatenate([column[:self.n_sims], np.empty(max(end, 2 * column.size) - self.n_sims)])
                self.flow[name] = column
            column[self.n_sims:end] = np.asarray(values, dtype=float)

    def finished(self) -> "Totals":
        """The totals with the flow arrays cut to the trials added."""
        if self.flow is not None:
            self.flow = {name: column[:self.n_sims] for name, column in self.flow.items()}
        return self

    @classmethod
    def combine(cls, blocks: list[BlockSummary]) -> "Totals":
        """All blocks at once (sorted into block order first)."""
        totals = cls(capacity=sum(b.n_sims for b in blocks))
        for b in sorted(blocks, key=lambda b: b.block):
            totals.add(b)
        return totals.finished()


TRIAL_COLUMNS = ("trial", "endpoint", "test", "pvalue", "estimate", "ci_low", "ci_high", "reject", "covered")


def trial_table(batch: TrialBatch, decisions: Decisions, *, first_trial: int,
                columns: Sequence[str] = TRIAL_COLUMNS) -> dict[str, np.ndarray]:
    """The per-trial table of a batch: one row per trial x endpoint x test (columns as arrays).

    ``trial`` is the trial's index in the run (block start + row), the key ``trialsim replay`` takes.
    ``covered`` is NaN where the true effect is not known. ``columns``: the columns wanted (of
    :data:`TRIAL_COLUMNS`); planning's searches read only which trials reject, and the others cost (the
    intervals' t quantiles above all) a fifth of a small trial's block.
    """
    n = batch.n_trials
    trial = np.arange(first_trial, first_trial + n)
    cols: dict[str, list] = {c: [] for c in TRIAL_COLUMNS if c in columns}
    covered = decisions.outcomes.get("covered", {})
    reject = decisions.outcomes.get("reject", {})
    intervals = "ci_low" in cols or "ci_high" in cols
    for (e, t), s in batch.stats.items():
        low, high = s.ci() if intervals else (None, None)  # once for both bounds: the interval is the dear column
        row = {
            "trial": lambda: trial,
            "endpoint": lambda: np.full(n, e, dtype=object),
            "test": lambda: np.full(n, t, dtype=object),
            "pvalue": lambda: np.asarray(s.pvalue, dtype=float),
            "estimate": lambda: np.asarray(s.estimate, dtype=float),
            "ci_low": lambda: np.asarray(low, dtype=float),
            "ci_high": lambda: np.asarray(high, dtype=float),
            "reject": lambda: np.asarray(reject.get((e, t), s.reject), dtype=bool),
            "covered": lambda: np.full(n, np.nan) if covered.get((e, t)) is None else covered[(e, t)].astype(float),
        }
        for c, values in cols.items():
            values.append(row[c]())
    return {c: np.concatenate(v) if v else np.array([]) for c, v in cols.items()}
