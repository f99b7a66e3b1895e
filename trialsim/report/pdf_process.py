"""HTML to PDF with WeasyPrint, in this process or in a helper process (:mod:`trialsim.report.helpers`).

WeasyPrint lays out every line and table cell in Python: the registered trial's 29-page report takes
about 4 s of one core, the longest step of writing the documents. A report's helper process imports
WeasyPrint and warms its font caches (:func:`warm_up`) early, then renders the PDF (:func:`html_to_pdf`)
while this process writes the Word document and the Markdown.

This module imports no other trialsim module, so a helper that runs its functions starts quickly.
"""
from __future__ import annotations

import gc
import os
from pathlib import Path

# the modification time written into the PDF's subset fonts (2000-01-01 UTC), unless SOURCE_DATE_EPOCH is set
FONT_EPOCH = "946684800"
# one line in the report's font: Pango and fontconfig load their caches on the first layout
WARM_UP_HTML = '<html><body><p style="font-family: \'DejaVu Sans\'">trialsim</p></body></html>'


def html_to_pdf(html_text: str, path: str | Path) -> Path:
    """Render ``html_text`` to a PDF at ``path`` (relative links resolve against its folder); returns the path."""
    # WeasyPrint loads Pango through cffi on import (about half a second): only when a PDF is asked for
    from weasyprint import HTML

    path = Path(path)
    # fontTools stamps each subset font with the time of rendering unless SOURCE_DATE_EPOCH says otherwise
    # (reproducible-builds.org): a fixed stamp makes the same HTML give the same PDF bytes in any process
    pinned = "SOURCE_DATE_EPOCH" not in os.environ
    if pinned:
        os.environ["SOURCE_DATE_EPOCH"] = FONT_EPOCH
    # WeasyPrint allocates objects (boxes, styles, lines) by the hundred thousand, each batch of which starts
    # a pass of the cyclic garbage collector over what is alive: 0.6 of 3.7 s of CPU for the registered
    # trial's report. Paused while rendering (about 20 MB more at the peak), as the caller had it after.
    collecting = gc.isenabled()
    gc.disable()
    try:
        partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.pdf")  # renamed when whole: never half a PDF
        try:
            HTML(string=html_text, base_url=str(path.parent)).write_pdf(partial)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    finally:
        if collecting:
            gc.enable()
        if pinned:
            del os.environ["SOURCE_DATE_EPOCH"]
    return path


def warm_up() -> None:
    """Import WeasyPrint and lay out one line, so that the real document does not wait for either."""
    from weasyprint import HTML

    HTML(string=WARM_UP_HTML).render()
