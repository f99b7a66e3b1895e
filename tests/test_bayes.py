"""Bayesian analyses and the go / no-go rule: posteriors against closed forms and quadrature, PPoS against
its closed form and Monte Carlo over the posterior, simulated decisions against exact enumeration."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import integrate, special, stats

from trialsim.analysis import bayes
from trialsim.analysis.registry import TrialStats
from trialsim.config.bayes import BayesConfig
from trialsim.config.loader import load_scenario, with_values
from trialsim.decide import decide
from trialsim.decide.bayes import classify, exact_go_nogo
from trialsim.planning.gonogo import go_nogo_curve
from trialsim.rng import Streams
from trialsim.simulate import simulate_trials

PILOT = Path(__file__).resolve().parents[1] / "configs" / "designs" / "bayes_pilot_20.toml"


def cook_p_t_above_c(a_t: int, b_t: float, a_c: float, b_c: float) -> float:
    """P(p_t > p_c) for integer a_t, the finite sum of Cook (2003), Exact calculation of beta inequalities
    (also Evan Miller, "Formulas for Bayesian A/B testing"):
    sum_{i=0}^{a_t-1} B(a_c + i, b_c + b_t) / ((b_t + i) B(1 + i, b_t) B(a_c, b_c))."""
    i = np.arange(int(a_t))
    return float(np.exp(special.betaln(a_c + i, b_c + b_t) - np.log(b_t + i) - special.betaln(1 + i, b_t)
                        - special.betaln(a_c, b_c)).sum())


def quad_below(a_t, b_t, a_c, b_c, *, ratio=1.0, shift=0.0) -> float:
    """P(p_t < ratio p_c + shift) by adaptive quadrature of f_c(p) F_t(ratio p + shift)."""
    f = lambda p: stats.beta.pdf(p, a_c, b_c) * stats.beta.cdf(min(max(ratio * p + shift, 0.0), 1.0), a_t, b_t)  # noqa: E731
    return integrate.quad(f, 0.0, 1.0, epsabs=1e-12, epsrel=1e-10, limit=200)[0]


# -------------------------------------------------------------------------------------- Beta posteriors
def test_p_treatment_lower_equals_cooks_closed_form():
    rng = np.random.default_rng(3)
    n_c, n_t = rng.integers(1, 150, 200), rng.integers(1, 150, 200)
    e_c, e_t = rng.integers(0, n_c + 1), rng.integers(0, n_t + 1)
    post = bayes.beta_binomial_posterior(e_c, n_c, e_t, n_t, config=BayesConfig())  # Beta(1, 1) priors
    closed = [1.0 - cook_p_t_above_c(1 + et, 1 + nt - et, 1 + ec, 1 + nc - ec) for ec, nc, et, nt in zip(e_c, n_c, e_t, n_t)]
    np.testing.assert_allclose(post.p_benefit, closed, atol=1e-10)


@pytest.mark.parametrize("params", [(0.5, 10.5, 3.5, 7.5), (1.2, 18.8, 1.2, 8.8), (1.01, 500.0, 30.0, 470.0), (2, 9, 5, 6)])
@pytest.mark.parametrize("ratio", [0.5, 0.75, 1.0])
def test_beta_probabilities_equal_adaptive_quadrature(params, ratio):
    assert bayes.beta_prob_below(*params, ratio=ratio) == pytest.approx(quad_below(*params, ratio=ratio), abs=1e-9)


def test_credible_interval_ends_are_the_quantiles_of_the_difference():
    config = BayesConfig(prior_control=(1.2, 8.8), prior_treatment=(1.2, 8.8))
    e_c, n_c, e_t, n_t = np.array([1, 0, 3, 9]), np.array([10, 9, 10, 40]), np.array([0, 2, 1, 4]), np.array([10, 10, 8, 35])
    post = bayes.beta_binomial_posterior(e_c, n_c, e_t, n_t, config=config, alpha=0.05)
    low, high = post.interval()
    for i in range(4):
        a = (1.2 + e_t[i], 8.8 + n_t[i] - e_t[i], 1.2 + e_c[i], 8.8 + n_c[i] - e_c[i])
        assert quad_below(*a, shift=low[i]) == pytest.approx(0.025, abs=1e-8)
        assert quad_below(*a, shift=high[i]) == pytest.approx(0.975, abs=1e-8)
        assert post.mean[i] == pytest.approx(a[0] / (a[0] + a[1]) - a[2] / (a[2] + a[3]))


def test_higher_is_better_flips_benefit():
    e = (np.array([2]), np.array([10]), np.array([5]), np.array([10]))
    lower = bayes.beta_binomial_posterior(*e, config=BayesConfig())
    higher = bayes.beta_binomial_posterior(*e, config=BayesConfig(benefit="higher", meaningful_risk_ratio=1.25,
                                                                    meaningful_difference=0.2))
    assert higher.p_benefit[0] == pytest.approx(1.0 - lower.p_benefit[0])
    assert higher.p_meaningful[0] == pytest.approx(1.0 - quad_below(6, 6, 3, 9, ratio=1.25), abs=1e-9)


# ------------------------------------------------------------------------------------------------ PPoS
def test_binary_ppos_equals_monte_carlo_over_the_posterior():
    config = BayesConfig(confirmatory_n_per_arm=150)
    a_t, b_t, a_c, b_c = 2.0, 10.0, 4.0, 8.0
    ppos = float(bayes.beta_ppos(a_t, b_t, a_c, b_c, config))
    rng = np.random.default_rng(11)
    power = bayes.z_test_power(rng.beta(a_c, b_c, 400_000), rng.beta(a_t, b_t, 400_000), 150, 0.05, -1.0)
    assert ppos == pytest.approx(power.mean(), abs=4 * power.std() / np.sqrt(power.size))


def test_z_test_power_equals_statsmodels():
    # statsmodels.stats.proportion.power_proportions_2indep (two-sided z test, pooled variance under the null)
    from statsmodels.stats.proportion import power_proportions_2indep

    ref = power_proportions_2indep(-0.06, 0.12, 300, alpha=0.05, alternative="two-sided").power
    mine = float(bayes.z_test_power(0.12, 0.06, 300, 0.05, -1.0))
    assert mine == pytest.approx(ref, abs=2e-3)  # statsmodels adds the (tiny) wrong-direction tail


# ---------------------------------------------------------------------------------------------- normal
def test_normal_posterior_is_the_conjugate_update():
    config = BayesConfig(normal_prior_mean=0.1, normal_prior_sd=0.5, meaningful_difference=-0.2)
    d, se = np.array([-0.4, 0.3]), np.array([0.25, 0.4])
    post = bayes.normal_posterior(d, se, np.array([10, 10]), np.array([10, 12]), config=config, alpha=0.1)
    precision = 1 / 0.5**2 + 1 / se**2
    mean = (0.1 / 0.5**2 + d / se**2) / precision
    sd = precision**-0.5
    np.testing.assert_allclose(post.mean, mean)
    np.testing.assert_allclose(post.p_benefit, stats.norm.cdf(0, mean, sd))
    np.testing.assert_allclose(post.p_meaningful, stats.norm.cdf(-0.2, mean, sd))
    low, high = post.interval()
    np.testing.assert_allclose(low, stats.norm.ppf(0.05, mean, sd))
    np.testing.assert_allclose(high, stats.norm.ppf(0.95, mean, sd))


def test_flat_normal_prior_gives_the_wald_test():
    config = BayesConfig(normal_prior_sd=100.0)
    d, se = np.array([-0.5, 0.2]), np.array([0.2, 0.3])
    stats_ = bayes.normal_posterior(d, se, np.array([8, 8]), np.array([8, 8]), config=config).stats(np.array([True, True]), 0.05)
    # a prior SD of 100 against an SE of 0.2-0.3 still pulls by ~1e-5 (relative): the Wald test in the limit
    np.testing.assert_allclose(stats_.pvalue, 2 * stats.norm.sf(np.abs(d / se)), rtol=1e-4)


def test_normal_ppos_closed_form_equals_monte_carlo():
    """PPoS = Phi((-m - z se_new) / sqrt(s^2 + se_new^2)) (O'Hagan et al. 2005 assurance), by simulation:
    effect from the posterior, then the confirmatory estimate and its z test."""
    config = BayesConfig(normal_prior_sd=0.35, confirmatory_n_per_arm=80)
    d, se, n = -0.3, 0.3, 10
    post = bayes.normal_posterior(np.array([d]), np.array([se]), np.array([n]), np.array([n]), config=config)
    sigma = se / np.sqrt(2 / n)
    se_new = sigma * np.sqrt(2 / 80)
    rng = np.random.default_rng(5)
    precision = 1 / 0.35**2 + 1 / se**2
    effect = rng.normal((d / se**2) / precision, precision**-0.5, 1_000_000)
    success = rng.normal(effect, se_new) / se_new < -1.959963984540054
    assert post.ppos[0] == pytest.approx(success.mean(), abs=4 * success.std() / 1000)


# ----------------------------------------------------------------------------------------- TrialStats
def test_take_keeps_extra_values():
    s = TrialStats(reject=np.zeros((2, 3), bool), valid=np.ones((2, 3), bool), estimate=np.zeros((2, 3)),
                   pvalue=np.ones((2, 3)), alpha=0.05, extra={"p_benefit": np.arange(6.0).reshape(2, 3)})
    np.testing.assert_array_equal(s.take(1).extra["p_benefit"], [3.0, 4.0, 5.0])


# -------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("bad", [{"nogo_benefit": 0.85}, {"meaningful_risk_ratio": 1.2}, {"meaningful_difference": 0.1},
                                 {"prior_control": [0.0, 1.0]}, {"benefit": "higher"}, {"go_threshold": 1.0}])
def test_bad_bayes_settings_are_refused(bad):
    with pytest.raises(ValidationError):
        BayesConfig(**bad)


def test_decisions_are_exclusive_and_exhaustive():
    rng = np.random.default_rng(2)
    p_b = rng.uniform(0, 1, 5000)
    out = classify(p_b, p_b * rng.uniform(0, 1, 5000), BayesConfig())
    total = out["go"].astype(int) + out["no_go"] + out["inconclusive"]
    assert (total == 1).all()


# ------------------------------------------------------------------------------ operating characteristics
@pytest.fixture(scope="module")
def pilot():
    return load_scenario(PILOT)


def test_simulated_decisions_equal_exact_enumeration(pilot):
    """4000 simulated 10 vs 10 trials (seed 7) against the exact sum over outcomes (with missing outcomes)."""
    exact = exact_go_nogo(pilot)
    sc = with_values(pilot, {"endpoints.cytokines.tests": [], "endpoints.colonoscopy.tests": [],
                             "endpoints.colonoscopy.dichotomised_tests": [], "endpoints.los_days.tests": []})
    rows = []
    for block in range(4):
        batch = simulate_trials(sc, 1000, streams=Streams(7, block))
        rows.append(decide(batch).outcomes["go_nogo"])
    for outcome in ("go", "no_go", "inconclusive", "p_benefit", "ppos"):
        x = np.concatenate([r[("leak_1m", "beta_binomial", outcome)].astype(float) for r in rows])
        se = x.std() / np.sqrt(x.size)
        assert abs(x.mean() - exact[outcome]) < 4 * se, (outcome, x.mean(), exact[outcome], se)


def test_null_with_a_sceptical_prior_rarely_says_go(pilot):
    null = exact_go_nogo(with_values(pilot, {"endpoints.leak_1m.effect": 1.0}))
    assert null["go"] < 0.05  # 4.95% with the pilot's Beta(1.2, 8.8) priors
    assert null["p_benefit"] == pytest.approx(0.5, abs=1e-9)  # equal priors and equal laws: symmetric
    assert sum(null[k] for k in ("go", "no_go", "inconclusive")) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def curve(pilot):
    return go_nogo_curve(pilot, [0.3, 1.0, 1.5])


def test_go_rises_and_no_go_falls_with_the_effect(curve):
    assert curve["go"].is_monotonic_decreasing and curve["no_go"].is_monotonic_increasing
    assert curve["is_null"].sum() == 1 and curve["is_assumed"].sum() == 1  # 0.5 added to the grid


def test_figure_draws_three_curves(curve):
    from trialsim.report.figures import plot_go_nogo

    ax = plot_go_nogo(curve)
    assert len(ax.get_lines()) == 3 + 2  # go, no-go, inconclusive; null and assumed marked
