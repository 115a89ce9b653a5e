"""Compile a seccomp Profile with libseccomp and load it into the calling process.

Semantics follow runc so profiles written for it behave the same here:
- a syscall name unknown on every architecture is skipped; a rule whose action equals the
  default action is skipped (libseccomp refuses it, and it would change nothing);
- several conditions on the *same* argument index cannot be ANDed by libseccomp, so such a
  rule becomes one rule per condition (OR) — this is how Docker-style profiles read;
- libseccomp's own no_new_privs handling is switched off (SCMP_FLTATR_CTL_NNP=0): whether
  NNP is set is the config's choice (``process.noNewPrivileges``), never a side effect.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

from hako.errors import ConfigError, KernelError
from hako.seccomp import libseccomp as scmp
from hako.seccomp.profile import ARCHES, EPERM, ROOT, Profile, Rule, parse

_ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": scmp.ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": scmp.ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": scmp.ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": scmp.ACT_TRAP,
    "SCMP_ACT_ALLOW": scmp.ACT_ALLOW,
    "SCMP_ACT_LOG": scmp.ACT_LOG,
    "SCMP_ACT_NOTIFY": scmp.ACT_NOTIFY,
}

_OPS: dict[str, int] = {
    "SCMP_CMP_NE": scmp.CMP_NE,
    "SCMP_CMP_LT": scmp.CMP_LT,
    "SCMP_CMP_LE": scmp.CMP_LE,
    "SCMP_CMP_EQ": scmp.CMP_EQ,
    "SCMP_CMP_GE": scmp.CMP_GE,
    "SCMP_CMP_GT": scmp.CMP_GT,
    "SCMP_CMP_MASKED_EQ": scmp.CMP_MASKED_EQ,
}

# Flags libseccomp 2.5 can set as filter attributes. WAIT_KILLABLE_RECV has an attribute
# only from 2.6; older libraries get it through our own seccomp(2) call (``_load_raw``).
_FLAG_ATTRS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": scmp.ATTR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": scmp.ATTR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": scmp.ATTR_CTL_SSB,
}

# Kernel flag bits for seccomp(SECCOMP_SET_MODE_FILTER, flags, prog).
_KERNEL_FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1 << 0,
    "SECCOMP_FILTER_FLAG_LOG": 1 << 1,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 1 << 2,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 1 << 5,
}
_FLAG_NEW_LISTENER = 1 << 3
_FLAG_TSYNC_ESRCH = 1 << 4
_SECCOMP_SET_MODE_FILTER = 1


def action_value(action: str, errno_ret: int | None) -> int:
    if action == "SCMP_ACT_ERRNO":
        return scmp.act_errno(EPERM if errno_ret is None else errno_ret)
    if action == "SCMP_ACT_TRACE":
        return scmp.act_trace(EPERM if errno_ret is None else errno_ret)
    return _ACTIONS[action]


def _conditions(rule: Rule) -> list[list[tuple[int, int, int, int]]]:
    """The condition lists to add for ``rule``: one AND-list, or one list per condition."""
    conds = [(a.index, _OPS[a.op], a.value, a.value_two) for a in rule.args]
    indexes = [c[0] for c in conds]
    if len(set(indexes)) != len(indexes):
        return [[c] for c in conds]
    return [conds]


def _needs_raw_load(profile: Profile) -> bool:
    return "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" in profile.flags and profile.uses_notify and (
        scmp.version() < scmp.Version(2, 6, 0)
    )


def build(profile: Profile, root: str = ROOT) -> scmp.Filter:
    """A libseccomp filter holding every rule of ``profile``; the caller releases it."""
    default = action_value(profile.default_action, profile.default_errno_ret)
    filt = scmp.Filter(default)
    try:
        filt.attr_set(scmp.ATTR_CTL_NNP, 0)
        # Report the kernel's errno (EACCES without NNP/CAP_SYS_ADMIN), not ECANCELED.
        filt.attr_set(scmp.ATTR_API_SYSRAWRC, 1)
        for flag in profile.flags:
            if flag in _FLAG_ATTRS:
                filt.attr_set(_FLAG_ATTRS[flag], 1)
            elif flag == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" and profile.uses_notify and not _needs_raw_load(profile):
                filt.attr_set(scmp.ATTR_CTL_WAITKILL, 1)
        for i, arch in enumerate(profile.architectures):
            if arch == "SCMP_ARCH_NATIVE":
                continue
            token = scmp.arch_resolve_name(ARCHES[arch])
            if token is None:
                raise ConfigError(f"{root}.architectures[{i}]", f"{arch} is not supported by libseccomp {scmp.version()}")
            filt.arch_add(token)
        for i, rule in enumerate(profile.syscalls):
            action = action_value(rule.action, rule.errno_ret)
            if action == default:
                continue
            for name in rule.names:
                nr = scmp.syscall_resolve_name(name)
                if nr is None:
                    continue
                for conds in _conditions(rule):
                    try:
                        filt.rule_add(action, nr, conds)
                    except KernelError as exc:
                        raise ConfigError(f"{root}.syscalls[{i}]", f"libseccomp rejected the rule for {name!r}: {os.strerror(exc.errno)}") from None
        return filt
    except BaseException:
        filt.release()
        raise


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def _load_raw(filt: scmp.Filter, profile: Profile) -> int | None:
    """Load through seccomp(2) ourselves, for kernel flags this libseccomp cannot set."""
    program = filt.export_bpf()
    flags = 0
    for flag in profile.flags:
        flags |= _KERNEL_FLAGS[flag]
    if profile.uses_notify:
        flags |= _FLAG_NEW_LISTENER
        if flags & _KERNEL_FLAGS["SECCOMP_FILTER_FLAG_TSYNC"]:
            # Without TSYNC_ESRCH the kernel cannot tell a thread id from a listener fd.
            flags |= _FLAG_TSYNC_ESRCH
    else:
        flags &= ~_KERNEL_FLAGS["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    nr = scmp.syscall_resolve_name("seccomp")
    if nr is None or nr < 0:
        raise KernelError("seccomp", 38, "no seccomp syscall on this architecture")
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_char_p))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(ctypes.c_long(nr), ctypes.c_long(_SECCOMP_SET_MODE_FILTER), ctypes.c_long(flags), ctypes.byref(prog))
    if rc < 0:
        raise KernelError("seccomp", ctypes.get_errno(), f"SECCOMP_SET_MODE_FILTER flags={flags:#x}")
    return int(rc) if profile.uses_notify else None


def load_profile(profile: Profile, root: str = ROOT, *, raw: bool | None = None) -> int | None:
    """Build and load ``profile``; see ``load``. ``raw`` forces (or forbids) our own seccomp(2)."""
    with build(profile, root) as filt:
        if raw if raw is not None else _needs_raw_load(profile):
            return _load_raw(filt, profile)
        filt.load()
        return filt.notify_fd() if profile.uses_notify else None


def load(seccomp: dict[str, Any], root: str = ROOT) -> int | None:
    """Build the filter of an OCI ``linux.seccomp`` and load it into the calling process.

    Returns the seccomp notify listener fd when a rule uses SCMP_ACT_NOTIFY, else None.

    Ordering (the caller's job, as in runc): the kernel only accepts a filter from a task
    that has no_new_privs set *or* holds CAP_SYS_ADMIN in its user namespace.
    - ``process.noNewPrivileges`` true: set PR_SET_NO_NEW_PRIVS, drop capabilities, switch
      user, then call load() as the very last step before execve, so the profile does not
      have to allow the runtime's own set-up syscalls.
    - false: call load() while CAP_SYS_ADMIN is still effective, i.e. *before* dropping
      capabilities and changing uid; the remaining steps (capset, setgroups, setuid,
      execve) then run under the filter, so a profile must allow them (Docker's does).
    Any syscall the runtime makes after this call is filtered. A failed load installs
    nothing: filters are atomic.
    """
    return load_profile(parse(seccomp, root), root)


def export_bpf(seccomp: dict[str, Any], root: str = ROOT) -> bytes:
    """The compiled BPF of ``seccomp`` without loading it (for tests and ``hako inspect``)."""
    with build(parse(seccomp, root), root) as filt:
        return filt.export_bpf()
