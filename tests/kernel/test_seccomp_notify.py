"""Seccomp user notification end to end: a filtered child hands its listener fd to an
agent socket (send_to_listener) and the test, acting as the agent, answers its syscalls."""

from __future__ import annotations

import errno
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hako import seccomp
from hako.seccomp import libseccomp as scmp
from hako.seccomp import notify
from hako.seccomp.filter import load_with_libseccomp, prepare
from hako.seccomp.profile import parse
from tests.fixtures_seccomp import ChildResult, raw_syscall, run_filtered


@pytest.fixture
def agent_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "agent.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        yield path, listener


def _profile(path: str, flags: list[str] | None = None) -> dict[str, Any]:
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": path,
        "listenerMetadata": "hello-agent",
        "flags": flags or [],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}],
    }


def _child_check(path: str) -> Any:
    def check(fd: int | None) -> Any:
        assert fd is not None and fd >= 0
        state = {"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": os.getpid(), "bundle": "/b"}
        seccomp.send_to_listener(path, fd, json.dumps(state).encode(), "hello-agent")
        os.close(fd)
        nr = scmp.syscall_resolve_name("getppid")
        assert nr is not None
        return [raw_syscall(nr), raw_syscall(nr), raw_syscall(nr), os.getppid()]

    return check


def _serve(listener: socket.socket, calls: int) -> tuple[dict[str, Any], list[notify.Notification]]:
    doc, fd = notify.accept_state(listener, timeout=15)
    seen = []
    try:
        answers = [{"val": 4242}, {"error": errno.EACCES}, {"continue_syscall": True}, {"val": 7}]
        for answer in answers[:calls]:
            notif = notify.receive(fd, timeout=15)
            assert notif is not None, "no notification from the child"
            assert notify.id_valid(fd, notif.id)
            seen.append(notif)
            notify.respond(fd, notif.id, **answer)  # type: ignore[arg-type]
    finally:
        os.close(fd)
    return doc, seen


def _run(path: str, listener: socket.socket, load: Any) -> tuple[ChildResult, dict[str, Any], list[notify.Notification]]:
    # The agent must serve while the child waits, so the child is forked first and the
    # parent answers before collecting the child's report.
    import threading

    box: dict[str, Any] = {}

    def agent() -> None:
        try:
            box["doc"], box["seen"] = _serve(listener, 4)
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    thread = threading.Thread(target=agent)
    thread.start()
    res = run_filtered(load, _child_check(path))
    thread.join(20)
    assert not (isinstance(res.value, dict) and "error" in res.value), res
    if "error" in box:
        raise box["error"]
    return res, box["doc"], box["seen"]


def test_notify_fd_reaches_the_agent_which_answers(agent_socket: tuple[str, socket.socket]) -> None:
    path, listener = agent_socket
    profile = _profile(path)
    res, doc, seen = _run(path, listener, lambda: seccomp.load(profile))
    ppid = os.getpid()
    assert res.value == [4242, -errno.EACCES, ppid, 7], res
    assert doc["fds"] == ["seccompFd"]
    assert doc["metadata"] == "hello-agent"
    assert doc["state"]["id"] == "c1"
    assert doc["pid"] == doc["state"]["pid"]
    nr = scmp.syscall_resolve_name("getppid")
    assert [n.nr for n in seen] == [nr] * 4
    assert {n.pid for n in seen} == {doc["pid"]}


def test_notify_with_wait_killable_recv_and_tsync(agent_socket: tuple[str, socket.socket]) -> None:
    path, listener = agent_socket
    prepared = prepare(_profile(path, ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC"]))
    res, _doc, seen = _run(path, listener, lambda: seccomp.load(prepared))
    assert res.value == [4242, -errno.EACCES, os.getpid(), 7], res
    assert len(seen) == 4


def test_notify_through_libseccomp_load(agent_socket: tuple[str, socket.socket]) -> None:
    path, listener = agent_socket
    profile = parse(_profile(path))
    res, _doc, seen = _run(path, listener, lambda: load_with_libseccomp(profile))
    assert res.value == [4242, -errno.EACCES, os.getpid(), 7], res
    assert len(seen) == 4


def test_send_to_listener_reports_an_unreachable_agent(tmp_path: Path) -> None:
    from hako.errors import KernelError

    r, w = os.pipe()
    try:
        with pytest.raises(KernelError, match="seccomp listener"):
            seccomp.send_to_listener(str(tmp_path / "nobody.sock"), r, b'{"pid": 1}')
    finally:
        os.close(r)
        os.close(w)


def test_send_fd_and_recv_fd_pass_a_descriptor() -> None:
    a, b = socket.socketpair()
    r, w = os.pipe()
    try:
        notify.send_fd(a, w)
        msg, fd = notify.recv_fd(b)
        os.write(fd, b"x")
        os.close(fd)
        assert msg == b"seccomp"
        assert os.read(r, 1) == b"x"
    finally:
        for s in (a, b):
            s.close()
        os.close(r)
        os.close(w)
