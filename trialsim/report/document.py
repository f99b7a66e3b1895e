"""The planning report: one content model written as self-contained HTML, Markdown and Word (.docx).

:func:`~trialsim.report.tables.build_tables` turns a planning result (a
:class:`~trialsim.planning.plan.PlanningResult`, passed in: the report layer sits below planning and
never imports it) into display tables; the justification paragraph (:mod:`trialsim.report.paragraph`)
quotes cells of these very tables, so the numbers in the text are the numbers in the tables.
:func:`build_report` arranges sections, tables, figures and the paragraph; ``render_html``,
``render_markdown`` and ``write_docx`` render it. Every user-provided string (titles, names,
sources) is escaped in HTML; the HTML is well-formed XHTML (it parses with a strict XML parser),
embeds every figure as a PNG data URI and needs no other file.
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trialsim.report.figures import FigureFile, draw_figures
from trialsim.report.paragraph import Paragraph, justification
from trialsim.report.tables import Table, build_tables

FORMATS = ("html", "md", "docx")


# ---------------------------------------------------------------------------------------------------
# the report's content
# ---------------------------------------------------------------------------------------------------
@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)  # str paragraphs, Table, FigureFile, ("note", str)


@dataclass
class Report:
    title: str
    subtitle: str
    sections: list[Section]
    justification: Paragraph
    tables: dict[str, Table]
    figures: list


def build_report(result, figures: list) -> Report:
    """Arrange tables, figures and the justification paragraph into sections."""
    tables = build_tables(result)
    para = justification(result, tables)
    d = result.design
    prov = result.provenance
    figs = {f.name: f for f in figures}
    title = d.get("title") or d["name"]
    subtitle = (f"trialsim planning report | scenario {d['name']} | seed {prov.get('seed')} | config hash "
                f"{prov.get('config_hash')} | {prov.get('created', '')}")
    sections = []
    s = Section("Sample-size justification (ready to paste)", [para.text])
    sections.append(s)
    s = Section("Design")
    if d.get("description"):
        s.blocks.append(str(d["description"]))
    s.blocks.append(tables["design"])
    sections.append(s)
    if "power" in tables:
        what = "Type I error" if "Power (simulated)" not in tables["power"].frame.columns else "Power"
        sections.append(Section(f"{what} at the planned design", [tables["power"]]))
    if "sample_sizes" in tables:
        blocks = [tables["sample_sizes"]]
        if "sample_size_sawtooth" in figs:
            blocks.append(figs["sample_size_sawtooth"])
        targets = " and ".join(f"{100 * float(p):.0f}%" for p in sorted(result.settings.get("power", [0.8, 0.9])))
        sections.append(Section(f"Sample sizes for {targets} power", blocks))
    if "mde" in tables:
        sections.append(Section("Minimal detectable effects", [tables["mde"]]))
    pilot = [tables[k] for k in ("pilot_rates", "pilot_ratios", "pilot_sd_limits", "pilot_guidance") if k in tables]
    if pilot:
        sections.append(Section("Pilot and feasibility estimates (CONSORT extension for pilot trials)", pilot))
    curve_figs = [figs[k] for k in ("power_vs_n", "power_vs_effect", "power_heatmap") if k in figs]
    if curve_figs:
        sections.append(Section("Power curves", curve_figs))
    if "sweep" in tables:
        sections.append(Section("Sweep", [tables["sweep"]]))
    if "assumptions" in tables:
        sections.append(Section("Assumptions and sources", [tables["assumptions"]]))
    appendix = [tables[k] for k in ("sample_sizes_all", "mde_all") if k in tables]
    settings = result.settings
    appendix.append(("note", "Settings: " + ", ".join(f"{k} = {v}" for k, v in settings.items())))
    appendix.append(("note", "Provenance: " + ", ".join(f"{k} = {v}" for k, v in prov.items() if not isinstance(v, dict))))
    sections.append(Section("Appendix: all endpoints, settings and provenance", appendix))
    references = getattr(result, "references", None) or {}
    sections.append(Section("References", [("note", ref) for ref in references.values()]))
    return Report(title, subtitle, sections, para, tables, figures)


# ---------------------------------------------------------------------------------------------------
# writers
# ---------------------------------------------------------------------------------------------------
_CSS = """
body{font-family:Helvetica,Arial,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
.subtitle{color:#666;font-size:.85em}.justification{background:#f4f7fb;border-left:4px solid #0072b2;padding:.8em 1em}
table{border-collapse:collapse;margin:.8em 0;font-size:.82em}caption{text-align:left;font-weight:bold;margin-bottom:.3em}
th,td{border:1px solid #ccc;padding:.25em .5em;vertical-align:top;text-align:left}th{background:#eef1f5}
.note{color:#555;font-size:.82em}figure{margin:1.2em 0}figure img{max-width:100%;height:auto}
figcaption{font-size:.85em;color:#444}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in t.frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in t.frame.itertuples(index=False))
    note = f'<p class="note">{_e(t.notes)}</p>' if t.notes else ""
    return f"<table><caption>{_e(t.caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def _html_figure(f) -> str:
    data = base64.b64encode(Path(f.png).read_bytes()).decode("ascii")
    return (f'<figure id="fig-{_e(f.name)}"><img src="data:image/png;base64,{data}" alt="{_e(f.caption)}" />'
            f"<figcaption>{_e(f.caption)}</figcaption></figure>")


def render_html(report: Report) -> str:
    """The whole report as one self-contained, well-formed XHTML document."""
    parts = ['<?xml version="1.0" encoding="utf-8"?>', "<!DOCTYPE html>",
             '<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head><meta charset="utf-8" />',
             f"<title>{_e(report.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_e(report.title)}</h1>", f'<p class="subtitle">{_e(report.subtitle)}</p>']
    for i, s in enumerate(report.sections):
        parts.append(f"<h2>{_e(s.title)}</h2>")
        for b in s.blocks:
            if isinstance(b, Table):
                parts.append(_html_table(b))
            elif isinstance(b, FigureFile):
                parts.append(_html_figure(b))
            elif isinstance(b, tuple):
                parts.append(f'<p class="note">{_e(b[1])}</p>')
            else:
                cls = ' class="justification"' if i == 0 else ""
                parts.append(f"<p{cls}>{_e(b)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _md_escape(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _md_table(t: Table) -> str:
    cols = list(t.frame.columns)
    lines = [f"**{_md_escape(t.caption)}**", "", "| " + " | ".join(_md_escape(c) for c in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_md_escape(v) for v in row) + " |" for row in t.frame.itertuples(index=False)]
    if t.notes:
        lines += ["", f"*{_md_escape(t.notes)}*"]
    return "\n".join(lines)


def render_markdown(report: Report, figure_dir: str = "figures") -> str:
    out = [f"# {_md_escape(report.title)}", "", f"*{_md_escape(report.subtitle)}*", ""]
    for i, s in enumerate(report.sections):
        out += [f"## {_md_escape(s.title)}", ""]
        for b in s.blocks:
            if isinstance(b, Table):
                out += [_md_table(b), ""]
            elif isinstance(b, FigureFile):
                out += [f"![{_md_escape(b.caption)}]({figure_dir}/{Path(b.png).name})", "", f"*{_md_escape(b.caption)}*", ""]
            elif isinstance(b, tuple):
                out += [f"*{_md_escape(b[1])}*", ""]
            else:
                out += [("> " if i == 0 else "") + _md_escape(b), ""]
    return "\n".join(out)


def write_docx(report: Report, path: str | Path) -> Path:
    """The report as a Word document (python-docx): headings, paragraphs, tables, PNG figures."""
    from docx import Document  # heavy: only when a Word file is asked for
    from docx.shared import Inches, Pt

    doc = Document()
    style = doc.styles["Normal"]
    style.font.name = "Calibri"
    style.font.size = Pt(10)
    for sec in doc.sections:
        sec.left_margin = sec.right_margin = Inches(0.8)
    doc.add_heading(report.title, level=0)
    p = doc.add_paragraph(report.subtitle)
    p.runs[0].italic = True
    for s in report.sections:
        doc.add_heading(s.title, level=1)
        for b in s.blocks:
            if isinstance(b, Table):
                cap = doc.add_paragraph()
                cap.add_run(b.caption).bold = True
                cols = list(b.frame.columns)
                table = doc.add_table(rows=1, cols=len(cols))
                table.style = "Table Grid"
                for j, c in enumerate(cols):
                    cell = table.rows[0].cells[j]
                    cell.text = str(c)
                    for run in cell.paragraphs[0].runs:
                        run.bold = True
                for row in b.frame.itertuples(index=False):
                    cells = table.add_row().cells
                    for j, v in enumerate(row):
                        cells[j].text = str(v)
                for row in table.rows:
                    for cell in row.cells:
                        for para in cell.paragraphs:
                            for run in para.runs:
                                run.font.size = Pt(7.5)
                if b.notes:
                    n = doc.add_paragraph(b.notes)
                    n.runs[0].italic = True
                    n.runs[0].font.size = Pt(8)
            elif isinstance(b, FigureFile):
                doc.add_picture(str(b.png), width=Inches(6.7))
                c = doc.add_paragraph(b.caption)
                c.runs[0].italic = True
                c.runs[0].font.size = Pt(8.5)
            elif isinstance(b, tuple):
                n = doc.add_paragraph(b[1])
                n.runs[0].font.size = Pt(8.5)
            else:
                doc.add_paragraph(str(b))
    path = Path(path)
    doc.save(path)
    return path


def write_report(result, out_dir: str | Path, *, formats=FORMATS, name: str = "report") -> dict[str, Path]:
    """Draw the figures and write report.html (self-contained), report.md and report.docx into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown report formats {sorted(unknown)}; choose from {FORMATS}")
    figures = draw_figures(result, out_dir / "figures")
    report = build_report(result, figures)
    written: dict[str, Path] = {}
    if "html" in formats:
        written["html"] = out_dir / f"{name}.html"
        written["html"].write_text(render_html(report), encoding="utf-8")
    if "md" in formats:
        written["md"] = out_dir / f"{name}.md"
        written["md"].write_text(render_markdown(report), encoding="utf-8")
    if "docx" in formats:
        written["docx"] = write_docx(report, out_dir / f"{name}.docx")
    (out_dir / "justification.txt").write_text(report.justification.text + "\n", encoding="utf-8")
    return written
