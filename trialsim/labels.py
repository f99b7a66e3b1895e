"""Labels and number formats shared by tables, figures and reports (one place)."""
from __future__ import annotations

import math
import sys
from decimal import Decimal

import numpy as np

from trialsim.registry import TESTS

FLAG = "\u2020"  # dagger: the test's type I error exceeds the significance level here

TEST_LABELS = {
    "fisher": "Fisher exact",
    "boschloo": "Boschloo exact",
    "chi2": "Chi-square (z)",
    "welch_log": "Welch t (log)",
    "mann_whitney": "Mann-Whitney",
}

METHOD_LABELS = {"exact": "exact", "monte_carlo": "Monte Carlo"}

POWER_TARGET = 0.80
LOW_POWER = 0.50


def test_label(test: str) -> str:
    """The test's registered label (every test registers one); unknown names print as given."""
    if test in TESTS:
        return TESTS.get(test).label
    return TEST_LABELS.get(test, test)


def upper_first(text: str) -> str:
    """A label at the start of a title or sentence: its first letter upper-cased, the rest kept as it is
    ("IL-6 (drain) ratio" stays, "risk ratio" -> "Risk ratio"; ``str.capitalize`` would give "Il-6 (drain) ratio")."""
    return text[:1].upper() + text[1:]


def in_sentence(label: str) -> str:
    """A label inside a sentence: 'Anastomotic leak' -> 'anastomotic leak'; acronyms ('IL-6', 'CRP', 'C-reactive') kept."""
    first = label.split(" ", 1)[0]
    if len(first) > 1 and first[1:].isalpha() and first[1:].islower():
        return label[0].lower() + label[1:]
    return label


def pct(x: float, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * x:.{digits}f}%"


def target_pct(x: float) -> str:
    """A target power as a percentage with the digits it was given (``"80%"``, ``"99.9%"``, ``"87.5%"``): never rounded
    to another target (``pct(0.999, 0)`` would print 100%)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{round(100 * float(x), 4):g}%"


def power_with_se(power: float, se: float) -> str:
    """``"18.7% ± 0.4%"``: a Monte Carlo power with its standard error."""
    digits = 2 if se < 0.0005 else 1
    return f"{pct(power, digits)} ± {pct(se, digits)}"


def num(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}"


# ------------------------------------------------------------------ report tables and the paragraph
def is_missing(x) -> bool:
    """None, NaN or pandas' NA (a missing cell read back from CSV)."""
    if x is None:
        return True
    pandas = sys.modules.get("pandas")  # a pandas NA or NaT exists only once pandas is loaded: no need to import it
    try:
        return bool(pandas.isna(x) if pandas is not None else np.isnan(x))
    except (TypeError, ValueError):
        return False


def fmt_n(x) -> str:
    """A count of patients: ``1,234``; ``-`` when missing."""
    return "-" if is_missing(x) else f"{int(x):,}"


def fmt_pct(x, digits: int = 1) -> str:
    return "-" if is_missing(x) else pct(float(x), digits)


LEVEL_DIGITS = 4  # significant digits of a level that no shorter decimal states exactly


def fmt_level(x) -> str:
    """A significance or confidence level as a percentage with the digits it needs: 5%, 2.5%, 97.5%, 0.125%
    (0.05 / 40; two decimals said 0.12%). One that no :data:`LEVEL_DIGITS` digits state exactly (0.05 / 3) is cut,
    never rounded up: 1.666%, so a printed level is never more lenient than the true one."""
    if is_missing(x):
        return "-"
    value = 100.0 * float(x)
    if value <= 0:
        return f"{value:g}%"
    for digits in range(1, LEVEL_DIGITS + 1):
        text = f"{value:.{digits}g}"
        if math.isclose(float(text), value, rel_tol=1e-9):
            return f"{Decimal(text):f}%"
    scale = 10.0 ** (LEVEL_DIGITS - 1 - math.floor(math.log10(value)))
    return f"{Decimal(f'{math.floor(value * scale * (1 + 1e-12)) / scale:.{LEVEL_DIGITS}g}'):f}%"


# a test that no simulated trial could compute: its rate is not 0%, it does not exist (run, report and compare say so alike)
NOT_COMPUTABLE = "not computable (n_valid 0)"
NOT_COMPUTABLE_METHOD = "not_computable"  # the method of such a rate in compare's table (its rate and SE are NaN)


def none_valid(n_valid) -> bool:
    """No simulated trial computed the test (``n_valid`` 0); unknown counts (None, NaN, older tables) are not."""
    return n_valid is not None and not is_missing(n_valid) and int(n_valid) == 0


def fmt_power(x) -> str:
    """Powers below 1% keep two decimals (a 0.4% power must not print as 0%)."""
    if is_missing(x):
        return "-"
    return pct(float(x), 2 if float(x) < 0.01 else 1)


def fmt_ratio(x) -> str:
    return "-" if is_missing(x) else f"{float(x):.3g}"


def fmt_interval(lo, hi, f=fmt_pct) -> str:
    return "-" if is_missing(lo) or is_missing(hi) else f"{f(lo)} to {f(hi)}"


# ------------------------------------------------------------------ figure legends
def short_endpoint_label(endpoint: str, label: str | None = None, short: str | None = None) -> str:
    """A figure-legend length name of an endpoint: its family's short label, else its label, else its name."""
    return short or label or endpoint


def short_test_label(test: str) -> str:
    """``test_label`` without qualifiers the legend does not need ("Welch t (log)" -> "Welch t")."""
    return test_label(test).replace(" (log)", "").replace(" exact", "").replace(" (z)", "")


def series_label(endpoint: str, test: str, label: str | None = None, short: str | None = None) -> str:
    return f"{short_endpoint_label(endpoint, label, short)}: {short_test_label(test)}"


# ------------------------------------------------------------------ console tables
def aligned_table(header: list[str], rows: list[list[str]], *, right: set[int] = frozenset(), indent: str = "") -> list[str]:
    """Rows of text cells as aligned lines under a header and a rule; columns in ``right`` right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells) -> str:
        return indent + "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header), indent + "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


KEY_LABELS = {
    "n_control": "control arm size",
    "n_treatment": "treatment arm size",
    "rate_control": "control rate",
    "alpha": "alpha",
    "ratio": "allocation ratio",
}


def key_label(path: str) -> str:
    """A config key path in words for a legend or a panel title (``endpoints.x.rate_control`` -> control event rate)."""
    last = path.rsplit(".", 1)[-1]
    return KEY_LABELS.get(last, last.replace("_", " "))


EXTRAPOLATED = "Extrapolated beyond"  # how the note of a simulated sample size above every size simulated begins


def extrapolated(row: dict) -> str | None:
    """The first sentence of a simulated sample size's note when it lies beyond every size simulated, else None."""
    note = row.get("note")
    if row.get("method") != "monte_carlo" or is_missing(note) or not str(note).startswith(EXTRAPOLATED):
        return None
    return str(note).split(". ")[0] + "."
