"""trialsim.analysis.laws: scipy.special's functions give scipy.stats's numbers, to the bit."""
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from trialsim.analysis import laws

RNG = np.random.default_rng(20261204)
Q = np.concatenate([RNG.random(2000), [1e-15, 1e-6, 0.025, 0.5, 0.8, 0.9, 0.975, 1 - 1e-9]])


def test_normal_and_t_quantiles_and_the_normal_cdf_are_scipy_stats_bits():
    assert np.array_equal(laws.norm_ppf(Q), stats.norm.ppf(Q))
    assert np.array_equal(laws.norm_isf(Q), stats.norm.isf(Q))
    x = RNG.normal(size=2000) * 6
    assert np.array_equal(laws.norm_cdf(x), stats.norm.cdf(x))
    for df in (1.0, 2.5, 9.7, 37.0, 998.0, 1e7):
        assert np.array_equal(laws.t_ppf(Q, df), stats.t.ppf(Q, df)), df
    for df in (1, 2, 5, 17.5, 300, 12345):
        assert np.array_equal(laws.chi2_ppf(Q, df), stats.chi2.ppf(Q, df)), df


@pytest.mark.parametrize("df", [3.0, 17.0, 46.0, 998.0])
def test_noncentral_t_tail_is_scipy_stats_bits(df):
    x = np.linspace(-3, 9, 601)
    for nc in (0.0, 1.3, 4.7, -2.0, 6.93):
        assert np.array_equal(laws.nct_sf(x, df, nc), stats.nct.sf(x, df, nc)), (df, nc)


def test_binomial_pmf_and_beta_quantile_are_scipy_stats_bits():
    for n in (1, 7, 50, 999):
        k = np.arange(n + 1)
        for p in (0.0, 1e-9, 0.3, 0.97, 1.0):
            assert np.array_equal(laws.binom_pmf(k, n, p), stats.binom.pmf(k, n, p)), (n, p)
    x = RNG.integers(1, 60, 500).astype(float)
    n = x + RNG.integers(0, 60, 500)
    for q in (0.025, 0.1, 0.975):
        assert np.array_equal(laws.beta_ppf(q, x, n - x + 1), stats.beta.ppf(q, x, n - x + 1))


def test_planning_answers_without_importing_scipy_stats():
    # what the laws are for: a sample size, a pilot table and an interval without scipy.stats's second of imports
    code = ("import sys; from trialsim.analysis.analytic import t_test_sample_size; "
            "from trialsim.planning.pilot import expected_rate_ci_width, clopper_pearson_bounds; "
            "from trialsim.planning.analytic import noether_sample_size; from trialsim.results import clopper_pearson; "
            "t_test_sample_size(0.4, power=0.9); expected_rate_ci_width(0.12, 10, 0.03); clopper_pearson(3, 20); "
            "clopper_pearson_bounds([0, 3], [10, 10]); noether_sample_size(0.62, power=0.8, alpha=0.05); "
            "print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
