"""Bad input and wrong states: exit 1, one line naming the field or id, nothing left behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_runtime import Runtime, cg_path, cgroup_dirs, edit_config


def _mountinfo_mentions(path: Path) -> bool:
    return str(path) in Path("/proc/self/mountinfo").read_text()


def assert_nothing_left(rt: Runtime, cid: str, bundle: Path) -> None:
    assert rt.ids() == []
    assert cgroup_dirs(cg_path(cid)) == []
    assert not _mountinfo_mentions(bundle)


def _fail_create(rt: Runtime, bundle: Path, cid: str = "c1") -> str:
    p = rt.create(cid, bundle, check=False)
    assert p.returncode == 1
    err = p.stderr.decode()
    assert err.startswith("hako-runtime: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("mutate", "expect"),
    [
        (lambda c: c.__setitem__("process", {"args": "sh"}), "process.args"),
        (lambda c: c.pop("root"), "root"),
        (lambda c: c.pop("process"), "process"),
        (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "linux.namespaces[6].type"),
        (lambda c: c["mounts"].append({"destination": "relative/dir", "type": "tmpfs"}), "mounts[7].destination"),
        (lambda c: c["process"].__setitem__("terminal", "yes"), "process.terminal"),
        (lambda c: c["process"]["capabilities"]["bounding"].append("CAP_BOGUS"), "process.capabilities.bounding[3]"),
        (lambda c: c["process"]["user"].__setitem__("uid", -1), "process.user.uid"),
        (lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}),
         "process.rlimits[1].type"),
        (lambda c: c["root"].__setitem__("path", "missing-rootfs"), "root.path"),
        (lambda c: c.__setitem__("ociVersion", 1), "ociVersion"),
    ],
)
def test_invalid_config_is_rejected_without_trace(
    rt: Runtime, rbundle: Path, mutate: Any, expect: str
) -> None:
    edit_config(rbundle, mutate)
    err = _fail_create(rt, rbundle)
    assert expect in err
    assert_nothing_left(rt, "c1", rbundle)


def test_non_json_config(rt: Runtime, rbundle: Path) -> None:
    (rbundle / "config.json").write_text("{not json")
    err = _fail_create(rt, rbundle)
    assert "config.json" in err and "JSON" in err
    assert_nothing_left(rt, "c1", rbundle)


def test_missing_config(rt: Runtime, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    err = _fail_create(rt, tmp_path / "empty")
    assert "no such file or directory" in err


@pytest.mark.parametrize("cid", ["..", "a/b", "", "-x", "../etc"])
def test_unsafe_container_id(rt: Runtime, rbundle: Path, cid: str) -> None:
    p = rt("create", "--bundle", str(rbundle), "--", cid, check=False)
    assert p.returncode == 1 and b"container id" in p.stderr
    assert rt.ids() == []


def test_executable_not_found_detected_at_create(rt: Runtime, rbundle: Path) -> None:
    edit_config(rbundle, lambda c: c["process"].__setitem__("args", ["no-such-prog"]))
    err = _fail_create(rt, rbundle)
    assert 'exec: "no-such-prog": executable file not found in $PATH' in err
    assert_nothing_left(rt, "c1", rbundle)
    edit_config(rbundle, lambda c: c["process"].__setitem__("args", ["/nonexistent"]))
    err = _fail_create(rt, rbundle)
    assert "no such file or directory" in err
    assert_nothing_left(rt, "c1", rbundle)


def test_duplicate_id(rt: Runtime, rbundle: Path) -> None:
    rt.create("c1", rbundle)
    pid = rt.state("c1")["pid"]
    p = rt.create("c1", rbundle, check=False)
    assert p.returncode == 1 and b"container c1 already exists" in p.stderr
    assert rt.state("c1")["pid"] == pid and rt.state("c1")["status"] == "created"


def test_operations_in_wrong_state(rt: Runtime, rbundle: Path) -> None:
    for args in (["start", "nope"], ["kill", "nope", "9"], ["pause", "nope"], ["state", "nope"], ["delete", "nope"]):
        p = rt(*args, check=False)
        assert p.returncode == 1 and b"container nope does not exist" in p.stderr, args
    rt.create("c1", rbundle)
    p = rt("resume", "c1", check=False)
    assert p.returncode == 1 and b"not paused" in p.stderr


def test_unknown_flag_and_command(rt: Runtime) -> None:
    p = rt("frobnicate", check=False)
    assert p.returncode == 1 and b"unknown command" in p.stderr
    p = rt("delete", "--bogus", "x", check=False)
    assert p.returncode == 1 and b"--bogus" in p.stderr


def test_terminal_without_console_socket(rt: Runtime, rbundle: Path) -> None:
    edit_config(rbundle, lambda c: c["process"].__setitem__("terminal", True))
    err = _fail_create(rt, rbundle)
    assert "console socket" in err
    assert_nothing_left(rt, "c1", rbundle)


def test_failure_in_init_cleans_up(rt: Runtime, rbundle: Path) -> None:
    # a mount that fails inside the new mount namespace, after namespaces and cgroup exist
    edit_config(rbundle, lambda c: c["mounts"].append(
        {"destination": "/mnt", "type": "bind", "source": "/does/not/exist", "options": ["bind"]}))
    err = _fail_create(rt, rbundle)
    assert "/does/not/exist" in err or "no such file" in err.lower()
    assert_nothing_left(rt, "c1", rbundle)


def test_lsm_requested_but_not_enabled(rt: Runtime, rbundle: Path) -> None:
    if Path("/sys/kernel/security/apparmor").exists():
        pytest.skip("AppArmor enabled here")
    edit_config(rbundle, lambda c: c["process"].__setitem__("apparmorProfile", "docker-default"))
    err = _fail_create(rt, rbundle)
    assert "process.apparmorProfile" in err
    assert_nothing_left(rt, "c1", rbundle)


def test_log_json_for_create_failure(rt: Runtime, rbundle: Path) -> None:
    edit_config(rbundle, lambda c: c["process"].__setitem__("args", ["no-such-prog"]))
    logf = rt.tmp / "oci-log"
    p = rt.detached("--log-format=json", "--log", str(logf), "create", "--bundle", str(rbundle), "c1",
                    cid="c1", check=False)
    assert p.returncode == 1
    lines = logf.read_text().splitlines()
    assert len(lines) == 1
    assert "executable file not found in $PATH" in json.loads(lines[0])["msg"]


def test_rlimit_above_hard_limit_fails_create(rt: Runtime, rbundle: Path) -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard >= 2**31:
        pytest.skip("no finite hard limit to exceed")
    # Raising a hard limit needs CAP_SYS_RESOURCE, which root lacks on this machine.
    edit_config(rbundle, lambda c: c["process"].__setitem__(
        "rlimits", [{"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}]))
    p = rt.create("c1", rbundle, check=False)
    if p.returncode == 0:
        pytest.skip("this root can raise hard limits (has CAP_SYS_RESOURCE)")
    assert b"process.rlimits" in p.stderr
    assert_nothing_left(rt, "c1", rbundle)


def test_runtime_killed_during_create_leaves_no_blocked_init(rt: Runtime, rbundle: Path) -> None:
    import os
    import signal
    import subprocess
    import time

    from tests.fixtures_runtime import RUNTIME, alive

    marker = rt.tmp / "hook-state"
    hook = rt.tmp / "slow-hook.sh"
    hook.write_text(f"#!/bin/sh\ncat > {marker}.tmp; mv {marker}.tmp {marker}; exec sleep 2\n")
    hook.chmod(0o755)
    edit_config(rbundle, lambda c: c.__setitem__("hooks", {"createRuntime": [{"path": str(hook)}]}))
    with open(rt.tmp / "out", "wb") as out:
        p = subprocess.Popen([RUNTIME, "--root", str(rt.root), "create", "-b", str(rbundle), "c1"],
                             stdout=out, stderr=out)
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        init_pid = json.loads(marker.read_text())["pid"]
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    # init sees its runtime gone (EOF on the channel) and exits instead of waiting forever
    deadline = time.monotonic() + 10
    while alive(init_pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(init_pid)
    rt("delete", "--force", "c1")
    assert_nothing_left(rt, "c1", rbundle)
