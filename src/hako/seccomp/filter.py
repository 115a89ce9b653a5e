"""Compile a seccomp Profile with libseccomp and load it into the calling process.

Semantics follow runc so profiles written for it behave the same here:
- a syscall name unknown on every architecture is skipped; a rule whose action equals the
  default action is skipped (libseccomp refuses it, and it would change nothing);
- several conditions on the *same* argument index cannot be ANDed by libseccomp, so such a
  rule becomes one rule per condition (OR) — this is how Docker-style profiles read;
- libseccomp's own no_new_privs handling is switched off (SCMP_FLTATR_CTL_NNP=0): whether
  NNP is set is the config's choice (``process.noNewPrivileges``), never a side effect;
- with a deny-by-default profile, native syscalls numbered above every syscall the profile
  names fail with ENOSYS (see ``enosys_stub``), so libc falls back as on an older kernel.

libseccomp builds the program; hako installs it with its own seccomp(2) call (``Prepared``),
which sets every kernel flag, including WAIT_KILLABLE_RECV that libseccomp 2.5 cannot.
"""

from __future__ import annotations

import os

from hako.errors import ConfigError, KernelError
from hako.records import dataclass
from hako.seccomp import libseccomp as scmp
from hako.seccomp.profile import ARCHES, EPERM, ROOT, Profile, Rule, parse
from hako.sys import ffi

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    from typing import Any

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
# only from 2.6; ``prepare`` sets kernel flags itself, so it works with any version.
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
            elif flag == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" and profile.uses_notify and scmp.version() >= scmp.Version(2, 6, 0):
                # Only libseccomp's own load needs this; prepare() sets the kernel flag itself.
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


class _SockFprog(ffi.Structure):
    _fields_ = [("len", ffi.c_ushort), ("filter", ffi.c_void_p)]


def kernel_flags(profile: Profile) -> int:
    """The seccomp(2) flags for ``profile``, including NEW_LISTENER for notify rules."""
    flags = 0
    for flag in profile.flags:
        flags |= _KERNEL_FLAGS[flag]
    if profile.uses_notify:
        flags |= _FLAG_NEW_LISTENER
        if flags & _KERNEL_FLAGS["SECCOMP_FILTER_FLAG_TSYNC"]:
            # Without TSYNC_ESRCH the kernel cannot tell a thread id from a listener fd.
            flags |= _FLAG_TSYNC_ESRCH
    else:
        # The kernel refuses WAIT_KILLABLE_RECV without a listener; it means nothing then.
        flags &= ~_KERNEL_FLAGS["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    return flags


@dataclass(frozen=True)
class Prepared:
    """A compiled filter, ready to install with one seccomp(2) call.

    Made by ``prepare`` while the host filesystem is still visible (libseccomp, Python
    modules); ``load`` then touches no file, so it works after pivot_root.
    """

    program: bytes
    flags: int
    notify: bool
    syscall_nr: int

    def load(self) -> int | None:
        """Install the filter in this process; the listener fd when notify is used."""
        buf = ffi.create_string_buffer(self.program, len(self.program))
        prog = _SockFprog(len(self.program) // 8, ffi.addressof(buf))  # buf outlives the call
        rc = _raw_syscall()(
            ffi.c_long(self.syscall_nr), ffi.c_long(_SECCOMP_SET_MODE_FILTER), ffi.c_long(self.flags), ffi.byref(prog)
        )
        if rc < 0:
            raise KernelError("seccomp", ffi.get_errno(), f"SECCOMP_SET_MODE_FILTER flags={self.flags:#x}")
        return int(rc) if self.notify else None


_SYSCALL: Any = None


def _raw_syscall() -> Any:
    global _SYSCALL
    if _SYSCALL is None:
        fn = ffi.CDLL(None, use_errno=True).syscall
        fn.restype = ffi.c_long
        _SYSCALL = fn
    return _SYSCALL


def warm() -> None:
    """Resolve what ``load`` needs later (libc's syscall, libseccomp's names, the errno text)."""
    _raw_syscall()
    scmp.syscall_resolve_name("seccomp")
    scmp.version()


# Deny-by-default profiles answer syscalls newer than the profile itself with ENOSYS, not with
# their default action: a program (libc) probing a syscall the profile's author could not
# know about (faccessat2, clone3 under an older profile) then falls back to the old one, as
# on an older kernel, instead of failing with EPERM. "Newer" means above the highest syscall
# number the profile names on this architecture, as runc does.
_STUB_DEFAULTS = frozenset({"SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"})
_X32_SYSCALL_BIT = 0x40000000
_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_JGE_K = 0x35
_BPF_JGT_K = 0x25
_BPF_RET_K = 0x06
_SECCOMP_RET_ERRNO = 0x00050000
_ENOSYS = 38


def enosys_stub(profile: Profile) -> bytes:
    """BPF to put before libseccomp's program: ENOSYS for native syscalls above the profile's."""
    import struct

    if profile.default_action not in _STUB_DEFAULTS:
        return b""
    numbers = [scmp.syscall_resolve_name(name) for rule in profile.syscalls for name in rule.names]
    highest = max((nr for nr in numbers if nr is not None and nr >= 0), default=-1)
    if highest < 0:
        return b""
    native = scmp.arch_native()

    def insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
        return struct.pack("=HBBI", code, jt, jf, k)

    # Every jump lands on the stub's own return or on the first instruction after it.
    return b"".join(
        [
            insn(_BPF_LD_W_ABS, 4),  # A = seccomp_data.arch
            insn(_BPF_JEQ_K, native, 0, 4),  # other arch: libseccomp's program decides
            insn(_BPF_LD_W_ABS, 0),  # A = seccomp_data.nr
            insn(_BPF_JGE_K, _X32_SYSCALL_BIT, 2, 0),  # x32 numbers: libseccomp's too
            insn(_BPF_JGT_K, highest, 0, 1),
            insn(_BPF_RET_K, _SECCOMP_RET_ERRNO | _ENOSYS),
        ]
    )


_CACHE_FORMAT = b"hako-seccomp-bpf-3"


def _sha256(data: bytes) -> Any:
    # The builtin module, when there is one: hashlib loads OpenSSL (a few ms on create's path).
    try:
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256
    return sha256(data)


def _canonical(seccomp: dict[str, Any]) -> bytes:
    # json.dumps(sort_keys=True, separators=(",", ":")) to the byte, through the C encoder: the
    # json package brings re, enum and functools into C1 (~4 ms and ~0.5 MiB of create's peak RSS).
    from hako.runtime import fastjson

    return fastjson.dumps(seccomp, sort_keys=True).encode()


def _cache_key(seccomp: dict[str, Any]) -> str:
    h = _sha256(_CACHE_FORMAT)
    h.update(f"{scmp.version()}:{scmp.arch_native():x}:".encode())
    h.update(_canonical(seccomp))
    return h.hexdigest()


BPF_MAXINSNS = 4096


def compile_program(profile: Profile, root: str = ROOT) -> bytes:
    """The complete program ``Prepared.load`` installs: ENOSYS stub + libseccomp's filter."""
    with build(profile, root) as filt:
        program = enosys_stub(profile) + filt.export_bpf()
    if len(program) // 8 > BPF_MAXINSNS:
        # The kernel would say only EINVAL, at start; say why, at create.
        raise ConfigError(root, f"compiles to {len(program) // 8} BPF instructions; the kernel accepts at most {BPF_MAXINSNS}")
    return program


def _compile_cached(profile: Profile, seccomp: dict[str, Any], root: str, cache_dir: str | None) -> bytes:
    if cache_dir is None:
        return compile_program(profile, root)
    path = os.path.join(cache_dir, _cache_key(seccomp) + ".bpf")
    try:
        with open(path, "rb") as f:
            program = f.read()
        if program and len(program) % 8 == 0:
            return program
    except OSError:
        pass
    program = compile_program(profile, root)
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(program)
        os.rename(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs the next compile
    return program


def prepare(seccomp: dict[str, Any], root: str = ROOT, cache_dir: str | None = None) -> Prepared:
    """Validate and compile ``seccomp`` now; install it later with ``Prepared.load()``.

    The container init calls this before pivot_root (it loads libseccomp and the modules
    it needs), and ``load`` as its last step. With ``cache_dir``, programs are kept by a
    hash of the profile, libseccomp's version and the architecture, so the same profile
    (the engine's default) compiles once per host.
    """
    remembered = _remembered(seccomp)
    if remembered is not None:
        return remembered  # validate() compiled this very document already
    profile = parse(seccomp, root)
    program = _compile_cached(profile, seccomp, root, cache_dir)
    nr = scmp.syscall_resolve_name("seccomp")
    if nr is None or nr < 0:
        raise KernelError("seccomp", 38, "no seccomp syscall on this architecture")
    _raw_syscall()
    return Prepared(program=program, flags=kernel_flags(profile), notify=profile.uses_notify, syscall_nr=nr)


def load_with_libseccomp(profile: Profile, root: str = ROOT) -> int | None:
    """Build and load through libseccomp's seccomp_load (a second path, kept for tests).

    No ENOSYS stub and no WAIT_KILLABLE_RECV before libseccomp 2.6: use ``load``.
    """
    with build(profile, root) as filt:
        filt.load()
        return filt.notify_fd() if profile.uses_notify else None


def load(seccomp: dict[str, Any] | Prepared, root: str = ROOT) -> int | None:
    """Install the filter of an OCI ``linux.seccomp`` (or a ``Prepared`` one) in this process.

    Returns the seccomp notify listener fd when a rule uses SCMP_ACT_NOTIFY, else None.
    Given a dict, it compiles first: that needs libseccomp and hako's modules on disk,
    so after pivot_root pass what ``prepare`` returned before it.

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
    if isinstance(seccomp, Prepared):
        return seccomp.load()
    remembered = _remembered(seccomp)
    if remembered is not None:
        return remembered.load()
    return prepare(seccomp, root).load()


# What ``warm(seccomp)`` compiled in ``create`` (before forking), for the init's later
# ``load(seccomp)`` of the same document: keyed by the dict's identity *and* a digest of its
# content, so a document changed in between is compiled afresh rather than mistaken.
_REMEMBERED: tuple[int, str, Prepared] | None = None


def _digest(seccomp: dict[str, Any]) -> str:
    return str(_sha256(_canonical(seccomp)).hexdigest())


def remember(seccomp: dict[str, Any], prepared: Prepared) -> None:
    global _REMEMBERED
    _REMEMBERED = (id(seccomp), _digest(seccomp), prepared)


def _remembered(seccomp: dict[str, Any]) -> Prepared | None:
    if _REMEMBERED is None or _REMEMBERED[0] != id(seccomp):
        return None
    return _REMEMBERED[2] if _REMEMBERED[1] == _digest(seccomp) else None


def export_bpf(seccomp: dict[str, Any], root: str = ROOT) -> bytes:
    """The compiled BPF of ``seccomp`` without loading it (for tests and ``hako inspect``)."""
    with build(parse(seccomp, root), root) as filt:
        return filt.export_bpf()
