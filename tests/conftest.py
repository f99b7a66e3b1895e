import os
from pathlib import Path

import pytest

from trialsim.cache import ENV_DIR, ENV_SWITCH
from trialsim.config.loader import load_scenario
from trialsim.kernels import compiled_loops

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


@pytest.fixture(params=[False, True], ids=["numpy", "compiled"])
def loops(request):
    """The test runs twice: with the numpy formulation of the steps that have a compiled loop, and with the loops
    (trialsim.kernels; the runner picks them for long runs). Both must give the same numbers."""
    with compiled_loops(request.param):
        yield request.param


@pytest.fixture(scope="session", autouse=True)
def private_table_cache(tmp_path_factory):
    """Exact tables cached on disk go to a folder of this test session, never the user's cache.

    Set in the environment, so CLI subprocesses and worker processes follow it too.
    """
    saved = {k: os.environ.get(k) for k in (ENV_DIR, ENV_SWITCH)}
    os.environ[ENV_DIR] = str(tmp_path_factory.mktemp("table_cache"))
    os.environ.pop(ENV_SWITCH, None)
    yield Path(os.environ[ENV_DIR])
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
