"""Config: defaults, overrides, `extends`, round trip through `show`, and every class of bad input rejected clearly."""
import subprocess
import sys
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import CONFIGS, DEFAULT_CONFIG, ROOT
from trialsim.config.loader import ConfigError, config_hash, load_scenario, read_config, scenario_to_toml, to_raw, validate, with_values
from trialsim.config.schema import Design, FollowUp, Scenario
from trialsim.model import build_model

LEAK = "endpoints.leak_1m"


def test_default_config_is_the_registered_design(default_scenario):
    d = default_scenario.design
    assert (d.n_control, d.n_treatment, d.alpha) == (10, 10, 0.05)
    assert default_scenario.allocation.scheme == "sequential" and d.masking == "quadruple"
    assert default_scenario.primary == "leak_1m"
    assert default_scenario.endpoints["leak_1m"].tests[0] == "fisher"
    assert build_model(default_scenario).primary.name == "leak_1m"


def test_show_round_trips_to_the_same_scenario(default_scenario):
    text = scenario_to_toml(default_scenario)
    assert validate(tomllib.loads(text)) == default_scenario
    # every value is preceded by its description, from the family's own schema
    assert "# Marginal rate of the clinical grades (ISREC B/C) in the control arm" in text
    assert "[endpoints.leak_1m]" in text and 'family = "binary_event"' in text


def test_a_section_gets_its_family_s_cited_defaults():
    sc = validate({"endpoints": {"leak": {"family": "binary_event", "risk_factors": []}}})
    assert sc.endpoints["leak"].rate_control == 0.12 and sc.design.n_control == 10
    for name, field in type(sc.endpoints["leak"]).model_fields.items():
        assert name == "family" or field.description, name


def test_override_changes_value_and_hash(default_scenario):
    sc = load_scenario(DEFAULT_CONFIG, [f"{LEAK}.effect=0.33", f"{LEAK}.risk_factors[0].odds_ratio=3"])
    assert sc.endpoints["leak_1m"].effect == 0.33 and sc.endpoints["leak_1m"].risk_factors[0].odds_ratio == 3.0
    assert config_hash(sc) != config_hash(default_scenario)
    assert with_values(default_scenario, {f"{LEAK}.effect": 0.33, f"{LEAK}.risk_factors.0.odds_ratio": 3.0}) == sc


def test_hash_ignores_parallelism(default_scenario):
    assert config_hash(with_values(default_scenario, {"run.n_jobs": 2, "run.chunk_blocks": 3})) == config_hash(default_scenario)


BAD = [
    (f"{LEAK}.rate_control=1.5", f"{LEAK}.rate_control = 1.5"),
    (f"{LEAK}.rate_control=-0.1", f"{LEAK}.rate_control = -0.1"),
    ("design.n_control=-3", "design.n_control = -3"),
    ("endpoints.cytokines.markers[0].log_sd=0", "endpoints.cytokines.markers[0].log_sd = 0"),
    ("endpoints.los_days.log_sd=-1", "endpoints.los_days.log_sd = -1"),
    (f'{LEAK}.tests=["bogus"]', "endpoints.leak_1m.tests[0]: test 'bogus' is not registered; allowed: fisher"),
    ('endpoints.colonoscopy.tests=["t_test"]', "endpoints.colonoscopy.tests[0]: test 't_test'"),
    ('endpoints.cytokines.tests=["fisher"]', "does not apply to the continuous endpoint"),
    ('design.n_control="ten"', "valid integer"),
    ("design.n_control=2.5", "valid integer"),
    (f"{LEAK}.effect=7", "risk ratio"),
    (f"{LEAK}.colour=1", f"{LEAK}.colour = 1 is not allowed: unknown key; allowed keys here: family, label"),
    (f"{LEAK}.grade_split=[0.5,0.5,0.5]", "sum to 1"),
    ("endpoints.cytokines.days=[1,3]", "3 values but there are 2 days"),
    ('endpoints.colonoscopy.abnormal_from="awful"', "not one of the grades"),
    ("run.n_sims=0", "run.n_sims = 0"),
    (f'{LEAK}.family="counts"', 'family = "counts" is not a registered endpoint family; allowed: binary_event'),
    ('primary="crp"', "primary = 'crp' is not an analysed endpoint; choose one of: leak_1m"),
    (f"{LEAK}.tests=[]", "primary = 'leak_1m' is not an analysed endpoint (endpoints.leak_1m gives it no tests); choose one of: il6_serum_pod1"),
    ('endpoints.los_days.event="ghost"', "endpoints.los_days.event links to 'ghost', which is not an endpoint"),
    ('follow_up.death_event="los_days"', "follow_up.death_event = 'los_days' is not an event endpoint"),
    ('allocation.scheme="urn"', 'allocation.scheme = "urn" is not allowed: allowed schemes: sequential'),
    ('allocation.scheme="permuted_block"', "block_size"),  # fine as it is: blocks of 4 hold 1:1
]


@pytest.mark.parametrize("override,needle", BAD)
def test_bad_values_name_key_value_and_rule(override, needle):
    if needle == "block_size":
        assert load_scenario(DEFAULT_CONFIG, [override, "allocation.block_size=4"]).allocation.scheme == "permuted_block"
        with pytest.raises(ConfigError, match=r"allocation.block_size = 5 is not a multiple of the sum of allocation.ratio"):
            load_scenario(DEFAULT_CONFIG, [override, "allocation.block_size=5"])
        return
    with pytest.raises(ConfigError) as info:
        load_scenario(DEFAULT_CONFIG, [override])
    message = str(info.value)
    assert needle in message, message
    assert any(word in message for word in ("not allowed", "unknown key", "allowed:", "choose one of", "not an"))


def test_malformed_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[endpoints.leak\nrate_control = 0.1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_scenario(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenario(tmp_path / "nope.toml")


def test_unknown_section_lists_allowed_keys():
    with pytest.raises(ConfigError, match="allowed keys here: name, title"):
        validate({"lek": {"rate_control": 0.1}, "endpoints": {"leak": {"family": "binary_event", "risk_factors": []}}})


def test_a_config_without_endpoints_or_without_analyses_is_refused():
    with pytest.raises(ConfigError, match="endpoints"):
        validate({})
    with pytest.raises(ConfigError, match="no endpoint is analysed"):
        validate({"endpoints": {"ssi": {"family": "plain_binary", "rate_control": 0.1, "effect": 1.0, "tests": []}}})


@settings(max_examples=40, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not 0 < x < 1))
def test_any_rate_outside_unit_interval_is_rejected(x):
    with pytest.raises(ConfigError, match="endpoints.ssi.rate_control"):
        validate({"endpoints": {"ssi": {"family": "plain_binary", "rate_control": x, "effect": 1.0}}})


# ---------------------------------------------------------------------------------------- extends
def test_extends_lays_a_file_over_another(tmp_path):
    base = tmp_path / "base.toml"
    base.write_text('name = "base"\n[design]\nn_control = 12\nn_treatment = 12\n'
                    '[endpoints.ssi]\nfamily = "plain_binary"\nrate_control = 0.2\neffect = 0.5\ntests = ["fisher", "chi2"]\n')
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "child.toml"
    child.write_text('extends = "../base.toml"\nname = "child"\n[design]\nn_treatment = 24\n[endpoints.ssi]\ntests = ["chi2"]\n')
    sc = load_scenario(child)
    assert sc.name == "child" and (sc.design.n_control, sc.design.n_treatment) == (12, 24)  # tables merge key by key
    assert sc.endpoints["ssi"].rate_control == 0.2 and sc.endpoints["ssi"].tests == ("chi2",)  # lists replace
    base.write_text('extends = "sub/child.toml"\n')
    with pytest.raises(ConfigError, match="makes a cycle"):
        load_scenario(child)
    child.write_text("extends = 3\n")
    with pytest.raises(ConfigError, match="must be a file name"):
        load_scenario(child)


@pytest.mark.parametrize("name", ["alternatives", "leak_powered", "cytokine_pilot", "grid_leak"])
def test_the_variants_extend_the_registered_trial_and_change_only_what_they_name(default_scenario, name):
    path = CONFIGS / f"{name}.toml"
    assert read_config(path) and tomllib.loads(path.read_text())["extends"] == "exosome_lar_20.toml"
    sc = load_scenario(path)
    assert sc.primary == "leak_1m" and sc.endpoints["leak_1m"].tests == ("fisher", "chi2")
    for cid in ("cytokines", "colonoscopy", "los_days"):
        assert sc.endpoints[cid] == default_scenario.endpoints[cid]
    assert sc.population == default_scenario.population and sc.follow_up == default_scenario.follow_up
    assert sc.sweep is not None and sc.sweep.values


# -------------------------------------------------------------------------------------------- CLI
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "trialsim", *args], capture_output=True, text=True, cwd=ROOT)


def test_cli_bad_input_exits_2_without_traceback(tmp_path):
    for args in (["run", str(DEFAULT_CONFIG), "--set", f"{LEAK}.rate_control=2"],
                 ["show", str(DEFAULT_CONFIG), "--set", f"{LEAK}.unknown=2"],
                 ["show", str(DEFAULT_CONFIG), "--set", "nonsense"],
                 ["run", str(tmp_path / "missing.toml")],
                 ["run", str(DEFAULT_CONFIG), "--sims", "0"],
                 ["run", str(DEFAULT_CONFIG), "--keep-trials"],
                 ["replay", str(tmp_path), "--trial", "0"]):
        proc = _cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stderr.startswith("trialsim: error:"), proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_cli_show_prints_resolved_toml():
    proc = _cli("show", str(DEFAULT_CONFIG), "--set", f"{LEAK}.effect=0.7")
    assert proc.returncode == 0, proc.stderr
    assert isinstance(validate(tomllib.loads(proc.stdout)), Scenario)
    assert tomllib.loads(proc.stdout)["endpoints"]["leak_1m"]["effect"] == 0.7


def test_cli_show_resolves_extends():
    proc = _cli("show", str(CONFIGS / "leak_powered.toml"))
    assert proc.returncode == 0, proc.stderr
    raw = tomllib.loads(proc.stdout)
    assert "extends" not in raw and raw["design"]["n_control"] == 379
    assert raw["endpoints"]["cytokines"]["markers"][2]["name"] == "il6_drain"


def test_boschloo_on_large_arms_is_refused_with_the_way_out():
    with pytest.raises(ConfigError, match=r"endpoints\.leak_1m uses 'boschloo' \(in endpoints\.leak_1m\.tests\), which runs for "
                                          r"arms of up to 500 patients, but design\.n_control = 501.*leave 'boschloo' out"):
        load_scenario(DEFAULT_CONFIG, ["design.n_control=501", "design.n_treatment=300"])
    sc = load_scenario(DEFAULT_CONFIG, ["design.n_control=501", "design.n_treatment=300", f'{LEAK}.tests=["fisher","chi2"]'])
    assert sc.design.n_control == 501


def _numbers(node):
    """Every value of a raw config except free text (names, titles, labels, sources) and run settings."""
    if isinstance(node, dict):
        return {k: _numbers(v) for k, v in node.items() if k not in ("source", "name", "title", "description", "label", "run")}
    if isinstance(node, list):
        return [_numbers(v) for v in node]
    return node


def test_default_config_file_and_family_defaults_agree(default_scenario):
    """configs/exosome_lar_20.toml spells out the families' cited defaults; the two must not drift apart."""
    raw = to_raw(default_scenario)
    for cid, section in default_scenario.endpoints.items():
        links = {k: raw["endpoints"][cid][k] for k in ("event",) if k in raw["endpoints"][cid]}
        defaults = type(section).model_validate({"family": section.family, **links})
        assert _numbers(raw["endpoints"][cid]) == _numbers(to_raw_section(defaults)), cid
    assert default_scenario.design.model_copy(update={"label": ""}) == Design()  # the label only names the design
    assert default_scenario.follow_up == FollowUp(death_event="leak_1m")
    declared = {c.name for c in default_scenario.population.covariates}
    assert declared == set(default_scenario.endpoints["leak_1m"].covariates_used())


def to_raw_section(section) -> dict:
    return section.model_dump(mode="json")


@pytest.mark.parametrize("multiline", [False, True])
def test_the_text_check_refuses_exactly_the_unwritable_code_points(multiline):
    # every code point, inside other text: the fast path (str.isprintable) agrees with the per-character rule
    from trialsim.config.base import _text, _unwritable  # noqa: PLC0415 - the rule itself, private to the module

    check = _text(multiline)
    disagree = []
    for cp in range(0x110000):
        ch = chr(cp)
        try:
            check("ab" + ch + "c")
            refused = False
        except ValueError:
            refused = True
        if refused != _unwritable(ch, multiline=multiline):
            disagree.append(hex(cp))
    assert not disagree, disagree[:20]


def test_with_values_checks_the_new_values_and_gives_what_loading_gives(default_scenario):
    """with_values checks only the values it lays over (the rest comes from a validated scenario) and gives the scenario
    that loading the config with the same overrides gives; a bad new value is still refused naming its key."""
    got = with_values(default_scenario, {"endpoints.leak_1m.effect": 0.7, "population.covariates[0].prevalence": 0.5})
    want = load_scenario(DEFAULT_CONFIG, ["endpoints.leak_1m.effect=0.7", "population.covariates[0].prevalence=0.5"])
    assert got == want and got.model_dump_json() == want.model_dump_json()
    with pytest.raises(ConfigError, match=r"endpoints.leak_1m.effect = nan is not allowed: use a finite number"):
        with_values(default_scenario, {"endpoints.leak_1m.effect": float("nan")})
    with pytest.raises(ConfigError, match=r"endpoints.leak_1m.grade_split\[1\] = inf is not allowed"):
        with_values(default_scenario, {"endpoints.leak_1m.grade_split": [0.2, float("inf"), 0.4]})
