"""Typed wrappers over the mount syscalls: mount, umount2, pivot_root, mknod, openat2 and the new
mount API (open_tree, move_mount, mount_setattr).

The new syscalls have no glibc wrappers in Debian 12, so they go through ``syscall(2)`` with the
numbers of the running architecture. Every failure is a KernelError naming the syscall and path.
"""

from __future__ import annotations

import ctypes
import os

from hako.errors import KernelError
from hako.sys.libc import LIBC, check

# mount(2) flags (linux/mount.h).
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_POSIXACL = 1 << 16
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MS_PROPAGATION = MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE
# Flags a bind remount can change on one mount (the rest belong to the superblock).
MS_MNT_FLAGS = (
    MS_RDONLY
    | MS_NOSUID
    | MS_NODEV
    | MS_NOEXEC
    | MS_NOATIME
    | MS_NODIRATIME
    | MS_RELATIME
    | MS_STRICTATIME
    | MS_NOSYMFOLLOW
)

# umount2(2) flags.
MNT_FORCE = 1
MNT_DETACH = 2
MNT_EXPIRE = 4
UMOUNT_NOFOLLOW = 8

# statvfs f_flag bits (sys/statvfs.h) and their mount flag counterparts.
ST_RDONLY = 1
ST_NOSUID = 2
ST_NODEV = 4
ST_NOEXEC = 8
ST_NOATIME = 1024
ST_NODIRATIME = 2048
ST_RELATIME = 4096
_ST_TO_MS = {
    ST_RDONLY: MS_RDONLY,
    ST_NOSUID: MS_NOSUID,
    ST_NODEV: MS_NODEV,
    ST_NOEXEC: MS_NOEXEC,
    ST_NOATIME: MS_NOATIME,
    ST_NODIRATIME: MS_NODIRATIME,
    ST_RELATIME: MS_RELATIME,
}

# openat2(2) resolve flags (linux/openat2.h).
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
RESOLVE_CACHED = 0x20

# *at flags (linux/fcntl.h).
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000

# open_tree / move_mount / mount_setattr (linux/mount.h).
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_SYMLINKS = 0x01
MOVE_MOUNT_F_AUTOMOUNTS = 0x02
MOVE_MOUNT_F_EMPTY_PATH = 0x04
MOVE_MOUNT_T_SYMLINKS = 0x10
MOVE_MOUNT_T_AUTOMOUNTS = 0x20
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

# Filesystem magic numbers (linux/magic.h) checked with fstatfs.
PROC_SUPER_MAGIC = 0x9FA0
TMPFS_MAGIC = 0x01021994
SYSFS_MAGIC = 0x62656572

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


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


LIBC.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
LIBC.mount.restype = ctypes.c_int
LIBC.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
LIBC.umount2.restype = ctypes.c_int
LIBC.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]
LIBC.fstatfs.restype = ctypes.c_int


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
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return check(LIBC.syscall(ctypes.c_long(_nr(name)), *conv), name, detail)


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
    return _sys("openat2", dirfd, _b(path), ctypes.byref(how), ctypes.sizeof(how), detail=path)


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
        ctypes.byref(attr),
        ctypes.sizeof(attr),
        detail=detail or path,
    )


def fstatfs_type(fd: int) -> int:
    """The f_type (filesystem magic) of the filesystem ``fd`` lives on."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit
    check(LIBC.fstatfs(fd, buf), "fstatfs", f"fd {fd}")
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


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
