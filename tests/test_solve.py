"""Tests for trialsim.planning.solve (n, power or effect from a few numbers) and the `solve` / `init` commands.

Reference values are R's, quoted with the call that gives them; exact binary answers are checked
against an enumeration of every 2 x 2 table with scipy's own tests (no shared code).
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from tests.conftest import DEFAULT_CONFIG
from trialsim.cli import build_parser, main
from trialsim.api import run
from trialsim.config.loader import load_scenario
from trialsim.planning.init import template_text, write_template
from trialsim.registry import ALLOCATION_SCHEMES
from trialsim.planning.solve import solve_ratio_of_means, solve_two_means, solve_two_proportions, welch_power


# ------------------------------------------------------------------------------ R reference values
def test_t_test_sample_size_matches_pwr_and_power_t_test():
    # pwr::pwr.t.test(d = 0.5, power = 0.8)  -> n = 63.76561 per group
    s = solve_two_means(0.5, power=0.8)
    assert s.n_continuous == pytest.approx(63.76561, abs=1e-4)
    assert s.n_per_arm == 64 and s.power >= 0.8
    # power.t.test(power = .90, delta = 1)  -> n = 22.02110 (R's example)
    s = solve_two_means(1.0, power=0.9)
    assert s.n_continuous == pytest.approx(22.02110, abs=1e-3)
    assert s.n_per_arm == 23


def test_t_test_power_matches_power_t_test():
    # power.t.test(n = 20, delta = 1)  -> power = 0.8689528 (R's example; it drops the far tail, ~2e-7 here)
    assert solve_two_means(1.0, n_per_arm=20).power == pytest.approx(0.8689528, abs=1e-6)
    # both tails counted, as statsmodels' TTestIndPower (and pwr.t.test) do
    from statsmodels.stats.power import TTestIndPower

    expected = TTestIndPower().power(effect_size=0.5, nobs1=20, alpha=0.05, ratio=1.0)
    assert solve_two_means(0.5, n_per_arm=20).power == pytest.approx(expected, abs=1e-10)


def test_t_test_with_allocation_ratio_and_effect_match_statsmodels():
    from statsmodels.stats.power import TTestIndPower

    sm = TTestIndPower()
    # unequal arms: nobs2 = ratio * nobs1, unrounded, as our continuous root
    s = solve_two_means(0.5, power=0.8, ratio=2)
    assert s.n_continuous == pytest.approx(sm.solve_power(effect_size=0.5, power=0.8, ratio=2, alpha=0.05), rel=1e-6)
    assert s.n_treatment == 2 * s.n_per_arm
    # the smallest standardised difference with 80% power at 10 per arm
    d = solve_two_means(None, n_per_arm=10, power=0.8).effect["d"]
    assert d == pytest.approx(sm.solve_power(nobs1=10, power=0.8, ratio=1, alpha=0.05), rel=1e-6)


def test_two_proportions_normal_approximation_matches_r():
    # Hmisc::bsamsize(p1 = 0.15, p2 = 0.05, power = 0.8)  -> n1 = n2 = 140.0951
    s = solve_two_proportions(0.15, 0.05, power=0.8)
    assert s.approximation.n == pytest.approx(140.0951, abs=1e-4)
    # power.prop.test(p1 = .50, p2 = .75, power = .90)  -> n = 76.7 (R's example)
    assert solve_two_proportions(0.5, 0.75, power=0.9, test="chi2").approximation.n == pytest.approx(76.7, abs=0.05)
    # power.prop.test(n = 50, p1 = .50, p2 = .75)  -> power = 0.7401659 (one tail; ours adds ~1e-6 from the far one)
    assert solve_two_proportions(0.5, 0.75, n_per_arm=50).approximation.power == pytest.approx(0.7401659, abs=1e-5)


# ------------------------------------------------------------------- exact, by independent enumeration
def enumerated_power(n1: int, n2: int, p1: float, p2: float, pvalue, alpha: float = 0.05) -> float:
    """Sum of Binomial(n1, p1) x Binomial(n2, p2) over the tables whose scipy p-value is <= alpha."""
    b1 = stats.binom.pmf(np.arange(n1 + 1), n1, p1)
    b2 = stats.binom.pmf(np.arange(n2 + 1), n2, p2)
    return float(sum(b1[x] * b2[y] for x in range(n1 + 1) for y in range(n2 + 1)
                     if pvalue([[x, n1 - x], [y, n2 - y]]) <= alpha * (1 + 1e-9)))


def fisher_p(table) -> float:
    return stats.fisher_exact(table).pvalue


def chi2_p(table) -> float:
    if sum(r[0] for r in table) in (0, sum(sum(r) for r in table)):
        return 1.0  # no event, or every patient had one: nothing to test
    return stats.chi2_contingency(table, correction=False).pvalue


@pytest.mark.parametrize("test, pvalue", [("fisher", fisher_p), ("chi2", chi2_p)])
def test_exact_power_equals_enumeration(test, pvalue):
    for n1, n2, p1, p2 in [(12, 15, 0.4, 0.1), (9, 9, 0.3, 0.7)]:
        ratio = n2 / n1
        s = solve_two_proportions(p1, p2, n_per_arm=n1, ratio=ratio, test=test)
        assert s.n_treatment == n2
        assert s.power == pytest.approx(enumerated_power(n1, n2, p1, p2, pvalue), abs=1e-10)


def test_exact_sample_size_and_its_sawtooth_by_enumeration():
    # 0.45 vs 0.08, Fisher, 80%: power first reaches 80% at 24 per arm, dips below it at 25, stays above from 26
    s = solve_two_proportions(0.45, 0.08, power=0.8)
    assert (s.n_first, s.n_stable, s.n_per_arm) == (24, 26, 26)
    ref = {n: enumerated_power(n, n, 0.45, 0.08, fisher_p) for n in (23, 24, 25, 26)}
    assert ref[23] < 0.8 <= ref[24] and ref[25] < 0.8 <= ref[26]
    assert s.power == pytest.approx(ref[26], abs=1e-10)
    assert "saw-tooths" in s.summary() and "from n = 26" in s.summary()


def test_smallest_effect_is_where_exact_power_crosses_the_target():
    s = solve_two_proportions(0.3, None, n_per_arm=60, power=0.8)
    pt = s.effect["p_treatment"]
    assert 0 < pt < 0.3
    assert s.power == pytest.approx(0.8, abs=1e-6)
    assert solve_two_proportions(0.3, pt + 0.002, n_per_arm=60).power < 0.8  # closer to no effect: less power
    higher = solve_two_proportions(0.3, None, n_per_arm=60, power=0.8, direction="higher")
    assert higher.effect["p_treatment"] > 0.3 and higher.power == pytest.approx(0.8, abs=1e-6)


def test_unreachable_effect_says_so():
    s = solve_two_proportions(0.05, None, n_per_arm=10, power=0.8)
    assert math.isnan(s.effect["p_treatment"]) and "No treatment rate" in s.note


def test_dropout_inflates_both_arms():
    s = solve_two_proportions(0.45, 0.08, power=0.8, dropout=0.1, ratio=2)
    assert s.n_enrolled == math.ceil(s.n_per_arm / 0.9)
    assert s.n_enrolled_treatment == math.ceil(s.n_treatment / 0.9)


# ----------------------------------------------------------------------------- Welch by quadrature
def test_welch_quadrature_has_converged_and_matches_simulation():
    a = welch_power(1.0, 1.0, 2.0, 10, 30)
    assert a == pytest.approx(welch_power(1.0, 1.0, 2.0, 10, 30, nodes=128), abs=1e-9)
    rng = np.random.default_rng(20240831)
    m = 100_000
    xc = rng.normal(0.0, 1.0, (m, 10))
    xt = rng.normal(1.0, 2.0, (m, 30))
    rejected = stats.ttest_ind(xt, xc, axis=1, equal_var=False).pvalue <= 0.05
    se = math.sqrt(a * (1 - a) / m)
    assert abs(rejected.mean() - a) < 4 * se


def test_welch_solution_and_ratio_of_geometric_means():
    s = solve_two_means(1.0, sd=1.0, sd_treatment=2.0, power=0.9, test="welch", ratio=2)
    assert s.power >= 0.9 > welch_power(1.0, 1.0, 2.0, s.n_per_arm - 1, 2 * (s.n_per_arm - 1))
    g = solve_ratio_of_means(0.7, log_sd=0.69, power=0.8)
    m = solve_two_means(math.log(0.7), sd=0.69, power=0.8)
    assert (g.n_per_arm, g.power) == (m.n_per_arm, m.power)
    assert g.effect["gmr"] == pytest.approx(0.7)
    # from the coefficient of variation: log-SD sqrt(log(1 + cv^2))
    assert solve_ratio_of_means(0.7, cv=0.8, power=0.8).effect["log_sd"] == pytest.approx(math.sqrt(math.log(1.64)))
    lower = solve_ratio_of_means(None, log_sd=0.69, n_per_arm=10, power=0.8)
    assert lower.effect["gmr"] < 1 and lower.power == pytest.approx(0.8, abs=1e-8)


@settings(max_examples=15, deadline=None)
@given(d=st.floats(0.2, 1.5), power=st.floats(0.5, 0.95), ratio=st.sampled_from([0.5, 1.0, 2.0]))
def test_t_sample_size_is_the_smallest_reaching_the_target(d, power, ratio):
    s = solve_two_means(d, power=power, ratio=ratio)
    assert s.power >= power
    if s.n_per_arm > 2:
        assert solve_two_means(d, n_per_arm=s.n_per_arm - 1, ratio=ratio).power < power


def test_bad_questions_are_refused():
    with pytest.raises(ValueError, match="all but one"):
        solve_two_proportions(0.2, 0.1)
    with pytest.raises(ValueError, match="equal SDs"):
        solve_two_means(1.0, sd_treatment=2.0, power=0.8, test="t")
    with pytest.raises(ValueError, match="size limit"):
        solve_two_proportions(0.2, 0.1, n_per_arm=600, test="boschloo")


# ------------------------------------------------------------------------------------- the commands
def test_solve_command_prints_exact_beside_the_approximation(capsys):
    assert main(["solve", "proportions", "--p-control", "0.45", "--risk-ratio", "0.1778", "--power", "0.8"]) == 0
    out = capsys.readouterr().out
    assert "exact (all 2x2 tables)" in out and "normal approximation" in out
    assert main(["solve", "means", "--difference", "0.5", "--power", "0.8"]) == 0
    out = capsys.readouterr().out
    assert "63.77" in out and "noncentral t" in out
    assert main(["solve", "gmr", "--gmr", "0.7", "--log-sd", "0.69", "--n", "10", "--test", "t", "welch"]) == 0
    assert capsys.readouterr().out.count("Ratio of geometric means") == 2


@pytest.mark.parametrize("argv, says", [
    (["means", "--difference", "0.5", "--sd", "1e-300", "--n", "10"], "argument --sd: 1e-300 is not allowed"),
    (["gmr", "--gmr", "0.7", "--log-sd", "1e-300", "--n", "10"], "argument --log-sd: 1e-300 is not allowed"),
    (["means", "--difference", "5000", "--sd", "1", "--n", "10"], "at most 1000 SDs"),
    (["proportions", "--p-control", "1e-300", "--risk-ratio", "0.5", "--power", "0.8"], "use a number in [1e-06, 0.999999]"),
    (["means", "--difference", "1e-300", "--power", "0.8"], "too small"),
    (["proportions", "--p-control", "0.5", "--p-treatment", "0.5000001", "--power", "0.8"], "too small a difference"),
    (["proportions", "--p-control", "0.5", "--n", "100000", "--power", "0.8"], "at most 5,000"),
])
def test_numbers_no_trial_has_are_refused_with_their_values(argv, says, capsys):
    assert main(["solve", *argv]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_unequal_sds_without_a_test_are_answered_by_welch_saying_so():
    s = solve_two_means(0.5, sd=1.0, sd_treatment=2.0, power=0.8)
    assert s.test == "welch" and "SDs differ" in s.note
    assert solve_two_means(0.5, sd=1.0, sd_treatment=1.0, power=0.8).test == "t"


def test_solve_means_with_unequal_sds_answers_with_welch(capsys):
    assert main(["solve", "means", "--difference", "0.5", "--sd", "1", "--sd-treatment", "2", "--power", "0.8"]) == 0
    out = capsys.readouterr().out
    assert "Welch t" in out and "as the SDs differ" in out and "n per arm" in out
    # each test gives what it can: Welch answers, the pooled t test says why it does not, in the flags' words
    argv = ["solve", "means", "--difference", "0.5", "--sd", "1", "--sd-treatment", "2", "--power", "0.8", "--test", "t", "welch"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Welch t" in out and "Not answered: --test t is not allowed with unequal SDs (--sd 1 and --sd-treatment 2)" in out
    assert "use --test welch" in out
    assert main(argv[:-1]) == 2  # the pooled t test alone: nothing to give
    assert "use --test welch" in capsys.readouterr().err


# parameter names and settings as Python writes them (n_per_arm, test='welch'): never in a message of the command
PYTHON_SPELLING = re.compile(r"\b(p_control|p_treatment|n_per_arm|sd_treatment|log_sd|risk_ratio)\b|\w=")


@pytest.mark.parametrize("argv, says", [
    (["proportions", "--p-control", "0.124", "--risk-ratio", "9", "--power", "0.8"],
     "--risk-ratio 9 is not allowed with --p-control 0.124: it makes a treatment rate of 1.116; use a --risk-ratio "
     "from 8.064516e-06 to 8.064508"),
    (["proportions", "--p-control", "0.124", "--risk-ratio", "1", "--power", "0.8"], "--risk-ratio 1 (a treatment rate"),
    (["proportions", "--p-control", "0.124", "--p-treatment", "0.124", "--power", "0.8"],
     "--p-treatment 0.124 is no effect (it equals --p-control 0.124)"),
    (["proportions", "--p-control", "0.124", "--p-treatment", "0.06", "--power", "0.01"],
     "--power 0.01 is not allowed: a target power lies above --alpha 0.05"),
    (["proportions", "--p-control", "0.124", "--p-treatment", "0.06", "--n", "1"], "--n 1 is not allowed"),
    (["proportions", "--p-control", "0.124", "--p-treatment", "0.06", "--n", "6000"], "--n 6000 is not allowed: at most 5,000"),
    (["proportions", "--p-control", "0.124", "--p-treatment", "0.06", "--n", "600", "--test", "boschloo"],
     "--n 600 is not allowed with --test boschloo"),
    (["means", "--difference", "0.5", "--sd", "1", "--sd-treatment", "2", "--power", "0.8", "--test", "t"],
     "--test t is not allowed with unequal SDs"),
    (["means", "--difference", "0", "--power", "0.8"], "--difference 0 is no effect"),
    (["means", "--difference", "1e-9", "--power", "0.8"], "--difference 1e-09 is too small an effect against --sd 1"),
    (["gmr", "--gmr", "1", "--log-sd", "0.5", "--power", "0.8"], "--gmr 1 is no effect"),
    (["gmr", "--gmr", "1.0000000001", "--cv", "0.5", "--power", "0.8"], "--gmr 1.0000000001 is too small an effect against --cv 0.5"),
    (["gmr", "--gmr", "1e6", "--log-sd", "1e-100", "--power", "0.8"], "SDs (--log-sd 1e-100): at most 1000 SDs"),
])
def test_solve_messages_name_the_flags_given(argv, says, capsys):
    assert main(["solve", *argv]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
    assert not PYTHON_SPELLING.search(err), err


def test_the_solvers_refuse_what_their_flags_refuse():
    with pytest.raises(ValueError, match=r"SDs must lie in \[1e-100, 1e\+100\]"):
        solve_two_means(0.5, sd=1e-300, n_per_arm=10)
    with pytest.raises(ValueError, match=r"p_control=1e-300 is not allowed: use a number in \[1e-06"):
        solve_two_proportions(1e-300, 0.5e-300, power=0.8)
    with pytest.raises(ValueError, match="p_treatment"):
        solve_two_proportions(0.2, 1e-9, n_per_arm=20)


def test_a_welch_question_with_one_tight_arm_is_answered():
    """A difference of 2 against SDs of 1 and 0.001 is 2.8 pooled SDs: a question, not a certainty."""
    sol = solve_two_means(2.0, sd=1.0, sd_treatment=0.001, n_per_arm=3, test="welch")
    assert 0.3 < sol.power < 0.6


def test_an_effect_is_found_in_any_unit():
    """The smallest difference scales with the SD: the same question in mg or in kg."""
    one = solve_two_means(sd=1.0, n_per_arm=10, power=0.8).effect["difference"]
    for sd in (1e-6, 1e6):
        assert solve_two_means(sd=sd, n_per_arm=10, power=0.8).effect["difference"] == pytest.approx(one * sd, rel=1e-9)


def test_solve_command_refuses_a_question_without_one_unknown(capsys):
    assert main(["solve", "means", "--power", "0.8"]) == 2
    assert "left out: --difference, --n" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("trialsim ")


@pytest.mark.parametrize("template", ["blank", "registered"])
def test_init_writes_a_config_that_loads(tmp_path, template, capsys):
    out = tmp_path / f"{template}.toml"
    assert main(["init", "--template", template, str(out)]) == 0
    scenario = load_scenario(out)
    assert scenario.design.n_control >= 1
    if template == "registered":
        assert load_scenario(DEFAULT_CONFIG) == scenario
    else:
        assert "FILL IN" in out.read_text()
    assert main(["init", "--template", template, str(out)]) == 2  # never overwrites without --force
    assert "exists" in capsys.readouterr().err


def test_the_blank_templates_allocation_schemes_are_the_registrys():
    text = template_text("blank")
    section = text[text.index("[allocation]"):text.index('scheme = "')]
    listed = re.findall(r"^#   (\w+)  +(.+)$", section, flags=re.M)
    assert listed == [(name, scheme.label) for name, scheme in ALLOCATION_SCHEMES.items()]
    assert {"stratified_block", "minimisation", "selected"} <= {name for name, _ in listed}


def test_blank_template_runs(tmp_path):
    path = write_template(tmp_path / "new.toml")
    result = run(path, n_sims=200, seed=1, n_jobs=1, progress=False)
    frame = result.to_frame()
    assert {"primary_event", "marker"} <= set(frame["endpoint"])
    assert (frame[frame["endpoint"] == "primary_event"]["method"] == "exact").any()  # a binary primary: exact too
    assert template_text("blank").startswith("# A new two-arm trial")


def test_a_deep_boschloo_dip_is_reported():
    # Boschloo, 5% vs 1%: exact power 34.7% at 109 per arm, 23.7% at 110 (checked against a brute-force supremum
    # over the nuisance rate), so 30% is first reached at 102 but held only from 111
    s = solve_two_proportions(0.05, 0.01, power=0.3, test="boschloo")
    assert s.n_first < 110 < s.n_stable == s.n_per_arm
    assert solve_two_proportions(0.05, 0.01, n_per_arm=110, test="boschloo").power < 0.3


def test_welch_power_holds_at_the_largest_sd_the_flag_takes():
    """--sd-treatment 1e100 printed "-": the squared SD overflowed. The power depends only on SD ratios: ~alpha."""
    assert welch_power(1.0, 1.0, 1e100, 10, 10) == pytest.approx(0.05, abs=1e-3)
    assert welch_power(1.0, 1.0, 2.0, 10, 30) == pytest.approx(welch_power(1e-50, 1e-50, 2e-50, 10, 30), abs=1e-12)
    assert welch_power(3e90, 1e90, 2e90, 10, 30) == pytest.approx(welch_power(3.0, 1.0, 2.0, 10, 30), abs=1e-12)
