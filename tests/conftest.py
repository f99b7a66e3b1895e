from pathlib import Path

import pytest

from trialsim.config.loader import load_scenario

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
DEFAULT_CONFIG = CONFIGS / "exosome_lar_20.toml"
CRP_CONFIG = CONFIGS / "crp_randomised_30.toml"


@pytest.fixture(scope="session")
def default_scenario():
    return load_scenario(DEFAULT_CONFIG)


@pytest.fixture(scope="session")
def crp_scenario():
    return load_scenario(CRP_CONFIG)
