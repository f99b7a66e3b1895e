"""The report as PDF: WeasyPrint renders the same HTML (:mod:`trialsim.report.html`) with its print stylesheet.

Pages are A4 (or Letter); tables too wide for a portrait page are set on landscape pages, and every
table repeats its header row on each page it spans.
"""
from __future__ import annotations

from pathlib import Path

from trialsim.report.content import Report
from trialsim.report.html import render_html


def write_pdf(report: Report, path: str | Path, *, page_size: str = "A4") -> Path:
    """Render ``report`` to a PDF at ``path``; returns the path."""
    # WeasyPrint loads Pango through cffi on import (about a second): only when a PDF is asked for
    from weasyprint import HTML

    path = Path(path)
    HTML(string=render_html(report, page_size=page_size), base_url=str(path.parent)).write_pdf(path)
    return path
