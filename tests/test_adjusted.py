"""Covariate-adjusted tests (Mantel-Haenszel, logistic): trial-by-trial agreement with statsmodels, their
validity rules, and what they buy under allocation with a selection effect."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.stats import chi2, chi2_contingency
from statsmodels.stats.contingency_tables import StratifiedTable

from trialsim.analysis.adjusted import MAX_ABS_LOG_OR, logistic, mantel_haenszel
from trialsim.config.loader import to_raw, validate
from trialsim.exact import exact_rows
from trialsim.model import build_model
from trialsim.rng import Streams
from trialsim.simulate import simulate_trials

ALPHA = 0.05


def random_trials(seed: int, n_trials: int, n_control: int, n_treatment: int, k: int, *, missing: float = 0.1):
    """Binary outcomes depending on arm and k binary covariates, some NaN; covariates split by arm."""
    rng = np.random.default_rng(seed)
    z_c = (rng.random((n_trials, n_control, k)) < 0.5).astype(float)
    z_t = (rng.random((n_trials, n_treatment, k)) < 0.4).astype(float)
    beta = np.linspace(0.8, -0.5, k)
    p_c = 1 / (1 + np.exp(-(-1.0 + z_c @ beta)))
    p_t = 1 / (1 + np.exp(-(-1.5 + z_t @ beta)))
    y_c = (rng.random(p_c.shape) < p_c).astype(float)
    y_t = (rng.random(p_t.shape) < p_t).astype(float)
    y_c[rng.random(y_c.shape) < missing] = np.nan
    y_t[rng.random(y_t.shape) < missing] = np.nan
    return y_c, y_t, (z_c, z_t)


def stratified_tables(y_c, y_t, z_c, z_t) -> np.ndarray:
    """2 x 2 x K tables (rows treatment, control; columns event, none) of one trial's strata with >= 2 patients
    (a stratum of one patient adds nothing to the MH sums; statsmodels' null variance would divide by n - 1 = 0)."""
    tables = []
    for code in {tuple(r) for r in np.concatenate([z_c, z_t])}:
        in_c = (z_c == code).all(axis=1) & ~np.isnan(y_c)
        in_t = (z_t == code).all(axis=1) & ~np.isnan(y_t)
        a, b = y_t[in_t].sum(), (1 - y_t[in_t]).sum()
        c, d = y_c[in_c].sum(), (1 - y_c[in_c]).sum()
        if a + b + c + d >= 2:
            tables.append([[a, b], [c, d]])
    return np.array(tables, dtype=float).transpose(1, 2, 0)


def test_mantel_haenszel_agrees_with_statsmodels_trial_by_trial():
    y_c, y_t, (z_c, z_t) = random_trials(1, 40, 30, 25, 2)
    res = mantel_haenszel(y_c, y_t, ALPHA, covariates=(z_c, z_t))
    low, high = res.ci()
    checked = 0
    for i in range(40):
        st = StratifiedTable(stratified_tables(y_c[i], y_t[i], z_c[i], z_t[i]))
        if not (math.isfinite(res.estimate[i]) and res.valid[i]):
            continue
        # statsmodels 0.14: logodds_pooled, logodds_pooled_se (Robins-Breslow-Greenland), test_null_odds
        assert res.estimate[i] == pytest.approx(st.logodds_pooled, rel=1e-10)
        lo, hi = st.logodds_pooled_confint(alpha=ALPHA)
        assert (low[i], high[i]) == pytest.approx((lo, hi), rel=1e-9)
        assert res.pvalue[i] == pytest.approx(st.test_null_odds(correction=False).pvalue, rel=1e-9)
        assert res.reject[i] == (res.pvalue[i] <= ALPHA)
        checked += 1
    assert checked >= 35


def test_mantel_haenszel_with_one_stratum_is_the_uncorrected_chi_square():
    # no covariates: one stratum, CMH = (N - 1) / N x Pearson's chi-square (Agresti 2013, Categorical Data
    # Analysis, 3rd ed., sect. 6.4.2); checked against scipy's chi2_contingency without correction
    y_c, y_t, _ = random_trials(2, 10, 20, 20, 0, missing=0.0)
    empty = (np.zeros((10, 20, 0)), np.zeros((10, 20, 0)))
    res = mantel_haenszel(y_c, y_t, ALPHA, covariates=empty)
    for i in range(10):
        events = y_t[i].sum() + y_c[i].sum()
        if events in (0, 40):
            assert not res.valid[i]
            continue
        table = [[y_t[i].sum(), 20 - y_t[i].sum()], [y_c[i].sum(), 20 - y_c[i].sum()]]
        statistic = chi2_contingency(table, correction=False).statistic * 39 / 40
        assert res.pvalue[i] == pytest.approx(chi2.sf(statistic, 1), rel=1e-9)
        assert res.valid[i]


def test_mantel_haenszel_without_an_informative_stratum_is_not_valid():
    y_c = np.array([[0.0, 0.0, np.nan]])
    y_t = np.array([[0.0, 0.0, 0.0]])
    z = (np.zeros((1, 3, 1)), np.zeros((1, 3, 1)))
    res = mantel_haenszel(y_c, y_t, ALPHA, covariates=z)
    assert not res.valid[0] and not res.reject[0] and np.isnan(res.pvalue[0])


def test_logistic_agrees_with_statsmodels_trial_by_trial():
    y_c, y_t, (z_c, z_t) = random_trials(3, 40, 40, 35, 3)
    res = logistic(y_c, y_t, ALPHA, covariates=(z_c, z_t))
    low, high = res.ci()
    assert res.valid.sum() >= 35
    for i in range(40):
        y = np.concatenate([y_c[i], y_t[i]])
        x = np.column_stack([np.ones(75), np.r_[np.zeros(40), np.ones(35)], np.concatenate([z_c[i], z_t[i]])])
        keep = ~np.isnan(y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fit = sm.Logit(y[keep], x[keep]).fit(disp=0, method="newton", maxiter=100)
            except Exception:  # statsmodels refuses perfect separation / singular designs
                assert not res.valid[i]
                continue
        if not res.valid[i]:
            assert not fit.mle_retvals["converged"] or abs(fit.params[1]) > MAX_ABS_LOG_OR or np.isnan(fit.bse[1])
            continue
        assert res.estimate[i] == pytest.approx(fit.params[1], rel=1e-6, abs=1e-9)
        assert res.pvalue[i] == pytest.approx(fit.pvalues[1], rel=1e-5)
        lo, hi = fit.conf_int(alpha=ALPHA)[1]
        assert (low[i], high[i]) == pytest.approx((lo, hi), rel=1e-6)


def test_logistic_marks_separation_and_rank_deficiency_not_valid():
    # trial 0: every treated patient has the event and no control does (complete separation by arm);
    # trial 1: the covariate is 1 for everyone analysable (collinear with the intercept);
    # trial 2: an ordinary fit
    y_c = np.array([[0, 0, 0, 0, 0, 0], [0, 1, 0, 1, 0, 0], [0, 1, 0, 1, 0, 0]], float)
    y_t = np.array([[1, 1, 1, 1, 1, 1], [1, 0, 1, 0, 1, 1], [1, 0, 0, 0, 1, 1]], float)
    z_c = np.array([[0, 1, 0, 1, 0, 1], [1] * 6, [0, 1, 1, 0, 0, 1]], float)[..., None]
    z_t = np.array([[1, 0, 1, 0, 1, 0], [1] * 6, [1, 0, 0, 1, 1, 0]], float)[..., None]
    res = logistic(y_c, y_t, ALPHA, covariates=(z_c, z_t))
    assert res.valid.tolist() == [False, False, True]
    assert not res.reject[:2].any() and np.isnan(res.estimate[:2]).all()


# ------------------------------------------------------------------------------ in simulated trials
def selection_scenario(default_scenario, *, n_per_arm: int, selection_or: float, effect: float = 1.0,
                       scheme: str = "selected"):
    """The registered trial's leak alone, at ``n_per_arm`` per arm, allocated with a selection effect."""
    raw = to_raw(default_scenario)
    raw["endpoints"] = {"leak_1m": raw["endpoints"]["leak_1m"]}
    raw["endpoints"]["leak_1m"].update(effect=effect, tests=["fisher", "chi2", "mantel_haenszel", "logistic"])
    raw["design"].update(n_control=n_per_arm, n_treatment=n_per_arm)
    raw["follow_up"]["death_event"] = None
    raw["allocation"] = {"scheme": scheme, "selection_odds_ratio": selection_or}
    return validate(raw)


def test_no_exact_rows_when_the_arms_are_chosen_on_the_endpoints_covariates(default_scenario):
    selected = selection_scenario(default_scenario, n_per_arm=10, selection_or=0.5)
    assert exact_rows(selected) == []
    # the same trial allocated by a random choice of patients keeps its exact rows
    assert exact_rows(selection_scenario(default_scenario, n_per_arm=10, selection_or=1.0, scheme="sequential"))


def test_the_conditional_odds_ratio_is_known_only_where_the_observed_endpoint_is_logistic(default_scenario):
    null = build_model(selection_scenario(default_scenario, n_per_arm=10, selection_or=0.5))
    assert null.true_effect("leak_1m", "log_conditional_odds_ratio") == 0.0
    effect = build_model(selection_scenario(default_scenario, n_per_arm=10, selection_or=0.5, effect=0.5))
    assert effect.true_effect("leak_1m", "log_conditional_odds_ratio") is None  # silent leaks found in part
    raw = to_raw(effect.scenario)
    raw["endpoints"]["leak_1m"]["p_detect_first_grade"] = 1.0
    full = build_model(validate(raw))
    truth = full.true_effect("leak_1m", "log_conditional_odds_ratio")
    marginal = full.true_effect("leak_1m", "log_odds_ratio")
    # the odds ratio is not collapsible: at fixed prognostic covariates it lies further from 1 than the
    # marginal one (Gail, Wieand & Piantadosi 1984, Biometrika 71:431-444)
    assert truth < marginal < 0
    raw["endpoints"]["leak_1m"]["risk_factors"] = []
    plain = build_model(validate(raw))
    # without covariates it is the marginal log odds ratio of the all-grade rates: RR 0.5 on 0.12 / 0.75 = 0.16
    assert plain.true_effect("leak_1m", "log_conditional_odds_ratio") == pytest.approx(
        math.log(0.08 / 0.92) - math.log(0.16 / 0.84), rel=1e-9)


@pytest.mark.slow
def test_selection_inflates_the_unadjusted_type_i_error_and_adjustment_removes_it(default_scenario):
    # 150 per arm, no treatment effect, surgeons favour low-risk patients (OR 0.25 per unit of the leak's
    # log-odds risk score). 1000 trials: MC SE of a rate near 0.05 is 0.007.
    n_sims = 1000
    batch = simulate_trials(selection_scenario(default_scenario, n_per_arm=150, selection_or=0.25), n_sims,
                            streams=Streams(20261202, 0))
    rate = {t: batch.stats[("leak_1m", t)].reject.mean() for t in ("fisher", "chi2", "mantel_haenszel", "logistic")}
    se = math.sqrt(ALPHA * (1 - ALPHA) / n_sims)
    assert rate["chi2"] > ALPHA + 10 * se and rate["fisher"] > ALPHA + 10 * se
    assert rate["mantel_haenszel"] < ALPHA + 3 * se and rate["logistic"] < ALPHA + 3 * se
    assert batch.stats[("leak_1m", "logistic")].valid.mean() > 0.99
    # bias on the log odds ratio scale (truth 0): Fisher's conditional MLE vs the adjusted estimates
    unadjusted = batch.stats[("leak_1m", "fisher")].estimate
    assert np.isfinite(unadjusted).all()
    assert unadjusted.mean() < -0.5
    for t in ("mantel_haenszel", "logistic"):
        est = batch.stats[("leak_1m", t)].estimate
        est = est[np.isfinite(est)]
        # the adjusted estimators carry a small-sample bias (O(1/events): about 40 events per trial here)
        # but no selection bias: well under a tenth of the unadjusted one
        assert abs(est.mean()) < 0.1 * abs(unadjusted.mean())
        covered = batch.stats[("leak_1m", t)].covers(0.0)
        assert covered.mean() > 1 - ALPHA - 3 * se


@pytest.mark.slow
def test_the_adjusted_intervals_cover_the_conditional_odds_ratio(default_scenario):
    # a true effect (RR 0.5), every leak found (so the endpoint is logistic in arm and covariates), permuted
    # blocks at 150 per arm: the logistic Wald interval must cover the conditional log OR about 95% of the time
    raw = to_raw(selection_scenario(default_scenario, n_per_arm=150, selection_or=1.0, effect=0.5, scheme="permuted_block"))
    raw["endpoints"]["leak_1m"].update(p_detect_first_grade=1.0, tests=["logistic"])
    sc = validate(raw)
    truth = build_model(sc).true_effect("leak_1m", "log_conditional_odds_ratio")
    n_sims = 600
    stats = simulate_trials(sc, n_sims, streams=Streams(7, 0)).stats
    se = math.sqrt(ALPHA * (1 - ALPHA) / n_sims)
    covered = stats[("leak_1m", "logistic")].covers(truth)
    assert abs(covered.mean() - (1 - ALPHA)) < 3.5 * se
