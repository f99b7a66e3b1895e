"""Fast paths give the same bits as the general computations they stand in for."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import special

from trialsim.analysis import binary, continuous
from trialsim.analysis import registry as tests
from trialsim.analysis.continuous import mann_whitney, nan_mean, nan_median
from trialsim.config.loader import with_values
from trialsim.decide import decide
from trialsim.endpoints.base import PatientContext, Status
from trialsim.rng import Streams, trials_first
from trialsim.simulate import ArmSplit, analyse, simulate_trials
from trialsim.summarise import summarise_batch


def _mixed_rows(rng, rows: int, n: int) -> np.ndarray:
    """Continuous rows, ordinal rows (ties) and rows with NaN, some empty."""
    x = rng.normal(size=(rows, n))
    x[: rows // 3] = rng.integers(0, 4, size=(rows // 3, n))
    x[rng.random(x.shape) < 0.15] = np.nan
    x[-1] = np.nan
    return x


@pytest.mark.parametrize("n_c, n_t", [(10, 10), (3, 7), (12, 5), (1, 1)])
def test_pairwise_u_equals_rank_sums(n_c, n_t):
    rng = np.random.default_rng(1)
    xc, xt = _mixed_rows(rng, 300, n_c), _mixed_rows(rng, 300, n_t)
    xt[5] = xc[5, 0]  # ties across arms only
    u1, tie_term = continuous._u_pairwise(xc, xt)
    r1, tie_ref = continuous._rank_sums(xc, xt)
    n_obs = np.sum(~np.isnan(xc), axis=-1)
    np.testing.assert_array_equal(u1, r1 - n_obs * (n_obs + 1) / 2.0)
    np.testing.assert_array_equal(tie_term, tie_ref)


def test_mann_whitney_pairwise_and_rank_paths_agree(monkeypatch):
    rng = np.random.default_rng(2)
    xc, xt = _mixed_rows(rng, 400, 10).reshape(4, 100, 10), _mixed_rows(rng, 400, 9).reshape(4, 100, 9)
    fast = mann_whitney(xc, xt)
    monkeypatch.setattr(continuous, "_PAIRWISE_MAX_PAIRS", 0)
    ranked = mann_whitney(xc, xt)
    for field in ("statistic", "pvalue", "n_control", "n_treatment", "exact"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(ranked, field))


def test_moments_and_means_equal_the_masked_formulas():
    rng = np.random.default_rng(3)
    x = _mixed_rows(rng, 500, 10).reshape(5, 100, 10)
    n, mean, ss = continuous._moments(x)
    ok = ~np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref_mean = np.where(ok, x, 0.0).sum(axis=-1) / ok.sum(axis=-1)
        dev = np.where(ok, x - ref_mean[..., None], 0.0)
        np.testing.assert_array_equal(n, ok.sum(axis=-1))
        np.testing.assert_array_equal(mean, ref_mean)
        np.testing.assert_array_equal(ss, np.sum(dev * dev, axis=-1))
        np.testing.assert_array_equal(nan_mean(x)[1], np.nanmean(x, axis=-1))
        np.testing.assert_array_equal(nan_median(x), np.nanmedian(x, axis=-1))
        odd = x[..., :9]
        np.testing.assert_array_equal(nan_median(odd), np.nanmedian(odd, axis=-1))


def test_sums_over_patients_equal_numpy_row_sums_bit_for_bit():
    """sum_patients repeats numpy's pairwise order on patient-major arrays: every row length up to 300, with
    NaN, infinities and negative zeros, from contiguous rows and from an arm's columns of a wider array."""
    rng = np.random.default_rng(6)
    for n in list(range(140)) + [200, 255, 256, 257, 300]:
        x = rng.normal(size=(3, 40, n)) * np.exp(rng.normal(size=(3, 40, n)) * 8)
        for value, p in ((np.nan, 0.05), (-0.0, 0.05), (np.inf, 0.01), (-np.inf, 0.01)):
            x[rng.random(x.shape) < p] = value
        x[0, :3] = -0.0
        for rows in (x, np.concatenate([x, x], axis=-1)[..., :n]):
            with np.errstate(invalid="ignore"):
                ref = rows.sum(axis=-1)
                got = continuous.sum_patients(np.ascontiguousarray(np.moveaxis(rows, -1, 0)))
            np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
            kept = ~np.isnan(ref)
            assert got[kept].tobytes() == ref[kept].tobytes(), n


def test_t_grid_index_equals_searchsorted():
    grid = continuous._T_CRIT_DF
    rng = np.random.default_rng(7)
    df = np.concatenate([grid, np.nextafter(grid, 0), np.nextafter(grid, np.inf), 10 ** rng.uniform(0, 6.5, 100_000),
                         rng.uniform(1, 40, 100_000), [1e7, np.inf]])
    np.testing.assert_array_equal(continuous._crit_index(df), np.searchsorted(grid, df, side="right"))
    odd = continuous._crit_index(np.array([np.nan, 0.5, 0.0, -1.0, -np.inf]))  # any index in range: decided apart
    assert ((odd >= 0) & (odd <= grid.size)).all()


@pytest.fixture(scope="module")
def batch(default_scenario):
    """300 simulated trials of the registered design, with every patient value kept."""
    return simulate_trials(default_scenario, 300, streams=Streams(4, 0), keep_patients=True)


def _split(batch):
    d = batch.model.scenario.design
    return ArmSplit(batch.patients.treated, d.n_control, fixed=True)


def test_stacked_analysis_equals_one_test_per_endpoint(batch):
    model = batch.model
    observed = batch.patients.observed
    split = _split(batch)
    stats, estimates = analyse(model, observed, split)
    assert list(stats) == [(a.name, t) for a, t in model.pairs()]
    alpha = model.scenario.design.alpha
    for a, t in model.pairs():
        control, treatment = split.arms(observed[a.name])
        ref = tests.get(t).run(control, treatment, alpha)
        got = stats[(a.name, t)]
        for field in ("pvalue", "reject", "valid", "estimate"):
            np.testing.assert_array_equal(getattr(got, field), getattr(ref, field), err_msg=f"{a.name} {t} {field}")
        for got_ci, ref_ci in zip(got.ci(), ref.ci()):
            np.testing.assert_array_equal(got_ci, ref_ci)
    # the batch's own statistics are the same as analysing its observed values again
    for k, s in batch.stats.items():
        np.testing.assert_array_equal(s.pvalue, stats[k].pvalue)
    # the per-arm estimates are numpy's nanmean / nanmedian of C-contiguous rows, bit for bit (numpy's sums depend on
    # the layout, the engine's do not: the markers' values are views of patient-major arrays)
    for a in model.analysed:
        x = np.ascontiguousarray(split.arms(observed[a.name])[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = np.nanmedian(x, axis=-1) if a.summary == "median" else np.nanmean(x, axis=-1)
        if a.scale == "log":
            ref = np.exp(ref)
        np.testing.assert_array_equal(estimates[(a.name, "control", "n_analysable")], np.sum(~np.isnan(x), axis=-1))
        key = [k for k in estimates if k[0] == a.name and k[1] == "control"][0]
        np.testing.assert_array_equal(estimates[key], ref, err_msg=a.name)


def test_arm_split_columns_gather_and_mask_give_the_same_tests(default_scenario):
    """Deterministic arms take columns, fixed-size randomised arms gather, others blank the other arm with NaN."""
    sc = with_values(default_scenario, {"allocation.scheme": "permuted_block"})  # 20 = 5 blocks of 4: fixed sizes
    batch = simulate_trials(sc, 200, streams=Streams(6, 0), keep_patients=True)
    treated = batch.patients.treated
    assert not (treated == treated[0]).all()
    gather = ArmSplit(treated, 10, fixed=True)
    mask = ArmSplit(treated, 10, fixed=False)
    assert (gather.mode, mask.mode) == ("gather", "mask")
    a_stats, a_est = analyse(batch.model, batch.patients.observed, gather)
    b_stats, b_est = analyse(batch.model, batch.patients.observed, mask)
    for k in a_stats:
        np.testing.assert_array_equal(a_stats[k].reject, b_stats[k].reject, err_msg=str(k))
        np.testing.assert_allclose(a_stats[k].pvalue, b_stats[k].pvalue, rtol=1e-12, atol=0, err_msg=str(k))
    for k in a_est:
        np.testing.assert_allclose(a_est[k], b_est[k], rtol=1e-12, atol=1e-13, err_msg=str(k))
    cols = ArmSplit(np.broadcast_to(np.arange(20) >= 10, (3, 20)), 10, fixed=True)
    assert cols.mode == "columns" and cols.columns == (slice(0, 10), slice(10, 20))


def test_marker_mean_log_is_the_nanmean_of_the_days(batch):
    section = batch.model.section("cytokines")
    latent = batch.patients.latent["cytokines"]
    for m in section.markers:
        # numpy's nanmean of C-contiguous rows (its sums depend on the layout; the engine's do not)
        days = np.stack([np.ascontiguousarray(latent[f"{m.name}_pod{d}"]) for d in section.days], axis=-1)
        np.testing.assert_array_equal(latent[f"{m.name}_mean_log"], np.nanmean(days, axis=-1))
        assert latent[f"{m.name}_pod{section.days[0]}"].T.flags.c_contiguous  # a view of patient-major levels


def test_observe_without_flow_equals_everyone_enrolled(batch):
    model = batch.model
    p = batch.patients
    ctx = PatientContext(batch.n_trials, p.treated.shape[1], p.covariates, p.treated, model.prevalence, p.latent)
    everyone = Status(attended=p.status.attended, died=p.status.died, enrolled=np.ones(p.treated.shape, dtype=bool))
    for cid in model.order:
        fast = model.section(cid).observe(cid, ctx, p.latent[cid], p.status)
        general = model.section(cid).observe(cid, ctx, p.latent[cid], everyone)
        assert list(fast) == list(general)
        for name in fast:
            np.testing.assert_array_equal(fast[name], general[name])


def test_block_summary_equals_sums_per_key(batch):
    batch.arm_estimates[("extra", "control", "with_nan")] = np.where(np.arange(batch.n_trials) % 3 == 0, np.nan, 1.5)
    try:
        decisions = decide(batch)
        summary = summarise_batch(batch, decisions, block=0)
    finally:
        del batch.arm_estimates[("extra", "control", "with_nan")]
    for (ep, test), res in batch.stats.items():
        sums = summary.tests[f"{ep}|{test}"]
        assert sums["rejects"] == int(np.count_nonzero(res.reject))
        assert sums["valid"] == int(np.count_nonzero(~np.isnan(res.pvalue)))
        est = np.asarray(res.estimate, dtype=float)
        assert sums["est_sum"] == float(est[np.isfinite(est)].sum())
    for parts in list(batch.arm_estimates) + [("extra", "control", "with_nan")]:
        k = "|".join(parts)
        values = np.where(np.arange(batch.n_trials) % 3 == 0, np.nan, 1.5) if parts[0] == "extra" else batch.arm_estimates[parts]
        ok = np.isfinite(values)
        assert summary.est_sum[k] == float(np.sum(values[ok]))
        assert summary.est_sumsq[k] == float(np.sum(values[ok] ** 2))
        assert summary.est_count[k] == int(np.count_nonzero(ok))


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2, 1e-6])
def test_t_decisions_by_critical_values_equal_the_pvalue_decisions(alpha):
    rng = np.random.default_rng(8)
    df = np.concatenate([rng.uniform(0.5, 40.0, 20_000), continuous._T_CRIT_DF[::7], [0.3, 1.0, 1e6, 3e7, np.nan, 5.0, 5.0]])
    crit = -special.stdtrit(df, alpha / 2.0)
    # |t| spread around the critical value, some exactly on it, and the edge cases
    t = crit * rng.choice([-1.0, 1.0], df.size) * np.where(rng.random(df.size) < 0.2, 1.0, rng.uniform(0.9, 1.1, df.size))
    t[-3:] = [np.inf, np.nan, 0.0]
    reject = continuous.t_reject(t, df, alpha)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(reject, continuous._t_pvalue(t, df) <= alpha)
    # the tabulated critical values are accurate and fall as df grows
    table = continuous._t_critical(alpha)
    assert np.all(np.diff(table) < 0)
    np.testing.assert_allclose(2 * special.stdtr(continuous._T_CRIT_DF, -table[:-1]), alpha, rtol=1e-9)


def test_t_test_results_compute_pvalues_only_when_asked():
    rng = np.random.default_rng(9)
    xc, xt = _mixed_rows(rng, 400, 10), _mixed_rows(rng, 400, 8)
    res = continuous.welch_t(xc, xt)
    reject, valid = res.reject(0.05), res.valid()
    assert res._pvalue is None
    np.testing.assert_array_equal(reject, res.pvalue <= 0.05)
    np.testing.assert_array_equal(valid, ~np.isnan(res.pvalue))


@pytest.mark.parametrize("shape", [(3, 5), (200, 7, 3), (65, 1000, 2), (1, 1), (0, 5), (5, 0, 2), (130, 33, 2, 2)])
@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.bool_, np.float32])
def test_blocked_transpose_of_patient_draws_equals_the_plain_copy(shape, dtype):
    draw = (np.random.default_rng(1).random(shape) * 10).astype(dtype)
    got, expected = trials_first(draw), np.ascontiguousarray(np.swapaxes(draw, 0, 1))
    assert got.dtype == expected.dtype and got.shape == expected.shape and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(trials_first(draw[::2]), np.ascontiguousarray(np.swapaxes(draw[::2], 0, 1)))


def test_rank_sums_of_grades_equal_the_sorted_ranks():
    """Ordinal data ranked by counting each grade: the same rank sums and tie terms, bit for bit, as sorting."""
    rng = np.random.default_rng(0)
    for case in range(200):
        s, n1, n2, grades = (int(v) for v in (rng.integers(1, 40), rng.integers(1, 90), rng.integers(1, 90), rng.integers(1, 33)))
        xc, xt = rng.integers(0, grades, (s, n1)).astype(float), rng.integers(0, grades, (s, n2)).astype(float)
        if case % 2:
            xc[rng.random(xc.shape) < 0.2] = np.nan
            xt[rng.random(xt.shape) < 0.3] = np.nan
        if case % 5 == 0:
            xc[xc == 0] = -0.0
        got = continuous._rank_sums_of_grades(xc, xt)
        r1, tie_term = continuous._rank_sums(xc, xt)
        np.testing.assert_array_equal(got[0], r1)
        np.testing.assert_array_equal(got[1], tie_term)
    missing = np.full((2, 40), np.nan)  # every value missing: sorting's NaN answer, not a crash
    assert continuous._rank_sums_of_grades(missing, missing) is None
    assert np.isnan(mann_whitney(missing, missing).pvalue).all()
    for other in (rng.random((5, 40)) * 10, rng.integers(-3, 3, (5, 40)).astype(float), rng.integers(0, 40, (5, 40)).astype(float)):
        assert continuous._rank_sums_of_grades(other, other) is None


def test_mann_whitney_on_grades_counts_or_sorts_to_the_same_result(monkeypatch):
    rng = np.random.default_rng(3)
    xc, xt = rng.integers(0, 4, (200, 400)).astype(float), rng.integers(0, 4, (200, 380)).astype(float)
    xc[rng.random(xc.shape) < 0.1] = np.nan
    counted = mann_whitney(xc, xt)
    monkeypatch.setattr(continuous, "_rank_sums_of_grades", lambda cc, ct: None)
    sorted_ = mann_whitney(xc, xt)
    for field in ("statistic", "pvalue", "n_control", "n_treatment"):
        np.testing.assert_array_equal(getattr(counted, field), getattr(sorted_, field), err_msg=field)


def test_kept_pair_tables_give_the_per_call_values():
    """gather_by_size_pair with a key (tables kept between calls) = without (tables fetched per call): sizes met
    before and new ones, pairs without a table (NaN), larger sizes than any before, and tables beyond the budget."""
    rng = np.random.default_rng(7)
    fetched = []

    def table_for(a: int, b: int):
        fetched.append((a, b))
        return None if a == 0 or b == 0 else np.arange((a + 1) * (b + 1), dtype=float) / (a + b) + a

    kept = binary.PairTables(table_for, max_values=10_000)
    for n in (4, 4, 9, 2, 12):  # largest arm grows, shrinks, grows past every size before
        size_a, size_b = rng.integers(0, n + 1, size=(2, 500))
        flat = rng.integers(0, 10**6, size=500) % ((size_a + 1) * (size_b + 1))
        plain = binary.gather_by_size_pair(size_a, size_b, flat, table_for)
        np.testing.assert_array_equal(kept.gather(size_a, size_b, flat), plain)
        assert np.isnan(plain[(size_a == 0) | (size_b == 0)]).all()
    calls = len(fetched)
    kept.gather(size_a, size_b, flat)
    assert len(fetched) == calls  # every pair met before: no table fetched again
    assert kept.gather(np.array([], dtype=np.int64), np.array([], dtype=np.int64), np.array([], dtype=np.int64)).shape == (0,)
    small = binary.PairTables(table_for, max_values=50)  # 13 x 13 values do not fit: the caller fetches per call
    assert small.gather(np.array([2]), np.array([2]), np.array([3])) == table_for(2, 2)[3]  # 9 values: kept
    assert small.gather(np.array([12]), np.array([12]), np.array([3])) is None and small.full
    calls = len(fetched)
    assert small.gather(np.array([3]), np.array([3]), np.array([0])) is None  # once full, nothing more is fetched
    assert len(fetched) == calls
    assert small.gather(np.array([2]), np.array([2]), np.array([4])) == table_for(2, 2)[4]  # what is kept still serves
    np.testing.assert_array_equal(binary.gather_by_size_pair(np.array([12, 3]), np.array([12, 0]), np.array([3, 0]),
                                                             table_for, key=("test_kept_pair_tables", 1)),
                                  [table_for(12, 12)[3], np.nan])


def test_a_table_test_registered_again_gives_its_new_tables():
    """Every cached table of a test's first builder is dropped when the name is registered again (the look-ups and the
    tables kept between calls used to go on serving the old ones)."""
    x = np.array([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    y = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
    try:
        binary.register_table_test("test_twice", lambda a, b: np.full((a + 1, b + 1), 0.01))
        assert (binary.binary_test("test_twice", x, y, alpha=0.05).pvalue == 0.01).all()
        binary.register_table_test("test_twice", lambda a, b: np.full((a + 1, b + 1), 0.5))
        assert (binary.binary_test("test_twice", x, y, alpha=0.05).pvalue == 0.5).all()
        assert (binary.pvalue_table("test_twice", 4, 4) == 0.5).all()
    finally:
        binary._TABLE_BUILDERS.pop("test_twice", None)
