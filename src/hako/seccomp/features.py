"""The ``linux.seccomp`` object of ``hako-runtime features`` (runtime-spec features.md).

``knownFlags`` are the flags hako understands; ``supportedFlags`` those this kernel accepts,
probed with seccomp(SECCOMP_SET_MODE_FILTER, flag, NULL): the kernel checks the flags before
it reads the program, so EFAULT means "known flag" and EINVAL "unknown" — nothing is loaded.
"""

from __future__ import annotations

import errno
from typing import Any

from hako.seccomp import libseccomp as scmp
from hako.seccomp.profile import ACTIONS, ARCHES, FLAGS, OPERATORS
from hako.sys import ffi

_KERNEL_FLAG_BITS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1 << 0,
    "SECCOMP_FILTER_FLAG_LOG": 1 << 1,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 1 << 2,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 1 << 5,
}
# WAIT_KILLABLE_RECV is only valid together with NEW_LISTENER.
_NEW_LISTENER = 1 << 3


def supported_flags() -> list[str]:
    nr = scmp.syscall_resolve_name("seccomp")
    if nr is None or nr < 0:
        return []
    libc = ffi.CDLL(None, use_errno=True)
    libc.syscall.restype = ffi.c_long
    found = []
    for name, bit in _KERNEL_FLAG_BITS.items():
        flags = bit | (_NEW_LISTENER if name == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" else 0)
        rc = libc.syscall(ffi.c_long(nr), ffi.c_long(1), ffi.c_long(flags), ffi.c_void_p(None))
        if rc == -1 and ffi.get_errno() == errno.EFAULT:
            found.append(name)
    return sorted(found)


def supported_archs() -> list[str]:
    return sorted(a for a, name in ARCHES.items() if a != "SCMP_ARCH_NATIVE" and scmp.arch_resolve_name(name) is not None)


def features() -> dict[str, Any]:
    """``{"enabled", "actions", "operators", "archs", "knownFlags", "supportedFlags"}``."""
    try:
        scmp.lib()
    except Exception:  # noqa: BLE001 - no libseccomp: report seccomp as unavailable
        return {"enabled": False}
    return {
        "enabled": True,
        "actions": sorted(ACTIONS),
        "operators": sorted(OPERATORS),
        "archs": supported_archs(),
        "knownFlags": sorted(FLAGS),
        "supportedFlags": supported_flags(),
    }
