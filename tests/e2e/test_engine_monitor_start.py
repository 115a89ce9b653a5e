"""How ``hako run`` starts a container's monitor: forked early from the CLI (no exec), or exec'd."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures_engine import HakoEnv


def _recording_runtime(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "runtime-env"
    script = tmp_path / "runc-recording"
    script.write_text(f"#!/bin/sh\nenv >> {log}\necho --- >> {log}\nexec runc \"$@\"\n")
    script.chmod(0o755)
    return script, log


@pytest.mark.parametrize("fork", ["1", "0"])
def test_monitor_gives_the_runtime_its_own_environment(hako_env: HakoEnv, tmp_path: Path, fork: str) -> None:
    # The early monitor is a fork of the CLI: the caller's environment must not reach the
    # runtime through it, exactly as with the exec'd monitor (PATH only, plus HAKO_TRACE).
    runtime, log = _recording_runtime(tmp_path)
    env = dict(hako_env.env, HAKO_MONITOR_FORK=fork, HAKO_SECRET_FOR_TEST="leak")
    other = HakoEnv(hako_env.root, hako_env.cgroup_parent, env)
    p = other.run("run", "--rm", "--runtime", str(runtime), "busybox", "echo", "hi")
    assert p.returncode == 0 and p.stdout == "hi\n", p.stderr
    seen = log.read_text()
    assert "PATH=" in seen and "HAKO_SECRET_FOR_TEST" not in seen


def test_forked_monitor_holds_no_cli_fd(hako_env: HakoEnv) -> None:
    # A monitor holding the CLI's pipe ends would keep readers from EOF: it keeps only its own.
    cid = hako_env.out("run", "-d", "busybox", "sleep", "60")
    try:
        pid = hako_env.state_file(cid)["monitor_pid"]
        fds = {int(n): os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")}
        assert all(fds[i] == "/dev/null" for i in (0, 1, 2)), fds
        assert not any(t.startswith("/dev/pts") for t in fds.values()), fds
    finally:
        hako_env.run("rm", "-f", cid, check=True)
