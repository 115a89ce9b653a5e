"""Docker's ``run``/``create`` flags merged with the image config, and the OCI config.json they give.

``CreateOptions`` is what the user asked for; ``merge_config`` folds in the image's
Entrypoint/Cmd/Env/WorkingDir/User/StopSignal/Healthcheck/Volumes the way Docker does and gives the
Docker-shaped ``Config``; ``build_spec`` turns a stored container record into the runtime spec.
"""

from __future__ import annotations

import os

from hako.engine.signals import SIGNALS, parse_signal  # noqa: F401 - re-exported
from hako.errors import ConfigError
from hako.records import dataclass, field

TYPE_CHECKING = False  # typing, pathlib and re load only for the flags that need them (start-up time)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's default capability set.
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
ALL_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
            "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
            "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
            "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
            "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
            "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
            "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
            "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]

MASKED_PATHS = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/sys/devices/virtual/powercap"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

# Docker's default device cgroup rules: deny all, then mknod anything plus the usual character devices.
DEFAULT_DEVICE_RULES: list[dict[str, Any]] = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    *({"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
      for ma, mi in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (10, 200))),
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
]

INIT_BINARIES = ["/usr/bin/catatonit", "/usr/libexec/podman/catatonit", "/usr/bin/tini", "/usr/bin/tini-static"]
INIT_PATH = "/sbin/hako-init"

RLIMITS = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
           "rss", "rtprio", "rttime", "sigpending", "stack", "as"}


# hako.records: these option records need only construction, ==, and a repr; the real
# dataclasses module (inspect, ast, ...) would cost ``hako run`` several milliseconds.
@dataclass
class MountRequest:
    """One -v/--mount/--tmpfs request: ``type`` is bind, volume or tmpfs; volume with no name = anonymous."""

    type: str
    target: str
    source: str = ""
    readonly: bool = False
    options: list[str] = field(default_factory=list)


@dataclass
class CreateOptions:
    image: str
    command: list[str] = field(default_factory=list)
    name: str | None = None
    detach: bool = False
    interactive: bool = False
    tty: bool = False
    rm: bool = False
    env: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    entrypoint: str | None = None
    mounts: list[MountRequest] = field(default_factory=list)
    read_only: bool = False
    memory: int | None = None
    memory_swap: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    pids_limit: int | None = None
    ulimits: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    security_opt: list[str] = field(default_factory=list)
    hostname: str | None = None
    network: str = "none"
    restart: str = "no"
    health_cmd: str | None = None
    health_interval: float | None = None
    health_timeout: float | None = None
    health_retries: int | None = None
    health_start_period: float | None = None
    no_healthcheck: bool = False
    init: bool = False
    labels: list[str] = field(default_factory=list)
    stop_signal: str | None = None
    stop_timeout: int | None = None
    pull: str = "missing"
    runtime: str | None = None
    cgroup_parent: str | None = None
    log_max_size: int = 10 * 1024 * 1024
    log_max_files: int = 3


# --- small parsers ---------------------------------------------------------------------------------
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_bytes(text: str, what: str = "size") -> int:
    import re

    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*", text.lower())
    if not m:
        raise ConfigError(what, f"invalid size {text!r} (e.g. 512m, 1g)")
    value = float(m.group(1))
    return -1 if value < 0 else int(value * _UNITS[m.group(2)])


def parse_duration(text: str | float | int, what: str = "duration") -> float:
    if isinstance(text, int | float):
        return float(text)
    import re

    total = 0.0
    pos = 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", text):
        if m.start() != pos:
            break
        pos = m.end()
        total += float(m.group(1)) * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if pos != len(text) or not text:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(what, f"invalid duration {text!r} (e.g. 30s, 1m30s, 500ms)") from None
    return total


def parse_restart(text: str) -> dict[str, Any]:
    name, _, count = text.partition(":")
    if name not in ("no", "on-failure", "always", "unless-stopped"):
        raise ConfigError("restart", f"invalid restart policy {text!r}")
    if count and name != "on-failure":
        raise ConfigError("restart", f"maximum retry count only applies to on-failure: {text!r}")
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


def parse_ulimit(text: str) -> dict[str, Any]:
    name, _, values = text.partition("=")
    if name not in RLIMITS or not values:
        raise ConfigError("ulimit", f"invalid ulimit {text!r} (e.g. nofile=1024:2048)")
    soft, _, hard = values.partition(":")
    return {"Name": name, "Soft": int(soft), "Hard": int(hard or soft)}


def parse_volume(spec: str) -> MountRequest:
    """``-v``: ``/host:/ctr[:opts]`` (bind), ``name:/ctr[:opts]`` (named volume), ``/ctr`` (anonymous)."""
    parts = spec.split(":")
    if len(parts) == 1:
        return MountRequest("volume", _abs(parts[0], spec))
    if len(parts) > 3:
        raise ConfigError("volume", f"invalid volume spec {spec!r}")
    src, dst = parts[0], parts[1]
    opts = parts[2].split(",") if len(parts) == 3 else []
    ro = "ro" in opts
    extra = [o for o in opts if o not in ("ro", "rw", "z", "Z")]
    kind = "bind" if src.startswith("/") or src.startswith(".") else "volume"
    if kind == "bind":
        src = absolute(src)
    return MountRequest(kind, _abs(dst, spec), src, ro, extra)


def parse_mount(spec: str) -> MountRequest:
    """``--mount type=bind|volume|tmpfs,source=...,target=...,readonly,tmpfs-size=...``."""
    fields: dict[str, str] = {}
    for item in spec.split(","):
        k, eq, v = item.partition("=")
        fields[k.strip()] = v if eq else "true"
    kind = fields.pop("type", "volume")
    target = fields.pop("target", None) or fields.pop("dst", None) or fields.pop("destination", None)
    if not target:
        raise ConfigError("mount", f"{spec!r}: target is required")
    source = fields.pop("source", None) or fields.pop("src", None) or ""
    ro = any(fields.pop(k, "false") in ("true", "1") for k in ("readonly", "ro"))
    opts: list[str] = []
    if kind == "tmpfs":
        if "tmpfs-size" in fields:
            opts.append(f"size={parse_bytes(fields.pop('tmpfs-size'))}")
        if "tmpfs-mode" in fields:
            opts.append(f"mode={fields.pop('tmpfs-mode')}")
    elif kind == "bind":
        if not source:
            raise ConfigError("mount", f"{spec!r}: a bind mount needs a source")
        source = absolute(source)
    elif kind != "volume":
        raise ConfigError("mount", f"{spec!r}: unsupported type {kind!r}")
    return MountRequest(kind, _abs(target, spec), source, ro, opts)


def parse_tmpfs(spec: str) -> MountRequest:
    target, _, opts = spec.partition(":")
    return MountRequest("tmpfs", _abs(target, spec), "", False, [o for o in opts.split(",") if o])


def absolute(path: str) -> str:
    """``str(Path(path).absolute())`` without pathlib (it imports re, fnmatch and urllib)."""
    lead = "//" if path.startswith("//") and not path.startswith("///") else "/"
    parts = [c for c in path.split("/") if c and c != "."]
    if not path.startswith("/"):
        cwd = os.getcwd()
        return cwd if not parts else (cwd.rstrip("/") + "/" + "/".join(parts))
    return lead + "/".join(parts)


def _abs(path: str, spec: str) -> str:
    if not path.startswith("/"):
        raise ConfigError("volume", f"{spec!r}: the container path must be absolute")
    return path


def read_env_file(path: str) -> list[str]:
    out = []
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError("env-file", f"{path}: {exc.strerror}") from None
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    env: dict[str, str] = {}
    for item in base:
        k, _, v = item.partition("=")
        env[k] = v
    for item in extra:
        k, eq, v = item.partition("=")
        if not eq:
            # ``-e NAME`` passes the caller's value through, as Docker does.
            if k in os.environ:
                env[k] = os.environ[k]
            continue
        env[k] = v
    return [f"{k}={v}" for k, v in env.items()]


def cap_name(cap: str) -> str:
    cap = cap.upper()
    return cap if cap.startswith("CAP_") else "CAP_" + cap


def capabilities(privileged: bool, add: list[str], drop: list[str]) -> list[str]:
    if privileged:
        return list(ALL_CAPS)
    caps = list(DEFAULT_CAPS)
    adds = [cap_name(c) for c in add]
    drops = [cap_name(c) for c in drop]
    if "CAP_ALL" in drops:
        caps = []
    if "CAP_ALL" in adds:
        caps = list(ALL_CAPS)
    for c in adds:
        if c != "CAP_ALL" and c not in caps:
            if c not in ALL_CAPS:
                raise ConfigError("cap-add", f"unknown capability {c}")
            caps.append(c)
    return [c for c in caps if c not in drops]


def host_bounding_caps() -> list[str]:
    """The capabilities this process may hand on (root here may lack some, e.g. CAP_SYS_RESOURCE)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    bits = int(line.split()[1], 16)
                    return [c for i, c in enumerate(ALL_CAPS) if bits >> i & 1]
    except OSError:
        pass
    return list(ALL_CAPS)


def host_devices() -> list[dict[str, Any]]:
    """Every character and block device of the host's /dev, for --privileged (as Docker gives them)."""
    import stat

    out: list[dict[str, Any]] = []
    skip = ("/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/console", "/dev/ptmx", "/dev/tty")
    for dirpath, dirnames, filenames in os.walk("/dev"):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if path in skip:
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                out.append({"path": path, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                            "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid})
    return out


# --- image config merge ----------------------------------------------------------------------------
def health_from(opts: CreateOptions, image_health: dict[str, Any] | None) -> dict[str, Any] | None:
    if opts.no_healthcheck:
        return {"Test": ["NONE"]}
    hc = dict(image_health or {})
    if opts.health_cmd:
        hc["Test"] = ["CMD-SHELL", opts.health_cmd]
    if not hc.get("Test") or hc["Test"][0] == "NONE":
        return hc or None
    for key, val in (("Interval", opts.health_interval), ("Timeout", opts.health_timeout),
                     ("StartPeriod", opts.health_start_period)):
        if val is not None:
            hc[key] = int(val * 1e9)
    if opts.health_retries is not None:
        hc["Retries"] = opts.health_retries
    return hc


def merge_config(opts: CreateOptions, image_cfg: dict[str, Any], cid: str, image_name: str) -> dict[str, Any]:
    """The Docker-shaped ``Config`` of a new container."""
    if opts.entrypoint is not None:
        entrypoint = [opts.entrypoint] if opts.entrypoint else []
        cmd = list(opts.command)
    else:
        entrypoint = list(image_cfg.get("Entrypoint") or [])
        cmd = list(opts.command) if opts.command else list(image_cfg.get("Cmd") or [])
    if not entrypoint and not cmd:
        raise ConfigError("cmd", "no command specified and the image has no Cmd or Entrypoint")
    hostname = opts.hostname or cid[:12]
    env = merge_env(list(image_cfg.get("Env") or []), [])
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    extra = [f"HOSTNAME={hostname}"] + (["TERM=xterm"] if opts.tty else [])
    for f in opts.env_files:
        extra += read_env_file(f)
    env = merge_env(env, extra + list(opts.env))
    labels = dict(image_cfg.get("Labels") or {})
    for item in opts.labels:
        k, _, v = item.partition("=")
        labels[k] = v
    stop_signal = opts.stop_signal or image_cfg.get("StopSignal") or "SIGTERM"
    parse_signal(stop_signal)
    return {
        "Hostname": hostname,
        "Domainname": "",
        "User": opts.user if opts.user is not None else (image_cfg.get("User") or ""),
        "AttachStdin": opts.interactive and not opts.detach,
        "AttachStdout": not opts.detach,
        "AttachStderr": not opts.detach,
        "Tty": opts.tty,
        "OpenStdin": opts.interactive,
        "StdinOnce": opts.interactive and not opts.detach,
        "Env": env,
        "Cmd": cmd,
        "Entrypoint": entrypoint or None,
        "Image": image_name,
        "Volumes": dict(image_cfg.get("Volumes") or {}) or None,
        "WorkingDir": opts.workdir if opts.workdir is not None else (image_cfg.get("WorkingDir") or ""),
        "Labels": labels,
        "StopSignal": stop_signal,
        "StopTimeout": opts.stop_timeout,
        "Healthcheck": health_from(opts, image_cfg.get("Healthcheck")),
    }


def host_config(opts: CreateOptions, runtime: str, cgroup_parent: str) -> dict[str, Any]:
    for so in opts.security_opt:
        key = so.split("=", 1)[0].split(":", 1)[0]
        if key not in ("no-new-privileges", "seccomp", "label", "apparmor"):
            raise ConfigError("security-opt", f"unsupported option {so!r}")
    if opts.network not in ("none", "host", "bridge", "default"):
        raise ConfigError("network", f"network {opts.network!r}: only none and host exist for now")
    if opts.rm and parse_restart(opts.restart)["Name"] != "no":
        raise ConfigError("restart", "conflicting options: --restart and --rm")
    swap = opts.memory_swap
    if opts.memory and swap is None:
        swap = opts.memory * 2
    return {
        "Binds": [f"{m.source}:{m.target}{':ro' if m.readonly else ''}" for m in opts.mounts if m.type == "bind"],
        "NetworkMode": "none" if opts.network in ("bridge", "default") else opts.network,
        "RestartPolicy": parse_restart(opts.restart),
        "AutoRemove": opts.rm,
        "Privileged": opts.privileged,
        "ReadonlyRootfs": opts.read_only,
        "CapAdd": [cap_name(c) for c in opts.cap_add] or None,
        "CapDrop": [cap_name(c) for c in opts.cap_drop] or None,
        "SecurityOpt": list(opts.security_opt) or None,
        "Tmpfs": {m.target: ",".join(m.options) for m in opts.mounts if m.type == "tmpfs"} or None,
        "Memory": opts.memory or 0,
        "MemorySwap": swap or 0,
        "NanoCpus": int((opts.cpus or 0) * 1e9),
        "CpuShares": opts.cpu_shares or 0,
        "CpusetCpus": opts.cpuset_cpus or "",
        "PidsLimit": opts.pids_limit,
        "Ulimits": [parse_ulimit(u) for u in opts.ulimits] or None,
        "Init": opts.init,
        "Runtime": runtime,
        "CgroupParent": cgroup_parent,
        "LogConfig": {"Type": "json-file", "Config": {"max-size": str(opts.log_max_size),
                                                      "max-file": str(opts.log_max_files)}},
    }


# --- users -----------------------------------------------------------------------------------------
def _read_db(rootfs: str | Path, name: str) -> list[list[str]]:
    path = os.path.join(rootfs, "etc", name)
    try:
        if os.path.islink(path):
            target = os.readlink(path)
            path = (os.path.join(rootfs, target.lstrip("/")) if target.startswith("/")
                    else os.path.join(os.path.dirname(path), target))
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(rootfs: str | Path, spec: str) -> dict[str, Any]:
    """``user[:group]`` (names or numbers) to OCI ``process.user``, using the image's passwd and group."""
    user, _, group = spec.partition(":")
    passwd = _read_db(rootfs, "passwd")
    groups = _read_db(rootfs, "group")
    uid: int | None = None
    gid: int | None = None
    username = ""
    if user == "":
        uid, gid, username = 0, 0, "root"
    elif user.isdigit():
        uid = int(user)
        for p in passwd:
            if len(p) > 3 and p[2] == user:
                gid, username = int(p[3]), p[0]
                break
    else:
        for p in passwd:
            if len(p) > 3 and p[0] == user:
                uid, gid, username = int(p[2]), int(p[3]), user
                break
        if uid is None:
            raise ConfigError("user", f"unable to find user {user}: no matching entries in passwd file")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            match = [g for g in groups if len(g) > 2 and g[0] == group]
            if not match:
                raise ConfigError("user", f"unable to find group {group}: no matching entries in group file")
            gid = int(match[0][2])
    extra = []
    if username and not group:
        for g in groups:
            if len(g) > 3 and username in g[3].split(",") and int(g[2]) != (gid or 0):
                extra.append(int(g[2]))
    out: dict[str, Any] = {"uid": uid or 0, "gid": gid or 0}
    if extra:
        out["additionalGids"] = extra
    return out


# --- the OCI spec ----------------------------------------------------------------------------------
def _seccomp(host: dict[str, Any], caps: list[str]) -> dict[str, Any] | None:
    if host.get("Privileged"):
        return None
    for so in host.get("SecurityOpt") or []:
        key, _, value = so.replace(":", "=", 1).partition("=")
        if key == "seccomp":
            if value == "unconfined":
                return None
            import json

            try:
                with open(value) as f:
                    prof = json.loads(f.read())
            except (OSError, ValueError) as exc:
                raise ConfigError("security-opt", f"seccomp profile {value}: {exc}") from None
            return _oci_seccomp(prof, caps)
    try:
        from hako.seccomp import default_profile  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    try:
        return dict(default_profile(caps))
    except Exception:  # noqa: BLE001 - a missing libseccomp must not stop containers
        return None


def _oci_seccomp(prof: dict[str, Any], caps: list[str]) -> dict[str, Any]:
    """Docker's profile format is OCI's plus ``archMap`` and per-rule includes/excludes (by
    capability, architecture, kernel version): resolved for this host and the container's caps."""
    from hako.seccomp import from_docker

    return dict(from_docker(prof, caps))


def build_spec(rec: dict[str, Any], rootfs: str | Path, cdir: str | Path, volume_path: Any) -> dict[str, Any]:
    """config.json for a stored container record; ``volume_path(name)`` gives a volume's _data dir."""
    cfg, host = rec["Config"], rec["HostConfig"]
    privileged = bool(host.get("Privileged"))
    caps = capabilities(privileged, host.get("CapAdd") or [], host.get("CapDrop") or [])
    if privileged:
        # "All" capabilities means all that we have ourselves; the runtime cannot grant more.
        bounding = set(host_bounding_caps())
        caps = [c for c in caps if c in bounding]
    args = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "rw" if privileged else "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "rw" if privileged else "ro"]},
    ]
    for name in ("hostname", "hosts", "resolv.conf"):
        mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": os.path.join(cdir, name),
                       "options": ["rbind", "rprivate"]})
    if host.get("Init"):
        init = next((p for p in INIT_BINARIES if os.path.exists(p)), None)
        if init is None:
            raise ConfigError("init", "no init binary found (install catatonit or tini)")
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": init, "options": ["rbind", "ro"]})
        args = [INIT_PATH, "--", *args]
    for m in rec.get("Mounts", []):
        if m["Type"] == "tmpfs":
            mounts.append({"destination": m["Destination"], "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", "noexec", *m.get("Options", [])]})
            continue
        src = m["Source"] if m["Type"] == "bind" else str(volume_path(m["Name"]))
        mounts.append({"destination": m["Destination"], "type": "bind", "source": src,
                       "options": ["rbind", "rprivate", "rw" if m["RW"] else "ro"]})
    user = resolve_user(rootfs, cfg.get("User") or "")
    rlimits = [{"type": f"RLIMIT_{u['Name'].upper()}", "soft": u["Soft"], "hard": u["Hard"]}
               for u in host.get("Ulimits") or []]
    no_new_privs = any(so.split("=")[0].split(":")[0] == "no-new-privileges" and not so.endswith("false")
                       for so in host.get("SecurityOpt") or [])
    process: dict[str, Any] = {
        "terminal": bool(cfg.get("Tty")),
        "user": user,
        "args": args,
        "env": list(cfg.get("Env") or []),
        "cwd": cfg.get("WorkingDir") or "/",
        "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
        "noNewPrivileges": no_new_privs,
        "oomScoreAdj": 0,
    }
    if rlimits:
        process["rlimits"] = rlimits
    namespaces: list[dict[str, str]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup")]
    if host.get("NetworkMode") != "host":
        namespaces.append({"type": "network"})
    join = rec["Hako"].get("JoinPid")
    if join:
        files = {"pid": "pid", "ipc": "ipc", "uts": "uts", "network": "net"}
        namespaces = [dict(ns, path=f"/proc/{join}/ns/{files[ns['type']]}") if ns["type"] in files else ns
                      for ns in namespaces]
    resources: dict[str, Any] = {
        "devices": [{"allow": True, "access": "rwm"}] if privileged else DEFAULT_DEVICE_RULES,
    }
    mem: dict[str, Any] = {}
    if host.get("Memory"):
        mem["limit"] = host["Memory"]
        if host.get("MemorySwap"):
            mem["swap"] = host["MemorySwap"]
    if mem:
        resources["memory"] = mem
    cpu: dict[str, Any] = {}
    if host.get("NanoCpus"):
        cpu["period"] = 100000
        cpu["quota"] = int(host["NanoCpus"] * 100000 / 1e9)
    if host.get("CpuShares"):
        cpu["shares"] = host["CpuShares"]
    if host.get("CpusetCpus"):
        cpu["cpus"] = host["CpusetCpus"]
    if cpu:
        resources["cpu"] = cpu
    if host.get("PidsLimit"):
        resources["pids"] = {"limit": host["PidsLimit"]}
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": rec["Hako"]["CgroupsPath"],
        "resources": resources,
    }
    if not privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    else:
        linux["devices"] = host_devices()
    seccomp = _seccomp(host, caps)
    if seccomp:
        linux["seccomp"] = seccomp
    return {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": "rootfs", "readonly": bool(host.get("ReadonlyRootfs"))},
        "hostname": cfg.get("Hostname") or rec["Id"][:12],
        "mounts": mounts,
        "linux": linux,
    }
