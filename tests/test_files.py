"""Files written whole: a failure leaves the earlier file and no temporary file; new files get the usual mode."""
from __future__ import annotations

import os
import stat

import pytest

from trialsim.files import replace_file


def test_text_bytes_and_writers_are_written_whole(tmp_path):
    target = tmp_path / "a.csv"
    replace_file(target, "text é")
    assert target.read_text(encoding="utf-8") == "text é"
    replace_file(target, b"bytes")
    assert target.read_bytes() == b"bytes"
    seen = []
    replace_file(target, lambda tmp: (seen.append(tmp.suffix), tmp.write_text("by a writer")), sync=True)
    assert target.read_text() == "by a writer" and seen == [".csv"]  # the suffix kept for writers that read it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_a_failing_writer_leaves_the_earlier_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("earlier")

    def half(tmp):
        tmp.write_text("half of it")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        replace_file(target, half)
    assert target.read_text() == "earlier" and sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_a_new_file_gets_the_mode_open_would_give(tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    path = replace_file(tmp_path / "power.csv", "x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # not the private 0o600 of a temporary file
