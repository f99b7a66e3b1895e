"""Boschloo's shipped cutoffs: they cover the usual designs, equal the search, and are never trusted unconfirmed."""
from __future__ import annotations

import numpy as np
import pytest

from trialsim.analysis import binary
from trialsim.analysis.binary import boschloo_cutoff, searched_cutoff
from trialsim.analysis.registry import BOSCHLOO_MAX_N
from trialsim.planning.model import n_treatment_for


@pytest.fixture(autouse=True)
def fresh_cutoffs():
    binary._boschloo_cutoff.cache_clear()
    yield
    binary._boschloo_cutoff.cache_clear()


def _level(alpha: float) -> float:
    return binary._reject_level(alpha)


def test_the_file_covers_the_usual_designs():
    shipped = binary._shipped_cutoffs()
    for alpha in (0.01, 0.025, 0.05, 0.1):
        assert all((n, n, _level(alpha)) in shipped for n in range(2, BOSCHLOO_MAX_N + 1)), alpha
    for ratio in (2.0, 0.5):
        sizes = [(n, n_treatment_for(n, ratio)) for n in range(2, BOSCHLOO_MAX_N + 1)]
        assert all((n1, n2, _level(0.05)) in shipped for n1, n2 in sizes if n2 <= BOSCHLOO_MAX_N), ratio
    # cutoffs are statistics at or above alpha / 2 (every statistic up to alpha / 2 rejects), at most 1
    values = np.array([c for (_, _, level), c in shipped.items()])
    levels = np.array([level for (_, _, level) in shipped])
    assert np.all(values >= levels / 2 * (1 - 1e-12)) and np.all(values <= 1.0)


@pytest.mark.parametrize("n1, n2, alpha", [
    (5, 5, 0.05), (17, 17, 0.05), (60, 60, 0.01), (150, 150, 0.05), (120, 240, 0.05), (301, 151, 0.05),
    (200, 200, 0.025), (333, 333, 0.1), (500, 500, 0.05),
])
def test_shipped_cutoffs_equal_the_search(n1, n2, alpha):
    """A sample of the file (scripts/boschloo_cutoffs.py --check recomputes all of it): the shipped value is the
    statistic the search finds here, and the confirmed hint gives the search's answer to the last bit."""
    searched = searched_cutoff(n1, n2, alpha)
    assert binary._shipped_cutoffs()[(n1, n2, _level(alpha))] == pytest.approx(searched, rel=1e-9)
    assert boschloo_cutoff(n1, n2, alpha) == searched


def test_a_confirmed_hint_saves_the_search(monkeypatch):
    def no_search(*args):
        raise AssertionError("searched although the shipped cutoff is right")

    monkeypatch.setattr(binary, "_search_cutoff", no_search)
    for n in (40, 250, 499):
        assert boschloo_cutoff(n, n, 0.05) == binary._shipped_cutoffs()[(n, n, _level(0.05))]


@pytest.mark.parametrize("n", [30, 180])
def test_a_wrong_hint_is_caught_and_the_search_decides(monkeypatch, n):
    """Hints one statistic too low or too high, between two statistics, below them all, or far off: each is
    refused by its two evaluations (or by not being a statistic), and the search's answer is used."""
    right = searched_cutoff(n, n, 0.05)
    stat = binary._less_statistic(n, n)
    level = _level(0.05)
    surely = level / 2 / (1 + binary._BOSCHLOO_TIE_RTOL)
    values = np.unique(stat.by_margin[(stat.by_margin > surely) & (stat.by_margin < np.inf)])
    i = int(np.searchsorted(values, right))
    # the neighbours that are not exact-arithmetic ties of the answer (those pass or fail with it)
    below = values[:i][values[:i] < right * (1 - 1e-9)][-1]
    above = values[i:][values[i:] > right * (1 + 1e-9)][0]
    searches = []
    search = binary._search_cutoff
    monkeypatch.setattr(binary, "_search_cutoff", lambda *a: searches.append(1) or search(*a))
    wrong = [below, above, (below + right) / 2, surely, 0.9]
    for k, hint in enumerate(wrong, start=1):
        monkeypatch.setattr(binary, "_shipped_cutoffs", lambda hint=hint: {(n, n, level): float(hint)})
        binary._boschloo_cutoff.cache_clear()
        assert boschloo_cutoff(n, n, 0.05) == right, hint
        assert len(searches) == k, hint  # the search ran: the hint was not trusted
