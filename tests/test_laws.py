"""trialsim.analysis.laws: scipy.special's functions give scipy.stats's numbers, to the bit."""
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from trialsim.analysis import laws


def _probabilities(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.random(2000), [1e-15, 1e-6, 0.025, 0.5, 0.8, 0.9, 0.975, 1 - 1e-9]])


def test_normal_t_and_chi_square_functions_are_scipy_stats_bits():
    q = _probabilities(1)
    assert np.array_equal(laws.norm_ppf(q), stats.norm.ppf(q))
    assert np.array_equal(laws.norm_isf(q), stats.norm.isf(q))
    x = np.random.default_rng(2).normal(size=2000) * 6
    assert np.array_equal(laws.norm_cdf(x), stats.norm.cdf(x))
    assert np.array_equal(laws.norm_sf(x), stats.norm.sf(x))
    for df in (0.3, 1.0, 2.5, 9.7, 37.0, 998.0, 1e7):
        assert np.array_equal(laws.t_ppf(q, df), stats.t.ppf(q, df)), df
    for df in (0.7, 1, 2, 5, 17.5, 300, 12345):
        assert np.array_equal(laws.chi2_ppf(q, df), stats.chi2.ppf(q, df)), df
        assert np.array_equal(laws.chi2_isf(q, df), stats.chi2.isf(q, df)), df


@pytest.mark.parametrize("df", [3.0, 17.0, 46.0, 998.0])
def test_noncentral_t_tail_is_scipy_stats_bits_clipped_as_scipy_clips_it(df):
    x = np.linspace(-3, 9, 601)
    for nc in (0.0, 1.3, 4.7, -2.0, 6.93):
        assert np.array_equal(laws.nct_sf(x, df, nc), stats.nct.sf(x, df, nc)), (df, nc)


def test_binomial_pmf_and_beta_quantile_are_scipy_stats_bits():
    for n in (1, 7, 50, 999):
        k = np.arange(n + 1)
        for p in (0.0, 1e-300, 1e-16, 1e-9, 0.3, 0.97, 1 - 1e-16, 1.0):  # Boost's pmf exceeds 1 for tiny p: clipped
            assert np.array_equal(laws.binom_pmf(k, n, p), stats.binom.pmf(k, n, p)), (n, p)
    rng = np.random.default_rng(3)
    x = rng.integers(1, 60, 500).astype(float)
    n = x + rng.integers(0, 60, 500)
    for q in (0.025, 0.1, 0.975):
        assert np.array_equal(laws.beta_ppf(q, x, n - x + 1), stats.beta.ppf(q, x, n - x + 1))


def test_planning_answers_without_importing_scipy_stats():
    # what the laws are for: sample sizes, pilot tables, intervals and the solve-for commands without scipy.stats's
    # second of imports
    code = ("import sys; from trialsim.analysis.analytic import t_test_sample_size; "
            "from trialsim.planning.pilot import expected_rate_ci_width, clopper_pearson_bounds; "
            "from trialsim.planning.analytic import noether_sample_size; from trialsim.results import clopper_pearson; "
            "from trialsim.planning.solve import solve_two_means, solve_two_proportions; "
            "t_test_sample_size(0.4, power=0.9); expected_rate_ci_width(0.12, 10, 0.03); clopper_pearson(3, 20); "
            "clopper_pearson_bounds([0, 3], [10, 10]); noether_sample_size(0.62, power=0.8, alpha=0.05); "
            "solve_two_means(0.5, power=0.8, test='welch', sd_treatment=1.4); solve_two_proportions(0.2, 0.1, power=0.8); "
            "print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
