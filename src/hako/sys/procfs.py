"""Reading /proc/<pid>/stat without ctypes: kept apart so ``state`` and ``kill`` start fast."""

from __future__ import annotations


def stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat split after the comm field (index 0 = state), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].decode().split()


def start_time(pid: int) -> int | None:
    f = stat_fields(pid)
    return int(f[19]) if f else None


def is_alive(pid: int, started: int | None) -> bool:
    """True when pid runs (not a zombie) and is the same process (same start time: no pid reuse)."""
    f = stat_fields(pid)
    if not f or f[0] in ("Z", "X", "x"):
        return False
    return started is None or int(f[19]) == started
