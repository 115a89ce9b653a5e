"""``hako info``, ``version``, ``system df`` and ``system prune``."""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Any

import hako
from hako.engine.runtime_client import resolve_runtime


def _runtime_version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.splitlines()[0] if out else "unknown"


def _images(engine: Any) -> list[Any]:
    store = engine.images.store
    return list(store.list()) if store is not None else []


def info(engine: Any) -> dict[str, Any]:
    from hako.cgroups import cgroup_version

    infos = engine.list_containers(all_containers=True)
    states = [i["State"]["Status"] for i in infos]
    try:
        runtime = resolve_runtime(engine.default_runtime)
    except Exception:  # noqa: BLE001 - info must still print
        runtime = engine.default_runtime
    snap = engine.images.snapshotter
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) * 1024
    return {
        "Containers": len(infos),
        "ContainersRunning": states.count("running"),
        "ContainersPaused": states.count("paused"),
        "ContainersStopped": len(infos) - states.count("running") - states.count("paused"),
        "Images": len(_images(engine)),
        "Volumes": len(engine.volumes.list_volumes()),
        "StorageDriver": getattr(snap, "driver", "overlay") if snap is not None else "overlay",
        "CgroupVersion": str(cgroup_version()),
        "CgroupParent": engine.cgroup_parent,
        "DefaultRuntime": runtime,
        "RuntimeVersion": _runtime_version(runtime),
        "HakoRootDir": str(engine.root),
        "KernelVersion": platform.release(),
        "OperatingSystem": _os_name(),
        "Architecture": platform.machine(),
        "NCPU": os.cpu_count(),
        "MemTotal": mem,
        "Daemonless": True,
    }


def _os_name() -> str:
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def version(engine: Any) -> dict[str, Any]:
    try:
        runtime = resolve_runtime(engine.default_runtime)
    except Exception:  # noqa: BLE001
        runtime = engine.default_runtime
    return {"Version": hako.__version__, "PythonVersion": platform.python_version(),
            "Os": platform.system().lower(), "Arch": platform.machine(), "Runtime": runtime,
            "RuntimeVersion": _runtime_version(runtime)}


def disk_usage(engine: Any) -> list[dict[str, Any]]:
    from hako.engine.stats import human

    images = _images(engine)
    infos = engine.list_containers(all_containers=True)
    used_images = {i["ImageID"] for i in infos}
    csize = 0
    for i in infos:
        rec = engine.get(i["Id"])
        csize += engine.images.usage(rec["Hako"]["Rootfs"], engine.cdir(rec["Id"]))
    vols = engine.volumes.list_volumes()
    vsize = sum(engine.volumes.size(v["Name"]) for v in vols)
    active_vols = sum(1 for v in vols if engine.volumes.users(v["Name"]))
    running = sum(1 for i in infos if i["State"]["Running"])
    return [
        {"Type": "Images", "Total": len(images), "Active": sum(1 for im in images if im.id in used_images),
         "Size": human(sum(int(getattr(im, "size", 0) or 0) for im in images))},
        {"Type": "Containers", "Total": len(infos), "Active": running, "Size": human(csize)},
        {"Type": "Local Volumes", "Total": len(vols), "Active": active_vols, "Size": human(vsize)},
    ]


def prune(engine: Any, volumes: bool = False) -> list[str]:
    out = ["Deleted Containers:", *engine.prune()]
    if volumes:
        out += ["Deleted Volumes:", *engine.volumes.prune()]
    store = engine.images.store
    if store is not None:
        try:
            out += ["Deleted Images:", *[str(x) for x in store.prune()]]
        except Exception as exc:  # noqa: BLE001 - report, keep the rest of the prune
            out.append(f"images: {exc}")
    return out
