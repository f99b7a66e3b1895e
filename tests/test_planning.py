"""Tests for trialsim.planning: exact and simulated sample sizes, MDE, pilot numbers, curves, sweeps."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from tests.conftest import ROOT
from trialsim.config.loader import load_scenario, with_values
from trialsim.planning import model, search
from trialsim.planning.mde import minimal_detectable_effect
from trialsim.planning.pilot import expected_rate_ci_width, pilot_summary, whitehead_pilot_size
from trialsim.planning.samplesize import exact_scan, sample_size, sample_sizes
from trialsim.scenarios import expand

CONFIGS = ROOT / "configs"


# --------------------------------------------------------------------------------------------------
# an independent enumeration of Fisher's exact power (hypergeometric law per margin, no shared code)
# --------------------------------------------------------------------------------------------------
def fisher_power_reference(n1: int, n2: int, p1: float, p2: float, alpha: float = 0.05) -> float:
    """Sum of Binomial(n1, p1) x Binomial(n2, p2) over tables with two-sided Fisher p <= alpha.

    Two-sided p = sum of the null hypergeometric probabilities (given the margin) that are no larger
    than the observed one, with R's relative tolerance 1e-7.
    """
    b1 = stats.binom.pmf(np.arange(n1 + 1), n1, p1)
    b2 = stats.binom.pmf(np.arange(n2 + 1), n2, p2)
    power = 0.0
    for m in range(n1 + n2 + 1):
        x = np.arange(max(0, m - n2), min(n1, m) + 1)
        pmf = stats.hypergeom.pmf(x, n1 + n2, n1, m)
        pvals = np.array([pmf[pmf <= v * (1 + 1e-7)].sum() for v in pmf])
        rejected = x[pvals <= alpha * (1 + 1e-12)]
        power += float(np.sum(b1[rejected] * b2[m - rejected]))
    return power


def test_exact_fisher_sample_size_matches_independent_enumeration():
    # 0.15 vs 0.05, 80% power, two-sided alpha 0.05, 1:1
    scan = exact_scan("fisher", 0.15, 0.05, power=0.8, alpha=0.05)
    n = scan.n_first
    assert fisher_power_reference(n, n, 0.15, 0.05) >= 0.8
    assert fisher_power_reference(n - 1, n - 1, 0.15, 0.05) < 0.8
    # the first n reaching 80% found by the independent enumeration alone, scanning up from the
    # normal approximation's 140 (Fisher is conservative, so it needs more)
    first = next(m for m in range(140, 200) if fisher_power_reference(m, m, 0.15, 0.05) >= 0.8)
    assert first == n == 151
    # the library's curve is the same function
    for m in (140, 151, 170):
        assert scan.power[scan.n == m][0] == pytest.approx(fisher_power_reference(m, m, 0.15, 0.05), abs=1e-10)
    # and it stays above 80% over the stated horizon
    assert scan.n_stable == 151 and scan.horizon >= 1.5 * 151
    assert np.all(scan.power[scan.n >= scan.n_stable] >= 0.8)


def test_exact_sample_size_reports_the_sawtooth():
    # 0.45 vs 0.08: power first reaches 80% at 24, dips below at 25, and stays above from 26
    scan = exact_scan("fisher", 0.45, 0.08, power=0.8, alpha=0.05)
    assert (scan.n_first, scan.n_stable) == (24, 26)
    ref = {m: fisher_power_reference(m, m, 0.45, 0.08) for m in range(22, 41)}
    assert ref[23] < 0.8 <= ref[24]
    assert ref[25] < 0.8
    assert all(ref[m] >= 0.8 for m in range(26, 41))
    assert np.all(scan.power[scan.n >= 26] >= 0.8) and scan.horizon >= 26


@settings(max_examples=12, deadline=None)
@given(p_control=st.floats(0.3, 0.8), rr=st.floats(0.1, 0.5))
def test_exact_sizes_are_ordered(p_control, rr):
    """More power needs at least as many patients; the stable n is never below the first."""
    s80 = exact_scan("fisher", p_control, p_control * rr, power=0.8, alpha=0.05, n_max=400)
    s90 = exact_scan("fisher", p_control, p_control * rr, power=0.9, alpha=0.05, n_max=400)
    assert s80.n_first <= s80.n_stable <= s90.n_stable
    assert s80.n_first <= s90.n_first


def test_normal_approximation_matches_statsmodels_and_hmisc(default_scenario):
    from statsmodels.stats.proportion import samplesize_proportions_2indep_onetail

    from trialsim.analysis.analytic import two_proportions_sample_size_normal

    # Hmisc::bsamsize(p1 = 0.15, p2 = 0.05, fraction = 0.5, alpha = 0.05, power = 0.8)
    #   -> n1 = n2 = 140.0951 (Fleiss, pooled null variance, no continuity correction)
    sm = samplesize_proportions_2indep_onetail(0.10, 0.05, 0.8, ratio=1, alpha=0.05, alternative="two-sided")
    assert two_proportions_sample_size_normal(0.15, 0.05, power=0.8) == pytest.approx(sm, rel=1e-10)
    assert sm == pytest.approx(140.0951, abs=1e-4)
    # the planning table reports it, rounded up and labelled, for the leak endpoint's own rates
    r = model.binary_rates(default_scenario, "leak_1m")
    answer = model.analytic_sample_size(default_scenario, "leak_1m", "fisher", power=0.8, ratio=1.0, moments=None)
    assert answer.n == math.ceil(two_proportions_sample_size_normal(r.p_control, r.p_treatment, power=0.8))
    assert "normal approximation" in answer.method


def _pure_shift(scenario, d: float = 0.5):
    """Drain IL-6 with no leak effect and no missing sample: a pure log-normal shift of d SDs."""
    return with_values(scenario, {
        "cytokines.markers[2].leak_gmr": [1.0, 1.0, 1.0],
        "cytokines.markers[2].p_missing": [0.0, 0.0, 0.0],
        "cytokines.markers[2].treatment_gmr": math.exp(-d * 0.8),
        "cytokines.summaries": ["per_day"],
        "cytokines.tests": ["welch_log"],
    })


def test_t_sample_size_analytic_and_simulated(default_scenario):
    # pwr::pwr.t.test(d = 0.5, power = 0.8, sig.level = 0.05) -> n = 63.76561 -> 64 per group
    from trialsim.analysis.analytic import t_test_sample_size

    assert t_test_sample_size(0.5, power=0.8) == 64
    sc = _pure_shift(default_scenario)
    answer = model.analytic_sample_size(sc, "il6_drain_pod1", "welch_log", power=0.8, ratio=1.0, moments=None)
    assert answer.n == 64 and "noncentral t" in answer.method
    res = sample_size(sc, "il6_drain_pod1", "welch_log", power=0.8, n_sims=2000, seed=11)
    assert res.method == "monte_carlo" and res.reachable
    # Welch at equal n and SDs behaves as the pooled t: 63.77 must lie in the Monte Carlo interval
    assert res.n_low - 1 <= 63.77 <= res.n_high
    assert abs(res.power_at_n - 0.8) < 3 * res.power_at_n_se + 0.01


def test_dropout_inflation(default_scenario):
    assert model.inflate(100, 0.2) == 125
    assert model.inflate(100, 0.1) == 112
    assert model.inflate(None, 0.1) is None
    res = sample_size(default_scenario, "leak_1m", "fisher", power=0.8)
    law = model.binary_rates(default_scenario, "leak_1m")
    assert res.dropout == pytest.approx(max(law.missing_control, law.missing_treatment))
    assert res.n_enrolled == math.ceil(res.n / (1 - res.dropout))


def test_sample_sizes_cover_every_endpoint(default_scenario):
    table = sample_sizes(default_scenario, power=(0.8,), n_sims=300, n_max=200, simulate=False)
    from trialsim.endpoints import endpoints

    frame = table.to_frame()
    eps = endpoints(default_scenario)
    assert set(zip(frame.endpoint, frame.test)) == {(e.name, t) for e in eps for t in e.tests}
    # without simulation only binary endpoints get an answer; the rest carry the analytic one
    assert set(frame[frame.method == "analytic"].endpoint) == {e.name for e in eps if e.family != "binary"}
    assert set(frame[frame.method == "exact"].endpoint) == {e.name for e in eps if e.family == "binary"}
    assert frame[frame.method == "analytic"].n_analytic.notna().all()


def test_boschloo_sample_size_is_bounded_not_enumerated(default_scenario):
    res = sample_size(default_scenario, "leak_1m", "boschloo", power=0.8)
    assert not res.reachable and "upper bound" in res.note


# --------------------------------------------------------------------------------------------------
# stochastic root-finding
# --------------------------------------------------------------------------------------------------
def test_probit_root_recovers_a_known_curve():
    rng = np.random.default_rng(5)
    ns = np.array([40, 50, 60, 70, 80, 90, 100])
    a, b = -2.2, 0.38  # power(n) = Phi(a + b sqrt(n)); 80% at n = ((0.8416 + 2.2) / 0.38)^2 = 64.0
    p = stats.norm.cdf(a + b * np.sqrt(ns))
    u = rng.random((4000, 1))  # nested: one uniform per trial, like common random numbers
    rejects = u < p[None, :]
    fit = search.fit_probit(np.sqrt(ns), rejects)
    x, lo, hi = fit.root(0.8)
    truth = ((stats.norm.ppf(0.8) - a) / b) ** 2
    assert lo**2 <= truth <= hi**2
    assert abs(x**2 - truth) < 3


def test_nested_rejections_do_not_depend_on_n_jobs(default_scenario):
    cc = model.complete_case(default_scenario)
    jobs = [search.GridJob("il6_drain_mean_log", "welch_log", ((5, 5), (20, 20), (40, 40))),
            search.GridJob("leak_1m", "fisher", ((10, 10), (40, 40)))]
    one = search.nested_rejections(cc, jobs, n_sims=400, seed=3, stream=model.STREAM_LOCATE, n_jobs=1)
    two = search.nested_rejections(cc, jobs, n_sims=400, seed=3, stream=model.STREAM_LOCATE, n_jobs=2)
    for key in one:
        np.testing.assert_array_equal(one[key], two[key])
    # nested trials: power rises with n on the same random numbers
    p = one[("il6_drain_mean_log", "welch_log")].mean(axis=0)
    assert p[0] < p[1] < p[2]


def test_nested_trials_match_the_exact_power(default_scenario):
    """Simulated Fisher power of nested complete-case trials agrees with the exact power (MC tolerance)."""
    cc = model.complete_case(default_scenario)
    r = model.binary_rates(cc, "leak_1m")
    job = search.GridJob("leak_1m", "fisher", ((60, 60),))
    rej = search.nested_rejections(cc, [job], n_sims=4000, seed=9, stream=model.STREAM_LOCATE)[("leak_1m", "fisher")]
    from trialsim.analysis.binary import exact_power

    exact = exact_power("fisher", r.p_control, r.p_treatment, 60, 60, alpha=0.05)
    se = math.sqrt(exact * (1 - exact) / 4000)
    assert abs(rej.mean() - exact) < 4 * se


# --------------------------------------------------------------------------------------------------
# minimal detectable effect
# --------------------------------------------------------------------------------------------------
def test_leak_mde_at_ten_per_arm_is_out_of_reach(default_scenario):
    res = minimal_detectable_effect(default_scenario, "leak_1m", "fisher", power=0.8)
    assert not res.reachable and math.isnan(res.effect)
    assert res.best_power < 0.05  # even near-complete prevention gives almost no power at 10 per arm


def test_leak_mde_is_the_boundary_of_exact_power(default_scenario):
    res = minimal_detectable_effect(default_scenario, "leak_1m", "fisher", power=0.8, n_per_arm=100)
    assert res.reachable and 0 < res.effect < 1
    sc = with_values(default_scenario, {"design.n_control": 100, "design.n_treatment": 100})

    def power(rr):
        r = model.binary_rates(with_values(sc, {"leak.effect": rr}), "leak_1m")
        return model.exact_power_enrolled("fisher", r, 100, 100, alpha=0.05)

    assert power(res.effect) >= 0.8 > power(res.effect * 1.01)


def test_cytokine_mde_simulated_agrees_with_noncentral_t(default_scenario):
    sc = _pure_shift(default_scenario)
    res = minimal_detectable_effect(sc, "il6_drain_pod1", "welch_log", power=0.8, n_sims=2000, seed=4)
    assert res.reachable and res.method == "monte_carlo"
    # analytic: d with 80% power at 10 vs 10 (noncentral t) = 1.3249; GMR = exp(-d * 0.8)
    assert res.analytic_effect == pytest.approx(math.exp(-1.3249 * 0.8), rel=2e-3)
    # Welch is slightly less powerful than the pooled t at n = 10: its MDE lies at or beyond it
    assert res.effect_low - 0.01 <= res.analytic_effect
    assert abs(res.effect - res.analytic_effect) < 0.03


# --------------------------------------------------------------------------------------------------
# pilot numbers
# --------------------------------------------------------------------------------------------------
def test_expected_rate_ci_width_by_enumeration():
    from statsmodels.stats.proportion import proportion_confint

    n, p = 10, 0.124
    width = sum(stats.binom.pmf(x, n, p) * np.diff(proportion_confint(x, n, method="beta"))[0] for x in range(n + 1))
    assert expected_rate_ci_width(p, n) == pytest.approx(width, abs=1e-12)


def test_pilot_summary_of_the_registered_design(default_scenario):
    pilot = pilot_summary(default_scenario, seed=1)
    rates = pilot.rates.set_index(["endpoint", "arm"])
    r = model.binary_rates(default_scenario, "leak_1m")
    # chance of no leak at all in the placebo arm: (1 - p (1 - missing))^10, about 0.88^10 = 28% [9]
    assert rates.loc[("leak_1m", "control"), "p_none"] == pytest.approx((1 - r.p_control * (1 - r.missing_control)) ** 10)
    assert 0.25 < rates.loc[("leak_1m", "control"), "p_none"] < 0.31
    sd = pilot.sd_limits.set_index("endpoint")
    df = sd.loc["il6_drain_mean_log", "df"]
    assert sd.loc["il6_drain_mean_log", "ucl_factor"] == pytest.approx(math.sqrt(df / stats.chi2.ppf(0.2, df)))
    guide = pilot.guidance
    assert not guide.meets.any()  # 10 per arm is below every published guidance
    assert set(guide.recommended_per_arm[:3]) == {12, 35, 60}


def test_whitehead_bands():
    # Whitehead et al. 2016, 90% power: 75, 25, 15, 10 per arm for d <= 0.1, 0.2, 0.5, 0.8
    assert [whitehead_pilot_size(d) for d in (0.05, 0.2, 0.3, 0.5, 0.79, 0.8, 1.2)] == [75, 25, 25, 15, 15, 10, 10]


# --------------------------------------------------------------------------------------------------
# sweeps and configs
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["exosome_lar_20", "leak_powered", "cytokine_pilot", "grid_leak"])
def test_shipped_configs_load(name):
    sc = load_scenario(CONFIGS / f"{name}.toml")
    assert sc.name


def test_grid_sweep_ids_are_stable():
    a = [s.id for s in expand(load_scenario(CONFIGS / "grid_leak.toml"))]
    b = [s.id for s in expand(load_scenario(CONFIGS / "grid_leak.toml"))]
    assert a == b and len(a) == len(set(a)) == 80
    assert a[0] == "n_control=10,n_treatment=10,rate_control=0.06,effect=1"
    assert "n_control=100,n_treatment=100,rate_control=0.12,effect=0.5" in a
    specs = expand(load_scenario(CONFIGS / "grid_leak.toml"))
    assert all(s.scenario.design.n_control == s.scenario.design.n_treatment for s in specs)


def test_sweep_ids_are_stable_across_runs():
    from trialsim.api import run

    sc = load_scenario(CONFIGS / "leak_powered.toml")
    sc = with_values(sc, {"design.n_control": 20, "design.n_treatment": 20})
    ids = [list(run(sc, n_sims=200, seed=s, n_jobs=1).to_frame().scenario.unique()) for s in (1, 2)]
    assert ids[0] == ids[1] == ["effect=1", "effect=0.7", "effect=0.5", "effect=0.33"]


def test_leak_powered_config_is_powered():
    """The shipped leak-powered design has 80% exact Fisher power (enrolled, with its loss to follow-up)."""
    sc = load_scenario(CONFIGS / "leak_powered.toml")
    r = model.binary_rates(sc, "leak_1m")
    n_a = round(sc.design.n_control * (1 - r.missing_control))
    from trialsim.analysis.binary import exact_power

    assert exact_power("fisher", r.p_control, r.p_treatment, n_a, n_a, alpha=0.05) >= 0.8


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 2000), ratio=st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]))
def test_treatment_size_rounds_half_up(n, ratio):
    m = model.n_treatment_for(n, ratio)
    assert abs(m - ratio * n) <= 0.5 and m >= 1


def test_simulated_sample_size_with_a_flow_model_runs_past_the_boschloo_limit():
    """With a flow model each size is simulated on its own scenario; sizes above Boschloo's limit must work."""
    from trialsim.planning.search import resized

    sc = with_values(load_scenario(CONFIGS / "exosome_lar_20.toml"), {"flow": {}})
    big = resized(sc, 150, 150)
    assert "boschloo" not in big.leak.tests and big.design.n_treatment == 150
    assert resized(sc, 20, 20).leak.tests == sc.leak.tests
