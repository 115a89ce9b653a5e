"""Process-level syscalls the runtime needs: prctl flags, namespaces, hostnames, close_range, /proc."""

from __future__ import annotations

import _struct  # here, not in sched_setattr: that runs after pivot_root, where no module can be loaded
import os

from hako.errors import KernelError
from hako.sys import ffi
from hako.sys.libc import LIBC, check, syscall
from hako.sys.procfs import is_alive, start_time, stat_fields

__all__ = ["is_alive", "start_time", "stat_fields"]

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# OCI namespace type -> (clone flag, /proc/<pid>/ns/<name>)
NAMESPACES = {
    "user": (CLONE_NEWUSER, "user"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "network": (CLONE_NEWNET, "net"),
    "pid": (CLONE_NEWPID, "pid"),
    "mount": (CLONE_NEWNS, "mnt"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
SYS_CLOSE_RANGE = 436


def prctl(option: int, arg2: int = 0, what: str = "") -> int:
    return check(
        LIBC.prctl(ffi.c_int(option), ffi.c_ulong(arg2), ffi.c_ulong(0), ffi.c_ulong(0), ffi.c_ulong(0)),
        "prctl",
        what,
    )


def set_dumpable(on: bool) -> None:
    prctl(PR_SET_DUMPABLE, 1 if on else 0, "SET_DUMPABLE")


def set_child_subreaper() -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1, "SET_CHILD_SUBREAPER")


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1, "SET_NO_NEW_PRIVS")


def set_pdeathsig(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig, "SET_PDEATHSIG")


def unshare(flags: int) -> None:
    check(LIBC.unshare(ffi.c_int(flags)), "unshare", hex(flags))


def setns(fd: int, nstype: int, detail: str = "") -> None:
    check(LIBC.setns(ffi.c_int(fd), ffi.c_int(nstype)), "setns", detail)


def sethostname(name: str) -> None:
    b = name.encode()
    check(LIBC.sethostname(b, ffi.c_size_t(len(b))), "sethostname", name)


def setdomainname(name: str) -> None:
    b = name.encode()
    check(LIBC.setdomainname(b, ffi.c_size_t(len(b))), "setdomainname", name)


PER_LINUX = 0x0000
PER_LINUX32 = 0x0008


# Not in the generic table: numbers differ by architecture.
_SYS_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}
_SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_SHIFT = 13


def _nr(table: dict[str, int], name: str) -> int:
    nr = table.get(os.uname().machine)
    if nr is None:
        raise KernelError(name, 38, f"no syscall number known for {os.uname().machine}")  # ENOSYS
    return nr


def ioprio_set(io_class: int, priority: int) -> None:
    """The calling process's I/O scheduling class and priority (ioprio_set(2))."""
    value = (io_class << IOPRIO_CLASS_SHIFT) | priority
    syscall(_nr(_SYS_IOPRIO_SET, "ioprio_set"), IOPRIO_WHO_PROCESS, 0, value, name="ioprio_set", detail=hex(value))


def sched_setattr(policy: int, flags: int, nice: int, priority: int, runtime: int, deadline: int, period: int) -> None:
    """The calling thread's scheduling policy and attributes (sched_setattr(2), struct version 0)."""
    attr = _struct.pack("<IIQiIQQQ", 48, policy, flags, nice, priority, runtime, deadline, period)
    buf = ffi.create_string_buffer(attr, len(attr))
    check(LIBC.syscall(ffi.c_long(_nr(_SYS_SCHED_SETATTR, "sched_setattr")), ffi.c_long(0), buf,
                       ffi.c_uint(0)), "sched_setattr", f"policy {policy}")


def personality(persona: int) -> None:
    check(LIBC.personality(ffi.c_ulong(persona)), "personality", hex(persona))


def close_from(lowfd: int) -> None:
    """Close every fd >= lowfd (close_range; falls back to /proc/self/fd)."""
    try:
        # -1 is ~0U for the kernel: up to the last possible fd.
        syscall(SYS_CLOSE_RANGE, lowfd, -1, 0, name="close_range")
    except KernelError:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd >= lowfd:
                try:
                    os.close(fd)
                except OSError:
                    pass
