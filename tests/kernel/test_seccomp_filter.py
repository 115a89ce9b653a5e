"""hako.seccomp.load on the real kernel: each case loads a filter in a forked child."""

from __future__ import annotations

import errno
import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from hako import seccomp
from hako.errors import ConfigError
from hako.seccomp import libseccomp as scmp
from hako.seccomp.filter import load_with_libseccomp, prepare
from hako.seccomp.profile import parse
from tests.fixtures_seccomp import LIBC, raw_syscall, run_filtered

ALLOW = "SCMP_ACT_ALLOW"


def _nr(name: str) -> int:
    nr = scmp.syscall_resolve_name(name)
    assert nr is not None and nr >= 0
    return nr


def _mkdir_errno(path: Path) -> int:
    try:
        os.mkdir(path)
    except OSError as exc:
        return exc.errno or 0
    os.rmdir(path)
    return 0


def _profile(*rules: dict[str, Any], default: str = ALLOW, **extra: Any) -> dict[str, Any]:
    return {"defaultAction": default, "syscalls": list(rules), **extra}


def _status_field(name: str) -> str:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return ""


DENY_MKDIR_38 = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}


def test_denied_syscall_returns_errno_ret_and_others_work(tmp_path: Path) -> None:
    profile = _profile(DENY_MKDIR_38)
    res = run_filtered(lambda: seccomp.load(profile), lambda _: [_mkdir_errno(tmp_path / "x"), len(os.listdir(tmp_path))])
    assert res.value == [errno.ENOSYS, 0]
    assert not (tmp_path / "x").exists()


def test_errno_action_defaults_to_eperm(tmp_path: Path) -> None:
    profile = _profile({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"})
    assert run_filtered(lambda: seccomp.load(profile), lambda _: _mkdir_errno(tmp_path / "x")).value == errno.EPERM


def test_default_errno_ret_applies_to_unlisted_syscalls(tmp_path: Path) -> None:
    # Default deny with EACCES; allow everything the child needs except mkdir.
    allowed = seccomp.default_profile()["syscalls"][0]["names"]
    rules = [{"names": [n for n in allowed if n not in ("mkdir", "mkdirat")], "action": ALLOW}]
    profile = _profile(*rules, default="SCMP_ACT_ERRNO", defaultErrnoRet=errno.EACCES)
    assert run_filtered(lambda: seccomp.load(profile), lambda _: _mkdir_errno(tmp_path / "x")).value == errno.EACCES


def test_argument_condition_eq() -> None:
    profile = _profile(
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.EDOM,
            "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}],
        }
    )
    nr = _nr("personality")
    res = run_filtered(lambda: seccomp.load(profile), lambda _: [raw_syscall(nr, 0xFFFFFFFF), raw_syscall(nr, 0)])
    assert res.value[0] == -errno.EDOM
    assert res.value[1] >= 0


def _socket_errno(domain: int, type_: int = socket.SOCK_STREAM) -> int:
    fd = LIBC.socket(domain, type_, 0)
    if fd < 0:
        import ctypes

        return ctypes.get_errno()
    os.close(fd)
    return 0


def test_argument_condition_on_socket_domain() -> None:
    profile = _profile(
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.EACCES,
            "args": [{"index": 0, "value": socket.AF_INET, "op": "SCMP_CMP_EQ"}],
        }
    )
    res = run_filtered(lambda: seccomp.load(profile), lambda _: [_socket_errno(socket.AF_INET), _socket_errno(socket.AF_UNIX)])
    assert res.value == [errno.EACCES, 0]


def test_masked_eq_condition() -> None:
    # Deny sockets opened with SOCK_CLOEXEC: (type & SOCK_CLOEXEC) == SOCK_CLOEXEC.
    profile = _profile(
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.EPERM,
            "args": [{"index": 1, "value": socket.SOCK_CLOEXEC, "valueTwo": socket.SOCK_CLOEXEC, "op": "SCMP_CMP_MASKED_EQ"}],
        }
    )
    res = run_filtered(
        lambda: seccomp.load(profile),
        lambda _: [_socket_errno(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC), _socket_errno(socket.AF_UNIX)],
    )
    assert res.value == [errno.EPERM, 0]


def test_conditions_on_the_same_argument_are_ored() -> None:
    profile = _profile(
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.EACCES,
            "args": [
                {"index": 0, "value": socket.AF_INET, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": socket.AF_INET6, "op": "SCMP_CMP_EQ"},
            ],
        }
    )
    res = run_filtered(
        lambda: seccomp.load(profile),
        lambda _: [_socket_errno(socket.AF_INET), _socket_errno(socket.AF_INET6), _socket_errno(socket.AF_UNIX)],
    )
    assert res.value == [errno.EACCES, errno.EACCES, 0]


def test_conditions_on_different_arguments_are_anded() -> None:
    profile = _profile(
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.EACCES,
            "args": [
                {"index": 0, "value": socket.AF_UNIX, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": socket.SOCK_DGRAM, "op": "SCMP_CMP_EQ"},
            ],
        }
    )
    res = run_filtered(
        lambda: seccomp.load(profile),
        lambda _: [_socket_errno(socket.AF_UNIX, socket.SOCK_DGRAM), _socket_errno(socket.AF_UNIX, socket.SOCK_STREAM)],
    )
    assert res.value == [errno.EACCES, 0]


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"])
def test_kill_and_trap_actions_end_the_child_with_sigsys(tmp_path: Path, action: str) -> None:
    profile = _profile({"names": ["mkdir", "mkdirat"], "action": action})
    res = run_filtered(lambda: seccomp.load(profile), lambda _: _mkdir_errno(tmp_path / "x"))
    assert res.value is None
    assert res.signal == signal.SIGSYS


def test_log_action_allows(tmp_path: Path) -> None:
    profile = _profile({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"})
    assert run_filtered(lambda: seccomp.load(profile), lambda _: _mkdir_errno(tmp_path / "x")).value == 0


def test_trace_without_tracer_fails_with_enosys() -> None:
    profile = _profile({"names": ["getppid"], "action": "SCMP_ACT_TRACE", "errnoRet": 7})
    nr = _nr("getppid")
    assert run_filtered(lambda: seccomp.load(profile), lambda _: raw_syscall(nr)).value == -errno.ENOSYS


def test_unknown_syscall_names_are_skipped(tmp_path: Path) -> None:
    profile = _profile({"names": ["no_such_syscall", "mkdir", "mkdirat", "statmount_from_the_future"], "action": "SCMP_ACT_ERRNO"})
    assert run_filtered(lambda: seccomp.load(profile), lambda _: _mkdir_errno(tmp_path / "x")).value == errno.EPERM


def test_rule_equal_to_default_action_is_skipped(tmp_path: Path) -> None:
    profile = _profile({"names": ["getpid"], "action": ALLOW}, DENY_MKDIR_38)
    assert run_filtered(lambda: seccomp.load(profile), lambda _: _mkdir_errno(tmp_path / "x")).value == errno.ENOSYS


def test_flags_and_architectures_load() -> None:
    profile = _profile(
        DENY_MKDIR_38,
        architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
    )
    res = run_filtered(lambda: seccomp.load(profile), lambda _: [_status_field("Seccomp"), _status_field("Seccomp_filters")])
    assert res.value == ["2", "1"]


def test_libseccomp_load_path_has_the_same_semantics(tmp_path: Path) -> None:
    profile = parse(_profile(DENY_MKDIR_38, flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]))
    res = run_filtered(lambda: load_with_libseccomp(profile), lambda fd: [fd, _mkdir_errno(tmp_path / "x")])
    assert res.value == [None, errno.ENOSYS]


AFTER_CHROOT = """
import ctypes, json, os, sys
import hako.seccomp as sc
profile = json.loads(sys.argv[2])
# A fresh interpreter: nothing of hako.seccomp is imported before this point.
assert "hako.seccomp.filter" not in sys.modules
way = sys.argv[3]
if way == "prepare":
    handle = sc.prepare(profile)
elif way == "validate":
    sc.validate(profile)
else:  # warm with the profile: compiled now, so load must not need libseccomp again
    sc.warm(profile, cache_dir=sys.argv[4])
    import hako.seccomp.filter as f
    f.build = None

ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)
os.chroot(sys.argv[1])
os.chdir("/")
sc.load(handle if way == "prepare" else profile)
try:
    os.mkdir("/x")
    err = 0
except OSError as e:
    err = e.errno
print(json.dumps([err, os.listdir("/")]))
"""


@pytest.mark.parametrize("way", ["prepare", "validate", "warm"])
def test_load_works_after_the_filesystem_is_gone(tmp_path: Path, way: str) -> None:
    # What the container init does: validate (create, before forking) or prepare before
    # pivot_root, load after it, when neither libseccomp nor hako's modules can be opened.
    import json
    import subprocess
    import sys

    empty = tmp_path / "empty"
    empty.mkdir()
    out = subprocess.run(
        [sys.executable, "-c", AFTER_CHROOT, str(empty), json.dumps(_profile(DENY_MKDIR_38)), way, str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [errno.ENOSYS, []]
    if way == "warm":
        assert len(list((tmp_path / "cache").iterdir())) == 1


def test_remembered_program_is_not_used_for_a_changed_document(tmp_path: Path) -> None:
    from hako.seccomp import filter as f

    profile = _profile(DENY_MKDIR_38)
    seccomp.warm(profile)
    assert f._remembered(profile) is not None
    assert f._remembered(dict(profile)) is None  # another dict, even if equal
    profile["syscalls"] = [{"names": ["rename", "renameat", "renameat2"], "action": "SCMP_ACT_ERRNO"}]
    assert f._remembered(profile) is None  # same dict, changed since
    res = run_filtered(lambda: seccomp.load(profile), lambda _: _mkdir_errno(tmp_path / "x"))
    assert res.value == 0


def test_compiled_programs_are_cached(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    profile = _profile(DENY_MKDIR_38)
    first = prepare(profile, cache_dir=str(cache))
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].read_bytes() == first.program
    files[0].write_bytes(first.program)  # a hit returns the stored program
    assert prepare(profile, cache_dir=str(cache)).program == first.program
    files[0].write_bytes(b"junk")  # a damaged entry is recompiled, not loaded
    assert prepare(profile, cache_dir=str(cache)).program == first.program
    other = prepare(_profile({"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"}), cache_dir=str(cache))
    assert other.program != first.program and len(list(cache.iterdir())) == 2
    res = run_filtered(lambda: seccomp.load(prepare(profile, cache_dir=str(cache))), lambda _: _mkdir_errno(tmp_path / "x"))
    assert res.value == errno.ENOSYS


def test_load_does_not_set_no_new_privs_itself(tmp_path: Path) -> None:
    # As root without NNP the kernel accepts the filter through CAP_SYS_ADMIN, and NNP stays
    # off: setting it is process.noNewPrivileges' decision, not libseccomp's default.
    profile = _profile(DENY_MKDIR_38)
    res = run_filtered(lambda: seccomp.load(profile), lambda _: [_status_field("NoNewPrivs"), _mkdir_errno(tmp_path / "x")], nnp=False)
    assert res.value == ["0", errno.ENOSYS]


def test_load_without_nnp_or_cap_sys_admin_fails() -> None:
    from hako.errors import KernelError

    def drop_to_nobody() -> None:
        os.setgroups([])
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)

    def attempt() -> Any:
        try:
            seccomp.load(_profile(DENY_MKDIR_38))
        except KernelError as exc:
            return ["KernelError", exc.errno]
        return "loaded"

    res = run_filtered(None, lambda _: attempt(), nnp=False, before=drop_to_nobody)
    assert res.value == ["KernelError", errno.EACCES]


def test_invalid_profile_raises_config_error_before_loading() -> None:
    bad = _profile({"names": ["mkdir"], "action": "SCMP_ACT_NOPE"})
    with pytest.raises(ConfigError, match=r"linux\.seccomp\.syscalls\[0\]\.action"):
        seccomp.load(bad)


def test_syscalls_newer_than_libseccomp_get_enosys_under_a_deny_profile() -> None:
    newer = scmp.max_syscall_nr() + 1
    deny = seccomp.default_profile()
    allow = _profile(DENY_MKDIR_38)
    kexec = _nr("kexec_load")
    res = run_filtered(lambda: seccomp.load(deny), lambda _: [raw_syscall(newer), raw_syscall(1000), raw_syscall(kexec, 0, 0, 0, 0)])
    # Above the table: ENOSYS (libc falls back); a known but denied syscall: the default EPERM.
    assert res.value == [-errno.ENOSYS, -errno.ENOSYS, -errno.EPERM]
    # An allow-by-default profile lets the kernel answer for itself (ENOSYS for 1000 too).
    res = run_filtered(lambda: seccomp.load(allow), lambda _: raw_syscall(1000))
    assert res.value == -errno.ENOSYS


def test_enosys_stub_only_for_deny_by_default_profiles() -> None:
    from hako.seccomp.filter import enosys_stub

    assert enosys_stub(parse({"defaultAction": "SCMP_ACT_ALLOW"})) == b""
    assert enosys_stub(parse({"defaultAction": "SCMP_ACT_LOG"})) == b""
    assert enosys_stub(parse({"defaultAction": "SCMP_ACT_ERRNO"})) == b""  # names nothing
    assert len(enosys_stub(parse({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}))) == 6 * 8


def test_syscalls_newer_than_an_old_profile_get_enosys() -> None:
    # A profile written before faccessat2 (439) and clone3 (435): glibc must see ENOSYS for
    # them and fall back to faccessat/clone, not EPERM. Known older syscalls keep EPERM.
    faccessat2, clone3, kexec = _nr("faccessat2"), _nr("clone3"), _nr("kexec_load")
    allowed = seccomp.default_profile()["syscalls"][0]["names"]
    old = [n for n in allowed if (scmp.syscall_resolve_name(n) or 0) < 435]
    profile = _profile({"names": old, "action": ALLOW}, default="SCMP_ACT_ERRNO")
    res = run_filtered(
        lambda: seccomp.load(profile),
        lambda _: [raw_syscall(faccessat2, -100, 0, 0, 0), raw_syscall(clone3, 0, 0), raw_syscall(kexec, 0, 0, 0, 0)],
    )
    assert res.value == [-errno.ENOSYS, -errno.ENOSYS, -errno.EPERM]


def _mkdir_in_existing_thread(flags: list[str], tmp_path: Path) -> Any:
    import threading

    go, done = threading.Event(), threading.Event()
    box: dict[str, int] = {}

    def worker() -> None:
        go.wait(10)
        box["errno"] = _mkdir_errno(tmp_path / "t")
        done.set()

    def load() -> Any:
        threading.Thread(target=worker, daemon=True).start()
        return seccomp.load(_profile(DENY_MKDIR_38, flags=flags))

    def check(_: Any) -> Any:
        go.set()
        done.wait(10)
        return [box.get("errno"), _mkdir_errno(tmp_path / "m")]

    return run_filtered(load, check).value


@pytest.mark.parametrize(("flags", "thread_errno"), [(["SECCOMP_FILTER_FLAG_TSYNC"], errno.ENOSYS), ([], 0)], ids=["tsync", "no-tsync"])
def test_tsync_extends_the_filter_to_running_threads(tmp_path: Path, flags: list[str], thread_errno: int) -> None:
    assert _mkdir_in_existing_thread(flags, tmp_path) == [thread_errno, errno.ENOSYS]


def test_load_without_nnp_inside_a_new_user_namespace(tmp_path: Path) -> None:
    # A rootless-style init: root of its own user namespace, so CAP_SYS_ADMIN there suffices.
    import ctypes

    def enter_userns() -> None:
        if LIBC.unshare(0x10000000) != 0:  # CLONE_NEWUSER
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")

    res = run_filtered(lambda: seccomp.load(_profile(DENY_MKDIR_38)), lambda _: [_status_field("NoNewPrivs"), raw_syscall(_nr("mkdir"), 0, 0)], nnp=False, before=enter_userns)
    # mkdir(NULL) would be EFAULT; the filter answers first.
    assert res.value == ["0", -errno.ENOSYS]


def test_prepare_after_validate_reuses_the_compiled_program() -> None:
    from hako.seccomp import filter as f

    profile = _profile(DENY_MKDIR_38)
    seccomp.validate(profile)
    remembered = f._remembered(profile)
    assert remembered is not None and f.prepare(profile) is remembered
    assert f.prepare(_profile(DENY_MKDIR_38)) is not remembered  # an equal but other dict
