"""The command's entry point: a Ctrl-C while the package imports prints one line and exits 130."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "exosome_lar_20.toml"


# The child runs `python -m trialsim` (runpy, as -m does) after this: every import of these libraries' modules waits
# a little, so that the command's imports take seconds on any machine. On a fast machine they were done within 0.4 s,
# and the interrupt landed in the simulation instead.
SLOW_IMPORTS = """
import runpy, sys, time
class _SlowImports:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("numpy", "scipy", "pandas", "pydantic"):
            time.sleep(0.01)
        return None
sys.meta_path.insert(0, _SlowImports())
runpy.run_module("trialsim", run_name="__main__")
"""


def _interrupt_after(seconds: float, sig: int = signal.SIGINT) -> subprocess.CompletedProcess:
    # SIG_DFL in the child: a test runner started in the background may ignore SIGINT, and a child
    # that inherits that would never see the Ctrl-C at all
    p = subprocess.Popen([sys.executable, "-c", SLOW_IMPORTS, "run", str(CONFIG), "--sims", "1000", "--seed", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(seconds)
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("seconds", [0.15, 0.4])
def test_ctrl_c_while_importing_is_one_line_and_130(seconds):
    """Before the fix, 0.15-0.4 s into start-up gave a KeyboardInterrupt traceback from inside an import,
    or numpy's "ImportError ... could not import module datetime" (exit 1). The imports are slowed to take
    seconds (``SLOW_IMPORTS``), so both interrupts land during them."""
    done = _interrupt_after(seconds)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "Error" not in done.stderr
    assert done.stderr.strip() == "trialsim: interrupted while starting; nothing was done"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_while_importing_is_one_line_and_143():
    """SIGTERM's default ended the process without a word until the command's own handling was in place."""
    done = _interrupt_after(0.4, signal.SIGTERM)
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip() == "trialsim: terminated (SIGTERM) while starting; nothing was done"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_an_ignored_ctrl_c_stays_ignored(tmp_path):
    """A background job ignores SIGINT: the command now keeps ignoring it (its handler used to take it over after
    start-up, so a Ctrl-C meant for the shell's foreground job stopped it)."""
    p = subprocess.Popen([sys.executable, "-m", "trialsim", "run", str(CONFIG), "--sims", "20000", "--seed", "1",
                          "--jobs", "1", "--quiet", "--out", str(tmp_path / "out")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    checkpoint = tmp_path / "out" / "checkpoints" / "base.jsonl"
    deadline = time.monotonic() + 60
    while p.poll() is None and time.monotonic() < deadline and not checkpoint.exists():
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert "interrupted" not in err


def test_launcher_keeps_the_command_line_behaviour():
    done = subprocess.run([sys.executable, "-m", "trialsim", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.startswith("trialsim ")
    done = subprocess.run([sys.executable, "-m", "trialsim", "run", "--sims", "-3", str(CONFIG)], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_version_imports_nothing_heavy(capsys):
    """`trialsim --version` answers without importing numpy or the command line, with the parser's own line."""
    code = ("import sys; from trialsim.launch import main; status = main(['--version']); "
            "print(status, 'numpy' in sys.modules, 'trialsim.cli' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    from trialsim.cli import build_parser
    with pytest.raises(SystemExit):
        build_parser([]).parse_args(["--version"])
    assert done.stdout.splitlines() == [capsys.readouterr().out.strip(), "0 False False"]


def test_package_import_is_lazy():
    """`import trialsim` alone loads neither numpy nor the command line (the launcher relies on it)."""
    code = "import sys, trialsim; print('numpy' in sys.modules, 'trialsim.cli' in sys.modules, trialsim.__version__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.split()[:2] == ["False", "False"]
    code = "import trialsim; print(trialsim.load_scenario.__module__, trialsim.run.__module__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.split() == ["trialsim.config.loader", "trialsim.api"]


def test_ctrl_c_before_the_launchers_handler_is_one_line_and_130():
    # seen on a loaded machine: the Ctrl-C landed while trialsim.launch itself was importing `signal`
    code = ("import builtins, runpy\n"
            "real = builtins.__import__\n"
            "def interrupted(name, *args, **kwargs):\n"
            "    if name == 'trialsim.launch':\n"
            "        raise KeyboardInterrupt\n"
            "    return real(name, *args, **kwargs)\n"
            "builtins.__import__ = interrupted\n"
            "runpy.run_module('trialsim', run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", code, "run", str(CONFIG)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 130 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "trialsim: interrupted while starting; nothing was done"
