"""Fast paths give the same bits as the general computations they stand in for."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import special

from trialsim.analyse import analyse, analyse_batch, estimates, run_test
from trialsim.analysis import continuous
from trialsim.analysis.continuous import _moments, nan_mean, nan_median, _rank_sums, _u_pairwise, mann_whitney
from trialsim.endpoints import endpoints
from trialsim.outcomes.patients import observe, simulate_arm
from trialsim.simulate import simulate_trials, summarise_batch


def _mixed_rows(rng, rows: int, n: int) -> np.ndarray:
    """Continuous rows, ordinal rows (ties) and rows with NaN, some empty."""
    x = rng.normal(size=(rows, n))
    x[: rows // 3] = rng.integers(0, 4, size=(rows // 3, n))
    x[rng.random(x.shape) < 0.15] = np.nan
    x[-1] = np.nan
    return x


@pytest.mark.parametrize("n_c, n_t", [(10, 10), (3, 7), (12, 5), (1, 1)])
def test_pairwise_u_equals_rank_sums(n_c, n_t):
    rng = np.random.default_rng(1)
    xc, xt = _mixed_rows(rng, 300, n_c), _mixed_rows(rng, 300, n_t)
    xt[5] = xc[5, 0]  # ties across arms only
    u1, tie_term = _u_pairwise(xc, xt)
    r1, tie_ref = _rank_sums(xc, xt)
    n_obs = np.sum(~np.isnan(xc), axis=-1)
    np.testing.assert_array_equal(u1, r1 - n_obs * (n_obs + 1) / 2.0)
    np.testing.assert_array_equal(tie_term, tie_ref)


def test_mann_whitney_pairwise_and_rank_paths_agree(monkeypatch):
    rng = np.random.default_rng(2)
    xc, xt = _mixed_rows(rng, 400, 10).reshape(4, 100, 10), _mixed_rows(rng, 400, 9).reshape(4, 100, 9)
    fast = mann_whitney(xc, xt)
    monkeypatch.setattr(continuous, "_PAIRWISE_MAX_PAIRS", 0)
    ranked = mann_whitney(xc, xt)
    for field in ("statistic", "pvalue", "n_control", "n_treatment", "exact"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(ranked, field))


def test_moments_and_means_equal_the_masked_formulas():
    rng = np.random.default_rng(3)
    x = _mixed_rows(rng, 500, 10).reshape(5, 100, 10)
    n, mean, ss = _moments(x)
    ok = ~np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref_mean = np.where(ok, x, 0.0).sum(axis=-1) / ok.sum(axis=-1)
        dev = np.where(ok, x - ref_mean[..., None], 0.0)
        np.testing.assert_array_equal(n, ok.sum(axis=-1))
        np.testing.assert_array_equal(mean, ref_mean)
        np.testing.assert_array_equal(ss, np.sum(dev * dev, axis=-1))
        np.testing.assert_array_equal(nan_mean(x)[1], np.nanmean(x, axis=-1))
        np.testing.assert_array_equal(nan_median(x), np.nanmedian(x, axis=-1))
        odd = x[..., :9]
        np.testing.assert_array_equal(nan_median(odd), np.nanmedian(odd, axis=-1))


def test_stacked_analysis_equals_one_test_per_endpoint(default_scenario):
    rng = np.random.default_rng(4)
    obs = {arm: observe(default_scenario, simulate_arm(default_scenario, arm, 300, 10, rng=rng)) for arm in ("control", "treatment")}
    tests = analyse(default_scenario, obs["control"], obs["treatment"])
    alpha = default_scenario.design.alpha
    for e in endpoints(default_scenario):
        for t in e.tests:
            ref = run_test(e, t, obs["control"][e.name], obs["treatment"][e.name], alpha=alpha)
            np.testing.assert_array_equal(tests[(e.name, t)].pvalue, ref.pvalue)
            np.testing.assert_array_equal(tests[(e.name, t)].reject, ref.reject)
    both_tests, both_estimates = analyse_batch(default_scenario, obs["control"], obs["treatment"])
    assert list(both_tests) == list(tests)
    est = estimates(default_scenario, obs["control"], obs["treatment"])
    assert list(both_estimates) == list(est)
    for k, values in est.items():
        np.testing.assert_array_equal(both_estimates[k], values)
    # the estimates are numpy's nanmean / nanmedian, bit for bit
    for e in endpoints(default_scenario):
        x = obs["control"][e.name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = np.exp(np.nanmedian(x, axis=-1)) if e.name == "los_days" else np.nanmean(x, axis=-1)
        if e.scale == "log" and e.name != "los_days":
            ref = np.exp(ref)
        np.testing.assert_array_equal(est[(e.name, "control", "n_analysable")], np.sum(~np.isnan(x), axis=-1))
        key = [k for k in est if k[0] == e.name and k[1] == "control"][0]
        np.testing.assert_array_equal(est[key], ref)


def test_cytokine_mean_log_is_the_nanmean_of_the_days(default_scenario):
    data = simulate_arm(default_scenario, "control", 500, 10, rng=np.random.default_rng(5))
    cyto = default_scenario.cytokines
    for m in cyto.markers:
        days = np.stack([data[f"{m.name}_pod{d}"] for d in cyto.days], axis=-1)
        np.testing.assert_array_equal(data[f"{m.name}_mean_log"], np.nanmean(days, axis=-1))
        assert data[f"{m.name}_pod{cyto.days[0]}"].flags.c_contiguous


def test_observe_without_flow_equals_everyone_enrolled(default_scenario):
    data = simulate_arm(default_scenario, "treatment", 200, 10, rng=np.random.default_rng(6))
    shape = data["died"].shape
    fast = observe(default_scenario, data)
    general = observe(default_scenario, data, enrolled=np.ones(shape, dtype=bool))
    assert list(fast) == list(general)
    for name in fast:
        np.testing.assert_array_equal(fast[name], general[name])


def test_block_summary_equals_sums_per_key(default_scenario):
    batch = simulate_trials(default_scenario, 700, rng=np.random.default_rng(7))
    batch.estimates[("extra", "control", "with_nan")] = np.where(np.arange(700) % 3 == 0, np.nan, 1.5)
    summary = summarise_batch(batch, block=0, n_sims=700)
    for (ep, test), res in batch.tests.items():
        assert summary.rejects[f"{ep}|{test}"] == int(np.count_nonzero(res.reject))
        assert summary.valid[f"{ep}|{test}"] == int(np.count_nonzero(~np.isnan(res.pvalue)))
    for parts, values in batch.estimates.items():
        ok = np.isfinite(values)
        k = "|".join(parts)
        assert summary.est_sum[k] == float(np.sum(values[ok]))
        assert summary.est_sumsq[k] == float(np.sum(values[ok] ** 2))
        assert summary.est_count[k] == int(np.count_nonzero(ok))


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2, 1e-6])
def test_t_decisions_by_critical_values_equal_the_pvalue_decisions(alpha):
    rng = np.random.default_rng(8)
    df = np.concatenate([rng.uniform(0.5, 40.0, 20_000), continuous._T_CRIT_DF[::7], [0.3, 1.0, 1e6, 3e7, np.nan, 5.0, 5.0]])
    crit = -special.stdtrit(df, alpha / 2.0)
    # |t| spread around the critical value, some exactly on it, and the edge cases
    t = crit * rng.choice([-1.0, 1.0], df.size) * np.where(rng.random(df.size) < 0.2, 1.0, rng.uniform(0.9, 1.1, df.size))
    t[-3:] = [np.inf, np.nan, 0.0]
    reject = continuous.t_reject(t, df, alpha)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(reject, continuous._t_pvalue(t, df) <= alpha)
    # the tabulated critical values are accurate and fall as df grows
    table = continuous._t_critical(alpha)
    assert np.all(np.diff(table) < 0)
    np.testing.assert_allclose(2 * special.stdtr(continuous._T_CRIT_DF, -table[:-1]), alpha, rtol=1e-9)


def test_t_test_results_compute_pvalues_only_when_asked():
    rng = np.random.default_rng(9)
    xc, xt = _mixed_rows(rng, 400, 10), _mixed_rows(rng, 400, 8)
    res = continuous.welch_t(xc, xt)
    reject, valid = res.reject(0.05), res.valid()
    assert res._pvalue is None
    np.testing.assert_array_equal(reject, res.pvalue <= 0.05)
    np.testing.assert_array_equal(valid, ~np.isnan(res.pvalue))
