"""Validation of OCI linux.seccomp: every error names the JSON path (no root needed)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hako import seccomp
from hako.errors import ConfigError
from hako.seccomp.profile import parse

GOOD: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"],
    "flags": ["SECCOMP_FILTER_FLAG_LOG"],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
        },
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        },
        {"names": ["no_such_syscall_anywhere"], "action": "SCMP_ACT_KILL_PROCESS"},
    ],
}


def _with(path: list[Any], value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = copy.deepcopy(base or GOOD)
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


_DELETE = object()


def test_valid_profile_parses() -> None:
    seccomp.validate(GOOD)
    profile = parse(GOOD)
    assert profile.default_action == "SCMP_ACT_ERRNO"
    assert profile.syscalls[1].errno_ret == 38
    assert profile.syscalls[3].args[0].value_two == 0
    assert not profile.uses_notify


def test_minimal_profile() -> None:
    seccomp.validate({"defaultAction": "SCMP_ACT_ALLOW"})
    seccomp.validate({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": None, "architectures": None})


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (["defaultAction"], "SCMP_ACT_NOPE", "linux.seccomp.defaultAction"),
        (["defaultAction"], _DELETE, "linux.seccomp.defaultAction"),
        (["defaultAction"], 3, "linux.seccomp.defaultAction"),
        (["defaultAction"], "SCMP_ACT_NOTIFY", "linux.seccomp.defaultAction"),
        (["defaultErrnoRet"], -1, "linux.seccomp.defaultErrnoRet"),
        (["defaultErrnoRet"], "1", "linux.seccomp.defaultErrnoRet"),
        (["defaultErrnoRet"], True, "linux.seccomp.defaultErrnoRet"),
        (["architectures", 1], "SCMP_ARCH_Z80", r"linux.seccomp.architectures[1]"),
        (["architectures"], "SCMP_ARCH_X86", "linux.seccomp.architectures"),
        (["flags", 0], "SECCOMP_FILTER_FLAG_FAST", r"linux.seccomp.flags[0]"),
        (["syscalls"], {"names": ["read"]}, "linux.seccomp.syscalls"),
        (["syscalls", 3], "clone", r"linux.seccomp.syscalls[3]"),
        (["syscalls", 1, "action"], "SCMP_ACT_KILL_EVERYTHING", r"linux.seccomp.syscalls[1].action"),
        (["syscalls", 1, "action"], _DELETE, r"linux.seccomp.syscalls[1].action"),
        (["syscalls", 1, "names"], _DELETE, r"linux.seccomp.syscalls[1].names"),
        (["syscalls", 1, "names"], [], r"linux.seccomp.syscalls[1].names"),
        (["syscalls", 1, "names"], "mkdir", r"linux.seccomp.syscalls[1].names"),
        (["syscalls", 1, "names", 0], 83, r"linux.seccomp.syscalls[1].names[0]"),
        (["syscalls", 1, "names", 0], "", r"linux.seccomp.syscalls[1].names[0]"),
        (["syscalls", 1, "errnoRet"], 70000, r"linux.seccomp.syscalls[1].errnoRet"),
        (["syscalls", 0, "errnoRet"], 1, r"linux.seccomp.syscalls[0].errnoRet"),
        (["syscalls", 2, "args", 0, "op"], "SCMP_CMP_ALMOST", r"linux.seccomp.syscalls[2].args[0].op"),
        (["syscalls", 2, "args", 0, "op"], _DELETE, r"linux.seccomp.syscalls[2].args[0].op"),
        (["syscalls", 2, "args", 0, "index"], 6, r"linux.seccomp.syscalls[2].args[0].index"),
        (["syscalls", 2, "args", 0, "index"], _DELETE, r"linux.seccomp.syscalls[2].args[0].index"),
        (["syscalls", 2, "args", 0, "value"], 2**64, r"linux.seccomp.syscalls[2].args[0].value"),
        (["syscalls", 2, "args", 0, "value"], _DELETE, r"linux.seccomp.syscalls[2].args[0].value"),
        (["syscalls", 2, "args", 0, "valueTwo"], -5, r"linux.seccomp.syscalls[2].args[0].valueTwo"),
        (["syscalls", 2, "args"], {"index": 0}, r"linux.seccomp.syscalls[2].args"),
        (["listenerMetadata"], "meta", "linux.seccomp.listenerMetadata"),
        (["listenerPath"], "/run/" + "x" * 120, "linux.seccomp.listenerPath"),
    ],
)
def test_invalid_fields_name_their_json_path(path: list[Any], value: Any, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        seccomp.validate(_with(path, value))
    assert info.value.path == where


def test_not_an_object() -> None:
    with pytest.raises(ConfigError) as info:
        seccomp.validate(["SCMP_ACT_ALLOW"])  # type: ignore[arg-type]
    assert info.value.path == "linux.seccomp"


def test_errno_ret_with_trace_is_allowed() -> None:
    seccomp.validate({"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 5})


@pytest.mark.parametrize("action", ["SCMP_ACT_ALLOW", "SCMP_ACT_KILL", "SCMP_ACT_LOG", "SCMP_ACT_TRAP"])
def test_default_errno_ret_needs_an_errno_action(action: str) -> None:
    with pytest.raises(ConfigError, match="does not return an errno") as info:
        seccomp.validate({"defaultAction": action, "defaultErrnoRet": 1})
    assert info.value.path == "linux.seccomp.defaultErrnoRet"


def test_notify_needs_a_listener_path() -> None:
    doc = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}
    with pytest.raises(ConfigError) as info:
        seccomp.validate(doc)
    assert info.value.path == "linux.seccomp.listenerPath"
    assert parse(doc).uses_notify
    seccomp.validate({**doc, "listenerPath": "/run/agent.sock", "listenerMetadata": "x"})


def test_notify_on_write_is_refused() -> None:
    doc = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}],
    }
    with pytest.raises(ConfigError, match="write") as info:
        seccomp.validate(doc)
    assert info.value.path == "linux.seccomp.syscalls[0].names"


def test_unknown_syscall_names_are_valid() -> None:
    seccomp.validate({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["frobnicate"], "action": "SCMP_ACT_ERRNO"}]})


def test_unknown_keys_are_ignored() -> None:
    seccomp.validate({"defaultAction": "SCMP_ACT_ALLOW", "comment": "forward compatible", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_LOG", "comment": 1}]})


def test_seccomp_package_import_is_free() -> None:
    import subprocess
    import sys

    code = "import sys, hako.seccomp; print(sorted(m for m in sys.modules if m.startswith(('ctypes', 'hako.seccomp'))))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "['hako.seccomp']", out
