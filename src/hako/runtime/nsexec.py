"""Forking into the container's namespaces: runtime -> bootstrap (C1) -> container process (C2).

C1 is made non-dumpable first (CVE-2019-5736: nothing in the container may open our
interpreter through /proc/<pid>/exe), waits until the runtime has put it in the cgroup (so a
new cgroup namespace is rooted there), joins namespaces given by path (user first: it grants
the capabilities needed to join the others), creates the user namespace alone and lets the
runtime write the id maps over the channel, then unshares the rest. A new pid or time
namespace only applies to children, so C1 forks C2, reports C2's host pid and exits: C2 is
re-parented to the caller's subreaper (conmon, the shim) or to ``run`` when it is one.
"""

from __future__ import annotations

import os
import sys

from hako.records import dataclass, field
from hako.runtime.channel import Channel
from hako.spec.runtime import IdMapping, TimeOffset

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    from collections.abc import Callable


# Joining order: user first, then the rest; mount last because joining it changes our root
# (all fds are opened before the first setns anyway).
JOIN_ORDER = ("user", "cgroup", "ipc", "uts", "network", "pid", "time", "mount")


@dataclass
class NsPlan:
    join: list[tuple[str, str]] = field(default_factory=list)  # (type, path)
    new: list[str] = field(default_factory=list)  # types to unshare
    time_offsets: dict[str, TimeOffset] = field(default_factory=dict)

    @property
    def new_user(self) -> bool:
        return "user" in self.new


def write_id_maps(pid: int, uid_maps: list[IdMapping], gid_maps: list[IdMapping]) -> None:
    def fmt(maps: list[IdMapping]) -> str:
        return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)

    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(fmt(uid_maps))
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(fmt(gid_maps))


def _join(plan: NsPlan) -> None:
    from hako.sys import proc as sp

    fds = []
    for t in JOIN_ORDER:
        for jt, path in plan.join:
            if jt == t:
                try:
                    fds.append((t, os.open(path, os.O_RDONLY | os.O_CLOEXEC), path))
                except OSError as e:
                    raise OSError(e.errno, f"open namespace {t} {path}: {e.strerror}") from None
    for t, fd, path in fds:
        sp.setns(fd, sp.NAMESPACES[t][0], f"{t} {path}")
        os.close(fd)
        if t == "user":
            _become_root()


def _become_root() -> None:
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError:
        pass  # 0 not mapped: stay whoever we are


def bootstrap(chan: Channel, plan: NsPlan, child: Callable[[], None],
              prepare: Callable[[], None] | None = None) -> None:
    """Runs in C1. Never returns: exits after forking C2, which runs ``child`` then must exec.

    ``prepare`` runs before waiting for "go", while the runtime is still moving C1 into its
    cgroup (a wait for the kernel, often over 10 ms, that the preparation then overlaps).
    """
    try:
        # Here, not at module level: the runtime's own process loads no libc binding.
        from hako.sys import proc as sp

        sp.set_dumpable(False)
        if prepare is not None:
            prepare()
        msg = chan.recv()
        if msg is None or msg["t"] != "go":
            os._exit(1)
        _join(plan)
        if plan.new_user:
            sp.unshare(sp.CLONE_NEWUSER)
            chan.send("userns")
            msg = chan.recv()
            if msg is None or msg["t"] != "mapped":
                os._exit(1)
            _become_root()
        flags = 0
        for t in plan.new:
            if t != "user":
                flags |= sp.NAMESPACES[t][0]
        if flags:
            sp.unshare(flags)
        if "time" in plan.new and plan.time_offsets:
            with open("/proc/self/timens_offsets", "w") as f:
                for clock, off in plan.time_offsets.items():
                    f.write(f"{clock} {off.secs} {off.nanosecs}\n")
        pid = os.fork()
        if pid == 0:
            run_child(chan, child)
        chan.send("pid", pid=pid)
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - report anything, never return into the CLI
        chan.send("error", msg=_describe(e))
        os._exit(1)


def run_child(chan: Channel, child: Callable[[], None]) -> None:
    try:
        child()
        chan.send("error", msg="container process returned without exec")
    except BaseException as e:  # noqa: BLE001
        chan.send("error", msg=_describe(e))
    finally:
        os._exit(1)


def _describe(e: BaseException) -> str:
    from hako.errors import HakoError

    if isinstance(e, HakoError):
        return str(e)
    if isinstance(e, OSError):
        text = (e.strerror or str(e)).lower()
        return f"{e.filename}: {text}" if e.filename else text
    if os.environ.get("HAKO_RUNTIME_TRACEBACK"):
        import traceback

        traceback.print_exc(file=sys.stderr)
    return f"{type(e).__name__}: {e}"
