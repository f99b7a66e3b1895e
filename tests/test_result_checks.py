"""A result is never mixed from two runs or trusted unchecked: readers of saved folders check what they read.

Every file trialsim writes into a run, report or comparison folder has its SHA-256 in the folder's sealed JSON
(provenance.json, planning.json, compare.json); a changed, missing or unreadable file, a scenario whose config
hash is not the folder's, or a number out of range is refused with one line naming the file (exit status 2).
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import CRP_CONFIG, DEFAULT_CONFIG
from trialsim import api
from trialsim.cli import main
from trialsim.files import DamagedFileError, Ledger, read_sealed, sealed_json, sha256_file
from trialsim.planning.compare import load_comparison
from trialsim.planning.curves import load_sweep_grid
from trialsim.planning.plan import load_planning, plan
from trialsim.replay import replay
from trialsim.results import check_table, read_trials


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("checks") / "D3"
    api.run(DEFAULT_CONFIG, n_sims=2000, seed=3, n_jobs=1, out=out)
    return out


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("checks") / "R"
    plan(DEFAULT_CONFIG, parts=("run",), n_sims=2000, seed=3, n_jobs=1).save(out)
    return out


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def _set_cells(path: Path, column: str, value: str, *, where: tuple[str, str] | None = None) -> None:
    rows = list(csv.reader(path.open(newline="")))
    i = rows[0].index(column)
    for row in rows[1:]:
        if where is None or row[rows[0].index(where[0])] == where[1]:
            row[i] = value
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def _reseal(path: Path, change) -> None:
    """Change a sealed JSON file and seal it again (what only a deliberate forgery would do)."""
    data = read_sealed(path)
    data.pop("sha256")
    change(data)
    path.write_text(sealed_json(data), encoding="utf-8")


def _refused(argv, capsys, *names: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("trialsim: error: ") and "Traceback" not in err
    for name in names:
        assert name in err
    return err


# ------------------------------------------------------------------------------ 1: edited results
def test_an_edited_power_of_a_run_folder_is_refused_not_printed(run_dir, tmp_path, capsys):
    d = _copy(run_dir, tmp_path)
    _set_cells(d / "power.csv", "power", "-0.25")
    err = _refused(["report", "--from", str(d), "--out", str(tmp_path / "o"), "--formats", "md"], capsys,
                   f"{d}/power.csv", "provenance.json")
    assert "changed after trialsim wrote it" in err and not (tmp_path / "o").exists()


def test_an_edited_exact_power_of_a_report_folder_is_refused(report_dir, tmp_path, capsys):
    d = _copy(report_dir, tmp_path)
    _set_cells(d / "power.csv", "power", "1.5", where=("method", "exact"))
    _refused(["report", "--from", str(d), "--out", str(tmp_path / "o"), "--formats", "md"], capsys,
             f"{d}/power.csv", "planning.json")


def test_an_edited_comparison_is_refused(tmp_path):
    frame = pd.DataFrame({"design": ["a"], "power": [0.5], "n_control": [10]})
    ledger = Ledger(tmp_path)  # as Comparison.save records it (whose figure needs every column)
    ledger.write(tmp_path / "compare.csv", lambda p: frame.to_csv(p, index=False))
    (tmp_path / "compare.json").write_text(sealed_json({"files": ledger.files}))
    with pytest.raises(Exception, match="not a comparison written by this version"):
        load_comparison(tmp_path)  # checked, then read: only the columns are missing here
    _set_cells(tmp_path / "compare.csv", "power", "7.5")
    with pytest.raises(DamagedFileError, match=r"compare\.csv was changed after trialsim wrote it"):
        load_comparison(tmp_path)


def test_values_out_of_range_are_refused_even_with_good_checksums(tmp_path):
    with pytest.raises(DamagedFileError, match=r"P/power\.csv: column power holds -0\.25 \(row 2\)"):
        check_table(pd.DataFrame({"power": [-0.25, 0.5]}), "P/power.csv")
    with pytest.raises(DamagedFileError, match="column ci_high holds 1.5"):
        check_table(pd.DataFrame({"power": [0.9], "ci_high": [1.5]}), "x.csv")
    assert len(check_table(pd.DataFrame({"gmr": [1.2], "ci_high": [1.5]}), "x.csv")) == 1  # a ratio's interval
    with pytest.raises(DamagedFileError, match="column n_sims holds -1 .* not a count"):
        check_table(pd.DataFrame({"n_sims": [-1]}), "x.csv")
    with pytest.raises(DamagedFileError, match="column power holds 'abc'"):
        check_table(pd.DataFrame({"power": ["abc"]}), "x.csv")
    assert len(check_table(pd.DataFrame({"power": [0.0, 1.0, None], "n_valid": [0, 3, None]}), "x.csv")) == 3


# ------------------------------------------------------------------------------ 2: two configs mixed
def test_a_changed_scenario_file_is_refused(run_dir, tmp_path, capsys):
    d = _copy(run_dir, tmp_path)
    toml = d / "scenarios" / "base.toml"
    toml.write_text(toml.read_text().replace("n_control = 10", "n_control = 30").replace("n_treatment = 10", "n_treatment = 30"))
    _refused(["report", "--from", str(d), "--out", str(tmp_path / "o")], capsys, f"{d}/scenarios/base.toml")


def test_a_scenario_of_another_config_is_refused_by_its_config_hash(run_dir, tmp_path):
    d = _copy(run_dir, tmp_path)
    toml = d / "scenarios" / "base.toml"
    toml.write_text(toml.read_text().replace("n_control = 10", "n_control = 30"))
    _reseal(d / "provenance.json", lambda data: data["files"].__setitem__("scenarios/base.toml", sha256_file(toml)))
    with pytest.raises(DamagedFileError, match=r"base\.toml is not the config of this run \(its config hash"):
        load_planning(d, complete=False)


def test_a_report_folder_whose_scenario_is_another_config_is_refused(report_dir, tmp_path):
    d = _copy(report_dir, tmp_path)
    _reseal(d / "planning.json", lambda data: data["provenance"].__setitem__("config_hash", "0" * 16))
    with pytest.raises(DamagedFileError, match=r"scenario\.toml is not the config of this report"):
        load_planning(d)


# ------------------------------------------------------------------------------ 3: damaged folders
@pytest.mark.parametrize("damage, why", [
    (lambda p: p.write_bytes(p.read_bytes()[:100]), "is damaged"),
    (lambda p: p.write_text("{}"), "carries no checksum"),
    (lambda p: p.write_bytes(p.read_bytes() + b"\xff"), "is damaged"),
])
def test_a_damaged_planning_json_is_refused(report_dir, tmp_path, capsys, damage, why):
    d = _copy(report_dir, tmp_path)
    damage(d / "planning.json")
    err = _refused(["report", "--from", str(d), "--out", str(tmp_path / "o")], capsys, f"{d}/planning.json")
    assert why in err
    _refused(["curves", "--from", str(d), "--out", str(tmp_path / "c")], capsys, f"{d}/planning.json")


@pytest.mark.parametrize("damage, why", [
    (lambda p: p.write_bytes(p.read_bytes() + b"\xff"), "changed after trialsim wrote it"),
    (lambda p: _set_cells(p, "power", "abc"), "changed after trialsim wrote it"),
    (lambda p: p.unlink(), "is missing (planning.json lists it)"),
])
def test_a_damaged_or_missing_power_table_is_refused(report_dir, tmp_path, capsys, damage, why):
    d = _copy(report_dir, tmp_path)
    damage(d / "power.csv")
    assert why in _refused(["report", "--from", str(d), "--out", str(tmp_path / "o")], capsys, f"{d}/power.csv")


def test_a_folder_of_an_earlier_trialsim_without_checksums_is_refused(run_dir, tmp_path):
    d = _copy(run_dir, tmp_path)
    prov = read_sealed(d / "provenance.json")
    del prov["sha256"], prov["files"]
    (d / "provenance.json").write_text(json.dumps(prov))
    with pytest.raises(DamagedFileError, match="carries no checksum .* run the command again"):
        load_planning(d, complete=False)


def test_an_untouched_folder_reads_back(run_dir, report_dir):
    assert not load_planning(run_dir, complete=False).frame("power").empty
    assert not load_planning(report_dir).frame("power").empty
    assert load_sweep_grid(run_dir).empty  # one scenario: no grid


# ------------------------------------------------------------------------------ 4: replay
@pytest.mark.parametrize("damage, why", [
    (lambda p: p.write_bytes(p.read_bytes()[:100]), "is damaged"),
    (lambda p: p.write_bytes(p.read_bytes() + b"\xff"), "is damaged"),
    (lambda p: p.write_text(p.read_text().replace('"block_size": 1000', '"block_size": 0')), "was changed"),
    (lambda p: p.write_text(p.read_text().replace('"seed": 3', '"seed": 4')), "was changed"),
])
def test_replay_refuses_a_damaged_provenance(run_dir, tmp_path, capsys, damage, why):
    d = _copy(run_dir, tmp_path)
    damage(d / "provenance.json")
    assert why in _refused(["replay", str(d), "--trial", "5"], capsys, f"{d}/provenance.json")


def test_replay_refuses_a_provenance_that_disagrees_with_the_manifest(run_dir, tmp_path):
    d = _copy(run_dir, tmp_path)
    _reseal(d / "provenance.json", lambda data: data.__setitem__("seed", 4))
    with pytest.raises(DamagedFileError, match=r"says seed 4 but .*manifest\.json says 3: the folder mixes two runs"):
        replay(d, 5)
    _reseal(d / "provenance.json", lambda data: data.update(seed=3, block_size=0))
    with pytest.raises(DamagedFileError, match="block_size is 0, not a whole number >= 1"):
        replay(d, 5)


# ------------------------------------------------------------------------------ 5: partial per-trial tables
def test_a_partial_per_trial_table_is_refused(tmp_path):
    out = tmp_path / "KT"
    api.run(CRP_CONFIG, n_sims=300, seed=5, n_jobs=1, out=out, keep_trials=out / "trials")
    assert read_trials(out / "trials")["trial"].nunique() == 300
    blocks = sorted((out / "trials").rglob("block-*.parquet"))
    blocks[-1].unlink()  # as a kill leaves it, before the run's end
    with pytest.raises(DamagedFileError, match="trials/base holds 0 of the run's 300 trials: run it again with --keep-trials"):
        read_trials(out / "trials")
    (out / "trials" / "complete.json").unlink()  # a killed run never marks its table complete
    with pytest.raises(DamagedFileError, match="is partial: the run writing it was interrupted"):
        read_trials(out / "trials")
    api.run(CRP_CONFIG, n_sims=300, seed=5, n_jobs=1, out=out)  # finished without keeping its trials: still partial
    with pytest.raises(DamagedFileError, match="is partial"):
        read_trials(out / "trials")


def test_a_damaged_or_lost_per_trial_block_is_simulated_again_on_resume(tmp_path):
    """A resumed --keep-trials run checks each checkpointed block's Parquet file: a lost or truncated one is written
    again (it used to stay lost, and read_trials asked for a rerun that changed nothing), with the same bytes."""
    out = tmp_path / "KT"
    api.run(str(CRP_CONFIG), overrides=["run.block_size=100"], n_sims=300, seed=5, n_jobs=1, out=out,
            keep_trials=out / "trials")
    blocks = sorted((out / "trials").rglob("block-*.parquet"))
    assert len(blocks) == 3
    before = [b.read_bytes() for b in blocks]
    blocks[0].unlink()
    blocks[1].write_bytes(before[1][:500])
    with pytest.warns(RuntimeWarning, match=r"per-trial tables of 2 checkpointed block\(s\) are missing or damaged"):
        resumed = api.run(str(CRP_CONFIG), overrides=["run.block_size=100"], n_sims=300, seed=5, n_jobs=1, out=out,
                          keep_trials=out / "trials")
    assert [b.read_bytes() for b in blocks] == before
    assert resumed.provenance["blocks_resumed"] == 1 and read_trials(out / "trials")["trial"].nunique() == 300
    blocks[2].write_bytes(before[2][:500])
    with pytest.raises(DamagedFileError, match=r"block-000002\.parquet is damaged"):  # not pyarrow's ArrowInvalid
        read_trials(out / "trials")


def test_result_files_of_another_config_copied_into_a_run_folder_are_refused(run_dir, tmp_path):
    """The folder's manifest records each scenario's config: results of another config copied over the folder's own
    (the whole set, their checksums matching each other) are refused as a mix of two runs (report --from used to
    report them as the folder's)."""
    d = _copy(run_dir, tmp_path)
    other = tmp_path / "other"
    api.run(DEFAULT_CONFIG, overrides=["endpoints.leak_1m.effect=0.6"], n_sims=2000, seed=3, n_jobs=1, out=other)
    shutil.rmtree(d / "scenarios")
    for name in ("power.csv", "power.json", "estimates.csv", "decisions.csv", "provenance.json"):
        shutil.copy(other / name, d / name)
    shutil.copytree(other / "scenarios", d / "scenarios")
    with pytest.raises(DamagedFileError, match=r"is not the config .*manifest\.json records for scenario 'base'.*mixes two runs"):
        load_planning(d, complete=False)


# ------------------------------------------------------------------------------ 6: flags a folder ignores
@pytest.mark.parametrize("flags", [["--power", "0.5"], ["--search-sims", "100"], ["--curve-sims", "100"],
                                   ["--search", "all"], ["--seed", "4"], ["--sims", "100"]])
def test_report_from_a_report_folder_refuses_settings_it_would_ignore(report_dir, tmp_path, capsys, flags):
    _refused(["report", "--from", str(report_dir), "--out", str(tmp_path / "o"), *flags], capsys, flags[0],
             "a results folder is reported with its own settings")


@pytest.mark.parametrize("flags", [["--seed", "4"], ["--sims", "100"]])
def test_report_and_curves_from_a_run_folder_refuse_its_seed_and_trials(run_dir, tmp_path, capsys, flags):
    _refused(["report", "--from", str(run_dir), "--out", str(tmp_path / "o"), *flags], capsys, flags[0])
    _refused(["curves", "--from", str(run_dir), "--out", str(tmp_path / "c"), *flags], capsys, flags[0])
