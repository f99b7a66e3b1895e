"""HTML to PDF with WeasyPrint, in this process or in a helper process that renders while this one writes.

WeasyPrint lays out every line and table cell in Python: the registered trial's 29-page report takes
about 4 s of one core, the longest step of writing the documents. :class:`PdfProcess` starts one
helper process that imports WeasyPrint and warms its font caches while the figures are drawn, then
renders the PDF while this process writes the Word document, the Markdown and the figures' SVG files.

This module imports no other trialsim module, so the helper (a fresh interpreter: ``spawn``, as
joblib's workers) starts in a fraction of a second.
"""
from __future__ import annotations

import contextlib
import gc
import multiprocessing
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


def usable_cores() -> int:
    """Cores this process may run on (its affinity where the system tells it, else every core)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def serve(conn) -> None:
    """The helper process: warm up, then render every ``(html_text, path)`` received, until ``None`` or EOF."""
    with contextlib.suppress(Exception):  # a failed warm-up: the real rendering fails the same way and sends its reason back
        warm_up()
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the parent is gone
            return
        if job is None:
            return
        try:
            conn.send((html_to_pdf(*job), None))
        except Exception as exc:  # noqa: BLE001 - raised again in the parent by PdfProcess.wait()
            try:
                conn.send((None, exc))
            except Exception:  # noqa: BLE001 - an exception that cannot be pickled: send its text
                conn.send((None, RuntimeError(f"{type(exc).__name__}: {exc}")))


JOIN_SECONDS = 10.0  # how long close() waits for the helper to end before stopping it


class PdfProcess:
    """Renders one PDF (:func:`html_to_pdf`) in a helper process; a context manager.

    The helper is started at once and warms up (:func:`warm_up`), so create this before other work,
    :meth:`start` the rendering when the HTML is ready and :meth:`wait` for the file after the other
    work. With ``enabled=False``, on a single usable core or where no process can be started, the
    PDF is rendered in this process by :meth:`start`; it is rendered here too if the helper dies.
    Leaving the ``with`` block by an exception (Ctrl-C) stops the helper at once.
    """

    def __init__(self, *, enabled: bool = True):
        self._process = None
        self._conn = None
        self._job: tuple[str, Path] | None = None
        self._sent = False
        if enabled and usable_cores() > 1:
            ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no locks or threads copied from here
            child = None
            try:
                self._conn, child = ctx.Pipe()
                self._process = ctx.Process(target=serve, args=(child,), name="trialsim-pdf", daemon=True)
                self._process.start()
            except Exception:  # noqa: BLE001 - no process can be started here (limits, a daemonic parent, a
                # child's own bootstrap): render in this process instead
                self._process = None
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
            finally:
                if child is not None:
                    child.close()

    @property
    def in_background(self) -> bool:
        """Whether the PDF is rendered in the helper process."""
        return self._process is not None

    def start(self, html_text: str, path: str | Path) -> None:
        """Start rendering ``html_text`` to ``path`` (in this process, finished on return, without a helper)."""
        self._job = (html_text, Path(path))
        self._sent = False
        if self._process is not None:
            try:
                self._conn.send(self._job)
                self._sent = True
            except OSError:  # the helper is gone
                self.close()
        if not self._sent:
            html_to_pdf(*self._job)

    def wait(self) -> Path:
        """The rendered PDF's path, once it is written; WeasyPrint's errors are raised here."""
        if self._job is None:
            raise RuntimeError("PdfProcess.wait() before start()")
        if self._sent:
            self._sent = False
            try:
                path, error = self._conn.recv()
            except (EOFError, OSError):  # the helper died (killed, out of memory): render here
                self.close()
                return html_to_pdf(*self._job)
            if error is not None:
                raise error
            return path
        return self._job[1]

    def close(self, *, kill: bool = False) -> None:
        """Let the helper process end (``kill``: stop it now, mid-rendering)."""
        if self._process is None:
            return
        if kill:
            self._process.terminate()
        else:
            with contextlib.suppress(OSError):  # the helper has gone already: nothing to tell it
                self._conn.send(None)
        self._process.join(JOIN_SECONDS)
        if self._process.is_alive():  # stuck: do not hang the command on it
            self._process.terminate()
            self._process.join(JOIN_SECONDS)
        self._conn.close()
        self._process = None

    def __enter__(self) -> "PdfProcess":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(kill=exc_type is not None)
