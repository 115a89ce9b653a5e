"""Error reporting and the --debug phase trace.

runc-style: the bare message on stderr (``hako-runtime: <msg>``) and, with ``--log``, one
JSON object per line; exactly one line per failure (podman reads the whole file as one object).
"""

from __future__ import annotations

import os
import sys
import time

_log_file: str | None = None
_log_json = False
_debug = False
_t0 = time.monotonic()
_last = _t0


def configure(log_file: str | None, log_format: str, debug: bool) -> None:
    global _log_file, _log_json, _debug
    _log_file = log_file
    _log_json = log_format == "json"
    _debug = debug


def _rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _append(level: str, msg: str) -> None:
    if not _log_file:
        return
    if _log_json:
        import json

        line = json.dumps({"level": level, "msg": msg, "time": _rfc3339()}, separators=(",", ":"))
    else:
        line = f'time="{_rfc3339()}" level={level} msg="{msg}"'
    try:
        fd = os.open(_log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass


def error(msg: str) -> None:
    try:
        sys.stderr.write(f"hako-runtime: {msg}\n")
        sys.stderr.flush()
    except OSError:
        pass
    _append("error", msg)


def warn(msg: str) -> None:
    """Something went wrong that does not fail the command (e.g. a poststop hook)."""
    try:
        sys.stderr.write(f"hako-runtime: warning: {msg}\n")
    except OSError:
        pass
    _append("warning", msg)


def phase(name: str) -> None:
    """With --debug: time since the previous phase, on stderr (and in the log)."""
    global _last
    if not _debug:
        return
    now = time.monotonic()
    msg = f"phase {name}: {(now - _last) * 1000:.1f} ms (total {(now - _t0) * 1000:.1f} ms)"
    _last = now
    try:
        sys.stderr.write(f"hako-runtime: debug: {msg}\n")
    except OSError:
        pass
    if _log_file:
        _append("debug", msg)


def debug_enabled() -> bool:
    return _debug
