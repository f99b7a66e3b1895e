"""Tests for trialsim.analysis.continuous: t tests and Mann-Whitney, vectorised over trials."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from trialsim.analysis.analytic import t_test_power
from trialsim.analysis.continuous import mann_whitney, student_t, welch_t

ALPHA = 0.05


def with_missing(rng, x, p_missing):
    x = np.array(x, dtype=float)
    x[rng.random(x.shape) < p_missing] = np.nan
    return x


def observed(row):
    return row[~np.isnan(row)]


@pytest.fixture(scope="module")
def continuous_trials():
    """200 trials, 10 vs 12 patients, unequal variances, 15% missing, some tiny arms."""
    rng = np.random.default_rng(11)
    xc = with_missing(rng, rng.normal(0.0, 1.0, (200, 10)), 0.15)
    xt = with_missing(rng, rng.normal(0.7, 2.0, (200, 12)), 0.15)
    xc[0, 1:] = np.nan  # one analysable control patient
    xt[1, :] = np.nan  # no analysable treatment patient
    xc[2, 2:] = np.nan  # exactly two
    return xc, xt


@pytest.fixture(scope="module")
def ordinal_trials():
    """200 trials of a 4-category grade (many ties), 10 vs 10, 10% missing."""
    rng = np.random.default_rng(12)
    xc = with_missing(rng, rng.choice(4, (200, 10), p=[0.4, 0.3, 0.2, 0.1]), 0.1)
    xt = with_missing(rng, rng.choice(4, (200, 10), p=[0.2, 0.3, 0.3, 0.2]), 0.1)
    return xc, xt


# --------------------------------------------------------------------------------------------
# equality with scipy, trial by trial
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("func, equal_var", [(welch_t, False), (student_t, True)])
@pytest.mark.parametrize("data", ["continuous_trials", "ordinal_trials"])
def test_t_tests_equal_scipy_per_trial(func, equal_var, data, request, loops):
    xc, xt = request.getfixturevalue(data)
    res = func(xc, xt)
    for i in range(xc.shape[0]):
        a, b = observed(xc[i]), observed(xt[i])
        assert res.n_control[i] == a.size and res.n_treatment[i] == b.size
        if a.size < 2 or b.size < 2:
            assert np.isnan(res.pvalue[i]) and np.isnan(res.statistic[i])
            continue
        ref = stats.ttest_ind(a, b, equal_var=equal_var)
        assert res.statistic[i] == pytest.approx(ref.statistic, rel=1e-10, abs=1e-12)
        assert res.df[i] == pytest.approx(ref.df, rel=1e-10)
        assert res.pvalue[i] == pytest.approx(ref.pvalue, rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("func, equal_var", [(welch_t, False), (student_t, True)])
def test_t_tests_with_constant_arms_follow_scipy(func, equal_var, loops):
    xc = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    xt = np.array([[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]])
    res = func(xc, xt)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        refs = [stats.ttest_ind(xc[i], xt[i], equal_var=equal_var) for i in range(2)]
    np.testing.assert_equal(res.statistic, [r.statistic for r in refs])  # -inf, then nan
    np.testing.assert_equal(res.pvalue, [r.pvalue for r in refs])  # 0, then nan


@pytest.mark.parametrize("data", ["continuous_trials", "ordinal_trials"])
def test_mann_whitney_asymptotic_equals_scipy_per_trial(data, request, loops):
    xc, xt = request.getfixturevalue(data)
    res = mann_whitney(xc, xt, method="asymptotic")
    assert not res.exact.any()
    for i in range(xc.shape[0]):
        a, b = observed(xc[i]), observed(xt[i])
        if a.size == 0 or b.size == 0:
            assert np.isnan(res.pvalue[i]) and np.isnan(res.statistic[i])
            continue
        ref = stats.mannwhitneyu(a, b, method="asymptotic", use_continuity=True)
        assert res.statistic[i] == ref.statistic
        assert res.pvalue[i] == pytest.approx(ref.pvalue, rel=1e-12, abs=1e-15)
    assert np.all(np.isnan(res.df))


def test_mann_whitney_exact_equals_scipy_per_trial(continuous_trials, loops):
    xc, xt = continuous_trials
    res = mann_whitney(xc, xt, method="exact")
    for i in range(xc.shape[0]):
        a, b = observed(xc[i]), observed(xt[i])
        if a.size == 0 or b.size == 0:
            assert np.isnan(res.pvalue[i]) and not res.exact[i]
            continue
        assert res.exact[i]
        ref = stats.mannwhitneyu(a, b, method="exact")
        assert res.statistic[i] == ref.statistic
        assert res.pvalue[i] == pytest.approx(ref.pvalue, rel=1e-12)


def test_mann_whitney_exact_at_the_largest_auto_size_equals_scipy():
    rng = np.random.default_rng(13)
    xc, xt = rng.normal(size=(4, 50)), rng.normal(0.3, 1, size=(4, 50))
    res = mann_whitney(xc, xt, method="auto")
    assert res.exact.all()
    for i in range(4):
        ref = stats.mannwhitneyu(xc[i], xt[i], method="exact")
        assert res.pvalue[i] == pytest.approx(ref.pvalue, rel=1e-10)


def test_mann_whitney_auto_is_exact_without_ties_up_to_50_per_arm(continuous_trials, ordinal_trials):
    rng = np.random.default_rng(14)
    xc = np.concatenate([continuous_trials[0], np.full((200, 50), np.nan)], axis=1)
    xt = continuous_trials[1].copy()
    xc[:5, :60] = rng.normal(size=(5, 60))  # 60 analysable controls: beyond the exact limit
    res = mann_whitney(xc, xt, method="auto")
    defined = (res.n_control > 0) & (res.n_treatment > 0)
    np.testing.assert_array_equal(res.exact, defined & (res.n_control <= 50))
    for i in range(8):
        a, b = observed(xc[i]), observed(xt[i])
        if a.size and b.size:
            method = "exact" if res.exact[i] else "asymptotic"
            assert res.pvalue[i] == pytest.approx(stats.mannwhitneyu(a, b, method=method).pvalue, rel=1e-12)
    # ordinal grades are full of ties: always asymptotic, and identical to method="asymptotic"
    ordinal = mann_whitney(*ordinal_trials, method="auto")
    assert not ordinal.exact.any()
    np.testing.assert_array_equal(ordinal.pvalue, mann_whitney(*ordinal_trials, method="asymptotic").pvalue)


def test_mann_whitney_exact_refuses_ties_and_bad_methods(ordinal_trials):
    with pytest.raises(ValueError, match="ties"):
        mann_whitney(*ordinal_trials, method="exact")
    with pytest.raises(ValueError, match="method"):
        mann_whitney(*ordinal_trials, method="permutation")


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="leading shapes"):
        welch_t(np.zeros((3, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="finite"):
        mann_whitney(np.array([[1.0, np.inf]]), np.array([[0.0, 1.0]]))


@pytest.mark.parametrize("func", [welch_t, student_t, mann_whitney])
def test_results_do_not_depend_on_the_batch(func, continuous_trials, loops):
    # trials are independent along the first axis: batches of 1, 50 and 200 give the same numbers
    xc, xt = continuous_trials
    whole = func(xc, xt)
    for size in (1, 50):
        parts = [func(xc[i : i + size], xt[i : i + size]) for i in range(0, 200, size)]
        np.testing.assert_array_equal(np.concatenate([p.pvalue for p in parts]), whole.pvalue)
        np.testing.assert_array_equal(np.concatenate([p.statistic for p in parts]), whole.statistic)


@settings(max_examples=60, deadline=None)
@given(
    xc=hnp.arrays(np.float64, (3, 6), elements=st.sampled_from([0.0, 1.0, 2.0, 2.5, np.nan])),
    xt=hnp.arrays(np.float64, (3, 5), elements=st.one_of(st.floats(-3, 3, width=16), st.just(np.nan))),
)
def test_pvalues_are_probabilities_and_swapping_arms_mirrors_the_statistic(xc, xt):
    for func in (welch_t, student_t, mann_whitney):
        res, swapped = func(xc, xt), func(xt, xc)
        p = res.pvalue[~np.isnan(res.pvalue)]
        assert np.all((p >= 0) & (p <= 1))
        np.testing.assert_allclose(swapped.pvalue, res.pvalue, rtol=1e-12, atol=1e-15)
        if func is mann_whitney:
            np.testing.assert_allclose(swapped.statistic, res.n_control * res.n_treatment - res.statistic)
        else:
            np.testing.assert_allclose(swapped.statistic, -res.statistic, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# operating characteristics by simulation (tolerances of 4 Monte Carlo standard errors)
# --------------------------------------------------------------------------------------------
def within_4_se(rate: float, target: float, n_sims: int) -> bool:
    return abs(rate - target) < 4 * math.sqrt(target * (1 - target) / n_sims)


def exact_mann_whitney_size(n1: int, n2: int, alpha: float) -> float:
    """Attainable size of the exact test: enumerate all C(n1 + n2, n1) rank sets."""
    u_values = np.array(
        [sum(c) - n1 * (n1 - 1) // 2 for c in itertools.combinations(range(n1 + n2), n1)]
    )  # U of the first sample for rank set c (ranks 0-based)
    counts = np.bincount(u_values, minlength=n1 * n2 + 1)
    # two-sided p-value of each U: twice the upper tail at max(U, n1 n2 - U), capped at 1
    upper = counts[::-1].cumsum()[::-1] / counts.sum()
    p_of_u = [min(1.0, 2 * upper[max(u, n1 * n2 - u)]) for u in range(n1 * n2 + 1)]
    return float(sum(c for c, p in zip(counts, p_of_u) if p <= alpha) / counts.sum())


def test_type_one_error_under_the_null_by_simulation():
    n_sims = 20_000
    rng = np.random.default_rng(np.random.SeedSequence(99).spawn(1)[0])
    xc, xt = rng.normal(size=(n_sims, 10)), rng.normal(size=(n_sims, 10))
    assert within_4_se(welch_t(xc, xt).rejection_rate(ALPHA), ALPHA, n_sims)
    assert within_4_se(student_t(xc, xt).rejection_rate(ALPHA), ALPHA, n_sims)
    # the exact Mann-Whitney test cannot hit 5% exactly: its attainable size at 10 vs 10 is
    # P(U <= 23 or U >= 77) = 0.0433, found by enumerating all 184,756 rank sets
    size = exact_mann_whitney_size(10, 10, ALPHA)
    assert size == pytest.approx(0.0433, abs=5e-5)
    mw = mann_whitney(xc, xt)
    assert mw.exact.all()
    assert within_4_se(mw.rejection_rate(ALPHA), size, n_sims)


def test_mann_whitney_with_ties_is_not_anticonservative():
    # Ordinal grades in 4 categories: the tie-corrected normal approximation has no exact size,
    # so only an honest one-sided bound is asserted: rate <= alpha + 4 SE. (With 400,000 trials
    # it is about 0.043-0.045 for several category distributions, i.e. conservative.)
    n_sims = 20_000
    rng = np.random.default_rng(np.random.SeedSequence(100).spawn(1)[0])
    probs = [0.4, 0.3, 0.2, 0.1]
    xc = rng.choice(4, (n_sims, 10), p=probs).astype(float)
    xt = rng.choice(4, (n_sims, 10), p=probs).astype(float)
    rate = mann_whitney(xc, xt).rejection_rate(ALPHA)
    assert rate <= ALPHA + 4 * math.sqrt(ALPHA * (1 - ALPHA) / n_sims)


def test_student_t_power_by_simulation_matches_the_noncentral_t():
    # d = 1, 10 vs 10: noncentral-t power 0.5620 (R: power.t.test(n = 10, delta = 1, sd = 1)
    # gives 0.5619846 without the far tail; see tests/test_analytic.py)
    n_sims = 20_000
    rng = np.random.default_rng(np.random.SeedSequence(101).spawn(1)[0])
    xc, xt = rng.normal(1.0, 1.0, (n_sims, 10)), rng.normal(0.0, 1.0, (n_sims, 10))
    power = t_test_power(1.0, 10, 10, alpha=ALPHA)
    assert within_4_se(student_t(xc, xt).rejection_rate(ALPHA), power, n_sims)


def test_t_tests_of_one_trial_take_1d_samples_as_scipy_does():
    # a single trial's samples (no leading axis) gave a ValueError from np.nonzero on a 0-d array
    from trialsim.analysis.continuous import student_t, welch_t

    rng = np.random.default_rng(4)
    x, y = rng.normal(size=9), rng.normal(0.5, 2.0, size=13)
    for ours, equal_var in ((welch_t(x, y), False), (student_t(x, y), True)):
        ref = stats.ttest_ind(x, y, equal_var=equal_var)
        assert np.shape(ours.statistic) == () and np.shape(ours.pvalue) == ()
        assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
        assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-10)
        batch = (welch_t if not equal_var else student_t)(x[None], y[None])  # the same numbers as a batch of one
        assert ours.statistic == batch.statistic[0] and ours.df == batch.df[0]
    with_missing = welch_t(np.append(x, np.nan), y)
    assert with_missing.statistic == welch_t(x, y).statistic and int(with_missing.n_control) == 9
