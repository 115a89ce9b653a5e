"""Typed wrappers over the mount syscalls: mount, umount2, pivot_root, mknod, openat2 and the new
mount API (open_tree, move_mount, mount_setattr).

The new syscalls have no glibc wrappers in Debian 12, so they go through ``syscall(2)`` with the
numbers of the running architecture. Every failure is a KernelError naming the syscall and path.
"""

from __future__ import annotations

import os

from hako.errors import KernelError
from hako.sys import ffi
from hako.sys.libc import LIBC, check
from hako.sys.mount_consts import *  # noqa: F403 - the flags stay hako.sys.mount.MS_*
from hako.sys.mount_consts import _ST_TO_MS

_SYSCALLS = {
    # name: (x86_64, aarch64); the new mount API and openat2 share numbers on every arch.
    "pivot_root": (155, 41),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "openat2": (437, 437),
    "mount_setattr": (442, 442),
}
_ARCH_INDEX = {"x86_64": 0, "amd64": 0, "aarch64": 1, "arm64": 1}


def _nr(name: str) -> int:
    machine = os.uname().machine.lower()
    try:
        return _SYSCALLS[name][_ARCH_INDEX[machine]]
    except KeyError:
        raise KernelError(name, 38, f"(no syscall number for {machine})") from None


class _OpenHow(ffi.Structure):
    _fields_ = [("flags", ffi.c_uint64), ("mode", ffi.c_uint64), ("resolve", ffi.c_uint64)]


class _MountAttr(ffi.Structure):
    _fields_ = [
        ("attr_set", ffi.c_uint64),
        ("attr_clr", ffi.c_uint64),
        ("propagation", ffi.c_uint64),
        ("userns_fd", ffi.c_uint64),
    ]


LIBC.mount.argtypes = [ffi.c_char_p, ffi.c_char_p, ffi.c_char_p, ffi.c_ulong, ffi.c_char_p]
LIBC.mount.restype = ffi.c_int
LIBC.umount2.argtypes = [ffi.c_char_p, ffi.c_int]
LIBC.umount2.restype = ffi.c_int
LIBC.fstatfs.argtypes = [ffi.c_int, ffi.c_void_p]
LIBC.fstatfs.restype = ffi.c_int


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(
    source: str | None,
    target: str,
    fstype: str | None = None,
    flags: int = 0,
    data: str | None = None,
    *,
    detail: str = "",
) -> None:
    """mount(2); ``detail`` (default: the target) names what failed in the error."""
    check(
        LIBC.mount(_b(source), _b(target), _b(fstype), flags, _b(data) if data else None),
        "mount",
        detail or target,
    )


def umount2(target: str, flags: int = 0, *, detail: str = "") -> None:
    check(LIBC.umount2(_b(target), flags), "umount2", detail or target)


def _sys(name: str, *args: object, detail: str = "") -> int:
    """A raw syscall by name; ints travel as C longs (syscall(2) reads longs), pointers as given."""
    conv = [ffi.c_long(a) if isinstance(a, int) else a for a in args]
    return check(LIBC.syscall(ffi.c_long(_nr(name)), *conv), name, detail)


def pivot_root(new_root: str, put_old: str) -> None:
    _sys("pivot_root", _b(new_root), _b(put_old), detail=new_root)


def makedev(major: int, minor: int) -> int:
    return os.makedev(major, minor)


def mknod(path: str, mode: int, device: int = 0, *, dir_fd: int | None = None) -> None:
    """mknodat(2); the caller sets the umask if ``mode`` must be exact."""
    try:
        os.mknod(path, mode, device, dir_fd=dir_fd)
    except OSError as e:
        raise KernelError("mknod", e.errno or 0, path) from None


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): ``resolve`` is a mask of RESOLVE_* flags; returns the new fd (close-on-exec)."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return _sys("openat2", dirfd, _b(path), ffi.byref(how), ffi.sizeof(how), detail=path)


def open_tree(dirfd: int, path: str, flags: int, *, detail: str = "") -> int:
    return _sys("open_tree", dirfd, _b(path), flags, detail=detail or path)


def move_mount(
    from_dirfd: int, from_path: str, to_dirfd: int, to_path: str, flags: int, *, detail: str = ""
) -> None:
    _sys("move_mount", from_dirfd, _b(from_path), to_dirfd, _b(to_path), flags, detail=detail or to_path)


def mount_setattr(
    dirfd: int,
    path: str,
    flags: int,
    attr_set: int = 0,
    attr_clr: int = 0,
    propagation: int = 0,
    userns_fd: int = 0,
    *,
    detail: str = "",
) -> None:
    attr = _MountAttr(attr_set, attr_clr, propagation, userns_fd)
    _sys(
        "mount_setattr",
        dirfd,
        _b(path),
        flags,
        ffi.byref(attr),
        ffi.sizeof(attr),
        detail=detail or path,
    )


def fstatfs_type(fd: int) -> int:
    """The f_type (filesystem magic) of the filesystem ``fd`` lives on."""
    buf = ffi.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit
    check(LIBC.fstatfs(fd, buf), "fstatfs", f"fd {fd}")
    return ffi.c_long.from_buffer(buf).value & 0xFFFFFFFF


def mount_flags_of(path_or_fd: str | int) -> int:
    """The per-mount MS_* flags of the mount holding ``path_or_fd`` (from statvfs)."""
    st = os.fstatvfs(path_or_fd) if isinstance(path_or_fd, int) else os.statvfs(path_or_fd)
    return sum(ms for st_bit, ms in _ST_TO_MS.items() if st.f_flag & st_bit)


def mount_id(fd: int) -> int:
    """The mount id of the mount ``fd`` lives on (from /proc/self/fdinfo)."""
    with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
        for line in f:
            if line.startswith(b"mnt_id:"):
                return int(line.split()[1])
    raise KernelError("fdinfo", 2, f"fd {fd}: no mnt_id")


def fd_path(fd: int) -> str:
    """The magic link through which mount(2) reaches what ``fd`` refers to."""
    return f"/proc/self/fd/{fd}"
