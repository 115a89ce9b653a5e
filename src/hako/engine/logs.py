"""Reading the json-file logs the monitor writes (``ctr.log`` plus rotated ``ctr.log.N``)."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

LOG_NAME = "ctr.log"


@dataclass
class LogLine:
    stream: str
    text: str
    time: str


def log_files(cdir: Path) -> list[Path]:
    rotated = sorted(cdir.glob(LOG_NAME + ".*"), key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
                     reverse=True)
    return [p for p in rotated if p.suffix[1:].isdigit()] + [cdir / LOG_NAME]


def _parse(line: str) -> LogLine | None:
    try:
        d = json.loads(line)
    except ValueError:
        return None
    return LogLine(d.get("stream", "stdout"), d.get("log", ""), d.get("time", ""))


def parse_since(since: str | None) -> str | None:
    """``--since``: an RFC 3339 time, a Unix timestamp or a relative duration (``10m``); as RFC 3339."""
    if not since:
        return None
    from hako.engine.config import parse_duration
    from hako.engine.monitor import now_rfc3339

    if since[0].isdigit() and ("T" in since or "-" in since):
        return since
    try:
        return now_rfc3339(float(since))
    except ValueError:
        return now_rfc3339(time.time() - parse_duration(since, "since"))


def read_logs(cdir: Path, tail: int | None = None, since: str | None = None) -> list[LogLine]:
    lines: deque[LogLine] | list[LogLine] = deque(maxlen=tail) if tail is not None and tail >= 0 else []
    for path in log_files(cdir):
        try:
            with open(path, errors="replace") as f:
                for raw in f:
                    entry = _parse(raw)
                    if entry is None or (since and entry.time < since):
                        continue
                    lines.append(entry)
        except FileNotFoundError:
            continue
    return list(lines)


def follow(cdir: Path, running: Callable[[], bool], tail: int | None = None,
           since: str | None = None) -> Iterator[LogLine]:
    """Existing lines, then new ones as they are written, until the container is no longer running."""
    path = cdir / LOG_NAME
    yield from read_logs(cdir, tail, since)
    try:
        f = open(path, errors="replace")  # noqa: SIM115 - kept open across rotations below
    except FileNotFoundError:
        return
    f.seek(0, 2)
    inode = path.stat().st_ino
    buf = ""
    idle = 0.0
    while True:
        chunk = f.read()
        if chunk:
            buf += chunk
            *complete, buf = buf.split("\n")
            for raw in complete:
                entry = _parse(raw)
                if entry is not None:
                    yield entry
            idle = 0.0
            continue
        try:
            if path.stat().st_ino != inode:
                f.close()
                f = open(path, errors="replace")  # noqa: SIM115
                inode = path.stat().st_ino
                continue
        except FileNotFoundError:
            break
        if not running():
            # One last read: the monitor drains the container's pipes before it records the exit.
            rest = f.read()
            for raw in (buf + rest).split("\n"):
                entry = _parse(raw) if raw else None
                if entry is not None:
                    yield entry
            break
        time.sleep(min(0.2, 0.02 + idle))
        idle += 0.02
    f.close()
