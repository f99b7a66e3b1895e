"""The report as PDF: WeasyPrint renders the same HTML (:mod:`trialsim.report.html`) with its print stylesheet.

Pages are A4 (or Letter); tables too wide for a portrait page are set on landscape pages, and every
table repeats its header row on each page it spans. :func:`trialsim.report.document.write_report`
renders it in a helper process (:mod:`trialsim.report.pdf_process`) while it writes the other formats.
"""
from __future__ import annotations

from pathlib import Path

from trialsim.report.content import Report
from trialsim.report.html import render_html
from trialsim.report.pdf_process import html_to_pdf


def write_pdf(report: Report, path: str | Path, *, page_size: str = "A4") -> Path:
    """Render ``report`` to a PDF at ``path``; returns the path."""
    return html_to_pdf(render_html(report, page_size=page_size), path)
