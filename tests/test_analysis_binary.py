"""Tests for trialsim.analysis.binary: exact tables, vectorised trials, exact power."""
from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from trialsim.analysis import binary
from trialsim.analysis.continuous import nan_mean
from trialsim.analysis.binary import (
    BINARY_TESTS,
    binary_test,
    exact_power,
    exact_power_curve,
    pvalue_table,
    rejection_region,
)

SIZES = [(10, 10), (7, 12), (3, 5)]


def rejects(pvalue: float, alpha: float) -> bool:
    """The module's decision rule: p <= alpha, with room for rounding of an exact tie."""
    return pvalue <= alpha * (1 + 1e-12)


def scipy_pvalue(test: str, x1: int, n1: int, x2: int, n2: int) -> float:
    """Reference p-value from scipy for one trial (control x1/n1, treatment x2/n2)."""
    table = [[x1, x2], [n1 - x1, n2 - x2]]  # columns are the arms, as scipy.boschloo_exact wants
    if test == "fisher":
        return stats.fisher_exact(table).pvalue
    if test == "boschloo":
        return stats.boschloo_exact(table, alternative="two-sided").pvalue
    if x1 + x2 in (0, n1 + n2):  # zero margin: no evidence at all
        return 1.0
    return stats.chi2_contingency(table, correction=False).pvalue


def scipy_table(test: str, n1: int, n2: int) -> np.ndarray:
    return np.array([[scipy_pvalue(test, a, n1, b, n2) for b in range(n2 + 1)] for a in range(n1 + 1)])


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n1, n2", SIZES + [(12, 7), (1, 1), (1, 6)])
def test_fisher_table_equals_scipy(n1, n2):
    ours, ref = pvalue_table("fisher", n1, n2), scipy_table("fisher", n1, n2)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)


def test_fisher_large_table_spot_checks_equal_scipy():
    n1, n2 = 200, 150
    table = pvalue_table("fisher", n1, n2)
    rng = np.random.default_rng(20240601)
    # random tables plus ones near the null, where the p-value is largest and ties matter
    cells = [(int(a), int(b)) for a, b in zip(rng.integers(0, n1 + 1, 40), rng.integers(0, n2 + 1, 40))]
    cells += [(100, 75), (40, 30), (41, 30), (60, 38), (0, 0), (200, 150)]
    for a, b in cells:
        assert table[a, b] == pytest.approx(scipy_pvalue("fisher", a, n1, b, n2), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("n1, n2", SIZES)
def test_boschloo_table_equals_scipy(n1, n2):
    # scipy maximises over the nuisance parameter with shgo (32 Sobol points); our grid plus
    # Newton refinement agrees to ~1e-13 on every table of these sizes.
    ours, ref = pvalue_table("boschloo", n1, n2), scipy_table("boschloo", n1, n2)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("n1, n2", [(4, 9), (30, 30), (150, 40)])
def test_boschloo_supremum_is_the_peak_of_a_dense_search(n1, n2):
    """Each one-sided p-value below 1/2 is the maximum of its size function: equal, to 1e-11, to bounded Brent
    maximisation (scipy) around the best of 20,001 points uniform in pi, for a spread of tables."""
    from scipy import optimize

    stat = binary._less_statistic(n1, n2)
    rng = np.random.default_rng(3)
    cells = {(int(a), int(b)) for a, b in zip(rng.integers(0, n1 + 1, 12), rng.integers(0, n2 + 1, 12))}
    values = np.array([stat.table[a, b] for a, b in sorted(cells)])
    ours = binary._boschloo_less_pvalues(stat, values)
    mass = stat.conditional_mass(values * (1 + binary._BOSCHLOO_TIE_RTOL))
    n = n1 + n2
    pi = np.linspace(0.0, 1.0, 20_001)
    pmf = stats.binom.pmf(np.arange(n + 1)[None, :], n, pi[:, None])
    for row, got in zip(mass, ours):
        dense = pmf @ row
        k = int(np.argmax(dense))
        lo, hi = pi[max(k - 1, 0)], pi[min(k + 1, len(pi) - 1)]
        peak = optimize.minimize_scalar(lambda q: -(stats.binom.pmf(np.arange(n + 1), n, q) @ row), bounds=(lo, hi),
                                        method="bounded", options={"xatol": 1e-12})
        reference = min(max(dense[k], -peak.fun), 1.0)
        if reference < 0.5:
            assert got == pytest.approx(reference, rel=1e-11, abs=1e-300)
        else:  # a one-sided value of 1/2 or more makes the two-sided p-value 1: kept at the grid's maximum
            assert reference * (1 - binary._PEAK_WINDOW) <= got <= reference * (1 + 1e-12)


@pytest.mark.parametrize("plain", ["einsum", "full grid"])
def test_boschloo_cutoff_through_blas_and_the_banded_grid_gives_the_regions_of_the_plain_product(monkeypatch, plain):
    """The cutoff search multiplies its probes by the nuisance grid through BLAS (last bits may differ from einsum's),
    and by the banded pmf matrix (grid values short by < 2e-21): the same rejection regions as with the einsum
    product, or with the full matrix, equal and unequal arms, several levels."""
    pairs, levels = [(5, 5), (12, 31), (40, 40), (90, 23), (150, 150)], (0.01, 0.05, 0.1)
    fast = {(n1, n2, a): binary.boschloo_region(n1, n2, a) for n1, n2 in pairs for a in levels}
    sup = binary._sup_over_nuisance

    def plain_sup(mass, n, refine=(0.0, 0.5), blas=False, banded=False):
        return sup(mass, n, refine, blas=blas and plain != "einsum", banded=banded and plain != "full grid")

    monkeypatch.setattr(binary, "_sup_over_nuisance", plain_sup)
    binary._boschloo_cutoff.cache_clear()
    try:
        for (n1, n2, a), region in fast.items():
            np.testing.assert_array_equal(binary.boschloo_region(n1, n2, a), region)
    finally:
        binary._boschloo_cutoff.cache_clear()


def test_peaks_newton_does_not_settle_get_golden_section_search(monkeypatch):
    """With one Newton step no peak settles: golden-section search refines them all, to the same values."""
    stat = binary._less_statistic(25, 18)
    values = np.unique(stat.table)
    settled = binary._boschloo_less_pvalues(stat, values)
    calls = []
    golden = binary._golden_peaks
    monkeypatch.setattr(binary, "_NEWTON_STEPS", 1)
    monkeypatch.setattr(binary, "_golden_peaks", lambda h, *a: calls.append(len(h)) or golden(h, *a))
    np.testing.assert_allclose(binary._boschloo_less_pvalues(stat, values), settled, rtol=1e-12, atol=0)
    assert sum(calls) > 100


@pytest.mark.parametrize("n1, n2", [(1, 1), (2, 1), (1, 4), (9, 9), (7, 12), (12, 7), (30, 17)])
def test_boschloo_statistic_equals_exact_rational_cdfs(n1, n2):
    """The statistic, built from the lower margins and mirrored for the upper ones (odd and even N, unequal arms),
    is P(X1 <= x | m) from exact rational arithmetic to a relative 1e-14; 0 below each support, inf above it."""
    by_margin = binary._less_statistic(n1, n2).by_margin
    for m in range(n1 + n2 + 1):
        lo, hi = max(0, m - n2), min(n1, m)
        pmf = [Fraction(math.comb(n1, x) * math.comb(n2, m - x), math.comb(n1 + n2, m)) for x in range(lo, hi + 1)]
        cdf = np.array([float(sum(pmf[: i + 1])) for i in range(len(pmf))])
        np.testing.assert_allclose(by_margin[m, lo : hi + 1], cdf, rtol=1e-14, atol=0)
        assert np.all(by_margin[m, :lo] == 0.0) and np.all(by_margin[m, hi + 1 :] == np.inf)


@pytest.mark.parametrize("n1, n2", [(1, 1), (5, 9), (40, 40), (90, 23), (151, 150)])
def test_boschloo_region_read_by_margin_is_the_tables_at_or_below_the_cutoff(n1, n2):
    """The region counts, margin by margin, the statistics at or below the cutoff: the same tables as comparing
    every table's statistic with it; and a few thresholds' conditional masses (by bisection) equal the masses
    found for them among many (by the sorted keys)."""
    stat = binary._less_statistic(n1, n2)
    for alpha in (0.01, 0.05, 0.1):
        less = stat.table <= binary.boschloo_cutoff(n1, n2, alpha)
        np.testing.assert_array_equal(binary.boschloo_region(n1, n2, alpha), less | less[::-1, ::-1])
    values = np.unique(stat.table)
    few = values[[len(values) // 3, len(values) // 2]] * (1 + binary._BOSCHLOO_TIE_RTOL)
    many = np.concatenate([few, np.linspace(0.0, 1.0, 40 * (n1 + 1))])
    np.testing.assert_array_equal(stat.conditional_mass(few), stat.conditional_mass(many)[:2])


@pytest.mark.parametrize("n", [2, 3, 50, 381, 1000])
def test_banded_nuisance_grid_is_the_full_one_within_its_windows(n):
    """The cutoff's banded pmf matrix equals the full one bit for bit where it is not 0, and leaves out less than
    2e-21 of each grid point's binomial mass (the bound its comparisons rely on)."""
    theta, banded = binary._banded_nuisance_grid(n)
    full = binary._nuisance_grid(n)[1]
    kept = banded != 0.0
    np.testing.assert_array_equal(banded[kept], full[kept])
    assert np.where(kept, 0.0, full).sum(axis=1).max() < 2e-21
    if n > 300:  # the point of it: the exponentials of a third of the matrix or less
        assert kept.mean() < 0.45


@pytest.mark.parametrize("n1, n2", SIZES + [(20, 13)])
def test_chi2_table_equals_scipy_chi2_contingency(n1, n2):
    ours, ref = pvalue_table("chi2", n1, n2), scipy_table("chi2", n1, n2)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("test", BINARY_TESTS)
def test_tables_are_cached_read_only_and_regions_are_p_le_alpha(test):
    table = pvalue_table(test, 6, 4)
    assert table is pvalue_table(test, 6, 4)
    assert table.shape == (7, 5)
    with pytest.raises(ValueError):
        table[0, 0] = 0.5
    region = rejection_region(test, 6, 4, 0.1)
    assert region is rejection_region(test, 6, 4, 0.1)
    np.testing.assert_array_equal(region, table <= 0.1 * (1 + 1e-12))
    assert not region.flags.writeable


@settings(max_examples=40, deadline=None)
@given(
    test=st.sampled_from(["fisher", "chi2"]),
    n1=st.integers(1, 40),
    n2=st.integers(1, 40),
)
def test_pvalue_tables_are_probabilities_with_the_symmetries_of_the_test(test, n1, n2):
    table = pvalue_table(test, n1, n2)
    assert np.all((table >= 0) & (table <= 1))
    # relabelling the arms, or events and non-events, cannot change a two-sided p-value
    np.testing.assert_allclose(table, pvalue_table(test, n2, n1).T, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(table, table[::-1, ::-1], rtol=1e-10, atol=1e-14)
    # a table with both arms at the same proportion is never significant at 5%
    assert table[0, 0] == 1.0 and table[n1, n2] == 1.0


@pytest.mark.parametrize("bad", [dict(test="barnard"), dict(n_control=0), dict(n_treatment=2.5)])
def test_pvalue_table_rejects_bad_arguments(bad):
    args = dict(test="fisher", n_control=5, n_treatment=5) | bad
    with pytest.raises(ValueError):
        pvalue_table(**args)


# --------------------------------------------------------------------------------------------
# simulated trials
# --------------------------------------------------------------------------------------------
def random_binary_trials(rng, n_sims, n1, n2, p1, p2, p_missing):
    xc = (rng.random((n_sims, n1)) < p1).astype(float)
    xt = (rng.random((n_sims, n2)) < p2).astype(float)
    xc[rng.random(xc.shape) < p_missing] = np.nan
    xt[rng.random(xt.shape) < p_missing] = np.nan
    return xc, xt


@pytest.mark.parametrize("test", BINARY_TESTS)
def test_binary_test_equals_a_scipy_loop_with_missing_data(test):
    rng = np.random.default_rng(7)
    xc, xt = random_binary_trials(rng, 200, 10, 10, 0.35, 0.15, p_missing=0.2)
    xc[3] = np.nan  # a trial with no analysable control patient
    xt[4, :] = np.nan
    res = binary_test(test, xc, xt, alpha=0.05)
    for i in range(200):
        a, b = xc[i][~np.isnan(xc[i])], xt[i][~np.isnan(xt[i])]
        assert res.n_control[i] == a.size and res.n_treatment[i] == b.size
        assert res.events_control[i] == a.sum() and res.events_treatment[i] == b.sum()
        if a.size == 0 or b.size == 0:
            assert np.isnan(res.pvalue[i]) and not res.reject[i]
            continue
        ref = scipy_pvalue(test, int(a.sum()), a.size, int(b.sum()), b.size)
        assert res.pvalue[i] == pytest.approx(ref, rel=1e-9, abs=1e-9)
        assert res.reject[i] == rejects(res.pvalue[i], 0.05)


def test_binary_test_keeps_leading_shape_and_validates_input():
    rng = np.random.default_rng(3)
    xc = (rng.random((4, 5, 8)) < 0.5).astype(float)
    xt = (rng.random((4, 5, 6)) < 0.5).astype(float)
    res = binary_test("fisher", xc, xt, alpha=0.05)
    assert res.pvalue.shape == res.reject.shape == res.n_control.shape == (4, 5)
    flat = binary_test("fisher", xc.reshape(20, 8), xt.reshape(20, 6), alpha=0.05)
    np.testing.assert_array_equal(res.pvalue.ravel(), flat.pvalue)
    with pytest.raises(ValueError, match="0, 1 or NaN"):
        binary_test("fisher", xc * 2, xt, alpha=0.05)
    with pytest.raises(ValueError, match="leading shapes"):
        binary_test("fisher", xc, xt[:3], alpha=0.05)
    with pytest.raises(ValueError, match="alpha"):
        binary_test("fisher", xc, xt, alpha=1.5)


@pytest.mark.parametrize("test", BINARY_TESTS)
def test_simulated_rejection_rate_agrees_with_exact_power(test):
    # Monte Carlo check: 100,000 simulated 10 vs 10 trials, 10% missing outcomes;
    # the rate must lie within 4 Monte Carlo standard errors of the exact power.
    rng = np.random.default_rng(np.random.SeedSequence(2024).spawn(3)[BINARY_TESTS.index(test)])
    xc, xt = random_binary_trials(rng, 100_000, 10, 10, 0.45, 0.10, p_missing=0.1)
    res = binary_test(test, xc, xt, alpha=0.05)
    power = exact_power(test, 0.45, 0.10, 10, 10, alpha=0.05, p_missing=0.1)
    se = math.sqrt(power * (1 - power) / 100_000)
    assert abs(res.rejection_rate() - power) < 4 * se
    assert res.rejection_rate_se() == pytest.approx(se, rel=0.05)


# --------------------------------------------------------------------------------------------
# exact power
# --------------------------------------------------------------------------------------------
def test_exact_fisher_power_equals_an_independent_enumeration():
    # 0.15 vs 0.05 with 10 per arm: loop over all 121 tables with scipy's Fisher test
    alpha, n = 0.05, 10
    ref = 0.0
    for x1, x2 in itertools.product(range(n + 1), repeat=2):
        if rejects(stats.fisher_exact([[x1, x2], [n - x1, n - x2]]).pvalue, alpha):
            ref += stats.binom.pmf(x1, n, 0.15) * stats.binom.pmf(x2, n, 0.05)
    got = exact_power("fisher", 0.15, 0.05, n, n, alpha=alpha)
    assert got == pytest.approx(ref, rel=1e-12)
    assert got < 0.05  # a 10 vs 10 trial rejects less often than under the worst null


def test_reference_chi2_power_from_r_package_exact():
    # Reference (one-sided): R package Exact, power.exact.test(0.4, 0.2, 124, 62,
    # method = "pearson chisq", alternative = "greater", alpha = 0.025)$power = 0.8028152,
    # quoted in Gosuke Homma's BinarySampleSize.R (validation comments, author of CRAN bbssr).
    # Exact's "pearson chisq" rejects when prop.test(correct = FALSE) has p <= alpha, so the
    # two-sided test at 0.05 rejects exactly when either one-sided test at 0.025 does; the
    # opposite tail is enumerated here independently and added.
    n1, n2 = 124, 62
    x1 = np.arange(n1 + 1)[:, None]
    x2 = np.arange(n2 + 1)[None, :]
    pooled = (x1 + x2) / (n1 + n2)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (x1 / n1 - x2 / n2) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    joint = stats.binom.pmf(x1, n1, 0.4) * stats.binom.pmf(x2, n2, 0.2)
    opposite_tail = joint[stats.norm.cdf(z) <= 0.025].sum()  # about 6e-7
    assert joint[stats.norm.sf(z) <= 0.025].sum() == pytest.approx(0.8028152, abs=5e-8)
    two_sided = exact_power("chi2", 0.4, 0.2, n1, n2, alpha=0.05)
    assert two_sided == pytest.approx(0.8028152 + opposite_tail, abs=5e-8)


def test_reference_boschloo_power_from_r_package_exact():
    # Reference (one-sided): R package Exact, power.exact.test(0.7, 0.2, 40, 10,
    # method = "boschloo", alternative = "greater", alpha = 0.025)$power = 0.8374957 and
    # (0.7, 0.2, 36, 9) -> 0.7998365, quoted in Gosuke Homma's BinarySampleSize.R (validation
    # comments). scipy's two-sided Boschloo (ours) rejects at 0.05 exactly when one of the
    # one-sided Boschloo tests rejects at 0.025; the 'greater' one must reproduce the reference.
    for n1, n2, ref in [(40, 10, 0.8374957), (36, 9, 0.7998365)]:
        p_greater = binary.boschloo_one_sided_table(n1, n2, "greater")
        joint = np.outer(stats.binom.pmf(np.arange(n1 + 1), n1, 0.7), stats.binom.pmf(np.arange(n2 + 1), n2, 0.2))
        assert joint[p_greater <= 0.025].sum() == pytest.approx(ref, abs=5e-8)
        two_sided = exact_power("boschloo", 0.7, 0.2, n1, n2, alpha=0.05)
        assert ref - 5e-8 <= two_sided <= ref + 2e-6  # plus the tiny opposite tail


def patient_level_power(test, p1, p2, n1, n2, p_missing, alpha):
    """Brute force: every patient is missing, a non-event or an event (3^(n1+n2) outcomes)."""
    m1, m2 = p_missing
    state_prob = {
        1: np.array([m1, (1 - m1) * (1 - p1), (1 - m1) * p1]),
        2: np.array([m2, (1 - m2) * (1 - p2), (1 - m2) * p2]),
    }
    outcomes = np.array(list(itertools.product(range(3), repeat=n1 + n2)))
    arm1, arm2 = outcomes[:, :n1], outcomes[:, n1:]
    prob = np.prod(state_prob[1][arm1], axis=1) * np.prod(state_prob[2][arm2], axis=1)
    k1, e1 = (arm1 > 0).sum(1), (arm1 == 2).sum(1)
    k2, e2 = (arm2 > 0).sum(1), (arm2 == 2).sum(1)
    cache = {}
    power = 0.0
    for key, pr in zip(zip(k1, e1, k2, e2), prob):
        a, ea, b, eb = map(int, key)
        if a == 0 or b == 0:
            continue
        if key not in cache:
            cache[key] = rejects(scipy_pvalue(test, ea, a, eb, b), alpha)
        power += pr * cache[key]
    return power


@pytest.mark.parametrize("test", BINARY_TESTS)
def test_exact_power_with_missing_outcomes_equals_patient_level_brute_force(test):
    # alpha = 0.1 on purpose: with 3 vs 3 analysable, Fisher's p of table [3, 0] is exactly 0.1
    ref = patient_level_power(test, 0.8, 0.2, 5, 4, p_missing=(0.25, 0.25), alpha=0.1)
    got = exact_power(test, 0.8, 0.2, 5, 4, alpha=0.1, p_missing=0.25)
    assert got == pytest.approx(ref, rel=1e-9)
    assert got < exact_power(test, 0.8, 0.2, 5, 4, alpha=0.1)  # missing data cost power
    # a different missingness per arm: (control, treatment)
    ref = patient_level_power(test, 0.8, 0.2, 5, 4, p_missing=(0.1, 0.3), alpha=0.1)
    assert exact_power(test, 0.8, 0.2, 5, 4, alpha=0.1, p_missing=(0.1, 0.3)) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("test", ["fisher", "boschloo"])
@pytest.mark.parametrize("n1, n2", [(10, 10), (7, 12), (3, 5)])
def test_exact_tests_have_size_at_most_alpha(test, n1, n2):
    # Fisher is conditionally exact and Boschloo maximises over the nuisance parameter, so
    # neither may exceed alpha for any common event probability.
    for p in np.linspace(0.01, 0.99, 45):
        assert exact_power(test, p, p, n1, n2, alpha=0.05) <= 0.05 + 1e-12


def test_chi2_size_equals_independent_enumeration_and_can_exceed_alpha():
    # the asymptotic chi-square test is not exact: with 7 vs 12 patients and p = 0.5 its size
    # is about 0.0596 > 0.05; enumerate it here with scipy.stats.chi2 on the statistic.
    n1, n2 = 7, 12
    x1 = np.arange(n1 + 1)[:, None]
    x2 = np.arange(n2 + 1)[None, :]
    m, n = x1 + x2, n1 + n2
    with np.errstate(invalid="ignore", divide="ignore"):
        statistic = n * (x1 * (n2 - x2) - x2 * (n1 - x1)) ** 2 / (n1 * n2 * m * (n - m))
    pvalue = np.where((m == 0) | (m == n), 1.0, stats.chi2.sf(statistic, 1))
    sizes = []
    for p in np.linspace(0.05, 0.95, 19):
        ref = (stats.binom.pmf(x1, n1, p) * stats.binom.pmf(x2, n2, p))[rejects(pvalue, 0.05)].sum()
        got = exact_power("chi2", p, p, n1, n2, alpha=0.05)
        assert got == pytest.approx(ref, rel=1e-12, abs=1e-15)
        sizes.append(got)
    assert max(sizes) > 0.05


def test_windowed_power_equals_the_full_table_sum():
    # exact_power (and the power curve) for Fisher and chi-square sum over a window of the
    # tables; it must agree with the plain sum over the full rejection region.
    for test in ("fisher", "chi2"):
        for n1, n2 in [(5, 5), (10, 10), (7, 12), (60, 25), (150, 150), (500, 500)]:
            for p1, p2 in [(0.15, 0.05), (0.5, 0.5), (0.9, 0.1), (0.0, 0.3), (1.0, 1.0)]:
                for alpha in (0.05, 0.01):
                    region = rejects(pvalue_table(test, n1, n2), alpha)
                    full = stats.binom.pmf(np.arange(n1 + 1), n1, p1) @ region @ stats.binom.pmf(
                        np.arange(n2 + 1), n2, p2
                    )
                    assert exact_power(test, p1, p2, n1, n2, alpha=alpha) == pytest.approx(full, abs=1e-13)


def _windowed_power_every_cell(test, n1, n2, p1, p2, alpha):
    """The windowed power with every table of the window decided (the plain formulation of the search)."""
    b1, b2 = binary._binom_pmf(n1, p1), binary._binom_pmf(n2, p2)
    lo1, hi1 = binary._tail_window(n1, p1)
    lo2, hi2 = binary._tail_window(n2, p2)
    mean_m = n1 * p1 + n2 * p2
    reach_m = binary._TAIL_SD * math.sqrt(n1 * p1 * (1 - p1) + n2 * p2 * (1 - p2)) + binary._TAIL_ADD
    m = np.arange(max(lo1 + lo2, math.floor(mean_m - reach_m)), min(hi1 + hi2, math.ceil(mean_m + reach_m)) + 1)
    n = n1 + n2
    var = m * (n - m) * n1 * n2 / (n * n * max(n - 1, 1))
    half_width = n1 if alpha < 1e-12 else min(n1, math.ceil(binary._TAIL_SD * math.sqrt(var.max()) + binary._TAIL_ADD))
    level = binary._reject_level(alpha)
    if test == "fisher":
        margins = binary._fisher_margins(n1, n2, m, half_width)
        mcol, x, inside = margins.m, margins.x, margins.inside
    else:
        mcol, x, inside = binary._margin_grid(n1, n2, m, half_width)
    y = mcol - x
    relevant = inside & (x >= lo1) & (x <= hi1) & (y >= lo2) & (y <= hi2)
    row, col = np.nonzero(relevant)
    if test == "fisher":
        p = binary._fisher_pvalues_at(margins, row, col)
        keep = (margins.own_tail_at(row, col) > level) | (p > level)
    else:
        keep = binary.chi2_pvalues(n1, n2, x[row, col], y[row, col]) > level
    accept = np.zeros_like(relevant)
    accept[row[keep], col[keep]] = True
    return float(max(0.0, 1.0 - np.sum(b1[x[accept]] * b2[y[accept]])))


@pytest.mark.parametrize("test", ["fisher", "chi2"])
def test_windowed_power_searches_the_accepted_runs_to_the_same_bits(test):
    # the accepted tables of each margin are found by bisection on either side of its centre; the
    # power must be the same number, to the last bit, as deciding every table of the window
    rng = np.random.default_rng(11)
    cases = [(n1, n2, p1, p2, alpha)
             for n1, n2 in [(1, 1), (2, 9), (5, 5), (12, 7), (60, 25), (400, 400), (900, 1000), (20, 600)]
             for p1, p2 in [(0.15, 0.05), (0.5, 0.5), (0.99, 0.01), (0.0, 0.3), (1.0, 1.0), (0.005, 0.02)]
             for alpha in (0.05, 0.01, 0.3, 0.7, 1e-13)]
    cases += [(int(rng.integers(1, 300)), int(rng.integers(1, 300)), float(rng.random() ** 2), float(rng.random() ** 2),
               float(rng.choice([0.05, 0.025, 0.1]))) for _ in range(150)]
    for n1, n2, p1, p2, alpha in cases:
        got = binary._windowed_power(test, n1, n2, p1, p2, alpha)
        assert got == _windowed_power_every_cell(test, n1, n2, p1, p2, alpha), (n1, n2, p1, p2, alpha)


def test_first_true_gives_the_same_answer_whatever_the_guess():
    # a guess only picks the first probes: a monotone predicate's first True is found all the same
    rng = np.random.default_rng(5)
    lo = rng.integers(0, 40, 500)
    hi = lo + rng.integers(0, 60, 500)
    answer = lo + rng.integers(0, 61, 500) % (hi - lo + 1)  # in [lo, hi]; hi: never True
    rows, side = np.arange(500), np.zeros(500, dtype=bool)

    def pred(row, col, _side):
        return col >= answer[row]

    plain = binary._first_true(pred, rows, lo, hi, side)
    assert np.array_equal(plain, answer)
    for guess in (answer, answer - 1, answer + 1, answer - 2, answer + 3, lo - 5, hi + 5, rng.integers(-10, 110, 500)):
        assert np.array_equal(binary._first_true(pred, rows, lo, hi, side, guess), answer)


def test_exact_power_curve_equals_pointwise_exact_power():
    sizes = [5, 6, 17, 40, 101]
    curve = exact_power_curve("fisher", 0.3, 0.1, sizes, ratio=1.5, alpha=0.05)
    point = [exact_power("fisher", 0.3, 0.1, n, math.floor(1.5 * n + 0.5), alpha=0.05) for n in sizes]
    np.testing.assert_allclose(curve, point, rtol=0, atol=0)
    bosch = exact_power_curve("boschloo", 0.6, 0.1, [4, 8], alpha=0.05)
    np.testing.assert_allclose(bosch, [exact_power("boschloo", 0.6, 0.1, n, n, alpha=0.05) for n in (4, 8)])
    with pytest.raises(ValueError, match="ratio"):
        exact_power_curve("fisher", 0.3, 0.1, sizes, ratio=0, alpha=0.05)


def test_fisher_power_curve_5_to_500_is_long_enough_to_plan_with():
    curve = exact_power_curve("fisher", 0.15, 0.05, np.arange(5, 501), alpha=0.05)
    assert curve.shape == (496,)
    assert np.all((curve >= 0) & (curve <= 1))
    assert curve[-1] > 0.99  # 500 per arm detects 15% vs 5% almost surely
    # exact power of a discrete test is not monotone in n: it does dip from one n to the next
    assert np.any(np.diff(curve) < 0)


@pytest.mark.parametrize(
    "bad",
    [
        dict(p_control=1.2),
        dict(alpha=0.0),
        dict(n_control=0),
        dict(p_missing=1.0),
        dict(p_missing=(0.1, -0.1)),
        dict(p_missing=(0.1, 0.2, 0.3)),
        dict(test="z"),
    ],
)
def test_exact_power_rejects_bad_arguments(bad):
    args = dict(test="fisher", p_control=0.3, p_treatment=0.1, n_control=10, n_treatment=10, alpha=0.05)
    with pytest.raises(ValueError):
        exact_power(**(args | bad))


# --------------------------------------------------------------------------------------------
# monotonicity in the effect size: what is and is not true
# --------------------------------------------------------------------------------------------
def test_power_is_not_monotone_just_below_the_null():
    # The two-sided discrete tests are locally biased: moving p_treatment a little below
    # p_control can lower the rejection probability below the size. E.g. Fisher, 10 vs 10,
    # p_control = 0.2: power 0.00756 at p_treatment = 0.2 but 0.00730 at 0.19. So only the
    # directional statement below is asserted, not "power rises as the effect grows".
    at_null = exact_power("fisher", 0.2, 0.2, 10, 10, alpha=0.05)
    assert exact_power("fisher", 0.2, 0.19, 10, 10, alpha=0.05) < at_null


@settings(max_examples=30, deadline=None)
@given(
    test=st.sampled_from(["fisher", "boschloo"]),
    n1=st.integers(2, 12),
    n2=st.integers(2, 12),
    p_control=st.floats(0.05, 0.95),
    shrink=st.one_of(st.just(0.0), st.floats(1e-6, 1.0)),  # scipy's binom.pmf fails at p ~ 1e-308
    step=st.floats(0.01, 1.0),
)
def test_directional_power_rises_as_treatment_moves_away(test, n1, n2, p_control, shrink, step):
    # True (and asserted): the probability of rejecting with the treatment arm *below* the
    # control arm is non-decreasing as p_treatment falls. It holds because within each row
    # x_control the rejected tables with a lower treatment proportion form a lower set in
    # x_treatment (checked here too), and Binomial(n, p) falls stochastically with p.
    region = rejection_region(test, n1, n2, 0.05)
    x1 = np.arange(n1 + 1)[:, None]
    x2 = np.arange(n2 + 1)[None, :]
    lower = region & (x2 * n1 < x1 * n2)
    for row in lower:
        if row.any():
            assert row[: np.flatnonzero(row).max() + 1].all()
    b1 = stats.binom.pmf(np.arange(n1 + 1), n1, p_control)
    p_near = p_control * shrink
    p_far = p_near * (1 - step)
    near = b1 @ lower @ stats.binom.pmf(np.arange(n2 + 1), n2, p_near)
    far = b1 @ lower @ stats.binom.pmf(np.arange(n2 + 1), n2, p_far)
    assert far >= near - 1e-12


def test_direct_path_for_large_arms_equals_the_tables():
    """Above DIRECT_FROM_N patients per arm p-values are computed per observed table; same numbers."""
    from trialsim.analysis import binary as b

    rng = np.random.default_rng(21)
    n = b.DIRECT_FROM_N + 15
    xc = (rng.random((300, n)) < 0.12).astype(float)
    xt = (rng.random((300, n)) < 0.07).astype(float)
    xc[rng.random(xc.shape) < 0.05] = np.nan
    xt[rng.random(xt.shape) < 0.05] = np.nan
    for test in ("fisher", "chi2"):
        direct = b.binary_test(test, xc, xt, alpha=0.05)
        for i in range(0, 300, 7):
            table = b.pvalue_table(test, int(direct.n_control[i]), int(direct.n_treatment[i]))
            assert direct.pvalue[i] == pytest.approx(table[direct.events_control[i], direct.events_treatment[i]], rel=1e-9, abs=1e-14)
        if test == "fisher":
            for i in range(0, 300, 37):
                ref = stats.fisher_exact([[direct.events_control[i], direct.n_control[i] - direct.events_control[i]],
                                          [direct.events_treatment[i], direct.n_treatment[i] - direct.events_treatment[i]]]).pvalue
                assert direct.pvalue[i] == pytest.approx(ref, rel=1e-9)


def test_a_test_registered_with_only_its_table_keeps_its_own_pvalues_on_large_arms():
    """A binary test registered the obvious way (a table builder, no per-table formula) uses its own tables at
    any arm size: above the direct-path size it must not silently get another test's (chi-square) p-values."""
    binary.register_table_test("fisher_by_table", lambda n1, n2: pvalue_table("fisher", n1, n2))
    rng = np.random.default_rng(22)
    n = binary.DIRECT_FROM_N + 15
    xc = (rng.random((200, n)) < 0.12).astype(float)
    xt = (rng.random((200, n)) < 0.07).astype(float)
    xc[rng.random(xc.shape) < 0.05] = np.nan
    own = binary_test("fisher_by_table", xc, xt, alpha=0.05)
    np.testing.assert_allclose(own.pvalue, binary_test("fisher", xc, xt, alpha=0.05).pvalue, rtol=1e-9, atol=1e-14)
    assert not np.allclose(own.pvalue, binary_test("chi2", xc, xt, alpha=0.05).pvalue)


def test_exact_power_near_the_largest_arms():
    """99,999 per arm (curves --n 99999): the window's variance once overflowed int64 ("math domain error")."""
    for test in ("fisher", "chi2"):
        assert binary.exact_power(test, 0.124, 0.062, 99_999, 99_999, alpha=0.05) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("n", [1, 10, 61, 997])
def test_binary_test_from_shared_means_equals_its_own_counts(n):
    """The runner hands binary tests each arm's analysable count and mean (shared with the arm estimates): the event
    counts recovered from them are the counted ones, at every arm size, with empty and all-event rows."""
    rng = np.random.default_rng(n)
    x = (rng.random((400, 2 * n)) < rng.random((400, 1))).astype(float)
    x[rng.random(x.shape) < 0.2] = np.nan
    x[0] = np.nan  # nothing analysable
    x[1] = 1.0  # every patient an event
    x[2, :n] = np.nan  # an empty control arm
    xc, xt = x[:, :n], x[:, n:]
    means = [nan_mean(arm)[:2] for arm in (xc, xt)]
    for test in ("fisher", "chi2"):
        own = binary.binary_test(test, xc, xt, alpha=0.05)
        shared = binary.binary_test(test, xc, xt, alpha=0.05, means=means)
        for field in ("pvalue", "reject", "n_control", "n_treatment", "events_control", "events_treatment"):
            np.testing.assert_array_equal(getattr(shared, field), getattr(own, field), err_msg=f"{test} {field}")
            assert getattr(shared, field).dtype == getattr(own, field).dtype
    with pytest.raises(ValueError, match="leading shape"):
        binary.binary_test("fisher", xc, xt, alpha=0.05, means=[(m[0][:5], m[1][:5]) for m in means])
