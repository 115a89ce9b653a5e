"""Linux capabilities: names, the five sets, capset(2) and the bounding/ambient prctls."""

from __future__ import annotations

from hako.sys import ffi
from hako.sys.capnames import CAP_NAMES, CAP_NUMBERS
from hako.sys.libc import LIBC, check

PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _Header(ffi.Structure):
    _fields_ = [("version", ffi.c_uint32), ("pid", ffi.c_int)]


class _Data(ffi.Structure):
    _fields_ = [("effective", ffi.c_uint32), ("permitted", ffi.c_uint32), ("inheritable", ffi.c_uint32)]


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
        LIBC.prctl(ffi.c_int(option), ffi.c_ulong(arg2), ffi.c_ulong(arg3), ffi.c_ulong(0), ffi.c_ulong(0)),
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
    check(LIBC.capset(ffi.byref(hdr), data), "capset")


def set_ambient(names: list[str]) -> None:
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, what="CAP_AMBIENT_CLEAR_ALL")
    for n in names:
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NUMBERS[n], what=f"CAP_AMBIENT_RAISE {n}")


def supported_names() -> list[str]:
    return list(CAP_NAMES[: last_cap() + 1])
