"""Sweep expansion: grid, zip, zip groups crossed with a grid; ids stable and readable."""
import pytest

from trialsim.config.loader import ConfigError, with_values
from trialsim.scenarios import expand, scenario_id


def test_grid_with_zip_group_crosses_the_group_with_the_rest(default_scenario):
    sc = with_values(default_scenario, {"sweep": {
        "mode": "grid",
        "zip_groups": [["design.n_control", "design.n_treatment"]],
        "values": {"design.n_control": [10, 20], "design.n_treatment": [10, 40], "leak.effect": [1.0, 0.5, 0.33]},
    }})
    specs = expand(sc)
    assert len(specs) == 2 * 3
    pairs = {(s.scenario.design.n_control, s.scenario.design.n_treatment) for s in specs}
    assert pairs == {(10, 10), (20, 40)}  # zipped, never (10, 40)
    assert specs[0].id == "n_control=10,n_treatment=10,effect=1"
    assert [s.id for s in expand(sc)] == [s.id for s in specs]


def test_plain_grid_and_zip(default_scenario):
    grid = with_values(default_scenario, {"sweep": {"values": {"leak.effect": [1.0, 0.5], "design.alpha": [0.05, 0.1]}}})
    assert len(expand(grid)) == 4
    zipped = with_values(default_scenario, {"sweep": {"mode": "zip", "values": {"leak.effect": [1.0, 0.5], "design.alpha": [0.05, 0.1]}}})
    assert [s.id for s in expand(zipped)] == ["effect=1,alpha=0.05", "effect=0.5,alpha=0.1"]


@pytest.mark.parametrize("sweep,needle", [
    ({"mode": "zip", "zip_groups": [["leak.effect"]], "values": {"leak.effect": [1.0]}}, "only applies to mode = 'grid'"),
    ({"zip_groups": [["leak.effect", "design.alpha"]], "values": {"leak.effect": [1.0, 0.5], "design.alpha": [0.05]}}, "equal length"),
    ({"zip_groups": [["design.alpha"]], "values": {"leak.effect": [1.0]}}, "not in sweep.values"),
    ({"values": {"leak.effect": [7.0]}}, "risk ratio"),
    ({"values": {"leak.nonsense": [1]}}, "unknown key"),
])
def test_bad_sweeps_are_rejected(default_scenario, sweep, needle):
    with pytest.raises(ConfigError, match=needle):
        expand(with_values(default_scenario, {"sweep": sweep}))


def test_ids_name_the_last_key_part_unless_ambiguous():
    assert scenario_id({"cytokines.markers[2].treatment_gmr": 0.7}) == "treatment_gmr=0.7"
    both = scenario_id({"cytokines.markers[0].treatment_gmr": 0.7, "cytokines.markers[2].treatment_gmr": 0.6})
    assert both == "cytokines.markers[0].treatment_gmr=0.7,cytokines.markers[2].treatment_gmr=0.6"
