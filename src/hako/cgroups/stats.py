"""Resource usage in the shape of runc's ``events --stats`` "data" object.

Each reader opens only the files that feed a field of that shape, with os.open/os.read, since
the engine's ``stats`` samples every container once a second.
"""

from __future__ import annotations

import os

from hako.cgroups.base import read_int, read_keyed, read_opt

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time
if TYPE_CHECKING:
    from typing import Any

UNLIMITED = 2**64 - 1


_SIZES: tuple[str, ...] | None = None


def hugepage_sizes() -> tuple[str, ...]:
    """Page sizes as the cgroup files name them ("2MB", "1GB"), from /sys/kernel/mm/hugepages."""
    global _SIZES
    if _SIZES is None:
        _SIZES = _read_hugepage_sizes()
    return _SIZES


def _read_hugepage_sizes() -> tuple[str, ...]:
    out = []
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return ()
    for n in sorted(names):
        kb = int(n.removeprefix("hugepages-").removesuffix("kB"))
        for unit, size in (("GB", 1 << 20), ("MB", 1 << 10), ("KB", 1)):
            if kb % size == 0:
                out.append(f"{kb // size}{unit}")
                break
    return tuple(out)


_CLK_TCK = 0


def _clk_tck() -> int:
    global _CLK_TCK
    if not _CLK_TCK:
        _CLK_TCK = os.sysconf("SC_CLK_TCK")
    return _CLK_TCK


def _entry(d: str, prefix: str) -> dict[str, int]:
    return {
        "limit": read_int(f"{d}/{prefix}.limit_in_bytes"),
        "usage": read_int(f"{d}/{prefix}.usage_in_bytes"),
        "max": read_int(f"{d}/{prefix}.max_usage_in_bytes"),
        "failcnt": read_int(f"{d}/{prefix}.failcnt"),
    }


def _blkio_v1(text: str | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue  # the "Total N" line
        maj, _, mnr = parts[0].partition(":")
        out.append({"major": int(maj), "minor": int(mnr), "op": parts[1], "value": int(parts[2])})
    return out


def _empty() -> dict[str, Any]:
    return {
        "cpu": {"usage": {"total": 0, "percpu": [], "kernel": 0, "user": 0},
                "throttling": {"periods": 0, "throttledPeriods": 0, "throttledTime": 0}},
        "memory": {},
        "pids": {"current": 0, "limit": 0},
        "blkio": {},
        "hugetlb": {},
    }


def stats_v1(dirs: dict[str, str], unified: str | None = None) -> dict[str, Any]:
    """``dirs``: controller -> directory."""
    out = _empty()
    d = dirs.get("cpuacct")
    if d:
        usage = out["cpu"]["usage"]
        usage["total"] = read_int(f"{d}/cpuacct.usage")
        # usage_all splits each CPU's time into user and system, but from tick samples; the
        # precise per-CPU totals are usage_percpu's.
        per_user: list[int] = []
        per_kernel: list[int] = []
        for line in (read_opt(f"{d}/cpuacct.usage_all") or "").splitlines()[1:]:
            parts = line.split()
            if len(parts) == 3:
                per_user.append(int(parts[1]))
                per_kernel.append(int(parts[2]))
        percpu = read_opt(f"{d}/cpuacct.usage_percpu")
        usage["percpu"] = [int(x) for x in percpu.split()] if percpu else []
        usage["percpu_kernel"] = per_kernel
        usage["percpu_user"] = per_user
        ticks = read_keyed(f"{d}/cpuacct.stat")
        ns_per_tick = 1_000_000_000 // _clk_tck()
        usage["kernel"] = ticks.get("system", 0) * ns_per_tick
        usage["user"] = ticks.get("user", 0) * ns_per_tick
    d = dirs.get("cpu")
    if d:
        cs = read_keyed(f"{d}/cpu.stat")
        out["cpu"]["throttling"] = {
            "periods": cs.get("nr_periods", 0),
            "throttledPeriods": cs.get("nr_throttled", 0),
            "throttledTime": cs.get("throttled_time", 0),
        }
    d = dirs.get("memory")
    if d:
        raw = read_keyed(f"{d}/memory.stat")
        out["memory"] = {
            "cache": raw.get("cache", 0),
            "usage": _entry(d, "memory"),
            "swap": _entry(d, "memory.memsw"),
            "kernel": _entry(d, "memory.kmem"),
            "kernelTCP": _entry(d, "memory.kmem.tcp"),
            "raw": raw,
        }
    d = dirs.get("pids")
    if d:
        out["pids"] = {"current": read_int(f"{d}/pids.current"), "limit": read_int(f"{d}/pids.max")}
    d = dirs.get("blkio")
    if d:
        # CFQ's files are gone from current kernels; the throttle layer counts every bio.
        out["blkio"] = {
            "ioServiceBytesRecursive": _blkio_v1(read_opt(f"{d}/blkio.throttle.io_service_bytes_recursive")),
            "ioServicedRecursive": _blkio_v1(read_opt(f"{d}/blkio.throttle.io_serviced_recursive")),
        }
    d = dirs.get("hugetlb")
    if d:
        for size in hugepage_sizes():
            out["hugetlb"][size] = {
                "usage": read_int(f"{d}/hugetlb.{size}.usage_in_bytes"),
                "max": read_int(f"{d}/hugetlb.{size}.max_usage_in_bytes"),
                "failcnt": read_int(f"{d}/hugetlb.{size}.failcnt"),
            }
    elif unified:
        out["hugetlb"] = _hugetlb_v2(unified)
    return out


def _limit_v2(path: str) -> int:
    s = read_opt(path)
    if s is None:
        return 0
    s = s.strip()
    return UNLIMITED if s == "max" else int(s or 0)


def _hugetlb_v2(d: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in hugepage_sizes():
        cur = read_opt(f"{d}/hugetlb.{size}.current")
        if cur is None:
            continue
        out[size] = {
            "usage": int(cur.strip() or 0),
            "max": _limit_v2(f"{d}/hugetlb.{size}.max"),
            "failcnt": read_keyed(f"{d}/hugetlb.{size}.events").get("max", 0),
        }
    return out


def _io_v2(text: str | None) -> dict[str, Any]:
    bytes_: list[dict[str, Any]] = []
    ios: list[dict[str, Any]] = []
    for line in (text or "").splitlines():
        dev, *kvs = line.split()
        maj, _, mnr = dev.partition(":")
        vals = dict(kv.split("=", 1) for kv in kvs if "=" in kv)
        base = {"major": int(maj), "minor": int(mnr)}
        for key, op, dest in (("rbytes", "Read", bytes_), ("wbytes", "Write", bytes_),
                              ("rios", "Read", ios), ("wios", "Write", ios)):
            if key in vals:
                dest.append({**base, "op": op, "value": int(vals[key])})
    return {"ioServiceBytesRecursive": bytes_, "ioServicedRecursive": ios}


def stats_v2(d: str) -> dict[str, Any]:
    out = _empty()
    cs = read_keyed(f"{d}/cpu.stat")
    out["cpu"] = {
        "usage": {
            "total": cs.get("usage_usec", 0) * 1000,
            "percpu": [],
            "kernel": cs.get("system_usec", 0) * 1000,
            "user": cs.get("user_usec", 0) * 1000,
        },
        "throttling": {
            "periods": cs.get("nr_periods", 0),
            "throttledPeriods": cs.get("nr_throttled", 0),
            "throttledTime": cs.get("throttled_usec", 0) * 1000,
        },
    }
    cur = read_opt(f"{d}/memory.current")
    if cur is not None:
        usage = int(cur.strip() or 0)
        limit = _limit_v2(f"{d}/memory.max")
        raw = read_keyed(f"{d}/memory.stat")
        swap_cur = read_opt(f"{d}/memory.swap.current")
        swap_max = _limit_v2(f"{d}/memory.swap.max")
        swap_usage = int(swap_cur.strip() or 0) if swap_cur is not None else 0
        out["memory"] = {
            "cache": raw.get("file", 0),
            "usage": {
                "limit": limit,
                "usage": usage,
                "max": read_int(f"{d}/memory.peak"),
                "failcnt": read_keyed(f"{d}/memory.events").get("max", 0),
            },
            # Reported as memory+swap, the v1 memsw meaning that clients of runc expect.
            "swap": {
                "limit": UNLIMITED if UNLIMITED in (limit, swap_max) else limit + swap_max,
                "usage": usage + swap_usage,
                "max": 0,
                "failcnt": 0,
            },
            "raw": raw,
        }
    pc = read_opt(f"{d}/pids.current")
    if pc is not None:
        out["pids"] = {"current": int(pc.strip() or 0), "limit": read_int(f"{d}/pids.max")}
    io = read_opt(f"{d}/io.stat")
    if io is not None:
        out["blkio"] = _io_v2(io)
    out["hugetlb"] = _hugetlb_v2(d)
    return out
