"""Group-sequential boundaries against published values (rpact, Jennison & Turnbull) and closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from trialsim.analysis import group_sequential as gs

THIRDS = [1 / 3, 2 / 3, 1.0]


def test_obrien_fleming_three_looks_matches_rpact_and_jennison_turnbull():
    # rpact tests/testthat/test-f_design_group_sequential.R: getDesignInverseNormal() (kMax = 3, alpha = 0.025
    # one-sided, typeOfDesign = "OF"): criticalValues c(3.4710914, 2.4544323, 2.0040356),
    # alphaSpent c(0.00025917372, 0.0071600594, 0.02499999). Jennison & Turnbull (2000) table 2.3: 2.004 * sqrt(3/k).
    b = gs.classical_bounds(THIRDS, 0.025, "obrien_fleming")
    np.testing.assert_allclose(b.efficacy, [3.4710914, 2.4544323, 2.0040356], atol=2e-7)
    np.testing.assert_allclose(np.cumsum(b.crossing().upper), [0.00025917372, 0.0071600594, 0.025], atol=1e-9)


def test_pocock_three_looks_matches_jennison_turnbull():
    # Jennison & Turnbull (2000) table 2.1, C_P(K = 3, alpha = 0.05 two-sided) = 2.289 (one-sided 0.025:
    # the chance of crossing both sides is negligible at three decimals).
    b = gs.classical_bounds(THIRDS, 0.025, "pocock")
    np.testing.assert_allclose(b.efficacy, 2.289, atol=5e-4)
    assert np.ptp(b.efficacy) == 0


def test_lan_demets_obf_spending_at_thirds():
    # gsDesign sfLDOF, k = 3, test.type = 1, alpha = 0.025: upper bounds 3.7103, 2.5114, 1.9930 (figures as
    # quoted in the project brief; the integrator itself is checked against rpact to 1e-7 in the other tests).
    b = gs.spending_bounds(THIRDS, 0.025, "obf")
    np.testing.assert_allclose(b.efficacy, [3.7103, 2.5114, 1.9930], atol=1e-4)
    # each look spends exactly the spending function's increment, and all of alpha overall
    np.testing.assert_allclose(np.cumsum(b.crossing().upper), gs.spend_obf(np.array(THIRDS), 0.025), atol=1e-10)


def test_lan_demets_obf_spending_matches_seqbounds_jl():
    # SeqBounds.jl README (github.com/PharmCat/SeqBounds.jl): bounds([0.25, 0.5, 0.75, 1.0], 0.05) one-sided,
    # O'Brien-Fleming-type spending: Z 3.74955, 2.53993, 2.01604, 1.72014; nominal p 8.85754e-5, 0.00554366,
    # 0.0218979, 0.0427037 (its grid step h = 0.05 is coarser than ours: agreement to ~5e-5).
    b = gs.spending_bounds([0.25, 0.5, 0.75, 1.0], 0.05, "obf")
    np.testing.assert_allclose(b.efficacy, [3.74955, 2.53993, 2.01604, 1.72014], atol=1e-4)
    np.testing.assert_allclose(b.nominal_alpha(), [8.85754e-5, 0.00554366, 0.0218979, 0.0427037], rtol=2e-4)


def test_hwang_shih_decani_matches_rpact():
    # rpact test-f_design_group_sequential.R: getDesignInverseNormal(kMax = 3, informationRates = c(0.2, 0.4, 1),
    # alpha = 0.03, sided = 1, typeOfDesign = "asHSD", gammaA = 0): criticalValues c(2.5121443, 2.4228747, 2.0280392)
    b = gs.spending_bounds([0.2, 0.4, 1.0], 0.03, "hsd", 0.0)
    np.testing.assert_allclose(b.efficacy, [2.5121443, 2.4228747, 2.0280392], atol=2e-7)


def test_beta_spending_futility_and_power_match_rpact():
    # rpact test-f_design_group_sequential.R: getDesignInverseNormal(kMax = 3, informationRates = c(0.2, 0.4, 1),
    # alpha = 0.07, sided = 1, beta = 0.14, typeOfDesign = "asHSD", gammaA = -1, typeBetaSpending = "bsHSD",
    # gammaB = -2): criticalValues c(2.364813, 2.1928805, 1.5660474), futilityBounds c(-1.1063623, -0.35992439),
    # getDesignCharacteristics: shift 7.1015942 (drift = sqrt(shift)), power c(0.12038953, 0.32895265, 0.86),
    # futilityProbabilities c(0.010777094, 0.016077535).
    eff = gs.spending_bounds([0.2, 0.4, 1.0], 0.07, "hsd", -1.0)
    np.testing.assert_allclose(eff.efficacy, [2.364813, 2.1928805, 1.5660474], atol=2e-7)
    drift = math.sqrt(7.1015942)
    b = gs.with_beta_spending(eff, 0.14, drift, "hsd", -2.0)
    np.testing.assert_allclose(b.futility[:2], [-1.1063623, -0.35992439], atol=2e-7)
    assert b.futility[2] == -np.inf
    c = b.crossing(drift)
    np.testing.assert_allclose(np.cumsum(c.upper), [0.12038953, 0.32895265, 0.86], atol=1e-7)
    np.testing.assert_allclose(c.lower[:2], [0.010777094, 0.016077535], atol=1e-8)


def test_one_look_is_the_normal_tail():
    b = gs.classical_bounds([1.0], 0.025)
    assert b.efficacy[0] == pytest.approx(stats.norm.isf(0.025), abs=1e-8)
    assert b.crossing(2.5).total_upper == pytest.approx(stats.norm.sf(stats.norm.isf(0.025) - 2.5), abs=1e-10)


def test_two_looks_crossing_matches_bivariate_normal():
    # closed form: (Z1, Z2) bivariate normal with correlation sqrt(t1/t2); P(cross at 2) = P(Z1 < b1, Z2 >= b2)
    t1, b1, b2, drift = 0.4, 2.7, 2.0, 1.5
    c = gs.crossing_probabilities([t1, 1.0], [b1, b2], drift=drift)
    mean = [drift * math.sqrt(t1), drift]
    cov = [[1, math.sqrt(t1)], [math.sqrt(t1), 1]]
    both_below = stats.multivariate_normal(mean, cov).cdf([b1, b2])
    p1_below = stats.norm.cdf(b1 - mean[0])
    assert c.upper[0] == pytest.approx(1 - p1_below, abs=1e-10)
    assert c.upper[1] == pytest.approx(p1_below - both_below, abs=1e-6)


def test_crossing_sums_to_alpha_for_every_spending_function_at_uneven_looks():
    looks = [0.25, 0.6, 0.85, 1.0]
    for name, param in (("obf", 0.0), ("pocock", 0.0), ("hsd", -4.0), ("hsd", 1.0)):
        b = gs.spending_bounds(looks, 0.025, name, param)
        assert b.crossing().total_upper == pytest.approx(0.025, abs=1e-9), name
        # power rises with the drift
        powers = [b.crossing(d).total_upper for d in (0.0, 1.0, 2.0, 3.0)]
        assert np.all(np.diff(powers) > 0)


def test_futility_lowers_type_one_error_only_when_binding_and_expected_size_falls():
    eff = gs.spending_bounds([0.5, 1.0], 0.025, "obf")
    b = gs.with_futility_z(eff, [0.0])
    assert b.crossing(futility=False).total_upper == pytest.approx(0.025, abs=1e-9)
    as_run = b.crossing()
    assert as_run.total_upper < 0.025
    # under the null, P(z1 < 0) = 1/2 of trials stop at the half-way look
    assert as_run.lower[0] == pytest.approx(0.5, abs=1e-12)
    assert as_run.expected_fraction(b.fractions) == pytest.approx(0.75, abs=1e-3)


def test_drift_for_power_and_one_sided_z():
    b = gs.classical_bounds([1.0], 0.025)
    # fixed design: drift = z_{1-alpha} + z_{power}
    assert gs.drift_for_power(b, 0.9) == pytest.approx(stats.norm.isf(0.025) + stats.norm.isf(0.1), abs=1e-8)
    z = gs.one_sided_z(np.array([0.05, 0.05, np.nan, 1.0]), np.array([-0.1, 0.1, -0.1, 0.0]), benefit="lower")
    np.testing.assert_allclose(z[:2], [stats.norm.isf(0.025), stats.norm.isf(0.975)])
    assert np.isnan(z[2]) and z[3] == pytest.approx(0.0)


def test_bad_fractions_are_refused():
    with pytest.raises(ValueError, match="end at 1"):
        gs.spending_bounds([0.5, 0.9], 0.025)
    with pytest.raises(ValueError, match="increase"):
        gs.classical_bounds([0.6, 0.5, 1.0], 0.025)


def test_conditional_power_futility_threshold_has_that_conditional_power():
    # reference: Z_K given Z_k = z is normal with mean z sqrt(t) + drift (1 - t) (score scale) and variance
    # 1 - t; computed here from scipy's bivariate normal conditional law rather than the formula in the module
    eff = gs.spending_bounds([0.4, 0.7, 1.0], 0.025, "obf")
    drift = 2.8
    b = gs.with_conditional_power(eff, 0.15, drift)
    for k, t in enumerate([0.4, 0.7]):
        z = b.futility[k]
        mean = np.array([drift * math.sqrt(t), drift])
        cov = np.array([[1, math.sqrt(t)], [math.sqrt(t), 1]])
        cond_mean = mean[1] + cov[1, 0] / cov[0, 0] * (z - mean[0])
        cond_sd = math.sqrt(cov[1, 1] - cov[1, 0] ** 2 / cov[0, 0])
        assert stats.norm.sf(eff.efficacy[-1], cond_mean, cond_sd) == pytest.approx(0.15, abs=1e-12)
        assert gs.conditional_power(z, t, eff.efficacy[-1], drift) == pytest.approx(0.15, abs=1e-12)
    assert np.all(b.futility[:2] < eff.efficacy[:2]) and b.futility[2] == -np.inf
