"""A ctypes binding of the part of libseccomp (2.5+) that hako uses.

libseccomp compiles rules into BPF for every architecture in the filter and knows the
syscall tables; we only describe rules and let it build. Functions return ``-errno`` on
failure (not ``-1`` + errno), so ``_check`` turns a negative result into a KernelError.

The library is loaded on first use: importing this module costs nothing on the runtime's
start-up path for containers without ``linux.seccomp``.
"""

from __future__ import annotations

import os

from hako.errors import KernelError
from hako.records import dataclass
from hako.sys import ffi

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")


def _memo(fn: Callable[..., T]) -> Callable[..., T]:
    """functools.cache for these few lookups without functools, which brings collections, operator
    and keyword: ~3 ms and ~0.4 MiB in C1, where create loads libseccomp during the cgroup join."""
    results: dict[tuple[Any, ...], T] = {}

    def cached(*args: Any) -> T:
        try:
            return results[args]
        except KeyError:
            value = results[args] = fn(*args)
            return value

    cached.__name__ = fn.__name__
    cached.__doc__ = fn.__doc__
    return cached


# Action values from seccomp.h; ERRNO and TRACE carry their data in the low 16 bits.
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_NOTIFY = 0x7FC00000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

# enum scmp_compare
CMP_NE = 1
CMP_LT = 2
CMP_LE = 3
CMP_EQ = 4
CMP_GE = 5
CMP_GT = 6
CMP_MASKED_EQ = 7

# enum scmp_filter_attr
ATTR_ACT_DEFAULT = 1
ATTR_ACT_BADARCH = 2
ATTR_CTL_NNP = 3
ATTR_CTL_TSYNC = 4
ATTR_API_TSKIP = 5
ATTR_CTL_LOG = 6
ATTR_CTL_SSB = 7
ATTR_CTL_OPTIMIZE = 8
ATTR_API_SYSRAWRC = 9
ATTR_CTL_WAITKILL = 10  # libseccomp >= 2.6 only

# __NR_SCMP_ERROR: the name is not a syscall on any architecture libseccomp knows.
NR_ERROR = -1


def act_errno(errno: int) -> int:
    return ACT_ERRNO | (errno & 0xFFFF)


def act_trace(msg: int) -> int:
    return ACT_TRACE | (msg & 0xFFFF)


class ArgCmp(ffi.Structure):
    """struct scmp_arg_cmp: ``arg`` index, ``op``, and the two 64-bit data."""

    _fields_ = [
        ("arg", ffi.c_uint),
        ("op", ffi.c_int),
        ("datum_a", ffi.c_uint64),
        ("datum_b", ffi.c_uint64),
    ]


class _Version(ffi.Structure):
    _fields_ = [("major", ffi.c_uint), ("minor", ffi.c_uint), ("micro", ffi.c_uint)]


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    micro: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.micro}"


LIB_NAMES = ("libseccomp.so.2", "/usr/lib/x86_64-linux-gnu/libseccomp.so.2", "/usr/lib/aarch64-linux-gnu/libseccomp.so.2")


@_memo
def lib() -> ffi.CDLL:
    """Load libseccomp and declare the prototypes (once per process)."""
    last: OSError | None = None
    for name in LIB_NAMES:
        try:
            so = ffi.CDLL(name, use_errno=True)
            break
        except OSError as exc:
            last = exc
    else:
        raise KernelError("dlopen", 2, f"libseccomp.so.2 ({last}); install libseccomp2")
    ctx = ffi.c_void_p
    u32 = ffi.c_uint32
    protos: dict[str, tuple[object, list[object]]] = {
        "seccomp_init": (ctx, [u32]),
        "seccomp_release": (None, [ctx]),
        "seccomp_arch_add": (ffi.c_int, [ctx, u32]),
        "seccomp_arch_exist": (ffi.c_int, [ctx, u32]),
        "seccomp_arch_native": (u32, []),
        "seccomp_arch_resolve_name": (u32, [ffi.c_char_p]),
        "seccomp_attr_set": (ffi.c_int, [ctx, ffi.c_int, u32]),
        "seccomp_syscall_resolve_name": (ffi.c_int, [ffi.c_char_p]),
        "seccomp_syscall_resolve_name_arch": (ffi.c_int, [u32, ffi.c_char_p]),
        "seccomp_syscall_resolve_num_arch": (ffi.c_void_p, [u32, ffi.c_int]),
        "seccomp_rule_add_array": (ffi.c_int, [ctx, u32, ffi.c_int, ffi.c_uint, ffi.POINTER(ArgCmp)]),
        "seccomp_load": (ffi.c_int, [ctx]),
        "seccomp_notify_fd": (ffi.c_int, [ctx]),
        "seccomp_export_bpf": (ffi.c_int, [ctx, ffi.c_int]),
        "seccomp_version": (ffi.POINTER(_Version), []),
        "seccomp_api_get": (ffi.c_uint, []),
    }
    for fname, (restype, argtypes) in protos.items():
        fn = getattr(so, fname)
        fn.restype = restype
        fn.argtypes = argtypes
    return so


def _check(rc: int, call: str, detail: str = "") -> int:
    if rc < 0:
        raise KernelError(call, -rc, detail)
    return rc


@_memo
def version() -> Version:
    v = lib().seccomp_version().contents
    return Version(v.major, v.minor, v.micro)


def api_level() -> int:
    return int(lib().seccomp_api_get())


def arch_native() -> int:
    return int(lib().seccomp_arch_native())


def arch_resolve_name(name: str) -> int | None:
    """libseccomp's arch token (an AUDIT_ARCH_* value) for e.g. ``x86_64``; None when unknown."""
    token = int(lib().seccomp_arch_resolve_name(name.encode()))
    return token or None


def syscall_resolve_name(name: str, arch: int | None = None) -> int | None:
    """The syscall number of ``name`` (native arch unless ``arch``); None when not a syscall.

    For the native arch, a name that only exists on another architecture (``socketcall`` on
    x86_64) resolves to a negative pseudo-number that libseccomp maps per architecture.
    """
    so = lib()
    nr = so.seccomp_syscall_resolve_name(name.encode()) if arch is None else so.seccomp_syscall_resolve_name_arch(arch, name.encode())
    return None if nr == NR_ERROR else int(nr)


@_memo
def max_syscall_nr(arch: int | None = None) -> int:
    """The highest syscall number libseccomp has a name for on ``arch`` (native by default).

    Anything above it is newer than this libseccomp, so no profile can name it (tests and
    diagnostics; the ENOSYS stub uses the profile's own highest syscall instead).
    """
    so = lib()
    token = arch_native() if arch is None else arch
    free = ffi.CDLL(None).free
    free.argtypes = [ffi.c_void_p]
    highest = -1
    # Syscall tables are dense below ~1000 on every architecture libseccomp supports
    # (x32 and MIPS o32 offsets aside, which are handled through their own arch tokens).
    for nr in range(1024):
        name = so.seccomp_syscall_resolve_num_arch(token, nr)
        if name:
            free(name)
            highest = nr
    return highest


class Filter:
    """An owned ``scmp_filter_ctx``; use as a context manager so it is always released."""

    def __init__(self, default_action: int) -> None:
        self._lib = lib()
        ctx = self._lib.seccomp_init(default_action)
        if not ctx:
            raise KernelError("seccomp_init", 22, f"default action {default_action:#x}")
        self._ctx: int | None = ctx

    def __enter__(self) -> Filter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def ctx(self) -> int:
        if self._ctx is None:
            raise KernelError("seccomp", 9, "filter already released")
        return self._ctx

    def release(self) -> None:
        if self._ctx is not None:
            self._lib.seccomp_release(self._ctx)
            self._ctx = None

    def arch_add(self, token: int) -> bool:
        """Add an architecture; False when it was already in the filter (the native one is)."""
        rc = self._lib.seccomp_arch_add(self.ctx, token)
        if rc == -17:  # EEXIST
            return False
        _check(rc, "seccomp_arch_add", f"{token:#x}")
        return True

    def arch_exist(self, token: int) -> bool:
        rc = self._lib.seccomp_arch_exist(self.ctx, token)
        if rc == -17:  # EEXIST means "not present" here, per libseccomp's convention
            return False
        _check(rc, "seccomp_arch_exist", f"{token:#x}")
        return True

    def attr_set(self, attr: int, value: int) -> None:
        _check(self._lib.seccomp_attr_set(self.ctx, attr, value), "seccomp_attr_set", f"attribute {attr}")

    def rule_add(self, action: int, nr: int, conds: list[tuple[int, int, int, int]] | None = None) -> int:
        """Add one rule; ``conds`` are (index, op, datum_a, datum_b). Returns the raw rc (>= 0)."""
        conds = conds or []
        arr = (ArgCmp * max(len(conds), 1))()
        for i, (index, op, a, b) in enumerate(conds):
            arr[i] = ArgCmp(index, op, a, b)
        rc = self._lib.seccomp_rule_add_array(self.ctx, action, nr, len(conds), arr)
        return _check(rc, "seccomp_rule_add", f"syscall {nr}")

    def load(self) -> None:
        _check(self._lib.seccomp_load(self.ctx), "seccomp_load")

    def notify_fd(self) -> int:
        return _check(self._lib.seccomp_notify_fd(self.ctx), "seccomp_notify_fd")

    def export_bpf(self) -> bytes:
        """The compiled program: an array of struct sock_filter (8 bytes each)."""
        fd = os.memfd_create("hako-seccomp-bpf", os.MFD_CLOEXEC)
        try:
            _check(self._lib.seccomp_export_bpf(self.ctx, fd), "seccomp_export_bpf")
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)
