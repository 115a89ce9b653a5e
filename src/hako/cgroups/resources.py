"""Validate the OCI runtime spec's ``linux.resources`` JSON into typed objects.

Every field left out stays ``None``, so ``update`` can change only what it was given (runc's
semantics). Type and range errors name the JSON path, e.g. ``linux.resources.memory.limit``.
The drivers (v1.py, v2.py) turn these objects into file writes.
"""

from __future__ import annotations

from hako.errors import ConfigError
from hako.records import dataclass, field

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1

_PAGE_UNITS = ("KB", "MB", "GB", "TB", "PB")


def _is_number(s: str) -> bool:
    return s.isascii() and s.isdigit()


def _is_cpu_list(s: str) -> bool:
    from hako import cpulist

    try:
        cpulist.parse(s)
    except ValueError:
        return False
    return True


def _is_page_size(s: str) -> bool:
    return s[-2:] in _PAGE_UNITS and _is_number(s[:-2])


@dataclass
class Cpu:
    shares: int | None = None
    quota: int | None = None
    burst: int | None = None
    period: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: int | None = None


@dataclass
class Memory:
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None
    kernel: int | None = None  # deprecated by the spec and the kernel: validated, never written
    kernel_tcp: int | None = None
    swappiness: int | None = None
    disable_oom_killer: bool | None = None
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None


@dataclass
class WeightDevice:
    major: int
    minor: int
    weight: int | None = None
    leaf_weight: int | None = None


@dataclass
class ThrottleDevice:
    major: int
    minor: int
    rate: int


# The four throttle lists: spec key, BlockIO attribute, v1 file, key in v2's io.max.
_THROTTLES = (
    ("throttleReadBpsDevice", "throttle_read_bps", "blkio.throttle.read_bps_device", "rbps"),
    ("throttleWriteBpsDevice", "throttle_write_bps", "blkio.throttle.write_bps_device", "wbps"),
    ("throttleReadIOPSDevice", "throttle_read_iops", "blkio.throttle.read_iops_device", "riops"),
    ("throttleWriteIOPSDevice", "throttle_write_iops", "blkio.throttle.write_iops_device", "wiops"),
)


@dataclass
class BlockIO:
    weight: int | None = None
    leaf_weight: int | None = None
    weight_device: list[WeightDevice] | None = None
    throttle_read_bps: list[ThrottleDevice] | None = None
    throttle_write_bps: list[ThrottleDevice] | None = None
    throttle_read_iops: list[ThrottleDevice] | None = None
    throttle_write_iops: list[ThrottleDevice] | None = None

    def throttles(self) -> list[tuple[str, str, str, list[ThrottleDevice]]]:
        """(spec key, v1 file, v2 io.max key, devices) of each throttle list that is set."""
        return [(key, v1, v2, getattr(self, attr)) for key, attr, v1, v2 in _THROTTLES if getattr(self, attr)]


@dataclass
class HugepageLimit:
    page_size: str  # as the kernel names it in file names: "2MB", "1GB"
    limit: int


@dataclass
class Network:
    class_id: int | None = None
    priorities: list[tuple[str, int]] | None = None


@dataclass
class DeviceRule:
    allow: bool
    type: str = "a"  # a (all), c (char), b (block)
    major: int = -1  # -1: any
    minor: int = -1
    access: str = "rwm"

    def v1_line(self) -> str:
        maj = "*" if self.major < 0 else str(self.major)
        mnr = "*" if self.minor < 0 else str(self.minor)
        if self.type == "a":
            return "a"
        return f"{self.type} {maj}:{mnr} {self.access}"


@dataclass
class Rdma:
    hca_handles: int | None = None
    hca_objects: int | None = None


@dataclass
class Resources:
    cpu: Cpu | None = None
    memory: Memory | None = None
    pids_limit: int | None = None
    block_io: BlockIO | None = None
    hugepage_limits: list[HugepageLimit] | None = None
    network: Network | None = None
    devices: list[DeviceRule] | None = None
    unified: dict[str, str] | None = None
    rdma: dict[str, Rdma] | None = field(default=None)


# -- small typed readers; each names the JSON path of what it rejects --------------------------


def _obj(v: Any, path: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ConfigError(path, f"must be an object, got {type(v).__name__}")
    return v


def _list(v: Any, path: str) -> list[Any]:
    if not isinstance(v, list):
        raise ConfigError(path, f"must be an array, got {type(v).__name__}")
    return v


def _int(d: dict[str, Any], key: str, path: str, lo: int = INT64_MIN, hi: int = INT64_MAX) -> int | None:
    if key not in d or d[key] is None:
        return None
    v = d[key]
    p = f"{path}.{key}"
    # JSON has one number type; accept 5.0 but not 5.5, never booleans.
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(p, f"must be an integer, got {type(v).__name__} {v!r}")
    if isinstance(v, float):
        if not v.is_integer():
            raise ConfigError(p, f"must be an integer, got {v!r}")
        v = int(v)
    if not lo <= v <= hi:
        raise ConfigError(p, f"{v} is out of range [{lo}, {hi}]")
    return int(v)


def _req_int(d: dict[str, Any], key: str, path: str, lo: int = INT64_MIN, hi: int = INT64_MAX) -> int:
    v = _int(d, key, path, lo, hi)
    if v is None:
        raise ConfigError(f"{path}.{key}", "is required")
    return v


def _bool(d: dict[str, Any], key: str, path: str) -> bool | None:
    if key not in d or d[key] is None:
        return None
    if not isinstance(d[key], bool):
        raise ConfigError(f"{path}.{key}", f"must be a boolean, got {type(d[key]).__name__}")
    return bool(d[key])


def _str(d: dict[str, Any], key: str, path: str) -> str | None:
    if key not in d or d[key] is None:
        return None
    if not isinstance(d[key], str):
        raise ConfigError(f"{path}.{key}", f"must be a string, got {type(d[key]).__name__}")
    return str(d[key])


# -- sections ----------------------------------------------------------------------------------


def _cpu(d: dict[str, Any], path: str) -> Cpu:
    c = Cpu(
        shares=_int(d, "shares", path, 0, UINT64_MAX),
        quota=_int(d, "quota", path),
        burst=_int(d, "burst", path, 0, UINT64_MAX),
        period=_int(d, "period", path, 0, UINT64_MAX),
        realtime_runtime=_int(d, "realtimeRuntime", path),
        realtime_period=_int(d, "realtimePeriod", path, 0, UINT64_MAX),
        cpus=_str(d, "cpus", path),
        mems=_str(d, "mems", path),
        idle=_int(d, "idle", path),
    )
    for key, val in (("cpus", c.cpus), ("mems", c.mems)):
        if val and not _is_cpu_list(val):
            raise ConfigError(f"{path}.{key}", f"{val!r} is not a list like '0-2,4'")
    if c.idle is not None and c.idle not in (0, 1):
        raise ConfigError(f"{path}.idle", f"must be 0 or 1, got {c.idle}")
    if c.quota is not None and c.quota < -1:
        raise ConfigError(f"{path}.quota", f"must be -1 (no limit) or positive, got {c.quota}")
    return c


def _memory(d: dict[str, Any], path: str) -> Memory:
    m = Memory(
        limit=_int(d, "limit", path),
        reservation=_int(d, "reservation", path),
        swap=_int(d, "swap", path),
        kernel=_int(d, "kernel", path),
        kernel_tcp=_int(d, "kernelTCP", path),
        swappiness=_int(d, "swappiness", path, 0, UINT64_MAX),
        disable_oom_killer=_bool(d, "disableOOMKiller", path),
        use_hierarchy=_bool(d, "useHierarchy", path),
        check_before_update=_bool(d, "checkBeforeUpdate", path),
    )
    for key, val in (("limit", m.limit), ("reservation", m.reservation), ("swap", m.swap),
                     ("kernelTCP", m.kernel_tcp)):
        if val is not None and val < -1:
            raise ConfigError(f"{path}.{key}", f"must be -1 (no limit) or a byte count, got {val}")
    if m.swappiness is not None and m.swappiness > 100:
        raise ConfigError(f"{path}.swappiness", f"must be in [0, 100], got {m.swappiness}")
    if m.limit is not None and m.swap is not None and m.limit > 0 and 0 < m.swap < m.limit:
        raise ConfigError(
            f"{path}.swap", f"memory+swap limit {m.swap} must be >= the memory limit {m.limit}"
        )
    return m


def _throttle(v: Any, path: str) -> list[ThrottleDevice]:
    out = []
    for i, e in enumerate(_list(v, path)):
        p = f"{path}[{i}]"
        e = _obj(e, p)
        out.append(ThrottleDevice(_req_int(e, "major", p, 0), _req_int(e, "minor", p, 0),
                                  _req_int(e, "rate", p, 0, UINT64_MAX)))
    return out


def _block_io(d: dict[str, Any], path: str) -> BlockIO:
    b = BlockIO(weight=_int(d, "weight", path, 0, 65535), leaf_weight=_int(d, "leafWeight", path, 0, 65535))
    for key, val in (("weight", b.weight), ("leafWeight", b.leaf_weight)):
        if val and not 10 <= val <= 1000:
            raise ConfigError(f"{path}.{key}", f"must be in [10, 1000], got {val}")
    if d.get("weightDevice") is not None:
        b.weight_device = []
        for i, e in enumerate(_list(d["weightDevice"], f"{path}.weightDevice")):
            p = f"{path}.weightDevice[{i}]"
            e = _obj(e, p)
            wd = WeightDevice(_req_int(e, "major", p, 0), _req_int(e, "minor", p, 0),
                              _int(e, "weight", p, 0, 65535), _int(e, "leafWeight", p, 0, 65535))
            if wd.weight is not None and wd.weight and not 10 <= wd.weight <= 1000:
                raise ConfigError(f"{p}.weight", f"must be in [10, 1000], got {wd.weight}")
            b.weight_device.append(wd)
    for key, attr, _v1, _v2 in _THROTTLES:
        if d.get(key) is not None:
            setattr(b, attr, _throttle(d[key], f"{path}.{key}"))
    return b


def _hugepages(v: Any, path: str) -> list[HugepageLimit]:
    out = []
    for i, e in enumerate(_list(v, path)):
        p = f"{path}[{i}]"
        e = _obj(e, p)
        size = _str(e, "pageSize", p)
        if not size or not _is_page_size(size):
            raise ConfigError(f"{p}.pageSize", f"{size!r} is not a page size like '2MB' or '1GB'")
        out.append(HugepageLimit(size, _req_int(e, "limit", p, 0, UINT64_MAX)))
    return out


def _network(d: dict[str, Any], path: str) -> Network:
    n = Network(class_id=_int(d, "classID", path, 0, 2**32 - 1))
    if d.get("priorities") is not None:
        n.priorities = []
        for i, e in enumerate(_list(d["priorities"], f"{path}.priorities")):
            p = f"{path}.priorities[{i}]"
            e = _obj(e, p)
            name = _str(e, "name", p)
            if not name or any(ch.isspace() for ch in name):
                raise ConfigError(f"{p}.name", f"{name!r} is not an interface name")
            n.priorities.append((name, _req_int(e, "priority", p, 0, 2**32 - 1)))
    return n


def _devices(v: Any, path: str) -> list[DeviceRule]:
    out = []
    for i, e in enumerate(_list(v, path)):
        p = f"{path}[{i}]"
        e = _obj(e, p)
        allow = _bool(e, "allow", p)
        if allow is None:
            raise ConfigError(f"{p}.allow", "is required")
        typ = _str(e, "type", p) or "a"
        if typ not in ("a", "b", "c"):
            raise ConfigError(f"{p}.type", f"must be 'a', 'b' or 'c', got {typ!r}")
        access = _str(e, "access", p) or "rwm"
        if not access or set(access) - set("rwm") or len(set(access)) != len(access):
            raise ConfigError(f"{p}.access", f"must be a combination of 'r', 'w', 'm', got {access!r}")
        major = _int(e, "major", p, -1)
        minor = _int(e, "minor", p, -1)
        out.append(DeviceRule(allow, typ, -1 if major is None else major, -1 if minor is None else minor,
                              "".join(ch for ch in "rwm" if ch in access)))
    return out


def _unified(v: Any, path: str) -> dict[str, str]:
    out = {}
    for k, val in _obj(v, path).items():
        p = f"{path}.{k}"
        if not isinstance(val, str):
            raise ConfigError(p, f"must be a string, got {type(val).__name__}")
        if not k or "/" in k or k.startswith(".") or "." not in k:
            raise ConfigError(p, f"{k!r} is not a cgroup interface file name")
        if k.startswith("cgroup."):
            raise ConfigError(p, f"{k!r}: cgroup core files are managed by the runtime")
        out[k] = val
    return out


def _rdma(v: Any, path: str) -> dict[str, Rdma]:
    out = {}
    for dev, e in _obj(v, path).items():
        p = f"{path}.{dev}"
        e = _obj(e, p)
        r = Rdma(_int(e, "hcaHandles", p, 0, 2**32 - 1), _int(e, "hcaObjects", p, 0, 2**32 - 1))
        if r.hca_handles is None and r.hca_objects is None:
            raise ConfigError(p, "needs hcaHandles or hcaObjects")
        out[dev] = r
    return out


def parse(raw: Any, path: str = "linux.resources") -> Resources:
    """Validate a LinuxResources JSON object; unknown keys are ignored like runc does."""
    if raw is None:
        return Resources()
    d = _obj(raw, path)
    r = Resources()
    if d.get("cpu") is not None:
        r.cpu = _cpu(_obj(d["cpu"], f"{path}.cpu"), f"{path}.cpu")
    if d.get("memory") is not None:
        r.memory = _memory(_obj(d["memory"], f"{path}.memory"), f"{path}.memory")
    if d.get("pids") is not None:
        r.pids_limit = _int(_obj(d["pids"], f"{path}.pids"), "limit", f"{path}.pids")
    if d.get("blockIO") is not None:
        r.block_io = _block_io(_obj(d["blockIO"], f"{path}.blockIO"), f"{path}.blockIO")
    if d.get("hugepageLimits") is not None:
        r.hugepage_limits = _hugepages(d["hugepageLimits"], f"{path}.hugepageLimits")
    if d.get("network") is not None:
        r.network = _network(_obj(d["network"], f"{path}.network"), f"{path}.network")
    if d.get("devices") is not None:
        r.devices = _devices(d["devices"], f"{path}.devices")
    if d.get("unified") is not None:
        r.unified = _unified(d["unified"], f"{path}.unified")
    if d.get("rdma") is not None:
        r.rdma = _rdma(d["rdma"], f"{path}.rdma")
    return r


def swap_v2(limit: int | None, swap: int | None) -> int | None:
    """OCI's swap is memory+swap (v1 memsw); v2's memory.swap.max is swap alone.

    Returns the memory.swap.max value (-1: max), or None when nothing should be written.
    """
    if swap is None or swap == 0:
        # Unlimited memory with swap unset means unlimited swap too (what v1 gives).
        return -1 if limit == -1 else None
    if swap == -1:
        return -1
    if limit is None or limit <= 0:
        raise ConfigError("linux.resources.memory.swap", "a swap limit needs a memory limit")
    if swap < limit:
        raise ConfigError("linux.resources.memory.swap", f"memory+swap {swap} must be >= limit {limit}")
    return swap - limit


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] to cpu.weight [1, 10000], the mapping runc and crun share."""
    if shares == 0:
        return 0
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] to io.weight [1, 10000]."""
    if weight == 0:
        return 0
    return 1 + ((weight - 10) * 9999) // 990


def _char(major: int, minor: int, access: str = "rwm") -> DeviceRule:
    return DeviceRule(True, "c", major, minor, access)


# What every container may use even when its spec denies all devices: the nodes the OCI spec
# requires a runtime to create (null, zero, full, random, urandom, tty, ptmx, console's pts),
# plus mknod of anything (the device still has to be allowed to be opened) and /dev/net/tun.
# The runtime appends these after the spec's rules, like runc does.
DEFAULT_ALLOWED_DEVICES: tuple[DeviceRule, ...] = (
    DeviceRule(True, "c", -1, -1, "m"),
    DeviceRule(True, "b", -1, -1, "m"),
    _char(1, 3),  # /dev/null
    _char(1, 5),  # /dev/zero
    _char(1, 7),  # /dev/full
    _char(1, 8),  # /dev/random
    _char(1, 9),  # /dev/urandom
    _char(5, 0),  # /dev/tty
    _char(5, 1),  # /dev/console
    _char(5, 2),  # /dev/ptmx
    _char(136, -1),  # /dev/pts/*
    _char(10, 200),  # /dev/net/tun
)


def default_device_rules_json() -> list[dict[str, Any]]:
    """DEFAULT_ALLOWED_DEVICES as spec JSON, for appending to ``linux.resources.devices``."""
    return [
        {"allow": r.allow, "type": r.type, "major": r.major, "minor": r.minor, "access": r.access}
        for r in DEFAULT_ALLOWED_DEVICES
    ]


def with_default_devices(
    resources: dict[str, Any] | None, device_nodes: Iterable[tuple[str, int, int]] = ()
) -> dict[str, Any]:
    """A copy of ``linux.resources`` whose device rules are what a container runtime applies:
    the spec's rules, then an allow rule for each device node it creates from
    ``linux.devices`` (type "c"/"b"/"u", major, minor; fifos need none), then
    DEFAULT_ALLOWED_DEVICES, in runc's order. Without this a spec's usual leading
    ``{"allow": false, "access": "rwm"}`` makes /dev/null unusable in the container."""
    out = dict(resources or {})
    rules = list(out.get("devices") or [])
    for typ, major, minor in device_nodes:
        if typ in ("c", "u", "b"):
            rules.append({"allow": True, "type": "b" if typ == "b" else "c", "major": major, "minor": minor,
                          "access": "rwm"})
    rules.extend(default_device_rules_json())
    out["devices"] = rules
    return out
