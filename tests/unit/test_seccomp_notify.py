"""The container process state document sent to a seccomp agent (no root)."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

from hako.seccomp import notify


def test_container_process_state_shape() -> None:
    state = {"ociVersion": "1.0.2", "id": "c", "status": "creating", "pid": 42, "bundle": "/b"}
    doc = notify.container_process_state(state, "meta")
    assert doc == {"ociVersion": "1.0.2", "fds": ["seccompFd"], "pid": 42, "metadata": "meta", "state": state}
    assert "metadata" not in notify.container_process_state(state)
    assert notify.container_process_state(state, pid=7)["pid"] == 7


def test_send_to_listener_and_accept_state(tmp_path: Path) -> None:
    path = str(tmp_path / "agent.sock")
    r, w = os.pipe()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        # A large state forces the payload past one sendmsg on some systems.
        state = {"ociVersion": "1.2.0", "id": "c", "status": "creating", "pid": 9, "annotations": {"k": "v" * 300000}}
        sender = threading.Thread(target=notify.send_to_listener, args=(path, w, json.dumps(state).encode(), "m"))
        sender.start()
        doc, fd = notify.accept_state(listener, timeout=10)
        sender.join(10)
    try:
        assert doc["state"] == state and doc["metadata"] == "m" and doc["pid"] == 9
        os.write(w, b"!")
        os.write(fd, b"?")  # the received fd is another copy of the pipe's write end
        assert os.read(r, 2) == b"!?"
    finally:
        for f in (r, w, fd):
            os.close(f)
