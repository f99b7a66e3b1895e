"""Config: TOML scenario files validated into frozen pydantic objects."""
from trialsim.config.loader import ConfigError, load_scenario, scenario_to_toml, with_values
from trialsim.config.schema import Scenario

__all__ = ["ConfigError", "Scenario", "load_scenario", "scenario_to_toml", "with_values"]
