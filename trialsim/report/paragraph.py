"""The sample-size justification paragraph, written from the report's own tables.

Every number in the text is a cell of a display table (:func:`trialsim.report.document.build_tables`),
quoted through :meth:`_Writer.cite`, which records where it came from. So the paragraph cannot
disagree with the tables, and :attr:`Paragraph.facts` lets a test check it. The wording follows the
numbers: a design with the target power for its primary endpoint gets a conventional power
statement; one without it is justified as a pilot/feasibility study (Eldridge et al. 2016), with
the precision it buys and where it stands against published pilot-size guidance.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from trialsim.report.document import Table


@dataclass(frozen=True)
class Fact:
    """A number quoted in the paragraph: the exact text of cell (row, column) of a table."""

    table: str
    row: str
    column: str
    text: str


@dataclass
class Paragraph:
    text: str
    facts: list[Fact] = field(default_factory=list)


class _Writer:
    def __init__(self, tables: dict[str, Table]):
        self.tables = tables
        self.facts: list[Fact] = []

    def has(self, table: str, row: str) -> bool:
        return table in self.tables and row in self.tables[table].frame.index

    def cite(self, table: str, row: str, column: str) -> str:
        text = self.tables[table].cell(row, column)
        self.facts.append(Fact(table, row, column, text))
        return text


def _power_cell(w: _Writer, row: str) -> tuple[str, str]:
    """The primary power to quote: exact when there is one, else simulated (with its kind)."""
    exact = w.tables["power"].cell(row, "Exact power")
    if exact != "-":
        return w.cite("power", row, "Exact power"), "exact"
    return w.cite("power", row, "Power (simulated)"), "simulated"


def _value(text: str) -> float | None:
    try:
        return float(text.rstrip("%").replace(",", "")) / (100 if text.endswith("%") else 1)
    except ValueError:
        return None


def justification(result, tables: dict[str, Table]) -> Paragraph:
    """The justification paragraph for a planning result, quoting ``tables``."""
    w = _Writer(tables)
    d = result.design
    prim, ptest = d["primary_endpoint"], d["primary_test"]
    targets = sorted(result.settings.get("power", [0.8, 0.9]))
    sentences: list[str] = []
    control, treatment = w.cite("design", "control", "Value"), w.cite("design", "treatment", "Value")
    n_c = w.cite("design", "n_control", "Value")
    sentences.append(
        f"The primary endpoint ({w.cite('design', 'primary', 'Value')}) will be compared between {treatment} "
        f"and {control} with the {w.cite('design', 'primary_test', 'Value')} test at a two-sided significance level of "
        f"{w.cite('design', 'alpha', 'Value')}.")
    prow = f"{prim}|{ptest}"
    power_text, kind = (_power_cell(w, prow) if w.has("power", prow) else ("", ""))
    assumption = (f"Assuming the endpoint occurs in {w.cite('design', 'p_control', 'Value')} of {control} patients and "
                  f"{w.cite('design', 'p_treatment', 'Value')} of {treatment} patients (a "
                  f"{w.tables['design'].cell('effect', 'Item').split('(')[-1].rstrip(')')} of {w.cite('design', 'effect', 'Value')})")
    if power_text:
        sentences.append(f"{assumption}, {n_c} patients per arm give {power_text} power ({kind}).")
    else:
        sentences.append(assumption + ".")
    powered = power_text and (_value(power_text) or 0.0) >= targets[0]

    size_bits = []
    for t in targets:
        row = f"{prim}|{ptest}|{t:g}"
        if not w.has("sample_sizes", row):
            continue
        n = w.cite("sample_sizes", row, "n per arm")
        target = w.cite("sample_sizes", row, "Target power")
        if n.startswith(">"):
            size_bits.append(f"{target} power is not reached within the sizes searched (n per arm {n})")
            continue
        if n == "not simulated":
            continue
        enrol = w.cite("sample_sizes", row, "Enrol per arm")
        size_bits.append(f"{target} power needs {n} analysable patients per arm ({enrol} to enrol)")
    if size_bits:
        loss_row = f"{prim}|{ptest}|{targets[0]:g}"
        loss = w.cite("sample_sizes", loss_row, "Expected loss") if w.has("sample_sizes", loss_row) else ""
        text = "; ".join(size_bits)
        text = text[0].upper() + text[1:]
        exact_note = (" Exact power saw-tooths in n; these are the sizes from which it stays at or above the target."
                      if "exact" in w.tables["sample_sizes"].cell(loss_row, "Detail") else "")
        sentences.append(f"{text}, allowing for {loss} loss to follow-up.{exact_note}")

    if powered:
        return Paragraph(" ".join(sentences), w.facts)

    # --- not powered for the primary endpoint: a pilot/feasibility justification ---
    if w.has("mde", prow):
        effect = w.tables["mde"].cell(prow, "Minimal detectable effect")
        target_row = f"{prim}|{ptest}|{targets[0]:g}"
        target = w.cite("sample_sizes", target_row, "Target power") if w.has("sample_sizes", target_row) else ""
        param = w.cite("mde", prow, "Effect parameter")
        if effect == "none":
            sentences.append(
                f"At {n_c} per arm no effect on this endpoint is detectable with {target or 'the target'} power: even a "
                f"{param} of {w.cite('mde', prow, 'Most extreme searched')} gives {w.cite('mde', prow, 'Power there')}.")
        else:
            sentences.append(f"At {n_c} per arm the smallest {param} detectable with {target or 'the target'} power is "
                             f"{w.cite('mde', prow, 'Minimal detectable effect')}.")
    sentences.append(
        "The trial is therefore not designed to test its primary hypothesis; it is justified as a pilot and feasibility "
        "study (CONSORT extension for pilot trials, Eldridge et al. 2016), whose aims are estimation and the planning "
        "of a main trial.")
    if w.has("pilot_rates", f"{prim}|control"):
        sentences.append(
            f"With {n_c} patients per arm the 95% confidence interval of the event rate is expected to be "
            f"{w.cite('pilot_rates', f'{prim}|control', 'Expected 95% CI width')} wide in the {control} arm and "
            f"{w.cite('pilot_rates', f'{prim}|treatment', 'Expected 95% CI width')} wide in the {treatment} arm, and there "
            f"is a {w.cite('pilot_rates', f'{prim}|control', 'P(no event)')} chance that no event at all is seen in the "
            f"{control} arm.")
    best = _best_secondary(w, result)
    if best is not None:
        name = w.cite("pilot_ratios", best, "Endpoint")
        text = (f"For the most promising secondary endpoint, {name}, the treatment/control geometric mean ratio "
                f"({w.cite('pilot_ratios', best, 'Assumed GMR')} under the assumptions) is expected to be estimated with a "
                f"95% confidence interval of {w.cite('pilot_ratios', best, 'Expected 95% CI')}")
        row = next((r for r in w.tables["power"].frame.index if r.startswith(best + "|")), None)
        if row is not None:
            text += (f"; the {w.cite('power', row, 'Test')} test of it has "
                     f"{w.cite('power', row, 'Power (simulated)')} power")
        text += "."
        if w.has("pilot_sd_limits", best):
            col = next(c for c in w.tables["pilot_sd_limits"].frame.columns if "upper limit / estimate" in c)
            text += (f" Following Browne (1995), a main trial should be planned on the one-sided upper confidence limit of "
                     f"the SD, {w.cite('pilot_sd_limits', best, col)} times the pilot estimate, which multiplies its size by "
                     f"{w.cite('pilot_sd_limits', best, 'Main-trial size x')}.")
        sentences.append(text)
    if "pilot_guidance" in w.tables:
        g = w.tables["pilot_guidance"].frame
        met, unmet = [], []
        best_label = w.tables["pilot_ratios"].cell(best, "Endpoint") if best is not None else None
        for key, r in g.iterrows():
            if r["Guidance"].startswith("Whitehead") and r["Endpoint"] != best_label:
                continue
            who = w.cite("pilot_guidance", key, "Guidance")
            per = w.cite("pilot_guidance", key, "Per arm")
            basis = w.cite("pilot_guidance", key, "Basis")
            if r["Standardised effect"] != "-":
                basis += f" of {w.cite('pilot_guidance', key, 'Standardised effect')}"
            (met if r["Meets it"] == "yes" else unmet).append(f"{who}: {per} per arm {basis}")
        if unmet:
            sentences.append(f"With {n_c} per arm the design falls short of published pilot-size guidance ("
                             + "; ".join(unmet) + ")" + (f" but meets {'; '.join(met)}" if met else "") + ".")
        elif met:
            sentences.append(f"With {n_c} per arm the design meets published pilot-size guidance (" + "; ".join(met) + ").")
    main = f"{prim}|{ptest}|{targets[0]:g}"
    if w.has("sample_sizes", main):
        n = w.tables["sample_sizes"].cell(main, "n per arm")
        if not n.startswith(">") and n != "not simulated":
            sentences.append(
                f"A main trial powered on the primary endpoint under the same assumptions would need "
                f"{w.cite('sample_sizes', main, 'Enrol per arm')} patients per arm.")
    return Paragraph(" ".join(sentences), w.facts)


def _best_secondary(w: _Writer, result) -> str | None:
    """The key log-scale endpoint with the highest simulated power at the planned size."""
    if "pilot_ratios" not in w.tables or "power" not in w.tables:
        return None
    best, best_power = None, -1.0
    power = w.tables["power"].frame
    for endpoint in w.tables["pilot_ratios"].frame.index:
        rows = [r for r in power.index if r.startswith(endpoint + "|")]
        for r in rows[:1]:
            v = _value(power.at[r, "Power (simulated)"])
            if v is not None and v > best_power:
                best, best_power = endpoint, v
    return best
