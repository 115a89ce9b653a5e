"""cgroup v2 device control: an eBPF program of type CGROUP_DEVICE, assembled here, loaded
with bpf(2) and attached to the cgroup directory.

v2 has no devices.allow file: the kernel runs the program on every open/mknod of a device
node and lets it through when the program returns 1. The program checks the spec's rules
from the last to the first, so the last rule that matches decides (the order in which v1
applies them); when none matches the access is allowed, as in a v1 child of an unrestricted
parent. Specs start with a "deny all" rule, which turns that default around.
"""

from __future__ import annotations

import errno
import os
import struct

from hako.cgroups.resources import DeviceRule
from hako.errors import HakoError
from hako.sys import ffi
from hako.sys.libc import LIBC

SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

# struct bpf_cgroup_dev_ctx { u32 access_type /* access << 16 | type */; u32 major; u32 minor; }
DEV_BLOCK = 1
DEV_CHAR = 2
ACC_MKNOD = 1
ACC_READ = 2
ACC_WRITE = 4
_ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}

# Opcodes used (see linux/bpf_common.h): class | op | source.
LDX_MEM_W = 0x61  # dst = *(u32 *)(src + off)
ALU32_AND_K = 0x54
ALU32_RSH_K = 0x74
ALU32_MOV_X = 0xBC
ALU64_MOV_K = 0xB7
JMP_JEQ_K = 0x15
JMP_JNE_K = 0x55
JMP_JSET_K = 0x45
JMP_EXIT = 0x95

R0, R1, R2, R3, R4, R5 = range(6)


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One struct bpf_insn: u8 code, u8 dst:4 src:4, s16 off, s32 imm (little-endian host)."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _access_mask(access: str) -> int:
    m = 0
    for ch in access:
        m |= _ACCESS_BITS[ch]
    return m


def _rule_block(rule: DeviceRule) -> list[tuple[int, int, int, int, int]]:
    """Instructions for one rule as (code, dst, src, off, imm); every failed check jumps to
    the first instruction after the block (the next rule)."""
    NEXT = -(1 << 14)  # sentinel, patched once the block length is known
    body: list[tuple[int, int, int, int, int]] = []
    if rule.type != "a":
        body.append((JMP_JNE_K, R2, 0, NEXT, DEV_BLOCK if rule.type == "b" else DEV_CHAR))
    acc = _access_mask(rule.access)
    if acc != 7:
        if rule.allow:
            # Allowed only when every requested access is in the rule.
            body.append((JMP_JSET_K, R3, 0, NEXT, ~acc & 7))
        else:
            # Denied as soon as one requested access is in the rule.
            body.append((ALU32_MOV_X, R1, R3, 0, 0))
            body.append((ALU32_AND_K, R1, 0, 0, acc))
            body.append((JMP_JEQ_K, R1, 0, NEXT, 0))
    if rule.type != "a" and rule.major >= 0:
        body.append((JMP_JNE_K, R4, 0, NEXT, rule.major))
    if rule.type != "a" and rule.minor >= 0:
        body.append((JMP_JNE_K, R5, 0, NEXT, rule.minor))
    body.append((ALU64_MOV_K, R0, 0, 0, 1 if rule.allow else 0))
    body.append((JMP_EXIT, 0, 0, 0, 0))
    n = len(body)
    return [(c, d, s, (n - i - 1) if o == NEXT else o, imm) for i, (c, d, s, o, imm) in enumerate(body)]


def assemble(rules: list[DeviceRule], default_allow: bool = True) -> bytes:
    """The program's bytes for ``rules``."""
    prog = [
        insn(LDX_MEM_W, R2, R1, 0),
        insn(ALU32_AND_K, R2, imm=0xFFFF),  # r2 = device type
        insn(LDX_MEM_W, R3, R1, 0),
        insn(ALU32_RSH_K, R3, imm=16),  # r3 = requested access bits
        insn(LDX_MEM_W, R4, R1, 4),  # r4 = major
        insn(LDX_MEM_W, R5, R1, 8),  # r5 = minor
    ]
    unconditional = False
    for rule in reversed(rules):
        prog.extend(insn(*t) for t in _rule_block(rule))
        if rule.type == "a" and rule.access == "rwm":
            # Matches every access: the earlier rules and the default can never be reached.
            unconditional = True
            break
    if not unconditional:
        prog.append(insn(ALU64_MOV_K, R0, imm=1 if default_allow else 0))
        prog.append(insn(JMP_EXIT))
    return b"".join(prog)


# -- bpf(2) ------------------------------------------------------------------------------------


def _bpf(cmd: int, attr: ffi.Array[ffi.c_char], what: str) -> int:
    nr = SYS_BPF.get(os.uname().machine)
    if nr is None:
        raise HakoError(f"bpf(2): unknown syscall number on {os.uname().machine}")
    res = LIBC.syscall(ffi.c_long(nr), ffi.c_int(cmd), attr, ffi.c_uint(len(attr)))
    if res < 0:
        err = ffi.get_errno()
        raise OSError(err, f"bpf({what}): {os.strerror(err)}")
    return int(res)


def load(program: bytes, name: str = "hako_dev") -> int:
    """BPF_PROG_LOAD; returns the program's fd. On rejection, the verifier's log is in the error."""
    n = len(program) // 8
    insns = ffi.create_string_buffer(program, len(program))
    lic = ffi.create_string_buffer(b"Apache-2.0")
    for log_level in (0, 1):
        log = ffi.create_string_buffer(65536 if log_level else 1)
        attr = ffi.create_string_buffer(128)
        struct.pack_into(
            "<IIQQIIQII16s",
            attr,
            0,
            BPF_PROG_TYPE_CGROUP_DEVICE,
            n,
            ffi.addressof(insns),
            ffi.addressof(lic),
            log_level,
            len(log) if log_level else 0,
            ffi.addressof(log) if log_level else 0,
            0,
            0,
            name.encode()[:15],
        )
        struct.pack_into("<I", attr, 68, BPF_CGROUP_DEVICE)  # expected_attach_type
        try:
            return _bpf(BPF_PROG_LOAD, attr, "BPF_PROG_LOAD")
        except OSError as e:
            if log_level == 0 and e.errno in (errno.EINVAL, errno.EACCES):
                continue
            detail = log.value.decode(errors="replace").strip() if log_level else ""
            raise HakoError(
                f"loading the device eBPF program failed: {e.strerror}"
                + (f"; verifier: {detail[-500:]}" if detail else "")
            ) from None
    raise AssertionError("unreachable")


def query(cgroup_fd: int) -> tuple[int, list[int]]:
    """(attach flags, program ids) attached to the cgroup for device control."""
    ids = (ffi.c_uint32 * 64)()
    attr = ffi.create_string_buffer(64)
    struct.pack_into("<IIIIQI", attr, 0, cgroup_fd, BPF_CGROUP_DEVICE, 0, 0, ffi.addressof(ids), 64)
    _bpf(BPF_PROG_QUERY, attr, "BPF_PROG_QUERY")
    flags = struct.unpack_from("<I", attr, 12)[0]
    cnt = struct.unpack_from("<I", attr, 24)[0]
    return flags, [ids[i] for i in range(min(cnt, 64))]


def _prog_fd_by_id(prog_id: int) -> int:
    attr = ffi.create_string_buffer(16)
    struct.pack_into("<I", attr, 0, prog_id)
    return _bpf(BPF_PROG_GET_FD_BY_ID, attr, "BPF_PROG_GET_FD_BY_ID")


def _attach_attr(cgroup_fd: int, prog_fd: int, flags: int) -> ffi.Array[ffi.c_char]:
    attr = ffi.create_string_buffer(40)
    struct.pack_into("<IIII", attr, 0, cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, flags)
    return attr


def attach(cgroup_dir: str, rules: list[DeviceRule]) -> None:
    """Load the program for ``rules`` and make it the only device program of ``cgroup_dir``.

    The new program is attached before the old ones are detached, so for a moment both
    apply (the stricter wins) and there is never a window with no filter at all.
    """
    prog_fd = load(assemble(rules))
    try:
        cg_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        os.close(prog_fd)
        raise HakoError(f"cannot open cgroup {cgroup_dir}: {e.strerror}") from None
    try:
        flags, old = query(cg_fd)
        if old and flags != BPF_F_ALLOW_MULTI:
            # Someone attached a single exclusive program: replace it in place.
            _bpf(BPF_PROG_ATTACH, _attach_attr(cg_fd, prog_fd, 0), "BPF_PROG_ATTACH")
            return
        _bpf(BPF_PROG_ATTACH, _attach_attr(cg_fd, prog_fd, BPF_F_ALLOW_MULTI), "BPF_PROG_ATTACH")
        for prog_id in old:
            try:
                old_fd = _prog_fd_by_id(prog_id)
            except OSError as e:
                if e.errno == errno.ENOENT:
                    continue
                raise
            try:
                _bpf(BPF_PROG_DETACH, _attach_attr(cg_fd, old_fd, 0), "BPF_PROG_DETACH")
            finally:
                os.close(old_fd)
    except OSError as e:
        raise HakoError(f"attaching the device eBPF program to {cgroup_dir}: {e.strerror}") from None
    finally:
        os.close(cg_fd)
        os.close(prog_fd)


def attached(cgroup_dir: str) -> list[int]:
    """Ids of the device programs attached to ``cgroup_dir`` (for tests and ``info``)."""
    cg_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return query(cg_fd)[1]
    finally:
        os.close(cg_fd)
