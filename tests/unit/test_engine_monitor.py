"""The monitor's log writer (json-file lines, rotation) and the log reader (no root needed)."""

from __future__ import annotations

import json
from pathlib import Path

from hako.engine.logs import read_logs
from hako.engine.monitor import LogWriter, jstr, read_marshal, write_atomic


def test_jstr_matches_json() -> None:
    for text in ['plain', 'quote " back \\ slash', "tab\tnl\n\x00\x1f", "ünïcode ✓"]:
        assert json.loads(jstr(text)) == text


def test_log_lines_partial_lines_and_rotation(tmp_path: Path) -> None:
    w = LogWriter(str(tmp_path / "ctr.log"), max_size=400, max_files=3)
    w.write("stdout", b"one\ntw")
    w.write("stdout", b"o\n")
    w.write("stderr", b"err\n")
    lines = read_logs(tmp_path)
    assert [(x.stream, x.text) for x in lines] == [("stdout", "one\n"), ("stdout", "two\n"), ("stderr", "err\n")]
    for i in range(40):
        w.write("stdout", f"line {i}\n".encode())
    w.write("stdout", b"no newline")
    w.flush()
    assert (tmp_path / "ctr.log.1").exists() and (tmp_path / "ctr.log.2").exists()
    assert not (tmp_path / "ctr.log.3").exists()
    texts = [x.text for x in read_logs(tmp_path)]
    assert texts[-1] == "no newline" and texts[-2] == "line 39\n"
    assert [x.text for x in read_logs(tmp_path, tail=2)] == ["line 39\n", "no newline"]


def test_state_round_trip(tmp_path: Path) -> None:
    state = {"status": "running", "pid": 42, "health": {"Status": "healthy", "Log": []}}
    write_atomic(str(tmp_path / "state"), state)
    assert read_marshal(str(tmp_path / "state")) == state


def test_log_timestamps_are_rfc3339_nanoseconds_in_utc() -> None:
    import time

    from hako.engine.monitor import now_rfc3339

    t = 1796009363.0494123
    expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(t))) + f".{int((t - int(t)) * 1e9):09d}Z"
    assert now_rfc3339(t) == expected == "2026-11-30T03:29:23.049412250Z"


def test_log_writer_warm_up_leaves_no_fd_behind() -> None:
    import os

    from hako.engine.monitor import warm_log_writer

    before = set(os.listdir("/proc/self/fd"))
    warm_log_writer()
    assert set(os.listdir("/proc/self/fd")) == before
