"""The printed replay of one simulated trial: its patients as tables, then every analysis in words."""
from __future__ import annotations

import numpy as np
import pandas as pd

from trialsim.analysis import registry as tests
from trialsim.labels import fmt_level, test_label
from trialsim.model import Model
from trialsim.report.console import on_logs


def _cell(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (float, np.floating)):
        return "." if np.isnan(x) else f"{x:.4g}"
    return str(x)


def text_table(frame: pd.DataFrame, *, width: int = 120) -> list[str]:
    """A frame as aligned text (numbers right, words left), its columns cut into chunks of ``width``.

    The first column (the row key) repeats in every chunk.
    """
    cells = {c: [_cell(x) for x in frame[c]] for c in frame.columns}
    right = {c: pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) for c in frame.columns}
    size = {c: max([len(str(c))] + [len(x) for x in cells[c]]) for c in frame.columns}
    key, rest = frame.columns[0], list(frame.columns[1:])
    chunks, current = [], []
    for c in rest:
        if current and size[key] + sum(size[x] + 2 for x in current + [c]) > width:
            chunks.append(current)
            current = []
        current.append(c)
    chunks.append(current)
    lines = []
    for chunk in chunks:
        cols = [key] + chunk
        if lines:
            lines.append("")

        def fmt(c, text):
            return text.rjust(size[c]) if right[c] else text.ljust(size[c])

        lines.append("  ".join(fmt(c, str(c)) for c in cols).rstrip())
        lines += ["  ".join(fmt(c, cells[c][i]) for c in cols).rstrip() for i in range(len(frame))]
    return lines


def replay_summary(replay, model: Model) -> str:
    """A replayed trial (:class:`trialsim.replay.Replay`): its patients, then every analysis in words.

    Patients first as observed (what the analyses saw; '.' = not observed), then the simulated
    values underneath (``<endpoint section>.<value>``). Estimates of log-scale endpoints print as
    ratios (exp of the log difference and of its interval).
    """
    d = model.scenario.design
    p = replay.patients
    underlying = [c for c in p.columns if "." in c]
    observed = [c for c in p.columns if c not in underlying]
    out = [f"trialsim replay | scenario {replay.scenario} | trial {replay.trial} | seed {replay.seed}",
           f"  {d.control_name} vs {d.treatment_name}, {len(p)} patients in enrolment order", "",
           "PATIENTS AS OBSERVED ('.' = not observed; log-scale endpoints on their own scale)"]
    out += text_table(p[observed])
    if underlying:
        out += ["", "SIMULATED VALUES (before anything went missing)"]
        out += text_table(p[["position"] + underlying])
    out += ["", f"ANALYSES (treatment vs control; {fmt_level(1 - d.alpha)} confidence interval; reject at alpha {d.alpha})"]
    endpoints = {a.name: a for a in model.analysed}
    rows = []
    for r in replay.analyses.itertuples(index=False):
        a = endpoints.get(r.endpoint)
        scale = a.scale if a is not None else "identity"
        estimand = tests.get(r.test).estimand
        f = np.exp if on_logs(estimand, scale) else (lambda x: x)
        ci = "" if np.isnan(r.ci_low) else f"{_cell(f(r.ci_low))} to {_cell(f(r.ci_high))}"
        rows.append({"endpoint": r.endpoint, "test": test_label(r.test), "p-value": _cell(r.pvalue),
                     "estimate": _cell(f(r.estimate)), "of": tests.estimand_label(estimand, scale), "interval": ci,
                     "reject": _cell(bool(r.reject))})
    out += text_table(pd.DataFrame(rows)) if rows else ["(no analyses)"]
    return "\n".join(out)
