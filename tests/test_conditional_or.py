"""Fisher's conditional MLE odds ratio and exact (Cornfield) interval, against R's fisher.test.

Tables are (n_control, n_treatment, events_control, events_treatment). R's
``fisher.test(matrix(c(a, b, c, d), 2))`` takes the first column as the group whose odds are in the
numerator, so treatment = (a events of a + b), control = (c events of c + d).
"""
import math

import numpy as np
import pytest
from scipy import optimize, stats

from trialsim.analysis import binary, registry
from trialsim.analysis.conditional import conditional_log_or, conditional_log_or_table

# R's uniroot (tol = .Machine$double.eps^0.25 = 1.2e-4) solves for psi when psi < 1 and for 1 / psi
# otherwise, so R's printed values are that close to the exact roots on that scale.
R_UNIROOT_TOL = 1.3e-4


def _r_scale(psi: float) -> float:
    return psi if psi <= 1 else 1 / psi


def _from_r_matrix(a, b, c, d):
    return c + d, a + b, c, a


# (R matrix, alpha, (odds ratio, lower, upper)); None where the R call gives a one-sided interval
R_VALUES = [
    # fisher.test(matrix(c(3, 1, 1, 3), 2))  (TeaTasting, ?fisher.test)
    ((3, 1, 1, 3), 0.05, (6.408309, 0.2117329, 621.9337505)),
    # fisher.test(matrix(c(3, 1, 1, 3), 2), alternative = "greater"): the lower bound at 2 * 0.05
    ((3, 1, 1, 3), 0.10, (6.408309, 0.3135693, None)),
    # Convictions <- matrix(c(2, 10, 15, 3), 2); fisher.test(Convictions)  (?fisher.test)
    ((2, 10, 15, 3), 0.05, (0.04693661, 0.003325764, 0.363182271)),
    # fisher.test(Convictions, alternative = "less"): the upper bound at 2 * 0.05
    ((2, 10, 15, 3), 0.10, (0.04693661, None, 0.2849601)),
    # fisher.test(matrix(c(5, 2, 2, 8), 2)) and conf.level = 0.9 (R 4.x, printed with 17 digits)
    ((5, 2, 2, 8), 0.05, (8.4320042515238818, 0.73024723722077733, 162.80487560806503)),
    ((5, 2, 2, 8), 0.10, (8.4320042515238818, 0.98024496141817941, 105.93002550968208)),
    # fisher.test(matrix(c(10, 2, 3, 15), 2), conf.level = 0.99)
    ((10, 2, 3, 15), 0.01, (21.305331275016723, 1.7275583637669687, 721.32748240000512)),
]


@pytest.mark.parametrize("matrix, alpha, expected", R_VALUES)
def test_matches_r_fisher_test(matrix, alpha, expected):
    got = np.exp(np.array(conditional_log_or(*_from_r_matrix(*matrix), alpha=alpha), dtype=float))
    for value, want in zip(got, expected):
        if want is not None:
            assert abs(_r_scale(value) - _r_scale(want)) < R_UNIROOT_TOL, (value, want)


def _reference(n_c, n_t, e_c, e_t, alpha):
    """Independent: scipy's Fisher noncentral hypergeometric law and brentq on log psi, per table."""
    m = e_c + e_t
    lo, hi = max(0, m - n_c), min(n_t, m)

    def law(theta):
        return stats.nchypergeom_fisher(n_c + n_t, n_t, m, math.exp(theta))

    def root(f):
        return optimize.brentq(f, -25.0, 25.0, xtol=1e-13, rtol=1e-15)

    tail = alpha / 2
    mle = -math.inf if e_t == lo else math.inf if e_t == hi else root(lambda th: law(th).mean() - e_t)
    lower = -math.inf if e_t == lo else root(lambda th: law(th).sf(e_t - 1) - tail)
    upper = math.inf if e_t == hi else root(lambda th: law(th).cdf(e_t) - tail)
    return np.array([mle, lower, upper])


TABLES = [(4, 4, 1, 3), (18, 12, 15, 2), (10, 7, 2, 5), (30, 25, 4, 12), (50, 50, 10, 22), (12, 9, 11, 1),
          (3, 40, 1, 1), (7, 20, 0, 5), (20, 7, 5, 0), (25, 25, 0, 3)]


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2])
@pytest.mark.parametrize("table", TABLES)
def test_matches_brentq_on_the_noncentral_hypergeometric(table, alpha):
    got = np.array(conditional_log_or(*table, alpha=alpha), dtype=float)
    want = _reference(*table, alpha)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_array_equal(got[np.isinf(got)], want[np.isinf(want)])
    np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], rtol=0, atol=1e-8)


@pytest.mark.parametrize("table", TABLES)
def test_matches_scipy_odds_ratio_conditional(table):
    n_c, n_t, e_c, e_t = table
    res = stats.contingency.odds_ratio([[e_t, e_c], [n_t - e_t, n_c - e_c]], kind="conditional")
    ci = res.confidence_interval(confidence_level=0.95)
    with np.errstate(divide="ignore"):
        want = np.log([res.statistic, ci.low, ci.high])
    got = np.array(conditional_log_or(*table, alpha=0.05), dtype=float)
    np.testing.assert_array_equal(got[np.isinf(got)], want[np.isinf(want)])
    # scipy's brentq works on psi, which limits it to ~1e-8 relative where psi is small
    np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("table", [(4, 4, 1, 3), (18, 12, 15, 2), (10, 7, 2, 5), (30, 25, 4, 12)])
def test_mle_matches_statsmodels_conditional_logit(table):
    # one stratum: the conditional likelihood given the total events is the noncentral hypergeometric
    from statsmodels.discrete.conditional_models import ConditionalLogit

    n_c, n_t, e_c, e_t = table
    y = np.r_[np.ones(e_c), np.zeros(n_c - e_c), np.ones(e_t), np.zeros(n_t - e_t)]
    x = np.r_[np.zeros(n_c), np.ones(n_t)][:, None]
    fit = ConditionalLogit(y, x, groups=np.ones(n_c + n_t)).fit(disp=0)
    assert conditional_log_or(*table, alpha=0.05)[0] == pytest.approx(fit.params[0], abs=1e-3)  # BFGS tolerance


@pytest.mark.parametrize("n_c, n_t", [(1, 1), (1, 2), (3, 7), (10, 10), (10, 11), (1, 40), (25, 3), (61, 60)])
@pytest.mark.parametrize("alpha", [0.05, 0.5, 1e-6])
def test_table_and_per_table_paths_agree(n_c, n_t, alpha):
    tables = conditional_log_or_table(n_c, n_t, alpha=alpha)
    x, y = np.meshgrid(np.arange(n_c + 1), np.arange(n_t + 1), indexing="ij")
    direct = conditional_log_or(n_c, n_t, x, y, alpha=alpha)
    for table, per_table in zip(tables, direct):
        assert table.shape == (n_c + 1, n_t + 1) and not table.flags.writeable
        np.testing.assert_array_equal(np.isinf(table), np.isinf(per_table))
        np.testing.assert_array_equal(table[np.isinf(table)], per_table[np.isinf(per_table)])
        np.testing.assert_allclose(table[np.isfinite(table)], per_table[np.isfinite(per_table)], rtol=0, atol=1e-10)
    assert conditional_log_or_table(n_c, n_t, alpha=alpha)[0] is tables[0]  # cached


@pytest.mark.parametrize("p_c, p_t, n_c, n_t, alpha", [
    (0.3, 0.3, 10, 10, 0.05), (0.2, 0.5, 15, 12, 0.05), (0.05, 0.15, 30, 30, 0.05),
    (0.6, 0.9, 8, 20, 0.1), (0.5, 0.1, 40, 35, 0.2), (0.02, 0.02, 25, 25, 0.05),
])
def test_exact_coverage_is_at_least_the_level(p_c, p_t, n_c, n_t, alpha):
    # exact: every table weighted by its binomial probability; each one-sided bound errs <= alpha / 2
    _, lower, upper = conditional_log_or_table(n_c, n_t, alpha=alpha)
    weight = stats.binom.pmf(np.arange(n_c + 1), n_c, p_c)[:, None] * stats.binom.pmf(np.arange(n_t + 1), n_t, p_t)[None, :]
    truth = math.log(p_t / (1 - p_t)) - math.log(p_c / (1 - p_c))
    assert weight.sum() == pytest.approx(1.0)
    above, below = np.sum(weight[lower > truth]), np.sum(weight[upper < truth])
    assert above <= alpha / 2 + 1e-12 and below <= alpha / 2 + 1e-12
    coverage = np.sum(weight[(lower <= truth) & (truth <= upper)])
    assert 1 - alpha <= coverage < 1


def test_edge_tables_give_zero_and_infinite_bounds_as_r():
    # fisher.test(matrix(c(0, 3, 5, 2), 2)): odds ratio 0, CI 0 2.0268713096128086 (R 4.x)
    mle, lower, upper = conditional_log_or(*_from_r_matrix(0, 3, 5, 2), alpha=0.05)
    assert mle == -np.inf and lower == -np.inf
    assert abs(_r_scale(math.exp(upper)) - _r_scale(2.0268713096128086)) < R_UNIROOT_TOL
    # fisher.test(matrix(c(1, 0, 0, 1), 2)): odds ratio Inf, CI 0.0256406640625 Inf; exactly 0.025 / 0.975
    mle, lower, upper = conditional_log_or(*_from_r_matrix(1, 0, 0, 1), alpha=0.05)
    assert mle == np.inf and upper == np.inf and lower == pytest.approx(math.log(0.025 / 0.975), abs=1e-12)
    # one possible table (no events, or all events): R's mle() returns 0 (x == lo is checked
    # first), ncp.L 0 and ncp.U Inf, e.g. fisher.test(matrix(c(0, 4, 0, 4), 2))
    for table in [(4, 4, 0, 0), (4, 4, 4, 4)]:
        assert conditional_log_or(*table, alpha=0.05) == (-np.inf, -np.inf, np.inf)
    mle, lower, upper = conditional_log_or_table(5, 6, alpha=0.05)
    for x in range(6):
        for y in range(7):
            lo, hi = max(0, x + y - 5), min(6, x + y)  # the treatment events' support given x + y
            if lo == hi:
                assert (mle[x, y], lower[x, y], upper[x, y]) == (-np.inf, -np.inf, np.inf), (x, y)
                continue
            assert (mle[x, y] == -np.inf) == (y == lo) and (mle[x, y] == np.inf) == (y == hi)
            assert (lower[x, y] == -np.inf) == (y == lo) and (upper[x, y] == np.inf) == (y == hi)
            assert lower[x, y] <= mle[x, y] <= upper[x, y]


def test_empty_arm_and_bad_input():
    assert np.all(np.isnan(conditional_log_or([0, 5], [4, 0], [0, 1], [2, 0], alpha=0.05)))
    with pytest.raises(ValueError):
        conditional_log_or(4, 4, 5, 1, alpha=0.05)
    with pytest.raises(ValueError):
        conditional_log_or_table(4, 0, alpha=0.05)
    with pytest.raises(ValueError):
        conditional_log_or_table(4, 4, alpha=1.0)


@pytest.mark.parametrize("n_per_arm", [20, 80])  # tables per size pair; per observed table above 60
def test_fisher_runner_reports_the_conditional_odds_ratio(n_per_arm):
    rng = np.random.default_rng(7)
    x_c = rng.binomial(1, 0.3, (400, n_per_arm)).astype(float)
    x_t = rng.binomial(1, 0.15, (400, n_per_arm)).astype(float)
    x_c[rng.random(x_c.shape) < 0.1] = np.nan
    x_c[0] = np.nan  # an empty arm
    spec = registry.get("fisher")
    stats_ = spec.run(x_c, x_t, 0.05)
    res = binary.binary_test("fisher", x_c, x_t, alpha=0.05)
    np.testing.assert_array_equal(stats_.pvalue, res.pvalue)  # bit-identical p-values and decisions
    np.testing.assert_array_equal(stats_.reject, res.reject)
    assert spec.estimand == "log_odds_ratio" and registry.estimand_label(spec.estimand, "linear") == "odds ratio"
    want = conditional_log_or(res.n_control, res.n_treatment, res.events_control, res.events_treatment, alpha=0.05)
    for got, expected in zip((stats_.estimate, *stats_.ci()), want):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_allclose(got[np.isfinite(got)], expected[np.isfinite(expected)], rtol=0, atol=1e-10)
    assert np.isnan(stats_.estimate[0]) and not stats_.valid[0]
    for name in ("chi2", "boschloo"):
        assert registry.get(name).estimand == "risk_difference"
