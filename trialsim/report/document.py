"""The planning report: one content model written as HTML, PDF, Word (.docx), Markdown and plain text.

:func:`~trialsim.report.tables.build_tables` turns a planning result (a
:class:`~trialsim.planning.plan.PlanningResult`, passed in: the report layer sits below planning and
never imports it) into display tables; the headline box and the justification paragraph
(:mod:`trialsim.report.paragraph`) quote cells of these very tables, so the numbers in the text are
the numbers in the tables. :func:`build_report` arranges the headline, sections, tables, figures,
the paragraph and the reference list (every source the tables cite, and one reference per method
used: :mod:`trialsim.report.references`). The writers render it: HTML from a Jinja2 template
(:mod:`trialsim.report.html`, autoescaped, self-contained), PDF from that same HTML
(:mod:`trialsim.report.pdf`), Word (:mod:`trialsim.report.docx`, A4 or Letter, wide tables in
landscape sections), Markdown, and the paragraph as plain text (justification.txt).
"""
from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pandas as pd

from trialsim.files import replace_file
from trialsim.report.compare import comparison_table, plot_comparison
from trialsim.report.content import Callout, Note, Report, Section, Text
from trialsim.report.docx import write_docx
from trialsim.report import figures, pdf_process
from trialsim.report.figures import FigureFile, FigureStyle, draw_planned, planned_figures, save_figure
from trialsim.report.helpers import Helpers
from trialsim.report.html import render_html
from trialsim.report.output import claim_folder
from trialsim.report.paragraph import headline, justification
from trialsim.report.pdf import write_pdf
from trialsim.report.references import Citations, Reference, free_text_reference, software_reference
from trialsim.report.tables import Table, build_tables, rate_word

__all__ = ["FORMATS", "Report", "build_report", "build_tables", "render_html", "render_markdown", "render_text",
           "document_helpers", "write_docx", "write_pdf", "write_report"]

FORMATS = ("html", "pdf", "md", "docx", "txt")
DEFAULT_FORMATS = ("html", "pdf", "md", "docx", "txt")
JUSTIFICATION_FILE = "justification.txt"  # the "txt" format: the paragraph alone, written whatever the formats


def document_file(fmt: str, name: str = "report") -> str:
    """The file a format is written to: ``report.html`` ... ``report.docx``; ``txt``: justification.txt."""
    return JUSTIFICATION_FILE if fmt == "txt" else f"{name}.{fmt}"
# The libraries a report names in its reference list (software entries of the references file).
SOFTWARE_GROUPS = ("software", "figures")


def _multiplicity_text(t: Table, citations: Citations) -> str:
    c = t.cell
    text = (f"The report runs {c('tests', 'Value')} tests on {c('endpoints', 'Value')} endpoints. Only the primary analysis "
            f"({c('primary', 'Value')}) can be confirmatory (when the design has the power for it); the other "
            f"{c('secondary', 'Value')} tests are secondary or sensitivity analyses. ")
    if "per_test" in t.frame.index:
        text += f"If the treatment had no effect at all, each test alone would be significant in {c('per_test', 'Value')} of trials, "
    else:
        text += "If the treatment had no effect at all, "
    if "any_simulated" in t.frame.index:
        text += (f"and at least one of them in {c('any_simulated', 'Value')} of simulated trials (± one Monte Carlo standard "
                 f"error; with the tests' real dependence; {c('any_independent', 'Value')} if they were independent). An ")
    else:
        text += f"and at least one of them in {c('any_independent', 'Value')} of trials if the tests were independent. An "
    text += ("unadjusted p-value below the significance level on a secondary endpoint is therefore expected by chance and is "
             "not evidence that the treatment works: report secondary results as estimates with confidence intervals and label "
             "them exploratory. A secondary finding meant to be confirmatory needs a pre-specified adjustment: a hierarchical "
             f"order of hypotheses, Holm's procedure, or Bonferroni's per-test level of {c('bonferroni', 'Value')} "
             f"[{citations.short('bender2001')}].")
    if c("same_endpoint", "Value") not in ("0", "-"):
        text += (f" {c('same_endpoint', 'Value')} of the tests analyse an endpoint that another test already analyses: "
                 "pre-specify one test per endpoint and report the others as sensitivity analyses.")
    return text


def _allocation_caveat(allocation: str, citations: Citations, *, compared: bool = False) -> Callout:
    return Callout(
        "Allocation is not randomised",
        f"Allocation: {allocation}. The power, type I errors and intervals in this report assume that the two arms differ "
        "only in the treatment they receive. Without randomisation, which patients enter which arm can depend on when they "
        "are enrolled, on who enrols them and on what is known about them at the time, so differences in prognosis between "
        "the arms (selection bias, changes in care over time) can create or hide a difference on any endpoint, and masking "
        "does not remove this when the allocation sequence is predictable. Randomised, concealed allocation removes this "
        f"bias [{citations.short('altman1999')}]; only then do the numbers in this report describe the comparison the trial "
        "makes." + (" \"Choosing a design\" below shows what randomised alternatives would change." if compared else ""))


def _mentioned(report_text: str, result, citations: Citations) -> list[Reference]:
    """The planning result's own references (pilot guidance, ...) that the report's text names."""
    found = []
    for key, text in (getattr(result, "references", None) or {}).items():
        ref = citations.library.get(key) or free_text_reference(key, text)
        surname = ref.short.split()[0]
        year = ref.year or (re.findall(r"\d{4}", ref.short) or [""])[0]
        if surname and year and re.search(rf"\b{re.escape(surname)}\b[^;]{{0,30}}?\b{year}\b", report_text):
            found.append(citations.add(key, text) or ref)
    return found


def _choosing_text(frame: pd.DataFrame) -> str:
    first = frame.iloc[0]
    return (f"Each row is one design simulated twice on the same seed ({int(frame.n_sims.max()):,} trials each): with the "
            "treatment effects assumed in its config, and with no treatment effect at all. A design is only informative when "
            "its power clearly exceeds its type I error; a type I error above the significance level means the design "
            "would often declare a useless treatment effective. Bias and coverage say how far the trial's estimate of the "
            "effect can be trusted, which matters most in a pilot whose test has little power. Every row analyses "
            f"{str(first.endpoint_label).lower()}.")


def choosing_section(frame: pd.DataFrame, figure_dir: str | Path) -> tuple[Section, Table, FigureFile]:
    """The "Choosing a design" section from a comparison frame (``trialsim compare --out DIR``'s compare.csv)."""
    table = comparison_table(frame)
    with FigureStyle():
        axes = plot_comparison(frame)
    png, svg = save_figure(axes[0].figure, Path(figure_dir) / "compare")
    figure = FigureFile("compare", "Designs side by side: (A) power of the primary test with the planned effect and its "
                                   "type I error with none (95% Monte Carlo intervals; exact values have none); (B) coverage "
                                   "and bias of the effect estimate; (C) expected patients and median duration.", png, svg)
    return Section("Choosing a design", [Text(_choosing_text(frame)), table, figure], "designs"), table, figure


def build_report(result, figures: list, *, comparison: pd.DataFrame | None = None,
                 figure_dir: str | Path | None = None) -> Report:
    """Arrange the headline, tables, figures, the justification paragraph and the references into sections.

    ``comparison`` (a ``trialsim compare`` table) adds a "Choosing a design" section after the power table,
    its figure written into ``figure_dir``.
    """
    citations = Citations()
    tables = build_tables(result, citations)
    para = justification(result, tables)
    head = headline(result, tables)
    d = result.design
    prov = result.provenance
    figs = {f.name: f for f in figures}
    title = d.get("title") or d["name"]
    subtitle = (f"trialsim {prov.get('trialsim', '')} planning report | scenario {d['name']} | seed {prov.get('seed')} | "
                f"scenario hash {prov.get('config_hash')} | {prov.get('created', '')}")
    sections = [Section("Sample-size justification (ready to paste)", [Text(para.text, "lead")], "justification")]

    design = Section("Design", [], "design")
    if d.get("description"):
        design.blocks.append(Text(str(d["description"])))
    design.blocks.append(tables["design"])
    if not d.get("randomised", True):
        design.blocks.append(_allocation_caveat(str(d["allocation"]), citations,
                                                compared=comparison is not None and len(comparison) > 0))
    sections.append(design)

    if "power" in tables:
        word = rate_word(result)
        what = "Type I error" if word != "Power" else "Power and type I error"
        sections.append(Section(f"{what} at the planned design", [tables["power"]], "power"))
    if comparison is not None and len(comparison):
        section, table, figure = choosing_section(comparison, figure_dir if figure_dir is not None else Path("figures"))
        sections.append(section)
        tables["designs"] = table
        figures = [*figures, figure]
    if "multiplicity" in tables:
        sections.append(Section("Multiplicity", [Text(_multiplicity_text(tables["multiplicity"], citations)),
                                                 tables["multiplicity"]], "multiplicity"))
    if "flow" in tables:
        sections.append(Section("Timeline", [tables["flow"]], "timeline"))
        citations.add_all(citations.library.method("general", "flow"))
    if "sample_sizes" in tables:
        blocks = [tables["sample_sizes"]]
        if "sample_size_sawtooth" in figs:
            blocks.append(figs["sample_size_sawtooth"])
        if "size_sensitivity" in tables:
            blocks.append(tables["size_sensitivity"])
        targets = " and ".join(f"{100 * float(p):.0f}%" for p in sorted(result.settings.get("power", [0.8, 0.9])))
        sections.append(Section(f"Sample sizes for {targets} power", blocks, "sample-sizes"))
    if "mde" in tables:
        sections.append(Section("Minimal detectable effects", [tables["mde"]], "mde"))
    pilot = [tables[k] for k in ("pilot_rates", "pilot_ratios", "pilot_sd_limits", "pilot_guidance") if k in tables]
    if pilot:
        sections.append(Section("Pilot and feasibility estimates (CONSORT extension for pilot trials)", pilot, "pilot"))
    curve_figs = [figs[k] for k in ("power_vs_n", "power_vs_effect", "power_heatmap") if k in figs]
    if curve_figs:
        sections.append(Section("Power curves", curve_figs, "curves"))
    if "sweep" in tables:
        sections.append(Section("Sweep", [tables["sweep"]], "sweep"))
    if "assumptions" in tables:
        sections.append(Section("Assumptions and sources", [tables["assumptions"]], "assumptions"))
    appendix = [tables[k] for k in ("sample_sizes_all", "mde_all") if k in tables]
    if appendix:
        sections.append(Section("Appendix: every endpoint and test", appendix, "appendix"))

    # the methods: each test and interval (cited in build_tables), the software and the result's own references
    lib = citations.library
    for group in SOFTWARE_GROUPS if figures else SOFTWARE_GROUPS[:1]:
        citations.add_all(lib.method("general", group))
    report = Report(title, subtitle, head, sections, para, tables, figures)
    mentioned = _mentioned(report.all_text(), result, citations)
    methods = tables["methods"]
    extra = [(f"cited|{r.key}", {"Method": r.title or r.short, "Used for": "named in the tables or the text",
                                 "Reference": r.short}) for r in mentioned if r.key not in methods.frame.index]
    if extra:
        frame = pd.concat([methods.frame, pd.DataFrame([r for _, r in extra], index=[k for k, _ in extra])])
        methods = Table(methods.name, methods.caption, frame, methods.notes)
        tables["methods"] = methods
    versions = dict(prov.get("versions") or {})
    names = {"python": "Python", "numpy": "NumPy", "scipy": "SciPy", "pandas": "pandas", "simpy": "SimPy"}
    software = software_reference(str(prov.get("trialsim", "")),
                                  {shown: versions.get(k, "") for k, shown in names.items()
                                   if k != "simpy" or "flow" in tables})
    sections.append(Section("How the numbers were computed", [tables["computation"], methods], "computation"))
    references = [software] + citations.entries()
    report.references = references
    report.sections = sections
    if citations.unresolved:
        sections[-1].blocks.append(Note("Citation keys not found in the references file: " + ", ".join(citations.unresolved)))
    return report


# ---------------------------------------------------------------------------------------------------
# Markdown and plain text
# ---------------------------------------------------------------------------------------------------
def _md_text(text) -> str:
    """Markdown-safe text: only what Markdown would read as markup is escaped (a tag, an emphasis star), and every
    backslash, so that the reader sees the user's own (``a \\| b`` stays that, and a table cell's escaped pipe is not
    undone by a backslash before it, which GFM would read as an escaped backslash and a column break)."""
    text = str(text).replace("\n", " ").replace("\\", "\\\\")
    text = re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)
    return text.replace("*", "\\*").replace("_", "\\_") if re.search(r"(\*|\b_|_\b)", text) else text


def _md_cell(text) -> str:
    return _md_text(text).replace("|", "\\|")


def _md_table(t: Table) -> str:
    cols = list(t.frame.columns)
    lines = [f"**{_md_text(t.caption)}**", "", "| " + " | ".join(_md_cell(c) for c in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in t.frame.itertuples(index=False)]
    if t.notes:
        lines += ["", f"*{_md_text(t.notes)}*"]
    return "\n".join(lines)


def render_markdown(report: Report, figure_dir: str = "figures") -> str:
    """The report as Markdown, figures linked from ``figure_dir``."""
    out = [f"# {_md_text(report.title)}", "", f"*{_md_text(report.subtitle)}*", "", "## At a glance", ""]
    out += [f"- **{_md_text(label)}:** {_md_text(text)}" for label, text in report.headline.rows]
    out += [f"- **Verdict:** {_md_text(report.headline.verdict)}", ""]
    for s in report.sections:
        out += [f"## {_md_text(s.title)}", ""]
        for b in s.blocks:
            if isinstance(b, Table):
                out += [_md_table(b), ""]
            elif isinstance(b, FigureFile):
                out += [f"![{_md_text(b.caption)}]({figure_dir}/{Path(b.png).name})", "", f"*{_md_text(b.caption)}*", ""]
            elif isinstance(b, Callout):
                out += [f"> **{_md_text(b.title)}.** {_md_text(b.text)}", ""]
            elif isinstance(b, Note):
                out += [f"*{_md_text(b.text)}*", ""]
            else:
                out += [("> " if b.style == "lead" else "") + _md_text(b.text), ""]
    out += ["## References", ""]
    out += [f"- {_md_text(r.text())}" for r in report.references]
    return "\n".join(out) + "\n"


def render_text(report: Report) -> str:
    """The headline and the justification paragraph as plain text (to paste)."""
    lines = [report.title, "", "At a glance"]
    lines += [f"  {label}: {text}" for label, text in report.headline.rows]
    lines += [f"  Verdict: {report.headline.verdict}", "", "Sample-size justification", report.justification.text, ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# writing every format
# ---------------------------------------------------------------------------------------------------
# which helper does what (modulo the helpers there are): the PDF goes to the one that warmed up WeasyPrint, the SVGs
# to the other; the PNGs go to whichever is free (the documents wait for them)
PDF_HELPER, SVG_HELPERS = 0, (1,)


def document_helpers(formats=DEFAULT_FORMATS, n_jobs: int | None = None, *, early: bool = False) -> Helpers:
    """The helper processes :func:`write_report` uses (:mod:`trialsim.report.helpers`): two, warming up matplotlib and
    seaborn, the first also WeasyPrint (it renders the PDF); none with ``n_jobs`` 1 or None (everything is written in
    this process).

    ``early``: started before other work (``trialsim report`` starts them before it simulates), they warm up at the
    lowest priority, on what that work leaves of the cores; :func:`write_report` replaces them by fresh ones at normal
    priority if the machine is busy with other work when the documents start (:meth:`Helpers.keep_up`). From a script, use helpers only under ``if __name__ ==
    "__main__":`` (as for any multiprocessing: a helper is a fresh interpreter, which imports the calling script again).
    """
    figure_steps = (f"{figures.__name__}:{figures.warm_up.__name__}",)
    first = (*figure_steps, f"{pdf_process.__name__}:{pdf_process.warm_up.__name__}") if "pdf" in formats else figure_steps
    return Helpers((first, figure_steps), enabled=n_jobs is not None and n_jobs != 1, early=early)


def write_report(result, out_dir: str | Path, *, formats=DEFAULT_FORMATS, name: str = "report",
                 page_size: str = "A4", comparison: pd.DataFrame | None = None, n_jobs: int | None = None,
                 helpers: Helpers | None = None) -> dict[str, Path]:
    """Draw the figures and write report.html, report.pdf, report.docx, report.md and justification.txt.

    ``out_dir`` must be new, empty, or written by trialsim before: a folder it did not create (a run's
    results) is never written into (:func:`trialsim.report.output.claim_folder`). ``page_size`` ("A4"
    or "Letter") sets the PDF's and the Word document's pages. ``comparison``: a ``trialsim compare``
    table for the "Choosing a design" section. ``helpers`` (:func:`document_helpers`), else helpers started
    here when ``n_jobs`` is other than 1 (default 1: none): the figures are drawn and the PDF rendered in
    them while this process writes the other formats; the files are the same.
    """
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown report formats {sorted(unknown)}; choose from {FORMATS}")
    out_dir = claim_folder(out_dir, ours=("planning.json",))
    with contextlib.nullcontext(helpers) if helpers is not None else document_helpers(formats, n_jobs) as helpers:
        helpers.keep_up()  # helpers started early at the lowest priority: replaced if the machine is busy
        planned = planned_figures(result, out_dir / "figures")
        pngs = helpers.batch(draw_planned, [(p, ("png",)) for p in planned])  # each to whichever helper is free
        report = build_report(result, [p.file for p in planned], comparison=comparison, figure_dir=out_dir / "figures")
        pngs.results()  # the documents embed the PNGs
        written: dict[str, Path] = {}
        pdf = None
        if "html" in formats or "pdf" in formats:
            html_text = render_html(report, page_size=page_size)
            if "pdf" in formats:
                written["pdf"] = out_dir / document_file("pdf", name)
                pdf = helpers.submit(PDF_HELPER, pdf_process.html_to_pdf, html_text, written["pdf"])
            if "html" in formats:
                written["html"] = out_dir / document_file("html", name)
                replace_file(written["html"], lambda tmp: tmp.write_text(html_text, encoding="utf-8"))
        if "md" in formats:
            written["md"] = out_dir / document_file("md", name)
            markdown = render_markdown(report)
            replace_file(written["md"], lambda tmp: tmp.write_text(markdown, encoding="utf-8"))
        if "docx" in formats:
            written["docx"] = write_docx(report, out_dir / document_file("docx", name), page_size=page_size)
        written["txt"] = out_dir / document_file("txt")
        replace_file(written["txt"], lambda tmp: tmp.write_text(report.justification.text + "\n", encoding="utf-8"))
        unverified = [r for r in report.references if r.verify]
        if unverified:  # kept out of the documents: a list to work through before submitting them
            written["check"] = out_dir / CHECK_FILE
            replace_file(written["check"], lambda tmp: tmp.write_text(references_to_check(unverified), encoding="utf-8"))
        # the SVGs last, by the other helper: while the Word document was written they would have slowed the PDF
        helpers.batch(draw_planned, [(p, ("svg",)) for p in planned], among=SVG_HELPERS).results()
        if pdf is not None:
            pdf.result()
    return {fmt: written[fmt] for fmt in (*FORMATS, "check") if fmt in written}


CHECK_FILE = "references_to_check.txt"


def references_to_check(references) -> str:
    """The reference entries whose details the project's sources mark as approximate or unverified, each with
    what to check: the report prints them as far as they are known and never guesses the rest."""
    lines = [f"{len(references)} reference(s) of this report are incomplete in trialsim's sources. Check each against "
             "PubMed or the journal before submitting the report, and complete its entry in the report's reference list:",
             ""]
    lines += [f"- {r.short}: check the {r.verify}. Listed as: {r.text()}" for r in references]
    return "\n".join(lines) + "\n"
