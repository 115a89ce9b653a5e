"""cgroupsPath resolution: from the spec's string to a directory in each hierarchy.

An absolute path is relative to each hierarchy's root; a relative one (and the default, when
the spec has none) is nested under the caller's own cgroup in that hierarchy, so a container
can never escape the limits of whoever runs the runtime.
"""

from __future__ import annotations

import os
import posixpath

from hako.errors import ConfigError, HakoError

SPEC_PATH = "linux.cgroupsPath"

# Prefixes (inside every hierarchy) that hako refuses to create or change; a colon-separated
# list, so a test harness can fence off the cgroup it runs in.
PROTECT_ENV = "HAKO_CGROUP_PROTECT"


def clean(path: str) -> str:
    """Normalise a cgroup path; reject '..' so a path cannot climb out of its base."""
    if "\x00" in path:
        raise ConfigError(SPEC_PATH, f"{path!r}: contains a NUL byte")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ConfigError(SPEC_PATH, f"{path!r}: '..' is not allowed in a cgroup path")
    return "/" + "/".join(parts)


def is_systemd_path(path: str) -> bool:
    return path.count(":") == 2 and not path.startswith("/")


def check_systemd(path: str) -> None:
    """The systemd driver needs a running systemd; say so instead of guessing a path."""
    if not os.path.isdir("/run/systemd/system"):
        raise HakoError(
            f"cgroupsPath {path!r}: the systemd cgroup driver was requested but systemd is not "
            "running (/run/systemd/system is missing); use a plain path without --systemd-cgroup"
        )
    raise HakoError(f"cgroupsPath {path!r}: the systemd cgroup driver is not supported yet")


def in_hierarchy(cgroups_path: str, container_id: str, own: str) -> str:
    """The cgroup path inside one hierarchy (always absolute, cleaned)."""
    if not cgroups_path:
        return clean(posixpath.join(own, f"hako-{container_id}"))
    if cgroups_path.startswith("/"):
        return clean(cgroups_path)
    return clean(posixpath.join(own or "/", cgroups_path))


def host_dir(mountpoint: str, mount_root: str, cgroup_path: str) -> str:
    """Directory on the host for a cgroup path seen from inside a hierarchy mounted at
    ``mountpoint`` whose root is ``mount_root`` (not "/" when a container bind-mounts a subtree)."""
    rel = cgroup_path
    if mount_root != "/" and (rel == mount_root or rel.startswith(mount_root + "/")):
        rel = rel[len(mount_root) :] or "/"
    return mountpoint.rstrip("/") + (rel if rel != "/" else "")


def check_not_protected(cgroup_path: str) -> None:
    prefixes = [p for p in os.environ.get(PROTECT_ENV, "").split(":") if p]
    for p in prefixes:
        p = clean(p)
        if cgroup_path == p or cgroup_path.startswith(p.rstrip("/") + "/"):
            raise HakoError(
                f"cgroup {cgroup_path}: refusing to create or change cgroups under {p} "
                f"(protected by {PROTECT_ENV}); give an absolute cgroupsPath outside it"
            )
