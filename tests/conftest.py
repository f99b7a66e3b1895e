from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "exosome_lar_20.toml"


@pytest.fixture(scope="session")
def default_scenario():
    from trialsim.config.loader import load_scenario

    return load_scenario(DEFAULT_CONFIG)
