"""Tests for trialsim.planning: exact and simulated sample sizes, MDE, pilot numbers, curves, one engine."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from tests.conftest import ROOT
from trialsim.analysis import registry as tests_registry
from trialsim.api import run
from trialsim.cli import main
from trialsim.config.loader import load_scenario, with_values
from trialsim.decide import decide
from trialsim.model import build_model
from trialsim.planning import model, samplesize, search
from trialsim.planning.analytic import analytic_sample_size, model_moments
from trialsim.planning import mde as mde_module
from trialsim.planning.mde import minimal_detectable_effect
from trialsim.planning.pilot import expected_rate_ci_width, pilot_summary, whitehead_pilot_size
from trialsim.planning.samplesize import (HORIZON_FACTOR, HORIZON_MIN_EXTRA, computed_scans, exact_scan, sample_size,
                                          sample_sizes)
from trialsim.rng import Streams
from trialsim.simulate import simulate_trials

CONFIGS = ROOT / "configs"
CRP_CONFIG = CONFIGS / "crp_randomised_30.toml"


@pytest.fixture(scope="module")
def crp_scenario():
    return load_scenario(CRP_CONFIG)


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
    assert scan.n_stable == 151 and scan.horizon == max(math.ceil(HORIZON_FACTOR * 151), 151 + HORIZON_MIN_EXTRA)
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


@pytest.mark.parametrize("test, p_c, p_t, ratio, target", [
    ("chi2", 0.7585, 0.2640, 1.0, 0.9),  # dips 2 sizes past n_first = 18
    ("boschloo", 0.3, 0.06, 0.5, 0.8),  # dips 3 sizes past n_first = 57 (treatment arm half the control arm)
    ("fisher", 0.5, 0.325, 0.5, 0.9),  # dips 15 sizes past n_first = 248: the furthest seen
    ("fisher", 0.45, 0.08, 1.0, 0.8),  # dips at 25, stays from 26
])
def test_the_horizon_holds_the_dips_seen(test, p_c, p_t, ratio, target):
    """The stable n within the default horizon is the stable n within twice n_first (designs whose power dips below
    the target after first reaching it, found by the measurement quoted at HORIZON_FACTOR)."""
    near = exact_scan(test, p_c, p_t, power=target, alpha=0.05, ratio=ratio)
    far = exact_scan(test, p_c, p_t, power=target, alpha=0.05, ratio=ratio, horizon_factor=2.0)
    assert far.horizon >= 2 * far.n_first and near.horizon <= far.horizon
    assert near.n_stable > near.n_first  # a real dip
    assert (near.n_first, near.n_stable) == (far.n_first, far.n_stable)


def test_strides_never_step_over_the_first_size_reaching_the_target():
    """Above 100 per arm the scan strides while power is more than stride_margin(n) below the target; at 7.42% vs 2.72%
    with a treatment arm half the control arm chi-square's power rises 2 points inside a stride near 174 per arm. For targets along the
    whole curve the scan's n_first is the first size reaching it, size by size (with no margin it misses 165 for
    30%)."""
    p_c, p_t, ratio = 0.0742, 0.0272, 0.5
    powers = {n: model.exact_power("chi2", p_c, p_t, n, model.n_treatment_for(n, ratio), alpha=0.05) for n in range(100, 800)}
    for target in np.arange(0.30, 0.86, 0.01):
        scan = exact_scan("chi2", p_c, p_t, power=float(target), alpha=0.05, ratio=ratio, start=100)
        assert scan.n_first == next(n for n, p in powers.items() if p >= target), target


def test_fine_strides_from_300_per_arm_never_step_over_the_first_size_reaching_the_target():
    """From 300 per arm the margin is 5 points; Fisher at 7.0% vs 3.15% with a treatment arm half the control arm
    (alpha 10%) rose 1.5 points inside a step near 638 per arm, the largest rise measured there. For targets along the
    curve the scan's n_first is the first size reaching it, size by size."""
    p_c, p_t, ratio, alpha = 0.0700, 0.0315, 0.5, 0.1
    powers = {n: model.exact_power("fisher", p_c, p_t, n, model.n_treatment_for(n, ratio), alpha=alpha)
              for n in range(300, 1300)}
    assert samplesize.stride_margin(299) == samplesize.STRIDE_MARGIN and samplesize.stride_margin(300) == 0.05
    reached = 0
    for target in np.arange(0.50, 0.96, 0.01):
        scan = exact_scan("fisher", p_c, p_t, power=float(target), alpha=alpha, ratio=ratio, start=300, n_max=1299)
        first = next((n for n, p in powers.items() if p >= target), None)
        assert scan.n_first == first, target
        reached += first is not None
    assert reached >= 40


@settings(max_examples=12, deadline=None)
@given(p_control=st.floats(0.3, 0.8), rr=st.floats(0.1, 0.5))
def test_exact_sizes_are_ordered(p_control, rr):
    """More power needs at least as many patients; the stable n is never below the first."""
    s80 = exact_scan("fisher", p_control, p_control * rr, power=0.8, alpha=0.05, n_max=400)
    s90 = exact_scan("fisher", p_control, p_control * rr, power=0.9, alpha=0.05, n_max=400)
    assert s80.n_first <= s80.n_stable <= s90.n_stable
    assert s80.n_first <= s90.n_first


def test_leak_exact_sample_sizes_are_kept(default_scenario):
    """The registered primary: Fisher 367 / 480 analysable per arm (enrol 379 / 495), chi-square 338 / 450.

    The figures of the engine before the reshape (README; configs/leak_powered.toml); the normal
    approximation gives 343 / 459.
    """
    table = sample_sizes(default_scenario, endpoint="leak_1m", power=(0.8, 0.9))
    got = {(r.test, r.target_power): r for r in table.results}
    assert (got[("fisher", 0.8)].n, got[("fisher", 0.9)].n) == (367, 480)
    assert (got[("fisher", 0.8)].n_enrolled, got[("fisher", 0.9)].n_enrolled) == (379, 495)
    assert (got[("fisher", 0.8)].n_analytic, got[("fisher", 0.9)].n_analytic) == (343, 459)
    assert (got[("chi2", 0.8)].n, got[("chi2", 0.9)].n) == (338, 450)
    assert all(r.method == "exact" for r in table.results)


def test_normal_approximation_matches_statsmodels_and_hmisc(default_scenario):
    from statsmodels.stats.proportion import samplesize_proportions_2indep_onetail

    from trialsim.analysis.analytic import two_proportions_sample_size_normal

    # Hmisc::bsamsize(p1 = 0.15, p2 = 0.05, fraction = 0.5, alpha = 0.05, power = 0.8)
    #   -> n1 = n2 = 140.0951 (Fleiss, pooled null variance, no continuity correction)
    sm = samplesize_proportions_2indep_onetail(0.10, 0.05, 0.8, ratio=1, alpha=0.05, alternative="two-sided")
    assert two_proportions_sample_size_normal(0.15, 0.05, power=0.8) == pytest.approx(sm, rel=1e-10)
    assert sm == pytest.approx(140.0951, abs=1e-4)
    # the planning table reports it, rounded up and labelled, on the endpoint's own exact law
    m = build_model(default_scenario)
    r = model.binary_rates(m, "leak_1m")
    answer = analytic_sample_size(m, "leak_1m", "fisher", power=0.8, ratio=1.0, moments=None)
    assert answer.n == math.ceil(two_proportions_sample_size_normal(r.p_control, r.p_treatment, power=0.8))
    assert "normal approximation" in answer.method


def _pure_shift(scenario, d: float = 0.5):
    """Drain IL-6 with no event effect and no missing sample: a pure log-normal shift of d SDs."""
    return with_values(scenario, {
        "endpoints.cytokines.markers[2].event_gmr": [1.0, 1.0, 1.0],
        "endpoints.cytokines.markers[2].p_missing": [0.0, 0.0, 0.0],
        "endpoints.cytokines.markers[2].treatment_gmr": math.exp(-d * 0.8),
        "endpoints.cytokines.summaries": ["per_day"],
        "endpoints.cytokines.tests": ["welch_log"],
    })


def test_t_sample_size_analytic_and_simulated(default_scenario):
    # pwr::pwr.t.test(d = 0.5, power = 0.8, sig.level = 0.05) -> n = 63.76561 -> 64 per group
    from trialsim.analysis.analytic import t_test_sample_size

    assert t_test_sample_size(0.5, power=0.8) == 64
    sc = _pure_shift(default_scenario)
    cc = model.complete_case(sc)
    answer = analytic_sample_size(build_model(cc), "il6_drain_pod1", "welch_log", power=0.8, ratio=1.0,
                                  moments=model_moments(cc, seed=11))
    # d = exact difference 0.4 over the model's simulated SD (0.8, SE about 0.0013): n is 64 or 65
    assert answer.n in (64, 65) and "noncentral t" in answer.method
    res = sample_size(sc, "il6_drain_pod1", "welch_log", power=0.8, n_sims=1200, seed=11)
    assert res.method == "monte_carlo" and res.reachable
    # Welch at equal n and SDs behaves as the pooled t: 63.77 must lie in the Monte Carlo interval
    assert res.n_low - 1 <= 63.77 <= res.n_high
    assert abs(res.power_at_n - 0.8) < 3 * res.power_at_n_se + 0.01


def test_dropout_inflation_and_generic_dropout(default_scenario):
    assert model.inflate(100, 0.2) == 125
    assert model.inflate(100, 0.1) == 112
    assert model.inflate(None, 0.1) is None
    m = build_model(default_scenario)
    res = sample_size(default_scenario, "leak_1m", "fisher", power=0.8)
    law = model.binary_rates(m, "leak_1m")
    assert res.dropout == pytest.approx(max(law.missing_control, law.missing_treatment))
    assert res.n_enrolled == math.ceil(res.n / (1 - res.dropout))
    # an ordinal grade at the visit: from the follow-up section and the family's procedure loss, the
    # same loss as its dichotomy's exact law; an endpoint measured in hospital loses nobody
    assert model.dropout(m, "colonoscopy_grade") == pytest.approx(model.dropout(m, "colonoscopy_abnormal"), abs=1e-12)
    assert model.dropout(m, "il6_drain_mean_log") == 0.0


def test_complete_case_is_generic(default_scenario, crp_scenario):
    for sc in (default_scenario, crp_scenario):
        cc = model.complete_case(sc)
        fu = cc.follow_up
        assert (fu.p_missing_visit, fu.p_death, fu.p_death_after_event) == (0.0, 0.0, 0.0)
        m = build_model(cc)
        assert all(model.dropout(m, a.name) == pytest.approx(0.0, abs=1e-12) for a in m.analysed)
        # what a family declares lost at the visit goes (a procedure not done) ...
        assert all(s.visit_procedure_missing() in (None, 0.0) for s in cc.endpoints.values())
    # ... what it loses as part of the measurement stays (a sample not drawn)
    assert model.complete_case(crp_scenario).endpoints["crp_pod3"].p_missing == crp_scenario.endpoints["crp_pod3"].p_missing > 0


def test_sample_sizes_cover_every_endpoint(default_scenario):
    table = sample_sizes(default_scenario, power=(0.8,), n_sims=300, n_max=200, simulate=False)
    m = build_model(default_scenario)
    frame = table.to_frame()
    assert set(zip(frame.endpoint, frame.test)) == {(a.name, t) for a, t in m.pairs()}
    exact = {(a.name, t) for a, t in m.pairs() if model.exact_available(m, a.name, t)}
    assert set(zip(frame[frame.method == "exact"].endpoint, frame[frame.method == "exact"].test)) == exact
    assert set(frame[frame.method == "analytic"].endpoint) == {a.name for a in m.analysed if a.kind != "binary"}
    assert frame[frame.method == "analytic"].n_analytic.notna().all()


def test_a_size_limited_test_is_bounded_not_enumerated(default_scenario):
    limited = [t for t in tests_registry.names("binary") if tests_registry.get(t).max_n is not None]
    assert limited  # Boschloo registers its size limit
    # risk ratio 0.8 needs thousands per arm: beyond the test's size limit, which bounds the scan
    small_effect = with_values(default_scenario, {"endpoints.leak_1m.effect": 0.8})
    res = sample_size(small_effect, "leak_1m", limited[0], power=0.8)
    assert not res.reachable and res.n_max == tests_registry.get(limited[0]).max_n
    assert "size limit" in res.note


# --------------------------------------------------------------------------------------------------
# one engine: reduced scenarios, the run's streams, resized scenarios
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config,pairs", [
    ("exosome_lar_20", [("il6_drain_mean_log", "welch_log"), ("il6_serum_pod3", "mann_whitney"), ("leak_1m", "fisher"),
                        ("los_days", "mann_whitney"),
                        ("colonoscopy_grade", "mann_whitney"), ("colonoscopy_abnormal", "fisher")]),
    ("crp_randomised_30", [("crp_pod3", "welch_log"), ("ssi_30d", "fisher")]),
    # allocations that read the primary's covariates (minimisation's strata, surgeons' selection on its risk score),
    # with and without a flow (which keeps every component): reduced to another primary, they still allocate alike
    ("designs/minimisation_40", [("il6_drain_mean_log", "welch_log"), ("los_days", "mann_whitney")]),
    ("designs/minimisation_40+flow", [("los_days", "mann_whitney"), ("leak_1m", "fisher")]),
    ("designs/registered_selection", [("il6_drain_mean_log", "welch_log"), ("los_days", "mann_whitney")]),
    ("designs/registered_selection+flow", [("los_days", "mann_whitney")]),
])
def test_a_reduced_scenario_gives_the_full_scenarios_per_trial_results(config, pairs):
    """Every component draws from its own stream: reduced to one pair's needs, the pair's trials are the same."""
    name, _, flow = config.partition("+")
    sc = load_scenario(CONFIGS / f"{name}.toml")
    if flow:
        sc = with_values(sc, {"flow": {}, "sweep": None})
    full = simulate_trials(sc, 300, streams=Streams(5, 2))
    full_decisions = decide(full)
    for pair in pairs:
        small = model.reduced(sc, [pair])
        assert len(small.endpoints) <= len(sc.endpoints)
        if pair[0].startswith("il6_"):  # the markers leave out the summary not asked for (means, or days)
            kind = "_mean_log" if pair[0].endswith("_mean_log") else "_pod"
            assert all(kind in a.name for a in build_model(small).analysed)
        assert [(a.name, t) for a, t in build_model(small).pairs() if a.name == pair[0]] == [pair]
        batch = simulate_trials(small, 300, streams=Streams(5, 2))
        a, b = full.stats[pair], batch.stats[pair]
        np.testing.assert_array_equal(a.reject, b.reject)
        np.testing.assert_array_equal(np.asarray(a.pvalue), np.asarray(b.pvalue))
        np.testing.assert_array_equal(a.estimate, b.estimate)
        np.testing.assert_array_equal(full_decisions.outcomes["reject"][pair], decide(batch).outcomes["reject"][pair])


@pytest.mark.parametrize("config,pair", [("exosome_lar_20", ("il6_drain_mean_log", "welch_log")),
                                          ("crp_randomised_30", ("crp_pod3", "welch_log"))])
def test_planning_power_at_the_design_is_the_runs_power(config, pair):
    """Same seed, same trials: planning's simulated power at the planned design is `run`'s number."""
    sc = load_scenario(CONFIGS / f"{config}.toml")
    rej = search.rejections(sc, [search.Job(*pair, ({},))], n_sims=1500, seed=17)[0]
    frame = run(sc, n_sims=1500, seed=17, n_jobs=1).to_frame()
    row = frame[(frame.endpoint == pair[0]) & (frame.test == pair[1]) & (frame.method == "monte_carlo")]
    assert rej.shape == (1500, 1)
    assert rej.mean() == row.power.iloc[0]


def test_rejections_do_not_depend_on_n_jobs(default_scenario):
    cc = model.complete_case(default_scenario)
    jobs = [search.Job("il6_drain_mean_log", "welch_log", tuple(search.size_point(n, n) for n in (5, 20, 40))),
            search.Job("los_days", "mann_whitney", (search.size_point(10, 10), search.size_point(40, 40)))]
    one = search.rejections(cc, jobs, n_sims=500, seed=3, n_jobs=1)
    two = search.rejections(cc, jobs, n_sims=500, seed=3, n_jobs=2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    # resized scenarios share patients: power rises with n
    p = one[0].mean(axis=0)
    assert p[0] < p[1] < p[2]


def test_resized_simulated_power_matches_the_exact_power(default_scenario):
    """Simulated Fisher power of the complete-case scenario resized to 60 per arm agrees with the exact power."""
    cc = model.complete_case(default_scenario)
    r = model.binary_rates(build_model(cc), "leak_1m")
    rej = search.rejections(cc, [search.Job("leak_1m", "fisher", (search.size_point(60, 60),))], n_sims=4000, seed=9)[0]
    exact = model.exact_power("fisher", r.p_control, r.p_treatment, 60, 60, alpha=0.05)
    se = math.sqrt(exact * (1 - exact) / 4000)
    assert abs(rej.mean() - exact) < 4 * se


def test_resized_scenarios_drop_tests_beyond_their_size_limit():
    """Generic: every registered test with a max_n leaves the test lists of larger designs (with a flow too)."""
    sc = with_values(load_scenario(CONFIGS / "exosome_lar_20.toml"), {"flow": {}})
    limited = {t for t in tests_registry.names() if tests_registry.get(t).max_n is not None}
    largest = max(tests_registry.get(t).max_n for t in limited)
    big = model.resized(sc, largest + 50, largest + 50)
    assert big.design.n_treatment == largest + 50
    listed = {t for s in big.endpoints.values() for ts in model.test_fields(s).values() for t in ts}
    assert listed and not listed & limited
    small = model.resized(sc, 20, 20)
    assert [model.test_fields(s) for s in small.endpoints.values()] == [model.test_fields(s) for s in sc.endpoints.values()]


def test_samplesize_and_report_give_the_same_n(default_scenario):
    """`trialsim samplesize --endpoint il6_drain_mean_log --test welch_log` and `trialsim report` (same settings)."""
    from trialsim.cli import planning as cli_planning
    from trialsim.planning.plan import plan

    alone = sample_sizes(default_scenario, endpoint="il6_drain_mean_log", test="welch_log", power=(0.8,), n_sims=400,
                         n_max=200, seed=5).results[0]
    report = plan(default_scenario, parts=("samplesize",), power=(0.8, 0.9), search_sims=400, n_max=200, seed=5, n_jobs=1)
    row = report.frame("sample_sizes").set_index(["endpoint", "test", "target_power"]).loc[("il6_drain_mean_log", "welch_log", 0.8)]
    assert (alone.n, alone.n_low, alone.n_high) == (row.n, row.n_low, row.n_high)
    assert alone.method == row.method == "monte_carlo"
    # and the commands' defaults are the same: trials per search step, search limit, seed (run.seed)
    parser = cli_planning.argparse.ArgumentParser()
    cli_planning.add_parsers(parser.add_subparsers(dest="command"))
    ss = parser.parse_args(["samplesize", "x.toml"])
    rp = parser.parse_args(["report", "x.toml", "--out", "o"])
    assert (ss.sims or cli_planning.SEARCH_SIMS) == (rp.search_sims or cli_planning.PLANNING_DEFAULTS["search_sims"]) and ss.n_max == 1500 and ss.seed is rp.seed is None
    import inspect

    defaults = inspect.signature(plan).parameters
    assert defaults["search_sims"].default == cli_planning.SEARCH_SIMS and defaults["n_max"].default == ss.n_max


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


# --------------------------------------------------------------------------------------------------
# minimal detectable effect
# --------------------------------------------------------------------------------------------------
def test_leak_mde_at_ten_per_arm_is_out_of_reach(default_scenario):
    res = minimal_detectable_effect(default_scenario, "leak_1m", "fisher", power=0.8)
    assert not res.reachable and math.isnan(res.effect)
    assert res.best_power < 0.05  # even near-complete prevention gives almost no power at 10 per arm
    assert res.parameter == build_model(default_scenario).endpoint("leak_1m").effect.path


def test_leak_mde_is_the_boundary_of_exact_power(default_scenario):
    res = minimal_detectable_effect(default_scenario, "leak_1m", "fisher", power=0.8, n_per_arm=70)
    # the engine before the reshape: 0.04848505696031417 and 17.88% at the assumed 0.5 (0.1635 at 100 per arm)
    assert res.effect == pytest.approx(0.04848505696031417, rel=1e-12)
    assert res.power_at_assumed == pytest.approx(0.1787756748414579, rel=1e-12)
    sc = with_values(default_scenario, {"design.n_control": 70, "design.n_treatment": 70})

    def power(rr):
        r = model.binary_rates(build_model(with_values(sc, {"endpoints.leak_1m.effect": rr})), "leak_1m")
        return model.exact_power_enrolled("fisher", r, 70, 70, alpha=0.05)

    assert power(res.effect) >= 0.8 > power(res.effect * 1.01)


def test_simulated_mde_quotes_the_runs_power_at_the_assumed_effect(default_scenario):
    res = minimal_detectable_effect(default_scenario, "il6_drain_mean_log", "welch_log", n_sims=1000, seed=21)
    frame = run(default_scenario, n_sims=1000, seed=21, n_jobs=1).to_frame()
    row = frame[(frame.endpoint == "il6_drain_mean_log") & (frame.test == "welch_log") & (frame.method == "monte_carlo")]
    assert res.reachable and res.method == "monte_carlo"
    assert res.power_at_assumed == row.power.iloc[0]


def test_cytokine_mde_simulated_agrees_with_noncentral_t(default_scenario):
    sc = _pure_shift(default_scenario)
    res = minimal_detectable_effect(sc, "il6_drain_pod1", "welch_log", power=0.8, n_sims=2000, seed=4)
    assert res.reachable and res.method == "monte_carlo"
    # analytic: d with 80% power at 10 vs 10 (noncentral t) = 1.3249; GMR = exp(-d * SD), the SD 0.8
    # simulated (SE about 0.0013)
    assert res.analytic_effect == pytest.approx(math.exp(-1.3249 * 0.8), rel=5e-3)
    # Welch is slightly less powerful than the pooled t at n = 10: its MDE lies at or beyond it
    assert res.effect_low - 0.01 <= res.analytic_effect
    assert abs(res.effect - res.analytic_effect) < 0.03


# --------------------------------------------------------------------------------------------------
# another trial
# --------------------------------------------------------------------------------------------------
def test_planning_a_continuous_primary(crp_scenario):
    table = sample_sizes(crp_scenario, power=(0.8,), n_sims=600, seed=3)
    crp = table.get("crp_pod3", "welch_log", 0.8)
    assert crp.method == "monte_carlo" and crp.reachable and crp.dropout == 0.0
    # analytic: noncentral t on d = |log 0.75| / 0.6 (covariate shift adds variance) / 0.95 kept samples
    assert abs(crp.n - crp.n_analytic) <= 0.15 * crp.n_analytic
    ssi = sample_sizes(crp_scenario, endpoint="ssi_30d", power=(0.8,)).results[0]
    assert ssi.method == "exact" and ssi.reachable and ssi.dropout == pytest.approx(
        model.binary_rates(build_model(crp_scenario), "ssi_30d").missing_control)
    assert [p for p, _ in model.key_pairs(build_model(crp_scenario))] == ["crp_pod3", "crp_pod3", "ssi_30d"]


def test_planning_code_names_no_endpoint():
    """Planning and report code ask the model and the registries; they never name a trial's endpoint."""
    names = re.compile(r"leak|los_days|colonoscop|cytokine|il6|il-6|tnf|crp|ssi_30d|exosome", re.IGNORECASE)
    files = sorted((ROOT / "trialsim" / "planning").glob("*.py")) + [
        ROOT / "trialsim" / "report" / f for f in ("document.py", "paragraph.py", "figures.py", "tables.py")]
    found = {}
    for f in files:
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if names.search(line) and ".toml" not in line:  # config file names are not endpoint names
                found.setdefault(f.name, []).append(i)
    assert not found, found


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
    r = model.binary_rates(build_model(default_scenario), "leak_1m")
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
# configs and sizes
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_configs_have_a_plan(path):
    """Every shipped config loads and planning finds its primary, key pairs and dropout from the model."""
    m = build_model(load_scenario(path))
    pairs = model.key_pairs(m)
    assert pairs[0][0] == m.primary.name
    assert 0.0 <= model.dropout(m, m.primary.name) < 1.0


def test_leak_powered_config_is_powered():
    """The shipped leak-powered design has 80% exact Fisher power at its expected analysable size."""
    sc = load_scenario(CONFIGS / "leak_powered.toml")
    m = build_model(sc)
    r = model.binary_rates(m, m.primary.name)
    n_a = round(sc.design.n_control * (1 - r.missing_control))
    assert model.exact_power(m.primary.tests[0], r.p_control, r.p_treatment, n_a, n_a, alpha=0.05) >= 0.8


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 2000), ratio=st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]))
def test_treatment_size_rounds_half_up(n, ratio):
    m = model.n_treatment_for(n, ratio)
    assert abs(m - ratio * n) <= 0.5 and m >= 1


@pytest.mark.parametrize("ahead", [None, (0.3, 0.5), (1.3, 2.0)])
def test_parallel_exact_scans_equal_one_scan_per_target(ahead, monkeypatch):
    """The report's scans on the workers (sizes computed ahead, approaches, then horizon sizes in pieces) give
    exact_scan's every size; also when the sizes computed ahead are predicted far too low or too high."""
    if ahead is not None:
        monkeypatch.setattr(samplesize, "AHEAD_RANGE", ahead)  # read in this process, where the pieces are chosen
    jobs = [("fisher", 0.30, 0.15, (0.8, 0.9), 0.05, 1.0, 400), ("chi2", 0.2, 0.1, (0.8,), 0.05, 2.0, 600),
            ("fisher", 0.2, 0.2, (0.8,), 0.05, 1.0, 60)]  # the last never reaches the target
    assert samplesize.ahead_sizes(jobs[0]) and not samplesize.ahead_sizes(jobs[2])
    got = computed_scans(jobs, n_jobs=2, backend="loky", scheduler=None)  # computed, never read from the disk cache
    for (test, p_c, p_t, targets, alpha, ratio, cap), scans in zip(jobs, got):
        for target, scan in zip(targets, scans):
            one = exact_scan(test, p_c, p_t, power=target, alpha=alpha, ratio=ratio, n_max=cap)
            np.testing.assert_array_equal(scan.n, one.n)
            np.testing.assert_array_equal(scan.power, one.power)
            assert (scan.n_first, scan.n_stable, scan.target) == (one.n_first, one.n_stable, one.target)
    assert got[0][0].n_stable is not None and got[2][0].n_first is None


def test_sample_sizes_default_to_the_designs_allocation_ratio():
    sc = load_scenario(ROOT / "configs" / "designs" / "ratio_2to1_30.toml")
    row = sample_sizes(sc, endpoint="leak_1m", test="fisher", power=0.8, simulate=False).results[0]
    assert row.ratio == 2.0 and row.n_treatment == model.n_treatment_for(row.n, 2.0)
    rates = model.binary_rates(build_model(sc), "leak_1m")
    scan = exact_scan("fisher", rates.p_control, rates.p_treatment, power=0.8, alpha=sc.design.alpha, ratio=2.0,
                      n_max=row.n_max)
    assert row.n == scan.n_stable  # the scan at 2:1, not at 1:1
    equal = sample_sizes(sc, endpoint="leak_1m", test="fisher", power=0.8, ratio=1.0, simulate=False).results[0]
    assert equal.ratio == 1.0 and equal.n_treatment == equal.n > row.n  # more per arm when the arms are equal


def test_an_effect_assumed_to_be_none_is_searched_on_the_side_where_the_treatment_helps():
    # found by review: the colonoscopy grade's odds ratio (> 1 = better grades, assumed 1) was searched below 1 (harm)
    sc = load_scenario(ROOT / "configs" / "exosome_lar_20.toml")
    m = build_model(sc)
    grade = m.endpoint("colonoscopy_grade").effect
    assert grade.assumed == grade.null == 1.0 and grade.benefit == 1.0
    axis = mde_module.effect_axis(sc, grade)
    assert axis.direction == 1.0 and axis.value(axis.x_extreme) == axis.extreme == grade.upper  # exactly the bound
    assert axis.value(0.5) > 1.0
    stay = m.endpoint("los_days").effect  # a ratio of medians: shorter stays help
    assert stay.assumed == stay.null and mde_module.effect_axis(sc, stay).direction == -1.0
    leak = m.endpoint("leak_1m").effect  # assumed below no effect: searched below it, whatever the benefit side
    assert leak.assumed < leak.null and mde_module.effect_axis(sc, leak).direction == -1.0


def test_a_design_with_a_multiplicity_family_plans_its_pairs_unadjusted(tmp_path):
    """Planning reduces a scenario to the pairs it searches: a [multiplicity] family naming endpoints reduced away made
    the reduced scenario invalid, so `report` of the Holm design (and `report --from` its run folder) ended in a
    config error. Each pair is planned unadjusted, as interim looks and harm reviews are left out."""
    holm = load_scenario(ROOT / "configs" / "designs" / "holm_secondaries_20.toml")
    small = model.reduced(holm, [("il6_drain_mean_log", "welch_log")])
    assert holm.multiplicity is not None and small.multiplicity is None
    out = tmp_path / "run"
    run(holm, n_sims=300, seed=1, n_jobs=1, out=out)
    assert main(["report", "--from", str(out), "--out", str(tmp_path / "report"), "--formats", "md", "--quiet"]) == 0
