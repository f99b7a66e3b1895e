"""The continuity-corrected and 'N-1' chi-square tests, and the power table's exact-size flag."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from trialsim.analysis import binary
from trialsim.analysis import registry as tests
from trialsim.api import run
from trialsim.config.loader import with_values
from trialsim.exact import exact_binary_power, exact_sizes, no_effect
from trialsim.model import build_model
from trialsim.report.console import run_summary
from trialsim.rng import Streams
from trialsim.simulate import simulate_trials

VARIANTS = ("chi2_yates", "chi2_n1")


def _scipy_yates(n1, n2, x1, x2) -> float:
    """scipy.stats.chi2_contingency with Yates' correction; 1 where a margin is empty (as the tests define it)."""
    table = np.array([[x1, n1 - x1], [x2, n2 - x2]])
    if table.sum(axis=0).min() == 0:
        return 1.0
    return float(stats.chi2_contingency(table, correction=True).pvalue)


def _campbell_n1(n1, n2, x1, x2) -> float:
    """Campbell 2007 (Stat Med 26:3661), eq. for the 'N-1' chi-square: (ad - bc)^2 (N - 1) / (m n r s)."""
    a, b, c, d = x1, n1 - x1, x2, n2 - x2
    n = n1 + n2
    if (a + c) in (0, n):
        return 1.0
    statistic = (a * d - b * c) ** 2 * (n - 1) / ((a + b) * (c + d) * (a + c) * (b + d))
    return float(stats.chi2.sf(statistic, 1))


@pytest.mark.parametrize("n1, n2", [(5, 5), (10, 10), (7, 12), (30, 30)])
def test_tables_equal_the_references_on_every_table(n1, n2):
    yates, n_minus_1 = binary.pvalue_table("chi2_yates", n1, n2), binary.pvalue_table("chi2_n1", n1, n2)
    for x1 in range(n1 + 1):
        for x2 in range(n2 + 1):
            assert yates[x1, x2] == pytest.approx(_scipy_yates(n1, n2, x1, x2), rel=1e-10, abs=1e-14), (x1, x2)
            assert n_minus_1[x1, x2] == pytest.approx(_campbell_n1(n1, n2, x1, x2), rel=1e-10, abs=1e-14), (x1, x2)


def test_n_minus_1_is_pearson_scaled():
    """Same table: the N-1 statistic is Pearson's times (N - 1) / N, so its p-value is never smaller."""
    n1, n2 = 12, 9
    pearson = stats.chi2.isf(binary.pvalue_table("chi2", n1, n2), 1)
    scaled = stats.chi2.isf(binary.pvalue_table("chi2_n1", n1, n2), 1)
    finite = np.isfinite(pearson) & (pearson > 0)
    np.testing.assert_allclose(scaled[finite], pearson[finite] * (n1 + n2 - 1) / (n1 + n2), rtol=1e-8)


@pytest.mark.parametrize("test", VARIANTS)
def test_simulated_trials_equal_scipy_trial_by_trial(default_scenario, test):
    """Through the whole pipeline (missing values, the direct path above 60 per arm too)."""
    for n in (12, 70):
        sc = with_values(default_scenario, {"design.n_control": n, "design.n_treatment": n,
                                            "endpoints.leak_1m.tests": ["fisher", test]})
        batch = simulate_trials(sc, 60, streams=Streams(3, 0), keep_patients=True)
        s = batch.stats[("leak_1m", test)]
        x = batch.patients.observed["leak_1m"]
        treated = batch.patients.treated
        reference = _scipy_yates if test == "chi2_yates" else _campbell_n1
        for i in range(batch.n_trials):
            xc, xt = x[i][~treated[i]], x[i][treated[i]]
            xc, xt = xc[~np.isnan(xc)], xt[~np.isnan(xt)]
            expected = reference(xc.size, xt.size, int(xc.sum()), int(xt.sum()))
            assert s.pvalue[i] == pytest.approx(expected, rel=1e-10, abs=1e-14)
            assert s.estimate[i] == pytest.approx(xt.mean() - xc.mean())
        assert tests.get(test).estimand == "risk_difference" and s.has_interval


@pytest.mark.parametrize("test", VARIANTS)
@pytest.mark.parametrize("n1, n2, p1, p2", [(10, 10, 0.12, 0.12), (30, 30, 0.12, 0.12), (15, 25, 0.3, 0.1)])
def test_exact_power_equals_enumeration(test, n1, n2, p1, p2):
    """Sum of Binomial x Binomial probabilities over the tables the reference rejects."""
    expected = sum(stats.binom.pmf(x1, n1, p1) * stats.binom.pmf(x2, n2, p2)
                   for x1 in range(n1 + 1) for x2 in range(n2 + 1)
                   if (_scipy_yates if test == "chi2_yates" else _campbell_n1)(n1, n2, x1, x2) <= 0.05)
    assert tests.get(test).exact_power(p1, p2, n1, n2, 0.05, 0.0) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_sizes_order_as_the_statistics():
    """Yates' statistic <= N-1 <= Pearson's on every table, so their sizes order the same way."""
    for n in (10, 30, 50):
        sizes = [tests.get(t).exact_power(0.12, 0.12, n, n, 0.05, 0.0) for t in ("chi2_yates", "chi2_n1", "chi2")]
        assert sizes[0] <= sizes[1] + 1e-12 and sizes[1] <= sizes[2] + 1e-12, sizes  # sums in different orders
    # 50 per arm at 12%: Pearson's is above alpha, the N-1 version is not
    pearson, n_minus_1 = (tests.get(t).exact_power(0.12, 0.12, 50, 50, 0.05, 0.0) for t in ("chi2", "chi2_n1"))
    assert pearson > 0.0505 and n_minus_1 <= 0.05


# ------------------------------------------------------------------------------------- size flag
def test_exact_size_is_the_exact_power_of_the_null_scenario(default_scenario):
    sc = with_values(default_scenario, {"design.n_control": 30, "design.n_treatment": 30,
                                        "endpoints.leak_1m.tests": ["fisher", "chi2", "chi2_n1"]})
    sizes = exact_sizes(sc)
    null = build_model(no_effect(sc))
    law = null.binary_law("leak_1m", "control")
    for test in ("fisher", "chi2", "chi2_n1"):
        assert sizes[("leak_1m", test)] == exact_binary_power(null, "leak_1m", test)
        # no effect: both arms have the control arm's law
        assert sizes[("leak_1m", test)] == pytest.approx(
            tests.get(test).exact_power(law.p_event, law.p_event, 30, 30, 0.05, law.p_missing), rel=1e-12)
    # the uncorrected chi-square at 30 per arm and the default leak rate: 5.4% (above alpha), N-1 below
    assert sizes[("leak_1m", "chi2")] == pytest.approx(0.0539, abs=5e-5)
    assert sizes[("leak_1m", "chi2_n1")] < 0.05


def test_power_table_flags_a_test_whose_size_exceeds_alpha(default_scenario, tmp_path):
    sc = with_values(default_scenario, {"design.n_control": 30, "design.n_treatment": 30,
                                        "endpoints.leak_1m.tests": ["fisher", "chi2", "chi2_n1"]})
    result = run(sc, n_sims=200, seed=1, n_jobs=1, backend="sequential", progress=False)
    frame = result.to_frame()
    leak = frame[frame.endpoint == "leak_1m"].set_index(["test", "method"])
    assert bool(leak.loc[("chi2", "monte_carlo"), "size_exceeds_alpha"]) is True
    assert bool(leak.loc[("chi2_n1", "exact"), "size_exceeds_alpha"]) is False
    assert bool(leak.loc[("fisher", "monte_carlo"), "size_exceeds_alpha"]) is False
    assert leak.loc[("chi2", "exact"), "size"] == pytest.approx(0.0539, abs=5e-5)
    others = frame[frame.family != "binary"]
    assert others["size"].isna().all() and others["size_exceeds_alpha"].isna().all()
    assert "exceeds alpha" in run_summary(result, detail=True)
    assert not math.isnan(leak.loc[("chi2", "monte_carlo"), "power"])
