"""Seccomp user notification: hand the listener fd to an agent, and a minimal agent side.

Runtime side (OCI runtime-spec, "The Container Process State"): connect to
``linux.seccomp.listenerPath`` (AF_UNIX, SOCK_STREAM), send one JSON containerProcessState
with the listener fd in SCM_RIGHTS, close. ``listenerPath`` is a host path, so this must
run in the runtime's parent (host mount namespace), not in the container init after
pivot_root: the init passes the fd up its sync socket with ``send_fd`` and the parent
calls ``send_to_listener``.

Agent side: ``accept_state`` receives that message, ``receive`` reads one notification
(SECCOMP_IOCTL_NOTIF_RECV) and ``respond`` answers it (SECCOMP_IOCTL_NOTIF_SEND).
"""

from __future__ import annotations

import json
import os
import select
import socket
from dataclasses import dataclass
from typing import Any

from hako.errors import HakoError, KernelError
from hako.sys import ffi

SECCOMP_FD_NAME = "seccompFd"
OCI_VERSION = "1.2.0"
USER_NOTIF_FLAG_CONTINUE = 1

# _IOWR('!', 0, struct seccomp_notif), _IOWR('!', 1, struct seccomp_notif_resp),
# _IOW('!', 2, __u64): sizes 80, 24 and 8 bytes on every architecture.
_IOCTL_NOTIF_RECV = 0xC0502100
_IOCTL_NOTIF_SEND = 0xC0182101
_IOCTL_NOTIF_ID_VALID = 0x40082102


class _SeccompData(ffi.Structure):
    _fields_ = [
        ("nr", ffi.c_int),
        ("arch", ffi.c_uint32),
        ("instruction_pointer", ffi.c_uint64),
        ("args", ffi.c_uint64 * 6),
    ]


class _Notif(ffi.Structure):
    _fields_ = [("id", ffi.c_uint64), ("pid", ffi.c_uint32), ("flags", ffi.c_uint32), ("data", _SeccompData)]


class _NotifResp(ffi.Structure):
    _fields_ = [("id", ffi.c_uint64), ("val", ffi.c_int64), ("error", ffi.c_int32), ("flags", ffi.c_uint32)]


@dataclass(frozen=True)
class Notification:
    id: int
    pid: int
    nr: int
    arch: int
    args: tuple[int, ...]


def _libc() -> ffi.CDLL:
    libc = ffi.CDLL(None, use_errno=True)
    libc.ioctl.argtypes = [ffi.c_int, ffi.c_ulong, ffi.c_void_p]
    libc.ioctl.restype = ffi.c_int
    return libc


def container_process_state(state: dict[str, Any], metadata: str = "", pid: int | None = None) -> dict[str, Any]:
    """The containerProcessState document wrapping the container's OCI ``state``."""
    doc: dict[str, Any] = {
        "ociVersion": state.get("ociVersion", OCI_VERSION),
        "fds": [SECCOMP_FD_NAME],
        "pid": pid if pid is not None else state.get("pid", 0),
        "state": state,
    }
    if metadata:
        doc["metadata"] = metadata
    return doc


def send_to_listener(listener_path: str, notify_fd: int, state: bytes, metadata: str = "", pid: int | None = None) -> None:
    """Send the container process state and ``notify_fd`` to the agent at ``listener_path``.

    ``state`` is the container's OCI state JSON (ociVersion, id, status, pid, bundle,
    annotations); ``pid`` is the container process as seen by the runtime (defaults to
    state's pid). One message, one connection, closed afterwards, as the spec requires.
    """
    try:
        parsed = json.loads(state)
    except ValueError as exc:
        raise HakoError(f"seccomp listener {listener_path}: container state is not JSON: {exc}") from None
    payload = json.dumps(container_process_state(parsed, metadata, pid), separators=(",", ":")).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(listener_path)
            # The fd rides on the first sendmsg only; the rest (if any) follows plainly.
            sent = socket.send_fds(sock, [payload], [notify_fd])
            if sent < len(payload):
                sock.sendall(payload[sent:])
    except OSError as exc:
        raise KernelError("connect", exc.errno or 5, f"seccomp listener {listener_path}") from None


def send_fd(sock: socket.socket, fd: int, message: bytes = b"seccomp") -> None:
    """Pass one fd over a connected AF_UNIX socket (init -> runtime parent)."""
    socket.send_fds(sock, [message], [fd])


def recv_fd(sock: socket.socket, bufsize: int = 4096) -> tuple[bytes, int]:
    """Receive one message and the fd that came with it; raises HakoError when none came."""
    data, fds, _flags, _addr = socket.recv_fds(sock, bufsize, 1)
    if not fds:
        raise HakoError("expected a file descriptor in SCM_RIGHTS, got none")
    return data, fds[0]


def accept_state(listener: socket.socket, timeout: float | None = None) -> tuple[dict[str, Any], int]:
    """Agent side: accept one runtime connection; return (containerProcessState, seccomp fd)."""
    listener.settimeout(timeout)
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(timeout)
        data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 4)
        buf = data
        # Stop at the end of the document, not at EOF: some runtimes (crun) keep the
        # connection open until their container process has started.
        while True:
            try:
                doc = json.loads(buf)
                break
            except ValueError:
                if not data:
                    for fd in fds:
                        os.close(fd)
                    raise HakoError("seccomp agent: incomplete container process state") from None
            data = conn.recv(65536)
            buf += data
    names = doc.get("fds") or []
    if SECCOMP_FD_NAME not in names or len(fds) <= names.index(SECCOMP_FD_NAME):
        for fd in fds:
            os.close(fd)
        raise HakoError(f"container process state carries no {SECCOMP_FD_NAME}")
    keep = fds[names.index(SECCOMP_FD_NAME)]
    for fd in fds:
        if fd != keep:
            os.close(fd)
    return doc, keep


def receive(notify_fd: int, timeout: float | None = None) -> Notification | None:
    """Read one notification; None on timeout. The target stays blocked until ``respond``."""
    if timeout is not None:
        ready, _, _ = select.select([notify_fd], [], [], timeout)
        if not ready:
            return None
    req = _Notif()
    if _libc().ioctl(notify_fd, _IOCTL_NOTIF_RECV, ffi.byref(req)) < 0:
        raise KernelError("ioctl", ffi.get_errno(), "SECCOMP_IOCTL_NOTIF_RECV")
    return Notification(id=req.id, pid=req.pid, nr=req.data.nr, arch=req.data.arch, args=tuple(req.data.args))


def respond(notify_fd: int, notif_id: int, val: int = 0, error: int = 0, *, continue_syscall: bool = False) -> None:
    """Answer a notification: the syscall returns ``val``, or fails with ``error`` (an errno).

    ``continue_syscall`` lets the kernel run the syscall as if allowed (only safe for
    syscalls whose arguments the agent does not need to trust, see seccomp_unotify(2)).
    """
    resp = _NotifResp(notif_id, val, -error if error > 0 else error, USER_NOTIF_FLAG_CONTINUE if continue_syscall else 0)
    if _libc().ioctl(notify_fd, _IOCTL_NOTIF_SEND, ffi.byref(resp)) < 0:
        raise KernelError("ioctl", ffi.get_errno(), "SECCOMP_IOCTL_NOTIF_SEND")


def id_valid(notify_fd: int, notif_id: int) -> bool:
    """Whether the target of ``notif_id`` is still waiting (guards against pid reuse)."""
    value = ffi.c_uint64(notif_id)
    return _libc().ioctl(notify_fd, _IOCTL_NOTIF_ID_VALID, ffi.byref(value)) == 0
