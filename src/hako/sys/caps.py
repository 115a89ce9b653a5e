"""Linux capabilities: names, the five sets, capset(2) and the bounding/ambient prctls."""

from __future__ import annotations

import ctypes

from hako.sys.libc import LIBC, check

CAP_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
CAP_NUMBERS = {name: i for i, name in enumerate(CAP_NAMES)}

PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAP_NAMES) - 1


def _mask(names: list[str]) -> int:
    m = 0
    for n in names:
        m |= 1 << CAP_NUMBERS[n]
    return m


def _prctl(option: int, arg2: int = 0, arg3: int = 0, what: str = "") -> int:
    return check(
        LIBC.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(0), ctypes.c_ulong(0)),
        "prctl",
        what,
    )


def drop_bounding(keep: list[str]) -> None:
    """Drop every capability not in ``keep`` from the bounding set (needs CAP_SETPCAP)."""
    keep_mask = _mask(keep)
    for cap in range(last_cap() + 1):
        if not keep_mask & (1 << cap) and _prctl(PR_CAPBSET_READ, cap, what="CAPBSET_READ") == 1:
            _prctl(PR_CAPBSET_DROP, cap, what=f"CAPBSET_DROP {cap}")


def set_keepcaps(on: bool) -> None:
    _prctl(PR_SET_KEEPCAPS, 1 if on else 0, what="SET_KEEPCAPS")


def capset(effective: list[str], permitted: list[str], inheritable: list[str]) -> None:
    """Set the three per-thread sets at once (capset with the 64-bit v3 layout)."""
    hdr = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    e, p, i = _mask(effective), _mask(permitted), _mask(inheritable)
    data = (_Data * 2)(
        _Data(e & 0xFFFFFFFF, p & 0xFFFFFFFF, i & 0xFFFFFFFF), _Data(e >> 32, p >> 32, i >> 32)
    )
    check(LIBC.capset(ctypes.byref(hdr), data), "capset")


def set_ambient(names: list[str]) -> None:
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, what="CAP_AMBIENT_CLEAR_ALL")
    for n in names:
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NUMBERS[n], what=f"CAP_AMBIENT_RAISE {n}")


def supported_names() -> list[str]:
    return list(CAP_NAMES[: last_cap() + 1])
