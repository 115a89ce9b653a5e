"""Fixtures for the cgroups tests (the runtime's tests use them too).

Every cgroup a test makes lives under one parent of our own, ``/hako-test-<pid>`` in every
hierarchy, removed at the end of the session together with leftovers of dead sessions. The
cgroups this test process itself runs in (the sandbox's, e.g. memory:/process_api/<id>) are
fenced off through HAKO_CGROUP_PROTECT, which hako.cgroups honours, so a test that forgets an
absolute cgroupsPath fails instead of creating cgroups there.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hako.cgroups.base import CgroupManager, rmdir_tree

PREFIX = "hako-test-"


def _protected_prefixes() -> list[str]:
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        return []
    out = set()
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        top = path.strip("/").split("/")[0]
        if top:
            out.add("/" + top)
    return sorted(out)


if _protected_prefixes():
    _cur = [p for p in os.environ.get("HAKO_CGROUP_PROTECT", "").split(":") if p]
    os.environ["HAKO_CGROUP_PROTECT"] = ":".join(sorted(set(_cur) | set(_protected_prefixes())))


def cgroup_mounts() -> list[str]:
    """Mount points of every cgroup hierarchy (v1 and the unified one)."""
    out = []
    seen = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[:1] in (["cgroup"], ["cgroup2"]):
            mnt = left.split()[4]
            if mnt not in seen:
                seen.add(mnt)
                out.append(mnt)
    return out


def remove_cgroup_tree(top: str, timeout: float = 5.0) -> None:
    """Kill what is left inside ``top`` (only our test processes can be there), thaw, rmdir."""
    if not os.path.isdir(top):
        return
    for dirpath, _, _ in os.walk(top):
        for f, val in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
            p = os.path.join(dirpath, f)
            if os.path.exists(p):
                try:
                    Path(p).write_text(val)
                except OSError:
                    pass
        try:
            pids = Path(dirpath, "cgroup.procs").read_text().split()
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    rmdir_tree(top, time.monotonic() + timeout)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def remove_stale_parents() -> None:
    """Parents left by sessions that died: /hako-test-<pid>[-...] with a dead pid."""
    for mnt in cgroup_mounts():
        try:
            names = os.listdir(mnt)
        except OSError:
            continue
        for name in names:
            if not name.startswith(PREFIX):
                continue
            pid_s = name[len(PREFIX):].split("-")[0]
            if pid_s.isdigit() and not _alive(int(pid_s)):
                remove_cgroup_tree(os.path.join(mnt, name))


@pytest.fixture(scope="session")
def cgroup_parent() -> Iterator[str]:
    """An absolute cgroupsPath prefix of our own, e.g. "/hako-test-1234"; put containers'
    and tests' cgroups below it ("<parent>/<name>"). Removed in every hierarchy at the end."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create cgroups")
    remove_stale_parents()
    parent = f"/{PREFIX}{os.getpid()}"
    yield parent
    for mnt in cgroup_mounts():
        remove_cgroup_tree(mnt + parent)


_counter = itertools.count()


@pytest.fixture
def cgroup_path(cgroup_parent: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh absolute cgroupsPath below ``cgroup_parent``; removed after the test."""
    name = "".join(ch if ch.isalnum() else "-" for ch in request.node.name)[:40]
    path = f"{cgroup_parent}/{name}-{next(_counter)}"
    yield path
    for mnt in cgroup_mounts():
        remove_cgroup_tree(mnt + path)


# -- processes to put into test cgroups (the kernel tests of v1.py and v2.py) ----------------
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Proc:
    """A process that waits for a line on stdin before running ``code``, so it can be put in
    the cgroup first."""

    def __init__(self, code: str) -> None:
        self.p = subprocess.Popen(
            [PY, "-S", "-c", "import sys\nsys.stdin.readline()\n" + code],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.pid = self.p.pid

    def go(self) -> None:
        assert self.p.stdin
        self.p.stdin.write(b"go\n")
        self.p.stdin.flush()

    def out(self, timeout: float = 30) -> str:
        o, _ = self.p.communicate(timeout=timeout)
        return o.decode()

    def wait(self, timeout: float) -> int:
        return self.p.wait(timeout)

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Processes a test started; killed (by their PID) and reaped at teardown."""
    started: list[Proc] = []
    yield started
    for p in started:
        p.kill()


def start(procs: list[Proc], m: CgroupManager, code: str) -> Proc:
    p = Proc(code)
    procs.append(p)
    m.apply(p.pid)
    return p


def utime(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[11])


def check_freeze_and_thaw(mgr: CgroupManager, procs: list[Proc]) -> None:
    """A busy loop in ``mgr`` gets no CPU while frozen and runs again once thawed."""
    p = start(procs, mgr, "while True: pass")
    p.go()
    wait_until(lambda: utime(p.pid) > 0, "the loop to use CPU")
    mgr.freeze()
    assert mgr.is_frozen()
    t0 = utime(p.pid)
    time.sleep(0.3)  # a measurement window, not synchronisation
    assert utime(p.pid) == t0
    mgr.thaw()
    assert not mgr.is_frozen()
    wait_until(lambda: utime(p.pid) > t0, "the loop to run again")
