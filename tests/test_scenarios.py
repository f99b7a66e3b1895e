"""Sweep expansion: grid, zip, zip groups crossed with a grid; ids stable and readable, and those of the shipped configs."""
import pytest

from tests.conftest import CONFIGS
from trialsim.config.loader import ConfigError, load_scenario, with_values
from trialsim.scenarios import expand, scenario_id

EFFECT = "endpoints.leak_1m.effect"


def test_grid_with_zip_group_crosses_the_group_with_the_rest(default_scenario):
    sc = with_values(default_scenario, {"sweep": {
        "mode": "grid",
        "zip_groups": [["design.n_control", "design.n_treatment"]],
        "values": {"design.n_control": [10, 20], "design.n_treatment": [10, 40], EFFECT: [1.0, 0.5, 0.33]},
    }})
    specs = expand(sc)
    assert len(specs) == 2 * 3
    pairs = {(s.scenario.design.n_control, s.scenario.design.n_treatment) for s in specs}
    assert pairs == {(10, 10), (20, 40)}  # zipped, never (10, 40)
    assert specs[0].id == "n_control=10,n_treatment=10,effect=1"
    assert [s.id for s in expand(sc)] == [s.id for s in specs]


def test_plain_grid_and_zip(default_scenario):
    grid = with_values(default_scenario, {"sweep": {"values": {EFFECT: [1.0, 0.5], "design.alpha": [0.05, 0.1]}}})
    assert len(expand(grid)) == 4
    zipped = with_values(default_scenario, {"sweep": {"mode": "zip", "values": {EFFECT: [1.0, 0.5], "design.alpha": [0.05, 0.1]}}})
    assert [s.id for s in expand(zipped)] == ["effect=1,alpha=0.05", "effect=0.5,alpha=0.1"]


@pytest.mark.parametrize("sweep,needle", [
    ({"mode": "zip", "zip_groups": [[EFFECT]], "values": {EFFECT: [1.0]}}, "only applies to mode = 'grid'"),
    ({"zip_groups": [[EFFECT, "design.alpha"]], "values": {EFFECT: [1.0, 0.5], "design.alpha": [0.05]}}, "equal length"),
    ({"zip_groups": [["design.alpha"]], "values": {EFFECT: [1.0]}}, "not in sweep.values"),
    ({"values": {EFFECT: [7.0]}}, "risk ratio"),
    ({"values": {"endpoints.leak_1m.nonsense": [1]}}, "unknown key"),
    ({"values": {"run.n_sims": [1, 2]}}, "cannot be swept"),
])
def test_bad_sweeps_are_rejected(default_scenario, sweep, needle):
    with pytest.raises(ConfigError, match=needle):
        expand(with_values(default_scenario, {"sweep": sweep}))


def test_ids_name_the_last_key_part_unless_ambiguous():
    assert scenario_id({"endpoints.cytokines.markers[2].treatment_gmr": 0.7}) == "treatment_gmr=0.7"
    both = scenario_id({"endpoints.cytokines.markers[0].treatment_gmr": 0.7, "endpoints.cytokines.markers[2].treatment_gmr": 0.6})
    assert both == "endpoints.cytokines.markers[0].treatment_gmr=0.7,endpoints.cytokines.markers[2].treatment_gmr=0.6"


def _grid_ids():
    return [f"n_control={n},n_treatment={n},rate_control={r},effect={e}"
            for n in (10, 50, 100, 200) for r in (0.06, 0.09, 0.12, 0.16, 0.2) for e in (1, 0.7, 0.5, 0.33)]


# The ids (and values) the shipped sweeps had before the config format changed: results keep their names.
SHIPPED = {
    "alternatives": ["n_control=10,n_treatment=10", "n_control=7,n_treatment=13", "n_control=20,n_treatment=20",
                     "n_control=50,n_treatment=50", "n_control=20,n_treatment=40", "n_control=356,n_treatment=356"],
    "leak_powered": ["effect=1", "effect=0.7", "effect=0.5", "effect=0.33"],
    "cytokine_pilot": ["treatment_gmr=1", "treatment_gmr=0.9", "treatment_gmr=0.8", "treatment_gmr=0.7", "treatment_gmr=0.6"],
    "grid_leak": _grid_ids(),
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_sweeps_keep_their_scenario_ids(name):
    specs = expand(load_scenario(CONFIGS / f"{name}.toml"))
    assert [s.id for s in specs] == SHIPPED[name]
    for s in specs:  # each swept value lands where its key path says
        for path, value in s.values.items():
            node = s.scenario
            for part in path.replace("]", "").replace("[", ".").split("."):
                node = node[int(part)] if part.isdigit() else (node[part] if isinstance(node, dict) else getattr(node, part))
            assert node == value, (s.id, path)
