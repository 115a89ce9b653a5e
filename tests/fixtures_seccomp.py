"""Helpers for the seccomp tests: run a function in a forked child under a filter.

A loaded filter cannot be removed, so every filtered check happens in a child that
reports one JSON value through a pipe and leaves with os._exit (never back into pytest).
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hako import seccomp

PR_SET_NO_NEW_PRIVS = 38
LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long


@dataclass
class ChildResult:
    value: Any
    status: int

    @property
    def signal(self) -> int | None:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None


def raw_syscall(nr: int, *args: int) -> int:
    """A syscall straight to the kernel: -errno on failure, so results are plain ints."""
    rc = LIBC.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) for a in args))
    return -ctypes.get_errno() if rc == -1 else int(rc)


def run_filtered(
    load: Callable[[], Any] | None,
    check: Callable[[Any], Any],
    *,
    nnp: bool = True,
    timeout: float = 20.0,
    before: Callable[[], Any] | None = None,
) -> ChildResult:
    """Fork; in the child set NNP (if asked), call ``load()``, then report ``check(load_result)``.

    An exception in the child is reported as ``{"error": repr}``. A child killed by the
    filter reports nothing: look at ``.signal``.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.close(r)
            if before is not None:
                before()
            if nnp and LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
            loaded = load() if load is not None else None
            value = check(loaded)
            payload = json.dumps({"value": value}).encode()
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            payload = json.dumps({"error": repr(exc)}).encode()
            code = 1
        try:
            os.write(w, payload)
        finally:
            os._exit(code)
    os.close(w)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([r], [], [], timeout)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                break
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    if not data:
        return ChildResult(None, status)
    doc = json.loads(data)
    if "error" in doc:
        return ChildResult({"error": doc["error"]}, status)
    return ChildResult(doc["value"], status)


def exec_filtered(profile: dict[str, Any], script: str, argv: list[str] | None = None) -> tuple[int, str]:
    """Run ``busybox sh -c script`` (or ``argv``) under ``profile``; (exit status, combined output)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            os.dup2(w, 1)
            os.dup2(w, 2)
            LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            seccomp.load(profile)
            if argv:
                os.execv(argv[0], argv)
            os.execv("/bin/busybox", ["sh", "-c", script])
        finally:
            os._exit(127)
    os.close(w)
    with os.fdopen(r, "rb") as out:
        output = out.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output
