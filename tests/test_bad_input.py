"""Every bad input is refused cleanly: exit status 2, the key or flag named, no traceback.

A hypothesis fuzz sets odd values (NaN, inf, huge, tiny, negative, wrong types, control characters) at
key paths of the two shipped trials and runs the CLI in-process; explicit tests cover NaN naming the
key, text no writer can carry, names that reach ids, duplicate tests, the CLI flags and the signals.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trialsim.cli.compare as cli_compare
import trialsim.cli.planning as cli_planning
import trialsim.cli.replay as cli_replay
import trialsim.cli.run as cli_run
from trialsim.cli import build_parser, main
from trialsim.config.loader import ConfigError, load_scenario, to_raw, with_values
from trialsim.labels import target_pct
from trialsim.model import build_model
from trialsim.planning.analytic import analytic_power, model_moments

from tests.conftest import CONFIGS, CRP_CONFIG, DEFAULT_CONFIG

CONFIG_FILES = {"exosome": DEFAULT_CONFIG, "crp": CRP_CONFIG,
                # the design alternatives' own sections: [bayes], [multiplicity], assessor bias, a selection scheme
                "bayes": CONFIGS / "designs" / "bayes_pilot_20.toml", "holm": CONFIGS / "designs" / "holm_secondaries_20.toml",
                "unmasked": CONFIGS / "designs" / "unmasked_20.toml",
                "selection": CONFIGS / "designs" / "registered_selection.toml"}


def cli(*argv: str):
    """Run ``trialsim ARGV`` in this process: (exit status, stdout, stderr, RunResult or None)."""
    out, err, seen = io.StringIO(), io.StringIO(), []
    summary = cli_run.run_summary

    def keep(result, **kwargs):
        seen.append(result)
        return summary(result, **kwargs)

    cli_run.run_summary = keep
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(list(argv))
    finally:
        cli_run.run_summary = summary
    return status, out.getvalue(), err.getvalue(), seen[0] if seen else None


def leaf_paths(node, prefix: str = ""):
    """Key paths of every value of a resolved config (list items too)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    elif isinstance(node, list) and node and all(isinstance(v, dict) for v in node):
        for i, value in enumerate(node):
            yield from leaf_paths(value, f"{prefix}[{i}]")
    else:
        yield prefix, node
        if isinstance(node, list):
            for i, value in enumerate(node):
                yield f"{prefix}[{i}]", value


DESIGN_SECTIONS = ("bayes", "multiplicity", "allocation", "interim", "safety", "design")


def fuzz_keys() -> list[tuple[str, str, object]]:
    """(config, key path, default value) for every value of the two shipped trials but run and sweep settings
    (run settings are the CLI flags'; a sweep would multiply the runs)."""
    out = []
    for name, path in CONFIG_FILES.items():
        raw = to_raw(load_scenario(path))
        keys = [(name, key, value) for key, value in leaf_paths(raw) if not key.startswith(("run", "sweep"))]
        if name not in ("exosome", "crp"):  # the alternatives extend the registered trial: only what they add
            keys = [k for k in keys if k[1].startswith(DESIGN_SECTIONS) or "assessor" in k[1]]
        out += keys
    return out


KEYS = fuzz_keys()
CONTROL = "".join(map(chr, [*range(0, 9), 11, 12, *range(14, 32), 127, 0x85, 0xFFFE]))


def toml_string(text: str) -> str:
    return json.dumps(text)  # JSON's \uXXXX and quote escapes are TOML basic-string escapes


def odd_values(default) -> st.SearchStrategy[str]:
    """TOML texts for ``--set key=TEXT``: mostly odd, some plausible (scaled defaults)."""
    plain = st.sampled_from(["nan", "inf", "-inf", "1e308", "-1e308", "5e-324", "-5e-324", "0", "-1", "1", "0.5",
                             "1e20", "9223372036854775807", "-9223372036854775808", "true", "[]", "[1, 2]", '""',
                             '"a|b"', '"x"', "{ a = 1 }", '["fisher", "fisher"]'])
    numbers = st.floats(allow_nan=False, allow_infinity=False).map(repr)
    integers = st.integers(-(10**20), 10**20).map(str)
    texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from(CONTROL),
                    max_size=12).map(toml_string)
    options = [plain, numbers, integers, texts]
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        options.append(st.sampled_from([10.0, 0.1, 1e6, 1e-6, -1.0, 0.999]).map(lambda f: repr(type(default)(default * f))
                                                                                  if isinstance(default, float)
                                                                                  else str(int(default * f))))
    return st.one_of(*options)


def names_key(key: str, message: str) -> bool:
    """The message names the key: its section (or endpoint) and its own name, list positions aside."""
    parts = re.sub(r"\[\d+\]", "", key).split(".")
    flat = re.sub(r"\[\d+\]", "", message)
    return ".".join(parts[:2]) in flat and parts[-1] in flat


# derandomize: the same 250 cases in every CI run (about 40-60 s); a wider search is the same test with
# derandomize=False and --hypothesis-seed (500 examples x 4 seeds passed when it was written).
@settings(max_examples=250, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fuzz_every_key_is_refused_cleanly_or_runs_with_powers_in_0_1(data):
    name, key, default = data.draw(st.sampled_from(KEYS), label="key")
    text = data.draw(odd_values(default), label="value")
    # --jobs 1 keeps the run in this process (the registered trial asks for every core); --quiet, no progress bar
    status, _, err, result = cli("run", str(CONFIG_FILES[name]), "--set", f"{key}={text}", "--sims", "200",
                                 "--seed", "1", "--jobs", "1", "--quiet", "--no-sweep")
    assert "Traceback" not in err
    assert status in (0, 2), err
    if status == 2:
        assert names_key(key, err), err
    else:
        power = result.to_frame()["power"].to_numpy(dtype=float)
        assert power.size and all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in power)


# --------------------------------------------------------------------------------------------- config
def test_nan_and_inf_are_refused_naming_the_key(tmp_path, default_scenario):
    for text in ("nan", "inf", "-inf"):
        status, _, err, _ = cli("run", str(DEFAULT_CONFIG), "--set", f"endpoints.leak_1m.rate_control={text}")
        assert status == 2 and "endpoints.leak_1m.rate_control" in err and "finite" in err
    path = tmp_path / "nan.toml"
    path.write_text((CONFIGS / "crp_randomised_30.toml").read_text().replace("sd = 0.6 ", "sd = nan "))
    with pytest.raises(ConfigError, match=r"endpoints\.crp_pod3\.sd = nan"):
        load_scenario(path)
    with pytest.raises(ConfigError, match=r"sweep\.values\.design\.alpha\[1\] = inf"):
        with_values(default_scenario, {"sweep": {"values": {"design.alpha": [0.05, math.inf]}}})


@pytest.mark.parametrize("value, kind", [("1979-05-27T07:32:00Z", "date and time"), ("2024-08-31 00:00:00", "date and time"),
                                         ("07:32:00", "time of day")])
def test_a_toml_time_is_refused_naming_the_key(tmp_path, value, kind):
    """No key takes a time: a TOML date-time or time is a slip for a date or for text, refused, not read as text."""
    base = DEFAULT_CONFIG.read_text()
    title = re.search(r"^title = .*$", base, flags=re.M).group(0)
    for key, text in (("title", base.replace(title, f"title = {value}", 1)),
                      ("flow.start_date", base + f"\n[flow]\nstart_date = {value}\n")):
        path = tmp_path / "time.toml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=rf"{re.escape(key)} = .* is a TOML {kind}, which no key takes"):
            load_scenario(path)
    path.write_text(base + "\n[flow]\nstart_date = 2024-09-02\n")  # a date is still a date
    assert str(load_scenario(path).flow.start_date) == "2024-09-02"


@pytest.mark.parametrize("key", ["title", "design.control_name", "endpoints.leak_1m.label",
                                 "endpoints.cytokines.markers[1].unit", "population.covariates[0].source",
                                 "endpoints.leak_1m.grades[0]"])
@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\x85", "\ufffe"])
def test_text_no_writer_can_carry_is_refused_at_load(default_scenario, key, char):
    with pytest.raises(ConfigError, match=r"U\+[0-9A-F]{4}.*no report format can carry") as info:
        with_values(default_scenario, {key: f"a{char}b"})
    assert names_key(key, str(info.value))


def test_free_text_keeps_newlines_and_tabs_and_other_characters_are_the_writers_to_escape(default_scenario):
    sc = with_values(default_scenario, {"description": "two\nlines\tand a tab", "title": "IL-6 < 5 $x$ | \u00e9 \U0001F600",
                                        "endpoints.cytokines.markers[0].label": "IL-6 $\\alpha$ <b>"})
    assert sc.description.count("\n") == 1 and "$" in sc.title
    with pytest.raises(ConfigError, match="title"):
        with_values(default_scenario, {"title": "two\nlines"})


@pytest.mark.parametrize("key, value", [("endpoints.cytokines.markers[0].name", "il6|serum"),
                                        ("endpoints.cytokines.markers[0].group", "il 6"),
                                        ("population.covariates[0].name", "m\u00e4nnlich"),
                                        ("name", "../escape"), ("name", "a/b")])
def test_names_that_reach_ids_and_file_names_use_a_safe_alphabet(default_scenario, key, value):
    with pytest.raises(ConfigError) as info:
        with_values(default_scenario, {key: value})
    assert names_key(key, str(info.value)) and ("ASCII" in str(info.value) or "file name" in str(info.value))


def test_duplicate_tests_are_refused(default_scenario, crp_scenario):
    with pytest.raises(ConfigError, match=r"endpoints\.leak_1m\.tests lists the test 'fisher' twice"):
        with_values(default_scenario, {"endpoints.leak_1m.tests": ["fisher", "chi2", "fisher"]})
    with pytest.raises(ConfigError, match=r"endpoints\.colonoscopy\.dichotomised_tests lists"):
        with_values(default_scenario, {"endpoints.colonoscopy.dichotomised_tests": ["fisher", "fisher"]})
    with pytest.raises(ConfigError, match=r"endpoints\.crp_pod3\.tests lists"):
        with_values(crp_scenario, {"endpoints.crp_pod3.tests": ["welch_log", "welch_log"]})


@pytest.mark.parametrize("key, value, named", [
    ("endpoints.leak_1m.rate_control", 5e-324, "rate_control"),  # brentq on the logistic intercept
    ("endpoints.leak_1m.effect", 5e-324, "effect"),
    ("endpoints.ssi_30d.rate_control", 1 - 1e-12, "rate_control"),
    ("endpoints.cytokines.corr_days_step", 5e-324, "corr_days_step"),
    ("endpoints.cytokines.markers[0].median[1]", 1e308, "median"),
    ("endpoints.los_days.median", 5e-324, "median"),
    ("endpoints.los_days.extra_days_cv", 5e-324, "extra_days_cv"),  # gamma shape 1 / cv^2 overflows
    ("endpoints.los_days.extra_days_by_grade[2]", 1e308, "extra_days_by_grade"),
    ("follow_up.horizon_days", 5e-324, "horizon_days"),
    ("follow_up.p_death", 1.0, "p_death"),  # nobody reaches the visit: ZeroDivisionError in the exact laws
    ("design.alpha", 5e-324, "alpha"),
    ("allocation.ratio", [1, 10**18], "ratio"),
])
def test_magnitudes_that_break_the_numerics_are_refused(default_scenario, crp_scenario, key, value, named):
    scenario = crp_scenario if "ssi_30d" in key else default_scenario
    with pytest.raises(ConfigError, match=named):
        with_values(scenario, {key: value})


def test_calibration_works_at_the_bounds_of_rates_and_odds_ratios(default_scenario):
    from trialsim.endpoints.risk import MAX_TOTAL_LOG_OR, RATE_MIN, calibrate_intercept

    for rate in (RATE_MIN, 0.5, 1 - RATE_MIN):
        for spread in (-MAX_TOTAL_LOG_OR, MAX_TOTAL_LOG_OR):
            b0 = calibrate_intercept((0.5, 1.0), (spread / 2, spread / 2), rate)
            assert math.isfinite(b0)
    covariates = [{"name": f"c{i}", "prevalence": 0.5} for i in range(10)]  # 10 x |log 100| = 46 > 40
    with pytest.raises(ConfigError, match="odds ratios together"):
        with_values(default_scenario, {"population.covariates": covariates, "endpoints.leak_1m.risk_factors":
                                       [{"covariate": c["name"], "odds_ratio": 100.0} for c in covariates]})


def test_a_flow_that_needs_too_many_referrals_is_refused_before_it_runs(default_scenario):
    with pytest.raises(ConfigError, match=r"flow\.p_consent = 0\.001.*referrals per simulated trial"):
        with_values(default_scenario, {"flow": {"p_eligible": 0.5, "p_consent": 0.001}})
    with pytest.raises(ConfigError, match=r"flow\.referrals_per_month = 0\.01.*years"):
        with_values(default_scenario, {"flow": {"referrals_per_month": 0.01}})
    with pytest.raises(ConfigError, match=r"flow\.p_consent"):
        with_values(default_scenario, {"flow": {"p_consent": 1e-6}})
    with_values(default_scenario, {"flow": {"p_consent": 0.2}})  # a plausible flow stays allowed


def test_sweeps_are_bounded(default_scenario):
    with pytest.raises(ConfigError, match="not a key path"):
        with_values(default_scenario, {"sweep": {"values": {"design.n_control\x00": [5, 6]}}})
    with pytest.raises(ConfigError, match="expand to 160,000 scenarios"):
        with_values(default_scenario, {"sweep": {"values": {"design.n_control": list(range(2, 402)),
                                                            "design.n_treatment": list(range(2, 402))}}})


# ---------------------------------------------------------------------------------------------- flags
def parse(*argv: str):
    return build_parser().parse_args(["run", str(CRP_CONFIG), *argv])


def test_whole_number_flags_accept_scientific_notation():
    assert parse("--sims", "1e5").sims == 100_000
    assert parse("--sims", "100_000").sims == 100_000
    assert parse("--seed", "2e3").seed == 2000
    assert parse("--jobs", "-1").jobs == -1 and parse("--jobs", "2").jobs == 2


@pytest.mark.parametrize("argv, flag, says", [
    (["--seed", "-1"], "--seed", ">= 0"),
    (["--sims", "1000000000000"], "--sims", "from 1 to 1,000,000,000"),
    (["--sims", "0"], "--sims", "from 1"),
    (["--sims", "2.5"], "--sims", "whole number"),
    (["--sims", "nan"], "--sims", "whole number"),
    (["--jobs", "0"], "--jobs", "0 workers run nothing"),
    (["--jobs", "-2"], "--jobs", "-1 for all cores"),
    (["--chunk-blocks", "0"], "--chunk-blocks", "from 1"),
    (["--out", ""], "--out", "give a folder name"),  # an unset shell variable: never the current folder
    (["--max-memory", "1e9"], "--max-memory", "from 64 to 16,777,216"),
    (["--out", "a\x01b"], "--out", "without control characters"),
])
def test_bad_flags_exit_2_naming_the_flag(argv, flag, says):
    status, _, err, _ = cli("run", str(CRP_CONFIG), *argv)
    assert status == 2 and "Traceback" not in err
    assert f"argument {flag}" in err and says in err


@pytest.mark.parametrize("argv, flag", [(["samplesize", str(CRP_CONFIG), "--power", "1.5"], "--power"),
                                        (["samplesize", str(CRP_CONFIG), "--ratio", "inf"], "--ratio"),
                                        (["samplesize", str(CRP_CONFIG), "--n-max", "1e9"], "--n-max")])
def test_planning_flags_are_checked_too(argv, flag):
    status, _, err, _ = cli(*argv)
    assert status == 2 and f"argument {flag}" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, says", [
    (["samplesize", str(CRP_CONFIG), "--sims", "0"], "per refining pass of the sample-size and MDE searches"),
    (["report", str(CRP_CONFIG), "--out", "x", "--search-sims", "0"], "per refining pass of the sample-size and MDE searches"),
    (["curves", str(CRP_CONFIG), "--out", "x", "--sims", "0"], "per curve point"),
    (["report", str(CRP_CONFIG), "--out", "x", "--curve-sims", "0"], "per curve point"),
    (["run", str(CRP_CONFIG), "--sims", "0"], "simulated trials per scenario; run.n_sims"),
])
def test_a_bad_sims_flag_says_what_its_command_counts(argv, says):
    status, _, err, _ = cli(*argv)
    assert status == 2 and says in err and "Traceback" not in err
    assert argv[0] == "run" or "per scenario" not in err  # a search's or a curve's trials are not run.n_sims


@pytest.mark.parametrize("address, says", [("tls://127.0.0.1:1", "only tcp:// addresses"),
                                           ("ucx://127.0.0.1:1", "only tcp:// addresses"),
                                           ("tcp://127.0.0.1:99999", "the port must lie in 1-65535"),
                                           ("foo", "is not an address")])
def test_a_scheduler_address_dask_cannot_use_is_refused_before_connecting(address, says):
    status, _, err, _ = cli("run", str(CRP_CONFIG), "--sims", "100", "--backend", "dask", "--scheduler", address)
    assert status == 2 and says in err and "Traceback" not in err
    status, _, err, _ = cli("show", str(CRP_CONFIG), "--set", "run.backend=dask", "--set", f"run.scheduler={address}")
    assert status == 2 and says in err


def test_a_design_of_which_not_one_trial_fits_says_how_much_memory_it_needs():
    status, _, err, _ = cli("run", str(DEFAULT_CONFIG), "--sims", "10", "--max-memory", "64",
                            "--set", "design.n_control=100000", "--set", "design.n_treatment=100000",
                            "--set", 'endpoints.leak_1m.tests=["fisher"]', "--set", "run.block_size=10")
    assert status == 2 and "Not even one trial fits" in err and "raise --max-memory" in err
    assert "Set run.block_size to" not in err


def test_warnings_reach_the_user_as_one_line(tmp_path):
    out = tmp_path / "run"
    assert cli("run", str(CRP_CONFIG), "--sims", "2000", "--seed", "1", "--jobs", "1", "--quiet", "--out", str(out))[0] == 0
    path = next((out / "checkpoints").glob("*.jsonl"))
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2] + [b"{not json\n"] + lines[2:]))
    status, _, err, _ = cli("run", str(CRP_CONFIG), "--sims", "2000", "--seed", "1", "--jobs", "1", "--quiet", "--out", str(out))
    assert status == 0
    assert "trialsim: warning: checkpoint" in err and "not trusted" in err
    assert ".py:" not in err and "warnings.warn" not in err  # no source file, line or code of trialsim under it


def test_a_config_with_a_byte_order_mark_loads_and_a_folder_is_not_a_config(tmp_path):
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + f'extends = "{CRP_CONFIG}"\n'.encode())
    assert load_scenario(bom).name == load_scenario(CRP_CONFIG).name
    status, _, err, _ = cli("show", str(tmp_path))
    assert status == 2 and "is a folder" in err


def test_sweep_ids_that_differ_only_in_case_are_refused(tmp_path):
    config = tmp_path / "case.toml"
    config.write_text(f'extends = "{CRP_CONFIG}"\n[sweep]\n[sweep.values]\n"design.control_name" = ["Usual", "usual"]\n')
    status, _, err, _ = cli("run", str(config), "--sims", "100", "--jobs", "1")
    assert status == 2 and "differ only in case" in err and "Traceback" not in err


def test_report_refuses_a_folder_it_did_not_write_before_any_work(tmp_path, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("planned before the folder was checked")

    monkeypatch.setattr(cli_planning, "plan", no_work)
    monkeypatch.setattr(cli_planning, "load_planning", no_work)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "power.csv").write_text("a run's results")
    for argv in (["report", str(CRP_CONFIG), "--out", str(run_dir)], ["report", "--from", str(run_dir), "--out", str(run_dir)]):
        status, _, err, _ = cli(*argv)
        assert status == 2 and "did not write" in err and "Traceback" not in err


@pytest.mark.parametrize("path", ["design.\u00b2", "population.risk_factors[\u0663].odds_ratio"])
def test_a_key_path_with_a_digit_that_is_not_ascii_is_an_unknown_key(path):
    status, _, err, _ = cli("show", str(CRP_CONFIG), "--set", f"{path}=3")
    assert status == 2 and "Traceback" not in err and "unknown key" in err


# -------------------------------------------------------------------------------------------- signals
def _workers_of(pid: int) -> list[int]:
    """Loky worker processes in the process group of ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != pid:
            try:
                cmd = open(f"/proc/{entry}/cmdline", "rb").read()
                if b"LokyProcess" in cmd and os.getpgid(int(entry)) == pid:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _signal_group(proc: subprocess.Popen, sig: int, *, timeout: float) -> str:
    """Send ``sig`` to ``proc``'s process group (as a terminal sends Ctrl-C) and wait for it: its stderr."""
    os.killpg(proc.pid, sig)
    return proc.communicate(timeout=timeout)[1]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and signals a process group")
@pytest.mark.parametrize("sig, status, says", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_and_sigterm_leave_one_line_and_their_exit_status(tmp_path, sig, status, says):
    # Ctrl-C reaches the whole process group (workers included), as from a terminal; so does SIGTERM here
    code = textwrap.dedent(f"""
        import sys
        from trialsim.cli import main
        sys.exit(main(["run", {str(CRP_CONFIG)!r}, "--sims", "50000000", "--jobs", "2", "--quiet",
                       "--out", {str(tmp_path / "out")!r}]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(_workers_of(proc.pid)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # workers mid-import or mid-block
        err = _signal_group(proc, sig, timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == status, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"trialsim: {says}"), err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals a process group")
@pytest.mark.parametrize("sig, status, says", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_wind_down_that_hangs_still_ends_with_one_line(sig, status, says):
    """A command whose wind-down never ends (a lock of the worker pool's machinery left taken by the interrupt)
    is ended by the watchdog after WIND_DOWN_SECONDS, with the same one line and status, and the stacks it
    waited on in a file."""
    code = textwrap.dedent(f"""
        import sys, threading, time
        import trialsim.cli as cli
        cli.WIND_DOWN_SECONDS = 1.5

        def hang(args):
            try:  # "ready" inside: a signal that comes as the line is printed still finds the wind-down below
                print("ready", flush=True)
                while True:
                    time.sleep(0.05)
            finally:
                threading.Event().wait()  # a wind-down that never ends

        cli.commands = lambda argv=None: {{"show": hang}}
        sys.exit(cli.main(["show", {str(CRP_CONFIG)!r}]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        started = time.monotonic()
        err = _signal_group(proc, sig, timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == status, err
    assert 1.5 <= time.monotonic() - started < 20
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"trialsim: {says}") and "did not stop within 1.5 s" in lines[0], err
    stacks = Path(lines[0].rsplit("where it waited: ", 1)[1].rstrip(")"))
    try:
        assert "in hang" in stacks.read_text()
    finally:
        stacks.unlink()


@pytest.mark.parametrize("argv, says", [
    (["--n", "nan"], "--n 'nan': nan is not allowed: use whole numbers of patients per arm from 2 to 100,000"),
    (["--n", "inf"], "--n 'inf': inf is not allowed"),
    (["--n", "1e30"], "--n '1e30': 1e30 is not allowed"),
    (["--n", "10:20:2.5"], "STEP 2.5 is not allowed: sizes step by whole numbers"),
    (["--ratio", "inf"], "--ratio 'inf': inf is not allowed: use allocation ratios n_treatment / n_control from 1/100 to 100"),
    (["--ratio", "nan"], "--ratio 'nan': nan is not allowed"),
    (["--control-rate", "0:0.5"], "--control-rate '0:0.5': 0 is not allowed: use event rates between 0 and 1"),
    (["--effect", "0.1:0.9:-1"], "--effect '0.1:0.9:-1': STEP -1 is not allowed"),
    (["--effect", "0.1:x"], "--effect '0.1:x': 'x' is not a number"),
    (["--endpoint", "bogus", "--n", "20"], "--endpoint 'bogus' is not an endpoint of this scenario: use one of leak_1m, "),
    # refused before any value is made: this grid once grew to 24 GB
    (["--effect", "0.1:0.9:1e-9"], "--effect '0.1:0.9:1e-9' asks for 800,000,001 values; at most 1,000 are allowed"),
    (["--effect", "0.1:0.9:1e-320"], "asks for more than 10^308 values; at most 1,000 are allowed"),
    (["--n", "2:5000:1"], "--n '2:5000:1' asks for 4,999 values; at most 1,000 are allowed"),
    (["--effect", "0.1:0.9:0.001", "--n", "10:40", "--ratio", "1", "2"],
     "ask for 49,662 points; at most 20,000 are allowed"),
])
def test_curves_range_flags_are_refused_naming_the_flag_and_what_is_allowed(tmp_path, argv, says):
    status, _, err, _ = cli("curves", str(DEFAULT_CONFIG), "--out", str(tmp_path / "cv"), "--quiet", *argv)
    assert status == 2 and "Traceback" not in err and says in err, err
    assert not (tmp_path / "cv").exists()


@pytest.mark.parametrize("out, says", [
    ("afile", "--out '{tmp}/afile': '{tmp}/afile' is a file, not a folder"),
    ("afile/b", "--out '{tmp}/afile/b': cannot make the folder"),
    ("/proc/trialsim-x", "--out '/proc/trialsim-x': cannot make or write into the folder"),
    ("run", "--out '{tmp}/run' already holds files that `trialsim {command}` did not write (a `trialsim run` folder)"),
    ("notes", "--out '{tmp}/notes' already holds files that `trialsim {command}` did not write; nothing in it"),
])
@pytest.mark.parametrize("command", ["samplesize", "curves", "compare", "replay"])
def test_out_is_checked_before_any_work_naming_the_flag(tmp_path, monkeypatch, command, out, says):
    def no_work(*args, **kwargs):
        raise AssertionError("worked before --out was checked")

    for module, name in ((cli_planning, "sample_sizes"), (cli_planning, "power_ranges"), (cli_planning, "plan"),
                         (cli_compare, "compare"), (cli_replay, "replay")):
        monkeypatch.setattr(module, name, no_work)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "manifest.json").write_text("{}")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("the user's own")
    target = out if out.startswith("/") else str(tmp_path / out)
    argv = {"samplesize": ["samplesize", str(DEFAULT_CONFIG)], "curves": ["curves", str(DEFAULT_CONFIG), "--n", "20"],
            "compare": ["compare", str(DEFAULT_CONFIG)], "replay": ["replay", str(tmp_path / "run"), "--trial", "0"]}[command]
    status, _, err, _ = cli(*argv, "--out", target)
    assert status == 2 and "Traceback" not in err
    assert says.format(tmp=tmp_path, command=command) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "notes", "run"]
    assert not Path("/proc/trialsim-x").exists()


@pytest.mark.parametrize("value, says", [
    ("\\u0000x", "extends = '\\x00x' is not allowed: give the path of a TOML file, without control characters"),
    ("/proc/self/mem", "extends = '/proc/self/mem': config file '/proc/"),
    ("/dev/null", "extends = '/dev/null': config file '/dev/null' is not a regular file"),
    ("missing.toml", "extends = 'missing.toml': config file "),
])
@pytest.mark.parametrize("command", ["run", "compare"])
def test_a_bad_extends_is_refused_naming_the_key_and_its_value(tmp_path, command, value, says):
    config = tmp_path / "bad.toml"
    config.write_text(f'extends = "{value}"\n')
    status, _, err, _ = cli(command, str(config), "--sims", "10")
    assert status == 2 and "Traceback" not in err and says in err, err


@pytest.mark.parametrize("values, says", [
    # a prior so narrow that 1 / sd^2 overflows: ZeroDivisionError, or silently empty posteriors
    ({"bayes.normal_prior_sd": 1e-200}, "bayes.normal_prior_sd"),
    # no diagnosis by the horizon in the day law: every leak was put on day 0 with a 0 / 0 warning
    ({"endpoints.leak_1m.day_median": 100.0, "endpoints.leak_1m.day_log_sd": 0.01}, "day_median = 100 with day_log_sd"),
    # one mean of extra days per grade of the linked event (was clipped silently)
    ({"endpoints.los_days.extra_days_by_grade": [1.0, 2.0]}, "extra_days_by_grade has 2 values but event 'leak_1m' has 3"),
    # a first look of the sequential design holds only placebo patients: it compares nothing
    ({"interim": {"looks": [0.5, 1.0]}}, "the first 10 of the 20 planned patients are all control"),
    ({"design.control_name": "Exosome"}, "control_name and treatment_name are both"),
    ({"follow_up.death_event": "cytokines"}, "(event endpoints of this scenario: leak_1m)"),
    ({"endpoints.leak_1m.grade_split": [-0.5, 0.5, 1.0]}, "grade_split = [-0.5, 0.5, 1.0] must be non-negative"),
])
def test_values_the_model_cannot_mean_are_refused_naming_them(default_scenario, values, says):
    source = DEFAULT_CONFIG if "bayes." not in next(iter(values)) else CONFIGS / "designs" / "bayes_pilot_20.toml"
    with pytest.raises(ConfigError) as caught:
        with_values(load_scenario(source), values)
    assert says in str(caught.value)


def test_alternating_allocation_with_an_early_look_still_runs(default_scenario):
    scenario = with_values(default_scenario, {"interim": {"looks": [0.5, 1.0]}, "allocation.scheme": "alternating"})
    assert scenario.interim.looks == [0.5, 1.0]


@pytest.mark.parametrize("tail, says", [
    ("zz = " + "[" * 250 + "]" * 250, "zz nests tables or arrays more than 16 levels deep"),  # pydantic's JSON limit
    ("zz = " + "[" * 3000 + "]" * 3000, "nests tables or arrays hundreds of levels deep"),  # tomllib's RecursionError
])
def test_absurdly_nested_values_are_refused_naming_the_key(tmp_path, tail, says):
    config = tmp_path / "deep.toml"
    config.write_text(DEFAULT_CONFIG.read_text(encoding="utf-8") + "\n" + tail + "\n", encoding="utf-8")
    status, _, err, _ = cli("run", str(config), "--sims", "100", "--quiet")
    assert status == 2 and "Traceback" not in err and says in err
    status, _, err, _ = cli("run", str(DEFAULT_CONFIG), "--sims", "100", "--quiet", "--set", "run.zz=" + "[" * 3000 + "]" * 3000)
    assert status == 2 and "Traceback" not in err and "--set run.zz: the value '[[[" in err


@pytest.mark.parametrize("override, says", [
    ("endpoints.leak_1n.effect=0.3", "'leak_1n' is not an endpoint of"),  # a typo of an id, not a new section
    ('design.label="unterminated', "is not valid TOML"),  # was kept as the text "unterminated, quote included
])
def test_override_slips_are_named(override, says):
    status, _, err, _ = cli("run", str(DEFAULT_CONFIG), "--sims", "100", "--quiet", "--set", override)
    assert status == 2 and "Traceback" not in err and says in err


@pytest.mark.parametrize("argv, says", [
    (["samplesize", str(DEFAULT_CONFIG), "--power", "0.9999999"], "argument --power"),  # printed as a 100% target
    (["samplesize", str(DEFAULT_CONFIG), "--power", "0.01", "--endpoint", "il6_drain_mean_log"],
     "--power 0.01 is not allowed: a target power lies above design.alpha = 0.05"),  # "the probit fit failed"
    (["report", str(DEFAULT_CONFIG), "--power", "0.04", "--out", "{tmp}/r"], "a target power lies above design.alpha"),
])
def test_target_powers_no_design_can_be_planned_to_are_refused(tmp_path, argv, says):
    status, _, err, _ = cli(*[a.replace("{tmp}", str(tmp_path)) for a in argv], "--quiet")
    assert status == 2 and "Traceback" not in err and says in err


def test_a_target_power_is_printed_with_its_own_digits():
    assert [target_pct(p) for p in (0.8, 0.9, 0.875, 0.999)] == ["80%", "90%", "87.5%", "99.9%"]


def test_one_patient_per_arm_has_no_closed_form_t_power(default_scenario):
    """At 1 per arm a t test has no degrees of freedom: its closed-form power is NaN ('n/a'), not a ValueError (which
    crashed report's minimal detectable effects); with 2 per arm it has one."""
    scenario = with_values(default_scenario, {"design.n_control": 1, "design.n_treatment": 1})
    model, moments = build_model(scenario), model_moments(scenario, seed=1)
    assert math.isnan(analytic_power(model, "il6_drain_mean_log", "welch_log", 0.9, 0.9, moments=moments))
    assert 0.0 < analytic_power(model, "il6_drain_mean_log", "welch_log", 2.0, 2.0, moments=moments) < 1.0


def test_init_names_what_is_in_the_way(tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    for target, force, says in ((tmp_path / "afile" / "x.toml", False, "'afile' is a file, not a folder"[1:]),
                                (tmp_path / "adir", False, "is a folder: give a config file's name in it"),
                                (tmp_path / "adir", True, "is a folder: give a config file's name in it")):
        status, _, err, _ = cli("init", str(target), *(["--force"] if force else []))
        assert status == 2 and "Traceback" not in err and says in err, err


def test_samplesize_n_without_mde_is_refused():
    status, _, err, _ = cli("samplesize", str(DEFAULT_CONFIG), "--n", "10", "--quiet")
    assert status == 2 and "--n 10 is the size of the minimal detectable effect: add --mde" in err


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"  # a zombie has ended
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_end_when_their_run_is_killed(tmp_path):
    """SIGKILL runs no clean-up: the loky workers used to wait for work for ever, holding the run's pipes open (so
    `trialsim run ... | tee log` never ended). They now see their parent gone and end within a second or two."""
    code = textwrap.dedent(f"""
        import sys
        from trialsim.cli import main
        sys.exit(main(["run", {str(CRP_CONFIG)!r}, "--sims", "50000000", "--jobs", "2", "--quiet",
                       "--out", {str(tmp_path / "out")!r}]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        checkpoint = tmp_path / "out" / "checkpoints" / "base.jsonl"
        while proc.poll() is None and time.monotonic() < deadline and not (
                checkpoint.exists() and checkpoint.read_bytes().count(b"\n") >= 3):  # workers busy with blocks
            time.sleep(0.05)
        workers = _workers_of(proc.pid)
        assert len(workers) == 2
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers)
    finally:
        for w in _workers_of(proc.pid):
            os.kill(w, signal.SIGKILL)


def test_a_bayes_section_no_test_reads_is_noted():
    status, _, err, _ = cli("run", str(DEFAULT_CONFIG), "--sims", "100", "--quiet", "--set", "bayes.go_threshold=0.9")
    assert status == 0 and "sets [bayes], but none of its endpoints has a Bayesian test" in err
    status, _, err, _ = cli("run", str(CONFIGS / "designs" / "bayes_pilot_20.toml"), "--sims", "100", "--quiet")
    assert status == 0 and "note:" not in err
