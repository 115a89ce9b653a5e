"""Docker/containers-format seccomp profiles (``--security-opt seccomp=profile.json``) to OCI.

That format, read by docker, podman and containerd, is the OCI one plus selection rules the
engine resolves for one container before handing the runtime plain ``linux.seccomp``:
- ``archMap``: [{architecture, subArchitectures}] — the entry of this machine's
  architecture gives ``architectures`` (the profile's own ``architectures`` otherwise);
- per rule ``includes`` / ``excludes`` with ``caps`` (all included caps must be held; any
  excluded one held drops the rule), ``arches`` (Go names: amd64, arm64...) and
  ``minKernel`` ("4.8");
- legacy ``name`` (one syscall) beside ``names``; podman's ``errno`` / ``defaultErrno``
  (an errno *name*) beside ``errnoRet`` / ``defaultErrnoRet``; ``comment`` is dropped.
"""

from __future__ import annotations

import errno as errno_mod
import os
import re
from typing import Any

from hako.errors import ConfigError

# os.uname().machine -> (Go GOARCH as the format names it, SCMP arch of the archMap entry)
_MACHINES: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "i686": ("386", "SCMP_ARCH_X86"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
    "mips64": ("mips64", "SCMP_ARCH_MIPS64"),
    "loongarch64": ("loong64", "SCMP_ARCH_LOONGARCH64"),
}

_PASS_THROUGH = ("defaultAction", "flags", "listenerPath", "listenerMetadata")
_RELEASE = re.compile(r"(\d+)(?:\.(\d+))?")


def _kernel_version(release: str) -> tuple[int, int]:
    """(major, minor) of "6.1.0-13-amd64" or "6.18rc2"; (0, 0) when there is none."""
    m = _RELEASE.match(release)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else (0, 0)


def _errno_value(name: Any, path: str) -> int:
    if isinstance(name, int) and not isinstance(name, bool):
        return name
    value = getattr(errno_mod, str(name), None)
    if not isinstance(value, int):
        raise ConfigError(path, f"unknown errno name {name!r}")
    return value


def _normalize_caps(caps: list[str] | tuple[str, ...]) -> set[str]:
    return {c.upper() if c.upper().startswith("CAP_") else f"CAP_{c.upper()}" for c in caps}


def _selected(rule: dict[str, Any], caps: set[str], goarch: str, kernel: tuple[int, int], path: str) -> bool:
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    if not isinstance(inc, dict) or not isinstance(exc, dict):
        raise ConfigError(path, "includes and excludes must be objects")
    if goarch in (exc.get("arches") or []):
        return False
    if _normalize_caps(exc.get("caps") or []) & caps:
        return False
    if inc.get("arches") and goarch not in inc["arches"]:
        return False
    if inc.get("caps") and not _normalize_caps(inc["caps"]) <= caps:
        return False
    min_kernel = inc.get("minKernel")
    if min_kernel:
        wanted = _kernel_version(str(min_kernel))
        if wanted == (0, 0):
            raise ConfigError(f"{path}.includes.minKernel", f"invalid kernel version {min_kernel!r}")
        if kernel < wanted:
            return False
    return True


def from_docker(
    doc: dict[str, Any],
    caps: list[str] | tuple[str, ...] | None = None,
    machine: str | None = None,
    kernel: str | None = None,
    root: str = "seccomp profile",
) -> dict[str, Any]:
    """Resolve a Docker-format profile for a container holding ``caps`` into OCI JSON.

    ``machine`` and ``kernel`` (``os.uname()``'s machine and release) default to this host.
    The result still goes through ``hako.seccomp.validate``; this only resolves selection.
    """
    from hako.seccomp.defaults import DEFAULT_CAPS

    if not isinstance(doc, dict):
        raise ConfigError(root, "must be a JSON object")
    held = _normalize_caps(DEFAULT_CAPS if caps is None else caps)
    uname = os.uname()
    goarch, scmp_arch = _MACHINES.get(machine or uname.machine, (machine or uname.machine, ""))
    kver = _kernel_version(kernel or uname.release)

    out: dict[str, Any] = {k: doc[k] for k in _PASS_THROUGH if k in doc}
    if "defaultErrnoRet" in doc:
        out["defaultErrnoRet"] = doc["defaultErrnoRet"]
    elif doc.get("defaultErrno"):
        out["defaultErrnoRet"] = _errno_value(doc["defaultErrno"], f"{root}.defaultErrno")
    arch_map = doc.get("archMap") or []
    if arch_map:
        for i, entry in enumerate(arch_map):
            if not isinstance(entry, dict):
                raise ConfigError(f"{root}.archMap[{i}]", "must be an object")
            if entry.get("architecture") == scmp_arch:
                out["architectures"] = [scmp_arch, *(entry.get("subArchitectures") or [])]
                break
    elif doc.get("architectures"):
        out["architectures"] = list(doc["architectures"])

    rules = []
    raw_rules = doc.get("syscalls") or []
    if not isinstance(raw_rules, list):
        raise ConfigError(f"{root}.syscalls", "must be an array")
    for i, rule in enumerate(raw_rules):
        path = f"{root}.syscalls[{i}]"
        if not isinstance(rule, dict):
            raise ConfigError(path, "must be an object")
        if not _selected(rule, held, goarch, kver, path):
            continue
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        oci: dict[str, Any] = {"names": names, "action": rule.get("action")}
        if rule.get("errnoRet") is not None:
            oci["errnoRet"] = rule["errnoRet"]
        elif rule.get("errno"):
            oci["errnoRet"] = _errno_value(rule["errno"], f"{path}.errno")
        if rule.get("args"):
            oci["args"] = rule["args"]
        rules.append(oci)
    out["syscalls"] = rules
    return out
