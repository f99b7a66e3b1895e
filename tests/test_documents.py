"""The documents a grant writer submits: sources that travel, what a reviewer asks, HTML/PDF/docx that hold up.

Planned results and written reports are shared with tests/test_report.py (computed once per session).
The browser test renders report.html in headless Chromium (Debian's ``chromium``) and is skipped, with
its reason, where Chromium is not installed.
"""
from __future__ import annotations

import copy
import gc
import operator
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CONFIGS, CRP_CONFIG, DEFAULT_CONFIG
from tests.test_report import CRP_FORMATS, SMALL, planned, written_report
from trialsim.api import run
from trialsim.config.loader import ConfigError, load_scenario, with_values
from trialsim.labels import FLAG
from trialsim.planning.assumptions import assumptions_frame, file_comments
from trialsim.planning.plan import PlanningResult, load_planning, plan, type_i_at_sizes
import trialsim.report.document as document
from trialsim.report.document import build_report, build_tables, write_docx, write_report
from trialsim.report.output import MARKER, FolderNotOursError, check_folder, read_marker, replace_file, report_session
from trialsim.report import helpers as helpers_module
from trialsim.report.helpers import IDLE_NICE, Helpers, others_running, usable_cores
from trialsim.report.pdf_process import html_to_pdf
from trialsim.report.references import SECTION, citation_keys, load_library

SHIPPED = sorted(CONFIGS.rglob("*.toml"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _cited_texts(config: Path) -> list[str]:
    """Every comment and ``source`` string the config (with the files it extends) gives its values."""
    frame = assumptions_frame(load_scenario(config), file_comments(config))
    return [str(s) for s in frame.loc[frame["origin"] == "config", "source"]]


# --------------------------------------------------------------------------------------------------
# 1. sources that travel
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", SHIPPED, ids=lambda p: p.stem)
def test_every_citation_of_a_shipped_config_resolves(config):
    lib = load_library()
    keys = [k for text in _cited_texts(config) for k in citation_keys(text)]
    sections = [m.group(1) for text in _cited_texts(config) for m in SECTION.finditer(text)]
    assert not [k for k in keys if lib.get(k) is None]
    assert not [s for s in sections if s not in lib.sections]
    for key in keys:  # a full reference: where to find it
        ref = lib.get(key)
        assert ref.journal or ref.url or ref.doi or ref.pmid or ref.pmcid, key


@pytest.mark.parametrize("config", [DEFAULT_CONFIG, CRP_CONFIG], ids=lambda p: p.stem)
def test_the_reference_list_holds_every_source_and_method_used(config):
    keys = {k for text in _cited_texts(config) for k in citation_keys(text)}
    assert keys, "the shipped configs cite their sources by key"
    report = build_report(planned(config), [])
    listed = {r.key for r in report.references}
    assert keys <= listed
    lib = load_library()
    for test in {t for t in planned(config).frame("power")["test"]}:
        assert set(lib.method("tests", test)) <= listed, test
    text = report.all_text()
    assert "trialsim 0.1" in text and "Monte Carlo standard error" in text and "root seed 7" in text
    assert all(lib.get(k).short in text for k in keys)
    assert not re.search(r"\[[a-z][a-z0-9_]*\d{4}\]", text), "a citation key left unresolved"


def test_report_from_a_run_folder_equals_report_from_the_config(tmp_path):
    """``report --from RUN`` recomputes what the run did not hold, with the run's seed: the same tables."""
    direct = planned(CRP_CONFIG)
    run(CRP_CONFIG, n_sims=SMALL["n_sims"], seed=SMALL["seed"], n_jobs=1).save(tmp_path / "run")
    options = {k: v for k, v in SMALL.items() if k not in ("n_sims", "seed")}
    back = load_planning(tmp_path / "run", **options)
    a, b = build_tables(direct), build_tables(back)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].frame.equals(b[name].frame), name
    assert (a["assumptions"].frame["Set in"] == "config").sum() > 10  # the config's comments were found again


def test_a_report_never_writes_into_a_folder_it_did_not_create(tmp_path):
    run_dir = tmp_path / "run"
    run(CRP_CONFIG, n_sims=200, seed=3, n_jobs=1).save(run_dir)
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    back = load_planning(run_dir, simulate=False, parts=("run",))
    with pytest.raises(FolderNotOursError, match="did not write"):
        write_report(back, run_dir, formats=("md",))
    with pytest.raises(FolderNotOursError):
        back.save(run_dir)
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before
    mine = tmp_path / "report"
    back.save(mine)
    write_report(back, mine, formats=("md",))  # its own folder: written again
    assert (mine / MARKER).is_file() and (mine / "report.md").is_file()


def _report(out, files: dict[str, str], **kwargs):
    """A stand-in report: ``files`` (relative path -> text) written inside a report session of ``out``."""
    with report_session(out, **kwargs) as folder:
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            replace_file(folder / name, lambda tmp, text=text: tmp.write_text(text))
    return out


def test_a_report_written_again_leaves_none_of_the_earlier_reports_files_and_nothing_else_is_touched(tmp_path):
    out = _report(tmp_path / "report", {"sweep_power.csv": "another design's sweep", "figures/old.png": "png",
                                        "report.md": "earlier"})
    (out / "NOTES.txt").write_text("the user's own notes")
    (out / "run").mkdir()
    (out / "run" / "power.csv").write_text("a run the user keeps here")
    _report(out, {"power.csv": "this design", "report.md": "later"})
    assert (out / "report.md").read_text() == "later" and (out / "power.csv").is_file()
    assert not (out / "sweep_power.csv").exists() and not (out / "figures").exists()  # the earlier report's own
    assert (out / "NOTES.txt").is_file() and (out / "run" / "power.csv").is_file()  # never listed: never removed
    assert read_marker(out) == {"note": read_marker(out)["note"], "status": "complete", "files": ["power.csv", "report.md"],
                                "command": "report"}
    # documents written again from the folder itself keep the results they do not write again
    _report(out, {"report.md": "documents only"}, keep_earlier=True)
    assert (out / "power.csv").is_file() and set(read_marker(out)["files"]) == {"power.csv", "report.md"}


def test_an_interrupted_report_is_never_read_back_as_finished(tmp_path):
    out = _report(tmp_path / "report", {"report.md": "earlier"})
    for interruption in (RuntimeError("a failing figure"), KeyboardInterrupt()):
        with pytest.raises(type(interruption)):
            with report_session(out) as folder:
                (folder / "report.md").write_text("half of a later one")
                raise interruption
        assert read_marker(out)["status"] == "writing"
        with pytest.raises(ConfigError, match="writing was interrupted"):
            load_planning(out)
    _report(out, {"report.md": "whole"})  # written again: complete
    assert read_marker(out)["status"] == "complete"


def test_a_report_into_the_current_folder_or_through_a_link_stays_there(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _report(Path("."), {"report.md": "here"})
    assert (tmp_path / "report.md").read_text() == "here" and sorted(p.name for p in tmp_path.iterdir()) == [MARKER, "report.md"]
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    _report(tmp_path / "link", {"report.md": "through the link"})
    assert (tmp_path / "link").is_symlink() and (tmp_path / "target" / "report.md").read_text() == "through the link"


def test_a_folder_that_is_not_ours_is_refused_before_anything_is_done(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "power.csv").write_text("a run's results")
    (tmp_path / "file").write_text("x")
    for out, says in [(tmp_path / "run", "did not write"), (tmp_path / "file", "is a file"),
                      (tmp_path / "file" / "under", "a part of its path is a file")]:
        with pytest.raises(FolderNotOursError, match=says):
            check_folder(out)
        with pytest.raises(FolderNotOursError, match=says):
            with report_session(out):
                raise AssertionError("the body ran")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "run"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["power.csv"]


# --------------------------------------------------------------------------------------------------
# 2. what a reviewer asks
# --------------------------------------------------------------------------------------------------
def test_headline_gives_power_type_i_error_estimates_and_verdict():
    result = planned(DEFAULT_CONFIG)
    report = build_report(result, [])
    rows = dict(report.headline.rows)
    power = report.tables["power"]
    prim = "leak_1m|fisher"
    assert rows["Power"].startswith(power.cell(prim, "Exact power") + " (exact)")
    assert rows["Type I error"].startswith(power.cell(prim, "Type I error (no effect)") + " (exact)")
    assert "risk ratio of 1" in rows["Type I error"]
    assert "percentage points wide" in rows["What it can estimate"]
    assert "cannot tell a working treatment from a useless one" in report.headline.verdict
    for fact in report.headline.facts:  # every number in the box is a cell of a table
        assert report.tables[fact.table].cell(fact.row, fact.column) == fact.text
    # the exact type I error of Fisher's test under no effect, at the assumed control rate
    null = result.frame("null_power")
    exact = null[(null.endpoint == "leak_1m") & (null.test == "fisher") & (null.method == "exact")]["power"].iloc[0]
    assert exact == pytest.approx(0.0037, abs=2e-4)
    text = report.justification.text
    assert "type I error at this design" in text


def test_multiplicity_and_allocation_caveat_follow_the_design():
    default, crp = build_report(planned(DEFAULT_CONFIG), []), build_report(planned(CRP_CONFIG), [])
    n_tests = len(planned(DEFAULT_CONFIG).frame("power").query("method == 'monte_carlo'"))
    m = default.tables["multiplicity"]
    assert m.cell("tests", "Value") == str(n_tests)
    # Bonferroni's level 0.05 / n, exact where a short decimal states it (0.05 / 40 printed as 0.12% was 0.125%), and
    # never printed above the true level
    level = float(m.cell("bonferroni", "Value").rstrip("%")) / 100
    assert level <= 0.05 / n_tests and level == pytest.approx(0.05 / n_tests, rel=1e-3)
    assert f"The report runs {n_tests} tests" in default.all_text()
    assert "Bender and Lange 2001" in default.all_text()
    assert "Allocation is not randomised" in default.all_text() and "Altman and Bland 1999" in default.all_text()
    assert "Allocation is not randomised" not in crp.all_text()  # permuted blocks: randomised
    # no [flow] section: the timeline from the flow's cited defaults, saying that the analyses assume every patient
    assert "Timeline" in [s.title for s in default.sections]
    assert "the config has no [flow] section" in default.tables["flow"].notes
    assert "The power table assumes that every planned patient is enrolled, each endpoint then losing the scenario's own share" in default.tables["flow"].notes
    assert "Timeline" not in [s.title for s in crp.sections]  # no length of stay: the flow's model does not fit it


def test_timeline_when_the_config_has_a_flow():
    sc = with_values(load_scenario(DEFAULT_CONFIG), {"flow": {}})  # the flow's cited defaults
    res = plan(sc, parts=("run",), n_sims=200, seed=5, n_jobs=1)
    tables = build_tables(res)
    flow = tables["flow"]
    assert re.fullmatch(r"median \d+ days \(\d+\.\d months\)", flow.cell("time_to_full_enrolment", "Estimate"))
    assert re.match(r"\d+ to \d+", flow.cell("study_duration", "80% of trials (days)"))
    assert "trials" in flow.cell("p_finished_by_deadline", "Estimate")
    report = build_report(res, [])
    assert "Timeline" in [s.title for s in report.sections]
    assert any(r.key == "simpy" for r in report.references)
    assert re.fullmatch(r"\d+\.\d of 10 planned", flow.cell("analysable_treatment", "Estimate"))
    assert "the same trials as the power table" in flow.notes


def test_a_deadline_that_cuts_enrolment_is_in_the_headline_numbers():
    """The registered 122 days with sequential allocation: the exosome arm (enrolled last) is mostly not reached."""
    sc = with_values(load_scenario(DEFAULT_CONFIG), {"flow": {"deadline_days": 122}})
    res = plan(sc, parts=("run",), n_sims=400, seed=5, n_jobs=1)
    report = build_report(res, [])
    flow = report.tables["flow"]
    treated = float(flow.cell("analysable_treatment", "Estimate").split()[0])
    assert treated < 5  # the flow's own finding, not the planned 10
    assert flow.cell("time_to_full_enrolment", "80% of trials (days)") == "not reached"  # never "not reached to not reached"
    paragraph = report.justification.text
    assert "the planned 10 patients per arm give" in paragraph and f"{treated:.1f} of 10 planned exosome" in paragraph


def test_a_timeline_chance_of_all_but_a_few_trials_says_its_count():
    res = copy.copy(planned(DEFAULT_CONFIG))
    flow = res.frame("flow").copy()
    n = int(flow["n_trials"].iloc[0])
    flow.loc[(flow.quantity == "p_reached_target") & (flow.statistic == "probability"), "value"] = 1 - 1 / n
    res.frames = {**res.frames, "flow": flow}
    cell = build_tables(res)["flow"].cell("p_reached_target", "Estimate")
    assert cell == f"{100 * (1 - 1 / n):.3f}% (all but 1 of {n:,} trials)"  # never "1e+02%"


def test_the_timeline_is_the_full_designs_flow_without_its_analyses():
    from trialsim.planning.plan import flow_frame, run_design, timeline_frame

    sc = load_scenario(DEFAULT_CONFIG)
    lean = timeline_frame(sc, n_sims=600, seed=4, n_jobs=1)
    with_flow = with_values(sc, {"flow": {}}, source="flow defaults")
    full = run_design(with_flow, n_sims=600, seed=4, seed_given=True, n_jobs=1)
    assert lean.equals(flow_frame(full.results[0].flow, with_flow, in_analyses=False))


def test_lists_of_large_numbers_stay_readable():
    from trialsim.report.tables import readable_value

    assert readable_value("endpoints.cytokines.markers[il6_drain].median", "[35000, 22000, 12000]") == "35,000; 22,000; 12,000"
    assert readable_value("x.grades", "[A, B, C]") == "A, B, C"


def test_the_assumptions_table_reads_as_text_and_holds_only_what_the_design_uses():
    table = build_report(planned(DEFAULT_CONFIG), []).tables["assumptions"].frame
    values = " ".join(table["Value"])
    assert not re.search(r"\[[^\]]*\]", values)  # no bracketed lists
    assert table.loc["endpoints.leak_1m.tests", "Value"] == "Fisher exact, Chi-square (z)"  # labels, not names
    assert table.loc["endpoints.leak_1m.effect_measure", "Value"] == "risk ratio"
    assert table.loc["endpoints.leak_1m.effect_measure", "Source"] == "design choice"
    assert table.loc["primary", "Value"] == "leak_1m"  # an id stays as the config and the other tables name it
    assert not any(k.startswith(("allocation.block_size", "allocation.p_minimise", "allocation.selection"))
                   for k in table.index)  # sequential allocation reads none of them
    crp = build_report(planned(CRP_CONFIG), []).tables["assumptions"].frame
    assert crp.loc["allocation.ratio", "Value"] == "1:1" and "allocation.block_size" in crp.index  # permuted blocks


def test_a_test_whose_size_exceeds_alpha_is_flagged_wherever_its_numbers_appear():
    """The uncorrected chi-square at 30 per arm: exact type I error 5.4% at the assumed control rate."""
    sc = load_scenario(DEFAULT_CONFIG, ["design.n_control=30", "design.n_treatment=30",
                                        'endpoints.leak_1m.tests=["fisher", "chi2"]'])
    res = plan(sc, parts=("run",), n_sims=300, seed=5, n_jobs=1)
    tables = build_tables(res)
    power = tables["power"]
    assert power.cell("leak_1m|chi2", "Type I error (no effect)") == "5.4%"
    assert power.cell("leak_1m|chi2", "Test").endswith(FLAG)
    assert not power.cell("leak_1m|fisher", "Test").endswith(FLAG)
    assert FLAG in power.notes
    # at a proposed sample size too
    sizes = type_i_at_sizes(sc, _size_rows([("leak_1m", "chi2", 30), ("leak_1m", "fisher", 30)]))
    chi2 = sizes[sizes.test == "chi2"]["type_i_error"].iloc[0]
    assert chi2 > 0.05 and sizes[sizes.test == "fisher"]["type_i_error"].iloc[0] < 0.05


def _size_rows(rows):
    import pandas as pd

    return pd.DataFrame([{"endpoint": e, "test": t, "target_power": 0.8, "method": "exact", "reachable": True, "n": n,
                          "n_treatment": n} for e, t, n in rows])


def test_the_crp_trial_report_is_trial_neutral():
    out, files = written_report(CRP_CONFIG, CRP_FORMATS)
    from docx import Document

    doc = Document(str(files["docx"]))
    words = " ".join(p.text for p in doc.paragraphs) + " ".join(
        c.text for t in doc.tables for row in t.rows for c in row.cells)
    for text in (words, files["txt"].read_text(encoding="utf-8"), build_report(planned(CRP_CONFIG), []).all_text()):
        assert "leak" not in text.lower()


# --------------------------------------------------------------------------------------------------
# 3. documents a grant writer can use
# --------------------------------------------------------------------------------------------------
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
PROBE = ('<script>window.addEventListener("load", function () {'
         'var imgs = document.querySelectorAll("figure img"); var ok = 0;'
         'for (var i = 0; i < imgs.length; i++) { if (imgs[i].naturalWidth > 0) ok++; }'
         'document.title = "PROBE " + document.documentElement.scrollHeight + " " + imgs.length + " " + ok;'
         '});</script>')


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium)")
def test_html_renders_in_headless_chromium(tmp_path):
    out, files = written_report(DEFAULT_CONFIG)
    html_text = files["html"].read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"  # the report with a measuring script added (the report itself has none)
    probe.write_text(html_text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    flags = CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([CHROMIUM, *flags, "--window-size=1280,900", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"PROBE (\d+) (\d+) (\d+)", dom)
    assert m, dom[-500:]
    height, figures, loaded = map(int, m.groups())
    assert figures == loaded == len(list((out / "figures").glob("*.png"))) == 4
    assert 8_000 < height < 60_000  # a long report, laid out at a readable width (not one endless line)
    shot = out / "report_screenshot.png"
    subprocess.run([CHROMIUM, *flags, "--window-size=1280,2400", f"--screenshot={shot}", files["html"].as_uri()],
                   capture_output=True, timeout=60, check=True)
    from PIL import Image, ImageStat

    with Image.open(shot) as im:
        assert im.size == (1280, 2400)
        assert ImageStat.Stat(im.convert("L")).stddev[0] > 20  # text and boxes, not a blank page


def test_pdf_is_a4_with_landscape_pages_for_wide_tables():
    from pypdf import PdfReader

    _, files = written_report(DEFAULT_CONFIG)
    reader = PdfReader(str(files["pdf"]))
    sizes = [(float(p.mediabox.width), float(p.mediabox.height)) for p in reader.pages]
    n = len(sizes)
    a4 = (595.28, 841.89)
    assert sizes[0] == pytest.approx(a4, abs=0.5)
    landscape = [s for s in sizes if s[0] > s[1]]
    assert landscape and all(s == pytest.approx(a4[::-1], abs=0.5) for s in landscape)
    assert all(s == pytest.approx(a4, abs=0.5) for s in sizes if s[0] < s[1])
    assert 10 <= n <= 45
    text = {k: reader.pages[k].extract_text() or "" for k in (0, n - 3, n - 2, n - 1)}
    assert "At a glance" in text[0] and "Verdict" in text[0]
    assert any("References" in text[k] for k in (n - 3, n - 2, n - 1)) and "doi:" in text[n - 1]
    for k, page in text.items():  # numbered "k / n"
        assert re.search(rf"\b{k + 1} / {n}\b", page), k


SMALL_HTML = ("<html><head><style>@page { size: A4; } td { border: 1px solid #999; }</style></head><body>"
              "<h1>A title</h1><p>One paragraph.</p><table><tr><td>1</td><td>2</td></tr></table></body></html>")


def test_a_pdf_rendered_in_a_helper_process_equals_one_rendered_here(tmp_path):
    here = html_to_pdf(SMALL_HTML, tmp_path / "here.pdf")
    with Helpers([()]) as helpers:
        assert len(helpers) == (1 if usable_cores() > 1 else 0)
        job = helpers.submit(0, html_to_pdf, SMALL_HTML, tmp_path / "helper.pdf")
        assert job.result() == tmp_path / "helper.pdf"
    with Helpers([()], enabled=False) as helpers:
        assert len(helpers) == 0
        job = helpers.submit(0, html_to_pdf, SMALL_HTML, tmp_path / "inline.pdf")
        assert (tmp_path / "inline.pdf").is_file()  # rendered before submit() returns
        assert job.result() == tmp_path / "inline.pdf"
    assert (tmp_path / "helper.pdf").read_bytes() == (tmp_path / "inline.pdf").read_bytes() == here.read_bytes()


def test_rendering_a_pdf_leaves_the_garbage_collector_as_it_was(tmp_path):
    assert gc.isenabled()
    html_to_pdf(SMALL_HTML, tmp_path / "a.pdf")  # paused while rendering, then on again
    assert gc.isenabled()
    gc.disable()
    try:
        html_to_pdf(SMALL_HTML, tmp_path / "b.pdf")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_helpers_run_jobs_in_order_at_the_callers_priority_and_raise_a_jobs_error_in_the_caller():
    if usable_cores() < 2:
        pytest.skip("one usable core: no helper process")
    with Helpers([(), ()]) as helpers:
        assert len(helpers) == 2 and len(set(helpers.pids())) == 2
        nice = [helpers.submit(k, os.getpriority, os.PRIO_PROCESS, 0) for k in range(2)]
        pids = [helpers.submit(k, os.getpid) for k in range(3)]  # helper 2 is helper 0 again
        failed = helpers.submit(1, operator.truediv, 1, 0)
        after = helpers.submit(1, operator.add, 2, 3)  # a failed job does not stop the helper
        assert [j.result() for j in nice] == [os.getpriority(os.PRIO_PROCESS, 0)] * 2  # never starved by other work
        assert [j.result() for j in pids] == [*helpers.pids(), helpers.pids()[0]]
        assert after.result() == 5
        with pytest.raises(ZeroDivisionError):
            failed.result()


def _slow_when_niced() -> None:
    """A warm-up that a busy machine keeps from finishing: as long as a minute at the lowest priority."""
    if os.getpriority(os.PRIO_PROCESS, 0) >= IDLE_NICE:
        time.sleep(60)


def test_early_helpers_warm_up_at_the_lowest_priority_and_are_replaced_at_ours_on_a_busy_machine():
    if usable_cores() < 2:
        pytest.skip("one usable core: no helper process")
    own = os.getpriority(os.PRIO_PROCESS, 0)
    with Helpers([(), (f"{__name__}:_slow_when_niced",)], early=True) as helpers:
        quick, slow = helpers._helpers  # noqa: SLF001
        deadline = time.monotonic() + 60
        while not quick.ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert quick.ready() and not slow.ready()
        asked = []
        assert helpers.keep_up(busy=lambda warming: asked.append(warming) or False) == 0  # an idle machine: kept
        assert asked == [1] and helpers._helpers == [quick, slow]  # noqa: SLF001 - one still warming up
        assert helpers.submit(0, os.getpriority, os.PRIO_PROCESS, 0).result() == max(IDLE_NICE, own)
        old = [quick._process, slow._process]  # noqa: SLF001
        assert helpers.keep_up(busy=lambda warming: True) == 2  # a busy machine: fresh helpers at our priority
        assert [p.exitcode for p in old] == [-signal.SIGTERM, -signal.SIGTERM]
        assert [helpers.submit(k, os.getpriority, os.PRIO_PROCESS, 0).result() for k in range(2)] == [own, own]
        assert helpers.keep_up(busy=lambda warming: True) == 0  # none started early any more


def test_others_running_reads_the_kernels_count_of_runnable_tasks(tmp_path):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("1.50 1.20 0.90 4/187 12345\n")
    assert others_running(1, path=str(loadavg))  # this process, one helper and two others
    assert not others_running(3, path=str(loadavg))  # this process and three helpers of ours
    loadavg.write_text("0.10 0.20 0.30 1/187 12345\n")
    assert not others_running(path=str(loadavg))
    assert not others_running(path=str(tmp_path / "missing"))  # a system that does not say: not busy
    loadavg.write_text("garbage\n")
    assert not others_running(path=str(loadavg))


class _Unrebuildable(Exception):
    """Pickles, but cannot be rebuilt from its pickle (its __init__ takes other arguments than it passes on)."""

    def __init__(self, what, where):
        super().__init__(f"{what} at {where}")


def _raise_unrebuildable():
    raise _Unrebuildable("no figure", "page 3")


def test_a_helpers_error_that_cannot_be_rebuilt_here_keeps_its_text_and_the_next_results_their_jobs():
    # found by review: the parent's unpickling failed, the message was gone but the job stayed first in line, so
    # the next job got the one after's result and the last waited for ever
    if usable_cores() < 2:
        pytest.skip("one usable core: no helper process")
    with Helpers([()]) as helpers:
        failed = helpers.submit(0, _raise_unrebuildable)
        a, b = helpers.submit(0, operator.concat, "A", ""), helpers.submit(0, operator.concat, "B", "")
        with pytest.raises(RuntimeError, match="_Unrebuildable: no figure at page 3"):
            failed.result()
        assert (a.result(), b.result()) == ("A", "B")
        big = helpers.submit(0, operator.mul, b"x", 8 * 2**20)  # more than a pipe holds, never read by the caller
    assert len(big.result()) == 8 * 2**20  # closing read it (the helper was not left blocked sending it)


def test_a_batch_goes_to_whichever_helper_is_free_and_a_dead_helpers_share_runs_here():
    if usable_cores() < 2:
        pytest.skip("one usable core: no helper process")
    with Helpers([(), ()]) as helpers:
        busy, free = helpers.pids()
        helpers.submit(0, time.sleep, 1.0)  # helper 0 busy for a second
        pids = helpers.batch(os.getpid, [()] * 6).results()
        assert len(pids) == 6 and pids.count(free) >= 5 and set(pids) <= {busy, free}
        helpers.submit(0, time.sleep, 30.0)
        batch = helpers.batch(os.getpid, [()] * 4)  # one of them queued behind helper 0's sleep
        helpers._helpers[0]._process.kill()  # noqa: SLF001 - as the kernel's out-of-memory killer would
        pids = batch.results()
        assert pids.count(os.getpid()) == 1 and pids.count(free) == 3
        assert helpers.batch(os.getpid, [()] * 2, among=(0,)).results() == [free, free]  # the helper there is


def _stuck_in_a_helper(parent: int, value):
    """``value``, at once in the process ``parent``, after a minute elsewhere (a helper that is stuck)."""
    if os.getpid() != parent:
        time.sleep(60)
    return value


def test_a_helper_silent_too_long_is_stopped_and_its_jobs_run_here(monkeypatch):
    if usable_cores() < 2:
        pytest.skip("one usable core: no helper process")
    monkeypatch.setattr(helpers_module, "SILENCE_SECONDS", 1.0)
    with Helpers([(), ()]) as helpers:
        first, second = helpers._helpers  # noqa: SLF001
        start = time.monotonic()
        with pytest.warns(UserWarning, match="sent nothing for 1 s"):
            assert helpers.submit(0, _stuck_in_a_helper, os.getpid(), "A").result() == "A"
        assert len(helpers) == 1 and not first.alive and first._process is None  # noqa: SLF001
        with pytest.warns(UserWarning, match="sent nothing for 1 s"):
            batch = helpers.batch(_stuck_in_a_helper, [(os.getpid(), k) for k in range(3)])
            assert batch.results() == [0, 1, 2]
        assert len(helpers) == 0 and not second.alive
        assert time.monotonic() - start < 30  # neither minute-long job was waited for


def test_a_dead_helpers_jobs_run_here_and_an_error_stops_the_helpers_at_once(tmp_path):
    if usable_cores() < 2:
        pytest.skip("one usable core: no helper process")
    with Helpers([()]) as helpers:
        first = helpers.submit(0, os.getpid)
        assert first.result() != os.getpid()
        helpers._helpers[0]._process.kill()  # noqa: SLF001 - as the kernel's out-of-memory killer would
        helpers._helpers[0]._process.join()  # noqa: SLF001
        job = helpers.submit(0, html_to_pdf, SMALL_HTML, tmp_path / "a.pdf")
        assert job.result() == tmp_path / "a.pdf" and (tmp_path / "a.pdf").stat().st_size > 1000
        assert helpers.submit(0, os.getpid).result() == os.getpid() and len(helpers) == 0
    with pytest.raises(KeyboardInterrupt):
        with Helpers([(), ()]) as helpers:
            started = [h._process for h in helpers._helpers]  # noqa: SLF001
            pids = helpers.pids()  # (the second's comes when it is ready: where it is forked, once the first forked it)
            helpers.submit(0, html_to_pdf, SMALL_HTML, tmp_path / "b.pdf")
            helpers.submit(1, html_to_pdf, SMALL_HTML, tmp_path / "c.pdf")
            raise KeyboardInterrupt  # Ctrl-C while the PDFs are rendered: no waiting for them
    assert started[0].exitcode == -signal.SIGTERM
    if helpers_module.CAN_FORK:  # the second was forked by the first: not ours to wait for, but stopped all the same
        assert not started[1].is_alive() and _ends_soon(pids[1], seconds=2.0)
    else:
        assert started[1].exitcode == -signal.SIGTERM


def _ends_soon(pid: int, seconds: float = 10.0) -> bool:
    """Whether process ``pid`` is gone (or a zombie) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


_WARMED_IN: list[int] = []


def _record_warm_up() -> None:
    """A warm-up step that notes the process it ran in."""
    _WARMED_IN.append(os.getpid())


def _warmed_in() -> list[int]:
    return list(_WARMED_IN)


@pytest.mark.skipif(not helpers_module.CAN_FORK, reason="helpers are forked from a warmed one on Linux only")
def test_a_helper_whose_warm_up_is_part_of_the_firsts_is_forked_from_it_once_warmed_and_ends_with_it():
    if usable_cores() < 2:
        pytest.skip("one usable core: no helper process")
    step = f"{__name__}:{_record_warm_up.__name__}"
    with Helpers([(step,), (step,), ()]) as helpers:
        first, second, third = helpers.pids()
        assert len({first, second, third}) == 3
        # the second and third did not warm up: they have the first's warm-up, done once, in the first
        assert [helpers.submit(k, _warmed_in).result() for k in range(3)] == [[first]] * 3
        assert [helpers.submit(k, os.getppid).result() for k in range(3)] == [os.getpid(), first, first]
        assert helpers.submit(1, operator.add, 2, 3).result() == 5
        closing = time.monotonic()
    # found in a first version: the forked helpers held the first's multiprocessing sentinel open, so closing the
    # first waited JOIN_SECONDS for them
    assert time.monotonic() - closing < helpers_module.JOIN_SECONDS / 2
    assert all(_ends_soon(pid) for pid in (first, second, third))


@pytest.mark.skipif(not helpers_module.CAN_FORK, reason="helpers are forked from a warmed one on Linux only")
def test_a_forked_helper_that_cannot_be_signalled_is_let_go_at_once(monkeypatch):
    # found by review: without a pidfd (an old kernel, a sandbox refusing it), stopping it waited 2 x JOIN_SECONDS
    if usable_cores() < 2:
        pytest.skip("one usable core: no helper process")

    def refused(pid, flags=0):
        raise PermissionError(1, "pidfd_open refused")

    monkeypatch.setattr(os, "pidfd_open", refused)
    helpers = Helpers([(), ()])
    second = helpers.pids()[1]
    helpers.submit(1, time.sleep, 30.0)
    start = time.monotonic()
    helpers.close(kill=True)
    assert time.monotonic() - start < helpers_module.JOIN_SECONDS / 2
    assert _ends_soon(second, seconds=40.0)  # it ends after its job, at its answer to a closed pipe


_NO_ZOMBIES = """
import ctypes, os, sys, time
from trialsim.report.helpers import Helpers
if __name__ == "__main__":
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans come to this process
    for kill in (False, True):
        with Helpers([(), ()]) as helpers:
            forked = helpers.pids()[1]
            if kill:
                helpers.submit(1, time.sleep, 30.0)
                helpers.close(kill=True)
        state, deadline = "", time.monotonic() + 15.0  # reaped soon; a busy machine may take more than a moment
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{forked}/stat", encoding="utf-8") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]  # Z: a zombie left to this process
            except FileNotFoundError:
                state = "gone"
                break
            time.sleep(0.1)
        print(kill, state)
"""


@pytest.mark.skipif(not helpers_module.CAN_FORK, reason="helpers are forked from a warmed one on Linux only")
def test_forked_helpers_leave_no_zombie_even_under_a_subreaper(tmp_path):
    # found by review: stopped (Ctrl-C), the first helper died before reaping its forked one, which a subreaper (a
    # command run as a container's first process) then held as a zombie
    if usable_cores() < 2:
        pytest.skip("one usable core: no helper process")
    assert _script_output(tmp_path / "subreaper.py", _NO_ZOMBIES).split() == ["False", "gone", "True", "gone"]


def _script_output(path: Path, text: str, unbuffered: bool = True) -> str:
    """What the script ``text``, written to ``path`` and run from the repository (``unbuffered``: as the environment
    has it; else with Python's output buffered), prints."""
    path.write_text(text, encoding="utf-8")
    root = str(Path(__file__).parents[1])
    env = {k: v for k, v in os.environ.items() if unbuffered or k != "PYTHONUNBUFFERED"} | {"PYTHONPATH": root}
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120, check=True,
                          env=env, cwd=root).stdout


def _print_warm_up() -> None:
    """A warm-up step that prints (into the helper's output buffer, not flushed)."""
    print("WARMED", os.getpid())


_ONE_PRINT = f"""
from trialsim.report.helpers import Helpers
if __name__ == "__main__":
    with Helpers([("{__name__}:_print_warm_up",), ("{__name__}:_print_warm_up",)]) as helpers:
        helpers.pids()
"""


@pytest.mark.skipif(not helpers_module.CAN_FORK, reason="helpers are forked from a warmed one on Linux only")
def test_a_forked_helper_does_not_repeat_what_its_parent_printed(tmp_path):
    # found by review: the forked helper flushed, at its end, the output its parent had buffered before the fork
    if usable_cores() < 2:
        pytest.skip("one usable core: no helper process")
    assert _script_output(tmp_path / "prints.py", _ONE_PRINT, unbuffered=False).count("WARMED") == 1


def test_where_helpers_are_not_forked_each_warms_up_on_its_own(monkeypatch):
    # the path of systems without fork (CAN_FORK False: Windows, macOS), run here by switching forking off
    if usable_cores() < 2:
        pytest.skip("one usable core: no helper process")
    monkeypatch.setattr(helpers_module, "CAN_FORK", False)
    step = f"{__name__}:{_record_warm_up.__name__}"
    with Helpers([(step,), (step,)]) as helpers:
        first, second = helpers.pids()
        assert [helpers.submit(k, _warmed_in).result() for k in range(2)] == [[first], [second]]
        assert [helpers.submit(k, os.getppid).result() for k in range(2)] == [os.getpid()] * 2
        started = [h._process for h in helpers._helpers]  # noqa: SLF001
    assert [p.exitcode for p in started] == [0, 0]


@pytest.mark.skipif(not helpers_module.CAN_FORK, reason="helpers are forked from a warmed one on Linux only")
def test_a_forked_helper_outlives_a_dead_first_and_a_first_that_dies_before_forking_leaves_its_jobs_here():
    if usable_cores() < 2:
        pytest.skip("one usable core: no helper process")
    with Helpers([(), ()]) as helpers:
        first, second = helpers.pids()
        helpers._helpers[0]._process.kill()  # noqa: SLF001 - as the kernel's out-of-memory killer would
        assert helpers.submit(1, os.getpid).result() == second  # the forked one works on
        assert helpers.submit(0, os.getpid).result() in (os.getpid(), second)
    with Helpers([(f"{__name__}:_slow_when_niced",), ()], early=True) as helpers:
        helpers._helpers[0]._process.kill()  # noqa: SLF001 - dies warming up: the second is never forked
        assert helpers.submit(1, os.getpid).result() == os.getpid()  # its jobs run here
    assert len(helpers) == 0


def _docx_widths(table) -> list[int]:
    from docx.oxml.ns import qn

    return [int(g.get(qn("w:w"))) for g in table._tbl.tblGrid.findall(qn("w:gridCol"))]


def test_docx_is_a4_with_landscape_wide_tables_sized_columns_and_repeated_headers(tmp_path):
    from docx import Document
    from docx.oxml.ns import qn

    _, files = written_report(DEFAULT_CONFIG)
    doc = Document(str(files["docx"]))
    def mm(section):
        return round(section.page_width.mm), round(section.page_height.mm)

    assert mm(doc.sections[0]) == (210, 297)
    assert (297, 210) in [mm(s) for s in doc.sections]
    assert all(mm(s) in ((210, 297), (297, 210)) for s in doc.sections)
    body = [t for t in doc.tables if len(t.columns) > 2]
    assert body
    for t in body:
        header = t.rows[0]._tr.trPr
        assert header is not None and header.find(qn("w:tblHeader")) is not None
        widths = _docx_widths(t)
        assert len(set(widths)) > 1 or len(widths) < 3  # sized to the content, not equal
    # Letter on request
    letter = write_docx(build_report(planned(CRP_CONFIG), []), tmp_path / "letter.docx", page_size="Letter")
    sec = Document(str(letter)).sections[0]
    assert (round(sec.page_width.mm, 1), round(sec.page_height.mm, 1)) == (215.9, 279.4)


def test_every_format_is_written_and_the_paragraph_is_plain_text():
    out, files = written_report(DEFAULT_CONFIG)
    assert set(files) == {"html", "pdf", "md", "docx", "txt", "check"}
    text = files["txt"].read_text(encoding="utf-8")
    assert text.startswith("The primary endpoint") and "<" not in text and "**" not in text
    # what the project's sources do not confirm is marked in the entry (never guessed) and listed to check
    check = files["check"].read_text(encoding="utf-8")
    assert "Borstlap et al. 2017: check the year (2017 or 2018)" in check and "Fouda et al.: check the journal" in check
    documents = files["md"].read_text(encoding="utf-8") + files["html"].read_text(encoding="utf-8")
    assert not re.search(r"(?i)approximate|not verified|find by (PMID|DOI)", documents)
    assert "Borstlap et al. Ann Surg. 2017. PMID 28746154. [To be confirmed: year (2017 or 2018).]" in documents


def test_reference_entries_lead_with_their_citation_and_keep_its_letter():
    """An entry is found in the list under the words the text cites it by."""
    lib = load_library()
    assert lib.get("nct06536712").text().startswith("NCT06536712. ")
    assert lib.get("bmcsurg2011").text().startswith("BMC Surg 2011. ")
    a, b = lib.get("matthiessen2007"), lib.get("matthiessen2007dcr")
    assert {a.short, b.short} == {"Matthiessen et al. 2007a", "Matthiessen et al. 2007b"}
    for ref in (a, b):
        assert ref.short[-5:] in ref.text()  # "2007a" in the entry too
    assert lib.get("qu2015").text().startswith("Qu et al. Clinical risk factors")


def test_a_planning_result_without_citations_still_reports(tmp_path):
    """A scenario given as an object (no config file): values are defaults or unsourced, nothing breaks."""
    res = plan(load_scenario(CRP_CONFIG), parts=("run",), n_sims=200, seed=1, n_jobs=1)
    assert isinstance(res, PlanningResult)
    report = build_report(res, [])
    origins = set(report.tables["assumptions"].frame["Set in"])
    assert origins == {"trialsim default", "scenario"}
    tables = build_tables(plan(CRP_CONFIG, overrides=["endpoints.crp_pod3.effect=0.7"], parts=("run",), n_sims=200,
                               seed=1, n_jobs=1))
    row = tables["assumptions"].frame.loc["endpoints.crp_pod3.effect"]
    assert (row["Value"], row["Set in"]) == ("0.7", "command line")


def test_multiplicity_quotes_the_simulated_chance_of_any_false_positive():
    result = planned(DEFAULT_CONFIG)
    null = result.frame("null_decisions")
    hit = null[(null.rule == "any_test") & (null.outcome == "any_reject")].iloc[0]
    report = build_report(result, [])
    m = report.tables["multiplicity"]
    simulated = m.cell("any_simulated", "Value")
    assert simulated.startswith(f"{100 * hit['mean']:.1f}%"), simulated
    # one marker on three days and two tests per endpoint are dependent: fewer trials have any rejection
    assert hit["mean"] < float(m.cell("any_independent", "Value").rstrip("%")) / 100
    assert f"at least one of them in {simulated} of simulated trials" in report.all_text()


def test_the_headline_gives_the_timeline():
    report = build_report(planned(DEFAULT_CONFIG), [])
    timeline = dict(report.headline.rows)["Timeline"]
    assert timeline.startswith("Time to full enrolment: median ") and "planned completion date" in timeline
    assert "the power figures assume every planned patient is enrolled, each endpoint then losing" in timeline  # no [flow] in the config


def test_markdown_cells_keep_the_users_backslashes_and_their_columns():
    """A label "SSI \\| $" was written "SSI \\\\| $": GFM reads an escaped backslash and a column break there."""
    label = "SSI \\| $"
    cell = document._md_cell(label)
    assert cell == "SSI \\\\\\| $"
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark").enable("table")
    html = md.render(f"| a | b |\n|---|---|\n| {cell} | x |\n")
    assert "<td>SSI \\| $</td><td>x</td>" in html.replace("\n", "")
    assert md.render(document._md_text("C:\\temp\\*x*")).strip() == "<p>C:\\temp\\*x*</p>"
