"""The default profile's shape: valid OCI JSON, capability-dependent rules (no root)."""

from __future__ import annotations

from typing import Any

import pytest

from hako import seccomp
from hako.seccomp.defaults import BY_CAPABILITY, CLONE_NAMESPACE_FLAGS, ENOSYS


def _allowed(profile: dict[str, Any]) -> set[str]:
    return {
        name
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args")
        for name in rule["names"]
    }


def test_default_profile_is_valid_and_denies_by_default() -> None:
    profile = seccomp.default_profile()
    seccomp.validate(profile)
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["defaultErrnoRet"] == 1


@pytest.mark.parametrize(
    ("machine", "arches"),
    [
        ("x86_64", ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
        ("aarch64", ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]),
    ],
)
def test_architectures_follow_the_machine(machine: str, arches: list[str]) -> None:
    profile = seccomp.defaults.default_profile(machine=machine)
    assert profile["architectures"] == arches
    seccomp.validate(profile)


def test_arch_specific_syscalls() -> None:
    from hako.seccomp.defaults import default_profile

    assert "arch_prctl" in _allowed(default_profile(machine="x86_64"))
    assert "arch_prctl" not in _allowed(default_profile(machine="aarch64"))
    assert "set_tls" in _allowed(default_profile(machine="aarch64"))


def test_common_syscalls_allowed_and_dangerous_ones_not() -> None:
    allowed = _allowed(seccomp.default_profile())
    assert {"read", "write", "openat", "execve", "wait4", "socket"} <= allowed
    for name in ("mount", "umount2", "unshare", "setns", "kexec_load", "init_module", "reboot", "bpf",
                 "add_key", "keyctl", "io_uring_setup", "userfaultfd", "swapon",
                 "pivot_root", "open_by_handle_at", "clone", "clone3", "personality"):
        assert name not in allowed, name


def test_clone_is_conditional_and_clone3_enosys_without_cap_sys_admin() -> None:
    rules = seccomp.default_profile(caps=["CAP_CHOWN"])["syscalls"]
    clone = [r for r in rules if r["names"] == ["clone"]]
    assert clone == [
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        }
    ]
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS} in rules


def test_s390x_clone_flags_are_the_second_argument() -> None:
    from hako.seccomp.defaults import default_profile

    rules = default_profile(caps=[], machine="s390x")["syscalls"]
    assert [r["args"][0]["index"] for r in rules if r["names"] == ["clone"]] == [1]


def test_cap_sys_admin_grants_namespaces_and_mounts() -> None:
    profile = seccomp.default_profile(caps=["sys_admin"])
    allowed = _allowed(profile)
    assert set(BY_CAPABILITY["CAP_SYS_ADMIN"]) <= allowed
    assert not [r for r in profile["syscalls"] if r["names"] in (["clone"], ["clone3"]) and r.get("args") or r.get("errnoRet")]


@pytest.mark.parametrize(("cap", "name"), [(c, n) for c, names in BY_CAPABILITY.items() for n in names[:1]])
def test_each_capability_grants_its_syscalls(cap: str, name: str) -> None:
    assert name not in _allowed(seccomp.default_profile(caps=[]))
    assert name in _allowed(seccomp.default_profile(caps=[cap]))


def test_none_means_dockers_default_caps() -> None:
    allowed = _allowed(seccomp.default_profile(None))
    assert "chroot" in allowed  # CAP_SYS_CHROOT is in Docker's default set
    assert "mount" not in allowed


def test_personality_values() -> None:
    rules = [r for r in seccomp.default_profile()["syscalls"] if r["names"] == ["personality"]]
    assert sorted(r["args"][0]["value"] for r in rules) == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]
