"""The compiled loops (trialsim.kernels) against the numpy passes they replace, bit for bit."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from trialsim import kernels
from trialsim.analysis import continuous
from trialsim.api import run
from trialsim.endpoints import markers
from trialsim.engine import runner

ROOT = Path(__file__).resolve().parents[1]


def _values(rng, shape, *, ties=False, missing=0.0):
    x = rng.integers(0, 4, shape).astype(float) if ties else rng.normal(0, 1, shape) * 10.0 ** rng.uniform(-3, 3, shape)
    x[rng.random(shape) < missing] = np.nan
    return x


def _strided(x: np.ndarray) -> np.ndarray:
    """The same values as a (patients, trials) view whose rows are contiguous but not adjacent (as the runner hands
    one stacked test's rows of patient-major arms)."""
    wide = np.full((x.shape[0], 3, x.shape[1]), 7.0)
    wide[:, 1] = x
    return wide[:, 1]


def _plain_pairs_and_ties(xc, xt):
    greater = continuous._count_pairs(np.greater, xc, xt)  # noqa: SLF001
    pooled = np.sort(np.concatenate([xc, xt], axis=0).T, axis=-1)  # NaNs last, never equal
    return greater, (pooled[:, 1:] == pooled[:, :-1]).any(axis=-1)


@pytest.mark.parametrize("n_c, n_t", [(10, 10), (3, 7), (12, 5), (1, 1), (0, 4), (32, 31)])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_pair_counts_and_ties_equal_the_numpy_passes(n_c, n_t, ties, layout):
    rng = np.random.default_rng(n_c * 100 + n_t)
    trials = 2 * kernels.TILE + 37  # whole tiles and a partial one
    xc, xt = _values(rng, (n_c, trials), ties=ties, missing=0.1), _values(rng, (n_t, trials), ties=ties, missing=0.1)
    if n_c and n_t:
        xc[0, 0] = xt[0, 0] = 2.5  # a tie across the arms only
        xc[:, 1], xt[:, 1] = 5.0, np.arange(n_t)  # ties within one arm only (with two in it)
        xc[0, 2], xt[0, 2] = -0.0, 0.0  # equal values
        xc[:, 3], xt[:, 3] = np.nan, np.nan  # nothing observed
    if layout == "strided":
        xc, xt = _strided(xc), _strided(xt)
    greater, tied = kernels.pair_counts_and_ties(xc, xt)
    expected_greater, expected_tied = _plain_pairs_and_ties(xc, xt)
    np.testing.assert_array_equal(greater, expected_greater)
    np.testing.assert_array_equal(tied, expected_tied)
    if ties and n_c + n_t > 8:  # four grades: every trial with more than four values observed ties
        assert tied[(~np.isnan(xc)).sum(axis=0) + (~np.isnan(xt)).sum(axis=0) > 4].all()
    if n_c and n_t:
        assert tied[0] and tied[1] == (n_c >= 2) and tied[2] and not tied[3]


def test_pair_counts_refuse_more_pairs_than_a_count_holds():
    with pytest.raises(ValueError, match="65,535"):
        kernels.pair_counts_and_ties(np.zeros((256, 3)), np.zeros((257, 3)))


@pytest.mark.parametrize("n", [*range(1, 34), 63, 64, 65, 100, 127, 128])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_sums_over_patients_equal_numpys_pairwise_sums(n, layout):
    """Counts, masked sums and squared deviations: the bits of continuous.sum_patients (numpy's own pairwise sum,
    checked against np.sum in tests/test_fast_paths.py) on the same values."""
    rng = np.random.default_rng(n)
    x = _values(rng, (n, kernels.TILE + 5), missing=0.2)
    x[:, 0] = -0.0  # a sum of -0.0 is 0.0 in numpy
    x[:, 1] = np.nan
    x = _strided(x) if layout == "strided" else x
    counts, totals = kernels.sums_over_patients(x)
    missing = np.isnan(x)
    np.testing.assert_array_equal(counts, n - missing.sum(axis=0))
    assert totals.tobytes() == continuous.sum_patients(np.where(missing, 0.0, x)).tobytes()
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = totals / counts
        dev = x - mean
    dev[np.isnan(dev)] = 0.0
    dev *= dev
    again, squares = kernels.sums_over_patients(x, mean)
    np.testing.assert_array_equal(again, counts)
    assert squares.tobytes() == continuous.sum_patients(dev).tobytes()
    assert np.signbit(totals[0]) == np.False_ and np.isnan(mean[1]) and squares[1] == 0.0


def test_sums_over_patients_refuse_long_arms():
    with pytest.raises(ValueError, match="patients <= 128"):
        kernels.sums_over_patients(np.zeros((129, 4)))


def test_nan_mean_and_welch_take_the_same_bits_with_and_without_the_kernel():
    """The compiled path of nan_mean and the t tests against their numpy path (kept for short runs and long arms)."""
    rng = np.random.default_rng(5)
    xc, xt = _values(rng, (3, 700, 12), missing=0.15), _values(rng, (3, 700, 9), missing=0.15)
    results = []
    for on in (True, False):
        with kernels.compiled_loops(on):
            assert continuous._compiled_sums(continuous.patient_major(xc)) == on  # noqa: SLF001
            results.append((continuous.nan_mean(xc)[:2], continuous.welch_t(xc, xt), continuous.student_t(xc, xt)))
    compiled, plain = results
    for a, b in zip(compiled[0], plain[0]):
        assert a.tobytes() == b.tobytes()
    for a, b in zip(compiled[1:], plain[1:]):
        for name in ("statistic", "df", "difference", "se", "n_control", "n_treatment"):
            assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name


def test_without_numba_long_runs_keep_numpys_passes(default_scenario, monkeypatch):
    calls = []
    monkeypatch.setattr(markers, "_marker_day", lambda *args: calls.append(1))
    monkeypatch.setattr(runner, "COMPILED_FROM", 1)
    monkeypatch.setattr(kernels, "available", lambda: False)
    run(default_scenario, n_sims=500, seed=3, n_jobs=1)
    assert not calls


def test_a_failing_self_check_keeps_numpys_passes(monkeypatch):
    """A platform where a loop rounds differently: its module's check fails, the loops stay off, with a warning."""
    monkeypatch.setattr(kernels, "_CHECKS", list(kernels._CHECKS))  # noqa: SLF001
    monkeypatch.setattr(kernels, "_failed", [])
    monkeypatch.setattr(kernels, "_warned", set())
    with kernels.compiled_loops():
        assert kernels.compiled()
    monkeypatch.setattr(kernels, "_n_checked", kernels._n_checked)  # noqa: SLF001
    with kernels.compiled_loops():
        assert kernels.compiled()  # every shipped check passes here
        kernels.self_check(lambda: False)
        with pytest.warns(RuntimeWarning, match="other numbers than numpy"):
            assert not kernels.compiled()
        assert not kernels.compiled()


def test_the_shipped_self_checks_pass_and_can_fail(monkeypatch):
    """Each shipped check compares its loop with numpy's formulation (and notices a loop that is off by one ulp)."""
    from trialsim.analysis.continuous import _pair_counts_are_numpys, _sums_are_numpys  # noqa: PLC0415
    from trialsim.endpoints.markers import _marker_loop_is_numpys  # noqa: PLC0415

    checks = [kernels._normals_are_numpys, _pair_counts_are_numpys, _sums_are_numpys, _marker_loop_is_numpys]  # noqa: SLF001
    assert all(check() for check in checks)
    sums = kernels.sums_over_patients

    def off_by_an_ulp(columns, mean=None):
        counts, totals = sums(columns, mean)
        return counts, np.nextafter(totals, np.inf)

    monkeypatch.setattr(kernels, "sums_over_patients", off_by_an_ulp)
    monkeypatch.setattr(continuous, "sums_over_patients", off_by_an_ulp)
    assert not _sums_are_numpys()


def test_a_read_only_install_compiles_in_each_process_with_a_warning(monkeypatch):
    """numba with no folder to cache in raises "cannot cache function"; the loop is then compiled without the cache."""
    fresh = kernels._Kernel(kernels._pair_counts_and_ties.py_func, kernels._pair_counts_and_ties.signature)  # noqa: SLF001
    jit = fresh._jit  # noqa: SLF001

    def no_cache_folder(cache):
        if cache:
            raise RuntimeError("cannot cache function '_pair_counts_and_ties': no locator available for file 'kernels.py'")
        return jit(cache)

    monkeypatch.setattr(fresh, "_jit", no_cache_folder)
    monkeypatch.setattr(kernels, "_warned", set())
    x = np.arange(12.0).reshape(3, 4)
    counts, tied = np.empty(4, dtype=np.uint16), np.empty(4, dtype=bool)
    with pytest.warns(RuntimeWarning, match="NUMBA_CACHE_DIR"):
        fresh(x, x[::-1].copy(), True, counts, tied)
    np.testing.assert_array_equal(counts, continuous._count_pairs(np.greater, x, x[::-1].copy()))  # noqa: SLF001


def test_the_switch_is_off_by_default_and_scoped():
    assert not kernels.compiled()
    with kernels.compiled_loops():
        assert kernels.compiled()
        with kernels.compiled_loops(False):
            assert not kernels.compiled()
        assert kernels.compiled()
    assert not kernels.compiled()


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_long_runs_use_the_loops_and_every_number_stays(default_scenario, monkeypatch, tmp_path, n_jobs):
    """The runner turns the loops on from COMPILED_FROM trials per worker; a run with them gives the very results and
    per-trial table of the same run without them (grouped blocks, both workers)."""
    calls = []
    loop = markers._marker_day  # noqa: SLF001

    def counted(*args):
        calls.append(1)
        return loop(*args)

    monkeypatch.setattr(markers, "_marker_day", counted)
    frames = []
    for threshold in (10**9, 1):
        monkeypatch.setattr(runner, "COMPILED_FROM", threshold)
        calls.clear()
        res = run(default_scenario, n_sims=2500, seed=3, n_jobs=n_jobs, overrides=["run.block_size=250"],
                  keep_trials=tmp_path / str(threshold))
        if n_jobs == 1:  # in this process: the loop was used only past the threshold
            assert bool(calls) == (threshold == 1)
        trials = sorted((tmp_path / str(threshold)).rglob("*.parquet"))
        frames.append((res.to_frame(), res.estimates_frame(), [pq.read_table(f).to_pandas() for f in trials]))
    (power_a, est_a, trials_a), (power_b, est_b, trials_b) = frames
    assert power_a.equals(power_b) and est_a.equals(est_b)
    assert len(trials_a) == len(trials_b) == 10
    for a, b in zip(trials_a, trials_b):
        assert a.equals(b)


@pytest.mark.parametrize("sizes, n_patients, extra", [((1000,), 20, (4,)), ((300, 300, 7), 11, ()), ((5, 0, 3), 2, (2, 3)),
                                                      ((4,), 0, (4,)), ((3, 2), 5, (0,))])
def test_standard_normals_are_numpys_and_leave_each_stream_where_numpy_does(sizes, n_patients, extra):
    def generators():
        return [np.random.Generator(np.random.PCG64(np.random.SeedSequence(7, spawn_key=(b,)))) for b in range(len(sizes))]

    compiled, plain = generators(), generators()
    got = kernels.standard_normals(compiled, sizes, n_patients, extra)
    expected = np.concatenate([g.standard_normal((n_patients, m) + extra) for g, m in zip(plain, sizes)], axis=1)
    assert got.shape == expected.shape and got.tobytes() == expected.tobytes()
    for a, b in zip(compiled, plain):  # what the streams draw next, normals and uniforms, is numpy's too
        assert a.standard_normal(5).tobytes() == b.standard_normal(5).tobytes()
        assert a.random(3).tobytes() == b.random(3).tobytes()


def test_compiled_loops_do_what_their_python_does():
    """numba keeps the Python function's floating-point semantics (no fast-math): the compiled kernel and the same
    function run by the interpreter give the same bits."""
    rng = np.random.default_rng(11)
    x = _values(rng, (11, 40), missing=0.2)
    mean = rng.normal(size=40)
    for squares in (False, True):
        out = [(np.empty(40, dtype=np.intp), np.empty(40)) for _ in range(2)]
        kernels._sums_over_patients(x, mean, squares, *out[0])  # noqa: SLF001
        kernels._sums_over_patients.py_func(x, mean, squares, *out[1])  # noqa: SLF001
        for a, b in zip(*out):
            assert a.tobytes() == b.tobytes()


def test_importing_the_engine_does_not_import_numba():
    """numba (about 0.1 s, and 0.2 s more for its compiler on the first kernel) is imported by the first kernel
    call only."""
    code = "import sys, trialsim.engine.runner, trialsim.cli; print('numba' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "False"
