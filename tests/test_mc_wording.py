"""The report's and the console's words do not change with Monte Carlo noise.

A simulated rate is called above or below a threshold (the target power, twice the type I error, the
console's low power) only when its whole 95% Monte Carlo interval is, judged on the result's raw
interval, not the rounded cells. A power within Monte Carlo error of the target, where a design sized
by trialsim's own sample-size search sits by construction, has its own neutral words: about the target,
with its interval; neither "powered" nor a pilot, and the same whichever side of the target the noise
puts it. Only a power clearly below the target makes the design a pilot. Exact figures are their own
interval and are compared directly. The protocol text never asks for "more trials" or names a
command-line flag; the console does. The results here are the randomised CRP trial's (its primary test
has no exact power) with the primary's simulated power and type I error set by hand.
"""
from __future__ import annotations

import copy

import pytest

from tests.conftest import CRP_CONFIG, DEFAULT_CONFIG
from tests.test_report import _numbers_are_cells, planned
from trialsim.report.console import Row, low_power_warning
from trialsim.report.document import build_tables
from trialsim.report.paragraph import headline, justification
from trialsim.results import ABOVE, BELOW, WITHIN, mc_side

MORE = "more simulated trials would show whether"  # the report's words
CONSOLE_MORE = "simulate more trials (--sims) to tell whether"  # the console's, with the flag


@pytest.fixture(scope="module")
def crp():
    res = planned(CRP_CONFIG)
    power = res.frame("power")
    assert not ((power.endpoint == res.design["primary_endpoint"]) & (power.method == "exact")).any()  # simulated only
    return res


def _set(res, frame: str, rate: float, low: float, high: float):
    """A copy of ``res`` whose primary simulated rate in ``frame`` ("power" or "null_power") is ``rate`` [low, high]."""
    out = copy.copy(res)
    out.frames = dict(res.frames)
    f = res.frame(frame).copy()
    at = ((f.endpoint == res.design["primary_endpoint"]) & (f.test == res.design["primary_test"])
          & (f.method == "monte_carlo"))
    assert at.sum() == 1
    f.loc[at, ["power", "ci_low", "ci_high"]] = [rate, low, high]
    out.frames[frame] = f
    return out


def _texts(res) -> tuple[str, str, dict]:
    tables = build_tables(res)
    head = headline(res, tables)
    _numbers_are_cells(res)  # every number quoted, the Monte Carlo intervals too, is a table cell
    for fact in head.facts:
        assert tables[fact.table].cell(fact.row, fact.column) == fact.text
    text = justification(res, tables).text
    for words in (text, head.verdict, *dict(head.rows).values()):  # protocol text: no flags, no "more trials"
        assert "--" not in words and "run more trials" not in words and "((" not in words
    return text, head.verdict, dict(head.rows)


def test_the_rule():
    assert mc_side(0.8, 0.81, 0.85) == ABOVE and mc_side(0.8, 0.8, 0.85) == ABOVE
    assert mc_side(0.8, 0.7, 0.79) == BELOW
    assert mc_side(0.8, 0.79, 0.81) == WITHIN
    # an exact figure is its own interval: compared directly, never within Monte Carlo error
    assert mc_side(0.8, 0.8, 0.8) == ABOVE and mc_side(0.8, 0.7999, 0.7999) == BELOW


def test_power_clearly_above_the_target_is_a_power_statement(crp):
    text, verdict, rows = _texts(_set(crp, "power", 0.85, 0.83, 0.87))
    assert "85.0% power (simulated)" in text and "pilot" not in text and "Monte Carlo error of the" not in text
    assert verdict.startswith("The design is powered for its primary hypothesis: 85.0% power")
    assert "Main trial" not in rows


def test_power_clearly_below_the_target_is_a_pilot(crp):
    text, verdict, rows = _texts(_set(crp, "power", 0.70, 0.68, 0.72))
    assert "The trial is therefore not designed to test its primary hypothesis" in text
    assert "within Monte Carlo error" not in text and MORE not in text
    assert verdict.startswith("The design is underpowered for its primary hypothesis (70.0% power")
    assert "Main trial" in rows


@pytest.mark.parametrize("rate", [0.795, 0.805])  # either side of the target, its interval across it
def test_power_within_monte_carlo_error_of_the_target_is_about_the_target_whichever_side_it_falls(crp, rate):
    text, verdict, rows = _texts(_set(crp, "power", rate, rate - 0.02, rate + 0.02))
    interval = f"{100 * (rate - 0.02):.1f}% to {100 * (rate + 0.02):.1f}%"
    about = f"about 80% power (95% Monte Carlo interval {interval}), within Monte Carlo error of the 80% target"
    assert f"give {about}." in text
    # neutral: neither called powered nor justified as a pilot; the sizes for each target stay, as for a powered design
    assert "pilot" not in text and "not designed to test" not in text and "Minimal" not in text
    assert "smallest" not in text and "A main trial" not in text and MORE not in text
    assert "80% power needs" in text and "90% power needs" in text
    assert verdict == f"The design has about its target power for its primary hypothesis at the assumed effect: {about}" + \
        f", with a type I error of {rows['Type I error'].split(' ')[0]}."
    assert "Main trial" not in rows


def test_a_power_whose_interval_touches_the_target_is_not_a_pilot(crp):
    """The review's case: 81.7% (79.9% to 83.4%), as a design sized for 80% power gives, used to read as a pilot."""
    text, verdict, rows = _texts(_set(crp, "power", 0.817, 0.799, 0.834))
    assert "about 80% power (95% Monte Carlo interval 79.9% to 83.4%), within Monte Carlo error of the 80% target" in text
    assert "pilot" not in text and "pilot" not in verdict and "Main trial" not in rows
    assert verdict.startswith("The design has about its target power")


def test_above_or_below_is_judged_on_the_raw_interval_not_the_rounded_cells(crp):
    """A lower bound of 79.96% shows as 80.0% but is below an 80% target: within Monte Carlo error, not powered."""
    res = _set(crp, "power", 0.82, 0.7996, 0.84)
    assert build_tables(res)["power"].cell("crp_pod3|welch_log", "95% MC interval") == "80.0% to 84.0%"
    text, verdict, _ = _texts(res)
    assert "within Monte Carlo error of the 80% target" in text and verdict.startswith("The design has about")
    # and the other way: an upper bound of 79.96% (shown as 80.0%) is clearly below the target
    text, verdict, rows = _texts(_set(crp, "power", 0.78, 0.76, 0.7996))
    assert "The trial is therefore not designed to test its primary hypothesis" in text
    assert verdict.startswith("The design is underpowered") and "Main trial" in rows


def test_the_words_are_the_same_either_side_of_the_target_within_monte_carlo_error(crp):
    texts = [_texts(_set(crp, "power", p, p - 0.02, p + 0.02)) for p in (0.795, 0.805)]
    for i in range(2):  # paragraph and verdict
        assert texts[0][i].replace("77.5", "L").replace("81.5", "H") == \
            texts[1][i].replace("78.5", "L").replace("82.5", "H")


def _type_i(crp, power, size):
    return _texts(_set(_set(crp, "power", *power), "null_power", *size))


def test_power_clearly_below_twice_the_type_i_error_cannot_tell(crp):
    text, verdict, _ = _type_i(crp, (0.08, 0.075, 0.085), (0.05, 0.045, 0.055))
    assert ("it rejects hardly more often with the assumed effect than without any, so the trial cannot tell a working "
            "treatment from a useless one") in text
    assert verdict.startswith("The design cannot tell a working treatment from a useless one")


def test_power_and_type_i_error_within_monte_carlo_error_of_each_other(crp):
    text, _, _ = _type_i(crp, (0.06, 0.05, 0.07), (0.05, 0.045, 0.055))
    assert "it rejects about as often with the assumed effect as without any (within Monte Carlo error)" in text
    assert "no more often" not in text and "less often" not in text and "hardly more often" not in text


def test_power_clearly_below_the_type_i_error_rejects_less_often(crp):
    text, _, _ = _type_i(crp, (0.03, 0.02, 0.04), (0.05, 0.045, 0.055))
    assert "it rejects less often with the assumed effect than without any" in text


def test_power_within_monte_carlo_error_of_twice_the_type_i_error_may_not_tell(crp):
    text, verdict, _ = _type_i(crp, (0.08, 0.06, 0.10), (0.05, 0.04, 0.06))
    assert ("its power is within Monte Carlo error of twice this type I error, so the trial may not tell a working "
            f"treatment from a useless one; {MORE} it can.") in text
    assert "cannot tell" not in text
    assert verdict.startswith("The design may not tell a working treatment from a useless one: its primary test rejects "
                              "in 8.0% of trials with the assumed effect and in 5.0% with none, a power within Monte "
                              "Carlo error of twice its type I error, so it is a pilot and feasibility study, to be judged "
                              f"by what it estimates; {MORE} it can tell them apart.")
    tables = build_tables(_set(crp, "null_power", 0.05, 0.04, 0.06))
    assert tables["power"].cell("crp_pod3|welch_log", "Type I error 95% MC interval") == "4.0% to 6.0%"


def test_twice_the_type_i_error_is_judged_on_the_raw_intervals(crp):
    """Shown rounded, 10.0% against twice 5.0% looks clearly at least twice; raw, 9.96% is not twice 4.99%."""
    res = _set(_set(crp, "power", 0.11, 0.0996, 0.12), "null_power", 0.045, 0.04, 0.0499)
    cells = build_tables(res)["power"]
    assert cells.cell("crp_pod3|welch_log", "95% MC interval").startswith("10.0% to")
    assert cells.cell("crp_pod3|welch_log", "Type I error 95% MC interval").endswith("to 5.0%")
    text, verdict, _ = _texts(res)
    assert "may not tell a working treatment from a useless one" in text and verdict.startswith("The design may not tell")


def test_power_clearly_above_twice_the_type_i_error_tells(crp):
    text, verdict, _ = _type_i(crp, (0.40, 0.38, 0.42), (0.05, 0.045, 0.055))
    assert "tell a working treatment" not in text and "tell a working treatment" not in verdict
    assert verdict.startswith("The design is underpowered")


def test_two_equal_exact_figures_are_compared_directly():
    """The registered design's exact power and exact type I error both show as 0.37%: "no more often", never Monte Carlo
    words. Raw, the power (0.3704%) is a little below the type I error (0.3722%), so "less often" would be true, but
    would read as contradicting the two equal figures quoted."""
    res = planned(DEFAULT_CONFIG)
    power, null = (res.frame(f).query("endpoint == 'leak_1m' and test == 'fisher' and method == 'exact'").power.iloc[0]
                   for f in ("power", "null_power"))
    assert power < null and f"{100 * power:.2f}" == f"{100 * null:.2f}" == "0.37"
    text = justification(res, build_tables(res)).text
    assert "it rejects no more often with the assumed effect than without any, so the trial cannot tell" in text
    assert "Monte Carlo error of" not in text


def _row(power, low, high, method="monte_carlo"):
    return Row(power=power, ci_low=low, ci_high=high, method=method, n_sims=2000)


def test_console_warns_of_low_power_only_when_it_is_clearly_low():
    clearly = low_power_warning(_row(0.30, 0.28, 0.32), "", "leak")
    assert clearly.startswith("WARNING: the primary test has 30.0% power, far below the usual 80%")
    near = [low_power_warning(_row(p, p - 0.03, p + 0.03), "", "leak") for p in (0.49, 0.51)]
    assert near[0] == ("NOTE: the primary test has 49.0% power, within Monte Carlo error of 50% (95% Monte Carlo interval "
                       f"46.0% to 52.0%): {CONSOLE_MORE} it is far below the usual 80%.")
    assert near[1].startswith("NOTE: the primary test has 51.0% power, within Monte Carlo error of 50%")
    assert low_power_warning(_row(0.60, 0.57, 0.63), "", "leak") == ""
    # an exact power is compared directly
    assert low_power_warning(_row(0.49, 0.49, 0.49, "exact"), " (exact)", "leak").startswith(
        "WARNING: the primary test has 49.0% power (exact), far below")
    assert low_power_warning(_row(0.50, 0.50, 0.50, "exact"), " (exact)", "leak") == ""
