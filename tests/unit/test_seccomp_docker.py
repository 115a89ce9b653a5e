"""Docker/containers-format profiles resolved to OCI for one container (no root)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hako import seccomp
from hako.errors import ConfigError
from hako.seccomp.docker import from_docker

DOC: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrno": "ENOSYS",
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "always", "includes": {}, "excludes": {}},
        {"name": "legacy_one", "action": "SCMP_ACT_ALLOW"},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["both"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]}},
        {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errno": "EPERM", "excludes": {"caps": ["CAP_SYS_CHROOT"]}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
        {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
        {"names": ["not_s390"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["s390x"]}},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
        {"names": ["future"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.1"}},
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
        },
    ],
}


def _names(profile: dict[str, Any]) -> set[str]:
    return {n for r in profile["syscalls"] for n in r["names"]}


def test_resolution_for_amd64_without_sys_admin() -> None:
    out = from_docker(DOC, caps=["CAP_SYS_CHROOT"], machine="x86_64", kernel="6.1.0-13-amd64")
    seccomp.validate(out)
    assert out["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert out["defaultErrnoRet"] == 38
    assert _names(out) == {"read", "write", "legacy_one", "arch_prctl", "not_s390", "ptrace", "personality"}
    assert all("comment" not in r and "includes" not in r for r in out["syscalls"])


def test_caps_arches_and_kernel_select_rules() -> None:
    out = from_docker(DOC, caps=["sys_admin"], machine="aarch64", kernel="4.4.0")
    assert out["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    names = _names(out)
    assert {"mount", "set_tls", "chroot"} <= names
    assert not {"both", "arch_prctl", "ptrace", "future"} & names
    chroot = next(r for r in out["syscalls"] if r["names"] == ["chroot"])
    assert chroot == {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
    assert "not_s390" not in _names(from_docker(DOC, caps=[], machine="s390x"))


def test_plain_architectures_and_errno_ret_pass_through() -> None:
    doc = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"], "syscalls": []}
    assert from_docker(doc, caps=[]) == {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [],
    }


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrno": "ENOTANERRNO"}, "p.defaultErrno"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO", "errno": "EBOGUS"}]}, "p.syscalls[0].errno"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": ["x"]}, "p.syscalls[0]"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_LOG", "includes": {"minKernel": "new"}}]}, "p.syscalls[0].includes.minKernel"),
    ],
)
def test_bad_documents_name_the_field(doc: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_docker(doc, root="p")
    assert info.value.path == where


@pytest.mark.skipif(not Path("/usr/share/containers/seccomp.json").exists(), reason="no containers-common profile")
def test_containers_common_profile_resolves_to_a_valid_oci_profile() -> None:
    doc = json.loads(Path("/usr/share/containers/seccomp.json").read_text())
    out = from_docker(doc, caps=["CAP_CHOWN"], machine="x86_64", kernel="6.1.0")
    seccomp.validate(out)
    assert "read" in _names(out)


def test_min_kernel_is_read_from_release_candidates_too() -> None:
    # "6.18rc2" once read as 0.0 and dropped every minKernel rule.
    out = from_docker(DOC, caps=[], machine="x86_64", kernel="6.18rc2")
    assert "ptrace" in _names(out) and "future" not in _names(out)
