"""The report as one self-contained HTML document, from Jinja2 templates (autoescaped).

Every user-provided string (titles, names, sources) is escaped by the template engine; the output is
well-formed XHTML (it parses with a strict XML parser), embeds every figure as a PNG data URI and
needs no other file. Its print stylesheet (A4 or Letter pages, wide tables on landscape pages, header
rows repeated on every page) is what :mod:`trialsim.report.pdf` renders to PDF.
"""
from __future__ import annotations

import base64
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from trialsim.labels import FLAG
from trialsim.report.content import Callout, Note, Report, Text, column_chars, is_wide
from trialsim.report.figures import FigureFile
from trialsim.report.tables import Table

TEMPLATES = Path(__file__).resolve().parent / "templates"
PAGE_SIZES = {"A4": "A4", "Letter": "letter"}

_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                   trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


# the print stylesheet's text width (mm) by paper and orientation (report.css: @page margins 14 mm each side)
PRINT_TEXT_MM = {("A4", False): 182.0, ("A4", True): 269.0, ("Letter", False): 187.9, ("Letter", True): 251.4}
PRINT_TABLE_PT = 7.5  # report.css, @media print: table { font-size }
CHAR_EM = 0.62  # average character width of the table font (DejaVu Sans digits are 0.636 em, lower case less)
CELL_EM = 1.0  # a cell's left + right padding (report.css: .5em each side)
MM_PER_PT = 25.4 / 72
MAX_CONTENT_CHARS = 10_000  # a column wants its longest cell unbroken (as a browser's automatic table layout)


def column_percents(t: Table, text_mm: float) -> list[float]:
    """Column widths in percent of the table for a print page ``text_mm`` wide: each column at least its longest
    word, what is left shared by how much more each column wants (its longest cell on one line), as CSS's
    automatic table layout shares it, estimated from character counts. Given to the table as ``<col>`` widths,
    so that the PDF's fixed table layout (which measures no cell: a fifth of WeasyPrint's time) sets about the
    columns the automatic layout would."""
    em = PRINT_TABLE_PT * MM_PER_PT
    chars = column_chars(t, cap=MAX_CONTENT_CHARS)
    need = [(word * CHAR_EM + CELL_EM) * em for word, _ in chars]
    want = [(w * CHAR_EM + CELL_EM) * em for _, w in chars]
    spare = text_mm - sum(need)
    extra = [max(0.0, w - n) for w, n in zip(want, need)]
    if spare <= 0 or not sum(extra):
        widths = need if spare <= 0 else [n + spare / len(need) for n in need]
    else:
        share = min(1.0, spare / sum(extra))
        widths = [n + e * share for n, e in zip(need, extra)]
    total = sum(widths)
    return [round(100.0 * w / total, 2) for w in widths]


SHORT_TABLE_ROWS = 12  # a table this short is kept on one page in print (a longer one runs on, its header repeated)


def _table(t: Table, page_size: str, landscape: bool) -> dict:
    """A table's template fields; ``landscape``: its section is set on landscape pages (a wide table is anyway)."""
    wide = is_wide(t)
    return {"kind": "table", "id": f"table-{t.name}", "caption": t.caption, "notes": t.notes,
            "columns": [str(c) for c in t.frame.columns], "rows": [[str(v) for v in row] for row in t.frame.itertuples(index=False)],
            "wide": wide, "short": len(t.frame) <= SHORT_TABLE_ROWS,
            "flagged": any(FLAG in str(v) for v in t.frame.to_numpy().ravel()),
            "widths": column_percents(t, PRINT_TEXT_MM[(page_size, landscape or wide)])}


def _figure(f: FigureFile) -> dict:
    data = base64.b64encode(Path(f.png).read_bytes()).decode("ascii")
    return {"kind": "figure", "id": f"fig-{f.name}", "src": f"data:image/png;base64,{data}", "caption": f.caption}


def _block(b, page_size: str, landscape: bool) -> dict:
    if isinstance(b, Table):
        return _table(b, page_size, landscape)
    if isinstance(b, FigureFile):
        return _figure(b)
    if isinstance(b, Callout):
        return {"kind": "callout", "title": b.title, "text": b.text}
    if isinstance(b, Note):
        return {"kind": "note", "text": b.text}
    if isinstance(b, Text):
        return {"kind": "text", "text": b.text, "style": b.style}
    raise TypeError(f"cannot render a {type(b).__name__} in HTML")


def render_html(report: Report, *, page_size: str = "A4") -> str:
    """The whole report as one self-contained, well-formed XHTML document.

    ``page_size`` ("A4" or "Letter") is the paper of its print stylesheet (and so of the PDF).
    """
    if page_size not in PAGE_SIZES:
        raise ValueError(f"page_size must be one of {sorted(PAGE_SIZES)}, got {page_size!r}")
    sections = []
    for i, s in enumerate(report.sections):
        # a section opening with a wide table is set on landscape pages whole, so its heading stays with the table
        wide = bool(s.blocks) and isinstance(s.blocks[0], Table) and is_wide(s.blocks[0])
        blocks = [_block(b, page_size, wide) for b in s.blocks]
        sections.append({"id": s.id or f"section-{i}", "title": s.title, "blocks": blocks, "wide": wide})
    return _env.get_template("report.html.j2").render(
        title=report.title, subtitle=report.subtitle, headline=report.headline.rows, verdict=report.headline.verdict,
        sections=sections, references=[{"id": f"ref-{r.key}", "short": r.short, "text": r.text()} for r in report.references],
        page=PAGE_SIZES[page_size])
