"""The one place libc is loaded, and how a failed call becomes a KernelError.

Other modules in hako.sys declare their own prototypes on ``LIBC`` and call through
``check``, so errno is always read right after the call that set it.
"""

from __future__ import annotations

from hako.errors import KernelError
from hako.sys import ffi


def _load_libc() -> ffi.CDLL:
    # The soname first: find_library runs ``ldconfig -p`` in a child process (several ms per command).
    try:
        return ffi.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes import util  # pulls subprocess, shutil and re: only when the soname fails

        return ffi.CDLL(util.find_library("c") or "libc.so.6", use_errno=True)


LIBC = _load_libc()


def check(result: int, syscall: str, detail: str = "") -> int:
    """Return ``result`` or raise KernelError with errno when it is -1."""
    if result == -1:
        raise KernelError(syscall, ffi.get_errno(), detail)
    return result


def syscall(number: int, *args: int | bytes | None, name: str = "syscall", detail: str = "") -> int:
    """Call a raw syscall that libc does not wrap (pivot_root, close_range, openat2...)."""
    return check(LIBC.syscall(ffi.c_long(number), *args), name, detail)
