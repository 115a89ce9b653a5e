"""Which runtimes the engine calls in-process, and the CLI's early dispatch (no root needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hako.cli.containers import COMMANDS
from hako.cli.main import build_parser, command_name
from hako.engine.runtime_client import runtime_in_process


def test_only_hakos_own_runtime_runs_in_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    own = Path(sys.executable).parent / "hako-runtime"
    if not own.exists():
        pytest.skip("hako-runtime is not installed beside this interpreter")
    monkeypatch.delenv("HAKO_RUNTIME_INPROCESS", raising=False)
    assert runtime_in_process(str(own))
    link = tmp_path / "rt"
    link.symlink_to(own)
    assert runtime_in_process(str(link))  # the same file under another name
    other = tmp_path / "hako-runtime"
    other.write_text("#!/bin/sh\n")
    assert not runtime_in_process(str(other))  # another binary, even with the same name
    assert not runtime_in_process("/usr/sbin/runc")
    assert not runtime_in_process(str(tmp_path / "missing"))
    monkeypatch.setenv("HAKO_RUNTIME_INPROCESS", "0")
    assert not runtime_in_process(str(own))


def test_command_name_skips_global_flags() -> None:
    assert command_name(["run", "--rm", "busybox"]) == "run"
    assert command_name(["--root", "/x", "--debug", "ps", "-a"]) == "ps"
    assert command_name(["--root=/x", "images"]) == "images"
    assert command_name(["--help"]) is None
    assert command_name([]) is None


def test_a_container_command_parses_the_same_with_only_its_parser() -> None:
    argv = ["--root", "/x", "run", "--rm", "-e", "A=1", "--name", "n", "busybox", "echo", "-n", "hi"]
    only = build_parser("run").parse_args(argv)
    full = build_parser(None).parse_args(argv)
    assert vars(only) == vars(full)
    assert "run" in COMMANDS and only.func.__name__ == "cmd_run"
    assert only.rm and only.env == ["A=1"] and only.image == "busybox" and only.command == ["echo", "-n", "hi"]


def test_runtime_called_in_a_forked_child_captures_output_and_code(tmp_path: Path) -> None:
    from hako.engine.runtime_client import _run_in_child

    code, out, err = _run_in_child(["--version"])
    assert code == 0 and out.startswith("hako-runtime version") and err == ""
    code, out, err = _run_in_child(["--root", str(tmp_path), "state", "nosuch"])
    assert code == 1 and out == "" and "nosuch" in err
