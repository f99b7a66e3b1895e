"""Fast paths of the analysis layer give the bits of the plain formulations they replace.

Each reference below is the straightforward computation (the code the fast path replaced); the fast
path must reproduce it bit for bit at several shapes, with ties, missing values and rows where
every value is missing, so a change that moves a single number fails here.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from trialsim.analysis import continuous


def _plain_rank_sums(xc: np.ndarray, xt: np.ndarray):
    """Average ranks of the pooled rows by argsort and tie groups, every row the same way."""
    xy = np.concatenate([xc, xt], axis=-1)
    order = np.argsort(xy, axis=-1)  # NaNs last
    v = np.take_along_axis(xy, order, axis=-1)
    first, last = continuous._tie_groups(v)
    from_control = (order < xc.shape[-1]) & ~np.isnan(v)
    r1 = np.sum(np.where(from_control, (first + last) / 2.0 + 1.0, 0.0), axis=-1)
    return r1, continuous._tie_term(v, first, last)


def _rows(rng, shape, *, ties: bool, missing: float) -> np.ndarray:
    x = rng.lognormal(size=shape)
    if ties:
        x = np.round(x, 1)
    x[rng.random(shape) < missing] = np.nan
    return x


def _same_bits(got, expected):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("lead, n_c, n_t", [((50,), 40, 35), ((3, 20), 60, 61), ((7,), 1, 300), ((4,), 0, 5), ((0,), 5, 5)])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("missing", [0.0, 0.2])
def test_rank_sums_equal_the_plain_average_ranks(lead, n_c, n_t, ties, missing):
    rng = np.random.default_rng(n_c * 1000 + n_t)
    xc, xt = _rows(rng, lead + (n_c,), ties=ties, missing=missing), _rows(rng, lead + (n_t,), ties=ties, missing=missing)
    if xc.size and xt.size:
        xc[(0,) * (len(lead) - 1) + (0,)] = np.nan  # every control value missing
        xt.reshape(-1, n_t)[-1] = np.nan  # every treatment value missing
        xc.reshape(-1, n_c)[1 % xc.shape[0]] = -0.0  # -0.0 ties 0.0
        xt.reshape(-1, n_t)[1 % xt.shape[0], 0] = 0.0
    got, expected = continuous._rank_sums(xc, xt), _plain_rank_sums(xc, xt)
    for g, e in zip(got, expected):
        _same_bits(g, e)


@pytest.mark.parametrize("lead, n_c, n_t", [((40,), 45, 50), ((2, 30), 33, 40), ((5,), 1, 200)])
def test_rank_sums_of_grades_equal_the_plain_average_ranks(lead, n_c, n_t):
    rng = np.random.default_rng(n_c + n_t)
    xc, xt = rng.integers(0, 5, lead + (n_c,)).astype(float), rng.integers(0, 5, lead + (n_t,)).astype(float)
    xc[rng.random(xc.shape) < 0.2] = np.nan
    xc.reshape(-1, n_c)[0] = np.nan
    for patient_major_view in (False, True):  # as the runner hands stacked endpoints: views of patient-major arrays
        a, b = (np.moveaxis(np.ascontiguousarray(np.moveaxis(x, -1, 0)), 0, -1) for x in (xc, xt)) if patient_major_view \
            else (xc, xt)
        got, expected = continuous._rank_sums_of_grades(a, b), _plain_rank_sums(xc, xt)
        for g, e in zip(got, expected):
            _same_bits(g, e)


def _plain_u_pairwise(xc: np.ndarray, xt: np.ndarray):
    """U and tie term of small arms: pairs counted per trial, ties found by sorting every pooled row."""
    cc, ct = continuous.patient_major(xc), continuous.patient_major(xt)
    u1 = continuous._count_pairs(np.greater, cc, ct).astype(float)
    tie_term = np.zeros(u1.shape)
    v = np.concatenate([xc, xt], axis=-1)
    v.sort(axis=-1)
    adjacent_equal = v[:, 1:] == v[:, :-1]
    if adjacent_equal.any():
        tied = np.nonzero(adjacent_equal.any(axis=-1))[0]
        u1[tied] += 0.5 * continuous._count_pairs(np.equal, cc[:, tied], ct[:, tied])
        v = v[tied]
        tie_term[tied] = continuous._tie_term(v, *continuous._tie_groups(v))
    return u1, tie_term


@pytest.mark.parametrize("n_c, n_t", [(10, 10), (3, 7), (12, 5), (1, 1), (0, 4), (32, 32)])
@pytest.mark.parametrize("ties", [False, True])
def test_u_pairwise_equals_the_plain_sorted_tie_search(n_c, n_t, ties, loops):
    rng = np.random.default_rng(7 + n_c)
    xc, xt = _rows(rng, (400, n_c), ties=ties, missing=0.15), _rows(rng, (400, n_t), ties=ties, missing=0.15)
    if n_c and n_t:
        xc[0], xt[1] = np.nan, np.nan
        xt[2, 0] = xc[2, 0]  # a tie across the arms only
        xc[3] = xc[3, 0]  # ties within one arm only
        xc[4, 0], xt[4, 0] = -0.0, 0.0
    got, expected = continuous._u_pairwise(xc, xt), _plain_u_pairwise(xc, xt)
    for g, e in zip(got, expected):
        _same_bits(g, e)


def _plain_mann_whitney_pvalues(res) -> np.ndarray:
    """Both formulas on every trial, then each trial's own: exact table (one look-up per trial) or normal."""
    u1, n_c, n_t = res.statistic, res.n_control, res.n_treatment
    n1n2, n = n_c * n_t, n_c + n_t
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.maximum(u1, n1n2 - u1)
        s = np.sqrt(n1n2 / 12.0 * ((n + 1) - res._tie_term / (n * (n - 1))))
        z = (u - n1n2 / 2.0 - 0.5) / s
        normal = np.clip(2.0 * special.ndtr(-z), 0.0, 1.0)
    exact = np.array([continuous._mwu_exact_pvalues(int(a), int(b))[int(np.rint(v))] if e else np.nan
                      for a, b, v, e in zip(n_c.ravel(), n_t.ravel(), u1.ravel(), res.exact.ravel())]).reshape(u1.shape)
    return np.where((n_c >= 1) & (n_t >= 1), np.where(res.exact, exact, normal), np.nan)


@pytest.mark.parametrize("lead, n_c, n_t", [((300,), 10, 10), ((3, 100), 8, 12), ((200,), 45, 40), ((50,), 1, 3)])
@pytest.mark.parametrize("method", ["auto", "asymptotic"])
def test_mann_whitney_pvalues_equal_both_formulas_everywhere(lead, n_c, n_t, method, loops):
    rng = np.random.default_rng(n_c * n_t)
    xc, xt = _rows(rng, lead + (n_c,), ties=False, missing=0.1), _rows(rng, lead + (n_t,), ties=False, missing=0.1)
    xc.reshape(-1, n_c)[:40] = np.round(xc.reshape(-1, n_c)[:40], 0)  # some trials with ties: normal approximation
    xt.reshape(-1, n_t)[:40] = np.round(xt.reshape(-1, n_t)[:40], 0)
    xc.reshape(-1, n_c)[-1] = np.nan
    res = continuous.mann_whitney(xc, xt, method=method)
    if n_c * n_t > continuous._PAIRWISE_MAX_PAIRS:
        _, tie_term = _plain_rank_sums(xc, xt)
    else:
        _, tie_term = _plain_u_pairwise(xc.reshape(-1, n_c), xt.reshape(-1, n_t))
    res._tie_term = tie_term.reshape(res.statistic.shape)
    _same_bits(res.pvalue, _plain_mann_whitney_pvalues(res))
    assert res.exact.any() == (method == "auto")


def _plain_t_critical_value(df: np.ndarray, alpha: float) -> np.ndarray:
    """Interpolation in log(df) by ``np.interp`` (a binary search per value); the exact quantile below df = 1."""
    q = np.interp(np.log(np.where(df >= 1.0, df, 1.0)), continuous._T_WIDTH_LOG_DF,
                  continuous._t_width_table(float(alpha)), right=-special.ndtri(alpha / 2.0))
    odd = ~(df >= 1.0)
    if odd.any():
        q[odd] = -special.stdtrit(df[odd], alpha / 2.0)
    return q


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2])
def test_t_critical_values_equal_np_interp(alpha):
    rng = np.random.default_rng(4)
    grid = np.exp(continuous._T_WIDTH_LOG_DF)
    df = np.concatenate([grid, np.nextafter(grid, np.inf), np.nextafter(grid, 0.0), rng.uniform(0.2, 60.0, 50_000),
                         np.exp(rng.uniform(0.0, 21.0, 50_000)), [np.nan, np.inf, 1.0, 0.5, 1e9, 1e10, 1e300]])
    with np.errstate(invalid="ignore", over="ignore"):
        _same_bits(continuous.t_critical_value(df, alpha), _plain_t_critical_value(df, alpha))
        _same_bits(continuous.t_critical_value(df.reshape(2, -1), alpha), _plain_t_critical_value(df, alpha).reshape(2, -1))
        _same_bits(continuous.t_critical_value(np.float64(7.5), alpha), _plain_t_critical_value(np.float64(7.5), alpha))


def _plain_test_sums(batch, decisions) -> dict:
    """summarise_batch's per-(endpoint, test) sums, one key at a time on compressed arrays."""
    out = {}
    reject = decisions.outcomes.get("reject", {})
    covered = decisions.outcomes.get("covered", {})
    for k, s in batch.stats.items():
        est = np.asarray(s.estimate, dtype=float)
        ok = np.isfinite(est)
        kept = est[ok]
        sums = {"rejects": int(np.count_nonzero(reject.get(k, s.reject))), "valid": int(np.count_nonzero(s.valid)),
                "est_n": int(kept.size), "est_sum": float(kept.sum()), "est_sumsq": float((kept * kept).sum()),
                "err_sum": 0.0, "err_sumsq": 0.0, "covered": 0, "coverable": 0,
                "width_n": 0, "width_sum": 0.0, "width_sumsq": 0.0}
        truth = decisions.truth.get(k)
        if truth is not None:
            err = kept - truth
            sums["err_sum"], sums["err_sumsq"] = float(err.sum()), float((err * err).sum())
        if k in covered:
            sums["covered"] = int(np.count_nonzero(covered[k] & ok))
            sums["coverable"] = int(kept.size)
        if s.has_interval:
            se, df = s._t
            if se is not None and s._ci is None:
                width = 2.0 * _plain_t_critical_value(df, s.alpha) * se
            else:
                low, high = s.ci()
                with np.errstate(invalid="ignore"):
                    width = np.asarray(high, dtype=float) - np.asarray(low, dtype=float)
            width = width[np.isfinite(width)]
            sums["width_n"], sums["width_sum"], sums["width_sumsq"] = int(width.size), float(width.sum()), float((width * width).sum())
        out["|".join(k)] = sums
    return out


@pytest.mark.parametrize("config, n_sims", [("exosome_lar_20", 700), ("crp_randomised_30", 300), ("cytokine_pilot", 300)])
def test_summarised_test_sums_equal_the_plain_per_key_sums(config, n_sims):
    from pathlib import Path

    from trialsim.config.loader import load_scenario
    from trialsim.decide import decide
    from trialsim.rng import Streams
    from trialsim.simulate import simulate_trials
    from trialsim.summarise import summarise_batch

    scenario = load_scenario(Path(__file__).parents[1] / "configs" / f"{config}.toml")
    batch = simulate_trials(scenario, n_sims, streams=Streams(3, 1))
    k0, s0 = next((k, s) for k, s in batch.stats.items() if s.has_interval)
    s0.estimate = s0.estimate.copy()
    s0.estimate[::7] = np.nan  # rows with non-finite values are summed as compressed rows
    s0.estimate[3] = np.inf
    decisions = decide(batch)
    got = summarise_batch(batch, decisions, block=0).tests
    expected = _plain_test_sums(batch, decisions)
    assert list(got) == list(expected)
    for k in expected:
        assert got[k] == expected[k], k
        assert [type(v) for v in got[k].values()] == [type(v) for v in expected[k].values()], k
        for name, v in expected[k].items():
            assert np.asarray(got[k][name]).tobytes() == np.asarray(v).tobytes(), (k, name)


@pytest.mark.parametrize("config, scheme", [("exosome_lar_20", None), ("exosome_lar_20", "permuted_block"),
                                            ("crp_randomised_30", None), ("alternatives", None)])
def test_stacking_endpoints_in_test_order_changes_no_bit(config, scheme, monkeypatch):
    """analyse stacks the endpoints so each stacked test's rows are one slice (views, not copies); stacking them
    in declaration order (rows gathered by index, copied) gives the same bits, estimates included."""
    from pathlib import Path

    from trialsim import simulate
    from trialsim.config.loader import load_scenario, with_values
    from trialsim.rng import Streams

    scenario = load_scenario(Path(__file__).parents[1] / "configs" / f"{config}.toml")
    if scheme is not None:
        scenario = with_values(scenario, {"allocation.scheme": scheme})
    batch = simulate.simulate_trials(scenario, 400, streams=Streams(5, 2), keep_patients=True)
    d = scenario.design
    split = simulate.ArmSplit(batch.patients.treated, d.n_control, fixed=True)
    fast = simulate.analyse(batch.model, batch.patients.observed, split, covariates=batch.patients.covariates)
    monkeypatch.setattr(simulate, "_stack_order", lambda eps, stacked: list(range(len(eps))))
    plain = simulate.analyse(batch.model, batch.patients.observed, split, covariates=batch.patients.covariates)
    assert list(fast[0]) == list(plain[0]) and list(fast[1]) == list(plain[1])
    for k, s in plain[0].items():
        for name in ("reject", "valid", "estimate", "pvalue"):
            _same_bits(getattr(fast[0][k], name), getattr(s, name))
        for got, expected in zip(fast[0][k].ci(), s.ci()):
            _same_bits(got, expected)
        _same_bits(fast[0][k].widths(), s.widths())
    for k, v in plain[1].items():
        _same_bits(fast[1][k], v)


@pytest.mark.parametrize("lead, n", [((500,), 10), ((3, 200), 25), ((4,), 1)])
def test_fisher_log_odds_ratios_equal_one_look_up_per_table(lead, n):
    """The estimate and interval of Fisher's test come from one look-up: the values of three per table."""
    from trialsim.analysis import conditional
    from trialsim.analysis import registry as tests

    rng = np.random.default_rng(n)
    xc, xt = (rng.random(lead + (n,)) < 0.3).astype(float), (rng.random(lead + (n,)) < 0.15).astype(float)
    xc[rng.random(xc.shape) < 0.2] = np.nan
    xc.reshape(-1, n)[0] = np.nan  # an arm without an analysable patient
    got = tests.get("fisher").run(xc, xt, 0.05)
    n_c, n_t = np.sum(~np.isnan(xc), axis=-1), np.sum(~np.isnan(xt), axis=-1)
    e_c, e_t = np.nansum(xc, axis=-1).astype(int), np.nansum(xt, axis=-1).astype(int)
    for k, value in enumerate((got.estimate, *got.ci())):
        expected = np.array([conditional.conditional_log_or_table(int(a), int(b), alpha=0.05)[k][int(c), int(d)]
                             if a and b else np.nan
                             for a, b, c, d in zip(n_c.ravel(), n_t.ravel(), e_c.ravel(), e_t.ravel())]).reshape(lead)
        _same_bits(value, expected)


def _plain_moments(x: np.ndarray):
    """Count, mean and squared deviations with missing values masked out (zeros where missing)."""
    ok = ~np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        n = ok.sum(axis=-1)
        mean = np.where(ok, x, 0.0).sum(axis=-1) / n
        dev = np.where(ok, x - mean[..., None], 0.0)
        dev = np.where(np.isnan(dev), 0.0, dev)  # a trial whose mean is NaN: every deviation counts 0
        return n, mean, np.sum(dev * dev, axis=-1)


@pytest.mark.parametrize("shape", [(4, 300, 10), (700, 9), (2, 50, 130), (3, 1)])
def test_moments_and_welch_with_shared_means_equal_the_masked_formulas(shape, loops):
    rng = np.random.default_rng(shape[-1])
    x, y = rng.normal(size=shape), rng.normal(size=shape)
    x[rng.random(shape) < 0.2] = np.nan
    x.reshape(-1, shape[-1])[0] = np.nan  # every value missing
    if shape[-1] >= 4:
        x.reshape(-1, shape[-1])[1, :4] = [1e308, 1e308, -1e308, -1e308]  # complete, but the sum is NaN
    with np.errstate(over="ignore", invalid="ignore"):
        for got, expected in zip(continuous._moments(x), _plain_moments(x)):
            _same_bits(got, expected)
        means = tuple(continuous.nan_mean(v)[:2] for v in (x, y))
        plain, shared = continuous.welch_t(x, y), continuous.welch_t(x, y, means=means)
    for name in ("statistic", "df", "difference", "se", "n_control", "n_treatment"):
        _same_bits(getattr(shared, name), getattr(plain, name))
    _same_bits(shared.reject(0.05), plain.reject(0.05))


@pytest.mark.parametrize("shape", [(21, 300, 10), (700, 9), (2, 3, 50, 130), (5, 2, 1), (4, 0, 5)])
def test_nan_means_equal_the_masked_formula(shape, loops):
    rng = np.random.default_rng(sum(shape))
    x = rng.lognormal(size=shape)
    flat = x.reshape(-1, shape[-1])
    if flat.shape[0]:
        x[rng.random(shape) < 0.1] = np.nan
        x[1] = np.where(rng.random(x[1].shape) < 0.6, np.nan, x[1])
        flat[0] = np.nan  # every value missing
        flat[2] = -0.0
    n, mean = continuous.nan_mean(x)
    ok = ~np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        _same_bits(n, ok.sum(axis=-1))
        _same_bits(mean, np.where(ok, x, 0.0).sum(axis=-1) / ok.sum(axis=-1))


@pytest.mark.parametrize("n", [64, 100, 129, 257, 1500, 1501])
@pytest.mark.parametrize("wider", [False, True])
def test_long_arms_summed_along_rows_equal_patient_major_sums(n, wider, monkeypatch):
    """From 64 patients per arm the sums run along each contiguous row (np.sum): the bits of sum_patients on
    the patient-major copy, for whole arrays and for an arm's columns of a wider array, 2-d and 3-d."""
    rng = np.random.default_rng(n)
    for lead in ((40,), (3, 30)):
        x = rng.lognormal(size=lead + (2 * n if wider else n,)) * np.exp(rng.normal(size=lead + (2 * n if wider else n,)) * 5)
        y = rng.lognormal(size=lead + (n,))
        x[rng.random(x.shape) < 0.05] = np.nan
        x.reshape(-1, x.shape[-1])[0] = np.nan
        x.reshape(-1, x.shape[-1])[1, 1:] = -0.0
        xc = x[..., :n]
        assert continuous.by_rows(xc)
        fast = continuous.welch_t(xc, y), continuous.nan_mean(xc)[:2], continuous._moments(xc)
        monkeypatch.setattr(continuous, "_ROWS_FROM_N", 10**9)
        assert not continuous.by_rows(xc)
        plain = continuous.welch_t(xc, y), continuous.nan_mean(xc)[:2], continuous._moments(xc)
        monkeypatch.undo()
        for name in ("statistic", "df", "difference", "se", "n_control", "n_treatment"):
            _same_bits(getattr(fast[0], name), getattr(plain[0], name))
        for got, expected in zip(fast[1] + fast[2], plain[1] + plain[2]):
            _same_bits(got, expected)


@pytest.mark.parametrize("n_per_arm", [70, 300])
def test_analysis_of_long_arms_along_rows_changes_no_bit(n_per_arm, monkeypatch):
    from pathlib import Path

    from trialsim import simulate
    from trialsim.config.loader import load_scenario, with_values
    from trialsim.rng import Streams

    scenario = with_values(load_scenario(Path(__file__).parents[1] / "configs" / "exosome_lar_20.toml"),
                           {"design.n_control": n_per_arm, "design.n_treatment": n_per_arm})
    batch = simulate.simulate_trials(scenario, 200, streams=Streams(8, 1), keep_patients=True)
    split = simulate.ArmSplit(batch.patients.treated, n_per_arm, fixed=True)
    fast = simulate.analyse(batch.model, batch.patients.observed, split)
    monkeypatch.setattr(continuous, "_ROWS_FROM_N", 10**9)
    plain = simulate.analyse(batch.model, batch.patients.observed, split)
    for k, s in plain[0].items():
        for name in ("reject", "valid", "estimate", "pvalue"):
            _same_bits(getattr(fast[0][k], name), getattr(s, name))
    for k, v in plain[1].items():
        _same_bits(fast[1][k], v)


def test_mann_whitney_of_long_arms_with_no_trials_or_continuous_first_trial():
    empty = np.zeros((0, 40))
    assert continuous.mann_whitney(empty, empty).pvalue.shape == (0,)
    rng = np.random.default_rng(1)
    grades = rng.integers(0, 4, (30, 40)).astype(float)
    mixed = grades.copy()
    mixed[0, 0] = 0.5  # the first trial is not graded: sorted ranks for all
    assert continuous._rank_sums_of_grades(mixed, grades) is None
    mixed[0, 0], mixed[5, 3] = 0.0, 2.5  # a later trial is not graded
    assert continuous._rank_sums_of_grades(mixed, grades) is None
    res = continuous.mann_whitney(mixed, grades)
    r1, _ = _plain_rank_sums(mixed, grades)
    _same_bits(res.statistic, r1 - 40 * 41 / 2.0)
