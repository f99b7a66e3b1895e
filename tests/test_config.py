"""Config: defaults, overrides, round trip through `show`, and every class of bad input rejected clearly."""
import subprocess
import sys
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import DEFAULT_CONFIG, ROOT
from trialsim.config.loader import ConfigError, config_hash, load_scenario, scenario_to_toml, validate, with_values
from trialsim.config.schema import Scenario


def test_default_config_is_the_registered_design(default_scenario):
    d = default_scenario.design
    assert (d.n_control, d.n_treatment, d.alpha) == (10, 10, 0.05)
    assert d.allocation == "non_randomized" and d.masking == "quadruple"
    assert default_scenario.leak.tests[0] == "fisher"


def test_show_round_trips_to_the_same_scenario(default_scenario):
    text = scenario_to_toml(default_scenario)
    assert validate(tomllib.loads(text)) == default_scenario
    # every value is preceded by a description line
    assert "# Marginal 30-day clinical (ISREC grade B/C) leak rate" in text


def test_empty_config_gets_cited_defaults():
    sc = validate({})
    assert sc.leak.rate_control == 0.12 and sc.design.n_control == 10
    assert all(f.source for f in sc.population.risk_factors)


def test_override_changes_value_and_hash(default_scenario):
    sc = load_scenario(DEFAULT_CONFIG, ["leak.effect=0.33", "population.risk_factors[0].odds_ratio=3"])
    assert sc.leak.effect == 0.33 and sc.population.risk_factors[0].odds_ratio == 3.0
    assert config_hash(sc) != config_hash(default_scenario)
    assert with_values(default_scenario, {"leak.effect": 0.33, "population.risk_factors.0.odds_ratio": 3.0}) == sc


def test_hash_ignores_parallelism(default_scenario):
    assert config_hash(with_values(default_scenario, {"run.n_jobs": 2, "run.chunk_blocks": 3})) == config_hash(default_scenario)


BAD = [
    ("leak.rate_control=1.5", "leak.rate_control = 1.5"),
    ("leak.rate_control=-0.1", "leak.rate_control = -0.1"),
    ("design.n_control=-3", "design.n_control = -3"),
    ("cytokines.markers[0].log_sd=0", "cytokines.markers[0].log_sd = 0"),
    ("los.log_sd=-1", "los.log_sd = -1"),
    ('leak.tests=["bogus"]', "leak.tests[0] = \"bogus\""),
    ('colonoscopy.tests=["t_test"]', "colonoscopy.tests[0]"),
    ('design.n_control="ten"', "valid integer"),
    ("design.n_control=2.5", "valid integer"),
    ("leak.effect=7", "risk ratio"),
    ("leak.colour=1", "unknown key 'leak.colour'"),
    ("leak.grade_split=[0.5,0.5,0.5]", "sum to 1"),
    ("cytokines.days=[1,3]", "3 values but there are 2 days"),
    ("colonoscopy.abnormal_from=\"awful\"", "not one of the grades"),
    ("run.n_sims=0", "run.n_sims = 0"),
]


@pytest.mark.parametrize("override,needle", BAD)
def test_bad_values_name_key_value_and_rule(override, needle):
    with pytest.raises(ConfigError) as info:
        load_scenario(DEFAULT_CONFIG, [override])
    assert needle in str(info.value)
    assert "not allowed" in str(info.value) or "unknown key" in str(info.value)


def test_malformed_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[leak\nrate_control = 0.1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_scenario(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenario(tmp_path / "nope.toml")


def test_unknown_section_lists_allowed_keys():
    with pytest.raises(ConfigError, match="allowed keys here: name, title"):
        validate({"lek": {"rate_control": 0.1}})


@settings(max_examples=40, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not 0 < x < 1))
def test_any_rate_outside_unit_interval_is_rejected(x):
    with pytest.raises(ConfigError, match="leak.rate_control"):
        validate({"leak": {"rate_control": x}})


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "trialsim", *args], capture_output=True, text=True, cwd=ROOT)


def test_cli_bad_input_exits_2_without_traceback(tmp_path):
    for args in (["run", str(DEFAULT_CONFIG), "--set", "leak.rate_control=2"],
                 ["show", str(DEFAULT_CONFIG), "--set", "leak.unknown=2"],
                 ["run", str(tmp_path / "missing.toml")],
                 ["run", str(DEFAULT_CONFIG), "--sims", "0"]):
        proc = _cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stderr.startswith("trialsim: error:"), proc.stderr


def test_cli_show_prints_resolved_toml():
    proc = _cli("show", str(DEFAULT_CONFIG), "--set", "leak.effect=0.7")
    assert proc.returncode == 0, proc.stderr
    assert isinstance(validate(tomllib.loads(proc.stdout)), Scenario)
    assert tomllib.loads(proc.stdout)["leak"]["effect"] == 0.7


def test_boschloo_on_large_arms_is_refused_with_the_way_out():
    with pytest.raises(ConfigError, match=r"leak.tests.*boschloo.*fisher"):
        load_scenario(DEFAULT_CONFIG, ["design.n_control=300", "design.n_treatment=300"])
    sc = load_scenario(DEFAULT_CONFIG, ["design.n_control=300", "design.n_treatment=300", 'leak.tests=["fisher","chi2"]'])
    assert sc.design.n_control == 300


def _numbers(node):
    """Every value of a raw config except free text (names, titles, sources) and run settings."""
    if isinstance(node, dict):
        return {k: _numbers(v) for k, v in node.items() if k not in ("source", "name", "title", "description", "run")}
    if isinstance(node, list):
        return [_numbers(v) for v in node]
    return node


def test_default_config_file_and_schema_defaults_agree(default_scenario):
    """configs/exosome_lar_20.toml spells out the schema's cited defaults; the two must not drift apart."""
    from trialsim.config.loader import to_raw

    assert _numbers(to_raw(default_scenario)) == _numbers(to_raw(validate({})))
