"""Dask for real: a local cluster trialsim starts (and closes) itself, and a cluster given by its
scheduler address; both give the numbers of local processes, for runs and for planning."""
import logging

import numpy as np
import pytest

from trialsim.api import run
from trialsim.config.loader import ConfigError, with_values
from trialsim.engine import backends, close_backends, dask_client
from trialsim.planning.search import Job, rejections, size_point

distributed = pytest.importorskip("distributed")


@pytest.fixture
def scenario(default_scenario):
    return with_values(default_scenario, {"run.block_size": 100})


def test_a_local_cluster_started_by_trialsim_gives_the_table_of_local_processes(scenario):
    loky = run(scenario, n_sims=1_200, seed=8, n_jobs=2)
    try:
        dask = run(scenario, n_sims=1_200, seed=8, n_jobs=2, backend="dask")
        client = dask_client(None, 2)  # the one the run started, reused
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert len(client.nthreads()) == 2
        cluster = client.cluster
    finally:
        close_backends()
    assert cluster.status.name == "closed"
    assert dask.provenance["backend"] == "dask"
    assert dask.to_frame().equals(loky.to_frame())
    assert dask.estimates_frame().equals(loky.estimates_frame())


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=logging.ERROR) as c:
        yield c
    close_backends()


def test_a_run_and_planning_on_a_cluster_given_by_its_address(scenario, cluster, tmp_path):
    address = cluster.scheduler_address
    loky = run(scenario, n_sims=800, seed=9, n_jobs=2)
    remote = run(scenario, n_sims=800, seed=9, scheduler=address, out=tmp_path)  # --scheduler implies --backend dask
    assert remote.to_frame().equals(loky.to_frame())
    assert remote.provenance["backend"] == "dask"
    # planning goes through the same engine, so it uses the backend of the scenario's [run] section
    jobs = [Job("leak_1m", "chi2", (size_point(10, 10), size_point(20, 20)))]
    on_dask = with_values(scenario, {"run.backend": "dask", "run.scheduler": address})
    local = rejections(scenario, jobs, n_sims=400, seed=3, n_jobs=2)
    with distributed.get_task_stream(client=dask_client(address, 1)) as stream:
        planned = rejections(on_dask, jobs, n_sims=400, seed=3)
    assert len(stream.data) >= 4  # it really ran there, in tasks
    np.testing.assert_array_equal(planned[0], local[0])


def test_an_unreachable_scheduler_and_a_scheduler_without_dask_are_refused(scenario, monkeypatch):
    monkeypatch.setattr(backends, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(ConfigError, match="set backend = 'dask' too"):
        with_values(scenario, {"run.scheduler": "tcp://127.0.0.1:1"})
    with pytest.raises(ConfigError, match=r"cannot reach the Dask scheduler at run.scheduler = 'tcp://127.0.0.1:1'"):
        run(scenario, n_sims=200, seed=1, backend="dask", scheduler="tcp://127.0.0.1:1")


def test_planning_commands_take_the_backend_flags(cluster, tmp_path, capsys):
    """`samplesize --scheduler ADDRESS` runs its searches on the cluster and prints what local processes print."""
    from tests.conftest import CRP_CONFIG
    from trialsim.cli import main

    argv = ["samplesize", str(CRP_CONFIG), "--sims", "300", "--seed", "1", "--quiet"]
    assert main([*argv, "--jobs", "2"]) == 0
    local = capsys.readouterr().out
    with distributed.get_task_stream(client=dask_client(cluster.scheduler_address, 1)) as stream:
        assert main([*argv, "--scheduler", cluster.scheduler_address, "--chunk-blocks", "1"]) == 0
    assert capsys.readouterr().out == local and len(stream.data) >= 2
    run_dir = tmp_path / "run"
    assert main(["run", str(CRP_CONFIG), "--sims", "200", "--seed", "1", "--jobs", "1", "--quiet", "--out", str(run_dir)]) == 0
    capsys.readouterr()
    assert main(["report", "--from", str(run_dir), "--out", str(tmp_path / "rep"), "--backend", "dask"]) == 2
    assert "apply to a config file" in capsys.readouterr().err
