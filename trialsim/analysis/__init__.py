"""Vectorised statistical tests along the patient axis, exact where possible.

Each test takes the outcomes of the two arms as arrays ``(n_sims, n_patients)`` (control first,
NaN = missing) and returns per-trial p-values. Binary endpoints use cached tables of exact
p-values (:mod:`trialsim.analysis.binary`); continuous and ordinal endpoints use t and
Mann-Whitney tests (:mod:`trialsim.analysis.continuous`); closed-form power and sample size
for planning and checks are in :mod:`trialsim.analysis.analytic`.
"""
from trialsim.analysis.analytic import (
    t_test_power,
    t_test_sample_size,
    two_proportions_power_normal,
    two_proportions_sample_size_normal,
)
from trialsim.analysis.binary import (
    BINARY_TESTS,
    BinaryTestResult,
    binary_test,
    exact_power,
    exact_power_curve,
    pvalue_table,
    rejection_region,
)
from trialsim.analysis.continuous import (
    MANN_WHITNEY_METHODS,
    TestResult,
    mann_whitney,
    student_t,
    welch_t,
)

__all__ = [
    "BINARY_TESTS",
    "BinaryTestResult",
    "binary_test",
    "exact_power",
    "exact_power_curve",
    "pvalue_table",
    "rejection_region",
    "MANN_WHITNEY_METHODS",
    "TestResult",
    "mann_whitney",
    "student_t",
    "welch_t",
    "t_test_power",
    "t_test_sample_size",
    "two_proportions_power_normal",
    "two_proportions_sample_size_normal",
]
