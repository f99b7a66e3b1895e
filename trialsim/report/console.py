"""The printed summary of a run: the primary endpoint first, and a plain warning when power is low."""
from __future__ import annotations

import textwrap

import pandas as pd

from trialsim.labels import LOW_POWER, POWER_TARGET, num, pct, power_with_se, test_label
from trialsim.results import RunResult, ScenarioResult


def _power_lines(frame: pd.DataFrame) -> list[str]:
    lines = []
    for (endpoint, test), g in frame.groupby(["endpoint", "test"], sort=False):
        mc = g[g.method == "monte_carlo"].iloc[0]
        text = f"{test_label(test):<16} power {power_with_se(mc.power, mc.mc_se):<17}"
        ex = g[g.method == "exact"]
        if len(ex):
            text += f" exact {pct(ex.iloc[0].power, 2)}"
        lines.append(text)
    return lines


def scenario_summary(res: ScenarioResult, frame: pd.DataFrame, estimates: pd.DataFrame) -> str:
    sc = res.spec.scenario
    d = sc.design
    out = []
    head = f"Scenario {res.spec.id}" + (f" ({', '.join(f'{k}={v}' for k, v in res.spec.values.items())})" if res.spec.values else "")
    out.append(head)
    out.append(f"  {d.control_name} n={d.n_control} vs {d.treatment_name} n={d.n_treatment}, alpha {d.alpha} two-sided, "
               f"{res.n_sims:,} simulated trials")
    f = frame[frame.scenario == res.spec.id]
    e = estimates[estimates.scenario == res.spec.id]
    prim = f[f.primary]
    label = prim.label.iloc[0]
    est = e[(e.endpoint == prim.endpoint.iloc[0])]

    def est_of(arm, stat):
        r = est[(est.arm == arm) & (est.statistic == stat)]
        return float(r["mean"].iloc[0]) if len(r) else float("nan")

    out.append("")
    out.append(f"  PRIMARY ENDPOINT: {label}")
    out.append(f"    expected rate {d.control_name} {pct(est_of('control', 'rate'))}, {d.treatment_name} {pct(est_of('treatment', 'rate'))}"
               f" ({sc.leak.effect_measure.replace('_', ' ')} {sc.leak.effect}, a planning assumption)")
    out.append(f"    chance of no leak at all in the {d.control_name} arm: {pct(1 - est_of('control', 'any_event'))}")
    for line in _power_lines(prim):
        out.append("    " + line)
    first = prim[prim.method == "monte_carlo"].iloc[0]
    if first.power < LOW_POWER:
        warn = (f"WARNING: the primary test has {pct(first.power)} power, far below the usual {pct(POWER_TARGET, 0)}. "
                f"This design cannot detect the assumed effect on {label.lower()}; "
                "treat it as a pilot/feasibility study and report estimates with confidence intervals, not p-values.")
        out.extend("    " + w for w in textwrap.wrap(warn, 96))
    out.append("")
    out.append("  SECONDARY ENDPOINTS (power ± Monte Carlo SE)")
    sec = f[~f.primary]
    width = max(len(x) for x in sec.endpoint) + 2 if len(sec) else 10
    for endpoint, g in sec.groupby("endpoint", sort=False):
        lines = _power_lines(g)
        contrast = e[(e.endpoint == endpoint) & (e.arm == "contrast")]
        extra = f"  (mean estimate {contrast.statistic.iloc[0].replace('_', ' ')} {num(contrast['mean'].iloc[0])})" if len(contrast) else ""
        out.append(f"    {endpoint:<{width}}" + lines[0] + extra)
        out.extend(f"    {'':<{width}}" + line for line in lines[1:])
    if res.flow is not None:
        from trialsim.flow.summary import summarise_flow_arrays

        out.append("")
        out.append("  PATIENT FLOW")
        out.extend("    " + line for line in summarise_flow_arrays(res.flow, sc.flow).splitlines())
    return "\n".join(out)


def comparison_table(result: RunResult, frame: pd.DataFrame | None = None) -> str:
    """Scenarios side by side: arm sizes, the primary endpoint's tests, and each summary endpoint's first test."""
    frame = result.to_frame() if frame is None else frame
    # exact where it exists, else Monte Carlo (with its SE)
    best = frame.sort_values("method").drop_duplicates(["scenario", "endpoint", "test"], keep="first")
    first = result.results[0].spec.scenario
    from trialsim.endpoints import endpoints

    columns = []
    for e in endpoints(first):
        if e.primary:
            columns += [(e.name, t, f"{e.name} {test_label(t)}") for t in e.tests]
        elif e.name.endswith("_mean_log") or e.name == "los_days":
            columns.append((e.name, e.tests[0], f"{e.name} {test_label(e.tests[0])}"))
    header = ["scenario", "n_c", "n_t"] + [c[2] for c in columns]
    rows = []
    for res in result.results:
        sid = res.spec.id
        d = res.spec.scenario.design
        cells = [sid, str(d.n_control), str(d.n_treatment)]
        for endpoint, test, _ in columns:
            r = best[(best.scenario == sid) & (best.endpoint == endpoint) & (best.test == test)]
            if not len(r):
                cells.append("-")
                continue
            r = r.iloc[0]
            cells.append(pct(r.power, 2) + (" (exact)" if r.method == "exact" else f" ±{pct(r.mc_se, 1)}"))
        rows.append(cells)
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def run_summary(result: RunResult, *, detail: bool | None = None) -> str:
    """The console report: each scenario in detail, or for a sweep a side-by-side table first."""
    frame = result.to_frame()
    estimates = result.estimates_frame()
    prov = result.provenance
    head = [f"trialsim {prov.get('trialsim')} | {prov.get('scenario')} | seed {result.seed}"
            f"{'' if prov.get('seed_given') else ' (drawn; pass --seed to repeat)'} | {prov.get('run_seconds')} s"]
    many = len(result.results) > 1
    if detail is None:
        detail = not many
    parts = []
    if many:
        parts.append(f"{len(result.results)} scenarios side by side (power; exact where it exists, else Monte Carlo ± SE):\n"
                     + comparison_table(result, frame))
    if detail:
        parts += [scenario_summary(r, frame, estimates) for r in result.results]
    elif many:
        parts.append("(per-scenario detail: --detail; every number: --out DIR -> power.csv)")
    return "\n".join(head + [""] + ("\n\n".join(parts)).splitlines())
