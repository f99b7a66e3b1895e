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

from trialsim.report.content import Callout, Note, Report, Text, is_wide
from trialsim.report.figures import FigureFile
from trialsim.report.tables import FLAG, Table

TEMPLATES = Path(__file__).resolve().parent / "templates"
PAGE_SIZES = {"A4": "A4", "Letter": "letter"}

_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                   trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def _table(t: Table) -> dict:
    return {"kind": "table", "id": f"table-{t.name}", "caption": t.caption, "notes": t.notes,
            "columns": [str(c) for c in t.frame.columns], "rows": [[str(v) for v in row] for row in t.frame.itertuples(index=False)],
            "wide": is_wide(t), "flagged": any(FLAG in str(v) for v in t.frame.to_numpy().ravel())}


def _figure(f: FigureFile) -> dict:
    data = base64.b64encode(Path(f.png).read_bytes()).decode("ascii")
    return {"kind": "figure", "id": f"fig-{f.name}", "src": f"data:image/png;base64,{data}", "caption": f.caption}


def _block(b) -> dict:
    if isinstance(b, Table):
        return _table(b)
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
        blocks = [_block(b) for b in s.blocks]
        # a section opening with a wide table is set on landscape pages whole, so its heading stays with the table
        wide = bool(blocks) and blocks[0]["kind"] == "table" and blocks[0]["wide"]
        sections.append({"id": s.id or f"section-{i}", "title": s.title, "blocks": blocks, "wide": wide})
    return _env.get_template("report.html.j2").render(
        title=report.title, subtitle=report.subtitle, headline=report.headline.rows, verdict=report.headline.verdict,
        sections=sections, references=[{"id": f"ref-{r.key}", "short": r.short, "text": r.text()} for r in report.references],
        page=PAGE_SIZES[page_size])
