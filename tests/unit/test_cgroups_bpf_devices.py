"""The device program's assembly (loading and attaching are in tests/kernel)."""

import struct

from hako.cgroups.bpf_devices import ALU64_MOV_K, JMP_EXIT, LDX_MEM_W, assemble
from hako.cgroups.resources import DeviceRule


def insns(prog: bytes) -> list[tuple[int, int, int, int, int]]:
    out = []
    for i in range(0, len(prog), 8):
        code, regs, off, imm = struct.unpack_from("<BBhi", prog, i)
        out.append((code, regs & 0xF, regs >> 4, off, imm))
    return out


def test_empty_rules_allow_everything() -> None:
    prog = insns(assemble([]))
    assert prog[0][0] == LDX_MEM_W
    assert prog[-2] == (ALU64_MOV_K, 0, 0, 0, 1)
    assert prog[-1][0] == JMP_EXIT


def test_deny_all_first_becomes_the_fallthrough() -> None:
    rules = [DeviceRule(False, "a"), DeviceRule(True, "c", 1, 3, "rwm")]
    prog = insns(assemble(rules))
    # The wildcard deny is unconditional: the program ends with r0 = 0; exit, no default.
    assert prog[-2] == (ALU64_MOV_K, 0, 0, 0, 0)
    assert prog[-1][0] == JMP_EXIT


def test_jumps_land_on_the_next_rule_block() -> None:
    rules = [DeviceRule(True, "c", 1, 5, "r"), DeviceRule(False, "b", 8, -1, "w")]
    prog = insns(assemble(rules))
    starts = [i + 1 for i, ins in enumerate(prog) if ins[0] == JMP_EXIT]
    for i, (code, _, _, off, _) in enumerate(prog):
        if code & 0x07 == 0x05 and code != JMP_EXIT:  # BPF_JMP class, conditional
            target = i + 1 + off
            assert target in starts, (i, off)


def test_rules_after_an_unconditional_one_are_still_checked_first() -> None:
    # Last match wins: an allow after "deny all" must be emitted before the deny.
    rules = [DeviceRule(False, "a"), DeviceRule(True, "c", 1, 3, "rwm")]
    prog = insns(assemble(rules))
    movs = [ins for ins in prog if ins[0] == ALU64_MOV_K]
    assert [m[4] for m in movs] == [1, 0]
