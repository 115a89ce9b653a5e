"""linux.seccomp through the runtime binary: `run` a busybox bundle under a profile.

Parametrized over runc (the reference, so the expectations are checked) and hako-runtime.
"""

from __future__ import annotations

import errno
import os
import secrets
import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hako import seccomp
from hako.errors import KernelError
from hako.seccomp import notify
from hako.testing.busybox import make_bundle
from hako.testing.config import default_config, write_config
from hako.testing.runtimes import Result, RuntimeBinary, hako_runtime_path, remove_test_cgroups

RUNC = Path("/usr/sbin/runc")
CRUN = Path("/work/shared/clients/crun-hybrid")
RUNTIMES = {"runc": RUNC, "crun": CRUN, "hako-runtime": hako_runtime_path()}
DENY_MKDIR_ENOSYS = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}],
}


_CAN_RUN: dict[str, str] = {}


def _can_run(name: str, path: Path, rootfs: Path, scratch: Path) -> str:
    """'' when ``path`` runs a plain busybox ``true`` container, else why not (checked once)."""
    if name not in _CAN_RUN:
        cgroup = f"hako-test-seccomp-probe-{secrets.token_hex(4)}"
        try:
            bundle, cid = _bundle(scratch / f"probe-{name}", rootfs, cgroup, ["true"], None)
            res = _run(RuntimeBinary(name, path, root=scratch / f"probe-{name}-state"), bundle, cid)
            _CAN_RUN[name] = "" if res.returncode == 0 else f"{name} cannot run a plain container yet: {res.stderr.strip()[:200]}"
        finally:
            remove_test_cgroups(cgroup)
    return _CAN_RUN[name]


@pytest.fixture(params=sorted(RUNTIMES))
def runtime(request: pytest.FixtureRequest, tmp_path: Path, busybox_rootfs: Path, scratch_root: Path) -> RuntimeBinary:
    path = RUNTIMES[request.param]
    if not path.exists():
        pytest.skip(f"{path} is not installed")
    # Only the seccomp part is under test here: a runtime that cannot start any container
    # is reported by its own tests, not as a seccomp failure.
    why = _can_run(request.param, path, busybox_rootfs, scratch_root)
    if why:
        pytest.skip(why)
    return RuntimeBinary(request.param, path, root=tmp_path / "state")


@pytest.fixture
def cgroup_parent() -> Iterator[str]:
    parent = f"hako-test-seccomp-{secrets.token_hex(4)}"
    yield parent
    remove_test_cgroups(parent)


def _bundle(
    tmp_path: Path, rootfs: Path, cgroup_parent: str, args: list[str], profile: dict[str, Any] | None, nnp: bool = True
) -> tuple[Path, str]:
    cid = f"sc-{secrets.token_hex(4)}"
    bundle = make_bundle(tmp_path / "bundle", args, rootfs_template=rootfs)
    cfg = default_config(args)
    cfg["root"]["readonly"] = False
    cfg["process"].pop("rlimits", None)
    cfg["process"]["noNewPrivileges"] = nnp
    cfg["linux"]["cgroupsPath"] = f"/{cgroup_parent}/{cid}"
    if profile is not None:
        cfg["linux"]["seccomp"] = profile
    write_config(bundle, cfg)
    return bundle, cid


def _run(runtime: RuntimeBinary, bundle: Path, cid: str) -> Result:
    res = runtime.run("run", "--bundle", str(bundle), cid, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    runtime.run("delete", "--force", cid)
    return res


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_denied_mkdir_fails_with_the_profiles_errno(
    runtime: RuntimeBinary, tmp_path: Path, busybox_rootfs: Path, cgroup_parent: str, nnp: bool
) -> None:
    # Without noNewPrivileges the filter goes in while CAP_SYS_ADMIN is still held.
    bundle, cid = _bundle(tmp_path, busybox_rootfs, cgroup_parent, ["mkdir", "/tmp/x"], DENY_MKDIR_ENOSYS, nnp=nnp)
    res = _run(runtime, bundle, cid)
    assert res.returncode == 1, res
    assert "Function not implemented" in res.stderr, res
    assert not (bundle / "rootfs/tmp/x").exists()


def test_default_profile_runs_busybox_and_denies_unshare(
    runtime: RuntimeBinary, tmp_path: Path, busybox_rootfs: Path, cgroup_parent: str
) -> None:
    caps = default_config()["process"]["capabilities"]["bounding"]
    script = "mkdir /tmp/y && echo made; unshare -n true; echo unshare=$?"
    bundle, cid = _bundle(tmp_path, busybox_rootfs, cgroup_parent, ["sh", "-c", script], seccomp.default_profile(caps))
    res = _run(runtime, bundle, cid)
    assert res.returncode == 0, res
    assert "made" in res.stdout and "unshare=1" in res.stdout, res
    assert "Operation not permitted" in res.stderr, res


def test_invalid_profile_is_refused_at_create(runtime: RuntimeBinary, tmp_path: Path, busybox_rootfs: Path, cgroup_parent: str) -> None:
    bad = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_FROB"}]}
    bundle, cid = _bundle(tmp_path, busybox_rootfs, cgroup_parent, ["true"], bad)
    res = _run(runtime, bundle, cid)
    assert res.returncode != 0, res
    if runtime.name == "hako-runtime":
        assert "linux.seccomp.syscalls[0].action" in res.stderr, res
    assert runtime.run("state", cid).returncode != 0


def test_notify_reaches_the_agent_at_listener_path(
    runtime: RuntimeBinary, tmp_path: Path, busybox_rootfs: Path, cgroup_parent: str
) -> None:
    # The init loads a notify filter before create returns and passes the fd up; the runtime,
    # which can still reach listenerPath, sends it to the agent with the container's state.
    sock_path = str(tmp_path / "agent.sock")
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock_path,
        "listenerMetadata": "from-the-test",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
    }
    bundle, cid = _bundle(tmp_path, busybox_rootfs, cgroup_parent, ["mkdir", "/tmp/z"], profile)
    box: dict[str, Any] = {}
    stop = threading.Event()

    def agent(listener: socket.socket) -> None:
        try:
            while not select.select([listener], [], [], 0.1)[0]:
                if stop.is_set():
                    return  # the runtime never connected
            doc, fd = notify.accept_state(listener, timeout=20)
            box["doc"] = doc
            try:
                while (n := notify.receive(fd, timeout=20)) is not None:
                    box.setdefault("seen", []).append(n)
                    notify.respond(fd, n.id, error=errno.EROFS)
            except KernelError:
                pass  # the container exited: the listener fd reports it (ENOENT)
            finally:
                os.close(fd)
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(sock_path)
        listener.listen(1)
        thread = threading.Thread(target=agent, args=(listener,), daemon=True)
        thread.start()
        res = _run(runtime, bundle, cid)
        stop.set()
        thread.join(25)
    assert "error" not in box, (box, res)
    assert res.returncode == 1, res
    assert "Read-only file system" in res.stderr, res
    assert "doc" in box, f"{runtime.name} never connected to listenerPath"
    doc = box["doc"]
    assert doc["fds"] == ["seccompFd"] and doc["metadata"] == "from-the-test"
    assert doc["state"]["id"] == cid
    assert len(box.get("seen", [])) >= 1


def test_exec_runs_under_the_containers_profile(
    runtime: RuntimeBinary, tmp_path: Path, busybox_rootfs: Path, cgroup_parent: str
) -> None:
    # `exec` joins the container's namespaces first: the filter must still be built and
    # loaded in there, where neither libseccomp nor the runtime's own files are reachable.
    bundle, cid = _bundle(tmp_path, busybox_rootfs, cgroup_parent, ["sleep", "1000"], DENY_MKDIR_ENOSYS)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    created = runtime.run("create", "--bundle", str(bundle), cid, env=env, out=tmp_path / "init.out")
    try:
        assert created.returncode == 0, created
        assert runtime.run("start", cid, env=env).returncode == 0
        res = runtime.run("exec", cid, "mkdir", "/tmp/e", env=env, timeout=20)
        assert res.returncode == 1, res
        assert "Function not implemented" in res.stderr, res
        ok = runtime.run("exec", cid, "sh", "-c", "echo fine", env=env, timeout=20)
        assert ok.returncode == 0 and "fine" in ok.stdout, ok
    finally:
        runtime.run("kill", cid, "KILL")
        runtime.run("delete", "--force", cid)


def test_listener_path_without_notify_rules_is_ignored(
    runtime: RuntimeBinary, tmp_path: Path, busybox_rootfs: Path, cgroup_parent: str, request: pytest.FixtureRequest
) -> None:
    # runtime-spec: "If the SCMP_ACT_NOTIFY action is not used this value is ignored." runc
    # and hako-runtime do; crun 1.8 connects to the path anyway.
    known = {"crun": "crun connects to listenerPath even without notify rules"}
    if runtime.name in known:
        request.applymarker(pytest.mark.xfail(reason=known[runtime.name], strict=False))
    profile = {**DENY_MKDIR_ENOSYS, "listenerPath": str(tmp_path / "nobody-listens.sock")}
    bundle, cid = _bundle(tmp_path, busybox_rootfs, cgroup_parent, ["mkdir", "/tmp/x"], profile)
    res = _run(runtime, bundle, cid)
    assert res.returncode == 1, res
    assert "Function not implemented" in res.stderr, res
