"""HTML to PDF with WeasyPrint, in this process or in a helper process that renders while this one writes.

WeasyPrint lays out every line and table cell in Python: the registered trial's 29-page report takes
about 4 s of one core, the longest step of writing the documents. :class:`PdfProcess` starts one
helper process that imports WeasyPrint and warms its font caches while the figures are drawn, then
renders the PDF while this process writes the Word document, the Markdown and the figures' SVG files.

This module imports no other trialsim module, so the helper (a fresh interpreter: ``spawn``, as
joblib's workers) starts in a fraction of a second.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

# one line in the report's font: Pango and fontconfig load their caches on the first layout
WARM_UP_HTML = '<html><body><p style="font-family: \'DejaVu Sans\'">trialsim</p></body></html>'


def html_to_pdf(html_text: str, path: str | Path) -> Path:
    """Render ``html_text`` to a PDF at ``path`` (relative links resolve against its folder); returns the path."""
    # WeasyPrint loads Pango through cffi on import (about half a second): only when a PDF is asked for
    from weasyprint import HTML

    path = Path(path)
    HTML(string=html_text, base_url=str(path.parent)).write_pdf(path)
    return path


def warm_up() -> None:
    """Import WeasyPrint and lay out one line, so that the real document does not wait for either."""
    from weasyprint import HTML

    HTML(string=WARM_UP_HTML).render()


def usable_cores() -> int:
    """Cores this process may run on (its affinity where the system tells it, else every core)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class PdfProcess:
    """Renders one PDF (:func:`html_to_pdf`) in a helper process; a context manager.

    The helper is started at once and warmed up (:func:`warm_up`), so create this before other work,
    :meth:`start` the rendering when the HTML is ready and :meth:`wait` for the file after the other
    work. With ``enabled=False``, on a single usable core or where no process can be started, the
    PDF is rendered in this process (by :meth:`start`), as it is when the helper process dies.
    """

    def __init__(self, *, enabled: bool = True):
        self._pool: ProcessPoolExecutor | None = None
        self._job: tuple[Future | None, str, Path] | None = None
        if enabled and usable_cores() > 1:
            try:
                self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
                self._pool.submit(warm_up)  # a failed warm-up shows again, with its reason, in the real rendering
            except (OSError, RuntimeError):  # no process can be started here (limits, a worker's own bootstrap)
                self.close()

    @property
    def in_background(self) -> bool:
        """Whether the PDF is rendered in the helper process."""
        return self._pool is not None

    def start(self, html_text: str, path: str | Path) -> None:
        """Start rendering ``html_text`` to ``path`` (in this process, finished on return, without a helper)."""
        path = Path(path)
        future = None
        if self._pool is not None:
            try:
                future = self._pool.submit(html_to_pdf, html_text, path)
            except (BrokenProcessPool, RuntimeError):
                self.close()
        if future is None:
            html_to_pdf(html_text, path)
        self._job = (future, html_text, path)

    def wait(self) -> Path:
        """The rendered PDF's path, once it is written; WeasyPrint's errors are raised here."""
        if self._job is None:
            raise RuntimeError("PdfProcess.wait() before start()")
        future, html_text, path = self._job
        if future is not None:
            try:
                future.result()
            except BrokenProcessPool:  # the helper died (killed, out of memory): render here
                self.close()
                html_to_pdf(html_text, path)
        return path

    def close(self) -> None:
        """Stop the helper process (a rendering not waited for is cancelled or finished first)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "PdfProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
