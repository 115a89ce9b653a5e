"""Output-only commands: list, ps (table), spec, features, events."""

from __future__ import annotations

import os

from hako.errors import Conflict, HakoError

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    from typing import Any


def ps_table(pids: list[int]) -> str:
    lines = [f"{'UID':<8} {'PID':>7} {'PPID':>7} {'STAT':<4} CMD"]
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
            fields = data[data.rindex(b")") + 2 :].decode().split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            uid = os.stat(f"/proc/{pid}").st_uid
        except (OSError, ValueError):
            continue
        lines.append(f"{uid:<8} {pid:>7} {fields[1]:>7} {fields[0]:<4} {cmd}")
    return "\n".join(lines) + "\n"


def list_containers(root: str, fmt: str, quiet: bool) -> str:
    from hako.runtime.state import Container, list_ids

    rows = []
    for cid in list_ids(root):
        try:
            rows.append(Container(root, cid).oci_state())
        except HakoError:
            continue
    if quiet:
        return "".join(r["id"] + "\n" for r in rows)
    if fmt == "json":
        from hako.runtime import fastjson

        return fastjson.dumps(rows) + "\n"
    if fmt != "table":
        raise HakoError(f"invalid format option {fmt!r}")
    out = [f"{'ID':<20} {'PID':<8} {'STATUS':<10} {'BUNDLE':<40} {'CREATED':<32} OWNER"]
    for r in rows:
        out.append(f"{r['id']:<20} {r['pid']:<8} {r['status']:<10} {r['bundle']:<40} {r['created']:<32} {r['owner'] or 'root'}")
    return "\n".join(out) + "\n"


def default_spec(rootless: bool) -> dict[str, Any]:
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "hako",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                            "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }
    if rootless:
        lx = spec["linux"]
        lx["resources"] = {}
        lx["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup", "user")]
        lx["uidMappings"] = [{"containerID": 0, "hostID": os.getuid(), "size": 1}]
        lx["gidMappings"] = [{"containerID": 0, "hostID": os.getgid(), "size": 1}]
        mounts = [m for m in spec["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup")]
        for m in mounts:
            if m["destination"] == "/dev/pts":
                m["options"] = [o for o in m["options"] if o != "gid=5"]
        mounts.append({"destination": "/sys", "type": "none", "source": "/sys",
                       "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
        spec["mounts"] = mounts
    return spec


def write_spec(bundle: str, rootless: bool) -> None:
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise Conflict(f"File {path} exists. Remove it first")
    import json

    with open(path, "w") as f:
        f.write(json.dumps(default_spec(rootless), indent="\t") + "\n")


def features() -> dict[str, Any]:
    from hako.seccomp import features as seccomp_features
    from hako.sys.caps import supported_names

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.1.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": sorted([
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "lazytime",
            "mand", "noatime", "nodev", "nodiratime", "noexec", "nolazytime", "nomand", "norelatime",
            "nostrictatime", "nosuid", "nosymfollow", "private", "rbind", "relatime", "remount", "ro",
            "rprivate", "rshared", "rslave", "runbindable", "rw", "shared", "slave", "strictatime",
            "suid", "symfollow", "sync", "tmpcopyup", "unbindable",
        ]),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": supported_names(),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            # What this host's libseccomp and kernel support (knownFlags/supportedFlags probed).
            "seccomp": seccomp_features(),
            "apparmor": {"enabled": os.path.exists("/sys/kernel/security/apparmor")},
            "selinux": {"enabled": os.path.exists("/sys/fs/selinux/enforce")},
        },
        "annotations": {"org.opencontainers.runtime-spec.features.version": "1.1.0"},
    }


def _parse_interval(s: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for u in ("ms", "s", "m", "h"):
        if s.endswith(u):
            try:
                return float(s[: -len(u)]) * units[u]
            except ValueError:
                break
    try:
        return float(s)
    except ValueError:
        raise HakoError(f"invalid interval {s!r}") from None


def events(root: str, cid: str, stats: bool, interval: str) -> int:
    import json
    import sys
    import time

    from hako.runtime.state import Container

    secs = _parse_interval(interval)
    if secs <= 0:
        raise HakoError("duration interval must be greater than 0")
    c = Container(root, cid)
    c.load()
    if c.status() == "stopped":
        raise Conflict(f"container {cid}: container not running")
    cgm = c.cgroup_manager()

    def emit(kind: str, data: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps({"type": kind, "id": cid, "data": data}) + "\n")
        sys.stdout.flush()

    if stats:
        emit("stats", cgm.stats() if cgm is not None else {})
        return 0
    last_oom = cgm.oom_kill_count() if cgm is not None else 0
    while True:
        c.state = None
        try:
            c.load()
        except HakoError:
            return 0
        if c.status() == "stopped":
            return 0
        if cgm is not None:
            emit("stats", cgm.stats())
            oom = cgm.oom_kill_count()
            if oom > last_oom:
                emit("oom", {})
                last_oom = oom
        time.sleep(secs)
