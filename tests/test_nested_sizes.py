"""Nested sizes: smaller trials read off each simulated trial's first patients of each arm (planning's searches over n)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import ROOT
from trialsim.analysis import registry as tests_registry
from trialsim.config.loader import load_scenario, with_values
from trialsim.engine import run_specs
from trialsim.model import build_model
from trialsim.planning import model, search
from trialsim.rng import Streams
from trialsim.scenarios import ScenarioSpec
from trialsim.simulate import nesting_problem, simulate_trials

DEFAULT = ROOT / "configs" / "exosome_lar_20.toml"


@pytest.fixture(scope="module")
def cc():
    return model.complete_case(load_scenario(DEFAULT))


def _first_of_each_arm(treated_row: np.ndarray, n_control: int, n_treatment: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the first patients of each arm, in enrolment order, from one trial's arms."""
    return np.flatnonzero(~treated_row)[:n_control], np.flatnonzero(treated_row)[:n_treatment]


@pytest.mark.parametrize("allocation, inner", [
    ({}, ((8, 8), (10, 14))),
    ({"allocation.scheme": "alternating"}, ((8, 8), (10, 14))),
    ({"allocation.scheme": "permuted_block", "allocation.block_size": 4}, ((8, 8), (12, 12)))])
def test_nested_statistics_are_those_of_the_first_patients_of_each_arm(cc, allocation, inner):
    """Every test at a nested size gives, bit for bit, what it gives on the arms cut by hand from the patient table."""
    big = with_values(model.resized(cc, 24, 24), allocation)
    batch = simulate_trials(big, 300, streams=Streams(5, 0), keep_patients=True, nested=inner)
    alpha = big.design.alpha
    table = batch.patients
    checked = 0
    for size in inner:
        stats = batch.nested[size]
        for (endpoint, test), got in stats.items():
            x = table.observed[endpoint]
            arms = [_first_of_each_arm(row, *size) for row in table.treated]
            xc = np.stack([x[s, c] for s, (c, _) in enumerate(arms)])
            xt = np.stack([x[s, t] for s, (_, t) in enumerate(arms)])
            if tests_registry.get(test).needs_covariates:
                continue
            want = tests_registry.get(test).run(xc, xt, alpha)
            np.testing.assert_array_equal(got.reject, want.reject)
            np.testing.assert_array_equal(got.pvalue, want.pvalue)
            np.testing.assert_array_equal(got.estimate, want.estimate)
            for a, b in zip(got.ci(), want.ci()):
                np.testing.assert_array_equal(a, b)
            checked += 1
    assert checked == 2 * len(build_model(big).pairs())
    # the full-size statistics are those of the run without nested sizes
    plain = simulate_trials(big, 300, streams=Streams(5, 0))
    for key, s in plain.stats.items():
        np.testing.assert_array_equal(batch.stats[key].pvalue, s.pvalue)


def test_nested_power_agrees_with_the_exact_power(cc):
    """Simulated Fisher power at sizes nested in a 90-per-arm trial is the exact power (within 4 SE); the largest
    size's column is the one a lone simulation at that size gives, bit for bit."""
    r = model.binary_rates(build_model(cc), "leak_1m")
    sizes = (20, 45, 90)
    n_sims = 4000
    job = search.Job("leak_1m", "fisher", tuple(search.size_point(n, n) for n in sizes))
    rej = search.rejections(cc, [job], n_sims=n_sims, seed=11)[0]
    assert rej.shape == (n_sims, 3)
    for k, n in enumerate(sizes):
        exact = model.exact_power("fisher", r.p_control, r.p_treatment, n, n, alpha=0.05)
        se = math.sqrt(exact * (1 - exact) / n_sims)
        assert abs(rej[:, k].mean() - exact) < 4 * se, (n, rej[:, k].mean(), exact)
    lone = search.rejections(cc, [search.Job("leak_1m", "fisher", (search.size_point(90, 90),))], n_sims=n_sims, seed=11)[0]
    np.testing.assert_array_equal(rej[:, 2], lone[:, 0])
    # nested trials are the same patients: a larger trial rejects far more often when a smaller one did
    both = (rej[:, 0] & rej[:, 2]).mean()
    assert both > rej[:, 0].mean() * rej[:, 2].mean()


def test_nested_trials_have_the_law_of_trials_simulated_at_their_size(cc):
    """Under randomised permuted blocks (arms differ between trials), nested and directly simulated rejection rates
    of a continuous and a rank test agree within 4 SEs of their difference at every size, and so do their mean
    estimates: the prefix is another draw of the same trial, not a different one."""
    blocks = with_values(cc, {"allocation.scheme": "permuted_block", "allocation.block_size": 4})
    sizes = (8, 16, 32)
    n_sims = 3000
    jobs = [search.Job("il6_drain_mean_log", "welch_log", tuple(search.size_point(n, n) for n in sizes)),
            search.Job("los_days", "mann_whitney", tuple(search.size_point(n, n) for n in sizes))]
    nested = search.rejections(blocks, jobs, n_sims=n_sims, seed=21)
    direct = [np.column_stack([search.rejections(blocks, [search.Job(j.endpoint, j.test, (p,))], n_sims=n_sims, seed=77)[0][:, 0]
                               for p in j.points]) for j in jobs]
    for a, b in zip(nested, direct):
        pa, pb = a.mean(axis=0), b.mean(axis=0)
        se = np.sqrt(pa * (1 - pa) / n_sims + pb * (1 - pb) / n_sims)
        assert (np.abs(pa - pb) < 4 * se).all(), (pa, pb)
        assert pa[0] < pa[1] < pa[2]


def test_a_search_over_sizes_simulates_its_largest_size_only(cc, monkeypatch):
    """A job over arm sizes costs one simulated scenario (its largest size); jobs with the same largest size share
    it, and a job's rejections are the same whichever other jobs are searched with it."""
    seen = []
    real = search.run_specs

    def spy(specs, **kwargs):
        seen.extend(specs)
        return real(specs, **kwargs)

    monkeypatch.setattr(search, "run_specs", spy)
    il6 = search.Job("il6_drain_mean_log", "welch_log", tuple(search.size_point(n, n) for n in (5, 20, 40)))
    tnf = search.Job("tnf_drain_mean_log", "welch_log", tuple(search.size_point(n, n) for n in (10, 40)))
    il6_small = search.Job("il6_drain_mean_log", "welch_log", tuple(search.size_point(n, n) for n in (5, 30)))
    together = search.rejections(cc, [il6, tnf, il6_small], n_sims=300, seed=3)
    tops = sorted((s.scenario.design.n_control, s.nested) for s in seen)
    assert tops == [(30, ((5, 5),)), (40, ((5, 5), (10, 10), (20, 20)))]
    seen.clear()
    alone = search.rejections(cc, [il6_small], n_sims=300, seed=3)
    np.testing.assert_array_equal(alone[0], together[2])
    # the same size in two jobs with other largest sizes: other trials, the same law
    assert not np.array_equal(together[0][:, 0], together[2][:, 0])


def test_nesting_problem_names_why_first_patients_are_not_a_smaller_trial(cc):
    assert nesting_problem(cc, ((5, 5), (10, 3))) is None
    assert "within" in nesting_problem(cc, ((30, 5),))
    assert "[flow]" in nesting_problem(with_values(cc, {"flow": {}}), ((5, 5),))
    assert "does not fill" in nesting_problem(with_values(cc, {"allocation.scheme": "simple"}), ((5, 5),))
    blocks = with_values(cc, {"allocation.scheme": "permuted_block", "allocation.block_size": 4})
    assert nesting_problem(blocks, ((4, 4),)) is None
    assert "does not fill" in nesting_problem(blocks, ((3, 3),))
    selected = with_values(cc, {"allocation.scheme": "selected"})
    assert "covariates" in nesting_problem(selected, ((5, 5),))
    for name in ("stratified_block", "minimisation"):
        assert "covariates" in nesting_problem(with_values(cc, {"allocation.scheme": name}), ((4, 4),))
    for section, name in (("interim", "interim_leak_400"), ("safety", "safety_leak_400")):
        looks = getattr(load_scenario(ROOT / "configs" / "designs" / f"{name}.toml"), section).model_dump(mode="json")
        # (alternating arms: under the sequential allocation a first look at half the patients holds no treated one)
        mixed = with_values(cc, {section: looks, "allocation.scheme": "alternating"})
        assert f"[{section}]" in nesting_problem(mixed, ((5, 5),))
    with pytest.raises(ValueError, match="nested sizes cannot be analysed here"):
        simulate_trials(selected, 10, streams=Streams(1, 0), nested=((5, 5),))


def test_a_search_falls_back_to_one_scenario_per_size_where_nesting_does_not_hold(cc):
    """Simple randomisation (arm sizes vary): each size is its own scenario, and power still rises with n."""
    coin = with_values(cc, {"allocation.scheme": "simple"})
    job = search.Job("il6_drain_mean_log", "welch_log", tuple(search.size_point(n, n) for n in (5, 40)))
    rej = search.rejections(coin, [job], n_sims=300, seed=2)[0]
    assert rej.mean(axis=0)[0] < rej.mean(axis=0)[1]


def test_nested_sizes_stay_out_of_run_folders(cc, tmp_path):
    spec = ScenarioSpec("x", model.resized(cc, 20, 20), {}, nested=((5, 5),))
    with pytest.raises(ValueError, match="per-trial rows"):
        run_specs([spec], seed=1, n_sims=10)
