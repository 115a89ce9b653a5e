"""OCI runtime-spec objects (config.json, process.json) as dataclasses.

Field names are the spec's in snake_case. ``resources`` and ``seccomp`` are kept as the raw
JSON dicts: hako.cgroups and hako.seccomp validate them themselves (they also take the same
dicts from ``update --resources`` and from the engine), so the spec layer does not duplicate
their knowledge.

``parse_config(data)`` / ``parse_process(data)`` validate and raise ConfigError naming the JSON
path of the first offending field (for example ``linux.namespaces[2].type``).
"""

from __future__ import annotations

from hako.records import dataclass, field

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    from typing import Any

    from hako.errors import ConfigError


@dataclass(eq=False, repr=False)
class User:
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: list[int] = field(default_factory=list)
    username: str = ""


@dataclass(eq=False, repr=False)
class Capabilities:
    bounding: list[str] = field(default_factory=list)
    effective: list[str] = field(default_factory=list)
    inheritable: list[str] = field(default_factory=list)
    permitted: list[str] = field(default_factory=list)
    ambient: list[str] = field(default_factory=list)


@dataclass(eq=False, repr=False)
class Rlimit:
    type: str  # "RLIMIT_NOFILE"
    soft: int
    hard: int


@dataclass(eq=False, repr=False)
class ConsoleSize:
    height: int
    width: int


@dataclass(eq=False, repr=False)
class Scheduler:
    """OCI 1.2 ``process.scheduler``: sched_setattr(2) for the container process."""

    policy: str
    nice: int = 0
    priority: int = 0
    flags: list[str] = field(default_factory=list)
    runtime: int = 0
    deadline: int = 0
    period: int = 0


@dataclass(eq=False, repr=False)
class IOPriority:
    """OCI 1.2 ``process.ioPriority``: ioprio_set(2) for the container process."""

    io_class: str
    priority: int = 0


@dataclass(eq=False, repr=False)
class ExecCPUAffinity:
    """OCI 1.2 ``process.execCPUAffinity`` (exec only): CPUs before and after the cgroup join."""

    initial: set[int] | None = None
    final: set[int] | None = None


SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4,
                  "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
               "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}


@dataclass(eq=False, repr=False)
class Process:
    args: list[str]
    cwd: str = "/"
    env: list[str] = field(default_factory=list)
    terminal: bool = False
    console_size: ConsoleSize | None = None
    user: User = field(default_factory=User)
    capabilities: Capabilities | None = None
    rlimits: list[Rlimit] = field(default_factory=list)
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    apparmor_profile: str = ""
    selinux_label: str = ""
    scheduler: Scheduler | None = None
    io_priority: IOPriority | None = None
    exec_cpu_affinity: ExecCPUAffinity | None = None


@dataclass(eq=False, repr=False)
class Root:
    path: str
    readonly: bool = False


@dataclass(eq=False, repr=False)
class Mount:
    destination: str
    type: str = ""
    source: str = ""
    options: list[str] = field(default_factory=list)
    uid_mappings: list[IdMapping] = field(default_factory=list)
    gid_mappings: list[IdMapping] = field(default_factory=list)


@dataclass(eq=False, repr=False)
class Hook:
    path: str
    args: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    timeout: int | None = None


@dataclass(eq=False, repr=False)
class Hooks:
    prestart: list[Hook] = field(default_factory=list)
    create_runtime: list[Hook] = field(default_factory=list)
    create_container: list[Hook] = field(default_factory=list)
    start_container: list[Hook] = field(default_factory=list)
    poststart: list[Hook] = field(default_factory=list)
    poststop: list[Hook] = field(default_factory=list)


NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


@dataclass(eq=False, repr=False)
class Namespace:
    type: str  # one of NAMESPACE_TYPES
    path: str = ""  # join this namespace instead of creating one


@dataclass(eq=False, repr=False)
class IdMapping:
    container_id: int
    host_id: int
    size: int


@dataclass(eq=False, repr=False)
class Device:
    type: str  # "c", "b", "u" or "p"
    path: str
    major: int = 0
    minor: int = 0
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@dataclass(eq=False, repr=False)
class TimeOffset:
    secs: int = 0
    nanosecs: int = 0


@dataclass(eq=False, repr=False)
class Linux:
    namespaces: list[Namespace] = field(default_factory=list)
    uid_mappings: list[IdMapping] = field(default_factory=list)
    gid_mappings: list[IdMapping] = field(default_factory=list)
    time_offsets: dict[str, TimeOffset] = field(default_factory=dict)  # "monotonic", "boottime"
    devices: list[Device] = field(default_factory=list)
    cgroups_path: str = ""
    resources: dict[str, Any] = field(default_factory=dict)  # raw LinuxResources JSON
    seccomp: dict[str, Any] | None = None  # raw LinuxSeccomp JSON
    rootfs_propagation: str = ""
    masked_paths: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)
    mount_label: str = ""
    sysctl: dict[str, str] = field(default_factory=dict)
    personality: dict[str, Any] | None = None

    def namespace(self, ns_type: str) -> Namespace | None:
        return next((ns for ns in self.namespaces if ns.type == ns_type), None)


@dataclass(eq=False, repr=False)
class Spec:
    oci_version: str
    root: Root
    process: Process | None = None
    hostname: str = ""
    domainname: str = ""
    mounts: list[Mount] = field(default_factory=list)
    hooks: Hooks = field(default_factory=Hooks)
    annotations: dict[str, str] = field(default_factory=dict)
    linux: Linux = field(default_factory=Linux)


# ---------------------------------------------------------------------------------------------
# Parsing and validation. Each helper takes the JSON value and its JSON path, so the first
# offending field is named exactly in the ConfigError.

_CAP_RE_PREFIX = "CAP_"
RLIMIT_NAMES = (
    "RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC",
    "RLIMIT_RSS", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK",
)
HOOK_NAMES = (
    ("prestart", "prestart"), ("createRuntime", "create_runtime"), ("createContainer", "create_container"),
    ("startContainer", "start_container"), ("poststart", "poststart"), ("poststop", "poststop"),
)
PROPAGATIONS = ("", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable")


def _err(path: str, msg: str) -> ConfigError:
    from hako.errors import ConfigError

    return ConfigError(path, msg)


def _obj(v: Any, path: str, required: bool = False) -> dict[str, Any]:
    if v is None:
        if required:
            raise _err(path, "is required")
        return {}
    if not isinstance(v, dict):
        raise _err(path, f"must be an object, not {_tname(v)}")
    return v


def _tname(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(v), type(v).__name__
    )


def _str(v: Any, path: str, default: str = "", required: bool = False) -> str:
    if v is None:
        if required:
            raise _err(path, "is required")
        return default
    if not isinstance(v, str):
        raise _err(path, f"must be a string, not {_tname(v)}")
    return v


def _bool(v: Any, path: str) -> bool:
    if v is None:
        return False
    if not isinstance(v, bool):
        raise _err(path, f"must be a boolean, not {_tname(v)}")
    return v


def _int(v: Any, path: str, default: int | None = None, required: bool = False, minimum: int | None = None) -> Any:
    if v is None:
        if required:
            raise _err(path, "is required")
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise _err(path, f"must be an integer, not {_tname(v)}")
    if minimum is not None and v < minimum:
        raise _err(path, f"must be >= {minimum}, got {v}")
    return v


def _list(v: Any, path: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise _err(path, f"must be an array, not {_tname(v)}")
    return v


def _strs(v: Any, path: str) -> list[str]:
    items = _list(v, path)
    for i, s in enumerate(items):
        if not isinstance(s, str):
            raise _err(f"{path}[{i}]", f"must be a string, not {_tname(s)}")
    return list(items)


def _str_map(v: Any, path: str) -> dict[str, str]:
    d = _obj(v, path)
    for k, s in d.items():
        if not isinstance(s, str):
            raise _err(f"{path}.{k}", f"must be a string, not {_tname(s)}")
    return dict(d)


def _env(v: Any, path: str) -> list[str]:
    env = _strs(v, path)
    for i, e in enumerate(env):
        if "=" not in e:
            raise _err(f"{path}[{i}]", f"{e!r} is not of the form KEY=value")
    return env


def _caps(v: Any, path: str) -> list[str]:
    caps = _strs(v, path)
    from hako.sys.capnames import CAP_NUMBERS

    for i, c in enumerate(caps):
        if c.upper() not in CAP_NUMBERS:
            raise _err(f"{path}[{i}]", f"unknown capability {c!r}")
    return [c.upper() for c in caps]


def _id_maps(v: Any, path: str) -> list[IdMapping]:
    out = []
    for i, m in enumerate(_list(v, path)):
        p = f"{path}[{i}]"
        m = _obj(m, p, required=True)
        out.append(
            IdMapping(
                container_id=_int(m.get("containerID"), p + ".containerID", required=True, minimum=0),
                host_id=_int(m.get("hostID"), p + ".hostID", required=True, minimum=0),
                size=_int(m.get("size"), p + ".size", required=True, minimum=1),
            )
        )
    return out


def parse_process(data: Any, path: str = "process") -> Process:
    """Validate an OCI ``process`` object (config.json's or exec's process.json)."""
    d = _obj(data, path, required=True)
    args = _strs(d.get("args"), path + ".args")
    if not args:
        raise _err(path + ".args", "must name at least the program to run")
    if args[0] == "":
        raise _err(path + ".args[0]", "must not be empty")
    cwd = _str(d.get("cwd"), path + ".cwd", default="/")
    if not cwd.startswith("/"):
        raise _err(path + ".cwd", f"must be an absolute path, got {cwd!r}")
    console_size = None
    if d.get("consoleSize") is not None:
        cs = _obj(d["consoleSize"], path + ".consoleSize")
        console_size = ConsoleSize(
            height=_int(cs.get("height"), path + ".consoleSize.height", required=True, minimum=0),
            width=_int(cs.get("width"), path + ".consoleSize.width", required=True, minimum=0),
        )
    u = _obj(d.get("user"), path + ".user")
    user = User(
        uid=_int(u.get("uid"), path + ".user.uid", default=0, minimum=0),
        gid=_int(u.get("gid"), path + ".user.gid", default=0, minimum=0),
        umask=_int(u.get("umask"), path + ".user.umask", minimum=0),
        additional_gids=[
            _int(g, f"{path}.user.additionalGids[{i}]", minimum=0)
            for i, g in enumerate(_list(u.get("additionalGids"), path + ".user.additionalGids"))
        ],
        username=_str(u.get("username"), path + ".user.username"),
    )
    caps = None
    if d.get("capabilities") is not None:
        c = _obj(d["capabilities"], path + ".capabilities")
        cp = path + ".capabilities"
        caps = Capabilities(
            bounding=_caps(c.get("bounding"), cp + ".bounding"),
            effective=_caps(c.get("effective"), cp + ".effective"),
            inheritable=_caps(c.get("inheritable"), cp + ".inheritable"),
            permitted=_caps(c.get("permitted"), cp + ".permitted"),
            ambient=_caps(c.get("ambient"), cp + ".ambient"),
        )
    rlimits = []
    seen: set[str] = set()
    for i, r in enumerate(_list(d.get("rlimits"), path + ".rlimits")):
        p = f"{path}.rlimits[{i}]"
        r = _obj(r, p, required=True)
        t = _str(r.get("type"), p + ".type", required=True)
        if t not in RLIMIT_NAMES:
            raise _err(p + ".type", f"unknown rlimit {t!r}")
        if t in seen:
            raise _err(p + ".type", f"duplicate rlimit {t!r}")
        seen.add(t)
        soft = _int(r.get("soft"), p + ".soft", required=True, minimum=0)
        hard = _int(r.get("hard"), p + ".hard", required=True, minimum=0)
        if soft > hard:
            raise _err(p, f"soft limit {soft} exceeds hard limit {hard}")
        rlimits.append(Rlimit(type=t, soft=soft, hard=hard))
    oom = _int(d.get("oomScoreAdj"), path + ".oomScoreAdj")
    if oom is not None and not -1000 <= oom <= 1000:
        raise _err(path + ".oomScoreAdj", f"must be between -1000 and 1000, got {oom}")
    return Process(
        scheduler=_scheduler(d.get("scheduler"), path + ".scheduler"),
        io_priority=_io_priority(d.get("ioPriority"), path + ".ioPriority"),
        exec_cpu_affinity=_exec_cpu_affinity(d.get("execCPUAffinity"), path + ".execCPUAffinity"),
        args=args,
        cwd=cwd,
        env=_env(d.get("env"), path + ".env"),
        terminal=_bool(d.get("terminal"), path + ".terminal"),
        console_size=console_size,
        user=user,
        capabilities=caps,
        rlimits=rlimits,
        no_new_privileges=_bool(d.get("noNewPrivileges"), path + ".noNewPrivileges"),
        oom_score_adj=oom,
        apparmor_profile=_str(d.get("apparmorProfile"), path + ".apparmorProfile"),
        selinux_label=_str(d.get("selinuxLabel"), path + ".selinuxLabel"),
    )


def _scheduler(v: Any, path: str) -> Scheduler | None:
    if v is None:
        return None
    d = _obj(v, path)
    policy = _str(d.get("policy"), path + ".policy", required=True)
    if policy not in SCHED_POLICIES:
        raise _err(path + ".policy", f"unknown policy {policy!r} (one of {', '.join(SCHED_POLICIES)})")
    flags = _strs(d.get("flags"), path + ".flags")
    for i, f in enumerate(flags):
        if f not in SCHED_FLAGS:
            raise _err(f"{path}.flags[{i}]", f"unknown flag {f!r}")
    nice = _int(d.get("nice"), path + ".nice", default=0)
    if not -20 <= nice <= 19:
        raise _err(path + ".nice", f"must be between -20 and 19, got {nice}")
    priority = _int(d.get("priority"), path + ".priority", default=0, minimum=0)
    if policy in ("SCHED_FIFO", "SCHED_RR") and not 1 <= priority <= 99:
        raise _err(path + ".priority", f"{policy} needs a priority between 1 and 99, got {priority}")
    if policy not in ("SCHED_FIFO", "SCHED_RR") and priority != 0:
        raise _err(path + ".priority", f"{policy} takes no priority (0), got {priority}")
    sched = Scheduler(policy=policy, nice=nice, priority=priority, flags=flags,
                      runtime=_int(d.get("runtime"), path + ".runtime", default=0, minimum=0),
                      deadline=_int(d.get("deadline"), path + ".deadline", default=0, minimum=0),
                      period=_int(d.get("period"), path + ".period", default=0, minimum=0))
    if policy == "SCHED_DEADLINE" and not 0 < sched.runtime <= sched.deadline <= (sched.period or sched.deadline):
        raise _err(path, "SCHED_DEADLINE needs 0 < runtime <= deadline <= period")
    return sched


def cpu_list(text: str, path: str) -> set[int]:
    """'0-2,7' as a set of CPU numbers; ConfigError naming ``path`` otherwise."""
    from hako import cpulist

    try:
        return cpulist.parse(text)
    except ValueError as e:
        raise _err(path, str(e)) from None


def _exec_cpu_affinity(v: Any, path: str) -> ExecCPUAffinity | None:
    if v is None:
        return None
    d = _obj(v, path)
    initial = _str(d.get("initial"), path + ".initial")
    final = _str(d.get("final"), path + ".final")
    return ExecCPUAffinity(initial=cpu_list(initial, path + ".initial") if initial else None,
                           final=cpu_list(final, path + ".final") if final else None)


def _io_priority(v: Any, path: str) -> IOPriority | None:
    if v is None:
        return None
    d = _obj(v, path)
    cls = _str(d.get("class"), path + ".class", required=True)
    if cls not in IOPRIO_CLASSES:
        raise _err(path + ".class", f"unknown class {cls!r} (one of {', '.join(IOPRIO_CLASSES)})")
    prio = _int(d.get("priority"), path + ".priority", default=0, minimum=0)
    if prio > 7:
        raise _err(path + ".priority", f"must be between 0 and 7, got {prio}")
    return IOPriority(io_class=cls, priority=prio)


def _hooks(v: Any, path: str) -> Hooks:
    d = _obj(v, path)
    hooks = Hooks()
    for key, attr in HOOK_NAMES:
        items = []
        for i, h in enumerate(_list(d.get(key), f"{path}.{key}")):
            p = f"{path}.{key}[{i}]"
            h = _obj(h, p, required=True)
            hp = _str(h.get("path"), p + ".path", required=True)
            if not hp.startswith("/"):
                raise _err(p + ".path", f"must be an absolute path, got {hp!r}")
            items.append(
                Hook(
                    path=hp,
                    args=_strs(h.get("args"), p + ".args"),
                    env=_env(h.get("env"), p + ".env"),
                    timeout=_int(h.get("timeout"), p + ".timeout", minimum=1),
                )
            )
        setattr(hooks, attr, items)
    return hooks


def _mounts(v: Any, path: str) -> list[Mount]:
    out = []
    for i, m in enumerate(_list(v, path)):
        p = f"{path}[{i}]"
        m = _obj(m, p, required=True)
        dest = _str(m.get("destination"), p + ".destination", required=True)
        if not dest.startswith("/"):
            raise _err(p + ".destination", f"must be an absolute path, got {dest!r}")
        out.append(
            Mount(
                destination=dest,
                type=_str(m.get("type"), p + ".type"),
                source=_str(m.get("source"), p + ".source"),
                options=_strs(m.get("options"), p + ".options"),
                uid_mappings=_id_maps(m.get("uidMappings"), p + ".uidMappings"),
                gid_mappings=_id_maps(m.get("gidMappings"), p + ".gidMappings"),
            )
        )
    return out


def _linux(v: Any, path: str) -> Linux:
    d = _obj(v, path)
    lx = Linux()
    seen: set[str] = set()
    for i, n in enumerate(_list(d.get("namespaces"), path + ".namespaces")):
        p = f"{path}.namespaces[{i}]"
        n = _obj(n, p, required=True)
        t = _str(n.get("type"), p + ".type", required=True)
        if t not in NAMESPACE_TYPES:
            raise _err(p + ".type", f"unknown namespace type {t!r}")
        if t in seen:
            raise _err(p + ".type", f"duplicate namespace {t!r}")
        seen.add(t)
        np_ = _str(n.get("path"), p + ".path")
        if np_ and not np_.startswith("/"):
            raise _err(p + ".path", f"must be an absolute path, got {np_!r}")
        lx.namespaces.append(Namespace(type=t, path=np_))
    lx.uid_mappings = _id_maps(d.get("uidMappings"), path + ".uidMappings")
    lx.gid_mappings = _id_maps(d.get("gidMappings"), path + ".gidMappings")
    userns = lx.namespace("user")
    if (lx.uid_mappings or lx.gid_mappings) and userns is None:
        raise _err(path + ".uidMappings", "mappings need a user namespace in linux.namespaces")
    if userns is not None and not userns.path and not (lx.uid_mappings and lx.gid_mappings):
        raise _err(path + ".uidMappings", "a new user namespace needs uidMappings and gidMappings")
    for k, o in _obj(d.get("timeOffsets"), path + ".timeOffsets").items():
        p = f"{path}.timeOffsets.{k}"
        if k not in ("monotonic", "boottime"):
            raise _err(p, "only monotonic and boottime clocks can be offset")
        o = _obj(o, p)
        lx.time_offsets[k] = TimeOffset(
            secs=_int(o.get("secs"), p + ".secs", default=0),
            nanosecs=_int(o.get("nanosecs"), p + ".nanosecs", default=0, minimum=0),
        )
    if lx.time_offsets and lx.namespace("time") is None:
        raise _err(path + ".timeOffsets", "needs a time namespace in linux.namespaces")
    for i, dv in enumerate(_list(d.get("devices"), path + ".devices")):
        p = f"{path}.devices[{i}]"
        dv = _obj(dv, p, required=True)
        t = _str(dv.get("type"), p + ".type", required=True)
        if t not in ("c", "b", "u", "p"):
            raise _err(p + ".type", f"must be one of c, b, u, p; got {t!r}")
        dp = _str(dv.get("path"), p + ".path", required=True)
        if not dp.startswith("/"):
            raise _err(p + ".path", f"must be an absolute path, got {dp!r}")
        lx.devices.append(
            Device(
                type=t,
                path=dp,
                major=_int(dv.get("major"), p + ".major", default=0, required=t != "p", minimum=0),
                minor=_int(dv.get("minor"), p + ".minor", default=0, required=t != "p", minimum=0),
                file_mode=_int(dv.get("fileMode"), p + ".fileMode", minimum=0),
                uid=_int(dv.get("uid"), p + ".uid", minimum=0),
                gid=_int(dv.get("gid"), p + ".gid", minimum=0),
            )
        )
    lx.cgroups_path = _str(d.get("cgroupsPath"), path + ".cgroupsPath")
    lx.resources = _obj(d.get("resources"), path + ".resources")
    if d.get("seccomp") is not None:
        lx.seccomp = _obj(d["seccomp"], path + ".seccomp")
    lx.rootfs_propagation = _str(d.get("rootfsPropagation"), path + ".rootfsPropagation")
    if lx.rootfs_propagation not in PROPAGATIONS:
        raise _err(path + ".rootfsPropagation", f"unknown propagation {lx.rootfs_propagation!r}")
    lx.masked_paths = _strs(d.get("maskedPaths"), path + ".maskedPaths")
    lx.readonly_paths = _strs(d.get("readonlyPaths"), path + ".readonlyPaths")
    for key, items in (("maskedPaths", lx.masked_paths), ("readonlyPaths", lx.readonly_paths)):
        for i, s in enumerate(items):
            if not s.startswith("/"):
                raise _err(f"{path}.{key}[{i}]", f"must be an absolute path, got {s!r}")
    lx.mount_label = _str(d.get("mountLabel"), path + ".mountLabel")
    lx.sysctl = _str_map(d.get("sysctl"), path + ".sysctl")
    if d.get("personality") is not None:
        lx.personality = _obj(d["personality"], path + ".personality")
        dom = _str(lx.personality.get("domain"), path + ".personality.domain", required=True)
        if dom not in ("LINUX", "LINUX32"):
            raise _err(path + ".personality.domain", f"must be LINUX or LINUX32, got {dom!r}")
        _strs(lx.personality.get("flags"), path + ".personality.flags")
    return lx


def parse_config(data: Any) -> Spec:
    """Validate a whole config.json document (already decoded from JSON)."""
    d = _obj(data, "", required=True) if isinstance(data, dict) else None
    if d is None:
        raise _err("", f"config.json must hold a JSON object, not {_tname(data)}")
    oci = _str(d.get("ociVersion"), "ociVersion", required=True)
    if not oci.startswith("1."):
        raise _err("ociVersion", f"unsupported version {oci!r} (need 1.x)")
    r = _obj(d.get("root"), "root", required=True)
    root = Root(path=_str(r.get("path"), "root.path", required=True), readonly=_bool(r.get("readonly"), "root.readonly"))
    if not root.path:
        raise _err("root.path", "must not be empty")
    process = parse_process(d["process"]) if d.get("process") is not None else None
    hostname = _str(d.get("hostname"), "hostname")
    linux = _linux(d.get("linux"), "linux")
    if hostname and linux.namespace("uts") is None:
        raise _err("hostname", "setting the hostname needs a uts namespace")
    return Spec(
        oci_version=oci,
        root=root,
        process=process,
        hostname=hostname,
        domainname=_str(d.get("domainname"), "domainname"),
        mounts=_mounts(d.get("mounts"), "mounts"),
        hooks=_hooks(d.get("hooks"), "hooks"),
        annotations=_str_map(d.get("annotations"), "annotations"),
        linux=linux,
    )
