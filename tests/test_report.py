"""Tests for the planning report: figures, tables, the justification paragraph, HTML/Markdown/docx, --from.

The planned results and written reports are computed once per test session (:func:`planned`,
:func:`written_report`) and shared with tests/test_documents.py.
"""
from __future__ import annotations

import argparse
import atexit
import base64
import copy
import functools
import io
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import CRP_CONFIG, DEFAULT_CONFIG
from trialsim.config.loader import load_scenario, with_values
from trialsim.model import build_model
from trialsim.planning.plan import load_planning, plan
from trialsim.report.document import build_report, build_tables, render_html, render_markdown, write_report
from trialsim.report.figures import FigureStyle, draw_figures, draw_planned, planned_figures
from trialsim.report.helpers import Helpers
from trialsim.report.paragraph import justification

HOSTILE_TITLE = '<script>alert("x")</script> & \'quotes\' <b>bold</b>'
# Small Monte Carlo sizes and searches: the whole report in seconds (n_max 400: the primary's 90% size is
# then "not reached", which the text must say too).
SMALL = dict(n_sims=2000, search_sims=100, curve_sims=200, n_max=400, curve_n_max=150, seed=7, n_jobs=1)


# Boschloo's exact sample-size scan is left out here (its exact power and sample sizes are tested with the analysis
# and the planning); the report's handling of a test does not depend on which test it is.
OVERRIDES = {DEFAULT_CONFIG: ('endpoints.leak_1m.tests=["fisher", "chi2"]',)}


@functools.cache
def planned(config: Path):
    """A full planning result of ``config`` with :data:`SMALL` settings (computed once per session)."""
    return plan(config, overrides=OVERRIDES.get(config, ()), **SMALL)


@functools.cache
def written_report(config: Path, formats: tuple[str, ...] = ("html", "pdf", "md", "docx", "txt")) -> tuple[Path, dict]:
    """The planning result of ``config`` saved and its report written in ``formats`` (once per session)."""
    root = Path(tempfile.mkdtemp(prefix=f"trialsim-{config.stem}-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)  # the session's documents are not left in the temp folder
    out = root / "report"
    result = planned(config)
    result.save(out)
    return out, write_report(result, out, formats=formats)


CRP_FORMATS = ("html", "md", "docx", "txt")  # its PDF is the same HTML, checked for the registered trial


@pytest.fixture(scope="module")
def result():
    """A full planning result of the registered design, with small Monte Carlo sizes."""
    return planned(DEFAULT_CONFIG)


@pytest.fixture(scope="module")
def written():
    return written_report(DEFAULT_CONFIG)


@pytest.fixture(scope="module")
def crp():
    """The randomised 30 vs 30 trial with a continuous primary and no leak, planned and written."""
    out, files = written_report(CRP_CONFIG, CRP_FORMATS)
    return planned(CRP_CONFIG), out, files


def _strip_words(text: str) -> str:
    """Drop the numbers that are words of the sentence, not results: literature years, "95% confidence"."""
    text = re.sub(r"\b(19|20)\d\d\b", "", text)
    return text.replace("95% confidence", "confidence").replace("95% Monte Carlo", "Monte Carlo")


def _numbers_are_cells(result):
    tables = build_tables(result)
    para = justification(result, tables)
    assert para.facts
    for fact in para.facts:
        assert tables[fact.table].cell(fact.row, fact.column) == fact.text
        assert fact.text in para.text
    # every number in the text comes from a table cell
    rest = _strip_words(para.text)
    for text in sorted({f.text for f in para.facts}, key=len, reverse=True):
        rest = rest.replace(text, "")
    assert not re.search(r"\d", rest), rest
    return para


def test_paragraph_numbers_are_the_tables_numbers(result, crp):
    _numbers_are_cells(result)
    _numbers_are_cells(crp[0])


def test_paragraph_justifies_the_registered_design_as_a_pilot(result):
    tables = build_tables(result)
    text = justification(result, tables).text
    assert "pilot and feasibility study" in text and "Eldridge" in text
    assert "Browne (1995)" in text and "Julious (2005)" in text and "Teare" in text and "Whitehead" in text
    prim = "leak_1m|fisher"
    assert tables["power"].cell(prim, "Exact power") in text
    assert tables["sample_sizes"].cell("leak_1m|fisher|0.8", "n per arm") in text
    assert tables["mde"].cell(prim, "Minimal detectable effect") == "none"


def test_paragraph_says_what_a_panel_must_know_to_read_it(result, crp):
    """From a statistical review of the pasted paragraph: a non-randomised allocation is said in the paragraph itself
    (it was only in the Design section), the type I errors' own trials and Monte Carlo error are given (the paragraph
    gave the power table's for both), the main trial's size is tied to its assumptions, and a rare timeline chance
    carries its 95% upper limit. A randomised design gets no allocation caveat."""
    tables = build_tables(result)
    text = justification(result, tables).text
    assert "Allocation is sequential (first patients control, then treatment; not randomised): the figures below assume" \
        in text and "comparisons between the arms are descriptive" in text
    t = tables["computation"]
    assert (f"power from {t.cell('n_sims', 'Value')} and type I errors from {t.cell('null_sims', 'Value')} simulated "
            f"trials") in text
    assert f"are {t.cell('max_mc_se', 'Value')} and {t.cell('null_max_mc_se', 'Value')} percentage points" in text
    assert "that size rests on the assumed rates and effect" in text
    assert "descriptive" in text and "If a main trial's outcome is a continuous one" in text
    crp_result = crp[0]
    assert "not randomised" not in justification(crp_result, build_tables(crp_result)).text


def test_paragraph_of_a_powered_design_is_a_power_statement(result):
    """Changing the numbers changes the words: a design with the target power gets no pilot justification."""
    powered = copy.copy(result)
    powered.frames = dict(result.frames)
    power = result.frame("power").copy()
    power.loc[(power.endpoint == "leak_1m") & (power.test == "fisher"), "power"] = 0.85
    powered.frames["power"] = power
    text = justification(powered, build_tables(powered)).text
    assert "85.0% power" in text and "pilot" not in text


def test_mde_quotes_the_power_tables_number(result):
    """The power at the assumed effect in the MDE table is the power table's (the same engine run)."""
    power, mde = result.frame("power"), result.frame("mde")
    mc = {(r.endpoint, r.test): r.power for r in power[power.method == "monte_carlo"].itertuples()}
    exact = {(r.endpoint, r.test): r.power for r in power[power.method == "exact"].itertuples()}
    assert len(mde) == len(mc)
    for r in mde.itertuples():
        if r.method == "exact":
            assert r.power_at_assumed == pytest.approx(exact[(r.endpoint, r.test)], rel=1e-9, abs=1e-15)
        else:
            assert r.power_at_assumed == mc[(r.endpoint, r.test)]
    tables = build_tables(result)
    row = "il6_drain_mean_log|welch_log"
    assert tables["mde"].cell(row, "Power at assumed") == tables["power"].cell(row, "Power (simulated)")


def test_html_is_well_formed_self_contained_and_has_every_figure(written):
    from lxml import etree

    out, files = written
    html_text = files["html"].read_text(encoding="utf-8")
    tree = etree.fromstring(html_text.encode("utf-8"), etree.XMLParser(recover=False, resolve_entities=False))
    ns = {"h": "http://www.w3.org/1999/xhtml"}
    images = tree.findall(".//h:img", ns)
    pngs = sorted((out / "figures").glob("*.png"))
    assert len(images) == len(pngs) == 4
    for img in images:
        src = img.get("src")
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'src="(?!data:)', html_text)  # nothing to fetch
    names = {f.get("id") for f in tree.findall(".//h:figure", ns)}
    assert names == {f"fig-{p.stem}" for p in pngs}
    # also parses as HTML without errors
    import lxml.html

    doc = lxml.html.document_fromstring(html_text.encode("utf-8"))
    assert len(doc.xpath("//img")) == 4


def test_html_escapes_user_strings(result):
    from lxml import etree

    hostile = copy.copy(result)
    hostile.design = dict(result.design, title=HOSTILE_TITLE, description=HOSTILE_TITLE, control_name="<i>pl&cebo</i>")
    text = render_html(build_report(hostile, []))
    tree = etree.fromstring(text.encode("utf-8"), etree.XMLParser(recover=False))
    ns = {"h": "http://www.w3.org/1999/xhtml"}
    assert tree.findall(".//h:script", ns) == [] and tree.findall(".//h:i", ns) == []
    assert tree.find(".//h:h1", ns).text == HOSTILE_TITLE
    assert "&lt;script&gt;" in text


def test_markdown_and_docx(written):
    from docx import Document

    out, files = written
    md = files["md"].read_text(encoding="utf-8")
    para = (out / "justification.txt").read_text(encoding="utf-8").strip()
    assert para in md  # plain text needs no Markdown escapes ("n per arm > 150" stays as it is)
    assert "&lt;" not in md and "&gt;" not in md
    for link in re.findall(r"\]\((figures/[^)]+\.png)\)", md):
        assert (out / link).is_file()
    assert len(re.findall(r"\]\((figures/[^)]+\.png)\)", md)) == 4
    doc = Document(str(files["docx"]))
    assert len(doc.inline_shapes) == 4
    assert any(para[:80] in p.text for p in doc.paragraphs)
    assert len(doc.tables) >= 8


def test_figures_are_png_and_svg(written):
    from PIL import Image

    out, _ = written
    for png in (out / "figures").glob("*.png"):
        assert png.with_suffix(".svg").stat().st_size > 1000
        with Image.open(png) as im:
            assert im.size[0] >= 1200  # 7.2 in at 200 dpi


def _svg_without_date_and_ids(path: Path) -> str:
    """An SVG's text without what matplotlib makes new on every save: the date and the random element ids."""
    text = re.sub(r"<dc:date>[^<]*</dc:date>", "", path.read_text(encoding="utf-8"))
    return re.sub(r'(#|id=")([a-zA-Z]+)[0-9a-f]{10}', r"\1\2", text)


def test_figures_drawn_in_helper_processes_equal_figures_drawn_here(result, tmp_path):
    planned = planned_figures(result, tmp_path / "helpers")
    assert [p.name for p in planned] == ["power_vs_n", "power_vs_effect", "power_heatmap", "sample_size_sawtooth"]
    with Helpers([(), ()]) as helpers:  # the PNGs shared out, the SVGs drawn again by one helper (as a report does)
        pngs = [helpers.submit(k, draw_planned, p, ("png",)) for k, p in enumerate(planned)]
        assert [j.result() for j in pngs] == [p.file for p in planned]
        assert not list((tmp_path / "helpers").glob("*.svg"))
        for job in [helpers.submit(1, draw_planned, p, ("svg",)) for p in planned]:
            job.result()
    files = draw_figures(result, tmp_path / "here")
    assert [f.name for f in files] == [p.name for p in planned]
    for f in files:
        there = tmp_path / "helpers" / f.svg.name
        assert _svg_without_date_and_ids(f.svg) == _svg_without_date_and_ids(there), f.name
        assert f.png.read_bytes() == there.with_suffix(".png").read_bytes(), f.name


def test_report_from_saved_folder_equals_the_original(written, result):
    out, _ = written
    back = load_planning(out)
    a, b = build_tables(result), build_tables(back)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].frame.equals(b[name].frame), name
    assert justification(back, b).text == justification(result, a).text


def test_report_from_a_plain_run_folder_without_simulating(tmp_path, monkeypatch):
    """``simulate=False``: a finished run's folder completed with the exact and analytic parts only."""
    from trialsim.api import run

    run(DEFAULT_CONFIG, overrides=OVERRIDES[DEFAULT_CONFIG], n_sims=1000, seed=3, n_jobs=1).save(tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("simulated trials while reading a finished run")

    for module, name in (("search", "run_specs"), ("plan", "run_specs"), ("samplesize", "rejections"),
                         ("mde", "rejections"), ("curves", "rejections")):
        monkeypatch.setattr(sys.modules[f"trialsim.planning.{module}"], name, forbidden)
    # small limits keep the exact scans short; the MDE's analytic answers need the model's moments (slow), so no MDE
    back = load_planning(tmp_path, simulate=False, parts=("run", "samplesize", "pilot", "curves"), n_max=150, curve_n_max=150)
    assert len(back.frame("power")) and len(back.frame("sample_sizes")) and len(back.frame("heatmap"))
    files = write_report(back, tmp_path / "report", formats=("html",))
    assert files["html"].is_file()
    text = (tmp_path / "report" / "justification.txt").read_text()
    assert "pilot and feasibility" in text


# --------------------------------------------------------------------------------------------------
# another trial, and the null
# --------------------------------------------------------------------------------------------------
def _visible_text(html_text: str) -> str:
    """The HTML without its embedded figures (base64 data can spell any word)."""
    return re.sub(r'src="data:[^"]*"', 'src=""', html_text)


def test_a_trial_without_a_leak_names_its_own_primary(crp):
    res, out, files = crp
    html_text = _visible_text(files["html"].read_text(encoding="utf-8"))
    md = files["md"].read_text(encoding="utf-8")
    para = (out / "justification.txt").read_text(encoding="utf-8")
    for text in (html_text, md, para):
        assert "leak" not in text.lower()
    primary = build_model(load_scenario(CRP_CONFIG)).primary.label
    assert f"The primary endpoint ({primary})" in para
    assert "ratio of geometric means of 0.75" in para and "Welch t (log)" in para
    tables = build_tables(res)
    assert tables["design"].cell("primary", "Value") == primary
    # the randomised trial's figures: power against n and against the effect (no exact primary)
    assert {p.stem for p in (out / "figures").glob("*.png")} == {"power_vs_n", "power_vs_effect"}
    assert "Surgical site infection within 30 days" in md


def test_a_null_scenario_reports_type_i_error():
    sc = load_scenario(CRP_CONFIG)
    values = {a.effect.path: a.effect.null for a in build_model(sc).analysed if a.effect is not None}
    null = with_values(sc, values)
    res = plan(null, parts=("run",), n_sims=500, seed=3, n_jobs=1)
    assert res.design["null"] and res.frame("power")["null"].all()
    tables = build_tables(res)
    assert "Type I error (simulated)" in tables["power"].frame.columns
    assert not any("Power" in c for c in tables["power"].frame.columns)
    text = justification(res, tables).text
    assert "type I error" in text and " power" not in text
    report = render_markdown(build_report(res, []))
    assert "## Type I error at the planned design" in report


# --------------------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------------------
def _cli(argv):
    from trialsim.cli import planning as cli_planning

    parser = argparse.ArgumentParser(prog="trialsim")
    cli_planning.add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return cli_planning.COMMANDS[args.command](args)


def test_cli_curves_and_report_from_a_folder(written, tmp_path, capsys):
    out, _ = written
    assert _cli(["curves", "--from", str(out), "--out", str(tmp_path / "c")]) == 0
    assert len(list((tmp_path / "c").glob("*.svg"))) == 4  # --out DIR writes into DIR
    assert _cli(["report", str(out), "--out", str(tmp_path / "r"), "--formats", "html"]) == 0
    assert (tmp_path / "r" / "report.html").is_file()
    printed = capsys.readouterr().out
    assert "written:" in printed


def test_cli_rejects_both_or_neither_source(tmp_path):
    from trialsim.config.loader import ConfigError

    with pytest.raises(ConfigError):
        _cli(["report", "--out", str(tmp_path)])
    with pytest.raises(ConfigError):
        _cli(["report", str(DEFAULT_CONFIG), "--from", str(tmp_path), "--out", str(tmp_path)])


def test_cli_samplesize_prints_the_primary(capsys):
    assert _cli(["samplesize", str(CRP_CONFIG), "--endpoint", "ssi_30d", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "Surgical site infection within 30 days" in printed and "Fisher exact" in printed and "80%" in printed


def test_print_column_widths_give_long_text_room_and_keep_every_word_whole():
    """The PDF's fixed table layout gets widths from character counts: they fill the table, the column of long
    sentences gets the most, and no column is narrower than its longest word needs (at the print font)."""
    import pandas as pd

    from trialsim.report.html import CELL_EM, CHAR_EM, MM_PER_PT, PRINT_TABLE_PT, PRINT_TEXT_MM, column_percents
    from trialsim.report.tables import Table

    frame = pd.DataFrame({"Endpoint": ["Anastomotic leak within 1 month", "IL-6 (serum), POD 1"],
                          "n": ["367", "54"],
                          "Detail": ["exact; first reaches it at 853; checked to 1,280 " * 3, "simulated; 95% MC interval 53 to 56"]})
    text_mm = PRINT_TEXT_MM[("A4", False)]
    widths = column_percents(Table("t", "caption", frame), text_mm)
    assert abs(sum(widths) - 100) < 0.05
    assert widths[2] == max(widths) and widths[1] == min(widths)
    em_mm = PRINT_TABLE_PT * MM_PER_PT
    for width, word in zip(widths, ("Anastomotic", "367", "simulated;")):
        assert width / 100 * text_mm >= (len(word) * CHAR_EM + CELL_EM) * em_mm - 1e-9


def test_print_column_widths_apply_to_print_only(result):
    """The widths reach the table as a custom property that only the print stylesheet reads (a browser's screen
    layout stays automatic)."""
    html_text = render_html(build_report(result, []))
    assert "table-layout: fixed" in html_text.split("@media print")[1]
    assert re.search(r'<col style="--print-width: [0-9.]+%" />', html_text)
    assert "col { width: var(--print-width); }" in html_text.split("@media print")[1]


def test_power_panels_say_whether_their_power_is_exact_or_simulated():
    """Panel A of power against n said "Exact power" and panel B nothing, though B mixes exact and simulated series."""
    import pandas as pd

    from trialsim.report.figures import figure_power_vs_n

    def rows(endpoint, test, method):
        return [{"endpoint": endpoint, "test": test, "label": endpoint, "short": endpoint, "n_per_arm": n, "power": n / 100,
                 "mc_se": 0.0, "ci_low": n / 100, "ci_high": n / 100, "method": method, "family": "binary",
                 "primary": endpoint == "leak", "n_sims": 100} for n in (10, 20, 40)]

    mixed = pd.DataFrame(rows("leak", "fisher", "exact") + rows("los", "welch", "exact") + rows("il6", "welch", "monte_carlo"))
    fig = figure_power_vs_n(mixed, planned_n=10, primary="leak")
    assert [ax.get_ylabel() for ax in fig.axes[:2]] == ["Exact power", "Power (exact or simulated)"]
    simulated = mixed.assign(method="monte_carlo")
    fig = figure_power_vs_n(simulated, planned_n=10, primary="leak")
    assert [ax.get_ylabel() for ax in fig.axes[:2]] == ["Simulated power", "Simulated power"]


def test_log_axes_leave_out_200_only_where_labels_would_run_together():
    from matplotlib.figure import Figure

    from trialsim.report.figures import _log_ticks

    ax = Figure().subplots()
    ax.set_xscale("log")
    ax.set_yscale("log")
    _log_ticks(ax.xaxis, 2, 500)  # two decades and more across: "100" and "200" side by side ran together
    _log_ticks(ax.yaxis, 10, 1000)  # stacked: room for every label
    assert list(ax.xaxis.get_majorticklocs()) == [2, 5, 10, 20, 50, 100, 500]
    assert list(ax.yaxis.get_majorticklocs()) == [10, 20, 50, 100, 200, 500, 1000]
    _log_ticks(ax.xaxis, 5, 200)  # under 60x: 1-2-5 throughout
    assert list(ax.xaxis.get_majorticklocs()) == [5, 10, 20, 50, 100, 200]


def test_power_against_effect_panel_says_what_its_power_is(result):
    from trialsim.report.figures import figure_power_vs_effect

    effects = result.frame("effect_curves")
    design = result.design
    fig = figure_power_vs_effect(effects, planned_n=int(design["n_control"]), primary=design["primary_endpoint"])
    other = effects[(effects["endpoint"] != design["primary_endpoint"]) & (effects["n_per_arm"] == int(design["n_control"]))]
    assert set(other["method"]) == {"exact", "monte_carlo"}  # the registered design's secondaries mix both
    assert fig.axes[1].get_ylabel() == "Power (exact or simulated)"


def test_labels_from_configs_are_text_in_figures_never_mathtext():
    from matplotlib.figure import Figure

    title, label = r"Leak $\frac{a}$ rate", "costs $5 vs $10"  # the first is not valid mathtext, the second is
    with FigureStyle():
        fig = Figure()
        ax = fig.add_subplot()
        ax.set_title(title)
        ax.plot([0, 1], [0, 1], label=label)
        ax.legend()
        svg = io.StringIO()
        fig.savefig(svg, format="svg")
    assert title in svg.getvalue() and label in svg.getvalue()


def test_figures_name_their_endpoint_and_assumed_effects():
    from trialsim.report.figures import assumed_effects, figure_power_heatmap

    res = planned(DEFAULT_CONFIG)
    said = assumed_effects(res.frame("endpoints"))
    assert said["il6_drain_mean_log"] == "assumed geometric mean ratio 0.7"
    assert said["los_days"] == "no direct effect assumed"  # it moves only with the leaks
    grid = res.frame("heatmap")
    with FigureStyle():
        fig = figure_power_heatmap(grid, planned=(0.5, 10), title="Anastomotic leak, control 12.4%: exact power")
    assert fig._suptitle is not None and "control 12.4%" in fig._suptitle.get_text()


def test_an_unequal_design_is_planned_and_written_at_its_own_allocation_ratio():
    # found by review: a 10 vs 20 design got equal-arm sample sizes and a paragraph saying "10 patients per arm"
    sc = load_scenario(DEFAULT_CONFIG.parent / "designs" / "ratio_2to1_30.toml",
                       ['endpoints.leak_1m.tests=["fisher"]'])
    res = plan(sc, parts=("run", "samplesize", "pilot"), power=(0.8,), n_sims=500, search_sims=200, seed=3, n_jobs=1)
    sizes = res.frame("sample_sizes").set_index(["endpoint", "test"]).loc[("leak_1m", "fisher")]
    assert sizes["ratio"] == 2.0 and sizes["n_treatment"] == 2 * sizes["n"]
    tables = build_tables(res)
    cell = tables["sample_sizes"].cell("leak_1m|fisher|0.8", "n per arm")
    assert cell == f"{int(sizes['n']):,} + {int(sizes['n_treatment']):,}"
    text = justification(res, tables).text
    assert "10 placebo and 20 exosome patients give" in text and "10 patients per arm" not in text
    assert f"needs {cell} analysable patients (control + treatment; " in text
    assert "At 10 vs 20 " in text or "With 10 vs 20 " in text
    assert "one-sided 80% upper confidence limit of the pilot's SD" in text  # the level of Browne's limit is stated


def test_a_non_randomised_pilot_cites_the_guidance_for_non_randomised_pilots(result):
    text = justification(result, build_tables(result)).text
    assert not result.design["randomised"] and "Lancaster and Thabane 2019" in text
    assert "Guidelines for reporting non-randomised pilot and feasibility studies" in render_markdown(build_report(result, []))


def test_a_log_axis_of_a_decade_or_less_has_ticks_at_the_sizes_users_read():
    from trialsim.report.figures import log_ticks

    assert log_ticks(10, 100) == [10, 20, 30, 40, 50, 60, 80, 100]  # 80 was not among 10, 20, 50, 100
    assert log_ticks(2, 10) == [2, 3, 4, 5, 6, 8, 10]
    assert log_ticks(12, 18) == [12, 18]  # no round number between: the range's own ends


def test_labels_keep_their_acronyms_at_the_start_of_a_title_and_inside_a_sentence():
    from trialsim.labels import in_sentence, upper_first

    assert upper_first("IL-6 (drain) geometric mean ratio") == "IL-6 (drain) geometric mean ratio"
    assert upper_first("risk ratio") == "Risk ratio" and upper_first("") == ""
    assert in_sentence("IL-6 (drain), mean of log") == "IL-6 (drain), mean of log"
    assert in_sentence("Anastomotic leak") == "anastomotic leak"


def _range_rows(n_values, *, label="IL-6 (drain) geometric mean ratio"):
    import pandas as pd

    return pd.DataFrame([{"endpoint": "il6", "test": "welch_log", "label": "IL-6 (drain)", "parameter_label": label,
                          "parameter_kind": "ratio", "no_effect": 1.0, "assumed": 0.7, "effect": e, "facet": None,
                          "ratio": 1.0, "basis": "analysable", "alpha": 0.05, "n_per_arm": n, "power": min(1.0, n / 100 / e),
                          "ci_low": 0.0, "ci_high": 1.0, "method": "monte_carlo"} for e in (0.7, 0.5) for n in n_values])


def test_range_figure_keeps_the_labels_acronym_and_says_its_axis_is_log_scaled():
    from matplotlib.figure import Figure

    from trialsim.report.figures import figure_power_ranges, plot_power_ranges

    frame = _range_rows([10, 18, 26, 50, 80, 100])
    with FigureStyle():
        ax = plot_power_ranges(frame, Figure().add_subplot())
        fig = figure_power_ranges(frame)
    assert ax.get_legend().get_title().get_text() == "IL-6 (drain) geometric mean ratio"  # not "Il-6 (drain) ..."
    assert fig.legends[0].get_title().get_text() == "IL-6 (drain) geometric mean ratio"
    for axes in (ax, fig.axes[0]):
        assert axes.get_xscale() == "log" and axes.get_xlabel() == "Analysable patients per arm (log scale)"
        assert 80 in list(axes.xaxis.get_majorticklocs())
    with FigureStyle():
        linear = plot_power_ranges(_range_rows([40, 60, 80]), Figure().add_subplot())
    assert linear.get_xscale() == "linear" and linear.get_xlabel() == "Analysable patients per arm"


@pytest.mark.parametrize("first, stable", [(367, 367), (102, 111)])
def test_sawtooth_shows_the_first_n_over_the_stable_n_and_names_every_line(first, stable):
    import pandas as pd
    from matplotlib.colors import to_rgb
    from matplotlib.figure import Figure

    from trialsim.report.figures import plot_sawtooth

    curve = pd.DataFrame({"endpoint": "leak", "test": "fisher", "n_per_arm": range(first - 30, stable + 30)})
    curve["power"] = 0.5 + (curve["n_per_arm"] - first) / 1000
    row = {"endpoint": "leak", "test": "fisher", "target_power": 0.5, "n_first": first, "n_stable": stable}
    with FigureStyle():
        ax = plot_sawtooth(curve, row, Figure().add_subplot())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"target power", "first n reaching the target", "n from which power stays at or above it"} <= set(labels)
    lines = {line.get_label(): line for line in ax.lines}
    first_n, stable_n = lines["first n reaching the target"], lines["n from which power stays at or above it"]
    # drawn over the stable n, thinner and in another colour: visible where the two are the same n
    assert first_n.get_zorder() > stable_n.get_zorder() and first_n.get_linewidth() < stable_n.get_linewidth()
    assert to_rgb(first_n.get_color()) != to_rgb(stable_n.get_color())


def test_every_assumed_value_is_starred_above_the_lines_and_none_covers_another():
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure

    from trialsim.report.figures import STAR_SIZE, plot_power_vs_effects

    rows = []
    # a and b coincide (one legend entry, one colour) and share the assumed value: their stars fall on one point
    for endpoint, assumed, steep in (("a", 0.7, 1.0), ("b", 0.7, 1.0), ("c", 0.85, 2.0)):
        rows += [{"endpoint": endpoint, "test": "welch_log", "label": f"Marker {endpoint}", "short": f"Marker {endpoint}",
                  "effect": e, "no_effect": 1.0, "assumed": assumed, "parameter_kind": "ratio",
                  "power": min(1.0, steep * (1 - e)), "mc_se": 0.0, "ci_low": 0.0, "ci_high": 1.0, "method": "exact"}
                 for e in np.linspace(0.3, 1.0, 8)]
    with FigureStyle():
        fig = Figure(dpi=100)
        ax = plot_power_vs_effects(pd.DataFrame(rows), fig.add_subplot())
        fig.canvas.draw()
    stars = [line for line in ax.lines if line.get_marker() == "*"]
    assert len(stars) == 3  # every endpoint's, the coinciding ones' too
    assert min(s.get_zorder() for s in stars) > max(line.get_zorder() for line in ax.lines if line.get_marker() != "*")
    at = [s.get_transform().transform(np.column_stack([s.get_xdata(), s.get_ydata()]))[0] for s in stars]
    apart = min(np.hypot(*(p - q)) for i, p in enumerate(at) for q in at[i + 1:])
    assert apart >= 0.5 * STAR_SIZE * fig.dpi / 72  # pixels: half a star or more between any two centres


@pytest.mark.parametrize("level, text", [(0.05, "5%"), (0.05 / 40, "0.125%"), (0.025, "2.5%"), (1 - 0.025, "97.5%"),
                                         (0.05 / 3, "1.666%"), (1e-6 / 40, "0.0000025%"), (0.8, "80%")])
def test_levels_print_exactly_or_cut_never_rounded_up(level, text):
    from trialsim.labels import fmt_level

    assert fmt_level(level) == text
    assert float(text.rstrip("%")) / 100 <= level * (1 + 1e-12)


def test_effect_panel_draws_an_effect_searched_upwards_towards_benefit_on_the_same_axis():
    # an odds ratio of a better grade is searched above 1: drawn as its reciprocal beside ratios searched below 1
    import pandas as pd
    from matplotlib.figure import Figure

    from trialsim.report.figures import plot_power_vs_effects

    rows = [{"endpoint": e, "test": "mann_whitney", "label": e, "short": e, "parameter_label": "ratio", "parameter_kind": "ratio",
             "no_effect": 1.0, "assumed": a, "effect": v, "n_per_arm": 10, "power": p, "ci_low": p, "ci_high": p, "mc_se": 0.0,
             "method": "monte_carlo"}
            for e, a, values in (("stay", 0.7, (1.0, 0.7, 0.5, 0.25)), ("grade", 1.0, (1.0, 1.5, 2.0, 4.0)))
            for v, p in zip(values, (0.05, 0.2, 0.5, 0.9))]
    with FigureStyle():
        ax = plot_power_vs_effects(pd.DataFrame(rows), Figure().add_subplot())
    lines = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    grade = next(line for label, line in lines.items() if label.lower().startswith("grade"))
    assert "higher is better" in grade.get_label().replace("\n", " ")
    assert sorted(grade.get_xdata()) == pytest.approx([0.25, 0.5, 1 / 1.5, 1.0])  # 1 / OR
    assert ax.xaxis_inverted() and ax.get_xscale() == "linear"  # no effect at the left, for every curve


def test_a_power_no_trial_could_compute_is_not_computable_everywhere_not_0_percent():
    """A 4-day deadline leaves no analysable patient: the run says "not computable (n_valid 0)", and so must the
    report's headline, verdict, tables and paragraph (they once said "0.00%" and "underpowered (0.00% power)")."""
    sc = load_scenario(DEFAULT_CONFIG, ["flow.deadline_days=4"])
    res = plan(sc, parts=("run",), n_sims=200, seed=3, n_jobs=1)
    assert (res.frame("power")["n_valid"] == 0).all()
    tables = build_tables(res)
    cells = tables["power"].frame["Power (simulated)"]
    assert (cells == "not computable (n_valid 0)").all()
    report = render_markdown(build_report(res, []))
    assert "**Power:** not computable (n_valid 0)" in report
    assert "**Power:** 0.00%" not in report and "underpowered" not in report
    assert "No power figure for the primary test is computable" in report
    text = justification(res, tables).text
    assert "a power that is not computable (n_valid 0)" in text and "0.00%" not in text
    multiplicity = tables["multiplicity"].frame
    assert "per_test" not in multiplicity.index  # no "0.00% to 0.00%" for tests that no trial could compute


def test_the_timelines_flow_defaults_are_listed_as_assumptions(result):
    """A design without [flow] gets its timeline from the flow's cited defaults: those inputs (referrals a month,
    eligibility, consent...) are assumptions of the report too, listed as the timeline's alone (they were nowhere)."""
    rows = result.frame("assumptions")
    flow = rows[rows["section"] == "flow"].set_index("key")
    assert {"flow.referrals_per_month", "flow.p_eligible", "flow.p_consent"} <= set(flow.index)
    assert flow["source"].str.startswith("the timeline only").all()


def test_a_pilot_rates_interval_is_at_the_most_likely_count(result):
    """Where 0.6 events are expected, the most likely outcome is none: its interval is 0/10's, not 1/10's (the
    expected count rounded up, which made the exosome row read like the placebo row)."""
    rates = result.frame("pilot_rates").set_index(["endpoint", "arm"])
    row = rates.loc[("leak_1m", "treatment")]
    assert row.expected_events < 1 and row.events_most_likely == 0 and row.ci_low_most_likely == 0.0
    assert build_tables(result)["pilot_rates"].cell("leak_1m|treatment", "95% CI at the most likely count").startswith("0/10: ")


def test_short_tables_are_kept_on_one_page_in_print():
    """A table of up to SHORT_TABLE_ROWS rows is one block in print (caption, rows and notes on one page); a longer
    one runs on over pages with its header repeated."""
    import pandas as pd

    from trialsim.report import html as html_module
    from trialsim.report.tables import Table

    def table(rows: int) -> Table:
        return Table("t", "caption", pd.DataFrame({"a": [str(i) for i in range(rows)]}, index=[str(i) for i in range(rows)]))

    limit = html_module.SHORT_TABLE_ROWS
    assert html_module._table(table(limit), "A4", False)["short"]  # noqa: SLF001
    assert not html_module._table(table(limit + 1), "A4", False)["short"]  # noqa: SLF001
    css = (Path(html_module.__file__).parent / "templates" / "report.css").read_text()
    assert ".table-block.short { break-inside: avoid; }" in css
