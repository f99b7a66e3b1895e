"""A result is never mixed from two runs: an output folder holds the results of one trialsim command.

The folder's marker (:data:`trialsim.report.output.MARKER`) names the command that wrote it; every other command's
``--out`` refuses the folder before any work, naming the folder, the command that wrote it and the command asked
(exit status 2, one paragraph, no traceback), and leaves it untouched. The same command writes its own folder again.
Markers of an earlier trialsim, which did not name their command, are taken only by a command whose own results the
folder holds (and nothing that only other commands write: report documents, a planning.json of more than
the curves part, a comparison, curves's ranges and figures, replay's trial tables).
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from tests.conftest import DEFAULT_CONFIG
from trialsim.cli import compare as cli_compare
from trialsim.cli import main
from trialsim.cli import planning as cli_planning
from trialsim.cli import replay as cli_replay
from trialsim.cli.common import check_out, claim_out
from trialsim.config.loader import ConfigError
from trialsim.planning.plan import plan
from trialsim.report.output import (MARKER, FolderOfAnotherCommandError, check_folder, claim_folder, read_marker,
                                    report_session)

COMMANDS = ("report", "samplesize", "curves", "compare", "replay")
# what each command leaves in its folder (enough to tell a real folder of it)
FILES = {"report": ("planning.json", "sample_sizes.csv", "mde.csv", "report.md"),
         "samplesize": ("sample_sizes.csv", "mde.csv"),
         "curves": ("power_ranges.csv", "power_n.png"),
         "compare": ("compare.csv", "compare.json", "compare.png"),
         "replay": ("trial0_patients.csv", "trial0_analyses.csv")}
OLD_TEXT_MARKER = "written by trialsim report / planning; files here may be overwritten by it\n"


def cli(*argv: str) -> tuple[int, str, str]:
    """Run ``trialsim ARGV`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def argv_of(command: str, out: Path, tmp_path: Path) -> list:
    """The smallest call of ``command`` writing into ``out``."""
    call = {"report": ["report", DEFAULT_CONFIG, "--formats", "md"],
            "samplesize": ["samplesize", DEFAULT_CONFIG],
            "curves": ["curves", DEFAULT_CONFIG, "--n", "20"],
            "compare": ["compare", DEFAULT_CONFIG],
            "replay": ["replay", tmp_path / "run", "--trial", "0"]}[command]
    return [*call, "--out", out, *(["--quiet"] if command != "replay" else [])]


@pytest.fixture
def no_work(monkeypatch):
    """Every command's work fails the test: a refused folder is refused before any of it."""
    def work(*args, **kwargs):
        raise AssertionError("worked before --out was checked")

    for module, name in ((cli_planning, "sample_sizes"), (cli_planning, "power_ranges"), (cli_planning, "plan"),
                         (cli_planning, "load_planning"), (cli_planning, "load_scenario"),
                         (cli_compare, "compare"), (cli_replay, "replay")):
        monkeypatch.setattr(module, name, work)


def folder_of(command: str, out: Path) -> Path:
    """A folder as ``command`` leaves it: marked, with its files."""
    claim_folder(out, command=command)
    for name in FILES[command]:
        (out / name).write_text(f"{command}'s {name}")
    return out


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def refused(argv, *says: str) -> str:
    status, printed, err = cli(*argv)
    assert status == 2 and "Traceback" not in err, err
    assert err.startswith("trialsim: error: ") and len(err.strip().splitlines()) == 1, err
    for text in says:
        assert text in err, err
    return err


# --------------------------------------------------------------------------------------------------
# every pair of commands
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("asked", COMMANDS)
@pytest.mark.parametrize("wrote", COMMANDS)
def test_a_folder_of_one_command_is_refused_by_every_other_before_any_work(tmp_path, no_work, wrote, asked):
    out = folder_of(wrote, tmp_path / "R")
    before = snapshot(out)
    argv = argv_of(asked, out, tmp_path)
    if wrote == asked:  # its own folder: the check lets it through to the work
        with pytest.raises(AssertionError, match="worked before --out was checked"):
            cli(*argv)
    else:
        refused(argv, f"--out '{out}' holds the results of `trialsim {wrote}`; `trialsim {asked}` does not write into "
                      "another command's folder: give a new or empty folder")
    assert snapshot(out) == before
    assert read_marker(out)["command"] == wrote


@pytest.mark.parametrize("wrote", COMMANDS)
def test_the_python_api_writes_report_folders_and_refuses_the_others(tmp_path, wrote):
    """PlanningResult.save, write_report and report_session write what `trialsim report` writes."""
    out = folder_of(wrote, tmp_path / "R")
    if wrote == "report":
        assert check_folder(out) == out
        return
    with pytest.raises(FolderOfAnotherCommandError, match=f"holds the results of `trialsim {wrote}`; `trialsim report`"):
        check_folder(out)
    before = snapshot(out)
    with pytest.raises(FolderOfAnotherCommandError):
        with report_session(out):
            raise AssertionError("the body ran")
    assert snapshot(out) == before


def test_a_folder_holding_only_another_commands_marker_is_taken(tmp_path):
    out = tmp_path / "R"
    claim_folder(out, command="compare")
    claim_folder(out, command="samplesize")  # nothing of compare's to mix with
    assert read_marker(out) == {"note": read_marker(out)["note"], "status": "complete", "files": [],
                                "command": "samplesize"}


# --------------------------------------------------------------------------------------------------
# real folders
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def report_dir(tmp_path):
    """A report's folder: planning results saved by the Python API, documents by `trialsim report --from` itself."""
    out = plan(DEFAULT_CONFIG, parts=("run",), n_sims=200, seed=3, n_jobs=1).save(tmp_path / "R")
    assert read_marker(out)["command"] == "report"
    status, _, err = cli("report", "--from", out, "--out", out, "--formats", "md", "--jobs", "1", "--quiet")
    assert status == 0, err
    return out


def test_a_report_folder_is_refused_by_the_other_commands_and_rewritten_by_report_from_itself(report_dir, tmp_path):
    marker = read_marker(report_dir)
    assert marker["command"] == "report" and "report.md" in marker["files"]
    before = snapshot(report_dir)
    for asked in ("samplesize", "curves", "compare", "replay"):
        refused(argv_of(asked, report_dir, tmp_path), f"holds the results of `trialsim report`; `trialsim {asked}` does not")
    # `curves --from R --out R` would draw the report's figures again into the report's folder: another command
    refused(["curves", "--from", report_dir, "--out", report_dir], "holds the results of `trialsim report`; `trialsim curves`")
    assert snapshot(report_dir) == before
    # its own folder: the documents written again from it, its results kept
    status, _, err = cli("report", "--from", report_dir, "--out", report_dir, "--formats", "md", "--jobs", "1", "--quiet")
    assert status == 0, err
    assert read_marker(report_dir)["command"] == "report"
    after = snapshot(report_dir)
    assert after["planning.json"] == before["planning.json"] and after["report.md"][1] > before["report.md"][1]


@pytest.mark.parametrize("marker", [OLD_TEXT_MARKER, {"status": "complete", "files": []}])
def test_a_real_report_folder_with_an_old_marker_is_refused_by_curves(report_dir, tmp_path, marker):
    """curves would write a curves-only planning.json beside the report's report.md and tables."""
    (report_dir / MARKER).write_text(marker if isinstance(marker, str) else json.dumps(marker))
    before = snapshot(report_dir)
    for argv in (argv_of("curves", report_dir, tmp_path), ["curves", DEFAULT_CONFIG, "--out", report_dir, "--quiet"]):
        refused(argv, "was written by an earlier trialsim", "does not hold `trialsim curves`'s own results")
    assert snapshot(report_dir) == before


def test_a_comparison_folder_is_its_own_and_refused_by_report(tmp_path):
    out = tmp_path / "C"
    for _ in range(2):  # written, then written again
        status, _, err = cli("compare", DEFAULT_CONFIG, "--sims", "50", "--seed", "1", "--jobs", "1", "--out", out, "--quiet")
        assert status == 0, err
    assert read_marker(out)["command"] == "compare"
    before = snapshot(out)
    refused(["report", DEFAULT_CONFIG, "--out", out, "--quiet"],
            f"--out '{out}' holds the results of `trialsim compare`; `trialsim report` does not write into another "
            "command's folder: give a new or empty folder")
    refused(["samplesize", DEFAULT_CONFIG, "--out", out, "--quiet"], "`trialsim compare`; `trialsim samplesize`")
    assert snapshot(out) == before


# --------------------------------------------------------------------------------------------------
# markers of an earlier trialsim
# --------------------------------------------------------------------------------------------------
def old_folder(out: Path, marker: str | dict, files: tuple[str, ...]) -> Path:
    out.mkdir()
    (out / MARKER).write_text(marker if isinstance(marker, str) else json.dumps(marker))
    for name in files:
        (out / name).write_text(name)
    return out


OLD_MARKERS = [OLD_TEXT_MARKER, {"status": "complete", "files": []}]


def refused_as_old(out: Path, asked: str, tmp_path: Path, held: str | None = None) -> None:
    """``asked`` refuses the older folder ``out``: it holds ``held`` (files ``asked`` does not write), or none of
    ``asked``'s own files."""
    why = f"it holds {held}, which `trialsim {asked}` does not write" if held else \
        f"it does not hold `trialsim {asked}`'s own results"
    refused(argv_of(asked, out, tmp_path),
            f"--out '{out}' was written by an earlier trialsim, whose marker does not say which command wrote it, and "
            f"{why}; nothing in it is overwritten: give a new or empty folder")


def taken_by_only(out: Path, command: str, tmp_path: Path) -> None:
    """Every other command refuses the older folder ``out`` and leaves it unchanged; ``command`` gets through to its
    work (the stubbed work raises)."""
    before = snapshot(out)
    for asked in sorted(set(FILES) - {command}):
        refused_as_old(out, asked, tmp_path)
    assert snapshot(out) == before
    with pytest.raises(AssertionError, match="worked before --out was checked"):
        cli(*argv_of(command, out, tmp_path))


def planning_json(parts: list[str]) -> str:
    return json.dumps({"settings": {"parts": parts}, "files": {}, "checksums": {}})


@pytest.mark.parametrize("marker", OLD_MARKERS)
def test_an_old_planning_folder_is_taken_by_report_only(tmp_path, no_work, marker):
    out = old_folder(tmp_path / "R", marker, FILES["report"])
    assert read_marker(out)["command"] is None
    before = snapshot(out)
    # samplesize's own files are there, but so are planning.json and report.md, which samplesize never writes; curves
    # writes a planning.json too, but takes a folder only by the files report never writes
    refused_as_old(out, "samplesize", tmp_path, held="planning.json, report.md")
    for asked in ("curves", "compare", "replay"):
        refused_as_old(out, asked, tmp_path)
    assert snapshot(out) == before
    with pytest.raises(AssertionError, match="worked before --out was checked"):  # report: through to the work
        cli(*argv_of("report", out, tmp_path))
    claim_folder(out, ours=("planning.json",), command="report")  # and marked as report's from now on
    assert read_marker(out)["command"] == "report" and snapshot(out).keys() == before.keys() | {MARKER}


@pytest.mark.parametrize("marker", OLD_MARKERS)
@pytest.mark.parametrize("parts", [["run", "samplesize", "mde", "pilot", "curves"], ["curves"]])
def test_curves_does_not_take_an_old_report_folder_even_with_a_figure_of_its_own(tmp_path, no_work, marker, parts):
    """The review's case: curves took an old report's folder by planning.json and wrote a curves-only planning.json
    beside the report's documents and tables. A planning.json of more than the curves part is report's alone; report
    documents are report's whatever planning.json holds."""
    out = old_folder(tmp_path / "R", marker, ("report.md", "justification.txt", "power_vs_n.png"))
    (out / "planning.json").write_text(planning_json(parts))
    before = snapshot(out)
    refused_as_old(out, "curves", tmp_path, held="justification.txt, planning.json, report.md" if parts != ["curves"]
                   else "justification.txt, report.md")
    refused_as_old(out, "report", tmp_path, held="power_vs_n.png")  # a mix already: nobody's
    (out / "power_vs_n.png").unlink()
    refused_as_old(out, "curves", tmp_path)  # nothing of its own: planning.json is report's evidence, not curves's
    assert check_folder(out, ours=("planning.json",)) == out
    assert snapshot(out).keys() == before.keys() - {"power_vs_n.png"}


@pytest.mark.parametrize("marker", OLD_MARKERS)
@pytest.mark.parametrize("files", [("power_ranges.csv", "power_ranges.png", "power_ranges.svg"),
                                   ("sweep_grid.csv", "sweep_grid_fisher.png"),
                                   ("planning.json", "curves.csv", "scenario.toml", "power_vs_n.png", "power_vs_n.svg")])
def test_an_old_curves_folder_is_taken_by_curves_only(tmp_path, no_work, marker, files):
    """curves wrote power ranges, a sweep's grid, or (without ranges) a planning result of its curves part with its
    figures at the top of the folder, where report never draws them."""
    out = old_folder(tmp_path / "C", marker, files)
    if "planning.json" in files:
        (out / "planning.json").write_text(planning_json(["curves"]))
    before = snapshot(out)
    for asked in ("samplesize", "compare", "replay"):
        refused_as_old(out, asked, tmp_path)
    # report: by its planning.json, but beside figures report never draws there; without one, nothing of its own
    refused_as_old(out, "report", tmp_path, held="power_vs_n.png, power_vs_n.svg" if "planning.json" in files else None)
    assert snapshot(out) == before
    with pytest.raises(AssertionError, match="worked before --out was checked"):
        cli(*argv_of("curves", out, tmp_path))


@pytest.mark.parametrize("marker", OLD_MARKERS)
def test_an_old_replay_folder_is_taken_by_replay_only(tmp_path, no_work, marker):
    """replay's files are named by the trial: trial<K>_patients.csv and trial<K>_analyses.csv, for any K."""
    out = old_folder(tmp_path / "P", marker, ("trial12_patients.csv", "trial12_analyses.csv", "notes.txt"))
    taken_by_only(out, "replay", tmp_path)
    # beside another command's files it is not replay's alone
    (out / "compare.json").write_text("{}")
    refused_as_old(out, "replay", tmp_path, held="compare.json")


def test_claim_out_refuses_with_the_words_of_check_out(tmp_path):
    out = folder_of("compare", tmp_path / "R")
    with pytest.raises(ConfigError) as checked:
        check_out(out, command="report")
    with pytest.raises(ConfigError) as claimed:
        claim_out(out, command="report")
    assert str(claimed.value) == str(checked.value) == (
        f"--out '{out}' holds the results of `trialsim compare`; `trialsim report` does not write into another "
        "command's folder: give a new or empty folder")
    user = tmp_path / "U"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError) as checked:
        check_out(user, command="samplesize")
    with pytest.raises(ConfigError) as claimed:
        claim_out(user, command="samplesize")
    assert str(claimed.value) == str(checked.value)


def test_an_old_marker_listing_files_was_written_by_report(tmp_path, no_work):
    """Only report's sessions ever listed their files in the marker."""
    out = old_folder(tmp_path / "R", {"status": "complete", "files": ["report.md"]}, FILES["report"])
    assert read_marker(out)["command"] == "report"
    refused(argv_of("samplesize", out, tmp_path), "holds the results of `trialsim report`; `trialsim samplesize`")


def test_an_old_samplesize_folder_is_taken_by_samplesize_only(tmp_path, no_work):
    out = old_folder(tmp_path / "S", {"status": "complete", "files": []}, FILES["samplesize"])
    taken_by_only(out, "samplesize", tmp_path)


def test_an_old_marker_alone_is_an_empty_folder(tmp_path):
    out = old_folder(tmp_path / "E", OLD_TEXT_MARKER, ())
    claim_folder(out, command="replay")
    assert read_marker(out)["command"] == "replay"
