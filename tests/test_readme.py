"""Every figure the README's power table quotes equals a fresh seeded run's output, so README and program
cannot drift apart."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from trialsim.api import flow, run
from trialsim.cli import main
from trialsim.config.loader import load_scenario
from trialsim.labels import pct, power_with_se
from trialsim.planning.compare import compare, design_label
from trialsim.planning.samplesize import sample_sizes

ROOT = Path(__file__).resolve().parents[1]

# README row label -> (endpoint, test)
ROWS = {
    "leak within 1 month (primary)": ("leak_1m", "fisher"),
    "drain IL-6, mean of log POD 1-5": ("il6_drain_mean_log", "welch_log"),
    "drain IL-6, POD 1": ("il6_drain_pod1", "welch_log"),
    "serum IL-6, mean of log": ("il6_serum_mean_log", "welch_log"),
    "colonoscopy defect or worse": ("colonoscopy_abnormal", "fisher"),
    "length of stay": ("los_days", "mann_whitney"),
}


def _readme_rows() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("**What the registered design can show**"):]
    out = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in ROWS:
            out[cells[0]] = cells[3]
        if not line.strip() and out:
            break
    return out


@pytest.mark.slow
def test_readme_power_table_equals_a_fresh_run():
    sc = load_scenario(ROOT / "configs" / "exosome_lar_20.toml")
    assert sc.run.n_sims == 100_000 and sc.run.seed == 20240831  # what the README says it ran
    frame = run(sc, n_jobs=2).to_frame()
    quoted = _readme_rows()
    assert set(quoted) == set(ROWS)
    for label, (endpoint, test) in ROWS.items():
        rows = frame[(frame.endpoint == endpoint) & (frame.test == test)]
        mc = rows[rows.method == "monte_carlo"].iloc[0]
        assert power_with_se(mc.power, mc.mc_se) in quoted[label], (label, quoted[label])
        exact = rows[rows.method == "exact"]
        if len(exact):
            assert f"exact {pct(exact.iloc[0].power, 2)}" in quoted[label], (label, quoted[label])
    # the second leak row quotes the other two tests
    line = next(line for line in (ROOT / "README.md").read_text().splitlines() if "Boschloo exact / chi-square" in line)
    for test in ("boschloo", "chi2"):
        rows = frame[(frame.endpoint == "leak_1m") & (frame.test == test)]
        mc, exact = rows[rows.method == "monte_carlo"].iloc[0], rows[rows.method == "exact"].iloc[0]
        assert pct(mc.power, 2) in line and pct(exact.power, 2) in line, (test, line)
    assert re.search(r"about \d+ s on 2 cores", (ROOT / "README.md").read_text())


def test_readme_leak_sample_sizes_equal_the_exact_scan():
    """The README's exact sample-size row for the primary equals `samplesize` (exact, so no seed needed)."""
    sc = load_scenario(ROOT / "configs" / "exosome_lar_20.toml")
    table = sample_sizes(sc, endpoint="leak_1m", test="fisher", power=(0.8, 0.9))
    got = {r.target_power: r for r in table.results}
    row = (f"| leak, Fisher exact | {got[0.8].n} (enrol {got[0.8].n_enrolled}) | {got[0.9].n} (enrol {got[0.9].n_enrolled}) "
           f"| {got[0.8].n_analytic}, normal approximation |")
    assert row in (ROOT / "README.md").read_text(encoding="utf-8")


def _comparison_rows() -> dict[str, str]:
    """README's "Choosing a design" table: design label -> its whole line."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index("## Choosing a design"):]
    block = block[block.index("```\nDesign") + 4:]
    block = block[:block.index("```")]
    return {line[:42].strip(): line for line in block.splitlines()[2:] if line.strip()}


def test_readme_comparison_exact_cells_equal_a_fresh_comparison():
    # The Monte Carlo cells come from 10,000 trials per design (about 6 minutes on 2 cores, too long for CI); the
    # exact cells do not depend on the number of trials, so a short comparison must reproduce them to the digit.
    quoted = _comparison_rows()
    configs = {design_label(load_scenario(p)): p for p in sorted((ROOT / "configs").rglob("*.toml"))}
    exact = {label: line for label, line in quoted.items() if "(exact)" in line}
    assert set(quoted) <= set(configs) and len(exact) >= 4
    frame = compare([configs[label] for label in exact], n_sims=20, seed=1, n_jobs=1, flow_sims=20, sweep=False).frame
    for row in frame.itertuples():
        line = exact[row.design]
        assert row.power_method == row.type_i_method == "exact", row.design
        assert f"{pct(row.power, 2)} (exact)" in line and line.count("(exact)") == 2, (row.design, line)
        assert line.index(f"{pct(row.power, 2)} (exact)") < line.rindex(f"{pct(row.type_i, 2)} (exact)"), (row.design, line)


@pytest.mark.slow
def test_readme_timeline_equals_a_fresh_flow_run():
    """The README's patient-flow paragraph quotes `trialsim flow configs/exosome_lar_20.toml` (100,000 trials)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    para = " ".join(text[text.index("Default assumptions, 100,000 simulated trials"):].split("\n\n")[0].split())
    summary = flow(ROOT / "configs" / "exosome_lar_20.toml", n_jobs=2).summary
    assert summary.n_trials == 100_000
    enrol, study = summary.time_to_full_enrolment, summary.study_duration
    assert f"median **{enrol.median:.0f} days** (80% interval {enrol.lower_80:.0f}-{enrol.upper_80:.0f}, 95% " \
           f"{enrol.lower_95:.0f}-{enrol.upper_95:.0f})" in para
    assert (f"**{study.median:.0f} days** ({study.lower_80:.0f}-{study.upper_80:.0f}; {study.lower_95:.0f}-"
            f"{study.upper_95:.0f})") in para
    hits = round(summary.p_finished_by_deadline.value * summary.n_trials)
    assert f"met in {100 * hits / summary.n_trials:.2g}% of trials ({hits} of 100,000" in para
    assert f"fully enrolled by then: {pct(summary.p_enrolled_by_deadline.value, 2)}" in para
    mean = (summary.analysable_control.value + summary.analysable_treatment.value) / 2
    assert f"A mean of {mean:.1f} patients per arm" in para


def test_readme_solve_example_equals_the_command(capsys):
    """The `trialsim solve` example the README shows is what the command prints (its saw-tooth line names the
    horizon checked, which moves with the scan's settings)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    command = "$ trialsim solve proportions --p-control 0.124 --risk-ratio 0.5 --power 0.8"
    block = text[text.index(command) + len(command):].split("\n$ ", 1)[0]
    quoted = [" ".join(line.split()) for line in block.splitlines() if line.strip()]
    assert len(quoted) == 4  # the table's header, its two rows, the saw-tooth line
    assert main(command.removeprefix("$ trialsim ").split()) == 0
    printed = {" ".join(line.split()) for line in capsys.readouterr().out.splitlines()}
    for line in quoted:
        assert line in printed, line
