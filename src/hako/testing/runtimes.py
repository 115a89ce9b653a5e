"""Run a runc-compatible runtime binary the way container managers do, and collect what it did.

Used by the client-contract tests (tests/e2e/test_runtime_clients.py) and benchmarks. Every
call gets a private ``--root``; stdout/stderr go to files, never pipes, because after ``create``
the container's init keeps the runtime's stdio open (it *is* the container's stdio), so reading
a pipe to EOF would block until the container exits.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Only cgroups whose top directory starts with this are ever removed by these helpers.
TEST_CGROUP_PREFIX = "hako-test-"

# What conmon/the shim give create/exec (PATH present) and what podman's direct calls get
# (kill/delete/pause/resume/state: no PATH at all, XDG_RUNTIME_DIR set but empty).
ENV_CREATE = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "XDG_RUNTIME_DIR": ""}
ENV_DIRECT = {"XDG_RUNTIME_DIR": ""}

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def hako_runtime_path() -> Path:
    """hako-runtime next to the running interpreter (the venv), unless HAKO_RUNTIME says otherwise."""
    env = os.environ.get("HAKO_RUNTIME")
    if env:
        return Path(env)
    return Path(sys.executable).parent / "hako-runtime"


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"{' '.join(self.argv)} -> rc={self.returncode} stdout={self.stdout!r} stderr={self.stderr!r}"


@dataclass
class RuntimeBinary:
    """One runtime executable plus the ``--root`` every call passes."""

    name: str
    path: Path
    root: Path | None = None
    calls: list[Result] = field(default_factory=list)

    def argv(self, args: Sequence[str], global_args: Sequence[str] = ()) -> list[str]:
        root = ["--root", str(self.root)] if self.root is not None else []
        return [str(self.path), *root, *global_args, *args]

    def run(
        self,
        *args: str,
        global_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        out: Path | None = None,
        cwd: Path | None = None,
        fds: Mapping[int, int] | None = None,
        ignore_sigpipe: bool = False,
        block_signals: Sequence[int] = (),
        timeout: float = 30,
    ) -> Result:
        """Run one call; ``out`` (appended to) becomes the runtime's, and so the container's, stdout.

        ``fds`` maps a descriptor number in the runtime to one of ours (like the shim's leaked
        fd 3 or conmon's ``--preserve-fds``). ``ignore_sigpipe``/``block_signals`` reproduce
        conmon's and podman's signal state so tests can check the container does not inherit it.
        """
        argv = self.argv(args, global_args)
        fd_map = dict(fds or {})
        mask = list(block_signals)

        def child_setup() -> None:
            for target, source in fd_map.items():
                os.dup2(source, target)
            if mask:
                signal.pthread_sigmask(signal.SIG_BLOCK, mask)

        env_final = dict(ENV_DIRECT if env is None else env)
        with tempfile.TemporaryFile() as err, _out_file(out) as stdout_f:
            start = stdout_f.tell()
            try:
                proc = subprocess.run(
                    argv,
                    input=stdin,
                    stdin=None if stdin is not None else subprocess.DEVNULL,
                    stdout=stdout_f,
                    stderr=err,
                    env=env_final,
                    cwd=cwd,
                    pass_fds=tuple(fd_map),
                    preexec_fn=child_setup if (fd_map or mask) else None,
                    # The interpreter ignores SIGPIPE; keeping that reproduces conmon.
                    restore_signals=not ignore_sigpipe,
                    timeout=timeout,
                )
                rc = proc.returncode
            except subprocess.TimeoutExpired:
                rc = -999
            stdout_f.flush()
            stdout_f.seek(start)
            out_text = stdout_f.read().decode(errors="replace")
            err.seek(0)
            err_text = err.read().decode(errors="replace")
        result = Result(argv, rc, out_text, err_text)
        self.calls.append(result)
        return result


class _out_file:
    """Append to ``path`` when given, else a throw-away temp file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.f: Any = None

    def __enter__(self) -> Any:
        if self.path is None:
            self.f = tempfile.TemporaryFile()
        else:
            self.f = open(self.path, "a+b")  # noqa: SIM115 - closed in __exit__
            self.f.seek(0, os.SEEK_END)
        return self.f

    def __exit__(self, *exc: object) -> None:
        self.f.close()


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a zombie container init counts as stopped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_until(pred: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``pred`` until true or ``timeout``; the processes we watch are not our children."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def proc_status(pid: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def cgroup_hierarchies() -> list[Path]:
    """Every mounted hierarchy under /sys/fs/cgroup (v1 controllers, name=systemd, unified)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        parts = line.split()
        mount_point = Path(parts[4])
        fstype = parts[parts.index("-") + 1]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        if mount_point.parent == CGROUP_ROOT or mount_point == CGROUP_ROOT:
            found.append(mount_point)
    return found


def cgroup_path(hierarchy: str, rel: str) -> Path:
    return CGROUP_ROOT / hierarchy / rel.lstrip("/")


def remove_test_cgroups(parent: str) -> list[str]:
    """Remove the cgroup tree ``/<parent>`` (must start with hako-test-) in every hierarchy.

    Processes still inside are ours (tests started them): they are SIGKILLed first, then the
    directories are removed deepest first. Returns what could not be removed.
    """
    rel = parent.strip("/")
    if not rel.startswith(TEST_CGROUP_PREFIX) or "/" in rel or ".." in rel:
        raise ValueError(f"{parent}: refusing to remove a cgroup outside {TEST_CGROUP_PREFIX}*")
    left = []
    for hierarchy in cgroup_hierarchies():
        top = hierarchy / rel
        if not top.is_dir():
            continue
        dirs = sorted((Path(d) for d, _, _ in os.walk(top)), key=lambda p: len(p.parts), reverse=True)
        for d in dirs:
            _kill_cgroup_procs(d)
        for d in dirs:
            if not _rmdir_retry(d):
                left.append(str(d))
    return left


def _kill_cgroup_procs(d: Path) -> None:
    try:
        pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _rmdir_retry(d: Path, timeout: float = 5.0) -> bool:
    # A killed process leaves its cgroup only once it is reaped (by whoever reaps it): retry.
    def attempt() -> bool:
        try:
            d.rmdir()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True

    return wait_until(attempt, timeout=timeout, interval=0.05)
