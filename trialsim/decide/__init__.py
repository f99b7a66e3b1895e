"""Per-trial decisions from per-trial statistics, before anything is summarised.

A decision rule turns a batch's :class:`~trialsim.analysis.registry.TrialStats` into named per-trial
outcomes for each (endpoint, test): today "reject" (the test rejects at alpha) and "covered" (its
confidence interval contains the true effect, where the model knows it). Multiplicity, Bayesian
go/no-go rules and interim looks register here next; each is one function and one registration.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from trialsim.analysis import registry as tests
from trialsim.registry import DECISION_RULES
from trialsim.simulate import TrialBatch

Key = tuple[str, str]


@dataclass
class Decisions:
    """Per-trial outcomes of every rule, ``outcomes[rule][(endpoint, test)] -> bool array (n_trials,)``,
    and the true effect each estimate is judged against (None where the model does not know it)."""

    outcomes: dict[str, dict[Key, np.ndarray]] = field(default_factory=dict)
    truth: dict[Key, float | None] = field(default_factory=dict)


Rule = Callable[[TrialBatch, Decisions], dict[Key, np.ndarray]]


def register(name: str, rule: Rule) -> Rule:
    return DECISION_RULES.register(name, rule)


def true_effects(batch: TrialBatch) -> dict[Key, float | None]:
    """The true value of each test's estimand under the batch's model."""
    model = batch.model
    return {(e, t): model.true_effect(e, tests.get(t).estimand) for (e, t) in batch.stats}


def reject_at_alpha(batch: TrialBatch, decisions: Decisions) -> dict[Key, np.ndarray]:
    """The test's own decision at the design's alpha (exact tests by their rejection regions)."""
    return {k: s.reject for k, s in batch.stats.items()}


def interval_covers(batch: TrialBatch, decisions: Decisions) -> dict[Key, np.ndarray]:
    """Whether each trial's confidence interval contains the true effect (only where it is known)."""
    keys = [k for k, s in batch.stats.items() if s.has_interval and decisions.truth.get(k) is not None]
    covered = tests.covers_many([batch.stats[k] for k in keys], [decisions.truth[k] for k in keys])
    return dict(zip(keys, covered))


def any_test_rejects(batch: TrialBatch, decisions: Decisions) -> dict[tuple[str, str, str], np.ndarray]:
    """Whether any of the batch's tests rejects in a trial, and how many, without adjustment.

    Under a null scenario the first is the family-wise error of every test the design runs, with the
    tests' real dependence (several days of one marker, several tests of one endpoint), which the
    independence formula overstates.
    """
    reject = decisions.outcomes.get("reject") or reject_at_alpha(batch, decisions)
    if not reject:
        return {}
    stacked = np.stack([np.asarray(r, dtype=bool) for r in reject.values()])
    return {("all_tests", "unadjusted", "any_reject"): stacked.any(axis=0),
            ("all_tests", "unadjusted", "n_reject"): stacked.sum(axis=0).astype(float)}


register("reject", reject_at_alpha)
register("covered", interval_covers)
register("any_test", any_test_rejects)


def decide(batch: TrialBatch, *, truth: dict[Key, float | None] | None = None) -> Decisions:
    """Apply every registered rule, in registration order, to one batch."""
    decisions = Decisions(truth=true_effects(batch) if truth is None else truth)
    for name, rule in DECISION_RULES.items():
        decisions.outcomes[name] = rule(batch, decisions)
    return decisions
