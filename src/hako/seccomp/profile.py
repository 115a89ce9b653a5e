"""Validate OCI ``linux.seccomp`` JSON and turn it into dataclasses.

Pure Python, no libseccomp: ``create`` calls this before anything is forked, and the unit
tests run it without root. Errors name the JSON path, e.g. ``linux.seccomp.syscalls[3].action``.
A syscall *name* unknown to this machine is not an error here: ``filter`` skips it, as runc
does, so one profile serves many kernels and architectures.
"""

from __future__ import annotations

from hako.errors import ConfigError
from hako.records import dataclass, field

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    from typing import Any

ROOT = "linux.seccomp"

ACTIONS = frozenset(
    {
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
    }
)
# Only these carry a return code in their low 16 bits.
ERRNO_ACTIONS = frozenset({"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"})

# OCI name -> libseccomp's arch name (seccomp_arch_resolve_name).
ARCHES: dict[str, str] = {
    "SCMP_ARCH_NATIVE": "native",
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel",
    "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc",
    "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390",
    "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc",
    "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64",
    "SCMP_ARCH_LOONGARCH64": "loongarch64",
}

OPERATORS = frozenset(
    {
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    }
)

FLAGS = frozenset(
    {
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    }
)

EPERM = 1
SUN_PATH_MAX = 108  # sizeof(sockaddr_un.sun_path), including the terminating NUL
MAX_ARGS = 6
U64_MAX = 2**64 - 1
U16_MAX = 2**16 - 1


@dataclass(frozen=True)
class Arg:
    index: int
    value: int
    value_two: int
    op: str


@dataclass(frozen=True)
class Rule:
    names: tuple[str, ...]
    action: str
    errno_ret: int | None = None
    args: tuple[Arg, ...] = ()


@dataclass(frozen=True)
class Profile:
    default_action: str
    default_errno_ret: int | None = None
    architectures: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    listener_path: str = ""
    listener_metadata: str = ""
    syscalls: tuple[Rule, ...] = field(default_factory=tuple)

    @property
    def uses_notify(self) -> bool:
        return self.default_action == "SCMP_ACT_NOTIFY" or any(r.action == "SCMP_ACT_NOTIFY" for r in self.syscalls)


def _uint(value: Any, path: str, maximum: int) -> int:
    # bool is an int in Python but never a number in JSON.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > maximum:
        raise ConfigError(path, f"must be an unsigned integer <= {maximum}, got {value!r}")
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(path, f"must be a string, got {type(value).__name__}")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(path, f"must be an array, got {type(value).__name__}")
    return value


def _dict(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(path, f"must be an object, got {type(value).__name__}")
    return value


def _action(value: Any, path: str) -> str:
    action = _str(value, path)
    if action not in ACTIONS:
        raise ConfigError(path, f"unknown seccomp action {action!r} (one of {', '.join(sorted(ACTIONS))})")
    return action


def _errno_ret(obj: dict[str, Any], key: str, action: str, path: str) -> int | None:
    if obj.get(key) is None:
        return None
    value = _uint(obj[key], f"{path}.{key}", U16_MAX)
    if action not in ERRNO_ACTIONS:
        raise ConfigError(f"{path}.{key}", f"{action} does not return an errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)")
    return value


def _arg(raw: Any, path: str) -> Arg:
    obj = _dict(raw, path)
    for key in ("index", "value", "op"):
        if key not in obj:
            raise ConfigError(f"{path}.{key}", "is required")
    op = _str(obj["op"], f"{path}.op")
    if op not in OPERATORS:
        raise ConfigError(f"{path}.op", f"unknown operator {op!r} (one of {', '.join(sorted(OPERATORS))})")
    return Arg(
        index=_uint(obj["index"], f"{path}.index", MAX_ARGS - 1),
        value=_uint(obj["value"], f"{path}.value", U64_MAX),
        value_two=_uint(obj.get("valueTwo", 0) or 0, f"{path}.valueTwo", U64_MAX),
        op=op,
    )


def _rule(raw: Any, path: str) -> Rule:
    obj = _dict(raw, path)
    names_raw = obj.get("names")
    if names_raw is None:
        raise ConfigError(f"{path}.names", "is required")
    names = _list(names_raw, f"{path}.names")
    if not names:
        raise ConfigError(f"{path}.names", "must contain at least one syscall name")
    for i, name in enumerate(names):
        if not _str(name, f"{path}.names[{i}]"):
            raise ConfigError(f"{path}.names[{i}]", "must not be empty")
    if "action" not in obj:
        raise ConfigError(f"{path}.action", "is required")
    action = _action(obj["action"], f"{path}.action")
    if action == "SCMP_ACT_NOTIFY" and "write" in names:
        # The runtime itself writes after loading the filter (sync pipe, error reports):
        # a notify on write would block it on an agent that has not got the fd yet.
        raise ConfigError(f"{path}.names", "SCMP_ACT_NOTIFY cannot be used for the write syscall")
    args = _list(obj.get("args") or [], f"{path}.args")
    return Rule(
        names=tuple(names),
        action=action,
        errno_ret=_errno_ret(obj, "errnoRet", action, path),
        args=tuple(_arg(a, f"{path}.args[{i}]") for i, a in enumerate(args)),
    )


def parse(seccomp: Any, root: str = ROOT) -> Profile:
    """Validate ``linux.seccomp`` and return it as a Profile; ConfigError names the bad field."""
    obj = _dict(seccomp, root)
    if "defaultAction" not in obj:
        raise ConfigError(f"{root}.defaultAction", "is required")
    default = _action(obj["defaultAction"], f"{root}.defaultAction")
    if default == "SCMP_ACT_NOTIFY":
        raise ConfigError(f"{root}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
    arches = _list(obj.get("architectures") or [], f"{root}.architectures")
    for i, arch in enumerate(arches):
        if _str(arch, f"{root}.architectures[{i}]") not in ARCHES:
            raise ConfigError(f"{root}.architectures[{i}]", f"unknown architecture {arch!r}")
    flags = _list(obj.get("flags") or [], f"{root}.flags")
    for i, flag in enumerate(flags):
        if _str(flag, f"{root}.flags[{i}]") not in FLAGS:
            raise ConfigError(f"{root}.flags[{i}]", f"unknown seccomp flag {flag!r} (one of {', '.join(sorted(FLAGS))})")
    listener_path = _str(obj.get("listenerPath") or "", f"{root}.listenerPath")
    metadata = _str(obj.get("listenerMetadata") or "", f"{root}.listenerMetadata")
    if metadata and not listener_path:
        raise ConfigError(f"{root}.listenerMetadata", "must not be set without listenerPath")
    if len(listener_path.encode()) >= SUN_PATH_MAX:
        # connect() would fail only when the container starts; say it at create.
        raise ConfigError(f"{root}.listenerPath", f"longer than a unix socket path can be ({SUN_PATH_MAX - 1} bytes)")
    rules = tuple(_rule(r, f"{root}.syscalls[{i}]") for i, r in enumerate(_list(obj.get("syscalls") or [], f"{root}.syscalls")))
    profile = Profile(
        default_action=default,
        default_errno_ret=_errno_ret(obj, "defaultErrnoRet", default, root),
        architectures=tuple(arches),
        flags=tuple(flags),
        listener_path=listener_path,
        listener_metadata=metadata,
        syscalls=rules,
    )
    return profile


def validate(seccomp: Any, root: str = ROOT) -> None:
    """Raise ConfigError(json_path, message) when ``linux.seccomp`` is invalid.

    Stricter than ``parse`` in one point that only matters to an OCI runtime: a profile
    using SCMP_ACT_NOTIFY needs ``listenerPath``, or the container would block forever on
    its first notified syscall with nobody holding the listener fd.
    """
    profile = parse(seccomp, root)
    if profile.uses_notify and not profile.listener_path:
        raise ConfigError(f"{root}.listenerPath", "is required when a rule uses SCMP_ACT_NOTIFY")
