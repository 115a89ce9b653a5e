"""The container's root filesystem: mounts, devices, pivot_root, then masked and read-only paths.

``prepare_rootfs`` runs in the container's init inside its new mount namespace and ends with
the process rooted in the rootfs; ``finalize_rootfs`` runs there afterwards (sysctl, read-only
and masked paths, read-only root). ``hako.runtime.validate`` checks the same spec parts at ``create``
time, before anything is forked, so that config errors name their JSON path early.

Every destination is resolved inside the rootfs (hako.runtime.paths) and mounted through the
fd we resolved, so a rootfs whose owner swaps symlinks in while we mount cannot redirect a
mount onto the host. Per-mount flags (ro, nosuid...) are applied by a bind remount of the new
mount, never to a superblock that the host may share (sysfs, cgroup, mqueue).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from hako.errors import ConfigError, KernelError
from hako.runtime.mount_options import (
    MountOptions,
    parse_mount_options,
    parse_propagation,
)
from hako.runtime.paths import Target, components, mkdir_all_in_root, open_in_root, open_target, secure_join
from hako.runtime.validate import PROC_MOUNT_ALLOWED, sysctl_parts, validate_idmap, validate_sysctl
from hako.spec.runtime import Device, IdMapping, Mount, Spec
from hako.sys import mount as m

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

DEFAULT_DEVICES = (
    Device("c", "/dev/null", 1, 3, 0o666, 0, 0),
    Device("c", "/dev/zero", 1, 5, 0o666, 0, 0),
    Device("c", "/dev/full", 1, 7, 0o666, 0, 0),
    Device("c", "/dev/random", 1, 8, 0o666, 0, 0),
    Device("c", "/dev/urandom", 1, 9, 0o666, 0, 0),
    Device("c", "/dev/tty", 5, 0, 0o666, 0, 0),
)
DEV_SYMLINKS = (
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
)
_DEVICE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}

_LOCKABLE = m.MS_NOSUID | m.MS_NODEV | m.MS_NOEXEC | m.MS_RDONLY
_ATIME = m.MS_NOATIME | m.MS_RELATIME | m.MS_STRICTATIME
_CGROUP2_SUPER_MAGIC = 0x63677270


# ---------------------------------------------------------------------------------------------
# prepare_rootfs: mounts, devices, pivot


class _Ctx:
    """What every mount step needs (a plain class: dataclasses cost import time on the hot path)."""

    def __init__(
        self, spec: Spec, rootfs: str, bundle: str, root_fd: int, in_userns: bool, cgroupns: bool
    ) -> None:
        self.spec = spec
        self.rootfs = rootfs
        self.bundle = bundle
        self.root_fd = root_fd
        self.in_userns = in_userns
        self.cgroupns = cgroupns


def _where(e: KernelError, where: str) -> KernelError:
    err = KernelError(e.syscall, e.errno, f"{e.detail} ({where})".strip())
    err.__cause__ = e.__cause__
    return err


def prepare_rootfs(
    spec: Spec,
    rootfs: Path | str,
    *,
    no_pivot: bool = False,
    in_userns: bool = False,
    bundle: Path | str | None = None,
    before_pivot: Callable[[], None] | None = None,
) -> None:
    """Mount everything ``spec`` asks for into ``rootfs`` and make it the process's root.

    Runs inside the container's new mount namespace (and user namespace, if any) as its root.
    Afterwards ``/`` is the rootfs and the cwd is ``/``. ``bundle`` anchors relative bind
    sources (default: the rootfs's parent). ``before_pivot`` runs once everything is mounted,
    still with the host's root: the place for createContainer hooks.
    """
    root = os.path.realpath(rootfs)
    bundle_dir = os.fspath(bundle) if bundle is not None else os.path.dirname(root)
    host_ns = spec.linux.namespace("mount") is None
    prop = (
        parse_propagation(spec.linux.rootfs_propagation)
        if spec.linux.rootfs_propagation
        else m.MS_SLAVE | m.MS_REC
    )
    if not host_ns:
        # Nothing we mount below may reach the host's namespace: slave (or what was asked) first.
        m.mount(None, "/", None, prop, detail="/ (rootfs propagation)")
        _make_parent_private(root)
    # Without a mount namespace (as runc allows) everything below lands in the caller's own
    # namespace, under the rootfs only, with its propagation left as it is (so that delete's
    # unmounting reaches wherever the mounting did); the process is chrooted, never pivoted.
    m.mount(root, root, None, m.MS_BIND | m.MS_REC, detail=f"{root} (rootfs bind)")
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    ctx = _Ctx(spec, root, bundle_dir, root_fd, in_userns, spec.linux.namespace("cgroup") is not None)
    try:
        for i, mnt in enumerate(spec.mounts):
            try:
                _mount_entry(ctx, mnt, i)
            except KernelError as e:
                raise _where(e, f"mounts[{i}]") from None
        if _needs_dev_setup(spec):
            _create_devices(ctx)
            _dev_symlinks(ctx)
    finally:
        os.close(root_fd)
    if before_pivot is not None:
        before_pivot()
    if host_ns:
        _chroot(root)
        return
    if no_pivot:
        _move_root(root)
    else:
        _pivot_root(root)
    if spec.linux.rootfs_propagation:
        # The root itself gets the asked propagation only now that it is "/".
        m.mount(None, "/", None, prop, detail="/ (rootfs propagation)")


def _mountinfo() -> list[list[str]]:
    with open("/proc/self/mountinfo") as f:
        return [line.split() for line in f]


def _unescape(field_: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return field_.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _mount_point_of(path: str) -> str:
    best = "/"
    for fields in _mountinfo():
        mp = _unescape(fields[4])
        if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
            best = mp
    return best


def _make_parent_private(rootfs: str) -> None:
    """pivot_root refuses a new root whose parent mount is shared; make that one mount private."""
    parent = _mount_point_of(rootfs)
    m.mount(None, parent, None, m.MS_PRIVATE, detail=f"{parent} (rootfs parent mount)")


def _needs_dev_setup(spec: Spec) -> bool:
    """Default devices and /dev symlinks are ours to make unless /dev is bound from the host."""
    for mnt in spec.mounts:
        if posixpath.normpath(mnt.destination) == "/dev":
            opts = parse_mount_options(mnt.options)
            if opts.bind or mnt.type == "bind":
                return False
    return True


def _mount_entry(ctx: _Ctx, mnt: Mount, i: int) -> None:
    opts = parse_mount_options(mnt.options, f"mounts[{i}].options")
    dest = posixpath.normpath(mnt.destination)
    if opts.idmap or opts.ridmap or mnt.uid_mappings or mnt.gid_mappings:
        validate_idmap(ctx.spec, mnt, opts, opts.bind or mnt.type == "bind", f"mounts[{i}]")
        _idmapped_bind(ctx, _source_path(ctx, mnt.source), dest, opts, mnt)
    elif opts.flags & m.MS_REMOUNT:
        _remount_existing(ctx, dest, mnt, opts)
    elif opts.bind or mnt.type == "bind":
        _bind(ctx, _source_path(ctx, mnt.source), dest, opts)
    elif mnt.type == "cgroup":
        _mount_cgroup(ctx, dest, opts)
    elif mnt.type == "cgroup2":
        _mount_cgroup2(ctx, dest, opts)
    elif mnt.type == "sysfs":
        try:
            _mount_fs(ctx, mnt.source or "sysfs", dest, "sysfs", opts)
        except KernelError as e:
            # sysfs belongs to the network namespace; without one of our own a user namespace
            # may not mount it: bind the host's /sys instead, with the same flags.
            if e.errno != errno.EPERM or not ctx.in_userns:
                raise
            _bind(ctx, "/sys", dest, _as_rbind(opts))
    elif mnt.type == "mqueue":
        try:
            _mount_fs(ctx, mnt.source or "mqueue", dest, "mqueue", opts)
        except KernelError as e:
            if e.errno != errno.EPERM or not ctx.in_userns:
                raise
            _bind(ctx, "/dev/mqueue", dest, _as_rbind(opts))
    elif mnt.type == "devpts" and ctx.in_userns:
        try:
            _mount_fs(ctx, mnt.source or "devpts", dest, "devpts", opts)
        except KernelError as e:
            # gid=5 (tty) is often unmapped in a user namespace: the kernel says EINVAL.
            if e.errno != errno.EINVAL or opts.data_option("gid") is None:
                raise
            data = ",".join(o for o in opts.data.split(",") if not o.startswith("gid="))
            _mount_fs(ctx, mnt.source or "devpts", dest, "devpts", opts, data=data)
    else:
        _mount_fs(ctx, mnt.source or mnt.type, dest, mnt.type, opts)


def _as_rbind(opts: MountOptions) -> MountOptions:
    return MountOptions(
        flags=opts.flags | m.MS_BIND | m.MS_REC,
        cleared=opts.cleared,
        propagation=list(opts.propagation),
        rec_attr_set=opts.rec_attr_set,
        rec_attr_clr=opts.rec_attr_clr,
    )


def _source_path(ctx: _Ctx, source: str) -> str:
    return source if source.startswith("/") else os.path.join(ctx.bundle, source)


def _rel_path(ctx: _Ctx, t: Target) -> str:
    """Where ``t`` sits below the rootfs, read back from the kernel via its parent fd."""
    parent = os.readlink(m.fd_path(t.parent_fd))
    root = ctx.rootfs
    if parent == root:
        rel = "/"
    elif parent.startswith(root + "/"):
        rel = parent[len(root) :]
    else:  # cannot happen: the fd was resolved inside the root
        raise KernelError("open", errno.EXDEV, f"{t.path} resolved outside the rootfs ({parent})")
    return posixpath.join(rel, t.name)


def _check_proc(ctx: _Ctx, t: Target, fstype: str, source: str | None = None) -> None:
    resolved = _rel_path(ctx, t)
    if resolved == "/proc":
        if fstype == "proc":
            return
        if source is not None:
            fd = os.open(source, os.O_PATH | os.O_CLOEXEC)
            try:
                if m.fstatfs_type(fd) == m.PROC_SUPER_MAGIC:
                    return
            finally:
                os.close(fd)
        raise KernelError("mount", errno.EPERM, f"{t.path}: only procfs may be mounted on /proc")
    if resolved.startswith("/proc/") and resolved not in PROC_MOUNT_ALLOWED:
        raise KernelError("mount", errno.EPERM, f"{t.path}: {resolved} is inside /proc")


def _reopen_mounted(t: Target) -> int:
    """The root of the mount just placed on ``t``; checks that it is a new mount indeed."""
    fd = t.reopen()
    if m.mount_id(fd) == m.mount_id(t.fd):
        os.close(fd)
        raise KernelError("mount", errno.EXDEV, f"{t.path}: mount did not land where resolved")
    return fd


def _remount_bind(fd: int, flags: int, what: str, path: str | None = None) -> None:
    """Set a mount's per-mount flags; in a user namespace keep those locked by the parent.

    ``path`` replaces the fd's magic link when there is no /proc (after the pivot only)."""
    target = path if path is not None else m.fd_path(fd)
    try:
        m.mount(None, target, None, m.MS_REMOUNT | m.MS_BIND | flags, detail=f"{what} (remount)")
    except KernelError as e:
        if e.errno != errno.EPERM:
            raise
        current = m.mount_flags_of(fd)
        locked = current & _LOCKABLE
        if not flags & _ATIME:
            locked |= current & _ATIME
        m.mount(None, target, None, m.MS_REMOUNT | m.MS_BIND | flags | locked, detail=f"{what} (remount)")


def _post_mount(t: Target, opts: MountOptions, remount_flags: int | None) -> None:
    """What mount(2) cannot do in the same call: flags of bind mounts, ro, recursive attributes,
    propagation. All on the new mount, reached through a fresh fd."""
    needs = remount_flags is not None or opts.rec_attr_set or opts.rec_attr_clr or opts.propagation
    if not needs:
        return
    fd = _reopen_mounted(t)
    try:
        if remount_flags is not None:
            _remount_bind(fd, remount_flags, t.path)
        if opts.rec_attr_set or opts.rec_attr_clr:
            m.mount_setattr(
                fd, "", m.AT_EMPTY_PATH | m.AT_RECURSIVE, opts.rec_attr_set, opts.rec_attr_clr, detail=t.path
            )
        for p in opts.propagation:
            m.mount(None, m.fd_path(fd), None, p, detail=f"{t.path} (propagation)")
    finally:
        os.close(fd)


def _mount_fs(
    ctx: _Ctx, source: str, dest: str, fstype: str, opts: MountOptions, data: str | None = None
) -> None:
    """A new filesystem instance (proc, tmpfs, devpts...) on ``dest``, created as a directory."""
    with open_target(ctx.root_fd, dest, "dir") as t:
        _check_proc(ctx, t, fstype)
        flags = opts.flags & ~(m.MS_RDONLY | m.MS_BIND | m.MS_REC | m.MS_REMOUNT | m.MS_PROPAGATION)
        m.mount(
            source,
            m.fd_path(t.fd),
            fstype,
            flags,
            opts.data if data is None else data,
            detail=f"{fstype} on {dest}",
        )
        if opts.tmpcopyup:
            _copy_up(t)
        # Devices and symlinks are made in /dev after the mounts: finalize_rootfs makes it ro.
        ro = opts.readonly and dest != "/dev"
        _post_mount(t, opts, opts.mnt_flags if ro else None)


def _copy_up(t: Target) -> None:
    """tmpcopyup: the covered directory's contents into the tmpfs now on top of it (the tmpfs
    root keeps the mode its options gave it)."""
    dst_fd = _reopen_mounted(t)
    try:
        _copy_tree(m.fd_path(t.fd), m.fd_path(dst_fd))  # t.fd: still the covered directory
    except OSError as e:
        raise KernelError("copy", e.errno or errno.EIO, f"tmpcopyup {t.path}: {e}") from None
    finally:
        os.close(dst_fd)


def _copy_tree(src: str, dst: str) -> None:
    """Contents, modes, owners and times; symlinks as symlinks, never followed."""
    for entry in os.scandir(src):
        s, d = entry.path, os.path.join(dst, entry.name)
        st = entry.stat(follow_symlinks=False)
        if entry.is_symlink():
            os.symlink(os.readlink(s), d)
        elif entry.is_dir(follow_symlinks=False):
            os.mkdir(d)
            _copy_tree(s, d)
        elif entry.is_file(follow_symlinks=False):
            import shutil  # only tmpcopyup needs it: keep it off the runtime's start-up path

            shutil.copyfile(s, d, follow_symlinks=False)
        else:
            os.mknod(d, st.st_mode, st.st_rdev)
        os.chown(d, st.st_uid, st.st_gid, follow_symlinks=False)
        if not entry.is_symlink():
            os.chmod(d, stat.S_IMODE(st.st_mode))
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _bind(ctx: _Ctx, source: str, dest: str, opts: MountOptions) -> None:
    try:
        st = os.stat(source)
    except OSError as e:
        raise KernelError("stat", e.errno or errno.ENOENT, f"bind source {source}") from None
    with open_target(ctx.root_fd, dest, "dir" if stat.S_ISDIR(st.st_mode) else "file") as t:
        _check_proc(ctx, t, "bind", source)
        flags = m.MS_BIND | (opts.flags & m.MS_REC)
        m.mount(source, m.fd_path(t.fd), None, flags, detail=f"bind {source} on {dest}")
        _post_mount(t, opts, opts.mnt_flags if opts.mnt_flags else None)


def _idmapped_bind(ctx: _Ctx, source: str, dest: str, opts: MountOptions, mnt: Mount) -> None:
    """A bind whose files show their owners through the mount's uid/gid mappings: a detached
    clone of the source gets the idmap and the flags, and only then is attached."""
    try:
        st = os.stat(source)
    except OSError as e:
        raise KernelError("stat", e.errno or errno.ENOENT, f"bind source {source}") from None
    userns_fd = _userns_with_maps(mnt)
    try:
        with open_target(ctx.root_fd, dest, "dir" if stat.S_ISDIR(st.st_mode) else "file") as t:
            _check_proc(ctx, t, "bind", source)
            clone = m.OPEN_TREE_CLONE | m.OPEN_TREE_CLOEXEC | (m.AT_RECURSIVE if opts.recursive else 0)
            tree = m.open_tree(m.AT_FDCWD, source, clone, detail=f"{source} (idmap)")
            try:
                rec = m.AT_RECURSIVE if opts.ridmap else 0
                m.mount_setattr(
                    tree, "", m.AT_EMPTY_PATH | rec, m.MOUNT_ATTR_IDMAP, 0, 0, userns_fd, detail=dest
                )
                attrs = sum(a for flag, a in _MS_TO_ATTR.items() if opts.flags & flag)
                if attrs:
                    m.mount_setattr(tree, "", m.AT_EMPTY_PATH, attrs, detail=dest)
                if opts.rec_attr_set or opts.rec_attr_clr:
                    m.mount_setattr(
                        tree,
                        "",
                        m.AT_EMPTY_PATH | m.AT_RECURSIVE,
                        opts.rec_attr_set,
                        opts.rec_attr_clr,
                        detail=dest,
                    )
                m.move_mount(
                    tree, "", t.fd, "", m.MOVE_MOUNT_F_EMPTY_PATH | m.MOVE_MOUNT_T_EMPTY_PATH, detail=dest
                )
                for p in opts.propagation:
                    m.mount(None, m.fd_path(tree), None, p, detail=f"{dest} (propagation)")
            finally:
                os.close(tree)
    finally:
        os.close(userns_fd)


_MS_TO_ATTR = {
    m.MS_RDONLY: m.MOUNT_ATTR_RDONLY,
    m.MS_NOSUID: m.MOUNT_ATTR_NOSUID,
    m.MS_NODEV: m.MOUNT_ATTR_NODEV,
    m.MS_NOEXEC: m.MOUNT_ATTR_NOEXEC,
    m.MS_NODIRATIME: m.MOUNT_ATTR_NODIRATIME,
    m.MS_NOSYMFOLLOW: m.MOUNT_ATTR_NOSYMFOLLOW,
}


def _userns_with_maps(mnt: Mount) -> int:
    """An fd of a fresh user namespace with the mount's mappings: a child unshares one and
    waits while we write its maps and open it. We run as the host's root here."""
    from hako.sys.proc import CLONE_NEWUSER, unshare

    r, w = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the short-lived child
        try:
            os.close(r)
            os.close(w2)
            unshare(CLONE_NEWUSER)
            # Our pid as the (host's) /proc mounted here knows it, not our pid namespace's.
            os.write(w, os.readlink("/proc/self").encode())
            os.read(r2, 1)
        finally:
            os._exit(0)
    os.close(w)
    os.close(r2)
    try:
        host_pid = os.read(r, 32).decode()
        if not host_pid.isdigit():
            raise KernelError("unshare", errno.EPERM, "user namespace for an idmapped mount")

        def lines(maps: list[IdMapping]) -> bytes:
            return "".join(f"{x.container_id} {x.host_id} {x.size}\n" for x in maps).encode()

        for name, maps in (("uid_map", mnt.uid_mappings), ("gid_map", mnt.gid_mappings)):
            fd = os.open(f"/proc/{host_pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, lines(maps))
            except OSError as e:
                raise KernelError(
                    "write", e.errno or 0, f"{name} of an idmapped mount ({mnt.destination})"
                ) from None
            finally:
                os.close(fd)
        return os.open(f"/proc/{host_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(r)
        os.close(w2)  # lets the child exit
        os.waitpid(pid, 0)


def _remount_existing(ctx: _Ctx, dest: str, mnt: Mount, opts: MountOptions) -> None:
    fd = open_in_root(ctx.root_fd, dest)
    try:
        flags = opts.flags & ~m.MS_PROPAGATION
        m.mount(None, m.fd_path(fd), mnt.type or None, flags, opts.data or None, detail=f"{dest} (remount)")
    finally:
        os.close(fd)


# -- cgroups -----------------------------------------------------------------------------------


class _Hierarchy:
    def __init__(self, mount_point: str, root: str, fstype: str, controllers: list[str]) -> None:
        self.mount_point = mount_point  # on the host, e.g. /sys/fs/cgroup/cpu,cpuacct
        self.root = root  # the mount's root within the hierarchy (mountinfo field 4)
        self.fstype = fstype  # cgroup or cgroup2
        self.controllers = controllers  # ["cpu", "cpuacct"], ["name=systemd"]; [] for cgroup2


def _host_hierarchies() -> list[_Hierarchy]:
    out = []
    for fields in _mountinfo():
        sep = fields.index("-")
        fstype, super_opts = fields[sep + 1], fields[sep + 3]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        ctrls = [o for o in super_opts.split(",") if o not in ("rw", "ro")] if fstype == "cgroup" else []
        # Only real controllers and named hierarchies decide what a fresh mount must ask for.
        ctrls = [c for c in ctrls if "=" not in c or c.startswith("name=")]
        ctrls = [
            c
            for c in ctrls
            if c
            not in (
                "noprefix",
                "clone_children",
                "xattr",
                "nsdelegate",
                "memory_recursiveprot",
                "cpuset_v2_mode",
                "favordynmods",
            )
        ]
        out.append(_Hierarchy(_unescape(fields[4]), _unescape(fields[3]), fstype, ctrls))
    return out


def _own_cgroups() -> dict[str, str]:
    """/proc/self/cgroup as {controllers: path}; cgroup v2 under the key ""."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            out[ctrls] = path
    return out


def _host_is_unified() -> bool:
    fd = os.open("/sys/fs/cgroup", os.O_PATH | os.O_CLOEXEC)
    try:
        return m.fstatfs_type(fd) == _CGROUP2_SUPER_MAGIC
    finally:
        os.close(fd)


def _mount_cgroup2(ctx: _Ctx, dest: str, opts: MountOptions) -> None:
    try:
        _mount_fs(ctx, "cgroup2", dest, "cgroup2", opts)
    except KernelError as e:
        if e.errno not in (errno.EPERM, errno.EBUSY):
            raise
        # No cgroup namespace of our own in a user namespace: bind our own cgroup instead.
        own = _own_cgroups().get("", "/")
        base = "/sys/fs/cgroup" if _host_is_unified() else "/sys/fs/cgroup/unified"
        _bind(ctx, base + own, dest, _as_rbind(opts))


def _mount_cgroup(ctx: _Ctx, dest: str, opts: MountOptions) -> None:
    """A cgroup v1 layout: a tmpfs with one directory per host hierarchy in it, each a fresh
    mount (with a cgroup namespace: it shows the namespace's root) or a bind of our own cgroup.
    On a cgroup v2 host this is a cgroup2 mount, as with runc."""
    if _host_is_unified():
        _mount_cgroup2(ctx, dest, opts)
        return
    sub_opts = MountOptions(flags=opts.flags & ~(m.MS_BIND | m.MS_REC | m.MS_REMOUNT))
    # The tmpfs stays writable until its directories and symlinks exist; ro comes last.
    tmpfs_opts = MountOptions(flags=sub_opts.flags & ~m.MS_RDONLY, data="mode=755")
    _mount_fs(ctx, "tmpfs", dest, "tmpfs", tmpfs_opts)
    own = _own_cgroups()
    dest_fd = open_in_root(ctx.root_fd, dest)
    try:
        for h in _host_hierarchies():
            name = posixpath.basename(h.mount_point)
            if not name or h.mount_point == "/sys/fs/cgroup":
                continue
            sub = f"{dest.rstrip('/')}/{name}"
            try:
                _mount_hierarchy(ctx, h, sub, sub_opts, own)
            except KernelError as e:
                raise _where(e, f"cgroup hierarchy {name}") from None
            if "," in name:
                # cpu,cpuacct is reachable as cpu and cpuacct too, as on the host.
                for ctrl in name.split(","):
                    try:
                        os.symlink(name, ctrl, dir_fd=dest_fd)
                    except FileExistsError:
                        pass
        if opts.readonly:
            _remount_bind(dest_fd, opts.mnt_flags, dest)
    finally:
        os.close(dest_fd)
    for p in opts.propagation:
        fd = open_in_root(ctx.root_fd, dest)
        try:
            m.mount(None, m.fd_path(fd), None, p, detail=f"{dest} (propagation)")
        finally:
            os.close(fd)


def _mount_hierarchy(ctx: _Ctx, h: _Hierarchy, sub: str, opts: MountOptions, own: dict[str, str]) -> None:
    if ctx.cgroupns:
        try:
            if h.fstype == "cgroup2":
                _mount_fs(ctx, "cgroup2", sub, "cgroup2", opts, data="")
            else:
                _mount_fs(ctx, "cgroup", sub, "cgroup", opts, data=",".join(h.controllers))
            return
        except KernelError as e:
            if e.errno not in (errno.EPERM, errno.EBUSY):
                raise
    key = "" if h.fstype == "cgroup2" else ",".join(h.controllers)
    path = own.get(key)
    if path is None:  # the kernel lists controllers in its own order; match as sets
        path = next((p for k, p in own.items() if k and set(k.split(",")) == set(h.controllers)), "/")
    rel = posixpath.relpath(path, h.root) if path.startswith(h.root) else "."
    source = posixpath.normpath(posixpath.join(h.mount_point, rel))
    _bind(ctx, source, sub, _as_rbind(opts))


# -- devices -----------------------------------------------------------------------------------


def _create_devices(ctx: _Ctx) -> None:
    devices = {d.path: d for d in DEFAULT_DEVICES}
    for d in ctx.spec.linux.devices:
        devices[posixpath.normpath(d.path)] = d
    old = os.umask(0)
    try:
        for dev in devices.values():
            try:
                _create_device(ctx, dev)
            except KernelError as e:
                raise _where(e, f"device {dev.path}") from None
    finally:
        os.umask(old)


def _create_device(ctx: _Ctx, dev: Device) -> None:
    mode = stat.S_IMODE(dev.file_mode if dev.file_mode is not None else 0o666)
    if ctx.in_userns:
        _bind_device(ctx, dev)
        return
    parts = components(secure_join(ctx.root_fd, dev.path))
    if not parts:
        raise KernelError("mknod", errno.EINVAL, dev.path)
    parent_fd = mkdir_all_in_root(ctx.root_fd, "/".join(parts[:-1]))
    name = parts[-1]
    try:
        try:
            m.mknod(name, _DEVICE_TYPES[dev.type] | mode, m.makedev(dev.major, dev.minor), dir_fd=parent_fd)
        except KernelError as e:
            if e.errno == errno.EEXIST:
                return
            if e.errno == errno.EPERM:
                _bind_device(ctx, dev)
                return
            raise KernelError("mknod", e.errno, dev.path) from None
        os.chown(name, dev.uid or 0, dev.gid or 0, dir_fd=parent_fd, follow_symlinks=False)
    finally:
        os.close(parent_fd)


def _bind_device(ctx: _Ctx, dev: Device) -> None:
    """Without CAP_MKNOD (user namespaces): bind the host's node onto an empty file."""
    with open_target(ctx.root_fd, dev.path, "file", 0o644) as t:
        m.mount(dev.path, m.fd_path(t.fd), None, m.MS_BIND, detail=f"bind {dev.path}")


def _dev_symlinks(ctx: _Ctx) -> None:
    try:
        dev_fd = open_in_root(ctx.root_fd, "/dev", os.O_PATH | os.O_DIRECTORY)
    except KernelError as e:
        if e.errno == errno.ENOENT:
            return
        raise
    try:
        links = list(DEV_SYMLINKS)
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "core"))
        for target, name in links:
            try:
                os.symlink(target, name, dir_fd=dev_fd)
            except FileExistsError:
                pass
        try:
            os.unlink("ptmx", dir_fd=dev_fd)
        except FileNotFoundError:
            pass
        os.symlink("pts/ptmx", "ptmx", dir_fd=dev_fd)
    except OSError as e:
        raise KernelError("symlink", e.errno or 0, f"/dev ({e.filename})") from None
    finally:
        os.close(dev_fd)


# -- the switch --------------------------------------------------------------------------------


def _pivot_root(rootfs: str) -> None:
    """pivot_root(".", "."): the old root ends up stacked on the new one, then detached."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        m.pivot_root(".", ".")
        os.fchdir(old_root)
        # The old root may still be shared with the host: unmounting must not propagate there.
        m.mount(None, ".", None, m.MS_SLAVE | m.MS_REC, detail="old root")
        m.umount2(".", m.MNT_DETACH, detail="old root")
    finally:
        os.close(old_root)
        os.close(new_root)
    os.chdir("/")


def _chroot(rootfs: str) -> None:
    """No mount namespace of our own: moving or pivoting mounts would act on the host's; chroot."""
    os.chdir(rootfs)
    os.chroot(".")
    os.chdir("/")


def mount_ids_under(rootfs: str) -> list[int]:
    """Ids of the mounts at or below ``rootfs`` in our namespace (mountinfo's first field)."""
    root = os.path.realpath(rootfs)
    return [int(f[0]) for f in _mountinfo() if (mp := _unescape(f[4])) == root or mp.startswith(root + "/")]


def unmount_host_mounts(rootfs: str, keep: list[int]) -> None:
    """Undo a container without a mount namespace: detach the mounts at or below ``rootfs`` in
    our namespace that are not in ``keep`` (those that were there before create, such as an
    engine's overlay on the rootfs itself), deepest first. Ours are stacked above any kept one
    at the same place, so unmounting that place once per mount of ours takes exactly ours."""
    root = os.path.realpath(rootfs)
    if root == "/":
        return
    kept = set(keep)
    ours: dict[str, int] = {}
    for f in _mountinfo():
        mp = _unescape(f[4])
        if (mp == root or mp.startswith(root + "/")) and int(f[0]) not in kept:
            ours[mp] = ours.get(mp, 0) + 1
    for mp in sorted(ours, key=len, reverse=True):
        for _ in range(ours[mp]):
            try:
                m.umount2(mp, m.MNT_DETACH, detail=mp)
            except KernelError:
                break


def _move_root(rootfs: str) -> None:
    """--no-pivot: move the rootfs mount onto / and chroot, hiding the host's other mounts first."""
    root = rootfs
    for fields in sorted(_mountinfo(), key=lambda f: -len(_unescape(f[4]))):
        mp = _unescape(fields[4])
        if mp == "/" or mp == root or mp.startswith(root + "/") or root.startswith(mp.rstrip("/") + "/"):
            continue
        try:
            m.umount2(mp, m.MNT_DETACH)
        except KernelError:
            pass  # locked in a user namespace or already gone with its parent
    os.chdir(root)
    m.mount(root, "/", None, m.MS_MOVE, detail=f"{root} (move to /)")
    os.chroot(".")
    os.chdir("/")


def mount_console(slave_fd: int) -> None:
    """Bind the terminal's slave onto /dev/console (after the pivot), as runc does when
    ``process.terminal`` is set; /dev/console is created as an empty file if missing."""
    root_fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with open_target(root_fd, "/dev/console", "file", 0o600) as t:
            m.mount(m.fd_path(slave_fd), m.fd_path(t.fd), None, m.MS_BIND, detail="pty on /dev/console")
    finally:
        os.close(root_fd)


# ---------------------------------------------------------------------------------------------
# finalize_rootfs: after the pivot


def finalize_rootfs(spec: Spec) -> None:
    """sysctl, readonlyPaths, maskedPaths, a deferred read-only /dev, then a read-only root."""
    validate_sysctl(spec)
    root_fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        apply_sysctl(spec, root_fd)
        for i, p in enumerate(spec.linux.readonly_paths):
            try:
                readonly_path(root_fd, p)
            except KernelError as e:
                raise _where(e, f"linux.readonlyPaths[{i}]") from None
        for i, p in enumerate(spec.linux.masked_paths):
            try:
                mask_path(root_fd, p)
            except KernelError as e:
                raise _where(e, f"linux.maskedPaths[{i}]") from None
        for i, mnt in enumerate(spec.mounts):
            if posixpath.normpath(mnt.destination) == "/dev" and mnt.type != "bind":
                opts = parse_mount_options(mnt.options)
                if opts.readonly and not opts.bind:
                    fd = open_in_root(root_fd, "/dev")
                    try:
                        _remount_bind(fd, opts.mnt_flags, "/dev", _post_pivot_target(fd, root_fd, "/dev"))
                    except KernelError as e:
                        raise _where(e, f"mounts[{i}]") from None
                    finally:
                        os.close(fd)
        if spec.root.readonly:
            # "/" itself cannot be swapped for anything: its path needs no fd.
            flags = m.mount_flags_of("/") | m.MS_RDONLY
            m.mount(None, "/", None, m.MS_REMOUNT | m.MS_BIND | flags, detail="/ (root.readonly)")
    finally:
        os.close(root_fd)


def apply_sysctl(spec: Spec, root_fd: int) -> None:
    if not spec.linux.sysctl:
        return
    proc_fd = open_in_root(root_fd, "/proc/sys", os.O_PATH | os.O_DIRECTORY)
    try:
        if m.fstatfs_type(proc_fd) != m.PROC_SUPER_MAGIC:
            raise ConfigError("linux.sysctl", "/proc/sys is not procfs (mount proc on /proc)")
        for key, value in spec.linux.sysctl.items():
            rel = "/".join(sysctl_parts(key))
            try:
                fd = _open_sysctl(proc_fd, rel)
            except KernelError as e:
                raise KernelError("open", e.errno, f"/proc/sys/{rel} (linux.sysctl.{key})") from None
            try:
                os.write(fd, value.encode())
            except OSError as e:
                raise KernelError("write", e.errno or 0, f"/proc/sys/{rel} (linux.sysctl.{key})") from None
            finally:
                os.close(fd)
    finally:
        os.close(proc_fd)


def _open_sysctl(proc_fd: int, rel: str) -> int:
    """/proc/sys holds no symlinks and no mounts: refuse both rather than resolve them."""
    try:
        return m.openat2(
            proc_fd,
            rel,
            os.O_WRONLY | os.O_TRUNC,
            m.RESOLVE_BENEATH | m.RESOLVE_NO_SYMLINKS | m.RESOLVE_NO_XDEV,
        )
    except KernelError as e:
        if e.errno != errno.ENOSYS:
            raise
    parts = rel.split("/")
    fd = os.dup(proc_fd)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return os.open(parts[-1], os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    except OSError as e:
        raise KernelError("open", e.errno or 0, rel) from None
    finally:
        os.close(fd)


def _open_existing(root_fd: int, path: str) -> int | None:
    try:
        return open_in_root(root_fd, path)
    except KernelError as e:
        if e.errno == errno.ENOENT:
            return None
        raise


def readonly_path(root_fd: int, path: str) -> None:
    """Bind ``path`` onto itself read-only, nosuid, nodev, noexec (all submounts too)."""
    fd = _open_existing(root_fd, path)
    if fd is None:
        return
    try:
        try:
            tree = m.open_tree(
                fd,
                "",
                m.OPEN_TREE_CLONE | m.OPEN_TREE_CLOEXEC | m.AT_RECURSIVE | m.AT_EMPTY_PATH,
                detail=path,
            )
        except KernelError as e:
            if e.errno != errno.ENOSYS:
                raise
            _readonly_path_legacy(root_fd, path)
            return
        try:
            # The clone is made read-only before it is attached: never a writable moment.
            attrs = m.MOUNT_ATTR_RDONLY | m.MOUNT_ATTR_NOSUID | m.MOUNT_ATTR_NODEV | m.MOUNT_ATTR_NOEXEC
            m.mount_setattr(tree, "", m.AT_EMPTY_PATH | m.AT_RECURSIVE, attrs, detail=path)
            m.move_mount(tree, "", fd, "", m.MOVE_MOUNT_F_EMPTY_PATH | m.MOVE_MOUNT_T_EMPTY_PATH, detail=path)
        finally:
            os.close(tree)
    finally:
        os.close(fd)


def _readonly_path_legacy(root_fd: int, path: str) -> None:
    """Kernels before 5.2 (no open_tree): bind onto itself, then remount the top mount ro."""
    with open_target(root_fd, path, None) as t:
        m.mount(m.fd_path(t.fd), m.fd_path(t.fd), None, m.MS_BIND | m.MS_REC, detail=f"{path} (readonly)")
        ro = m.MS_RDONLY | m.MS_NOSUID | m.MS_NODEV | m.MS_NOEXEC
        _post_mount(t, MountOptions(), ro)


def _post_pivot_target(fd: int, root_fd: int, path: str) -> str:
    """The fd's magic link, or without a /proc the path resolved in the root: after the pivot
    the root is the container's, so a path can no longer lead onto the host."""
    if os.path.isdir("/proc/self/fd"):
        return m.fd_path(fd)
    return secure_join(root_fd, path)


def mask_path(root_fd: int, path: str) -> None:
    """Hide ``path``: /dev/null over a file, an empty read-only tmpfs over a directory."""
    fd = _open_existing(root_fd, path)
    if fd is None:
        return
    try:
        target = _post_pivot_target(fd, root_fd, path)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            m.mount("tmpfs", target, "tmpfs", m.MS_RDONLY, None, detail=f"tmpfs on {path}")
            return
        null_fd = open_in_root(root_fd, "/dev/null")
        try:
            st = os.fstat(null_fd)
            # A rootfs may bring its own /dev/null (a file full of secrets, a symlink...):
            # only the real device may cover a masked path.
            if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
                raise KernelError("mount", errno.EINVAL, f"{path}: /dev/null is not the null device")
            m.mount(
                _post_pivot_target(null_fd, root_fd, "/dev/null"),
                target,
                None,
                m.MS_BIND,
                detail=f"/dev/null on {path}",
            )
        finally:
            os.close(null_fd)
    finally:
        os.close(fd)
