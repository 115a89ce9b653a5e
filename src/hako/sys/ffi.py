"""The part of ctypes that hako's system calls use, defined on the C module ``_ctypes`` alone.

Why not ``import ctypes``: its ``__init__`` defines some sixty types and loads ``struct``,
``ctypes._endian`` and ``types``; on ``hako-runtime create`` that was ~2 ms and ~0.9 MiB of the
call's peak RSS (more than all of hako's own modules together), paid again by every call podman or
containerd makes. The machinery underneath is the same C module, so calls, conversions and errno
handling are ctypes' own; the types here are defined exactly as ctypes defines them on LP64 Linux.
mypy sees ctypes itself. Use only these names for system calls, never a mix with ``ctypes``: a
``ctypes.c_int`` is not an ``ffi.c_int`` to a prototype that names one of them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # hako-runtime imports no typing; mypy treats this name as true
if TYPE_CHECKING:
    from ctypes import (
        CDLL,
        POINTER,
        Array,
        Structure,
        addressof,
        byref,
        c_char,
        c_char_p,
        c_int,
        c_int32,
        c_int64,
        c_long,
        c_size_t,
        c_uint,
        c_uint32,
        c_uint64,
        c_ulong,
        c_ushort,
        c_void_p,
        create_string_buffer,
        get_errno,
        sizeof,
    )
else:
    from _ctypes import (
        FUNCFLAG_CDECL,
        FUNCFLAG_USE_ERRNO,
        POINTER,
        RTLD_LOCAL,
        Array,
        CFuncPtr,
        Structure,
        _SimpleCData,
        addressof,
        byref,
        dlopen,
        get_errno,
        sizeof,
    )

    def _simple(name, code):
        # What "class c_int(_SimpleCData): _type_ = 'i'" makes, one line a type.
        return type(name, (_SimpleCData,), {"_type_": code, "__module__": __name__})

    c_int = _simple("c_int", "i")
    c_uint = _simple("c_uint", "I")
    c_long = _simple("c_long", "l")
    c_ulong = _simple("c_ulong", "L")
    c_ushort = _simple("c_ushort", "H")
    c_char = _simple("c_char", "c")
    c_char_p = _simple("c_char_p", "z")
    c_void_p = _simple("c_void_p", "P")

    # LP64, as ctypes aliases them there.
    c_size_t = c_ulong
    c_int32 = c_int
    c_int64 = c_long
    c_uint32 = c_uint
    c_uint64 = c_ulong

    def create_string_buffer(init, size=None):
        """ctypes.create_string_buffer: a zeroed ``c_char`` array, filled from ``init`` if bytes."""
        if isinstance(init, int):
            return (c_char * init)()
        buf = (c_char * (len(init) + 1 if size is None else size))()
        buf.value = init
        return buf

    class CDLL:
        """ctypes.CDLL: a dlopen'd library whose functions are looked up on first use."""

        def __init__(self, name, use_errno=False):
            flags = FUNCFLAG_CDECL | (FUNCFLAG_USE_ERRNO if use_errno else 0)

            class _FuncPtr(CFuncPtr):
                _flags_ = flags
                _restype_ = c_int

            self._FuncPtr = _FuncPtr
            self._handle = dlopen(name, RTLD_LOCAL)

        def __getattr__(self, name):
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            func = self._FuncPtr((name, self))
            func.__name__ = name
            setattr(self, name, func)
            return func

__all__ = [
    "CDLL", "POINTER", "Array", "Structure", "addressof", "byref", "c_char", "c_char_p", "c_int", "c_int32", "c_int64", "c_long",
    "c_size_t", "c_uint", "c_uint32", "c_uint64", "c_ulong", "c_ushort", "c_void_p", "create_string_buffer",
    "get_errno", "sizeof",
]
