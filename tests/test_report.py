"""Tests for the planning report: figures, tables, the justification paragraph, HTML/Markdown/docx, --from."""
from __future__ import annotations

import argparse
import base64
import re

import pytest

from tests.conftest import DEFAULT_CONFIG
from trialsim.planning.plan import load_planning, plan
from trialsim.report.document import build_report, build_tables, render_html, write_report
from trialsim.report.paragraph import justification

HOSTILE_TITLE = '<script>alert("x")</script> & \'quotes\' <b>bold</b>'


@pytest.fixture(scope="module")
def result():
    """A full planning result of the registered design, with small Monte Carlo sizes (about 10 s)."""
    return plan(DEFAULT_CONFIG, n_sims=2000, search_sims=300, curve_sims=200, n_max=600, seed=7, n_jobs=1)


@pytest.fixture(scope="module")
def written(result, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    result.save(out)
    files = write_report(result, out)
    return out, files


def _strip_words(text: str) -> str:
    """Drop the numbers that are words of the sentence, not results: literature years, "95% confidence"."""
    text = re.sub(r"\b(19|20)\d\d\b", "", text)
    return text.replace("95% confidence", "confidence")


def test_paragraph_numbers_are_the_tables_numbers(result):
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


def test_paragraph_justifies_the_registered_design_as_a_pilot(result):
    tables = build_tables(result)
    text = justification(result, tables).text
    assert "pilot and feasibility study" in text and "Eldridge" in text
    assert "Browne (1995)" in text and "Julious (2005)" in text and "Teare" in text and "Whitehead" in text
    prim = "leak_1m|fisher"
    assert tables["power"].cell(prim, "Exact power") in text
    assert tables["sample_sizes"].cell("leak_1m|fisher|0.8", "n per arm") in text
    assert tables["mde"].cell(prim, "Minimal detectable effect") == "none"


def test_paragraph_of_a_powered_design_is_a_power_statement(result):
    """Changing the numbers changes the words: a design with the target power gets no pilot justification."""
    import copy

    powered = copy.copy(result)
    powered.frames = dict(result.frames)
    power = result.frame("power").copy()
    power.loc[(power.endpoint == "leak_1m") & (power.test == "fisher"), "power"] = 0.85
    powered.frames["power"] = power
    text = justification(powered, build_tables(powered)).text
    assert "85.0% power" in text and "pilot" not in text


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


def test_html_escapes_user_strings(result, tmp_path):
    import copy

    from lxml import etree

    hostile = copy.copy(result)
    hostile.design = dict(result.design, title=HOSTILE_TITLE, description=HOSTILE_TITLE, control_name="<i>pl&cebo</i>")
    text = render_html(build_report(hostile, []))
    tree = etree.fromstring(text.encode("utf-8"), etree.XMLParser(recover=False))
    ns = {"h": "http://www.w3.org/1999/xhtml"}
    assert tree.findall(".//h:script", ns) == [] and tree.findall(".//h:i", ns) == []
    assert tree.find(".//h:h1", ns).text == HOSTILE_TITLE
    assert "&lt;script&gt;" in text


def test_markdown_and_docx(written, result):
    from docx import Document

    out, files = written
    md = files["md"].read_text(encoding="utf-8")
    para = (out / "justification.txt").read_text(encoding="utf-8").strip()
    assert para.replace("|", "\\|") in md
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


def test_report_from_saved_folder_equals_the_original(written, result):
    out, _ = written
    back = load_planning(out)
    a, b = build_tables(result), build_tables(back)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].frame.equals(b[name].frame), name
    assert justification(back, b).text == justification(result, a).text


def test_report_from_a_plain_run_folder_does_not_simulate(tmp_path, monkeypatch):
    from trialsim.api import run
    from trialsim.planning import search

    run(DEFAULT_CONFIG, n_sims=1000, seed=3, n_jobs=1).save(tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("simulated trials while reading a finished run")

    monkeypatch.setattr(search, "nested_rejections", forbidden)
    monkeypatch.setattr(search, "effect_rejections", forbidden)
    monkeypatch.setattr("trialsim.api.run", forbidden)
    monkeypatch.setattr("trialsim.planning.samplesize.nested_rejections", forbidden)
    monkeypatch.setattr("trialsim.planning.mde.effect_rejections", forbidden)
    monkeypatch.setattr("trialsim.planning.curves.nested_rejections", forbidden)
    monkeypatch.setattr("trialsim.planning.curves.effect_rejections", forbidden)
    back = load_planning(tmp_path, n_max=400)  # a smaller search limit keeps the exact scans short
    assert len(back.frame("power")) and len(back.frame("sample_sizes")) and len(back.frame("heatmap"))
    files = write_report(back, tmp_path / "report")
    assert files["html"].is_file()
    text = (tmp_path / "report" / "justification.txt").read_text()
    assert "pilot and feasibility" in text


def _cli(argv):
    from trialsim import cli, cli_planning

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "report" not in sub.choices:  # until cli.py adds them
        cli_planning.add_parsers(sub)
    args = parser.parse_args(argv)
    return cli_planning.COMMANDS[args.command](args)


def test_cli_curves_and_report_from_a_folder(written, tmp_path, capsys):
    out, _ = written
    assert _cli(["curves", "--from", str(out), "--out", str(tmp_path / "c")]) == 0
    assert len(list((tmp_path / "c" / "figures").glob("*.svg"))) == 4
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
