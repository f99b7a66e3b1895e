"""The planning report: one content model written as self-contained HTML, Markdown and Word (.docx).

:func:`build_tables` turns a :class:`~trialsim.planning.plan.PlanningResult` into display tables
(frames of strings with a row key per row); the justification paragraph
(:mod:`trialsim.report.paragraph`) quotes cells of these very tables, so the numbers in the text
are the numbers in the tables. :func:`build_report` arranges sections, tables, figures and the
paragraph; ``write_html``, ``write_markdown`` and ``write_docx`` render it. Every user-provided
string (titles, names, sources) is escaped in HTML; the HTML is well-formed XHTML (it parses
with a strict XML parser), embeds every figure as a PNG data URI and needs no other file.
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from trialsim.labels import is_missing, fmt_interval, fmt_n, fmt_pct, fmt_power, fmt_ratio, pct, test_label  # noqa: F401

FORMATS = ("html", "md", "docx")


# ---------------------------------------------------------------------------------------------------
# formatting (one place for every table and the paragraph)
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Table:
    """A display table: string cells, one row key per row (``frame.index``), a caption and notes."""

    name: str
    caption: str
    frame: pd.DataFrame
    notes: str = ""

    def cell(self, row: str, column: str) -> str:
        return str(self.frame.at[row, column])


def _table(name: str, caption: str, rows: list[tuple[str, dict[str, str]]], notes: str = "") -> Table:
    frame = pd.DataFrame([r for _, r in rows], index=[k for k, _ in rows])
    return Table(name, caption, frame.astype(str) if not frame.empty else frame, notes)


def _short_test(test: str) -> str:
    return test_label(str(test))


# ---------------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------------
def key_pairs(result) -> list[tuple[str, str]]:
    from trialsim.planning.model import key_endpoints

    return key_endpoints(result.scenario)


def build_tables(result) -> dict[str, Table]:
    """Every display table of the report (those with data)."""
    d = result.design
    tables: dict[str, Table] = {}
    prim = d["primary_endpoint"]
    label_of = {e.name: e.label for e in _endpoints(result)}

    rows = [
        ("control", {"Item": "Control arm", "Value": str(d["control_name"])}),
        ("treatment", {"Item": "Experimental arm", "Value": str(d["treatment_name"])}),
        ("n_control", {"Item": f"Patients enrolled, {d['control_name']}", "Value": fmt_n(d["n_control"])}),
        ("n_treatment", {"Item": f"Patients enrolled, {d['treatment_name']}", "Value": fmt_n(d["n_treatment"])}),
        ("allocation", {"Item": "Allocation", "Value": str(d["allocation"]).replace("_", "-")}),
        ("masking", {"Item": "Masking", "Value": str(d["masking"])}),
        ("alpha", {"Item": "Significance level (two-sided)", "Value": fmt_pct(d["alpha"], 0)}),
        ("primary", {"Item": "Primary endpoint", "Value": str(d["primary_label"])}),
        ("primary_test", {"Item": "Primary analysis", "Value": _short_test(d["primary_test"])}),
        ("rate_control", {"Item": "Assumed control leak rate (grade B/C, 30 days)", "Value": fmt_pct(d["leak_rate_control"])}),
        ("effect", {"Item": f"Assumed effect ({str(d['leak_effect_measure']).replace('_', ' ')})", "Value": fmt_ratio(d["leak_effect"])}),
        ("p_control", {"Item": f"Primary endpoint rate, {d['control_name']} (analysable patients)", "Value": fmt_pct(d["primary_p_control"])}),
        ("p_treatment", {"Item": f"Primary endpoint rate, {d['treatment_name']} (analysable patients)", "Value": fmt_pct(d["primary_p_treatment"])}),
        ("dropout", {"Item": "Expected loss to follow-up for the primary endpoint", "Value": fmt_pct(d["primary_missing_control"])}),
    ]
    tables["design"] = _table("design", "The design and its key assumptions", rows)

    power = result.frame("power")
    if not power.empty:
        rows = []
        for (endpoint, test), g in power.groupby(["endpoint", "test"], sort=False):
            mc = g[g["method"] == "monte_carlo"]
            ex = g[g["method"] == "exact"]
            r = mc.iloc[0] if len(mc) else g.iloc[0]
            rows.append((f"{endpoint}|{test}", {
                "Endpoint": label_of.get(endpoint, str(r["label"])),
                "Test": _short_test(test),
                "Power (simulated)": fmt_power(r["power"]) if len(mc) else "-",
                "95% MC interval": fmt_interval(r["ci_low"], r["ci_high"], fmt_power) if len(mc) else "-",
                "Exact power": fmt_power(ex.iloc[0]["power"]) if len(ex) else "-",
            }))
        n_sims = int(power["n_sims"].max())
        tables["power"] = _table("power", f"Power of every endpoint and test at the planned {d['n_control']} vs {d['n_treatment']} "
                                          "(enrolled; the scenario's loss to follow-up included)", rows,
                                 f"Simulated power from {n_sims:,} trials with its 95% Clopper-Pearson Monte Carlo interval; "
                                 "exact power by enumeration for binary endpoints.")

    sizes = result.frame("sample_sizes")
    if not sizes.empty:
        keys = set(key_pairs(result))
        for name, subset, caption in (
            ("sample_sizes", sizes[[(e, t) in keys for e, t in zip(sizes["endpoint"], sizes["test"])]],
             "Sample size per arm for 80% and 90% power (key endpoints)"),
            ("sample_sizes_all", sizes, "Sample size per arm for every endpoint and test"),
        ):
            rows = [(f"{r.endpoint}|{r.test}|{r.target_power:g}", _size_row(r, label_of)) for r in subset.itertuples()]
            tables[name] = _table(name, caption, rows, (
                "n per arm counts analysable patients (control arm; the treatment arm follows the allocation ratio). "
                "Exact (binary endpoints): power saw-tooths in n, so the table gives the n from which power stays at or "
                "above the target, and the detail gives the first n reaching it and the largest n checked. Simulated: "
                "root of a probit fit of simulated power on the square root of n, with its 95% Monte Carlo interval. "
                "Enrol: n / (1 - expected loss), rounded up. Analytic: closed-form answer (method in the last column)."))

    mde = result.frame("mde")
    if not mde.empty:
        keys = set(key_pairs(result))
        for name, subset, caption in (
            ("mde", mde[[(e, t) in keys for e, t in zip(mde["endpoint"], mde["test"])]],
             f"Minimal detectable effect with {fmt_pct(mde['target_power'].iloc[0], 0)} power at the planned size (key endpoints)"),
            ("mde_all", mde, "Minimal detectable effect for every endpoint and test"),
        ):
            rows = [(f"{r.endpoint}|{r.test}", _mde_row(r, label_of)) for r in subset.itertuples()]
            tables[name] = _table(name, caption, rows,
                                  "The effect is the config value named in the second column, varied alone; 'none' means "
                                  "no effect up to the most extreme one searched reaches the target power. Simulated "
                                  "answers carry a 95% Monte Carlo interval.")

    rates = result.frame("pilot_rates")
    if not rates.empty:
        rows = []
        for r in rates.itertuples():
            rows.append((f"{r.endpoint}|{r.arm}", {
                "Endpoint": label_of.get(r.endpoint, r.endpoint), "Arm": str(r.arm_name),
                "Assumed rate": fmt_pct(r.rate), "Expected analysable": f"{r.expected_analysable:.1f}",
                "Expected 95% CI width": fmt_pct(r.expected_ci_width),
                "95% CI at the expected count": f"{int(r.events_at_expected)}/{int(round(r.expected_analysable))}: "
                                                 + fmt_interval(r.ci_low_at_expected, r.ci_high_at_expected),
                "P(at least one event)": fmt_pct(r.p_at_least_one), "P(no event)": fmt_pct(r.p_none),
            }))
        tables["pilot_rates"] = _table("pilot_rates", "What each arm's event rate can show (exact binomial)", rows,
                                       "Clopper-Pearson intervals; the expected width averages over the number of events and of "
                                       "analysable patients.")
    ratios = result.frame("pilot_ratios")
    if not ratios.empty:
        rows = [(str(r.endpoint), {"Endpoint": label_of.get(r.endpoint, r.endpoint), "Assumed GMR": fmt_ratio(r.gmr),
                                   "Expected 95% CI": fmt_interval(r.ci_low, r.ci_high, fmt_ratio),
                                   "Upper / lower limit": fmt_ratio(r.fold_width)}) for r in ratios.itertuples()]
        tables["pilot_ratios"] = _table("pilot_ratios", "Expected precision of each geometric mean ratio (treatment / control)",
                                        rows, "Welch interval on the log scale at the model's SDs (leaks and missing samples "
                                              "included) and the expected analysable numbers.")
    sds = result.frame("pilot_sd_limits")
    if not sds.empty:
        rows = [(str(r.endpoint), {"Endpoint": label_of.get(r.endpoint, r.endpoint), "SD (log scale)": fmt_ratio(r.sd),
                                   "Degrees of freedom": fmt_n(r.df),
                                   f"{fmt_pct(r.ucl_level, 0)} upper limit / estimate": fmt_ratio(r.ucl_factor),
                                   "SD to plan on": fmt_ratio(r.sd_ucl), "Main-trial size x": fmt_ratio(r.n_inflation)})
                for r in sds.itertuples()]
        tables["pilot_sd_limits"] = _table("pilot_sd_limits", "Upper confidence limits of the SDs a pilot of this size gives "
                                                              "(Browne 1995)", rows,
                                           "Planning the main trial on the one-sided upper limit protects its power against an SD "
                                           "underestimated by the pilot; the main trial's size grows by the square of the factor.")
    guide = result.frame("pilot_guidance")
    if not guide.empty:
        rows = [(f"{i}", {"Guidance": str(r.guideline), "Basis": str(r.basis),
                          "Endpoint": label_of.get(str(r.endpoint), str(r.endpoint)) if not is_missing(r.endpoint) else "",
                          "Standardised effect": "-" if is_missing(r.standardised_effect) else f"{float(r.standardised_effect):.2f}",
                          "Per arm": fmt_n(r.recommended_per_arm),
                          "This design": fmt_n(r.design_per_arm), "Meets it": "yes" if bool(r.meets) else "no"})
                for i, r in enumerate(guide.itertuples())]
        tables["pilot_guidance"] = _table("pilot_guidance", "The design against published pilot-size guidance", rows)

    sweep = result.frame("sweep_power")
    if not sweep.empty:
        s = sweep[(sweep["endpoint"] == prim)]
        value_cols = [c for c in s.columns if "." in str(c)]
        rows = []
        for sid, g in s.groupby("scenario", sort=False):
            for test, h in g.groupby("test", sort=False):
                mc, ex = h[h["method"] == "monte_carlo"], h[h["method"] == "exact"]
                row = {"Scenario": str(sid)} | {str(c): str(h.iloc[0][c]) for c in value_cols} | {
                    "Test": _short_test(test),
                    "Power (simulated)": fmt_power(mc.iloc[0]["power"]) if len(mc) else "-",
                    "95% MC interval": fmt_interval(mc.iloc[0]["ci_low"], mc.iloc[0]["ci_high"], fmt_power) if len(mc) else "-",
                    "Exact power": fmt_power(ex.iloc[0]["power"]) if len(ex) else "-"}
                rows.append((f"{sid}|{test}", row))
        tables["sweep"] = _table("sweep", "The config's sweep: power of the primary endpoint in every scenario", rows)

    assumptions = result.frame("assumptions")
    if not assumptions.empty:
        rows = [(str(r.key), {"Key": str(r.key), "Value": str(r.value), "Source": str(r.source) if not is_missing(r.source) else "",
                              "Set in": str(r.origin)}) for r in assumptions.itertuples()]
        tables["assumptions"] = _table("assumptions", "Every assumption with its source", rows,
                                       "[n] = section n of the trial's evidence file (clinical_evidence.md). 'config': the value "
                                       "and comment of the config file; 'default': the schema's default and its cited source.")
    return tables


def _endpoints(result):
    from trialsim.endpoints import endpoints

    return endpoints(result.scenario)


def _size_row(r, label_of: dict) -> dict[str, str]:
    reachable = bool(r.reachable)
    if not reachable:
        n, detail = f"> {fmt_n(r.n_max)}", str(r.note) if not is_missing(r.note) else ""
        if r.method == "analytic":
            n = "not simulated"
    elif r.method == "exact":
        n = fmt_n(r.n)
        detail = f"exact; first reaches it at {fmt_n(r.n_first)}; checked to {fmt_n(r.horizon)}"
    else:
        n = fmt_n(r.n)
        detail = f"simulated; 95% MC interval {fmt_n(r.n_low)} to {fmt_n(r.n_high)}"
    return {
        "Endpoint": label_of.get(r.endpoint, str(r.label)), "Test": _short_test(r.test),
        "Target power": fmt_pct(r.target_power, 0), "n per arm": n, "Detail": detail,
        "Expected loss": fmt_pct(r.dropout), "Enrol per arm": fmt_n(r.n_enrolled) if reachable else "-",
        "Analytic n": fmt_n(r.n_analytic), "Analytic method": str(r.analytic_method),
    }


def _mde_row(r, label_of: dict) -> dict[str, str]:
    reachable = bool(r.reachable)
    if reachable:
        effect = fmt_ratio(r.effect)
        interval = "-" if r.method == "exact" or is_missing(r.effect_low) else fmt_interval(r.effect_low, r.effect_high, fmt_ratio)
    elif r.method == "skipped":
        effect, interval = "not computed", "-"
    else:
        effect, interval = "none", "-"
    return {
        "Endpoint": label_of.get(r.endpoint, str(r.label)), "Test": _short_test(r.test),
        "Effect parameter": str(r.parameter_label), "Assumed": fmt_ratio(r.assumed),
        "Power at assumed": fmt_power(r.power_at_assumed), "Minimal detectable effect": effect,
        "95% MC interval": interval, "Most extreme searched": fmt_ratio(r.best_effect),
        "Power there": fmt_power(r.best_power), "Method": {"exact": "exact", "monte_carlo": "simulated"}.get(r.method, str(r.method)),
        "Analytic": fmt_ratio(r.analytic_effect),
    }


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
    justification: Any  # trialsim.report.paragraph.Paragraph
    tables: dict[str, Table]
    figures: list


def build_report(result, figures: list) -> Report:
    """Arrange tables, figures and the justification paragraph into sections."""
    from trialsim.report.paragraph import justification
    from trialsim.planning.pilot import REFERENCES

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
        sections.append(Section("Power at the planned design", [tables["power"]]))
    if "sample_sizes" in tables:
        blocks = [tables["sample_sizes"]]
        if "sample_size_sawtooth" in figs:
            blocks.append(figs["sample_size_sawtooth"])
        sections.append(Section("Sample sizes for 80% and 90% power", blocks))
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
    sections.append(Section("References", [("note", ref) for ref in REFERENCES.values()]))
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
    from trialsim.report.figures import FigureFile

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
    from trialsim.report.figures import FigureFile

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
    from docx import Document
    from docx.shared import Inches, Pt

    from trialsim.report.figures import FigureFile

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
    from trialsim.report.figures import draw_figures

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
