"""cgroup management for the runtime and the engine: v1 and v2 drivers behind one interface.

Knows nothing about containers: paths, controllers, limits, stats, freezing. The runtime opens
a manager with ``open_manager`` at create time, stores ``save()`` in its state, and rebuilds
it with ``load_manager`` for pause, update, events, kill and delete.
"""

from __future__ import annotations

from hako.cgroups.base import CgroupManager
from hako.cgroups.detect import available_controllers, cgroup_version, host_layout
from hako.errors import ConfigError, HakoError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "CgroupManager",
    "available_controllers",
    "cgroup_version",
    "host_layout",
    "load_manager",
    "open_manager",
]


def open_manager(cgroups_path: str, container_id: str, *, systemd: bool = False) -> CgroupManager:
    """A manager for the spec's ``linux.cgroupsPath`` (nothing is created until ``create()``).

    Absolute paths are taken from each hierarchy's root; relative ones (and the default
    ``hako-<id>`` when the path is empty) from the caller's own cgroup in that hierarchy.
    """
    from hako.cgroups import detect, paths

    if systemd:
        paths.check_systemd(cgroups_path)
    lay = detect.layout()
    own = detect.own_cgroups()

    def resolve(key: str, mountpoint: str, root: str) -> tuple[str, str]:
        cg = paths.in_hierarchy(cgroups_path, container_id, own.get(key, "/"))
        if cg == "/":
            # Limits written there would apply to the whole host.
            raise ConfigError(paths.SPEC_PATH, f"{cgroups_path!r} resolves to the root cgroup")
        paths.check_not_protected(cg)
        return mountpoint, paths.host_dir(mountpoint, root, cg)

    if lay.kind == "v2":
        from hako.cgroups.v2 import V2Manager

        assert lay.unified is not None
        mnt, d = resolve("", lay.unified.mountpoint, lay.unified.root)
        return V2Manager(mnt, d)
    if not lay.v1:
        raise HakoError("no cgroup hierarchy is mounted (see /proc/self/mountinfo)")
    from hako.cgroups.v1 import V1Manager

    v1_paths = {}
    for h in lay.v1_hierarchies():
        v1_paths[",".join(h.controllers)] = resolve(h.controllers[0], h.mountpoint, h.root)
    unified = resolve("", lay.unified.mountpoint, lay.unified.root) if lay.unified else None
    return V1Manager(v1_paths, unified)


def load_manager(saved: dict[str, Any]) -> CgroupManager:
    """Rebuild a manager from ``CgroupManager.save()`` output."""
    version = saved.get("version")
    if version == 2:
        from hako.cgroups.v2 import V2Manager

        return V2Manager(saved["mountpoint"], saved["path"])
    if version == 1:
        from hako.cgroups.v1 import V1Manager

        paths = {k: (v[0], v[1]) for k, v in saved["paths"].items()}
        unified = saved.get("unified")
        return V1Manager(paths, (unified[0], unified[1]) if unified else None)
    raise HakoError(f"saved cgroup state has an unknown version {version!r}")
