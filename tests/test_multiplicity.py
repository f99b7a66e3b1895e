"""Multiplicity rules: adjusted decisions equal statsmodels' trial by trial, and every method keeps the
family-wise error at alpha under the global null where the unadjusted tests do not."""
from __future__ import annotations

import gc

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from trialsim.cli import main
from trialsim.config.loader import ConfigError, validate, with_values
from trialsim.decide import decide
from trialsim.decide.multiplicity import family_members, pvalues
from trialsim.model import build_model
from trialsim.registry import MULTIPLICITY_METHODS
from trialsim.rng import Streams
from trialsim.simulate import simulate_trials

from tests.conftest import CRP_CONFIG

# statsmodels' names of the same procedures (statsmodels.stats.multitest.multipletests)
STATSMODELS = {"bonferroni": "bonferroni", "holm": "holm", "hochberg": "simes-hochberg"}
N_ENDPOINTS = 4


@pytest.fixture(autouse=True)
def _no_forced_gc(monkeypatch):
    """statsmodels' Holm branch calls gc.collect() on every call (90 ms each with a test session's heap)."""
    monkeypatch.setattr(gc, "collect", lambda *args: 0)


def markers_scenario(effect: float, *, n_per_arm: int = 50, shared: float = 0.0, method: str = "holm") -> object:
    """``N_ENDPOINTS`` normal endpoints tested by Welch's t; ``shared`` > 0 adds a common covariate to all of them
    (positively dependent tests), 0 leaves them independent."""
    covariates = [{"name": "frail", "prevalence": 0.5}] if shared else []
    endpoints = {
        f"marker_{i}": {"family": "plain_continuous", "mean_control": 0.0, "sd": 1.0, "effect": effect,
                        "covariate_effects": {"frail": shared} if shared else {}, "tests": ["welch"]}
        for i in range(N_ENDPOINTS)
    }
    return validate({"name": "markers", "design": {"n_control": n_per_arm, "n_treatment": n_per_arm, "masking": "none"},
                     "allocation": {"scheme": "alternating"}, "population": {"covariates": covariates},
                     "endpoints": endpoints, "follow_up": {"p_missing_visit": 0.0, "p_death": 0.0},
                     "multiplicity": {"method": method}})


def outcomes(scenario, n_sims: int, seed: int):
    batch = simulate_trials(scenario, n_sims, streams=Streams(seed, 0))
    return batch, decide(batch).outcomes["multiplicity"]


def test_registry_lists_the_methods():
    assert {"bonferroni", "holm", "hochberg", "fixed_sequence"} <= set(MULTIPLICITY_METHODS.names())


def test_no_section_no_outcomes(default_scenario):
    batch = simulate_trials(default_scenario, 20, streams=Streams(1, 0))
    assert decide(batch).outcomes["multiplicity"] == {}


# --------------------------------------------------------------------------------- vs statsmodels
@pytest.mark.parametrize("method", sorted(STATSMODELS))
def test_adjusted_decisions_equal_statsmodels_trial_by_trial(method):
    """Mixed effects give every pattern of rejections; the rule's decision equals multipletests' in every trial."""
    sc = with_values(markers_scenario(0.35), {"multiplicity.method": method, "endpoints.marker_1.effect": 0.0,
                                              "endpoints.marker_3.effect": 0.6})
    batch, out = outcomes(sc, 600, seed=3)
    members = family_members(batch.model)
    p = pvalues(batch, members)
    ours = np.stack([out[(e, t, f"reject_{method}")] for e, t in members])
    theirs = np.stack([multipletests(p[:, s], alpha=0.05, method=STATSMODELS[method])[0] for s in range(p.shape[1])], axis=1)
    np.testing.assert_array_equal(ours, theirs)
    assert 0 < ours.sum() < ours.size  # both decisions occur
    np.testing.assert_array_equal(out[("family", method, "any_reject")], theirs.any(axis=0))
    np.testing.assert_array_equal(out[("family", method, "all_reject")], theirs.all(axis=0))
    np.testing.assert_array_equal(out[("family", method, "n_reject")], theirs.sum(axis=0))
    own = np.stack([batch.stats[k].reject for k in members])
    np.testing.assert_array_equal(out[("family", "unadjusted", "any_reject")], own.any(axis=0))
    assert (theirs <= own).all()  # an adjustment only removes rejections


@pytest.mark.parametrize("method", sorted(STATSMODELS))
def test_discrete_pvalues_with_ties_equal_statsmodels(default_scenario, method):
    """The registered trial's default family (23 endpoints, Fisher's tied p-values of 1) as multipletests."""
    sc = with_values(default_scenario, {"multiplicity": {"method": method}, "design.n_control": 30, "design.n_treatment": 30})
    batch, out = outcomes(sc, 150, seed=4)
    members = family_members(batch.model)
    assert members[0] == ("leak_1m", "fisher") and len(members) == len(batch.model.analysed)
    p = pvalues(batch, members)
    ours = np.stack([out[(e, t, f"reject_{method}")] for e, t in members])
    theirs = np.stack([multipletests(p[:, s], alpha=0.05, method=STATSMODELS[method])[0] for s in range(p.shape[1])], axis=1)
    np.testing.assert_array_equal(ours, theirs)
    assert ours.any()


def test_fixed_sequence_stops_at_the_first_non_rejection():
    sc = with_values(markers_scenario(0.5, method="fixed_sequence"),
                     {"multiplicity.family": ["marker_2:welch", "marker_0:welch", "marker_1:welch"],
                      "endpoints.marker_0.effect": 0.0})
    batch, out = outcomes(sc, 400, seed=6)
    p = pvalues(batch, family_members(batch.model))
    expected = np.ones(p.shape[1], bool)
    for i, e in enumerate(("marker_2", "marker_0", "marker_1")):
        expected = expected & (p[i] <= 0.05)  # each at full alpha, only after every earlier one rejected
        np.testing.assert_array_equal(out[(e, "welch", "reject_fixed_sequence")], expected)
    assert ("marker_3", "welch", "reject_fixed_sequence") not in out
    assert out[("marker_2", "welch", "reject_fixed_sequence")].mean() > 0.5  # the first is tested at full alpha


# ------------------------------------------------------------------------------------ error rates
@pytest.mark.slow
@pytest.mark.parametrize("shared", [0.0, 1.5], ids=["independent", "positively_dependent"])
def test_family_wise_error_at_most_alpha_under_the_global_null(shared):
    """4 true nulls, Welch at 50 per arm (size about 0.05 each). Unadjusted: FWER 1 - 0.95^4 = 0.185 when
    independent; every method keeps it at or below alpha (Holm 1979; Hochberg 1988 under independence and,
    Sarkar 1998, positive dependence; fixed sequence tests the first at alpha)."""
    n_sims = 20_000
    fwer = {}
    batch = None
    for method in ("bonferroni", "holm", "hochberg", "fixed_sequence"):
        sc = markers_scenario(0.0, shared=shared, method=method)
        batch, out = outcomes(sc, n_sims, seed=12)
        fwer[method] = out[("family", method, "any_reject")].mean()
        fwer["unadjusted"] = out[("family", "unadjusted", "any_reject")].mean()
    se = np.sqrt(0.05 * 0.95 / n_sims)
    for method, rate in fwer.items():
        if method == "unadjusted":
            assert rate > 0.05 + 10 * se, fwer
        else:
            assert rate <= 0.05 + 3 * se, fwer
    if shared == 0.0:
        assert fwer["unadjusted"] == pytest.approx(1 - 0.95 ** N_ENDPOINTS, abs=4 * np.sqrt(0.185 * 0.815 / n_sims))
    # the same draws under every method: the first member's own size is the fixed sequence's FWER
    assert fwer["fixed_sequence"] == pytest.approx(0.05, abs=4 * se)


def test_power_orders_as_the_procedures_nest():
    """Bonferroni <= Holm <= Hochberg trial by trial (each rejects at least what the previous one does)."""
    got = {}
    for method in ("bonferroni", "holm", "hochberg"):
        _, out = outcomes(markers_scenario(0.4, method=method), 500, seed=9)
        got[method] = np.stack([out[(f"marker_{i}", "welch", f"reject_{method}")] for i in range(N_ENDPOINTS)])
    assert (got["bonferroni"] <= got["holm"]).all() and (got["holm"] <= got["hochberg"]).all()
    assert got["bonferroni"].sum() < got["hochberg"].sum()


# ----------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("family, message", [
    (["leak_1m:fisher", "nothing:fisher"], r"multiplicity\.family\[1\].*'nothing' is not an analysed endpoint"),
    (["leak_1m:welch"], r"multiplicity\.family\[0\].*'leak_1m' is not tested with 'welch'; its tests: fisher"),
    (["leak_1m"], r"'endpoint:test'"),
    (["leak_1m:fisher", "leak_1m:fisher"], r"listed twice"),
])
def test_family_members_are_checked_against_the_scenario(default_scenario, family, message):
    with pytest.raises(ConfigError, match=message):
        with_values(default_scenario, {"multiplicity": {"family": family}})


def test_unknown_method_is_refused(default_scenario):
    with pytest.raises(ConfigError, match=r"multiplicity\.method.*allowed methods: bonferroni, holm"):
        with_values(default_scenario, {"multiplicity": {"method": "sidak"}})


def test_default_family_is_the_first_test_of_each_endpoint_primary_first(crp_scenario):
    model = build_model(with_values(crp_scenario, {"multiplicity": {}}))
    assert family_members(model) == tuple((a.name, a.tests[0]) for a in model.analysed)
    assert family_members(model)[0][0] == model.primary.name


def test_cli_names_the_bad_member_and_exits_2(capsys):
    """A bad family from the command line: exit status 2, the key path named, no traceback."""
    status = main(["run", str(CRP_CONFIG), "--sims", "10", "--quiet", "--set", 'multiplicity.family=["crp_pod3:fisher"]'])
    err = capsys.readouterr().err
    assert status == 2 and "multiplicity.family[0]" in err and "Traceback" not in err, err
