"""The on-disk cache of exact tables: reused, never trusted unchecked, safe with concurrent writers."""
from __future__ import annotations

import math
import multiprocessing
import os

import numpy as np
import pytest
from scipy import stats

from trialsim import cache
from trialsim.analysis import binary


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_DIR, str(tmp_path / "c"))
    monkeypatch.delenv(cache.ENV_SWITCH, raising=False)
    return tmp_path / "c"


def _counting_builder(value):
    calls = []

    def build():
        calls.append(1)
        return np.arange(12, dtype=float).reshape(3, 4) * value

    return build, calls


def _get(build, key=None):
    return cache.cached_array("demo", key or {"n": 3}, build, dtype=float, shape=(3, 4))


def test_built_once_then_read_back(folder):
    build, calls = _counting_builder(2.0)
    first = _get(build)
    second = _get(build)
    assert len(calls) == 1
    np.testing.assert_array_equal(first, second)
    assert not second.flags.writeable
    assert len(list(folder.glob("demo-*.npz"))) == 1


def test_key_separates_entries(folder):
    build, calls = _counting_builder(1.0)
    _get(build, {"n": 3})
    _get(build, {"n": 4})
    assert len(calls) == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_damaged_file_is_rebuilt_and_replaced(folder, damage):
    build, calls = _counting_builder(3.0)
    good = _get(build)
    path = cache.cache_path("demo", {"n": 3})
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":  # one byte inside the stored data (the zip CRC or the SHA-256 catches it)
        i = raw.index(np.float64(3.0 * 5).tobytes())
        path.write_bytes(raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1:])
    elif damage == "garbage":
        path.write_bytes(b"not a cache file")
    else:
        path.write_bytes(b"")
    again = _get(build)
    assert len(calls) == 2  # rebuilt, not trusted
    np.testing.assert_array_equal(again, good)
    assert _get(build) is not None and len(calls) == 2  # and the rewritten file is good again


def test_file_with_valid_checksum_but_other_shape_is_rebuilt(folder):
    path = cache.cache_path("demo", {"n": 3})
    path.parent.mkdir(parents=True)
    wrong = np.zeros((2, 2))
    key = cache._key_text("demo", {"n": 3})  # noqa: SLF001 - writing a well-formed file of the wrong shape
    np.savez(path, data=wrong, key=np.array(key), sha256=np.array(cache._checksum(wrong)))  # noqa: SLF001
    build, calls = _counting_builder(1.0)
    assert _get(build).shape == (3, 4)
    assert len(calls) == 1


def test_switched_off_and_relocated(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_DIR, str(tmp_path / "elsewhere"))
    monkeypatch.setenv(cache.ENV_SWITCH, "0")
    build, calls = _counting_builder(1.0)
    _get(build)
    _get(build)
    assert len(calls) == 2
    assert not (tmp_path / "elsewhere").exists()
    monkeypatch.delenv(cache.ENV_SWITCH)
    _get(build)
    assert list((tmp_path / "elsewhere").glob("demo-*.npz"))


def test_unwritable_folder_still_gives_the_array(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setenv(cache.ENV_DIR, str(blocker / "sub"))  # cannot be created under a file
    build, calls = _counting_builder(1.0)
    np.testing.assert_array_equal(_get(build), build())


def _concurrent_writer(args):
    folder, value = args
    os.environ[cache.ENV_DIR] = folder
    out = cache.cached_array("race", {"n": 50}, lambda: np.full((200, 300), value), dtype=float, shape=(200, 300))
    return float(out.sum())


def test_concurrent_writers_leave_one_valid_file(folder):
    # fork where there is one: spawn would import the whole package in every writer (seconds each)
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ctx.Pool(4) as pool:
        sums = pool.map(_concurrent_writer, [(str(folder), 1.5)] * 8)
    assert sums == [1.5 * 200 * 300] * 8
    files = list(folder.iterdir())
    assert [f.name.startswith("race-") for f in files] == [True]  # no temporary file left behind
    build_calls = []
    out = cache.cached_array("race", {"n": 50}, lambda: build_calls.append(1) or np.zeros((200, 300)), dtype=float,
                             shape=(200, 300))
    assert not build_calls and out[0, 0] == 1.5


def test_boschloo_tables_come_from_the_cache_and_match_scipy(folder):
    """A Boschloo table and region are written once; a tampered file is rebuilt, and values equal scipy's."""
    binary._pvalue_table_cached.cache_clear()  # noqa: SLF001 - the in-memory layer in front of the disk
    binary._rejection_region_cached.cache_clear()  # noqa: SLF001
    table = binary.pvalue_table("boschloo", 6, 8)
    region = binary.rejection_region("boschloo", 6, 8, 0.05)
    assert len(list(folder.glob("boschloo-pvalues-*.npz"))) == 1
    assert len(list(folder.glob("boschloo-region-*.npz"))) == 1
    # reference: scipy.stats.boschloo_exact, two-sided, on the same tables (columns are the arms, as scipy wants)
    for x1, x2 in [(0, 5), (1, 6), (3, 3), (6, 0), (2, 7)]:
        ref = stats.boschloo_exact([[x1, x2], [6 - x1, 8 - x2]], alternative="two-sided").pvalue
        assert table[x1, x2] == pytest.approx(ref, rel=1e-6)
    np.testing.assert_array_equal(region, table <= 0.05 * (1 + 1e-12))
    for f in folder.glob("boschloo-*.npz"):
        f.write_bytes(f.read_bytes()[:100])
    binary._pvalue_table_cached.cache_clear()  # noqa: SLF001
    binary._rejection_region_cached.cache_clear()  # noqa: SLF001
    np.testing.assert_array_equal(binary.pvalue_table("boschloo", 6, 8), table)
    np.testing.assert_array_equal(binary.rejection_region("boschloo", 6, 8, 0.05), region)


def _scale_kept(folder, pattern: str, index, factor: float) -> None:
    """Rewrite every kept file matching ``pattern`` as a valid file whose ``data[index]`` is multiplied by ``factor``
    (a kept value that is really read shows in what the command returns)."""
    for path in folder.glob(pattern):
        with np.load(path) as f:
            key_text, data = str(f["key"]), f["data"].copy()
        data[index] *= factor
        cache._write(path, key_text, data)  # noqa: SLF001


def test_exact_power_rows_are_kept_once_and_read_back(folder, default_scenario, monkeypatch):
    """A run's exact rows (powers and sizes) are computed once per design and machine: equal to the direct
    computation, read from the kept file, rebuilt when it is damaged, one file per design (alpha changes the key),
    and never kept for a test that is not the package's own (a plug-in, even one built by register_binary)."""
    from dataclasses import replace

    from trialsim import exact
    from trialsim.analysis import registry
    from trialsim.config.loader import with_values
    from trialsim.model import build_model

    exact._exact_rows.cache_clear()  # noqa: SLF001 - the in-memory layer in front of the disk
    rows = exact.exact_rows(default_scenario)
    model = build_model(default_scenario)
    assert rows and all(r["power"] == exact.exact_binary_power(model, r["endpoint"], r["test"]) for r in rows)
    assert len(list(folder.glob("exact-power-*.npz"))) == 1
    _scale_kept(folder, "exact-power-*.npz", slice(None), 0.5)
    exact._exact_rows.cache_clear()  # noqa: SLF001
    assert [r["power"] for r in exact.exact_rows(default_scenario)] == [0.5 * r["power"] for r in rows]
    for f in folder.glob("exact-power-*.npz"):
        f.write_bytes(f.read_bytes()[:50])
    exact._exact_rows.cache_clear()  # noqa: SLF001
    assert exact.exact_rows(default_scenario) == rows
    exact.exact_rows(with_values(default_scenario, {"design.alpha": 0.1}))
    assert len(list(folder.glob("exact-power-*.npz"))) == 2

    # a plug-in's exact power (code outside this package) is computed every time, never kept
    calls = []
    spec = replace(registry.get("fisher"), exact_power=lambda *args: calls.append(args) or 0.25)
    monkeypatch.setattr(registry.TESTS, "get", lambda name: spec)
    assert not registry.is_shipped("fisher")
    args = exact.exact_inputs(model, "leak_1m", "fisher")
    assert exact.exact_powers([("fisher", args)]) == [0.25]
    assert exact.exact_powers([("fisher", args)]) == [0.25]
    assert len(calls) == 2 and len(list(folder.glob("exact-power-*.npz"))) == 2
    monkeypatch.undo()
    assert all(registry.is_shipped(t) for t in ("fisher", "boschloo", "chi2", "chi2_yates", "chi2_n1"))
    # numpy scalars in a family's law give the same key as Python floats
    np_args = (np.float32(0.25), np.float64(args[1]), np.int64(args[2]), args[3], np.array(args[4]), args[5])
    assert exact.plain(np_args) == exact.plain((float(np.float32(0.25)), *args[1:]))


def test_exact_scans_are_kept_and_read_back_as_computed(folder, monkeypatch):
    """Sample-size scans of shipped tests are computed once per machine: read back equal to a fresh computation
    and to one exact_scan per target; a damaged file is computed again; a reachable and an unreachable target."""
    from trialsim.planning import samplesize as ss

    jobs = [("fisher", 0.30, 0.10, (0.8, 0.9), 0.05, 1.0, 400), ("boschloo", 0.5, 0.2, (0.8, 0.99), 0.05, 2.0, 40)]
    first = ss.parallel_scans(jobs, n_jobs=1, backend="loky", scheduler=None)
    assert len(list(folder.glob("exact-scan-*.npz"))) == 2
    calls = []
    monkeypatch.setattr(ss, "computed_scans", lambda js, **kw: calls.append(js) or [])
    again = ss.parallel_scans(jobs, n_jobs=1, backend="loky", scheduler=None)
    assert calls == []  # nothing computed: both jobs read back
    monkeypatch.undo()
    monkeypatch.setenv(cache.ENV_DIR, str(folder))
    for job, scans, kept_scans in zip(jobs, first, again):
        test, p_c, p_t, targets, alpha, ratio, cap = job
        for target, s, k in zip(targets, scans, kept_scans):
            direct = ss.exact_scan(test, p_c, p_t, power=target, alpha=alpha, ratio=ratio, n_max=cap)
            for scan in (s, k):
                assert (scan.n_first, scan.n_stable, scan.target) == (direct.n_first, direct.n_stable, target)
                np.testing.assert_array_equal(scan.n, direct.n)
                np.testing.assert_array_equal(scan.power, direct.power)
    assert again[1][1].n_first is None and again[1][0].n_first is not None  # 99% is out of reach by 40 per arm
    for f in folder.glob("exact-scan-*.npz"):
        f.write_bytes(f.read_bytes()[:80])
    damaged = ss.parallel_scans(jobs, n_jobs=1, backend="loky", scheduler=None)
    assert [[(s.n_first, s.n_stable) for s in scans] for scans in damaged] == \
        [[(s.n_first, s.n_stable) for s in scans] for scans in first]
    # every part of the job is in the key: another target, alpha or cap is another scan
    for other in [("fisher", 0.30, 0.10, (0.85, 0.9), 0.05, 1.0, 400), ("fisher", 0.30, 0.10, (0.8, 0.9), 0.025, 1.0, 400),
                  ("fisher", 0.30, 0.10, (0.8, 0.9), 0.05, 1.0, 300)]:
        ss.parallel_scans([other], n_jobs=1, backend="loky", scheduler=None)
    assert len(list(folder.glob("exact-scan-*.npz"))) == 5
    assert ss.parallel_scans([("fisher", 0.3, 0.1, (), 0.05, 1.0, 400)], n_jobs=1, backend="loky", scheduler=None) == [[]]


def test_exact_mdes_are_kept_and_read_back_equal(folder, default_scenario, monkeypatch):
    """An exact MDE's bisections run once per law, size, test and target: the table read back equals the one
    computed, with the cache off too, and the kept numbers are used (a wrong kept value would show)."""
    from trialsim.planning import mde

    # at 60 per arm, 75% power is reached by the leak's risk ratio (77.2% at the most extreme searched) and not by the
    # colonoscopy grade's odds ratio towards better grades (70.0% at its most extreme)
    pairs = [("colonoscopy_abnormal", "fisher"), ("leak_1m", "fisher")]

    def table():
        return mde.minimal_detectable_effects(default_scenario, pairs=pairs, power=0.75, n_per_arm=60, simulate=False,
                                              seed=1).to_frame()

    first = table()
    assert first["method"].tolist() == ["exact", "exact"] and first["reachable"].tolist() == [False, True]
    assert len(list(folder.glob("exact-mde-*.npz"))) == 2
    again = table()
    assert first.equals(again)
    monkeypatch.setenv(cache.ENV_SWITCH, "0")
    assert first.equals(table())
    monkeypatch.delenv(cache.ENV_SWITCH)
    # the kept numbers are what the table shows: scale each file's MDE (valid files) and they are read back
    _scale_kept(folder, "exact-mde-*.npz", 3, 1.5)  # NaN (not reachable) stays NaN
    changed = table()
    assert math.isnan(changed["effect"][0]) and changed["effect"][1] == pytest.approx(1.5 * first["effect"][1])
    # another target power, or another size, is another bisection
    mde.minimal_detectable_effects(default_scenario, pairs=pairs[1:], power=0.7, n_per_arm=60, simulate=False, seed=1)
    mde.minimal_detectable_effects(default_scenario, pairs=pairs[1:], power=0.75, n_per_arm=61, simulate=False, seed=1)
    assert len(list(folder.glob("exact-mde-*.npz"))) == 4


def test_exact_curve_series_are_kept_and_read_back_as_computed(folder, monkeypatch):
    """Exact power curves of shipped tests are computed once per machine: equal to exact_power at every size, read
    back (a kept value that differs shows), every part of the series in the key, a plug-in's never kept."""
    from dataclasses import replace

    from trialsim.analysis import registry
    from trialsim.planning import curves
    from trialsim.planning.model import exact_power, n_treatment_for

    series = [("fisher", 0.2, 0.05, [5, 20, 60, 61], 1.0, 0.05), ("boschloo", 0.3, 0.1, [8, 30], 2.0, 0.05),
              ("chi2", 0.2, 0.05, [], 1.0, 0.05)]
    first = curves.exact_series(series, n_jobs=1)
    for (test, p_c, p_t, ns, ratio, alpha), powers in zip(series, first):
        assert powers.tolist() == [exact_power(test, p_c, p_t, n, n_treatment_for(n, ratio), alpha=alpha) for n in ns]
    assert len(list(folder.glob("exact-curve-*.npz"))) == 2  # an empty series: nothing computed, nothing kept
    # computed in pieces on two workers and put back together: the same series
    monkeypatch.setenv(cache.ENV_SWITCH, "0")
    assert [a.tolist() for a in curves.exact_series(series, n_jobs=2)] == [f.tolist() for f in first]
    monkeypatch.delenv(cache.ENV_SWITCH)
    _scale_kept(folder, "exact-curve-*.npz", slice(None), 0.5)
    again = curves.exact_series(series, n_jobs=1)
    assert [a.tolist() for a in again] == [(0.5 * f).tolist() for f in first]  # read back, not computed
    for f in folder.glob("exact-curve-*.npz"):
        f.write_bytes(f.read_bytes()[:60])
    assert [a.tolist() for a in curves.exact_series(series, n_jobs=1)] == [f.tolist() for f in first]
    for other in [("fisher", 0.2, 0.05, [5, 20, 60], 1.0, 0.05), ("fisher", 0.2, 0.05, [5, 20, 60, 61], 1.5, 0.05),
                  ("fisher", 0.2, 0.06, [5, 20, 60, 61], 1.0, 0.05), ("fisher", 0.2, 0.05, [5, 20, 60, 61], 1.0, 0.1)]:
        curves.exact_series([other], n_jobs=1)
    assert len(list(folder.glob("exact-curve-*.npz"))) == 6
    # a plug-in's exact power (code outside this package) is computed every time, never kept
    calls = []
    spec = replace(registry.get("fisher"), exact_power=lambda *args: calls.append(args) or 0.25)
    monkeypatch.setattr(registry.TESTS, "get", lambda name: spec)
    plug = [("fisher", 0.25, 0.05, [7, 9], 1.0, 0.05)]
    assert [a.tolist() for a in curves.exact_series(plug, n_jobs=1)] == [[0.25, 0.25]]
    assert len(calls) == 2 and len(list(folder.glob("exact-curve-*.npz"))) == 6
