"""The report as a Word document (python-docx), ready to paste from.

A4 pages by default (US Letter as an option). A table too wide for a portrait page
(:func:`trialsim.report.content.is_wide`) gets a landscape section of its own; every table has
column widths sized to its content (no column narrower than its longest word, so words are never
broken), a header row repeated on each page (``w:tblHeader``) and rows that do not split across
pages.
"""
from __future__ import annotations

from pathlib import Path

from docx import Document
from docx.enum.section import WD_ORIENT, WD_SECTION
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor

from trialsim.files import replace_file
from trialsim.report.content import Callout, Note, Report, Text, column_chars, is_wide
from trialsim.report.figures import FigureFile
from trialsim.report.tables import Table

PAGE_SIZES = {"A4": (Mm(210), Mm(297)), "Letter": (Mm(215.9), Mm(279.4))}
MARGIN = Mm(18)
TABLE_PT = 7.5  # table text size; a table whose longest words do not fit at this size is set smaller
MIN_TABLE_PT = 6.0
CHAR_EM = 0.6  # average character width in ems of the table font (Calibri; wider substitutes too)
CELL_PADDING = Mm(4.2)  # left + right cell margins (Word and LibreOffice default to 1.9 mm each)


def _set_page(section, page_size: str, landscape: bool) -> None:
    width, height = PAGE_SIZES[page_size]
    section.orientation = WD_ORIENT.LANDSCAPE if landscape else WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = (height, width) if landscape else (width, height)
    section.left_margin = section.right_margin = MARGIN
    section.top_margin = section.bottom_margin = Mm(16)


def _text_width(section):
    return section.page_width - section.left_margin - section.right_margin


def _repeat_header(row) -> None:
    """Mark ``row`` as a header row, repeated at the top of each page the table spans."""
    tr_pr = row._tr.get_or_add_trPr()
    header = OxmlElement("w:tblHeader")
    header.set(qn("w:val"), "true")
    tr_pr.append(header)


def _no_split(row) -> None:
    tr_pr = row._tr.get_or_add_trPr()
    cant = OxmlElement("w:cantSplit")
    cant.set(qn("w:val"), "true")
    tr_pr.append(cant)


def _shade(cell, fill: str) -> None:
    tc_pr = cell._tc.get_or_add_tcPr()
    shd = OxmlElement("w:shd")
    shd.set(qn("w:val"), "clear")
    shd.set(qn("w:color"), "auto")
    shd.set(qn("w:fill"), fill)
    tc_pr.append(shd)


def _fixed_layout(table) -> None:
    tbl_pr = table._tbl.tblPr
    layout = OxmlElement("w:tblLayout")
    layout.set(qn("w:type"), "fixed")
    tbl_pr.append(layout)


def column_widths(t: Table, available, font_pt: float = TABLE_PT) -> tuple[list[int], float]:
    """Column widths (EMU) that fill ``available``, and the font size that lets every longest word fit.

    Each column gets at least its longest word; what is left is shared out by how much more each
    column wants (its longest cell, capped).
    """
    chars = column_chars(t)
    pt = font_pt
    while True:
        per_char = Pt(pt * CHAR_EM)
        need = [int(word * per_char + CELL_PADDING) for word, _ in chars]
        if sum(need) <= available or pt <= MIN_TABLE_PT:
            break
        pt -= 0.5
    want = [int(w * per_char + CELL_PADDING) for _, w in chars]
    spare = available - sum(need)
    extra = [max(0, w - n) for w, n in zip(want, need)]
    total_extra = sum(extra)
    if spare <= 0 or total_extra == 0:
        widths = [int(n * available / max(sum(need), 1)) for n in need] if spare < 0 else list(need)
        if spare > 0:  # everything fits as wanted: spread what is left evenly
            widths = [w + spare // len(widths) for w in widths]
    else:
        share = min(1.0, spare / total_extra)
        widths = [n + int(e * share) for n, e in zip(need, extra)]
        left = available - sum(widths)
        widths = [w + left // len(widths) for w in widths]
    return widths, pt


def _add_table(doc, t: Table, section) -> None:
    cap = doc.add_paragraph()
    run = cap.add_run(t.caption)
    run.bold = True
    run.font.size = Pt(9)
    cap.paragraph_format.keep_with_next = True
    cols = list(t.frame.columns)
    widths, pt = column_widths(t, _text_width(section))
    table = doc.add_table(rows=1, cols=len(cols))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.LEFT
    table.autofit = False
    _fixed_layout(table)
    header = table.rows[0]
    _repeat_header(header)
    for j, (cell, c) in enumerate(zip(header.cells, cols)):
        cell.text = str(c)
        _shade(cell, "E9EEF4")
        for r in cell.paragraphs[0].runs:
            r.bold = True
        _size_cell(cell, widths[j], pt)
    for values in t.frame.itertuples(index=False):
        row = table.add_row()
        _no_split(row)
        for j, (cell, v) in enumerate(zip(row.cells, values)):  # row.cells builds the row's cells on every call: once
            cell.text = str(v)
            _size_cell(cell, widths[j], pt)
    for j, col in enumerate(table.columns):
        col.width = widths[j]
    if t.notes:
        n = doc.add_paragraph(t.notes)
        n.runs[0].italic = True
        n.runs[0].font.size = Pt(7.5)


def _size_cell(cell, width: int, pt: float) -> None:
    """The cell's width, and its text in ``pt`` points with no space after the paragraph."""
    cell.width = width
    for para in cell.paragraphs:
        para.paragraph_format.space_after = Pt(0)
        for r in para.runs:
            r.font.size = Pt(pt)


def _new_section(doc, page_size: str, landscape: bool):
    section = doc.add_section(WD_SECTION.NEW_PAGE)
    _set_page(section, page_size, landscape)
    return section


def write_docx(report: Report, path: str | Path, *, page_size: str = "A4") -> Path:
    """The report as a Word document: headings, the headline box, paragraphs, sized tables, PNG figures.

    ``page_size`` is "A4" (default) or "Letter"; wide tables get landscape sections.
    """
    if page_size not in PAGE_SIZES:
        raise ValueError(f"page_size must be one of {sorted(PAGE_SIZES)}, got {page_size!r}")
    doc = Document()
    style = doc.styles["Normal"]
    style.font.name = "Calibri"
    style.font.size = Pt(10)
    section = doc.sections[0]
    _set_page(section, page_size, landscape=False)
    doc.add_heading(report.title, level=0)
    p = doc.add_paragraph(report.subtitle)
    p.runs[0].italic = True
    p.runs[0].font.size = Pt(8)

    doc.add_heading("At a glance", level=1)
    glance = Table("headline", "", report.headline.table().frame)
    widths = [Mm(38), _text_width(section) - Mm(38)]
    box = doc.add_table(rows=0, cols=2)
    box.style = "Table Grid"
    box.autofit = False
    _fixed_layout(box)
    for label, text in zip(glance.frame["Item"], glance.frame["Value"]):
        row = box.add_row()
        _no_split(row)
        row.cells[0].text, row.cells[1].text = str(label), str(text)
        _shade(row.cells[0], "E4EEF7")
        for j, cell in enumerate(row.cells):
            cell.width = widths[j]
            for r in cell.paragraphs[0].runs:
                r.font.size = Pt(9.5)
                r.bold = j == 0 or label == "Verdict"
    for j, col in enumerate(box.columns):
        col.width = widths[j]

    landscape = False
    for s in report.sections:
        for i, b in enumerate(s.blocks):
            wide = isinstance(b, Table) and is_wide(b)
            if wide != landscape:
                section = _new_section(doc, page_size, wide)
                landscape = wide
            if i == 0:
                doc.add_heading(s.title, level=1)
            if isinstance(b, Table):
                _add_table(doc, b, section)
            elif isinstance(b, FigureFile):
                doc.add_picture(str(b.png), width=_text_width(section))
                c = doc.add_paragraph(b.caption)
                c.runs[0].italic = True
                c.runs[0].font.size = Pt(8.5)
            elif isinstance(b, Callout):
                c = doc.add_paragraph()
                title = c.add_run(b.title + ". ")
                title.bold = True
                title.font.color.rgb = RGBColor(0x8A, 0x3C, 0x00)
                c.add_run(b.text)
                c.paragraph_format.left_indent = Mm(4)
            elif isinstance(b, Note):
                n = doc.add_paragraph(b.text)
                n.runs[0].font.size = Pt(8.5)
            elif isinstance(b, Text):
                para = doc.add_paragraph(b.text)
                if b.style == "lead":
                    para.paragraph_format.left_indent = Mm(4)
    if landscape:
        section = _new_section(doc, page_size, False)
    doc.add_heading("References", level=1)
    for r in report.references:
        para = doc.add_paragraph(r.text(), style="List Bullet")
        para.runs[0].font.size = Pt(8.5)
    path = Path(path)
    replace_file(path, lambda tmp: doc.save(str(tmp)))
    return path
