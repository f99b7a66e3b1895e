"""The sample-size justification paragraph and the headline box, written from the report's own tables.

Every number in the text is a cell of a display table (:func:`trialsim.report.tables.build_tables`),
quoted through :meth:`_Writer.cite`, which records where it came from. So the paragraph cannot
disagree with the tables, and :attr:`Paragraph.facts` lets a test check it. The wording follows the
numbers and the design, never a trial's name: a design with the target power for its primary
endpoint gets a conventional power statement; one whose simulated power is within Monte Carlo error
of the target (the usual case for a design sized by trialsim's own sample-size search) gets the same
statement with its power given as about the target, with its interval; one clearly below it (its
whole 95% Monte Carlo interval, or an exact power) is justified as a pilot/feasibility study
(Eldridge et al. 2016), with the precision it buys and where it stands against published pilot-size
guidance; a null scenario (every effect at its null) gets its type I error. All state
the primary test's type I error at this design beside its power, and the paragraph ends with the
software, seed, number of simulated trials and Monte Carlo error.

:func:`headline` is what a reviewer reads first: the design, the primary test's power and type I
error, what the trial can estimate, and the verdict in one sentence (:func:`verdict`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from trialsim.labels import FLAG, NOT_COMPUTABLE
from trialsim.report.tables import (
    EQUALLY_PROMISING,
    PRECISION,
    Table,
    effect_to_half_width,
    flow_in_analyses,
    is_null,
    lower_first,
    rate_word,
    type_i_errors,
)
from trialsim.results import ABOVE, BELOW, WITHIN, mc_side  # one rule for "clearly above/below" a threshold

WIDTH = "Expected 95% CI width (percentage points)"
MC_INTERVAL = "95% MC interval"  # the power table's column of a simulated rate's 95% Monte Carlo interval
# Protocol text: "simulated" so no reader takes them for clinical trials, and no command-line flag (the console has it).
MORE_SIMS = "more simulated trials would show whether"


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
    """Quotes cells of ``tables``; ``result`` (the result they were built from) gives the raw numbers behind
    them, so a rate is judged against a threshold unrounded while the text quotes only cells."""

    def __init__(self, tables: dict[str, Table], result=None):
        self.tables = tables
        self.result = result
        self.facts: list[Fact] = []

    def has(self, table: str, row: str) -> bool:
        return table in self.tables and row in self.tables[table].frame.index

    def cite(self, table: str, row: str, column: str) -> str:
        text = self.tables[table].cell(row, column)
        self.facts.append(Fact(table, row, column, text))
        return text


def _planned(w: _Writer, control: str, treatment: str) -> tuple[str, str]:
    """The planned arms as ``(patients, at)``: ("10 patients per arm", "10 per arm") for equal arms, ("10 control and
    20 treatment patients", "10 vs 20") for unequal ones."""
    n_c = w.cite("design", "n_control", "Value")
    if not w.has("design", "n_treatment") or w.tables["design"].cell("n_treatment", "Value") == n_c:
        return f"{n_c} patients per arm", f"{n_c} per arm"
    n_t = w.cite("design", "n_treatment", "Value")
    return f"{n_c} {control} and {n_t} {treatment} patients", f"{n_c} vs {n_t}"


def _per_arm(n: str, who: str, aside: str = "") -> str:
    """A sample-size cell with its patients (and an aside): "367 analysable patients per arm (379 to enrol)", "258 + 516
    analysable patients (control + treatment; 266 + 532 to enrol)" for unequal arms."""
    if "+" in n:
        return f"{n} {who} (control + treatment" + (f"; {aside})" if aside else ")")
    return f"{n} {who} per arm" + (f" ({aside})" if aside else "")


def _rate_cell(w: _Writer, row: str, word: str, quote: bool = True) -> tuple[str, str]:
    """The primary's rejection rate to quote: exact when there is one, else simulated (with its kind).

    ``quote=False`` reads the cell without recording it as quoted (for a rate the text may not quote).
    """
    exact_col, sim_col = f"Exact {lower_first(word)}", f"{word} (simulated)"
    col, kind = (exact_col, "exact") if w.tables["power"].cell(row, exact_col) != "-" else (sim_col, "simulated")
    return (w.cite("power", row, col) if quote else w.tables["power"].cell(row, col)), kind


def _power_phrase(rate_text: str, kind: str) -> str:
    """"18.7% power (simulated)", or, where no simulated trial could compute the test, the run's words for it."""
    if rate_text == NOT_COMPUTABLE:
        return f"a power that is {NOT_COMPUTABLE}: no simulated trial could compute the test"
    return f"{rate_text} power ({kind})"


def _value(text: str) -> float | None:
    text = text.replace(FLAG, "").strip()
    try:
        return float(text.rstrip("%").replace(",", "")) / (100 if text.endswith("%") else 1)
    except ValueError:
        return None


def _type_i(w: _Writer, row: str) -> tuple[str, str] | None:
    """The primary's type I error at this design (cell, "exact"/"simulated"), None without one."""
    col = "Type I error (no effect)"
    if not w.has("power", row) or col not in w.tables["power"].frame.columns:
        return None
    if w.tables["power"].cell(row, col) == "-":
        return None
    return w.cite("power", row, col), w.tables["power"].cell(row, "Type I error from")


def _bounds(w: _Writer, row: str, text: str, kind: str, frame: str) -> tuple[float, float] | None:
    """A quoted rate's raw 95% Monte Carlo interval (a point when exact), from the result's ``frame``.

    ``frame`` is "power" (the rate at the assumed effect) or "null_power" (the type I error); ``row``
    is the power table's "endpoint|test" and ``text``, ``kind`` the quoted cell and "exact" or
    "simulated". The numbers are the result's own, never the rounded cells: a lower bound of 79.96%
    shows as 80.0% but is below an 80% target. None where the rate is not a number. A simulated rate
    whose interval is missing gets the widest one, so no sentence calls it clearly above or below
    anything.
    """
    if not text or _value(text) is None or w.result is None:
        return None
    endpoint, test = row.split("|")[:2]
    if frame == "null_power":
        size = type_i_errors(w.result).get((endpoint, test))
        low, high = (None, None) if size is None else (size["low"], size["high"])
    else:
        f = w.result.frame("power")
        g = f[(f["endpoint"].astype(str) == endpoint) & (f["test"].astype(str) == test)
              & (f["method"] == ("exact" if kind == "exact" else "monte_carlo"))]
        r = g.iloc[0] if len(g) else None
        low, high = (None, None) if r is None else \
            (r["power"], r["power"]) if kind == "exact" else (r["ci_low"], r["ci_high"])
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return (0.0, 1.0)
    return float(low), float(high)


def _power_side(w: _Writer, row: str, rate: tuple[str, str] | None, target: float) -> str | None:
    """Where the primary's power lies against ``target`` (:func:`~trialsim.results.mc_side`); None without one."""
    bounds = _bounds(w, row, rate[0], rate[1], "power") if rate is not None else None
    return None if bounds is None else mc_side(target, *bounds)


def _tells(w: _Writer, row: str, rate: tuple[str, str] | None, size: tuple[str, str] | None) -> str | None:
    """Whether the primary test tells a working treatment from a useless one: :data:`ABOVE` when its power is
    clearly at least twice its type I error, :data:`BELOW` when clearly less (it cannot tell), else
    :data:`WITHIN` Monte Carlo error; None without both numbers.

    The difference power - 2 x type I error is judged from the two 95% Monte Carlo intervals (its
    lowest and highest values), so two exact figures are compared directly.
    """
    power = _bounds(w, row, rate[0], rate[1], "power") if rate is not None else None
    size_bounds = _bounds(w, row, size[0], size[1], "null_power") if size is not None else None
    if power is None or size_bounds is None:
        return None
    return mc_side(0.0, power[0] - 2 * size_bounds[1], power[1] - 2 * size_bounds[0])


def _how_often(w: _Writer, row: str, rate: tuple[str, str], size: tuple[str, str]) -> str:
    """How often the primary test rejects with the assumed effect against without any: "less often than",
    "no more often than" (two equal exact figures, or clearly less but quoted as the same figure, as
    0.3704% and 0.3722% both show as 0.37%: "less often" would read as contradicting them), "hardly
    more often than", or "about as often as" where the two simulated rates are within Monte Carlo
    error of each other. Judged on the raw numbers (:func:`_bounds`)."""
    (pl, ph), (sl, sh) = _bounds(w, row, *rate, "power"), _bounds(w, row, *size, "null_power")
    low, high = pl - sh, ph - sl
    if high < 0 and rate[0] != size[0]:
        return "less often with the assumed effect than without any"
    if high < 0 or low == high == 0:
        return "no more often with the assumed effect than without any"
    if low > 0:
        return "hardly more often with the assumed effect than without any"
    return "about as often with the assumed effect as without any (within Monte Carlo error)"


def _target_cell(w: _Writer, row: str) -> str:
    """The target power cell of the sample-size row ``row`` ("80%"), "" where the table has no such row."""
    return w.cite("sample_sizes", row, "Target power") if w.has("sample_sizes", row) else ""


def _about_target(w: _Writer, row: str, rate_text: str, target: str) -> str:
    """A simulated power within Monte Carlo error of the target, as about the target: "about 80% power (95% Monte
    Carlo interval 79.9% to 83.4%), within Monte Carlo error of the 80% target" (the simulated figure itself,
    where the sample-size table has no target cell to quote)."""
    interval = w.cite("power", row, MC_INTERVAL)
    if target:
        return f"about {target} power (95% Monte Carlo interval {interval}), within Monte Carlo error of the {target} target"
    return f"{rate_text} power (simulated; 95% Monte Carlo interval {interval}), within Monte Carlo error of the target"


def _no_effect_phrase(w: _Writer) -> str:
    """"no treatment effect (a risk ratio of 1)": the primary's effect parameter at its null, where it has one."""
    if w.has("design", "no_effect"):
        item = w.tables["design"].cell("no_effect", "Item")
        return f"no treatment effect (a {item[item.index('(') + 1:-1]} of {w.cite('design', 'no_effect', 'Value')})"
    return "no treatment effect"


def _software(w: _Writer, word: str) -> str | None:
    """How the numbers were computed: software, version, seed, simulated trials, Monte Carlo error."""
    if "computation" not in w.tables:
        return None
    t = "computation"
    bits = [f"{w.cite(t, 'software', 'Value')} ({w.cite(t, 'python', 'Value')}, {w.cite(t, 'numerics', 'Value')})"]
    sims = w.tables[t].cell("n_sims", "Value") if w.has(t, "n_sims") else "-"
    if not w.has(t, "max_mc_se") or w.tables[t].cell("max_mc_se", "Value") == "-":
        sims = "-"  # nothing simulated: no Monte Carlo error to quote
    what = "Power and type I errors were" if word == "Power" else "Type I errors were"
    text = f"{what} computed with {bits[0]}: exactly by enumeration for binary endpoints with a known law"
    if sims != "-":
        if word == "Power" and w.has(t, "null_sims") and w.has(t, "null_max_mc_se"):
            text += (f", otherwise power from {w.cite(t, 'n_sims', 'Value')} and type I errors from "
                     f"{w.cite(t, 'null_sims', 'Value')} simulated trials (root seed {w.cite(t, 'seed', 'Value')}; the largest "
                     f"Monte Carlo standard errors are {w.cite(t, 'max_mc_se', 'Value')} and "
                     f"{w.cite(t, 'null_max_mc_se', 'Value')} percentage points)")
        else:
            text += (f", otherwise from {w.cite(t, 'n_sims', 'Value')} simulated trials (root seed {w.cite(t, 'seed', 'Value')}; "
                     f"the largest Monte Carlo standard error of a simulated rejection rate is {w.cite(t, 'max_mc_se', 'Value')} "
                     "percentage points)")
    return text + "."


def justification(result, tables: dict[str, Table]) -> Paragraph:
    """The justification paragraph for a planning result, quoting ``tables``."""
    w = _Writer(tables, result)
    d = result.design
    prim, ptest = d["primary_endpoint"], d["primary_test"]
    binary = d.get("primary_kind") == "binary"
    targets = sorted(result.settings.get("power", [0.8, 0.9]))
    word = rate_word(result)
    sentences: list[str] = []
    control, treatment = w.cite("design", "control", "Value"), w.cite("design", "treatment", "Value")
    planned, at_planned = _planned(w, control, treatment)
    sentences.append(
        f"The primary endpoint ({w.cite('design', 'primary', 'Value')}) will be compared between {treatment} "
        f"and {control} with the {w.cite('design', 'primary_test', 'Value')} test at a two-sided significance level of "
        f"{w.cite('design', 'alpha', 'Value')}.")
    if not d.get("randomised", True) and w.has("design", "allocation"):
        sentences.append(
            f"Allocation is {w.cite('design', 'allocation', 'Value')}: the figures below assume that the "
            "arms differ only in the treatment they receive, and without randomisation differences in prognosis between "
            "them (selection, changes in care over time) can create or hide a difference, so comparisons between the arms "
            "are descriptive.")
    prow = f"{prim}|{ptest}"
    rate_text, kind = (_rate_cell(w, prow, word, quote=False) if w.has("power", prow) else ("", ""))
    if is_null(result):
        rate_text = _rate_cell(w, prow, word)[0] if rate_text else ""
        if rate_text:
            sentences.append(f"Under the null scenario (no treatment effect on any endpoint), {planned} give "
                             f"a type I error of {rate_text} ({kind}), against the nominal "
                             f"{w.cite('design', 'alpha', 'Value')}.")
        _close(w, sentences, word)
        return Paragraph(" ".join(sentences), w.facts)

    effect = ""
    if w.has("design", "effect"):
        item = w.tables["design"].cell("effect", "Item")
        effect = f"a {item[item.index('(') + 1:-1]} of {w.cite('design', 'effect', 'Value')}"
    if binary and w.has("design", "p_control"):
        assumption = (f"Assuming the endpoint occurs in {w.cite('design', 'p_control', 'Value')} of {control} patients and "
                      f"{w.cite('design', 'p_treatment', 'Value')} of {treatment} patients" + (f" ({effect})" if effect else ""))
    elif effect:
        assumption = f"Assuming {effect} ({treatment} against {control})"
    else:
        assumption = ""
    side = _power_side(w, prow, (rate_text, kind), targets[0]) if rate_text else None
    # within Monte Carlo error of the target: neither "powered" nor a pilot, the power given as about the target
    target_cell = _target_cell(w, f"{prim}|{ptest}|{targets[0]:g}") if side == WITHIN else ""
    if rate_text and not target_cell:
        rate_text = _rate_cell(w, prow, word)[0]  # quoted
    power_phrase = _about_target(w, prow, rate_text, target_cell) if side == WITHIN else _power_phrase(rate_text, kind)
    flowed = (flow_in_analyses(result.frame("flow")) and w.has("flow", "analysable_control")
              and w.has("flow", "analysable_treatment"))
    if rate_text and flowed:  # the power is of who the flow enrols and keeps, not of the planned numbers
        lead = f"{assumption}, the planned {planned}" if assumption else f"the planned {planned}"
        sentences.append(
            f"{lead[0].upper() + lead[1:]} give {power_phrase}{',' if side == WITHIN else ''} with the patients the "
            f"patient-flow model enrols and keeps to follow-up: on average "
            f"{w.cite('flow', 'analysable_control', 'Estimate')} {control} and "
            f"{w.cite('flow', 'analysable_treatment', 'Estimate')} {treatment} patients are analysable.")
    elif rate_text:
        lead = f"{assumption}, {planned}" if assumption else planned
        sentences.append(f"{lead[0].upper() + lead[1:]} give {power_phrase}.")
    elif assumption:
        sentences.append(assumption + ".")
    size = _type_i(w, prow)
    if size is not None:
        size_text, size_kind = size
        text = (f"With {_no_effect_phrase(w)} the same test's type I error at this design is {size_text}: no simulated "
                "trial could compute it" if size_text == NOT_COMPUTABLE else
                f"With {_no_effect_phrase(w)} the same test rejects in {size_text} of trials "
                f"({size_kind}), its type I error at this design")
        if FLAG in w.tables["power"].cell(prow, "Test"):
            text += f", above the nominal {w.cite('design', 'alpha', 'Value')}"
        rate = (rate_text, kind) if rate_text else None
        tells = _tells(w, prow, rate, size)
        if tells == BELOW:
            text += (f": it rejects {_how_often(w, prow, rate, size)}, so the trial cannot tell a working treatment "
                     "from a useless one")
        elif tells == WITHIN and side == BELOW:
            text += (": its power is within Monte Carlo error of twice this type I error, so the trial may not tell a "
                     f"working treatment from a useless one; {MORE_SIMS} it can")
        sentences.append(text + ".")

    size_bits = []
    for t in targets:
        row = f"{prim}|{ptest}|{t:g}"
        if not w.has("sample_sizes", row):
            continue
        n = w.tables["sample_sizes"].cell(row, "n per arm")
        if n == "not simulated":
            continue
        n = w.cite("sample_sizes", row, "n per arm")
        target = w.cite("sample_sizes", row, "Target power")
        if n.startswith(">"):
            size_bits.append(f"{target} power is not reached within the sizes searched (n per arm {n})")
            continue
        enrol = w.cite("sample_sizes", row, "Enrol per arm")
        who = "analysable patients" if w.tables["sample_sizes"].cell(row, "Detail").startswith("exact") else "patients"
        size_bits.append(f"{target} power needs {_per_arm(n, who, f'{enrol} to enrol')}")
    loss_row = f"{prim}|{ptest}|{targets[0]:g}"
    if size_bits:
        loss = w.cite("sample_sizes", loss_row, "Expected loss") if w.has("sample_sizes", loss_row) else ""
        text = "; ".join(size_bits)
        text = text[0].upper() + text[1:]
        detail = w.tables["sample_sizes"].cell(loss_row, "Detail") if w.has("sample_sizes", loss_row) else ""
        note = (" Exact power is not monotone in n; these are the smallest sizes from which it stays at or above the "
                "target at every larger n checked."
                if detail.startswith("exact") else
                " These are simulated, each with a Monte Carlo interval in the table." if detail.startswith("simulated")
                else "")
        sentences.append(f"{text}, allowing for {loss} loss to follow-up.{note}")

    if side in (ABOVE, WITHIN):  # at or about the target power: a power statement, not a pilot's justification
        _close(w, sentences, word)
        return Paragraph(" ".join(sentences), w.facts)

    # --- clearly below the target power for the primary endpoint: a pilot/feasibility justification ---
    if w.has("mde", prow) and w.tables["mde"].cell(prow, "Minimal detectable effect") not in ("not computed", "not simulated"):
        found = w.tables["mde"].cell(prow, "Minimal detectable effect")
        target_row = f"{prim}|{ptest}|{targets[0]:g}"
        target = w.cite("sample_sizes", target_row, "Target power") if w.has("sample_sizes", target_row) else ""
        param = w.cite("mde", prow, "Effect parameter")
        if found == "none":
            sentences.append(
                f"At {at_planned} no effect on this endpoint is detectable with {target or 'the target'} power: even a "
                f"{param} of {w.cite('mde', prow, 'Most extreme searched')} gives {w.cite('mde', prow, 'Power there')}.")
        else:
            sentences.append(f"At {at_planned} the smallest {param} detectable with {target or 'the target'} power is "
                             f"{w.cite('mde', prow, 'Minimal detectable effect')}.")
    guideline = ("CONSORT extension for pilot trials, Eldridge et al. 2016" if d.get("randomised", True) else
                 "CONSORT extension for pilot trials, Eldridge et al. 2016, which Lancaster and Thabane 2019 recommend for "
                 "non-randomised pilots too")
    sentences.append(f"The trial is therefore not designed to test its primary hypothesis; it is justified as a pilot and feasibility study ({guideline}), whose aims are estimation and the planning "
                     "of a main trial, and its tests, the primary one included, are descriptive.")
    if w.has("pilot_rates", f"{prim}|control"):
        sentences.append(
            f"With {planned} the 95% confidence interval of the event rate is expected to be "
            f"{w.cite('pilot_rates', f'{prim}|control', WIDTH)} percentage points wide in the {control} arm and "
            f"{w.cite('pilot_rates', f'{prim}|treatment', WIDTH)} percentage points wide in the {treatment} arm, and there "
            f"is a {w.cite('pilot_rates', f'{prim}|control', 'P(no event)')} chance that no event at all is seen in the "
            f"{control} arm.")
    if w.has("pilot_ratios", prim):
        sentences.append(
            f"The treatment/control geometric mean ratio of the primary endpoint "
            f"({w.cite('pilot_ratios', prim, 'Assumed GMR')} under the assumptions) is expected to be estimated with a "
            f"95% confidence interval of {w.cite('pilot_ratios', prim, 'Expected 95% CI')}.")
    best = _best_secondary(w, result, prim)
    if best is not None:
        best, tied = best
        name = w.cite("pilot_ratios", best, "Endpoint")
        if tied:
            equal = _and([f"{name} ({w.cite('pilot_ratios', best, PRECISION)})"]
                         + [f"{w.cite('pilot_ratios', e, 'Endpoint')} ({w.cite('pilot_ratios', e, PRECISION)})" for e in tied])
            text = (f"Judged by the assumed effect against the precision expected for it (the assumed log geometric mean "
                    f"ratio in expected half-widths of its 95% confidence interval), {equal} are equally promising "
                    "secondary endpoints (a ranking that rests on the assumed effects, not on data); "
                    f"for {name}, the first of them in the config, the treatment/control geometric mean ratio")
        else:
            text = (f"The most promising secondary endpoint, judged by the assumed effect against the precision expected "
                    f"for it, is {name}: its assumed log geometric mean ratio is "
                    f"{w.cite('pilot_ratios', best, PRECISION)} times the expected half-width of its 95% confidence "
                    "interval, the most of any secondary endpoint (a ranking that rests on the assumed effects, not on data), "
                    "and its treatment/control geometric mean ratio")
        text += (f" ({w.cite('pilot_ratios', best, 'Assumed GMR')} under the assumptions) is expected to be estimated with a "
                 f"95% confidence interval of {w.cite('pilot_ratios', best, 'Expected 95% CI')}")
        row = next((r for r in w.tables["power"].frame.index if r.startswith(best + "|")), None) if "power" in w.tables else None
        if row is not None and w.tables["power"].cell(row, f"{word} (simulated)") != "-":
            text += (f"; the {w.cite('power', row, 'Test')} test of it has "
                     f"{w.cite('power', row, f'{word} (simulated)')} power (simulated)")
        text += "."
        sentences.append(text)
    browne = best if best is not None else (prim if w.has("pilot_sd_limits", prim) else None)
    if browne is not None and w.has("pilot_sd_limits", browne):
        col = next(c for c in w.tables["pilot_sd_limits"].frame.columns if "upper limit / estimate" in c)
        level = col.split(" upper limit")[0]  # "80%"
        sentences.append(f"If a main trial's outcome is a continuous one such as {w.cite('pilot_sd_limits', browne, 'Endpoint')}, "
                         f"it should be planned, following Browne (1995), on the one-sided {level} upper confidence "
                         f"limit of the pilot's SD, {w.cite('pilot_sd_limits', browne, col)} times the pilot estimate, which "
                         f"multiplies its size by {w.cite('pilot_sd_limits', browne, 'Main-trial size x')}.")
    if "pilot_guidance" in w.tables:
        guidance = _guidance(w, result, at_planned, binary, browne)
        if guidance:
            sentences.append(guidance)
    main = f"{prim}|{ptest}|{targets[0]:g}"
    if w.has("sample_sizes", main):
        n = w.tables["sample_sizes"].cell(main, "n per arm")
        if not n.startswith(">") and n != "not simulated":
            text = (f"A main trial powered on the primary endpoint under the same assumptions would need "
                    f"{_per_arm(w.cite('sample_sizes', main, 'Enrol per arm'), 'patients')}")
            if w.has("pilot_rates", f"{prim}|control"):
                see = ("the sizes over the control rate and the effect, the assumptions and the power curves"
                       if "size_sensitivity" in w.tables else "the assumptions and the power curves")
                text += (f"; that size rests on the assumed rates and effect (see {see}), "
                         "which this pilot cannot refine: its interval for the control rate is expected to be "
                         f"{w.cite('pilot_rates', f'{prim}|control', WIDTH)} percentage points wide")
            sentences.append(text + ".")
    _close(w, sentences, word)
    return Paragraph(" ".join(sentences), w.facts)


def _close(w: _Writer, sentences: list[str], word: str) -> None:
    software = _software(w, word)
    if software:
        sentences.append(software)


def _guidance(w: _Writer, result, at_planned: str, binary: bool, browne: str | None) -> str | None:
    """Where the design stands against the pilot-size guidance that applies to its primary endpoint."""
    g = w.tables["pilot_guidance"].frame
    kinds = result.frame("pilot_guidance").get("primary_kind")
    label = w.tables["pilot_sd_limits"].cell(browne, "Endpoint") if browne is not None and w.has("pilot_sd_limits", browne) else None
    met, unmet = [], []
    for i, (key, r) in enumerate(g.iterrows()):
        if kinds is not None and str(kinds.iloc[i]) == "binary" and not binary:
            continue  # guidance about binary primary outcomes
        if r["Guidance"].startswith("Whitehead") and r["Endpoint"] != label:
            continue
        who = w.cite("pilot_guidance", key, "Guidance")
        per = w.cite("pilot_guidance", key, "Per arm")
        basis = w.cite("pilot_guidance", key, "Basis")
        if r["Standardised effect"] != "-":
            basis += f" of {w.cite('pilot_guidance', key, 'Standardised effect')}"
        (met if r["Meets it"] == "yes" else unmet).append(f"{who}: {per} per arm {basis}")
    if unmet:
        return (f"With {at_planned} the design falls short of published pilot-size guidance (" + "; ".join(unmet) + ")"
                + (f" but meets {'; '.join(met)}" if met else "") + ".")
    if met:
        return f"With {at_planned} the design meets published pilot-size guidance (" + "; ".join(met) + ")."
    return None


def _and(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _best_secondary(w: _Writer, result, primary: str) -> tuple[str, list[str]] | None:
    """The most promising key log-scale secondary endpoint, and those equally promising: ``(named, others)``.

    Ranked by the assumed effect in expected half-widths of its 95% CI (:func:`effect_to_half_width`),
    which the assumptions and the planned size fix, never by simulated power: two endpoints whose
    simulated powers differ by less than their Monte Carlo error would swap places between seeds.
    Endpoints within :data:`EQUALLY_PROMISING` (relative) of the largest are named as equally
    promising, the first in the config's order named first. None where no secondary endpoint has an
    assumed effect.
    """
    frame = result.frame("pilot_ratios")
    if "pilot_ratios" not in w.tables or frame.empty:
        return None
    ratios = {str(r.endpoint): effect_to_half_width(r.gmr, r.ci_high) for r in frame.itertuples()
              if str(r.endpoint) != primary and w.has("pilot_ratios", str(r.endpoint))}
    ratios = {e: v for e, v in ratios.items() if v == v and v > 0}  # NaN and no assumed effect: nothing to promise
    if not ratios:
        return None
    top = max(ratios.values())
    equal = [e for e, v in ratios.items() if v >= (1 - EQUALLY_PROMISING) * top]  # config order (the frame's)
    return equal[0], equal[1:]


# ---------------------------------------------------------------------------------------------------
# the headline box
# ---------------------------------------------------------------------------------------------------
@dataclass
class Headline:
    """What a reviewer reads first: (label, text) rows, the verdict in one sentence, and the cells quoted."""

    rows: list[tuple[str, str]]
    verdict: str
    facts: list[Fact] = field(default_factory=list)

    def table(self) -> Table:
        frame_rows = [(label, {"Item": label, "Value": text}) for label, text in self.rows + [("Verdict", self.verdict)]]
        frame = pd.DataFrame([r for _, r in frame_rows], index=[k for k, _ in frame_rows])
        return Table("headline", "At a glance", frame)


def headline(result, tables: dict[str, Table]) -> Headline:
    """The headline box of a planning result, quoting ``tables`` (as :func:`justification`)."""
    w = _Writer(tables, result)
    d = result.design
    prim, ptest = d["primary_endpoint"], d["primary_test"]
    prow = f"{prim}|{ptest}"
    control, treatment = w.cite("design", "control", "Value"), w.cite("design", "treatment", "Value")
    rows = [("Design", f"{w.cite('design', 'n_control', 'Value')} {control} vs {w.cite('design', 'n_treatment', 'Value')} "
                       f"{treatment}; {w.cite('design', 'allocation', 'Value')}; {w.cite('design', 'masking', 'Value')} masking"),
            ("Primary analysis", f"{w.cite('design', 'primary', 'Value')}: {w.cite('design', 'primary_test', 'Value')} test, "
                                 f"two-sided {w.cite('design', 'alpha', 'Value')}")]
    word = rate_word(result)
    rate = _rate_cell(w, prow, word) if w.has("power", prow) else None
    size = _type_i(w, prow)
    null = is_null(result)
    if rate is not None and not null:
        effect = ""
        if w.has("design", "effect"):
            item = w.tables["design"].cell("effect", "Item")
            effect = f" at a {item[item.index('(') + 1:-1]} of {w.cite('design', 'effect', 'Value')} (assumed)"
        rows.append(("Power", rate[0] if rate[0] == NOT_COMPUTABLE else f"{rate[0]} ({rate[1]}){effect}"))
    if null and rate is not None:
        rows.append(("Type I error", f"{rate[0]} ({rate[1]}) with every effect at its null"))
    elif size is not None:
        flagged = FLAG in w.tables["power"].cell(prow, "Test")
        rows.append(("Type I error", f"{size[0]} ({size[1]}) with {_no_effect_phrase(w)}"
                                     + (f", above the nominal {w.cite('design', 'alpha', 'Value')}" if flagged else "")))
    estimate = _estimates(w, result, prim, control, treatment)
    if estimate:
        rows.append(("What it can estimate", estimate))
    targets = sorted(result.settings.get("power", [0.8, 0.9]))
    main = f"{prim}|{ptest}|{targets[0]:g}"
    # a main trial's size only where this one is not at or about the target power (within Monte Carlo error of it)
    about = _power_side(w, prow, rate, targets[0]) in (ABOVE, WITHIN)
    if not null and not about and w.has("sample_sizes", main):
        n = w.tables["sample_sizes"].cell(main, "n per arm")
        if n.startswith(">"):
            rows.append(("Main trial", f"{w.cite('sample_sizes', main, 'Target power')} power is not reached within "
                                       f"{_per_arm(n.lstrip('> '), 'analysable patients')}"))
        elif n != "not simulated":
            rows.append(("Main trial", f"{_per_arm(w.cite('sample_sizes', main, 'Enrol per arm'), 'patients')} to enrol for "
                                       f"{w.cite('sample_sizes', main, 'Target power')} power on the primary endpoint"))
    timeline = _timeline(w, result)
    if timeline:
        rows.append(("Timeline", timeline))
    return Headline(rows, verdict(w, rate, size, null, targets[0], prow), w.facts)


def _timeline(w: _Writer, result) -> str:
    """Time to full enrolment and the chance of the planned completion date, from the timeline table."""
    if not w.has("flow", "time_to_full_enrolment"):
        return ""
    text = f"time to full enrolment: {w.cite('flow', 'time_to_full_enrolment', 'Estimate')}"
    if w.has("flow", "p_finished_by_deadline"):
        text += (f"; chance of finishing (last visit) by the planned completion date: "
                 f"{w.cite('flow', 'p_finished_by_deadline', 'Estimate')}")
    if not flow_in_analyses(result.frame("flow")):
        text += ("; from the patient-flow model's cited defaults (the power figures assume every planned patient is "
                 "enrolled, each endpoint then losing the scenario's own share to follow-up)")
    return text[0].upper() + text[1:]


def _estimates(w: _Writer, result, prim: str, control: str, treatment: str) -> str:
    """What the trial can estimate: the primary's interval widths, and the best secondary's ratio."""
    bits = []
    if w.has("pilot_rates", f"{prim}|control") and w.has("pilot_rates", f"{prim}|treatment"):
        bits.append(f"each arm's rate of the primary endpoint, with 95% confidence intervals expected to be "
                    f"{w.cite('pilot_rates', f'{prim}|control', WIDTH)} ({control}) and "
                    f"{w.cite('pilot_rates', f'{prim}|treatment', WIDTH)} ({treatment}) percentage points wide")
    if w.has("pilot_ratios", prim):
        bits.append(f"the primary endpoint's geometric mean ratio with an expected 95% confidence interval of "
                    f"{w.cite('pilot_ratios', prim, 'Expected 95% CI')} (assumed {w.cite('pilot_ratios', prim, 'Assumed GMR')})")
    best = _best_secondary(w, result, prim)
    if best is not None:
        best, tied = best
        name = w.cite("pilot_ratios", best, "Endpoint")
        # labels carry brackets and commas ("Marker (site), mean of log over POD 1, 3, 5"): no label inside
        # brackets, and the ranking said after the estimate, where a label ends the clause
        ranking = (f"as promising as {_and([w.cite('pilot_ratios', e, 'Endpoint') for e in tied])}" if tied else
                   "the most promising secondary endpoint")
        bits.append(f"the secondary endpoint {name} as a geometric mean ratio with an expected 95% confidence interval of "
                    f"{w.cite('pilot_ratios', best, 'Expected 95% CI')} (assumed {w.cite('pilot_ratios', best, 'Assumed GMR')}); "
                    f"by the assumed effect against the expected precision, this endpoint is {ranking}")
    if not bits:
        return ""
    text = "; ".join(bits)
    return text[0].upper() + text[1:]


def verdict(w: _Writer, rate: tuple[str, str] | None, size: tuple[str, str] | None, null: bool, target: float,
            row: str) -> str:
    """The design's verdict in one sentence, from the primary's power and type I error cells (power table row ``row``).

    A simulated figure is called above or below a threshold only when its whole 95% Monte Carlo interval
    is (:func:`~trialsim.results.mc_side`); otherwise the verdict says it is within Monte Carlo error. A
    power within Monte Carlo error of the target is about the target: neither "powered" nor a pilot.
    """
    if rate is None:
        return "No power figure for the primary test was computed."
    if rate[0] == NOT_COMPUTABLE:
        return (f"No power figure for the primary test is computable: no simulated trial could compute it "
                f"({NOT_COMPUTABLE.split('(')[1][:-1]}), so the design as configured cannot be judged by its power.")
    if null:
        return (f"With no treatment effect the primary test rejects in {rate[0]} of trials, against the nominal "
                f"{w.cite('design', 'alpha', 'Value')}.")
    side, tells = _power_side(w, row, rate, target), _tells(w, row, rate, size)
    tail = f", with a type I error of {size[0]}" if size is not None else ""
    if side == ABOVE:
        return f"The design is powered for its primary hypothesis: {rate[0]} power at the assumed effect{tail}."
    if side == WITHIN:  # neither powered nor a pilot: about the target, as a design sized for it is
        about = _about_target(w, row, rate[0], _target_cell(w, f"{row}|{target:g}"))
        return f"The design has about its target power for its primary hypothesis at the assumed effect: {about}{tail}."
    if tells == BELOW:
        return (f"The design cannot tell a working treatment from a useless one: its primary test rejects in {rate[0]} of "
                f"trials with the assumed effect and in {size[0]} with none, so it is a pilot and feasibility study, to be "
                "judged by what it estimates.")
    if tells == WITHIN:
        return (f"The design may not tell a working treatment from a useless one: its primary test rejects in {rate[0]} of "
                f"trials with the assumed effect and in {size[0]} with none, a power within Monte Carlo error of twice "
                f"its type I error, so it is a pilot and feasibility study, to be judged by what it estimates; {MORE_SIMS} it "
                "can tell them apart.")
    return (f"The design is underpowered for its primary hypothesis ({rate[0]} power at the assumed effect), so it is a "
            "pilot and feasibility study, to be judged by what it estimates.")
