"""``update``: change a live container's cgroup limits (LinuxResources JSON or runc's flags)."""

from __future__ import annotations

import json

from hako.errors import ConfigError, HakoError
from hako.runtime.argv import Parsed

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    from typing import Any

# flag -> (section, key)
_MAP = {
    "memory": ("memory", "limit"),
    "memory-reservation": ("memory", "reservation"),
    "memory-swap": ("memory", "swap"),
    "kernel-memory": ("memory", "kernel"),
    "kernel-memory-tcp": ("memory", "kernelTCP"),
    "cpu-shares": ("cpu", "shares"),
    "cpu-quota": ("cpu", "quota"),
    "cpu-period": ("cpu", "period"),
    "cpu-rt-period": ("cpu", "realtimePeriod"),
    "cpu-rt-runtime": ("cpu", "realtimeRuntime"),
    "cpuset-cpus": ("cpu", "cpus"),
    "cpuset-mems": ("cpu", "mems"),
    "pids-limit": ("pids", "limit"),
    "blkio-weight": ("blockIO", "weight"),
}
FLAGS = list(_MAP)
_STRINGS = {"cpuset-cpus", "cpuset-mems"}
_SIZES = {"memory", "memory-reservation", "memory-swap", "kernel-memory", "kernel-memory-tcp"}


def _size(s: str, flag: str) -> int:
    s = s.strip().lower()
    if s == "-1":
        return -1
    mult = 1
    for suffix, m in (("kib", 1024), ("mib", 1024**2), ("gib", 1024**3), ("kb", 1024), ("mb", 1024**2),
                      ("gb", 1024**3), ("k", 1024), ("m", 1024**2), ("g", 1024**3), ("b", 1)):
        if s.endswith(suffix):
            s, mult = s[: -len(suffix)], m
            break
    try:
        return int(float(s) * mult)
    except ValueError:
        raise ConfigError(f"--{flag}", f"invalid size {s!r}") from None


def resources_from(p: Parsed) -> dict[str, Any]:
    res: dict[str, Any] = {}
    path = p.opt("resources")
    if path:
        import sys

        try:
            text = sys.stdin.read() if path == "-" else open(path).read()  # noqa: SIM115
            data = json.loads(text)
        except OSError as e:
            raise HakoError(f"{path}: {e.strerror}") from None
        except ValueError as e:
            raise ConfigError("", f"{path}: not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError("", f"{path}: resources must be a JSON object")
        res = data
    for flag, (section, key) in _MAP.items():
        v = p.opt(flag)
        if v is None:
            continue
        if flag in _STRINGS:
            val: Any = v
        elif flag in _SIZES:
            val = _size(v, flag)
        else:
            try:
                val = int(v)
            except ValueError:
                raise ConfigError(f"--{flag}", f"invalid value {v!r}") from None
        res.setdefault(section, {})[key] = val
    return res


def update(root: str, cid: str, p: Parsed) -> None:
    from hako.runtime.state import Container

    res = resources_from(p)
    c = Container(root, cid)
    c.lock()
    try:
        c.load()
        if c.status() == "stopped":
            raise HakoError(f"container {cid}: container not running")
        cgm = c.cgroup_manager()
        if cgm is None:
            raise HakoError(f"container {cid} has no cgroup to update")
        cgm.update(res)
    finally:
        c.unlock()
