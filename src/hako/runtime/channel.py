"""Newline-delimited JSON messages between the runtime and its init/exec children (a socketpair)."""

from __future__ import annotations

import _socket  # the socket module pulls in enum, selectors...: start-up time

from hako.runtime import fastjson

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    from typing import Any


class Channel:
    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self._buf = b""

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        return cls(a), cls(b)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, kind: str, *, strict: bool = False, **fields: Any) -> None:
        """Send one message; a vanished peer is ignored unless ``strict`` (then OSError)."""
        fields["t"] = kind
        try:
            self.sock.sendall(fastjson.dumps(fields).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            if strict:
                raise

    def recv(self) -> dict[str, Any] | None:
        """The next message, or None at EOF (the peer exited or exec'd: its end was close-on-exec)."""
        while b"\n" not in self._buf:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        msg: dict[str, Any] = fastjson.loads(line)
        return msg

    def expect(self, kind: str, what: str) -> dict[str, Any]:
        """Receive ``kind``; an ``error`` message or EOF becomes a HakoError naming ``what``."""
        from hako.errors import HakoError

        msg = self.recv()
        if msg is None:
            raise HakoError(f"{what}: container process exited unexpectedly")
        if msg["t"] == "error":
            raise HakoError(msg["msg"])
        if msg["t"] != kind:
            raise HakoError(f"{what}: unexpected message {msg['t']!r} from container process")
        return msg

    def expect_any(self, what: str) -> dict[str, Any]:
        """Receive any message; ``error`` or EOF become a HakoError."""
        from hako.errors import HakoError

        msg = self.recv()
        if msg is None:
            raise HakoError(f"{what}: container process exited unexpectedly")
        if msg["t"] == "error":
            raise HakoError(msg["msg"])
        return msg

    def close(self) -> None:
        self.sock.close()
