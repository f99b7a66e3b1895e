"""Boschloo's exact test at large arms: exact power to 500 per arm, simulated trials, registry limit."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from trialsim.analysis import binary
from trialsim.analysis import registry as tests_registry
from trialsim.analysis.binary import binary_test, exact_power, exact_power_curve, pvalue_table, rejection_region
from trialsim.config.loader import ConfigError, with_values

from tests.test_analysis_binary import random_binary_trials


def scipy_one_sided_region(n1: int, n2: int, alternative: str, alpha: float) -> np.ndarray:
    """The tables scipy's one-sided Boschloo test rejects at ``alpha / 2``, found with scipy alone.

    scipy orders the tables by the one-sided Fisher statistic (``hypergeom.cdf``, as in
    ``scipy.stats.boschloo_exact``), and a one-sided Boschloo p-value rises with that statistic
    (its rejection sets are nested), so the region is {statistic <= v*}: v* is found by bisection
    over the distinct statistics, asking ``scipy.stats.boschloo_exact`` for the p-value of a table
    holding each probed value (about 15 calls per side).
    """
    x1 = np.arange(n1 + 1)[:, None]
    x2 = np.arange(n2 + 1)[None, :]
    if alternative == "less":
        statistic = stats.hypergeom.cdf(x1, n1 + n2, x1 + x2, n1)
    else:
        statistic = stats.hypergeom.cdf(x2, n1 + n2, x1 + x2, n2)
    values = np.unique(statistic)

    def pvalue(v: float) -> float:
        a, b = np.argwhere(statistic == v)[0]
        table = [[a, b], [n1 - a, n2 - b]]  # columns are the arms, as scipy.boschloo_exact wants
        return stats.boschloo_exact(table, alternative=alternative).pvalue

    lo, hi = -1, len(values)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pvalue(values[mid]) <= alpha / 2 * (1 + 1e-12):
            lo = mid
        else:
            hi = mid
    return statistic <= values[lo] if lo >= 0 else np.zeros(statistic.shape, dtype=bool)


@pytest.mark.slow
@pytest.mark.parametrize("n1, n2, p1, p2", [(150, 150, 0.15, 0.05), (40, 80, 0.08, 0.04), (60, 25, 0.5, 0.2)])
def test_exact_power_equals_an_independent_enumeration_with_scipy(n1, n2, p1, p2):
    # Reference: the rejection region found with scipy.stats.boschloo_exact and scipy.stats.hypergeom
    # only (scipy_one_sided_region, both sides), and the power summed over it with scipy.stats.binom.
    # Two-sided (scipy's convention, ours): reject when either one-sided p-value <= alpha / 2.
    alpha = 0.05
    region = scipy_one_sided_region(n1, n2, "less", alpha) | scipy_one_sided_region(n1, n2, "greater", alpha)
    joint = np.outer(stats.binom.pmf(np.arange(n1 + 1), n1, p1), stats.binom.pmf(np.arange(n2 + 1), n2, p2))
    np.testing.assert_array_equal(rejection_region("boschloo", n1, n2, alpha), region)
    assert exact_power("boschloo", p1, p2, n1, n2, alpha=alpha) == pytest.approx(joint[region].sum(), rel=1e-10)


def test_boschloo_does_not_dominate_fisher_with_unequal_arms():
    # The figures of issue 10: 40 vs 80 patients at 8% vs 4%, two-sided at 5%. Boschloo's one-sided
    # tests beat Fisher's one-sided tests, but the two-sided versions split alpha differently.
    fisher = exact_power("fisher", 0.08, 0.04, 40, 80, alpha=0.05)
    boschloo = exact_power("boschloo", 0.08, 0.04, 40, 80, alpha=0.05)
    assert fisher == pytest.approx(0.137, abs=5e-4)
    assert boschloo == pytest.approx(0.102, abs=5e-4)
    assert boschloo < fisher


def test_every_n_from_5_to_200():
    """Boschloo's exact power at every n per arm 5..200 (its time, under 10 s, is scripts/bench.py's to measure)."""
    for f in (binary._less_statistic, binary._boschloo_cutoff, binary._nuisance_grid, binary._banded_nuisance_grid,
              binary._rejection_region_cached):
        f.cache_clear()
    curve = exact_power_curve("boschloo", 0.15, 0.05, np.arange(5, 201), alpha=0.05)
    assert np.all((curve >= 0) & (curve <= 1)) and curve[-1] > 0.85
    fisher = exact_power_curve("fisher", 0.15, 0.05, np.arange(5, 201), alpha=0.05)
    assert np.mean(curve >= fisher - 1e-12) > 0.9  # with equal arms Boschloo is mostly the stronger


def test_500_vs_500_is_exact_and_keeps_its_size():
    power = exact_power("boschloo", 0.12, 0.06, 500, 500, alpha=0.05)
    assert exact_power("fisher", 0.12, 0.06, 500, 500, alpha=0.05) <= power <= 1.0
    # an exact test: the rejection probability under any common event probability is at most alpha
    for p in (0.01, 0.05, 0.2, 0.5, 0.8):
        assert exact_power("boschloo", p, p, 500, 480, alpha=0.05) <= 0.05 + 1e-12
    # the region is the two one-sided regions, mirror images of each other (events <-> non-events)
    region = rejection_region("boschloo", 500, 480, 0.05)
    assert region[0, 480] and region[500, 0] and not region[250, 240]


def test_simulated_trials_above_the_table_size_use_the_same_pvalues_as_the_tables():
    n = binary.DIRECT_FROM_N + 10
    xc, xt = random_binary_trials(np.random.default_rng(10), 400, n, n, 0.3, 0.18, p_missing=0.02)
    res = binary_test("boschloo", xc, xt, alpha=0.05)
    again = binary_test("boschloo", xc, xt, alpha=0.05)  # the second call reads the kept p-values
    np.testing.assert_array_equal(res.pvalue, again.pvalue)
    for i in range(0, 400, 25):
        a, b = int(res.n_control[i]), int(res.n_treatment[i])
        e, f = res.events_control[i], res.events_treatment[i]
        assert res.pvalue[i] == pytest.approx(pvalue_table("boschloo", a, b)[e, f], rel=1e-12, abs=1e-15)
        assert res.reject[i] == rejection_region("boschloo", a, b, 0.05)[e, f]


def test_registry_limit_is_500_per_arm(default_scenario):
    assert tests_registry.get("boschloo").max_n == 500
    at_limit = with_values(default_scenario, {"design.n_control": 500, "design.n_treatment": 500})
    assert "boschloo" in at_limit.endpoints["leak_1m"].tests
    with pytest.raises(ConfigError, match="boschloo"):
        with_values(default_scenario, {"design.n_control": 501})
