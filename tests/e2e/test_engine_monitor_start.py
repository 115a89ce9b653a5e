"""How ``hako run`` starts a container's monitor: forked early from the CLI (no exec), or exec'd."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures_engine import HAKO, HakoEnv


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


def test_setup_child_killed_midway_is_reported(hako_env: HakoEnv, tmp_path: Path) -> None:
    # The monitor creates and starts the container from a child of its own. Killed mid-create,
    # that child says nothing: `run` must still get an answer and the record say what happened.
    flag = tmp_path / "create-pid"
    script = tmp_path / "runc-hangs-on-create"
    script.write_text(f'#!/bin/sh\nfor a in "$@"; do [ "$a" = create ] && {{ echo $$ > {flag}; exec sleep 60; }}; done\n'
                      'exec runc "$@"\n')
    script.chmod(0o755)
    proc = subprocess.Popen([HAKO, "run", "-d", "--name", "setupdies", "--runtime", str(script), "busybox", "true"],
                            env=hako_env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    hung = 0
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (flag.exists() and flag.read_text().strip()):
            time.sleep(0.02)
        hung = int(flag.read_text())
        with open(f"/proc/{hung}/stat") as f:
            setup_child = int(f.read().rsplit(")", 1)[1].split()[1])
        os.kill(setup_child, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 125 and "setup process died" in err, (proc.returncode, err)
        state = hako_env.inspect("setupdies")["State"]
        assert state["Status"] == "exited" and state["ExitCode"] == 125, state
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if hung:
            try:
                os.kill(hung, signal.SIGKILL)
            except ProcessLookupError:
                pass
        hako_env.run("rm", "-f", "setupdies")
