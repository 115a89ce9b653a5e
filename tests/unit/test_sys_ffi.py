"""hako.sys.ffi: the ctypes subset on _ctypes behaves as ctypes does for hako's system calls."""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any

from hako.sys import ffi


def test_types_have_ctypes_sizes_and_codes() -> None:
    pairs: list[tuple[Any, Any]] = [(ffi.c_int, ctypes.c_int), (ffi.c_uint, ctypes.c_uint), (ffi.c_long, ctypes.c_long),
             (ffi.c_ulong, ctypes.c_ulong), (ffi.c_ushort, ctypes.c_ushort), (ffi.c_char, ctypes.c_char),
             (ffi.c_char_p, ctypes.c_char_p), (ffi.c_void_p, ctypes.c_void_p), (ffi.c_size_t, ctypes.c_size_t),
             (ffi.c_uint32, ctypes.c_uint32), (ffi.c_uint64, ctypes.c_uint64), (ffi.c_int32, ctypes.c_int32),
             (ffi.c_int64, ctypes.c_int64)]
    for ours, theirs in pairs:
        assert ffi.sizeof(ours) == ctypes.sizeof(theirs), ours
        assert ours._type_ == theirs._type_, ours


def test_libc_call_and_errno() -> None:
    libc = ffi.CDLL(None, use_errno=True)
    assert libc.getpid() == os.getpid()
    assert libc.close(ffi.c_int(-1)) == -1
    assert ffi.get_errno() == errno.EBADF
    assert libc.getpid is libc.getpid  # looked up once, then cached on the instance


def test_prototypes_convert_arguments() -> None:
    libc = ffi.CDLL(None, use_errno=True)
    libc.strlen.argtypes = [ffi.c_char_p]
    libc.strlen.restype = ffi.c_size_t
    assert libc.strlen(b"hako") == 4


def test_string_buffer_like_ctypes() -> None:
    data = b"a\0b\0c"
    ours = ffi.create_string_buffer(data, len(data))
    theirs = ctypes.create_string_buffer(data, len(data))
    assert ours.raw == theirs.raw == data
    assert ffi.create_string_buffer(b"xy").raw == b"xy\0"
    assert ffi.create_string_buffer(8).raw == b"\0" * 8


def test_structure_by_reference() -> None:
    class Timespec(ffi.Structure):
        _fields_ = [("sec", ffi.c_long), ("nsec", ffi.c_long)]

    libc = ffi.CDLL(None, use_errno=True)
    ts = Timespec()
    assert libc.clock_gettime(ffi.c_int(1), ffi.byref(ts)) == 0  # CLOCK_MONOTONIC
    assert ts.sec > 0 and 0 <= ts.nsec < 1_000_000_000
    assert ffi.sizeof(Timespec) == 16
    assert ffi.addressof(ts) != 0
