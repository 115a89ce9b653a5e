"""overlayfs helpers: availability, mount-option limits, mounting, and merging layer dirs.

Layer directories are kept in overlayfs's own format (0/0 character devices for
whiteouts, ``trusted.overlay.opaque=y`` for opaque dirs), so they can be lowerdirs as is.
``merge_layer`` applies one such directory onto a plain tree: the copying fallback uses it
with copies, and the flattening of deep images with hardlinks (read-only lowers only).
"""

from __future__ import annotations

import errno
import os
import stat

from hako.errors import HakoError, KernelError
from hako.records import dataclass, field
from hako.sys import ffi
from hako.sys.libc import LIBC

TYPE_CHECKING = False  # mounting a container's root is on ``hako run``'s path: no pathlib there
if TYPE_CHECKING:
    from pathlib import Path

# mount(2) copies one page of options; the kernel needs the terminating NUL in it too.
OPTIONS_LIMIT = 4095
# overlayfs refuses more lower layers than this (OVL_MAX_STACK).
MAX_LOWERS = 500

MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MNT_DETACH = 0x2

LIBC.mount.argtypes = [ffi.c_char_p, ffi.c_char_p, ffi.c_char_p, ffi.c_ulong, ffi.c_char_p]
LIBC.umount2.argtypes = [ffi.c_char_p, ffi.c_int]


@dataclass  # hako.records: construction, == and repr are all it needs
class MountSpec:
    """An OCI mount without its destination: it can go straight into a config.json."""

    type: str
    source: str
    options: list[str] = field(default_factory=list)

    def to_oci(self, destination: str = "/") -> dict[str, object]:
        return {
            "destination": destination,
            "type": self.type,
            "source": self.source,
            "options": list(self.options),
        }


def overlay_supported() -> bool:
    """True when the running kernel knows overlayfs: built in, loaded, or loadable on mount."""
    try:
        with open("/proc/filesystems") as f:
            if any(line.split()[-1:] == ["overlay"] for line in f):
                return True
    except OSError:
        return False
    if os.path.isdir("/sys/module/overlay"):
        return True
    # mount(2) asks the kernel to load the module on demand
    release = os.uname().release
    try:
        names = os.listdir(f"/lib/modules/{release}/kernel/fs/overlayfs")
    except OSError:
        return False
    return any(n.startswith("overlay.ko") for n in names)


def check_path(path: str) -> None:
    """overlayfs splits options on ',' and lowerdir on ':'; such paths cannot be given."""
    if any(c in path for c in ",:\n"):
        raise HakoError(f"{path}: overlay paths must not contain ',' ':' or newlines")


def overlay_options(lowers: list[str], upper: str | None = None, work: str | None = None) -> list[str]:
    opts = ["lowerdir=" + ":".join(lowers)]
    if upper is not None and work is not None:
        opts += [f"upperdir={upper}", f"workdir={work}"]
    return opts


def options_length(opts: list[str]) -> int:
    return len(",".join(opts))


def fits(lowers: list[str], reserve: int = 0) -> bool:
    """Whether an overlay with these lowerdirs (plus ``reserve`` bytes of other options) mounts."""
    length = len("lowerdir=") + sum(len(p) + 1 for p in lowers) + reserve
    return len(lowers) <= MAX_LOWERS and length <= OPTIONS_LIMIT


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    rc = LIBC.mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if rc != 0:
        raise KernelError("mount", ffi.get_errno(), f"{fstype or 'bind'} {source} on {target}")


def mount(spec: MountSpec, target: str | Path) -> None:
    """Mount one MountSpec on ``target`` (bind and overlay are what snapshotters return)."""
    flags = 0
    data: list[str] = []
    ro = False
    bind = spec.type == "bind"
    for opt in spec.options:
        if opt == "ro":
            ro = True
        elif opt == "rw":
            ro = False
        elif opt in ("bind", "rbind"):
            bind = True
            if opt == "rbind":
                flags |= MS_REC
        else:
            data.append(opt)
    if bind:
        _mount(spec.source, str(target), None, MS_BIND | flags, None)
        if ro:
            try:
                _mount("", str(target), None, MS_BIND | MS_REMOUNT | MS_RDONLY | flags, None)
            except KernelError:
                unmount(target)
                raise
        return
    opts = ",".join(data)
    if len(opts) > OPTIONS_LIMIT:
        raise HakoError(f"{target}: overlay options are {len(opts)} bytes, over the {OPTIONS_LIMIT} limit")
    _mount(spec.source, str(target), spec.type, flags | (MS_RDONLY if ro else 0), opts)


def mountinfo_path(field: str) -> str:
    """A path field of /proc/self/mountinfo as a path: the kernel writes space, tab,
    newline and backslash as octal escapes (``\\040``)."""
    if "\\" not in field:
        return field
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def unmount(target: str | Path) -> None:
    path = str(target).encode()
    if LIBC.umount2(path, 0) == 0:
        return
    err = ffi.get_errno()
    if err == errno.EBUSY and LIBC.umount2(path, MNT_DETACH) == 0:
        return
    raise KernelError("umount2", err, str(target))


def is_opaque(path: str) -> bool:
    from hako.storage.layers import OPAQUE_XATTR

    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        import shutil

        shutil.rmtree(path)
    else:
        os.unlink(path)


def _copy_meta(src: str, dst: str, st: os.stat_result, is_link: bool) -> None:
    from hako.storage.layers import FORBIDDEN_XATTRS

    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not is_link:
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        names = []
    for name in names:
        if name.startswith(FORBIDDEN_XATTRS):
            continue  # overlay-format markers are turned into real deletions here, not copied
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EPERM):
                raise
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def merge_layer(src: str | Path, dst: str | Path, *, link: bool) -> None:
    """Apply the overlay-format layer dir ``src`` onto the plain tree ``dst``.

    With ``link`` files are hardlinked (only for trees that stay read-only: the flattened
    lowers of deep images); otherwise copied, keeping hardlinks within the layer.
    Both trees are the store's own, and neither symlinks in ``src`` nor in ``dst`` are
    followed: a directory replaces whatever non-directory ``dst`` had.
    """
    inodes: dict[tuple[int, int], str] = {}
    dir_times: list[tuple[str, os.stat_result]] = []
    _merge_dir(str(src), str(dst), link, inodes, dir_times)
    for path, st in reversed(dir_times):
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _merge_dir(
    src: str,
    dst: str,
    link: bool,
    inodes: dict[tuple[int, int], str],
    dir_times: list[tuple[str, os.stat_result]],
) -> None:
    with os.scandir(src) as it:
        entries = list(it)
    for entry in entries:
        s = entry.path
        d = os.path.join(dst, entry.name)
        st = entry.stat(follow_symlinks=False)
        mode = st.st_mode
        if _is_whiteout(st):
            _remove(d)
            continue
        if stat.S_ISDIR(mode):
            try:
                dst_st: os.stat_result | None = os.lstat(d)
            except FileNotFoundError:
                dst_st = None
            if dst_st is not None and (not stat.S_ISDIR(dst_st.st_mode) or is_opaque(s)):
                _remove(d)
                dst_st = None
            if dst_st is None:
                os.mkdir(d, 0o700)
            _copy_meta(s, d, st, False)
            dir_times.append((d, st))
            _merge_dir(s, d, link, inodes, dir_times)
            continue
        _remove(d)
        if link:
            try:
                os.link(s, d, follow_symlinks=False)
                continue
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EMLINK):
                    raise
                # another filesystem, or the inode has all the links it may: copy instead
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in inodes:
            os.link(inodes[key], d, follow_symlinks=False)
            continue
        if stat.S_ISREG(mode):
            _copy_file(s, d)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(s), d)
        else:
            os.mknod(d, mode, st.st_rdev)
        _copy_meta(s, d, st, stat.S_ISLNK(mode))
        if st.st_nlink > 1:
            inodes[key] = d


def _copy_file(src: str, dst: str) -> None:
    fi = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fo = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(fi).st_size
            done = 0
            while done < size:
                n = os.copy_file_range(fi, fo, size - done)
                if n == 0:
                    break
                done += n
        finally:
            os.close(fo)
    finally:
        os.close(fi)
