"""Labels and number formats shared by tables, figures and reports (one place)."""
from __future__ import annotations

import math

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
    return TEST_LABELS.get(test, test)


def pct(x: float, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * x:.{digits}f}%"


def power_with_se(power: float, se: float) -> str:
    """``"18.7% ± 0.4%"``: a Monte Carlo power with its standard error."""
    digits = 2 if se < 0.0005 else 1
    return f"{pct(power, digits)} ± {pct(se, digits)}"


def num(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}"
