"""The engine: exact agreement with enumeration, type I error under the null, reproducibility, resume."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trialsim.api import run
from trialsim.config.loader import with_values
from trialsim.exact import binary_law, exact_binary_power

NULL = {
    "leak.effect": 1.0,
    "los.treatment_ratio": 1.0,
    **{f"cytokines.markers[{i}].treatment_gmr": 1.0 for i in range(4)},
}


def _rows(result, method="monte_carlo"):
    f = result.to_frame()
    return f[f.method == method].set_index(["endpoint", "test"])


@pytest.mark.slow
@pytest.mark.parametrize("values", [
    {},  # the registered design: tiny power
    {"leak.rate_control": 0.3, "leak.effect": 0.25, "design.n_control": 25, "design.n_treatment": 20},
])
def test_monte_carlo_binary_power_agrees_with_exact(default_scenario, values):
    sc = with_values(default_scenario, values)
    res = run(sc, n_sims=60_000, seed=123, n_jobs=1)
    mc, ex = _rows(res), _rows(res, "exact")
    assert len(ex) == 5  # leak: fisher, boschloo, chi2; colonoscopy abnormal and worse: fisher
    for idx, row in ex.iterrows():
        m = mc.loc[idx]
        tol = 4 * max(m.mc_se, np.sqrt(row.power * (1 - row.power) / m.n_sims), 1 / m.n_sims)
        assert abs(m.power - row.power) <= tol, (idx, m.power, row.power, tol)


@pytest.mark.slow
def test_type_one_error_under_the_null_for_every_test(default_scenario):
    sc = with_values(default_scenario, NULL)
    res = run(sc, n_sims=40_000, seed=99, n_jobs=1)
    mc, ex = _rows(res), _rows(res, "exact")
    alpha = sc.design.alpha
    for (endpoint, test), row in mc.iterrows():
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


def test_same_seed_same_numbers_for_any_jobs_and_chunking(default_scenario):
    sc = with_values(default_scenario, {"run.block_size": 250})
    a = run(sc, n_sims=2_000, seed=5, n_jobs=1, chunk_blocks=1)
    b = run(sc, n_sims=2_000, seed=5, n_jobs=2, chunk_blocks=3)
    assert a.to_frame().equals(b.to_frame())
    assert a.estimates_frame().equals(b.estimates_frame())
    c = run(sc, n_sims=2_000, seed=6, n_jobs=1)
    assert not a.to_frame().equals(c.to_frame())


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
    path = next(ck.glob("*.jsonl"))
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + 5  # header + 5 blocks
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])  # 2 blocks + a torn line
    resumed = run(sc, n_sims=1_000, seed=11, n_jobs=1, checkpoint_dir=ck)
    assert resumed.to_frame().equals(full.to_frame())
    assert len(path.read_text().splitlines()) == 6
    # a checkpoint of another run is refused, not silently mixed in
    from trialsim.config.loader import ConfigError

    with pytest.raises(ConfigError, match="belongs to another run"):
        run(sc, n_sims=1_000, seed=12, n_jobs=1, checkpoint_dir=ck)
    assert json.loads(lines[0])["seed"] == 11


def test_results_table_columns_and_exact_method(default_scenario):
    res = run(default_scenario, n_sims=500, seed=1, n_jobs=1)
    f = res.to_frame()
    for col in ["scenario", "endpoint", "test", "n_control", "n_treatment", "alpha", "power", "mc_se", "ci_low",
                "ci_high", "method", "n_sims"]:
        assert col in f.columns
    assert set(f.method) == {"exact", "monte_carlo"}
    assert f.iloc[0].endpoint == "leak_1m" and f.iloc[0].primary
    assert ((f.ci_low <= f.power) & (f.power <= f.ci_high)).all()
    exact = f[(f.method == "exact") & (f.endpoint == "leak_1m") & (f.test == "fisher")].power.iloc[0]
    assert exact == pytest.approx(exact_binary_power(default_scenario, "leak_1m", "fisher"))
    assert binary_law(default_scenario, "leak_1m", "control").p_event == pytest.approx(0.1242, abs=5e-4)


@settings(max_examples=8, deadline=None)
@given(st.floats(0.35, 1.0), st.floats(0.05, 0.4))
def test_power_does_not_fall_as_the_cytokine_effect_grows(default_scenario, weak, extra):
    strong = max(weak - extra, 0.2)
    powers = []
    for gmr in (weak, strong):
        sc = with_values(default_scenario, {"cytokines.markers[2].treatment_gmr": gmr})
        f = _rows(run(sc, n_sims=2_000, seed=3, n_jobs=1))
        powers.append(f.loc[("il6_drain_mean_log", "welch_log")])
    se = np.hypot(powers[0].mc_se, powers[1].mc_se)
    assert powers[1].power >= powers[0].power - 3 * se - 1e-9


def test_cli_run_leads_with_the_primary_endpoint_and_warns_plainly(tmp_path):
    import subprocess
    import sys

    from tests.conftest import DEFAULT_CONFIG, ROOT

    proc = subprocess.run([sys.executable, "-m", "trialsim", "run", str(DEFAULT_CONFIG), "--sims", "2000", "--jobs", "1",
                           "--quiet", "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.index("PRIMARY ENDPOINT") < out.index("SECONDARY ENDPOINTS")
    assert "far below the usual 80%" in out and "pilot/feasibility" in out
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["seed"] == 20240831 and prov["n_sims"] == 2000 and prov["config_hash"]
    assert (tmp_path / "power.csv").read_text().startswith("scenario,endpoint,test,n_control,n_treatment,alpha,power,mc_se")
    # the same command again resumes from the checkpoint and gives the same table
    first = (tmp_path / "power.csv").read_text()
    (tmp_path / "power.csv").unlink()
    again = subprocess.run([sys.executable, "-m", "trialsim", "run", str(DEFAULT_CONFIG), "--sims", "2000", "--jobs", "1",
                            "--quiet", "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "power.csv").read_text() == first
