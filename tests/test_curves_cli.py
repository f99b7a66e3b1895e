"""`trialsim curves` on the user's ranges and on a sweep's own grid, and the one voice of the planning output.

Range curves of a binary endpoint are exact (checked point by point against the registered exact
power); figures go straight into --out; the printed tables use labels, not ids; a simulated rate from
too few trials, or from none, says so.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import CONFIGS, DEFAULT_CONFIG
from trialsim.cli import build_parser, main
from trialsim.config.loader import load_scenario
from trialsim.model import build_model
from trialsim.planning.curves import RANGE_COLUMNS, n_grid, power_ranges, ranges_from_sweep
from trialsim.planning.model import binary_rates, complete_case, exact_power
from trialsim.report.figures import plot_power_vs_n


def test_power_ranges_are_exact_for_a_binary_endpoint(default_scenario):
    frame = power_ranges(default_scenario, n_values=[20, 40], effects=[0.5, 0.3], control_rates=[0.08, 0.2],
                         ratios=[1, 2])
    assert list(frame.columns) == RANGE_COLUMNS
    assert len(frame) == 2 * 2 * 2 * 2 and (frame["method"] == "exact").all()
    # the config's rate (grades B/C) and the analysed endpoint's own (the detected grade A raises it)
    assert set(frame["facet"]) == {f"control rate {r}, allocation 1:{k}" for r in ("8% (analysed 8.3%)", "20% (analysed 20.7%)")
                                   for k in (1, 2)}
    row = frame[(frame.effect == 0.3) & (frame.control_rate == 0.2) & (frame.ratio == 2) & (frame.n_per_arm == 40)].iloc[0]
    cc = complete_case(load_scenario(DEFAULT_CONFIG, ["endpoints.leak_1m.rate_control=0.2", "endpoints.leak_1m.effect=0.3"]))
    law = binary_rates(build_model(cc), "leak_1m")
    assert row.n_treatment == 80
    assert row.power == pytest.approx(exact_power("fisher", law.p_control, law.p_treatment, 40, 80, alpha=0.05), abs=1e-14)


def test_panel_names_give_whole_percent_rates_without_decimals(default_scenario):
    """0.14 is 14.000000000000002 percent in binary floating point: its panel said "14.0%" beside "8%" and "20%"."""
    frame = power_ranges(default_scenario, n_values=[20], effects=[0.5], control_rates=[0.08, 0.14, 0.125])
    names = sorted({f.split(" (")[0] for f in frame["facet"]})
    assert names == ["control rate 12.5%", "control rate 14%", "control rate 8%"]


def test_the_no_effect_line_is_read_against_alpha(default_scenario):
    """Chi-square at 30 per arm and the registered 12.4%: exact size 5.5%, above alpha; drawn and named so."""
    from matplotlib.figure import Figure

    from trialsim.report.figures import FigureStyle, plot_power_ranges

    frame = power_ranges(default_scenario, n_values=[30], effects=[1.0, 0.5], test="chi2")
    with FigureStyle():
        ax = Figure().add_subplot()
        plot_power_ranges(frame, ax)
        labels = [line.get_label() for line in ax.lines]
        levels = [line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == ":"]
    assert "1 (no effect): type I error above alpha" in labels and levels == [0.05]
    texts = [t.get_text() for t in ax.texts]
    assert "alpha 5%" in texts and "80% power" in texts and "90% power" in texts


def test_ranges_come_from_a_configs_sweep():
    ranges = ranges_from_sweep(load_scenario(CONFIGS / "grid_leak.toml"))
    assert ranges["n_values"] == list(range(10, 201))
    assert ranges["effects"] == [1.0, 0.7, 0.5, 0.33]
    assert ranges["control_rates"] == [0.06, 0.09, 0.12, 0.16, 0.2]
    assert ranges["ratios"] == [1.0] and ranges["ignored"] == []
    assert ranges_from_sweep(load_scenario(DEFAULT_CONFIG)) is None


def test_n_grid():
    assert n_grid(50, 60) == list(range(50, 61))
    assert n_grid(50, 300, 100) == [50, 150, 250, 300]
    big = n_grid(10, 5000)
    assert big[0] == 10 and big[-1] == 5000 and len(big) <= 200


def test_curves_command_writes_the_range_figure_into_out(tmp_path, capsys):
    out = tmp_path / "figs"
    code = main(["curves", str(DEFAULT_CONFIG), "--control-rate", "0.08:0.2:0.06", "--effect", "0.3", "0.5",
                 "--n", "30:60:10", "--out", str(out), "--quiet"])
    assert code == 0
    assert {"power_ranges.png", "power_ranges.svg", "power_ranges.csv"} <= {p.name for p in out.iterdir()}
    assert not (out / "figures").exists()
    frame = pd.read_csv(out / "power_ranges.csv")
    assert sorted(frame["n_per_arm"].unique()) == [30, 40, 50, 60]
    assert sorted(frame["control_rate"].unique()) == pytest.approx([0.08, 0.14, 0.2])
    assert "exact" in capsys.readouterr().out


def test_curves_from_a_sweep_draw_its_own_grid(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text(f'extends = "{DEFAULT_CONFIG}"\nname = "small_sweep"\n[endpoints.leak_1m]\ntests = ["fisher"]\n'
                      '[sweep]\nmode = "grid"\nzip_groups = [["design.n_control", "design.n_treatment"]]\n'
                      '[sweep.values]\n"design.n_control" = [10, 20]\n"design.n_treatment" = [10, 20]\n'
                      '"endpoints.leak_1m.effect" = [1.0, 0.5]\n')
    run_dir = tmp_path / "run"
    assert main(["run", str(config), "--sims", "200", "--seed", "1", "--jobs", "1", "--quiet", "--out", str(run_dir)]) == 0
    out = tmp_path / "curves"
    assert main(["curves", "--from", str(run_dir), "--out", str(out)]) == 0
    grid = pd.read_csv(out / "sweep_grid.csv")
    assert len(grid) == 4 and set(grid["n_per_arm"]) == {10, 20} and set(grid["effect"]) == {1.0, 0.5}
    assert (grid["basis"] == "enrolled").all() and (grid["method"] == "exact").all()
    assert (out / "sweep_grid.png").is_file()
    power = pd.read_csv(run_dir / "power.csv")
    exact = power[(power.method == "exact") & (power.endpoint == "leak_1m")]
    assert sorted(grid["power"]) == pytest.approx(sorted(exact["power"]))
    capsys.readouterr()


def test_coinciding_series_share_one_legend_entry():
    n = np.arange(10, 60, 10)
    rows = []
    for endpoint, shift in (("a", 0.0), ("b", 0.001), ("c", 0.3)):
        rows += [{"endpoint": endpoint, "test": "welch", "label": f"Marker {endpoint}, mean of logs", "short": "",
                  "n_per_arm": k, "power": min(1.0, k / 100 + shift), "mc_se": 0.01, "ci_low": 0.0, "ci_high": 1.0,
                  "method": "monte_carlo"} for k in n]
    ax = plot_power_vs_n(pd.DataFrame(rows))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == 2
    assert "Marker a and Marker b, mean of logs" in labels[0].replace("\n", " ") and "coincide" in labels[0]


# ------------------------------------------------------------------------------------- one voice
def test_samplesize_prints_a_table_with_labels(capsys):
    assert main(["samplesize", str(DEFAULT_CONFIG), "--test", "fisher", "--power", "0.8", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Anastomotic leak within 1 month" in out and "Fisher exact" in out
    assert "leak_1m" not in out and "monte_carlo" not in out
    row = next(line for line in out.splitlines() if "80%" in line and "Fisher" in line)
    assert "367" in row and "379 (2.9% loss)" in row and "343 normal approximation" in row


def test_sims_accepts_scientific_notation():
    args = build_parser().parse_args(["samplesize", str(DEFAULT_CONFIG), "--sims", "1e5"])
    assert args.sims == 100_000


def test_too_few_trials_and_a_test_never_computed_say_so(capsys):
    assert main(["run", str(DEFAULT_CONFIG), "--sims", "10", "--quiet", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    fisher = next(line for line in out.splitlines() if line.strip().startswith("Fisher exact"))
    assert "0 of 10 trials (95% CI 0.0% to 30.8%)" in fisher and "exact 0.37%" in fisher
    assert "primary test has 0.37% power (exact)" in out
    assert "(only 10 trials)" in out
    assert main(["run", str(DEFAULT_CONFIG), "--sims", "50", "--quiet", "--jobs", "1",
                 "--set", "design.n_control=1", "--set", "design.n_treatment=1"]) == 0
    out = capsys.readouterr().out
    welch = next(line for line in out.splitlines() if "Welch t" in line)
    assert "not computable (n_valid 0)" in welch


def test_a_sweep_table_flags_a_type_i_error_above_alpha(tmp_path, capsys):
    """Chi-square at 50 per arm and a 6% control rate rejects 5.2% of trials with no effect (exact): the sweep's
    table marks that rate and the power beside it with the report's dagger, and says what the mark means."""
    config = tmp_path / "sweep.toml"
    config.write_text(f'extends = "{DEFAULT_CONFIG}"\nname = "chi2_sweep"\n[endpoints.leak_1m]\ntests = ["chi2"]\n'
                      'rate_control = 0.06\n[sweep]\nmode = "grid"\nzip_groups = [["design.n_control", "design.n_treatment"]]\n'
                      '[sweep.values]\n"design.n_control" = [10, 50]\n"design.n_treatment" = [10, 50]\n'
                      '"endpoints.leak_1m.effect" = [1.0, 0.5]\n')
    assert main(["run", str(config), "--sims", "200", "--seed", "1", "--jobs", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("n_control=")}
    assert "\u2020" in rows["n_control=50,n_treatment=50,effect=1"]  # a type I error above alpha
    assert "\u2020" in rows["n_control=50,n_treatment=50,effect=0.5"]  # beside it, power overstated
    assert "\u2020" not in rows["n_control=10,n_treatment=10,effect=1"]  # conservative at 10 per arm
    assert "\u2020 the test's type I error exceeds alpha at this design" in out
