"""The printed summary of a run: the primary endpoint first, and a plain warning when power is low."""
from __future__ import annotations

import textwrap

import pandas as pd

from trialsim.report.labels import LOW_POWER, POWER_TARGET, num, pct, power_with_se, test_label
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


def run_summary(result: RunResult) -> str:
    frame = result.to_frame()
    estimates = result.estimates_frame()
    prov = result.provenance
    head = [f"trialsim {prov.get('trialsim')} | {prov.get('scenario')} | seed {result.seed}"
            f"{'' if prov.get('seed_given') else ' (drawn; pass --seed to repeat)'} | {prov.get('run_seconds')} s"]
    body = [scenario_summary(r, frame, estimates) for r in result.results]
    return "\n".join(head + [""] + ("\n\n".join(body)).splitlines())
