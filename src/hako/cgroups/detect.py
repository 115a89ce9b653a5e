"""Which cgroup layout the host has (v1, hybrid, unified), read from /proc/self/mountinfo.

Only cgroup mounts matter; the first mount of each hierarchy wins, because bind mounts of
the same hierarchy further down (inside containers, say) show the same files.
"""

from __future__ import annotations

# Controllers a v1 hierarchy can carry; anything else in the super options is a mount flag.
V1_CONTROLLERS = frozenset(
    {
        "cpu",
        "cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "blkio",
        "pids",
        "net_cls",
        "net_prio",
        "hugetlb",
        "perf_event",
        "rdma",
        "misc",
    }
)


# Plain classes, not dataclasses: this module is on the runtime's and `stats`' start-up path,
# and the dataclasses import (inspect, re) costs more than the rest of hako.cgroups.
class Hierarchy:
    """One mounted cgroup hierarchy: where it is and what it carries."""

    __slots__ = ("mountpoint", "root", "version", "controllers")

    def __init__(self, mountpoint: str, root: str, version: int, controllers: tuple[str, ...] = ()) -> None:
        self.mountpoint = mountpoint
        self.root = root  # the mount's root inside the hierarchy (not "/" in a cgroup namespace)
        self.version = version
        self.controllers = controllers  # v1 only: ("cpu", "cpuacct") or ("name=systemd",)

    def __repr__(self) -> str:
        return f"Hierarchy({self.mountpoint!r}, {self.root!r}, {self.version}, {self.controllers!r})"


class Layout:
    __slots__ = ("v1", "unified")

    def __init__(self, v1: dict[str, Hierarchy] | None = None, unified: Hierarchy | None = None) -> None:
        self.v1 = v1 or {}  # controller (or name=x) -> hierarchy
        self.unified = unified

    @property
    def kind(self) -> str:
        if self.v1 and self.unified is not None:
            return "hybrid"
        if self.v1:
            return "v1"
        if self.unified is not None:
            return "v2"
        return "none"

    def v1_hierarchies(self) -> list[Hierarchy]:
        """Each v1 hierarchy once, even when it carries several controllers (cpu,cpuacct)."""
        seen: dict[str, Hierarchy] = {}
        for h in self.v1.values():
            seen.setdefault(h.mountpoint, h)
        return list(seen.values())


def _unescape(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def parse_mountinfo(text: str) -> Layout:
    v1: dict[str, Hierarchy] = {}
    unified: Hierarchy | None = None
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        rparts = right.split()
        if len(rparts) < 3 or rparts[0] not in ("cgroup", "cgroup2"):
            continue
        lparts = left.split()
        root, mountpoint = _unescape(lparts[3]), _unescape(lparts[4])
        if rparts[0] == "cgroup2":
            if unified is None:
                unified = Hierarchy(mountpoint, root, 2)
            continue
        opts = rparts[2].split(",")
        ctrls = tuple(o for o in opts if o in V1_CONTROLLERS or o.startswith("name="))
        if not ctrls:
            continue
        h = Hierarchy(mountpoint, root, 1, ctrls)
        for c in ctrls:
            v1.setdefault(c, h)
    return Layout(v1, unified)


_LAYOUT: Layout | None = None


def layout() -> Layout:
    global _LAYOUT
    if _LAYOUT is None:
        with open("/proc/self/mountinfo") as f:
            _LAYOUT = parse_mountinfo(f.read())
    return _LAYOUT


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup as {controller: path}; the unified hierarchy is under key ""."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        if not ctrls:
            out[""] = path
            continue
        for c in ctrls.split(","):
            out[c] = path
    return out


def own_cgroups(pid: int | str = "self") -> dict[str, str]:
    with open(f"/proc/{pid}/cgroup") as f:
        return parse_proc_cgroup(f.read())


def host_layout() -> str:
    """"v1", "hybrid" or "v2" (or "none" without any cgroup mount), for the engine's ``info``."""
    return layout().kind


def cgroup_version() -> int:
    """The version the container drivers use: 2 only on a pure unified host."""
    return 2 if layout().kind == "v2" else 1


def available_controllers() -> list[str]:
    """Controllers containers can use on this host (v1 mounts, or the v2 root's list), for
    the engine's ``info``."""
    lay = layout()
    if lay.kind == "v2":
        assert lay.unified is not None
        try:
            with open(f"{lay.unified.mountpoint}/cgroup.controllers") as f:
                return f.read().split()
        except OSError:
            return []
    return sorted(c for c in lay.v1 if not c.startswith("name="))
