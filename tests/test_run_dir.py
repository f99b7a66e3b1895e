"""The run folder as a small database: one run at a time, its own run only, checked checkpoints,
atomic rewrites, unseeded runs that resume, and sweep ids that never collide."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from trialsim.api import run
from trialsim.config.loader import ConfigError, scenario_to_toml, with_values
from trialsim.engine import RunDir, RunDirError, checksum, rundir
from trialsim.results import RunResult
from trialsim.scenarios import expand, safe_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOLD_LOCK = """
import sys
from trialsim.engine import RunDir
rd = RunDir(sys.argv[1]); rd.open()
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes our stdin (or kills us)
"""


@pytest.fixture
def small(crp_scenario):
    return with_values(crp_scenario, {"run.block_size": 100})


def _holder(folder):
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_run_into_a_folder_in_use_is_refused(small, tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(RunDirError, match=rf"another trialsim run \(process {holder.pid} .*is writing into"):
            run(small, n_sims=300, seed=1, n_jobs=1, out=tmp_path)
        assert not (tmp_path / "power.csv").exists() and not (tmp_path / "manifest.json").exists()
        cli = subprocess.run([sys.executable, "-m", "trialsim", "run", os.path.join(ROOT, "configs", "crp_randomised_30.toml"),
                              "--sims", "100", "--quiet", "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
        assert cli.returncode == 2 and "Traceback" not in cli.stderr
        assert cli.stderr.startswith("trialsim: error: another trialsim run (process"), cli.stderr
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    run(small, n_sims=300, seed=1, n_jobs=1, out=tmp_path)  # the first one finished: the folder is free
    assert (tmp_path / "power.csv").exists()


def test_the_lock_of_a_killed_run_is_taken_over(small, tmp_path):
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    assert (tmp_path / rundir.LOCK).exists()  # left behind, but the OS released it with the process
    res = run(small, n_sims=300, seed=1, n_jobs=1, out=tmp_path)
    assert res.provenance["sessions"] == 1


def test_a_folder_holding_another_run_is_refused_naming_what_differs(small, tmp_path):
    run(small, n_sims=300, seed=1, n_jobs=1, out=tmp_path)
    with pytest.raises(RunDirError, match=r"holds another run: its n_sims \(trials per scenario\) is 300, this run's is 400"):
        run(small, n_sims=400, seed=1, n_jobs=1, out=tmp_path)
    with pytest.raises(RunDirError, match=r"its scenario 'base' has another config \(config hash .*; differs in "
                                          r"design.n_control is \d+ there, 16 here\)"):
        run(with_values(small, {"design.n_control": 16}), n_sims=300, seed=1, n_jobs=1, out=tmp_path)

    with pytest.raises(RunDirError, match=r"its block_size is 100, this run's is 50"):
        run(with_values(small, {"run.block_size": 50}), n_sims=300, seed=1, n_jobs=1, out=tmp_path)
    # run settings that change no number are not part of the run's identity
    again = run(with_values(small, {"run.chunk_blocks": 1, "run.max_memory_mb": 500}), n_sims=300, seed=1, n_jobs=2,
                out=tmp_path)
    assert again.provenance["sessions"] == 2 and again.provenance["blocks_computed"] == 0


def test_a_flow_run_and_a_plain_run_are_told_apart_by_the_section_that_differs(default_scenario, tmp_path):
    run(with_values(default_scenario, {"flow": {}}), n_sims=200, seed=1, n_jobs=1, out=tmp_path)
    with pytest.raises(RunDirError, match=r"differs in \[flow\] is set there, not here"):
        run(default_scenario, n_sims=200, seed=1, n_jobs=1, out=tmp_path)
    # a key set on one side within a section both have is named itself; an item of an array of tables by its index
    with pytest.raises(RunDirError, match=r"differs in flow.deadline_days is not set there, 122.0 here\)"):
        run(with_values(default_scenario, {"flow": {"deadline_days": 122}}), n_sims=200, seed=1, n_jobs=1, out=tmp_path)
    with pytest.raises(RunDirError, match=r"endpoints.cytokines.markers\[0\].median is \[60.0, 25.0, 12.0\] there, "
                                          r"\[61.0, 25.0, 12.0\] here"):
        run(with_values(default_scenario, {"flow": {}, "endpoints.cytokines.markers[0].median": [61.0, 25.0, 12.0]}),
            n_sims=200, seed=1, n_jobs=1, out=tmp_path)


def test_earlier_files_without_a_manifest_and_a_damaged_manifest_are_refused(small, tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "power.csv").write_text("scenario,power\nbase,0.5\n")
    with pytest.raises(RunDirError, match=r"holds files of an earlier run \(power.csv\) but no manifest.json"):
        run(small, n_sims=100, seed=1, n_jobs=1, out=tmp_path / "old")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(RunDirError, match="manifest.json' is damaged"):
        run(small, n_sims=100, seed=1, n_jobs=1, out=tmp_path / "bad")
    for field, value, says in [("block_size", None, "block_size: Input should be a valid integer"),
                               ("seed", -3, "seed: Input should be greater than or equal to 0"),
                               ("scenarios", 5, "scenarios: Input should be a valid list"),
                               ("scenarios", [{"x": 1}], "scenarios.0.id: Field required"),
                               ("sessions", 5, "sessions: Input should be a valid list")]:
        folder = tmp_path / f"typed-{field}-{says[-8:]}"
        run(small, n_sims=100, seed=1, n_jobs=1, out=folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest[field] = value  # a field of the wrong type: named, never used
        (folder / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(RunDirError, match=f"manifest.json' is damaged \\({re.escape(says)}"):
            run(small, n_sims=100, seed=1, n_jobs=1, out=folder)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file, not a folder"):
        run(small, n_sims=100, seed=1, n_jobs=1, out=tmp_path / "file")
    with pytest.raises(RunDirError, match="a part of its path is a file"):
        run(small, n_sims=100, seed=1, n_jobs=1, out=tmp_path / "file" / "under")


def _lines(folder):
    path = next((folder / "checkpoints").glob("*.jsonl"))
    return path, path.read_bytes().splitlines(keepends=True)


def _forge(line: bytes, change, header_line: bytes) -> bytes:
    """A line whose content is changed and whose checksum is recomputed to match (a deliberate forgery: a line's
    checksum covers its content and its checkpoint's header)."""
    data = json.loads(line)
    change(data["block"])
    data["sha"] = checksum({"run": checksum(json.loads(header_line)["header"]), "block": data["block"]})
    return json.dumps(data).encode() + b"\n"


def test_a_tampered_checkpoint_line_is_simulated_again_never_trusted(small, tmp_path):
    full = run(small, n_sims=500, seed=3, n_jobs=1)
    run(small, n_sims=500, seed=3, n_jobs=1, checkpoint_dir=tmp_path)
    path, lines = _lines(tmp_path)
    assert len(lines) == 6
    key = next(iter(json.loads(lines[1])["block"]["tests"]))
    edited = lines[1].replace(b'"rejects":', b'"rejects":9', 1)  # 17 -> 917: the checksum no longer matches

    def too_many(block):
        block["tests"][key]["rejects"] = block["tests"][key]["valid"] + 1

    def out_of_range(block):
        block["block"] = 7

    def missing_key(block):
        del block["tests"][key]["coverable"]

    forged = [_forge(lines[i], f, lines[0]) for i, f in ((2, too_many), (3, out_of_range), (4, missing_key))]
    path.write_bytes(lines[0] + edited + b"".join(forged) + lines[5] + b"\xff\xfenot json\n")
    with pytest.warns(RuntimeWarning, match=r"5 damaged line\(s\) not trusted"):
        resumed = run(small, n_sims=500, seed=3, n_jobs=1, checkpoint_dir=tmp_path)
    assert resumed.to_frame().equals(full.to_frame())
    assert resumed.provenance["blocks_resumed"] == 1 and resumed.provenance["blocks_computed"] == 4
    assert resumed.provenance["damaged_checkpoint_lines"] == 5
    _, lines = _lines(tmp_path)
    assert len(lines) == 6  # rewritten: the header and five good lines


def test_lines_of_another_model_or_run_or_in_conflict_are_simulated_again(small, tmp_path):
    """A forged line with the scenario's tests but another model's estimates or rules' outcomes (it used to fail the
    fold with a traceback on every resume), a line copied from another run's checkpoint (another seed: it used to
    be folded in silently), two different lines of one block, and a line nested too deep to parse: none is trusted,
    each block runs again and the results are the uninterrupted run's. Blank lines are no damage."""
    full = run(small, n_sims=500, seed=3, n_jobs=1)
    run(small, n_sims=500, seed=3, n_jobs=1, checkpoint_dir=tmp_path)
    other = tmp_path / "other"
    run(small, n_sims=500, seed=8, n_jobs=1, checkpoint_dir=other)
    path, lines = _lines(tmp_path)
    _, foreign = _lines(other)

    def renamed_estimates(block):
        block["est_count"] = {k + "x": v for k, v in block["est_count"].items()}
        block["est_sum"] = {k + "x": v for k, v in block["est_sum"].items()}
        block["est_sumsq"] = {k + "x": v for k, v in block["est_sumsq"].items()}

    def no_outcomes(block):
        block["outcomes"] = {}

    block_of = {json.loads(line)["block"]["block"]: line for line in lines[1:]}
    conflict = _forge(block_of[4], lambda b: b["tests"][next(iter(b["tests"]))].update(rejects=0), lines[0])
    path.write_bytes(lines[0] + _forge(block_of[0], renamed_estimates, lines[0]) + _forge(block_of[1], no_outcomes, lines[0])
                     + next(line for line in foreign[1:] if json.loads(line)["block"]["block"] == 2) + b"\n\n"
                     + block_of[3] + block_of[4] + conflict + b'{"sha":"x","block":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    with pytest.warns(RuntimeWarning, match=r"5 damaged line\(s\) not trusted"):
        resumed = run(small, n_sims=500, seed=3, n_jobs=1, checkpoint_dir=tmp_path)
    assert resumed.to_frame().equals(full.to_frame())
    assert resumed.provenance["blocks_resumed"] == 1 and resumed.provenance["blocks_computed"] == 4  # block 3 kept
    path, lines = _lines(tmp_path)  # a header nested too deep to parse: the checkpoint is foreign, not a traceback
    path.write_bytes(b'{"header":' + b"[" * 5000 + b"]" * 5000 + b',"sha":"0"}\n' + b"".join(lines[1:]))
    with pytest.warns(RuntimeWarning, match="damaged or foreign header"):
        again = run(small, n_sims=500, seed=3, n_jobs=1, checkpoint_dir=tmp_path)
    assert again.to_frame().equals(full.to_frame()) and again.provenance["blocks_computed"] == 5


def test_a_kill_during_the_checkpoint_rewrite_loses_nothing(small, tmp_path, monkeypatch):
    full = run(small, n_sims=500, seed=4, n_jobs=1)
    run(small, n_sims=500, seed=4, n_jobs=1, checkpoint_dir=tmp_path)
    path, lines = _lines(tmp_path)
    path.write_bytes(b"".join(lines) + lines[2][:40])  # a torn last line: the file is rewritten on resume
    before = path.read_bytes()
    replace = os.replace

    def killed(src, dst):
        if str(dst) == str(path):
            raise KeyboardInterrupt  # as if killed between writing the new file and renaming it
        replace(src, dst)

    monkeypatch.setattr(rundir.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        run(small, n_sims=500, seed=4, n_jobs=1, checkpoint_dir=tmp_path)
    monkeypatch.undo()
    assert path.read_bytes() == before  # the old file is whole
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left
    resumed = run(small, n_sims=500, seed=4, n_jobs=1, checkpoint_dir=tmp_path)
    assert resumed.to_frame().equals(full.to_frame())
    assert resumed.provenance["blocks_resumed"] == 5 and resumed.provenance["blocks_computed"] == 0


UNSEEDED = """
import sys
from trialsim.api import run
run(sys.argv[1], n_sims=3_000, n_jobs=1, out=sys.argv[2])
"""


def test_an_unseeded_run_killed_and_resumed_equals_a_run_with_its_recorded_seed(default_scenario, tmp_path):
    sc = with_values(default_scenario, {"run.seed": None, "run.block_size": 10})
    config = tmp_path / "unseeded.toml"
    config.write_text(scenario_to_toml(sc))
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", UNSEEDED, str(config), str(out)], cwd=ROOT)
    checkpoint = out / "checkpoints" / "base.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoint.exists() and checkpoint.read_bytes().count(b"\n") > 20:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed_given"] is False and not (out / "power.csv").exists()
    done = checkpoint.read_bytes().count(b"\n") - 1
    assert 20 <= done < 300
    resumed = run(config, n_sims=3_000, n_jobs=2, out=out)
    assert resumed.seed == manifest["seed"] and not resumed.provenance["seed_given"]
    assert resumed.provenance["resumed"] and resumed.provenance["blocks_resumed"] >= 20
    assert resumed.provenance["sessions"] == 2
    fresh = run(sc, n_sims=3_000, n_jobs=2, seed=manifest["seed"])
    assert resumed.to_frame().equals(fresh.to_frame())


def test_outputs_are_replaced_whole_and_nothing_stale_survives(default_scenario, tmp_path):
    sweep = with_values(default_scenario, {"sweep": {"values": {"endpoints.leak_1m.effect": [0.5, 0.7]}}, "flow": {}})
    two = run(sweep, n_sims=40, seed=1, n_jobs=1)
    two.save(tmp_path)
    assert sorted(p.name for p in (tmp_path / "scenarios").iterdir()) == ["effect=0.5.toml", "effect=0.7.toml"]
    assert (tmp_path / "flow_trials.csv").exists()
    one = run(default_scenario, n_sims=40, seed=1, n_jobs=1)
    one.save(tmp_path)
    assert sorted(p.name for p in (tmp_path / "scenarios").iterdir()) == ["base.toml"]
    assert not (tmp_path / "flow_trials.csv").exists()
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert json.loads((tmp_path / "provenance.json").read_text())["scenarios"] == ["base"]
    assert isinstance(one, RunResult)


def test_sweep_ids_are_unique_by_construction(default_scenario):
    close = with_values(default_scenario, {"sweep": {"values": {"endpoints.leak_1m.effect": [0.5, 0.5000004]}}})
    assert [s.id for s in expand(close)] == ["effect=0.5", "effect=0.5000004"]
    clash = with_values(default_scenario, {"sweep": {"values": {"design.control_name": ["a/b", "a:b"]}}})
    with pytest.raises(ConfigError, match=r"design.control_name = 'a/b' and design.control_name = 'a:b' both get the "
                                          r"scenario id 'control_name=a_b'"):
        expand(clash)
    twice = with_values(default_scenario, {"sweep": {"values": {"endpoints.leak_1m.effect": [0.5, 0.5]}}})
    with pytest.raises(ConfigError, match="the same point twice"):
        expand(twice)


def test_long_or_unsafe_ids_get_short_distinct_file_names():
    long_a, long_b = "name=" + "x" * 300 + "a", "name=" + "x" * 300 + "b"
    assert safe_name("effect=0.5") == "effect=0.5"
    for name in (safe_name(long_a), safe_name(long_b)):
        assert len(name) <= 120 and name.startswith("name=xxx")
    assert safe_name(long_a) != safe_name(long_b)
    assert safe_name("a/b") != safe_name("a_b") and "/" not in safe_name("a/b")
    assert not safe_name("..").startswith(".")


def test_run_dir_records_sessions_in_its_manifest(small, tmp_path):
    run(small, n_sims=200, seed=2, n_jobs=1, out=tmp_path)
    (tmp_path / "power.csv").unlink()
    res = run(small, n_sims=200, seed=2, n_jobs=1, out=tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["sessions"]) == 2
    assert manifest["sessions"][1]["blocks_resumed"] == 2 and manifest["sessions"][1]["blocks_computed"] == 0
    assert res.provenance["resumed"] and (tmp_path / "power.csv").exists()
    with RunDir(tmp_path) as rd:
        assert rd.recorded_seed() == 2 and rd.recorded_block_size() == 100
