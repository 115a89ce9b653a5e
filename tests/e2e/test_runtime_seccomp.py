"""linux.seccomp through hako-runtime: the filter is in the container process, notify fds reach the agent."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

from tests.fixtures_runtime import Runtime, edit_config, proc_status, set_config


def test_errno_rule_applies_in_container(rt: Runtime, bundle: Path) -> None:
    set_config(bundle, "s1", ["sh", "-c", "mkdir /tmp/x; echo rc=$?"])

    def sc(c: dict) -> None:  # type: ignore[type-arg]
        c["root"]["readonly"] = False
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}

    edit_config(bundle, sc)
    p = rt("run", "-b", str(bundle), "s1")
    assert p.stdout.decode().strip() == "rc=1"
    assert b"Operation not permitted" in p.stderr


def test_filter_is_on_the_container_process(rt: Runtime, bundle: Path) -> None:
    set_config(bundle, "s2")
    edit_config(bundle, lambda c: c["linux"].__setitem__(
        "seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["swapon"], "action": "SCMP_ACT_ERRNO"}]}))
    rt.create("s2", bundle)
    rt("start", "s2")
    st = proc_status(rt.state("s2")["pid"])
    assert st["Seccomp"] == "2" and st["Seccomp_filters"] == "1"


def test_compiled_program_is_cached_per_profile(rt: Runtime, bundle: Path) -> None:
    # The engine gives every container the same default profile: it is compiled once per root.
    set_config(bundle, "c1")
    edit_config(bundle, lambda c: c["linux"].__setitem__(
        "seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["swapon"], "action": "SCMP_ACT_ERRNO"}]}))
    rt.create("c1", bundle)
    rt.create("c2", bundle)
    cache = rt.root / ".seccomp-cache"
    assert len(list(cache.iterdir())) == 1
    rt("start", "c2")
    assert proc_status(rt.state("c2")["pid"])["Seccomp"] == "2"
    assert rt.ids() == ["c1", "c2"]
    assert "seccomp-cache" not in rt("list").stdout.decode()


def test_oversized_profile_fails_create_naming_the_profile(rt: Runtime, bundle: Path) -> None:
    # Compiled in the init's bootstrap now, not in the runtime: the error still ends create.
    set_config(bundle, "s4")
    rules = [{"names": ["ioctl"], "action": "SCMP_ACT_ERRNO",
              "args": [{"index": 1, "value": v, "op": "SCMP_CMP_EQ"}]} for v in range(4200)]
    edit_config(bundle, lambda c: c["linux"].__setitem__("seccomp", {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], "syscalls": rules}))
    p = rt.create("s4", bundle, check=False)
    assert p.returncode == 1 and b"linux.seccomp" in p.stderr and b"BPF instructions" in p.stderr, p.stderr
    assert rt.ids() == []


def test_invalid_profile_rejected_at_create(rt: Runtime, bundle: Path) -> None:
    set_config(bundle, "s3")
    edit_config(bundle, lambda c: c["linux"].__setitem__("seccomp", {"defaultAction": "SCMP_ACT_BOGUS"}))
    p = rt.create("s3", bundle, check=False)
    assert p.returncode == 1 and b"linux.seccomp" in p.stderr
    assert rt.ids() == []


def test_notify_fd_sent_to_listener(rt: Runtime, bundle: Path) -> None:
    path = rt.tmp / "agent.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)
    got: dict[str, object] = {}

    def agent() -> None:
        conn, _ = srv.accept()
        msg, fds, _, _ = socket.recv_fds(conn, 65536, 4)
        got["msg"], got["fds"] = msg, fds
        conn.close()

    t = threading.Thread(target=agent, daemon=True)
    t.start()
    set_config(bundle, "s4")
    edit_config(bundle, lambda c: c["linux"].__setitem__("seccomp", {
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(path), "listenerMetadata": "meta",
        "syscalls": [{"names": ["swapon"], "action": "SCMP_ACT_NOTIFY"}]}))
    rt.create("s4", bundle)
    t.join(10)
    fds = got["fds"]
    assert isinstance(fds, list) and len(fds) == 1
    state = json.loads(got["msg"])  # type: ignore[arg-type]
    assert state["metadata"] == "meta" and state["state"]["id"] == "s4"
    assert state["pid"] == rt.state("s4")["pid"]
    assert os.readlink(f"/proc/self/fd/{fds[0]}") == "anon_inode:seccomp notify"
    os.close(fds[0])
    srv.close()


def test_exec_notify_fd_sent_to_listener(rt: Runtime, bundle: Path) -> None:
    path = rt.tmp / "agent.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(2)
    got: list[tuple[bytes, list[int]]] = []

    def agent() -> None:
        for _ in range(2):  # create's init, then the exec'd process
            conn, _ = srv.accept()
            msg, fds, _, _ = socket.recv_fds(conn, 65536, 4)
            got.append((msg, fds))
            conn.close()

    t = threading.Thread(target=agent, daemon=True)
    t.start()
    set_config(bundle, "s5")
    edit_config(bundle, lambda c: c["linux"].__setitem__("seccomp", {
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(path),
        "syscalls": [{"names": ["swapon"], "action": "SCMP_ACT_NOTIFY"}]}))
    rt.create("s5", bundle)
    rt("start", "s5")
    pidfile = rt.tmp / "e.pid"
    rt.detached("exec", "-d", "--pid-file", str(pidfile), "s5", "sleep", "100", cid="s5")
    t.join(10)
    assert len(got) == 2
    msg, fds = got[1]
    assert json.loads(msg)["pid"] == int(pidfile.read_text()) and len(fds) == 1
    assert proc_status(int(pidfile.read_text()))["Seccomp"] == "2"
    for _, fs in got:
        for fd in fs:
            os.close(fd)
    srv.close()
