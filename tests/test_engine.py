"""The engine: exact agreement with enumeration, type I error under the null, reproducibility, resume,
and a per-trial table that no parallelism, chunking or added component can change."""
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trialsim.api import run
from trialsim.config.loader import ConfigError, load_scenario, to_raw, validate, with_values
from trialsim.engine import run_specs
from trialsim.engine.runner import dearest_first
from trialsim.exact import exact_binary_power
from trialsim.files import DamagedFileError
from trialsim.model import build_model
from trialsim.planning import model
from trialsim.planning.compare import designs_of
from trialsim.results import TrialWriter, read_trials
from trialsim.scenarios import ScenarioSpec
from trialsim.summarise import TRIAL_COLUMNS
from tests.conftest import CONFIGS

NULL = {
    "endpoints.leak_1m.effect": 1.0,
    "endpoints.los_days.treatment_ratio": 1.0,
    **{f"endpoints.cytokines.markers[{i}].treatment_gmr": 1.0 for i in range(4)},
}
CRP_NULL = {"endpoints.crp_pod3.effect": 1.0, "endpoints.ssi_30d.effect": 1.0}


def _rows(result, method="monte_carlo"):
    f = result.to_frame()
    return f[f.method == method].set_index(["endpoint", "test"])


def _agree(res, n_exact):
    mc, ex = _rows(res), _rows(res, "exact")
    assert len(ex) == n_exact
    for idx, row in ex.iterrows():
        m = mc.loc[idx]
        tol = 4 * max(m.mc_se, np.sqrt(row.power * (1 - row.power) / m.n_sims), 1 / m.n_sims)
        assert abs(m.power - row.power) <= tol, (idx, m.power, row.power, tol)


@pytest.mark.slow
@pytest.mark.parametrize("values", [
    {},  # the registered design: tiny power
    {"endpoints.leak_1m.rate_control": 0.3, "endpoints.leak_1m.effect": 0.25, "design.n_control": 25, "design.n_treatment": 20},
])
def test_monte_carlo_binary_power_agrees_with_exact(default_scenario, values):
    res = run(with_values(default_scenario, values), n_sims=60_000, seed=123, n_jobs=1)
    _agree(res, 5)  # leak: fisher, boschloo, chi2; colonoscopy abnormal and worse than baseline: fisher


@pytest.mark.slow
def test_monte_carlo_binary_power_agrees_with_exact_in_the_randomised_trial(crp_scenario):
    """Permuted blocks that fill both arms exactly: the exact law applies to the plain binary secondary."""
    res = run(crp_scenario, n_sims=60_000, seed=7, n_jobs=1)
    _agree(res, 1)


def _type_one_error(res, alpha):
    mc, ex = _rows(res), _rows(res, "exact")
    for (endpoint, test), row in mc.iterrows():
        assert row.null, endpoint
        se = np.sqrt(alpha * (1 - alpha) / row.n_sims)
        if (endpoint, test) in ex.index:
            size = ex.loc[(endpoint, test)].power  # exact size of the binary test under this null
            assert abs(row.power - size) <= 4 * np.sqrt(size * (1 - size) / row.n_sims) + 1 / row.n_sims
            if test in ("fisher", "boschloo"):
                assert size <= alpha  # exact tests keep their level
        elif row.family == "continuous":
            # Welch and Mann-Whitney (exact without ties) on identically distributed arms
            assert abs(row.power - alpha) <= 4 * se + 0.006, (endpoint, test, row.power)
        else:  # ordinal grade with ties: asymptotic Mann-Whitney, must not exceed its level
            assert row.power <= alpha + 4 * se, (endpoint, test, row.power)


@pytest.mark.slow
def test_type_one_error_under_the_null_for_every_test(default_scenario, crp_scenario):
    _type_one_error(run(with_values(default_scenario, NULL), n_sims=40_000, seed=99, n_jobs=1), 0.05)
    _type_one_error(run(with_values(crp_scenario, CRP_NULL), n_sims=40_000, seed=98, n_jobs=1), 0.05)


def test_same_seed_same_numbers_for_any_jobs_and_chunking(default_scenario):
    sc = with_values(default_scenario, {"run.block_size": 250})
    a = run(sc, n_sims=2_000, seed=5, n_jobs=1, chunk_blocks=1)
    b = run(sc, n_sims=2_000, seed=5, n_jobs=2, chunk_blocks=3)
    assert a.to_frame().equals(b.to_frame())
    assert a.estimates_frame().equals(b.estimates_frame())
    c = run(sc, n_sims=2_000, seed=6, n_jobs=1)
    assert not a.to_frame().equals(c.to_frame())


def test_dearest_tasks_go_first_and_every_block_once():
    # three scenarios: 5 blocks of 100 trials (the last of 30), costs 1, 7 and 7 per trial
    todo = [[0, 1, 2, 3, 4], [1, 2, 3, 4], [0, 2, 4]]
    tasks = dearest_first(todo, 2, 100, 430, trial_costs=[1.0, 7.0, 7.0])
    costs = [[1.0, 7.0, 7.0][i] * sum(n for _, n in task.blocks) for i, task in tasks]
    assert costs == sorted(costs, reverse=True)
    assert sorted((i, b) for i, task in tasks for b, _ in task.blocks) == sorted(
        (i, b) for i, blocks in enumerate(todo) for b in blocks)
    assert all(task.spec_index == i and len(task.blocks) <= 2 for i, task in tasks)
    assert dict(b for _, task in tasks for b in task.blocks)[4] == 30  # the last block holds the rest
    # equal costs keep their order: one scenario's tasks run in block order, the short last one last
    one = dearest_first([[0, 1, 2, 3, 4]], 2, 100, 430, trial_costs=[3.0])
    assert [[b for b, _ in task.blocks] for _, task in one] == [[0, 1], [2, 3], [4]]


def test_scenarios_of_unequal_cost_give_the_same_numbers_in_any_order(default_scenario):
    # a sweep whose scenarios cost 1 to 4 times the smallest: handed out dearest first on 2 workers, in
    # order on 1; the same table
    sc = with_values(default_scenario, {"run.block_size": 200, "endpoints.leak_1m.tests": ["fisher"], "sweep": {
        "zip_groups": [["design.n_control", "design.n_treatment"]],
        "values": {"design.n_control": [10, 40, 20], "design.n_treatment": [10, 40, 20]}}})
    a = run(sc, n_sims=600, seed=11, n_jobs=1, chunk_blocks=1)
    b = run(sc, n_sims=600, seed=11, n_jobs=2, chunk_blocks=2)
    assert a.to_frame().equals(b.to_frame())
    assert a.estimates_frame().equals(b.estimates_frame())


def test_per_trial_table_identical_for_any_jobs_and_chunking(crp_scenario, tmp_path):
    sc = with_values(crp_scenario, {"run.block_size": 100})
    tables = []
    for i, (jobs, chunk) in enumerate([(1, 1), (2, 3), (2, 7), (1, 10)]):
        run(sc, n_sims=1_050, seed=5, n_jobs=jobs, chunk_blocks=chunk, keep_trials=tmp_path / str(i))
        tables.append(read_trials(tmp_path / str(i)))
    first = tables[0]
    assert len(first) == 1_050 * 3 and first.trial.min() == 0 and first.trial.max() == 1_049
    assert list(first.columns[:9]) == ["trial", "endpoint", "test", "pvalue", "estimate", "ci_low", "ci_high", "reject", "covered"]
    for other in tables[1:]:
        pd.testing.assert_frame_equal(first, other)


def test_per_trial_table_of_chosen_columns_is_those_columns_of_the_whole_table(default_scenario):
    """Planning asks for the rejections only: the same rows and values as the whole table's, nested sizes included."""
    sc = model.complete_case(with_values(default_scenario, {"run.block_size": 100}))
    whole, chosen = [], []
    for columns, into in ((TRIAL_COLUMNS, whole), (("endpoint", "test", "reject"), chosen)):
        run_specs([ScenarioSpec("base", sc, {}, nested=((6, 6),))], seed=4, n_sims=250, n_jobs=1,
                  on_trials=lambda i, block, table, into=into: into.append(table), trial_columns=columns)
    for full, part in zip(whole, chosen):
        assert list(part) == ["endpoint", "test", "reject", "n_control", "n_treatment"]
        for name, values in part.items():
            np.testing.assert_array_equal(values, full[name])


@pytest.mark.parametrize("scheme", ["minimisation", "selected"])
def test_covariate_allocation_and_adjusted_tests_identical_for_any_jobs_and_chunking(default_scenario, tmp_path, scheme):
    sc = with_values(default_scenario, {"run.block_size": 100, "allocation.scheme": scheme,
                                        "allocation.selection_odds_ratio": 0.5,
                                        "endpoints.leak_1m.tests": ["fisher", "mantel_haenszel", "logistic"]})
    tables = []
    for i, (jobs, chunk) in enumerate([(1, 1), (2, 2)]):
        run(sc, n_sims=450, seed=5, n_jobs=jobs, chunk_blocks=chunk, keep_trials=tmp_path / str(i))
        tables.append(read_trials(tmp_path / str(i)))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert {"mantel_haenszel", "logistic"} <= set(tables[0].test)


def test_seed_is_drawn_and_recorded_when_not_given(default_scenario):
    sc = with_values(default_scenario, {"run.seed": None})
    res = run(sc, n_sims=300, n_jobs=1)
    assert res.provenance["seed"] == res.seed and not res.provenance["seed_given"]
    again = run(sc, n_sims=300, n_jobs=1, seed=res.seed)
    assert again.to_frame().equals(res.to_frame())


def test_interrupted_run_resumes_from_checkpoint_losing_nothing(default_scenario, tmp_path):
    sc = with_values(default_scenario, {"run.block_size": 200})
    full = run(sc, n_sims=1_000, seed=11, n_jobs=1)
    ck = tmp_path / "ck"
    run(sc, n_sims=1_000, seed=11, n_jobs=1, checkpoint_dir=ck)
    path = next((ck / "checkpoints").glob("*.jsonl"))
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + 5  # header + 5 blocks
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])  # 2 blocks + a torn line
    resumed = run(sc, n_sims=1_000, seed=11, n_jobs=1, checkpoint_dir=ck)
    assert resumed.to_frame().equals(full.to_frame())
    assert resumed.provenance["blocks_resumed"] == 2 and resumed.provenance["blocks_computed"] == 3
    assert len(path.read_text().splitlines()) == 6
    # a folder holding another run is refused, naming what differs, not silently mixed in
    with pytest.raises(ConfigError, match="holds another run: its seed is 11, this run's is 12"):
        run(sc, n_sims=1_000, seed=12, n_jobs=1, checkpoint_dir=ck)
    assert json.loads(lines[0])["header"]["seed"] == 11


def test_results_table_columns_and_exact_method(default_scenario):
    res = run(default_scenario, n_sims=500, seed=1, n_jobs=1)
    f = res.to_frame()
    for col in ["scenario", "endpoint", "test", "n_control", "n_treatment", "alpha", "power", "mc_se", "ci_low",
                "ci_high", "method", "n_sims", "estimand", "estimate_mean", "true_effect", "bias", "bias_se", "rmse",
                "coverage", "coverage_se"]:
        assert col in f.columns
    assert set(f.method) == {"exact", "monte_carlo"}
    assert f.iloc[0].endpoint == "leak_1m" and f.iloc[0].primary
    assert ((f.ci_low <= f.power) & (f.power <= f.ci_high)).all()
    model = build_model(default_scenario)
    exact = f[(f.method == "exact") & (f.endpoint == "leak_1m") & (f.test == "fisher")].power.iloc[0]
    assert exact == pytest.approx(exact_binary_power(model, "leak_1m", "fisher"))
    assert model.binary_law("leak_1m", "control").p_event == pytest.approx(0.1242, abs=5e-4)


def test_geometric_mean_ratio_is_exp_of_the_mean_log_ratio(default_scenario):
    est = run(default_scenario, n_sims=1_000, seed=2, n_jobs=1).estimates_frame().set_index(["endpoint", "arm", "statistic"])
    for endpoint in ("il6_serum_pod1", "los_days"):
        log_ratio = est.loc[(endpoint, "contrast", "log_ratio"), "mean"]
        assert est.loc[(endpoint, "contrast", "geometric_mean_ratio"), "mean"] == pytest.approx(np.exp(log_ratio), rel=1e-15)


@settings(max_examples=8, deadline=None)
@given(st.floats(0.35, 1.0), st.floats(0.05, 0.4))
def test_power_does_not_fall_as_the_marker_effect_grows(default_scenario, weak, extra):
    strong = max(weak - extra, 0.2)
    powers = []
    for gmr in (weak, strong):
        sc = with_values(default_scenario, {"endpoints.cytokines.markers[2].treatment_gmr": gmr})
        f = _rows(run(sc, n_sims=2_000, seed=3, n_jobs=1))
        powers.append(f.loc[("il6_drain_mean_log", "welch_log")])
    se = np.hypot(powers[0].mc_se, powers[1].mc_se)
    assert powers[1].power >= powers[0].power - 3 * se - 1e-9


# ------------------------------------------------- adding a component leaves every other row identical
def _trials(scenario, folder, n_sims=600):
    run(scenario, n_sims=n_sims, seed=17, n_jobs=1, keep_trials=folder)
    return read_trials(folder).set_index(["trial", "endpoint", "test"]).sort_index()


def _same_shared_rows(smaller, larger, new_rows: int):
    """Every row of ``smaller`` is in ``larger`` bit for bit; ``larger`` has ``new_rows`` more."""
    assert len(larger) == len(smaller) + new_rows
    pd.testing.assert_frame_equal(larger.loc[smaller.index], smaller)


def test_adding_an_endpoint_leaves_every_other_row_identical(default_scenario, tmp_path):
    raw = to_raw(default_scenario)
    del raw["endpoints"]["colonoscopy"]  # generated and analysed between the leak and the stay
    without = validate(raw)
    _same_shared_rows(_trials(without, tmp_path / "a"), _trials(default_scenario, tmp_path / "b"), 600 * 3)


def test_adding_a_test_leaves_every_other_row_identical(default_scenario, tmp_path):
    fewer = with_values(default_scenario, {"endpoints.leak_1m.tests": ["fisher", "chi2"],
                                           "endpoints.cytokines.tests": ["mann_whitney"]})
    _same_shared_rows(_trials(fewer, tmp_path / "a"), _trials(default_scenario, tmp_path / "b"), 600 * (1 + 16))


def test_adding_a_later_sampling_day_leaves_every_other_row_identical(default_scenario, tmp_path):
    per_day = with_values(default_scenario, {"endpoints.cytokines.summaries": ["per_day"]})
    raw = to_raw(per_day)
    cyto = raw["endpoints"]["cytokines"]
    cyto["days"] = cyto["days"][:2]
    for marker in cyto["markers"]:
        for key in ("median", "event_gmr", "p_missing"):
            marker[key] = marker[key][:2]
    two_days = validate(raw)
    # the mean over the days is a summary of all of them, so it is left out here: it changes by definition
    _same_shared_rows(_trials(two_days, tmp_path / "a"), _trials(per_day, tmp_path / "b"), 600 * 4 * 2)


def test_trial_writer_writes_whole_files_named_by_block(tmp_path):
    writer = TrialWriter(tmp_path, ["n_control=10,effect=0.5"])
    table = {"trial": np.arange(3), "endpoint": np.array(["e"] * 3, dtype=object), "test": np.array(["t"] * 3, dtype=object),
             "pvalue": np.array([0.1, 0.5, np.nan])}
    writer.write(0, 4, table)
    writer.write(0, 5, None)  # a block without a table (not kept) writes nothing
    files = sorted(p.name for p in (tmp_path / "n_control=10,effect=0.5").iterdir())
    assert files == ["block-000004.parquet"]
    with pytest.raises(DamagedFileError, match="is partial"):  # not marked complete: the run has not finished
        read_trials(tmp_path, "n_control=10,effect=0.5")
    writer.finish(3)
    back = read_trials(tmp_path, "n_control=10,effect=0.5")
    assert back.pvalue.isna().tolist() == [False, False, True]
    with pytest.raises(FileNotFoundError):
        read_trials(tmp_path / "nothing", "x")


def _power_of(n: int, k: int) -> tuple[int, float]:
    """A pure function for map_calls (module level: loky workers import it)."""
    return n, float(np.sum(np.arange(n) ** k))


@pytest.mark.parametrize("n_jobs,backend", [(1, "loky"), (2, "loky"), (2, "threading"), (2, "sequential")])
def test_map_calls_returns_results_in_input_order_on_every_backend(n_jobs, backend):
    from trialsim.engine import map_calls

    jobs = [(n, k) for n in (50, 3, 400, 7, 90) for k in (1, 2)]
    assert map_calls(_power_of, jobs, n_jobs=n_jobs, backend=backend) == [_power_of(*args) for args in jobs]
    assert map_calls(_power_of, [], n_jobs=n_jobs, backend=backend) == []


def test_the_allocator_settings_change_no_number(tmp_path):
    """glibc's thresholds are set in the workers (and returned at each task's end); TRIALSIM_MALLOC=0 leaves them."""
    import os
    import subprocess
    import sys

    code = ("import sys; from trialsim.engine.malloc import tune_malloc; from trialsim.api import run; "
            "from trialsim.config.loader import load_scenario; "
            f"sc = load_scenario({str(CONFIGS / 'exosome_lar_20.toml')!r}); "
            "frame = run(sc, n_sims=1500, seed=11, n_jobs=1).to_frame(); "
            "print(tune_malloc()); frame.to_csv(sys.argv[1], index=False)")
    out = {}
    for switch in ("1", "0"):
        path = tmp_path / f"power-{switch}.csv"
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                              env=os.environ | {"TRIALSIM_MALLOC": switch})
        out[switch] = (done.stdout.strip(), path.read_bytes())
    if sys.platform.startswith("linux"):
        assert out["1"][0] == "True"
    assert out["0"][0] == "False"
    assert out["1"][1] == out["0"][1]


def test_overrides_apply_to_a_scenario_object_as_to_its_file():
    """``run``, ``plan`` and ``compare`` given a scenario object applied no override (the block size asked for
    was silently not used); they now apply them as to a config file."""
    path = CONFIGS / "exosome_lar_20.toml"
    asked = ["run.block_size=250", "design.alpha=0.1"]
    by_object = run(load_scenario(path), overrides=asked, n_sims=600, seed=3, n_jobs=1)
    by_file = run(path, overrides=asked, n_sims=600, seed=3, n_jobs=1)
    assert by_object.provenance["block_size"] == by_file.provenance["block_size"] == 250
    assert repr(by_object.power_rows()) == repr(by_file.power_rows())
    assert {row["alpha"] for row in by_object.power_rows()} == {0.1}
    design, = designs_of([load_scenario(path)], overrides=["design.n_treatment=12"], sweep=False)
    assert design.scenario.design.n_treatment == 12
