"""Multiplicity: one family of (endpoint, test) hypotheses, each trial's rejections adjusted together.

The ``[multiplicity]`` section names a method and the family (``"endpoint:test"`` members; default:
the first test of every analysed endpoint, the primary first). Per trial, the members' p-values are
stacked ``(n_members, n_trials)`` and each method decides every trial at once by sorting along the
members' axis. A p-value that is not a number (a test without analysable data) counts as 1: that
hypothesis is not rejected, which can only lower the rejections of the others.

Outcomes of the rule ``"multiplicity"``:

* ``(endpoint, test, "reject_<method>")``: the member's adjusted rejection;
* ``("family", method, "any_reject")``: at least one rejection (disjunctive power; under the global
  null, the family-wise error rate), ``"all_reject"`` (conjunctive power), ``"n_reject"`` (mean number);
* ``("family", "unadjusted", ...)``: the same from each test's own decision at alpha, to show what
  the adjustment costs and what it protects.

Methods are a registry (:data:`trialsim.registry.MULTIPLICITY_METHODS`): one function and one
:func:`register_method` call each.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from trialsim.decide import Decisions, register
from trialsim.registry import MULTIPLICITY_METHODS
from trialsim.simulate import TrialBatch


@dataclass(frozen=True)
class Method:
    """A multiplicity adjustment: ``reject(p, alpha)`` maps p-values ``(m, n_trials)`` (in the family's
    order, no NaN) to adjusted rejections of the same shape."""

    name: str
    label: str
    reference: str
    reject: Callable[[np.ndarray, float], np.ndarray]


def register_method(method: Method) -> Method:
    return MULTIPLICITY_METHODS.register(method.name, method)


def _thresholds(m: int, alpha: float) -> np.ndarray:
    """Holm's and Hochberg's thresholds alpha / m, alpha / (m - 1), ..., alpha for the sorted p-values."""
    return (alpha / np.arange(m, 0, -1, dtype=float))[:, None]


def _sorted(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(p, axis=0, kind="stable")
    return order, np.take_along_axis(p, order, axis=0)


def _unsort(order: np.ndarray, decided: np.ndarray) -> np.ndarray:
    out = np.empty_like(decided)
    np.put_along_axis(out, order, decided, axis=0)
    return out


def bonferroni(p: np.ndarray, alpha: float) -> np.ndarray:
    """Reject where ``p <= alpha / m``."""
    return p <= alpha / p.shape[0]


def holm(p: np.ndarray, alpha: float) -> np.ndarray:
    """Step-down: reject the sorted hypotheses while ``p_(j) <= alpha / (m - j + 1)``; stop at the first that is not."""
    order, ps = _sorted(p)
    passed = np.logical_and.accumulate(ps <= _thresholds(p.shape[0], alpha), axis=0)
    return _unsort(order, passed)


def hochberg(p: np.ndarray, alpha: float) -> np.ndarray:
    """Step-up: find the largest ``j`` with ``p_(j) <= alpha / (m - j + 1)`` and reject the ``j`` smallest."""
    order, ps = _sorted(p)
    ok = ps <= _thresholds(p.shape[0], alpha)
    # reject j when any hypothesis at or after j in the sorted order passes its own threshold
    passed = np.logical_or.accumulate(ok[::-1], axis=0)[::-1]
    return _unsort(order, passed)


def fixed_sequence(p: np.ndarray, alpha: float) -> np.ndarray:
    """In the family's order, each at full alpha, until the first non-rejection."""
    return np.logical_and.accumulate(p <= alpha, axis=0)


register_method(Method("bonferroni", "Bonferroni", "Bonferroni; Dunn 1961, J Am Stat Assoc 56:52", bonferroni))
register_method(Method("holm", "Holm", "Holm 1979, Scand J Stat 6:65", holm))
register_method(Method("hochberg", "Hochberg", "Hochberg 1988, Biometrika 75:800 (valid for independent or positively "
                                               "dependent tests: Sarkar 1998, Ann Stat 26:494)", hochberg))
register_method(Method("fixed_sequence", "Fixed sequence", "Maurer, Hothorn & Lehmacher 1995; Westfall & Krishen 2001, "
                                                           "J Stat Plan Inference 99:25", fixed_sequence))


def family_members(model) -> tuple[tuple[str, str], ...]:
    """The family's (endpoint, test) pairs in testing order: the configured ones, or the first test of every
    analysed endpoint (primary first)."""
    config = model.scenario.multiplicity
    if config is not None and config.family is not None:
        return tuple(tuple(member.split(":", 1)) for member in config.family)
    return tuple((a.name, a.tests[0]) for a in model.analysed)


def pvalues(batch: TrialBatch, members) -> np.ndarray:
    """The members' p-values stacked ``(m, n_trials)``; not a number -> 1 (never rejected)."""
    p = np.stack([np.asarray(batch.stats[k].pvalue, dtype=float) for k in members])
    return np.where(np.isnan(p), 1.0, p)


def multiplicity(batch: TrialBatch, decisions: Decisions) -> dict[tuple[str, str, str], np.ndarray]:
    """Adjusted rejections of the scenario's family and its family-level outcomes ({} without [multiplicity])."""
    config = batch.model.scenario.multiplicity
    if config is None:
        return {}
    method = MULTIPLICITY_METHODS.get(config.method)
    members = family_members(batch.model)
    alpha = batch.model.scenario.design.alpha
    p = pvalues(batch, members)
    adjusted = method.reject(p, alpha)
    out = {(e, t, f"reject_{method.name}"): adjusted[i] for i, (e, t) in enumerate(members)}
    own = np.stack([np.asarray(batch.stats[k].reject, dtype=bool) for k in members])  # each test's own decision at alpha
    for name, rejected in ((method.name, adjusted), ("unadjusted", own)):
        out[("family", name, "any_reject")] = rejected.any(axis=0)
        out[("family", name, "all_reject")] = rejected.all(axis=0)
        out[("family", name, "n_reject")] = rejected.sum(axis=0).astype(float)
    return out


register("multiplicity", multiplicity)
