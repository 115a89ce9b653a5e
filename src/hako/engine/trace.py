"""``HAKO_TRACE=FILE``: one line per phase of ``hako`` and of the monitors it starts, for tuning.

Each line is ``<unix time> <pid> <who> <phase> +<ms since the previous phase of that process>``;
absolute times let the CLI's and the monitor's lines be merged. Only posix and time are imported,
so the monitor can use it too.
"""

from __future__ import annotations

import posix
import time

_path = posix.environ.get(b"HAKO_TRACE", b"").decode()
_last = 0.0


def enabled() -> bool:
    return bool(_path)


def configure(path: str) -> None:
    """The monitor's environment is not the CLI's: it gets the path from its spec."""
    global _path
    _path = path


def path() -> str:
    return _path


def phase(who: str, name: str) -> None:
    global _last
    if not _path:
        return
    now = time.time()
    delta = (now - _last) * 1000 if _last else 0.0
    _last = now
    line = f"{now:.4f} {posix.getpid()} {who} {name} +{delta:.1f}\n"
    try:
        fd = posix.open(_path, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC, 0o644)
        try:
            posix.write(fd, line.encode())
        finally:
            posix.close(fd)
    except OSError:
        pass
