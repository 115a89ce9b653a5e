"""Paying the kernel's first cgroup migration early, in a throwaway child process.

Moving a task into a v1 cgroup takes the kernel's cgroup_threadgroup_rwsem for writing, and the
first writer after a quiet spell waits a full RCU grace period (7-25 ms here) before it gets it;
writers within the next grace period do not wait. ``start`` forks, as early as a command knows
the container's cgroup, a child that moves itself into that cgroup in a hierarchy where
membership changes nothing (``name=systemd``; never freezer or pids) and exits; the command
goes on loading modules and state on the other CPU, and ``finish`` (just before the real move
of the container's process) waits for the child, so the real move finds the lock warm. A
thread cannot do this: it would wait for the GIL, which module loading holds (measured: no
gain). Used by ``exec``, whose imports and state loading (~7 ms) it overlaps: the move itself
then takes ~0.4 ms instead of 10-15, of which the remainder of the child's wait is still paid.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    from typing import Any


def pick_dir(cgroup: dict[str, Any]) -> str | None:
    """The directory to move into, from a v1 manager's ``save()``; None on v2 or without one."""
    if cgroup.get("version") != 1:
        return None
    paths = cgroup.get("paths") or {}
    keys = [k for k in paths if not {"freezer", "pids"} & set(k.split(","))]
    key = next((k for k in keys if k.startswith("name=")), None) or next(iter(keys), None)
    return None if key is None else str(paths[key][1])


def start(cgroup_dir: str | None) -> int:
    """Fork the warming child; its pid (0: none, e.g. the directory is gone)."""
    if not cgroup_dir:
        return 0
    procs = cgroup_dir + "/cgroup.procs"
    try:
        pid = os.fork()
    except OSError:
        return 0
    if pid != 0:
        return pid
    code = 0
    try:
        fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
        os.write(fd, b"0")  # "0": the writer itself, its whole thread group: the global lock
    except BaseException:  # noqa: BLE001 - a head start only: the real move reports errors
        code = 1
    os._exit(code)


def finish(pid: int) -> None:
    """Wait for the warming child (it has paid, or is paying, the grace period)."""
    if pid <= 0:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
