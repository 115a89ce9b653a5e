"""``hako stats``: CPU, memory, pids and block I/O read straight from each container's cgroup.

CPU percent needs two readings; they are taken 100 ms apart for all containers at once (then
once per refresh on a live display), instead of Docker's two-second wait.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from hako.errors import Conflict

SAMPLE = 0.1


def _manager(engine: Any, rec: dict[str, Any]) -> Any:
    from hako.cgroups import open_manager

    return open_manager(rec["Hako"]["CgroupsPath"], rec["Id"])


def _host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _reading(mgr: Any) -> tuple[float, dict[str, Any]]:
    return time.monotonic(), mgr.stats()


def summarize(rec: dict[str, Any], before: tuple[float, dict[str, Any]], after: tuple[float, dict[str, Any]],
              host_mem: int) -> dict[str, Any]:
    (t0, s0), (t1, s1) = before, after
    cpu0 = s0.get("cpu", {}).get("usage", {}).get("total", 0)
    cpu1 = s1.get("cpu", {}).get("usage", {}).get("total", 0)
    wall = max(t1 - t0, 1e-6) * 1e9
    mem = s1.get("memory", {})
    usage = int(mem.get("usage", {}).get("usage", 0))
    raw = mem.get("raw", {})
    usage -= int(raw.get("total_inactive_file", raw.get("inactive_file", 0)))
    limit = int(mem.get("usage", {}).get("limit", 0))
    if not limit or limit >= host_mem:
        limit = host_mem
    read = write = 0
    for e in s1.get("blkio", {}).get("ioServiceBytesRecursive") or []:
        op = str(e.get("op", "")).lower()
        if op == "read":
            read += int(e.get("value", 0))
        elif op == "write":
            write += int(e.get("value", 0))
    return {
        "ID": rec["Id"][:12], "Name": rec["Name"],
        "CPUPerc": round(max(cpu1 - cpu0, 0) / wall * 100, 2),
        "MemUsage": max(usage, 0), "MemLimit": limit,
        "MemPerc": round(max(usage, 0) / limit * 100, 2) if limit else 0.0,
        "PIDs": int(s1.get("pids", {}).get("current", 0)),
        "BlockRead": read, "BlockWrite": write,
    }


def container_stats(engine: Any, ref: str) -> dict[str, Any]:
    rec = engine.get(ref)
    if not engine.is_running(rec):
        raise Conflict(f"container {rec['Name']} is not running")
    mgr = _manager(engine, rec)
    before = _reading(mgr)
    time.sleep(SAMPLE)
    return summarize(rec, before, _reading(mgr), _host_memory())


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return str(n)


def _rows(engine: Any, refs: list[str], all_containers: bool) -> list[dict[str, Any]]:
    return [engine.get(r) for r in refs] if refs else [
        engine.get(i["Id"]) for i in engine.list_containers(all_containers=all_containers)]


def sample_all(engine: Any, recs: list[dict[str, Any]], prev: dict[str, Any] | None = None,
               wait: float = SAMPLE) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    host_mem = _host_memory()
    mgrs = {}
    for rec in recs:
        if engine.is_running(rec):
            mgrs[rec["Id"]] = _manager(engine, rec)
    readings: dict[str, Any] = {}
    if prev is None:
        prev = {}
        for cid, mgr in mgrs.items():
            try:
                prev[cid] = _reading(mgr)
            except Exception:  # noqa: BLE001 - the container may have just exited
                continue
        time.sleep(wait)
    out = []
    for rec in recs:
        cid = rec["Id"]
        if cid in mgrs and cid in prev:
            try:
                readings[cid] = _reading(mgrs[cid])
            except Exception:  # noqa: BLE001
                continue
            out.append(summarize(rec, prev[cid], readings[cid], host_mem))
        else:
            out.append({"ID": cid[:12], "Name": rec["Name"], "CPUPerc": 0.0, "MemUsage": 0, "MemLimit": 0,
                        "MemPerc": 0.0, "PIDs": 0, "BlockRead": 0, "BlockWrite": 0})
    return out, readings


def _display(row: dict[str, Any]) -> dict[str, str]:
    return {"CONTAINER ID": row["ID"], "NAME": row["Name"], "CPU %": f"{row['CPUPerc']:.2f}%",
            "MEM USAGE / LIMIT": f"{human(row['MemUsage'])} / {human(row['MemLimit'])}",
            "MEM %": f"{row['MemPerc']:.2f}%", "BLOCK I/O": f"{human(row['BlockRead'])} / {human(row['BlockWrite'])}",
            "PIDS": str(row["PIDs"])}


def run_stats(engine: Any, refs: list[str], all_containers: bool, no_stream: bool, fmt: str | None) -> int:
    recs = _rows(engine, refs, all_containers)
    live = not no_stream and sys.stdout.isatty() and fmt is None
    rows, readings = sample_all(engine, recs)
    if not live:
        if fmt in ("json", "{{json .}}"):
            for r in rows:
                print(json.dumps(r))
        else:
            lines = [_display(r) for r in rows]
            cols = list(_display(rows[0]).keys()) if rows else list(_display(_blank()).keys())
            widths = {c: max([len(c)] + [len(line[c]) for line in lines]) for c in cols}
            print("   ".join(c.ljust(widths[c]) for c in cols).rstrip())
            for line in lines:
                print("   ".join(line[c].ljust(widths[c]) for c in cols).rstrip())
        if no_stream or fmt is not None or not sys.stdout.isatty():
            return 0
    from rich.live import Live
    from rich.table import Table

    def table(rows: list[dict[str, Any]]) -> Table:
        t = Table(box=None, header_style="bold")
        for c in _display(_blank()):
            t.add_column(c)
        for r in rows:
            t.add_row(*_display(r).values())
        return t

    try:
        with Live(table(rows), refresh_per_second=2, screen=False) as view:
            while True:
                time.sleep(1.0)
                recs = _rows(engine, refs, all_containers)
                rows, readings = sample_all(engine, recs, prev=readings)
                view.update(table(rows))
    except KeyboardInterrupt:
        return 0


def _blank() -> dict[str, Any]:
    return {"ID": "", "Name": "", "CPUPerc": 0.0, "MemUsage": 0, "MemLimit": 0, "MemPerc": 0.0, "PIDs": 0,
            "BlockRead": 0, "BlockWrite": 0}
