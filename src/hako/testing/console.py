"""The receiving end of ``--console-socket``, as conmon and the containerd shim implement it.

The caller listens on an AF_UNIX stream socket; the runtime connects, sends one message whose
payload is the pty name and whose SCM_RIGHTS control message carries exactly one fd (the pty
master), and closes its copies before ``create``/``exec --detach`` exits. Because a connection
waits in the listen backlog until accepted, a test can run the runtime to completion first and
accept afterwards: whatever arrives then was sent before the runtime exited, which is what
conmon requires.
"""

from __future__ import annotations

import array
import fcntl
import os
import select
import shutil
import socket
import struct
import tempfile
import termios
import time
from dataclasses import dataclass
from pathlib import Path

# Room for far more fds than a correct runtime sends, so extra ones are seen, not truncated.
_MAX_FDS = 16
TIOCGPTN = 0x80045430  # <asm-generic/ioctls.h>: _IOR('T', 0x30, unsigned int)


@dataclass
class ConsoleMessage:
    payload: bytes
    fds: list[int]
    ctrunc: bool  # MSG_CTRUNC: the control data did not fit

    @property
    def master(self) -> int:
        if len(self.fds) != 1:
            raise ValueError(f"console socket carried {len(self.fds)} fds, expected exactly one")
        return self.fds[0]

    def close(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []


class ConsoleSocket:
    """A listening console socket in a private temp directory."""

    def __init__(self, directory: Path | None = None) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="hako-console-", dir=directory))
        self.path = self._dir / "console.sock"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.path))
        self._sock.listen(4)
        self.messages: list[ConsoleMessage] = []

    def receive(self, timeout: float = 10.0) -> ConsoleMessage:
        """Accept one connection and read one message, exactly as conmon does (one recvmsg)."""
        self._sock.settimeout(timeout)
        conn, _ = self._sock.accept()
        with conn:
            conn.settimeout(timeout)
            payload, ancdata, flags, _ = conn.recvmsg(4096, socket.CMSG_SPACE(_MAX_FDS * 4))
        fds: list[int] = []
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                arr = array.array("i")
                arr.frombytes(data[: len(data) - (len(data) % arr.itemsize)])
                fds.extend(arr)
        msg = ConsoleMessage(payload=payload, fds=fds, ctrunc=bool(flags & socket.MSG_CTRUNC))
        self.messages.append(msg)
        return msg

    def pending(self) -> bool:
        """True if another connection is waiting (a runtime that connected twice)."""
        r, _, _ = select.select([self._sock], [], [], 0)
        return bool(r)

    def close(self) -> None:
        for msg in self.messages:
            msg.close()
        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> ConsoleSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pty_number(master: int) -> int:
    """The pts number of a pty master (fails with OSError if ``master`` is not one)."""
    buf = fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0))
    n: int = struct.unpack("I", buf)[0]
    return n


def set_winsize(master: int, rows: int, cols: int) -> None:
    """What conmon does after receiving the master."""
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def read_until(master: int, needle: bytes, timeout: float = 10.0) -> bytes:
    """Read from the master until ``needle`` shows up (returns all read), or the deadline."""
    deadline = time.monotonic() + timeout
    data = b""
    while needle not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([master], [], [], left)
        if not r:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: every slave closed
            break
        if not chunk:
            break
        data += chunk
    return data
