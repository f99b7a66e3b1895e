"""The patient model reproduces its configured marginal rates, correlations and medians."""
import numpy as np
import pytest

from trialsim.config.loader import with_values
from trialsim.exact import binary_law
from trialsim.outcomes.cytokines import correlation_matrix
from trialsim.outcomes.leak import arm_rates
from trialsim.outcomes.patients import observe, simulate_arm
from trialsim.outcomes.population import calibrate_intercept, draw_risk_factors, leak_risk

N = 200_000


def test_intercept_calibration_gives_the_marginal_rate_exactly(default_scenario):
    pop = default_scenario.population
    rng = np.random.default_rng(3)
    factors = draw_risk_factors(pop, (N, 1), rng=rng)
    for rate in (0.02, 0.16, 0.6):
        risk = leak_risk(pop, factors, rate)
        se = np.sqrt(rate * (1 - rate) / N)
        assert abs(risk.mean() - rate) < 4 * se + 0.002  # risk is averaged over a sample of risk factors
    # risk factors matter: males have higher risk than females
    risk = leak_risk(pop, factors, 0.16)[..., 0]
    assert risk[factors[:, 0, 0]].mean() > 1.5 * risk[~factors[:, 0, 0]].mean()
    assert np.isfinite(calibrate_intercept(pop, 0.999))


@pytest.mark.parametrize("measure,effect,expected_all", [("risk_ratio", 0.5, 0.08), ("odds_ratio", 0.5, 0.16 * 0.5 / (1 - 0.16 + 0.16 * 0.5)), ("rate", 0.06, 0.08)])
def test_effect_measures(default_scenario, measure, effect, expected_all):
    sc = with_values(default_scenario, {"leak.effect_measure": measure, "leak.effect": effect})
    assert arm_rates(sc.leak, "treatment").all_grade == pytest.approx(expected_all)
    assert arm_rates(sc.leak, "control").all_grade == pytest.approx(0.16)


def test_simulated_leak_and_endpoint_rates_match_the_law(default_scenario):
    rng = np.random.default_rng(11)
    for arm in ("control", "treatment"):
        data = simulate_arm(default_scenario, arm, N // 10, 10, rng=rng)
        rates = arm_rates(default_scenario.leak, arm)
        n = data["leak"].size
        assert abs(data["leak"].mean() - rates.all_grade) < 4 * np.sqrt(rates.all_grade / n)
        obs = observe(default_scenario, data)
        for endpoint in ("leak_1m", "colonoscopy_abnormal", "colonoscopy_worse_than_baseline"):
            law = binary_law(default_scenario, endpoint, arm)
            x = obs[endpoint]
            miss = np.isnan(x).mean()
            assert abs(miss - law.p_missing) < 4 * np.sqrt(law.p_missing * (1 - law.p_missing) / n) + 1e-4
            p = np.nanmean(x)
            assert abs(p - law.p_event) < 4 * np.sqrt(law.p_event * (1 - law.p_event) / n)
        # grade split among leaks and the 30-day horizon
        grades = data["leak_grade"][data["leak"]]
        assert np.allclose(np.bincount(grades, minlength=3) / grades.size, default_scenario.leak.grade_split, atol=0.01)
        assert np.nanmax(data["leak_day"]) <= default_scenario.leak.horizon_days


def test_cytokine_correlation_medians_and_missingness(default_scenario):
    sc = with_values(default_scenario, {"leak.rate_control": 0.01, "leak.effect": 1.0})  # almost no leaks
    rng = np.random.default_rng(5)
    obs = observe(sc, simulate_arm(sc, "control", 20_000, 10, rng=rng))
    c = correlation_matrix(sc.cytokines)
    assert np.all(np.linalg.eigvalsh(c) > 0)
    x = lambda k: obs[k].ravel()
    r = lambda a, b: np.corrcoef(x(a), x(b))[0, 1]
    assert r("il6_serum_pod1", "il6_serum_pod3") == pytest.approx(0.6, abs=0.01)
    assert r("il6_serum_pod1", "il6_serum_pod5") == pytest.approx(0.36, abs=0.01)
    assert r("il6_serum_pod1", "il6_drain_pod1") == pytest.approx(0.3, abs=0.01)
    assert r("il6_serum_pod1", "tnf_serum_pod1") == pytest.approx(0.4, abs=0.01)
    assert np.exp(np.median(x("il6_drain_pod1"))) == pytest.approx(35000, rel=0.02)
    assert np.std(x("il6_drain_pod1")) == pytest.approx(0.8, rel=0.02)
    assert np.isnan(x("il6_drain_pod5")).mean() == pytest.approx(0.2, abs=0.005)
    assert not np.isnan(x("il6_drain_mean_log")).any()


def test_treatment_gmr_and_leak_raise_cytokines(default_scenario):
    rng = np.random.default_rng(9)
    sc = with_values(default_scenario, {"leak.effect": 1.0})
    c = observe(sc, simulate_arm(sc, "control", 20_000, 10, rng=rng))
    t = observe(sc, simulate_arm(sc, "treatment", 20_000, 10, rng=rng))
    ratio = np.exp(np.nanmean(t["il6_drain_pod1"]) - np.nanmean(c["il6_drain_pod1"]))
    assert ratio == pytest.approx(0.7, rel=0.03)
    data = simulate_arm(sc, "control", 20_000, 10, rng=rng)
    obs = observe(sc, data)
    early_leak = data["leak"] & (data["leak_day"] <= 3)  # raised from POD1 on (lead 2 days)
    gmr = np.exp(obs["il6_drain_pod1"][early_leak].mean() - obs["il6_drain_pod1"][~data["leak"]].mean())
    assert gmr == pytest.approx(1.9, rel=0.1)


def test_length_of_stay_longer_after_leak(default_scenario):
    rng = np.random.default_rng(2)
    data = simulate_arm(default_scenario, "control", 20_000, 10, rng=rng)
    no_leak = data["los_days"][~data["leak"]]
    assert np.median(no_leak) == pytest.approx(7.0, rel=0.02)
    for g, extra in enumerate(default_scenario.los.extra_days_by_grade):
        assert data["leak_extra_days"][data["leak_grade"] == g].mean() == pytest.approx(extra, rel=0.05)
