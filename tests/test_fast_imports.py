"""Start-up costs: what the simulation and the command line import, and that the lighter paths give the same bits."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from trialsim import cli
from trialsim.analysis import analytic, binary
from trialsim.planning import search
from trialsim.results import clopper_pearson

ROOT = Path(__file__).resolve().parents[1]


def _loaded(statement: str, modules: tuple[str, ...]) -> dict[str, bool]:
    code = f"import sys; {statement}; print(' '.join(str(m in sys.modules) for m in {modules!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return dict(zip(modules, (w == "True" for w in done.stdout.split())))


def test_workers_import_neither_scipy_stats_nor_pandas():
    """A worker unpickles the engine's task function: that import alone must stay light (scipy.stats ~0.5 s,
    pandas ~0.4 s of CPU per worker process)."""
    assert _loaded("import trialsim.engine.runner", ("scipy.stats", "pandas", "trialsim.cli")) == {
        "scipy.stats": False, "pandas": False, "trialsim.cli": False}


def test_command_line_does_not_import_scipy_stats():
    assert _loaded("import trialsim.cli", ("scipy.stats",)) == {"scipy.stats": False}


def test_special_function_paths_equal_scipy_stats_bit_for_bit():
    """The replacements of scipy.stats calls give the very same floats (so no printed figure moves)."""
    rng = np.random.default_rng(7)
    q = rng.uniform(1e-9, 1 - 1e-9, 500)
    df = rng.uniform(1, 400, 500)
    x = rng.normal(0, 4, 500)
    np.testing.assert_array_equal(search.special.ndtri(q), stats.norm.ppf(q))
    np.testing.assert_array_equal(search.special.ndtr(x), stats.norm.cdf(x))
    np.testing.assert_array_equal(search._norm_pdf(x), stats.norm.pdf(x))  # noqa: SLF001
    np.testing.assert_array_equal(-analytic.special.stdtrit(df, q), stats.t.isf(q, df))
    for n, p in [(1, 0.5), (20, 0.124), (500, 0.05), (1500, 0.5), (7, 0.0), (7, 1.0)]:
        np.testing.assert_array_equal(binary._binom_pmf(n, p), stats.binom.pmf(np.arange(n + 1), n, p))  # noqa: SLF001
    a = (1 - 0.95) / 2  # as clopper_pearson computes it (0.025000000000000022)
    for k, n in [(0, 10), (1, 10), (37, 2000), (1999, 2000), (2000, 2000)]:
        low = 0.0 if k == 0 else stats.beta.ppf(a, k, n - k + 1)
        high = 1.0 if k == n else stats.beta.ppf(1 - a, k + 1, n - k)
        assert clopper_pearson(k, n) == (low, high)


@pytest.mark.parametrize("alpha, power", [(0.05, 0.8), (0.01, 0.9)])
def test_closed_forms_unchanged(alpha, power):
    """The closed forms on the special-function path against the textbook formulas on scipy.stats."""
    z = stats.norm.isf(alpha / 2) + stats.norm.ppf(power)
    p1, p2 = 0.124, 0.062
    pbar = (p1 + p2) / 2
    n = (stats.norm.isf(alpha / 2) * np.sqrt(2 * pbar * (1 - pbar)) + stats.norm.ppf(power) * np.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / (p1 - p2) ** 2
    assert z > 0
    assert analytic.two_proportions_sample_size_normal(p1, p2, power=power, alpha=alpha) == pytest.approx(np.ceil(n), abs=1)


def test_loading_every_registered_plug_in_keeps_workers_light():
    # a worker's decide() loads every decision rule (and the tests) through the registries' entry points
    statement = ("from trialsim.registry import DECISION_RULES, TESTS, ALLOCATION_SCHEMES, ENDPOINT_FAMILIES; "
                 "[r.names() for r in (DECISION_RULES, TESTS, ALLOCATION_SCHEMES, ENDPOINT_FAMILIES)]")
    assert _loaded(statement, ("scipy.stats", "pandas")) == {"scipy.stats": False, "pandas": False}


def test_each_command_imports_only_its_own_module():
    modules = {name: importlib.import_module(f"trialsim.cli.{name}") for name in set(cli.SUBCOMMANDS.values())}
    assert cli.SUBCOMMANDS == {c: name for name, m in modules.items() for c in m.COMMANDS}
    statement = "from trialsim.cli import build_parser, commands; build_parser(['run', 'x.toml']); commands(['run'])"
    assert _loaded(statement, ("trialsim.cli.planning", "trialsim.planning", "trialsim.cli.run")) == {
        "trialsim.cli.planning": False, "trialsim.planning": False, "trialsim.cli.run": True}
    # help, or a mistyped command, still sees every subcommand
    assert set(cli.commands([])) == set(cli.SUBCOMMANDS) == set(cli.commands(["rnu"]))


def test_a_run_on_one_core_imports_neither_pandas_nor_joblib(tmp_path):
    """`trialsim run` writes its tables and prints its summary without pandas (0.4 s of its start-up) and, on one
    core, never starts joblib; the default design needs neither scipy.optimize nor scipy.integrate (0.3 s)."""
    argv = ["trialsim", "run", str(ROOT / "configs" / "exosome_lar_20.toml"), "--sims", "300", "--seed", "1",
            "--jobs", "1", "--quiet", "--out", str(tmp_path / "out")]
    code = (f"import sys, runpy; sys.argv = {argv!r}\n"
            "try:\n    runpy.run_module('trialsim', run_name='__main__')\nexcept SystemExit as e:\n    status = e.code\n"
            "print('STATUS', status, *(m in sys.modules for m in ('pandas', 'pyarrow', 'joblib', 'scipy.stats', "
            "'scipy.optimize', 'scipy.integrate')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.splitlines()[-1] == "STATUS 0 False False False False False False"
    assert (tmp_path / "out" / "power.csv").is_file() and "PRIMARY ENDPOINT" in done.stdout
