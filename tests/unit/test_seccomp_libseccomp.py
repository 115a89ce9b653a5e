"""The ctypes binding: names resolve, rules compile to BPF (nothing is loaded; no root)."""

from __future__ import annotations

import os

import pytest

from hako.errors import ConfigError, KernelError
from hako.seccomp import libseccomp as scmp
from hako.seccomp.filter import export_bpf


def test_version_is_at_least_2_5() -> None:
    assert scmp.version() >= scmp.Version(2, 5, 0)
    assert str(scmp.version()).count(".") == 2


def test_resolve_names() -> None:
    assert scmp.syscall_resolve_name("no_such_syscall") is None
    nr = scmp.syscall_resolve_name("getppid")
    assert nr is not None and nr >= 0
    x86_64 = scmp.arch_resolve_name("x86_64")
    assert x86_64 == 0xC000003E
    assert scmp.syscall_resolve_name("getppid", x86_64) == 110
    assert scmp.arch_resolve_name("z80") is None
    if os.uname().machine == "x86_64":
        assert scmp.arch_native() == x86_64
        # socketcall exists on x86 only: a negative pseudo number on x86_64.
        socketcall = scmp.syscall_resolve_name("socketcall")
        assert socketcall is not None and socketcall < 0


def test_filter_arch_add_and_exist() -> None:
    x86 = scmp.arch_resolve_name("x86")
    assert x86 is not None
    with scmp.Filter(scmp.ACT_ALLOW) as filt:
        assert filt.arch_exist(scmp.arch_native())
        assert not filt.arch_exist(x86) or scmp.arch_native() == x86
        filt.arch_add(x86)
        assert filt.arch_exist(x86)
        assert filt.arch_add(x86) is False


def test_released_filter_refuses_use() -> None:
    filt = scmp.Filter(scmp.ACT_ALLOW)
    filt.release()
    filt.release()
    with pytest.raises(KernelError):
        filt.load()


def test_export_bpf_grows_with_rules() -> None:
    small = export_bpf({"defaultAction": "SCMP_ACT_ALLOW"})
    bigger = export_bpf({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "rmdir"], "action": "SCMP_ACT_ERRNO"}]})
    assert len(small) % 8 == 0 and len(bigger) > len(small)


def test_default_profile_compiles() -> None:
    from hako.seccomp import default_profile

    assert len(export_bpf(default_profile())) > 8 * 100


def test_action_values() -> None:
    assert scmp.act_errno(38) == 0x00050026
    assert scmp.act_trace(1) == 0x7FF00001


def test_arch_unsupported_by_libseccomp_is_a_config_error() -> None:
    if scmp.arch_resolve_name("loongarch64") is not None:
        pytest.skip("this libseccomp knows loongarch64")
    with pytest.raises(ConfigError) as info:
        export_bpf({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_LOONGARCH64"]})
    assert info.value.path == "linux.seccomp.architectures[1]"


def test_features_object() -> None:
    from hako import seccomp

    feats = seccomp.features()
    assert feats["enabled"] is True
    assert "SCMP_ACT_NOTIFY" in feats["actions"] and "SCMP_CMP_MASKED_EQ" in feats["operators"]
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"} <= set(feats["archs"])
    assert set(feats["supportedFlags"]) <= set(feats["knownFlags"])
    # Every kernel hako supports has TSYNC (3.17) and LOG (4.14).
    assert {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"} <= set(feats["supportedFlags"])


def test_too_large_a_program_is_a_config_error() -> None:
    from hako.seccomp.filter import compile_program
    from hako.seccomp.profile import parse

    rules = [
        {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": v, "op": "SCMP_CMP_EQ"}]}
        for v in range(4200)
    ]
    doc = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], "syscalls": rules}
    with pytest.raises(ConfigError, match="BPF instructions") as info:
        compile_program(parse(doc))
    assert info.value.path == "linux.seccomp"
