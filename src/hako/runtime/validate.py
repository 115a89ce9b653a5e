"""What ``create`` checks in a config before it makes anything: mounts, devices, masked and
readonly paths, sysctls, LSM requests; a ConfigError names the first offending JSON path.

Apart from ``hako.runtime.rootfs`` (which performs the mounts, in the container's init) so that
the runtime's parent process validates without loading the mount code or any libc binding:
it is on every ``create``'s critical path, and its peak RSS is that call's.
"""

from __future__ import annotations

import os
import posixpath

from hako.errors import ConfigError
from hako.runtime.mount_options import parse_mount_options, parse_propagation, validate_tmpfs_data
from hako.sys import mount_consts as m

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    from hako.runtime.mount_options import MountOptions
    from hako.spec.runtime import Mount, Process, Spec

DEVICE_TYPES = frozenset({"c", "u", "b", "p"})

# Files below /proc that may be mounted over (lxcfs emulates them); anything else under /proc
# could hide or redirect the kernel's own interfaces (CVE-2019-19921 and friends).
PROC_MOUNT_ALLOWED = frozenset(
    {
        "/proc/cpuinfo",
        "/proc/diskstats",
        "/proc/meminfo",
        "/proc/stat",
        "/proc/swaps",
        "/proc/uptime",
        "/proc/loadavg",
        "/proc/slabinfo",
        "/proc/pressure/cpu",
        "/proc/pressure/io",
        "/proc/pressure/memory",
        "/proc/net/dev",
        "/proc/sys/kernel/ns_last_pid",
    }
)

# Sysctls that belong to a namespace, and which one (runc's list).
_IPC_SYSCTLS = frozenset(
    {
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    }
)
_UTS_SYSCTLS = frozenset({"kernel.hostname", "kernel.domainname"})


def validate_mounts(spec: Spec) -> None:
    """Check mounts, devices, masked/readonly paths, propagation and sysctl; ConfigError naming
    the first offending JSON path. Needs no privileges and touches nothing."""
    for i, mnt in enumerate(spec.mounts):
        where = f"mounts[{i}]"
        dest = mnt.destination
        if not dest or not dest.startswith("/"):
            raise ConfigError(f"{where}.destination", f"{dest!r} must be an absolute path")
        if "\0" in dest or "\0" in mnt.source:
            raise ConfigError(where, "NUL byte in path")
        opts = parse_mount_options(mnt.options, f"{where}.options")
        bind = opts.bind or mnt.type == "bind"
        if opts.idmap or opts.ridmap or mnt.uid_mappings or mnt.gid_mappings:
            validate_idmap(spec, mnt, opts, bind, where)
        remount = bool(opts.flags & m.MS_REMOUNT)
        if bind and not mnt.source and not remount:
            raise ConfigError(f"{where}.source", "a bind mount needs a source")
        if not bind and not mnt.type and not remount:
            raise ConfigError(f"{where}.type", "missing filesystem type (or a bind option)")
        if opts.tmpcopyup and mnt.type != "tmpfs":
            raise ConfigError(f"{where}.options", "tmpcopyup only applies to tmpfs")
        if mnt.type == "tmpfs":
            validate_tmpfs_data(opts, f"{where}.options")
        _check_proc_destination(posixpath.normpath(dest), mnt, bind, where)
    if spec.linux.rootfs_propagation:
        parse_propagation(spec.linux.rootfs_propagation)
    for i, dev in enumerate(spec.linux.devices):
        where = f"linux.devices[{i}]"
        if dev.type not in DEVICE_TYPES:
            raise ConfigError(f"{where}.type", f"{dev.type!r} is not one of c, b, u, p")
        if not dev.path.startswith("/"):
            raise ConfigError(f"{where}.path", f"{dev.path!r} must be an absolute path")
        if dev.major < 0 or dev.minor < 0:
            raise ConfigError(where, "major and minor must not be negative")
    for name, paths in (
        ("maskedPaths", spec.linux.masked_paths),
        ("readonlyPaths", spec.linux.readonly_paths),
    ):
        for i, p in enumerate(paths):
            if not p.startswith("/"):
                raise ConfigError(f"linux.{name}[{i}]", f"{p!r} must be an absolute path")
    validate_sysctl(spec)


def validate_idmap(spec: Spec, mnt: Mount, opts: MountOptions, bind: bool, where: str) -> None:
    if not bind:
        raise ConfigError(f"{where}.options", "idmapped mounts must be bind mounts")
    if not (opts.idmap or opts.ridmap):
        raise ConfigError(f"{where}.options", "uidMappings/gidMappings need the idmap or ridmap option")
    if not mnt.uid_mappings or not mnt.gid_mappings:
        raise ConfigError(f"{where}.uidMappings", "idmapped mounts need both uidMappings and gidMappings")
    if spec.linux.namespace("user") is not None:
        # The init is inside the container's user namespace by the time it mounts, and only
        # the host's root may idmap a host filesystem.
        raise ConfigError(
            f"{where}.options", "idmapped mounts in a user namespace are not supported by hako yet"
        )
    for name, maps in (("uidMappings", mnt.uid_mappings), ("gidMappings", mnt.gid_mappings)):
        for j, mp in enumerate(maps):
            if mp.size <= 0 or mp.container_id < 0 or mp.host_id < 0:
                raise ConfigError(
                    f"{where}.{name}[{j}]", "ids must not be negative and size must be positive"
                )


def _check_proc_destination(dest: str, mnt: Mount, bind: bool, where: str) -> None:
    if dest == "/proc":
        # A bind is checked at mount time: only a procfs source may cover /proc.
        if not bind and mnt.type != "proc":
            raise ConfigError(f"{where}.destination", f"only proc may be mounted on /proc, not {mnt.type}")
        return
    if dest.startswith("/proc/") and dest not in PROC_MOUNT_ALLOWED:
        raise ConfigError(f"{where}.destination", f"{dest} cannot be mounted because it is inside /proc")


def sysctl_parts(key: str) -> list[str]:
    return key.split("/") if "/" in key else key.split(".")


def validate_sysctl(spec: Spec) -> None:
    """Only namespaced sysctls, and only when the container has that namespace of its own."""
    for key in spec.linux.sysctl:
        where = f"linux.sysctl.{key}"
        parts = sysctl_parts(key)
        if not key or any(p in ("", ".", "..") for p in parts):
            raise ConfigError(where, "not a valid sysctl name")
        dotted = ".".join(parts)
        if dotted in _IPC_SYSCTLS or dotted.startswith("fs.mqueue."):
            needed = "ipc"
        elif dotted.startswith("net."):
            needed = "network"
        elif dotted in _UTS_SYSCTLS:
            needed = "uts"
        else:
            raise ConfigError(where, "sysctl is not in a separate kernel namespace")
        ns = spec.linux.namespace(needed)
        if ns is None:
            raise ConfigError(where, f"sysctl is not allowed in the host's {needed} namespace")
        if ns.path and _is_host_namespace(needed, ns.path):
            raise ConfigError(where, f"sysctl is not allowed in the host's {needed} namespace ({ns.path})")


def _is_host_namespace(ns_type: str, path: str) -> bool:
    """Is ``path`` the namespace the runtime itself runs in (or pid 1's, when we may look)?"""
    proc_name = {"network": "net"}.get(ns_type, ns_type)
    try:
        a = os.stat(path)
    except OSError:
        return False
    for pid in ("self", "1"):
        try:
            b = os.stat(f"/proc/{pid}/ns/{proc_name}")
        except OSError:
            continue
        if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
            return True
    return False


def lsm_check(proc: Process) -> None:
    """Refuse an AppArmor profile or SELinux label when that LSM is not enabled (runc does too)."""
    if proc.apparmor_profile and not _apparmor_enabled():
        raise ConfigError("process.apparmorProfile", "AppArmor is not enabled on this host")
    if proc.selinux_label and not os.path.exists("/sys/fs/selinux/enforce"):
        raise ConfigError("process.selinuxLabel", "SELinux is not enabled on this host")


def _apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False
