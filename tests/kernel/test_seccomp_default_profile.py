"""The default profile on the real kernel: busybox runs under it, escapes fail with EPERM."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from hako import seccomp
from hako.seccomp import libseccomp as scmp
from tests.fixtures_seccomp import exec_filtered, raw_syscall, run_filtered

BUSYBOX = "/bin/busybox"
pytestmark = pytest.mark.skipif(not Path(BUSYBOX).exists(), reason="needs Debian's busybox-static")


def test_busybox_runs_and_forks_under_the_default_profile(tmp_path: Path) -> None:
    script = f"{BUSYBOX} true && echo $(echo sub) && mkdir {tmp_path}/d && ls {tmp_path} && {BUSYBOX} sleep 0"
    code, output = exec_filtered(seccomp.default_profile(), script)
    assert code == 0, output
    assert "sub" in output and "d" in output


@pytest.mark.parametrize("script", ["unshare -n true", "chroot / true"])
def test_escapes_are_denied_with_eperm(script: str) -> None:
    code, output = exec_filtered(seccomp.default_profile(caps=["CAP_KILL"]), f"{BUSYBOX} {script}")
    assert code != 0
    assert "Operation not permitted" in output, output


# Arguments chosen so that, were the filter to let the call through, it fails harmlessly
# with another errno (bad magic, bad fd, missing target) instead of touching the host.
HARMLESS_PROBES: list[tuple[str, tuple[int, ...]]] = [
    ("mount", (0, 0, 0, 0, 0)),
    ("umount2", (0, 0)),
    ("reboot", (0, 0, 0, 0)),
    ("setns", (-1, 0)),
    ("init_module", (0, 0, 0)),
    ("kexec_load", (0, 0, 0, 0)),
    ("add_key", (0, 0, 0, 0, 0)),
    ("keyctl", (-1, 0)),
    ("bpf", (-1, 0, 0)),
    ("perf_event_open", (0, 0, 0, 0, 0)),
    ("userfaultfd", (-1,)),
    ("io_uring_setup", (0, 0)),
    ("open_by_handle_at", (-1, 0, 0)),
    ("pivot_root", (0, 0)),
    ("swapon", (0, 0)),
]


def test_host_level_syscalls_fail_with_eperm() -> None:
    numbers = [scmp.syscall_resolve_name(name) for name, _ in HARMLESS_PROBES]
    profile = seccomp.default_profile(caps=["CAP_KILL", "CAP_SYS_CHROOT"])
    res = run_filtered(
        lambda: seccomp.load(profile),
        lambda _: [raw_syscall(nr, *args) if nr is not None else -errno.EPERM for nr, (_, args) in zip(numbers, HARMLESS_PROBES, strict=True)],
    )
    assert dict(zip([n for n, _ in HARMLESS_PROBES], res.value, strict=True)) == {n: -errno.EPERM for n, _ in HARMLESS_PROBES}


def test_clone_namespace_flags_and_clone3_without_cap_sys_admin() -> None:
    clone3 = scmp.syscall_resolve_name("clone3")
    unshare = scmp.syscall_resolve_name("unshare")
    assert clone3 is not None and unshare is not None
    profile = seccomp.default_profile()
    res = run_filtered(lambda: seccomp.load(profile), lambda _: [raw_syscall(clone3, 0, 0), raw_syscall(unshare, 0x40000000)])
    # clone3 answers ENOSYS so libc falls back to clone, whose flags BPF can check.
    assert res.value == [-errno.ENOSYS, -errno.EPERM]


def test_cap_sys_admin_grants_namespaces() -> None:
    unshare = scmp.syscall_resolve_name("unshare")
    assert unshare is not None
    profile = seccomp.default_profile(caps=["CAP_SYS_ADMIN"])
    # CLONE_NEWUTS in a throwaway child: allowed by the profile, permitted to root.
    res = run_filtered(lambda: seccomp.load(profile), lambda _: raw_syscall(unshare, 0x04000000))
    assert res.value == 0


def test_personality_only_safe_values() -> None:
    nr = scmp.syscall_resolve_name("personality")
    assert nr is not None
    profile = seccomp.default_profile()
    # 0xffffffff queries; ADDR_NO_RANDOMIZE (0x0040000) would weaken ASLR.
    res = run_filtered(lambda: seccomp.load(profile), lambda _: [raw_syscall(nr, 0xFFFFFFFF) >= 0, raw_syscall(nr, 0x0040000)])
    assert res.value == [True, -errno.EPERM]


PYTHON_WORKLOAD = """
import asyncio, mmap, multiprocessing, os, signal, socket, subprocess, tempfile, threading, time

def main():
    done = []
    t = threading.Thread(target=lambda: done.append(1)); t.start(); t.join()
    assert subprocess.run(["/bin/busybox", "true"]).returncode == 0
    a, b = socket.socketpair(); a.send(b"x"); assert b.recv(1) == b"x"
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.bind(("127.0.0.1", 0)); s.listen()
    c = socket.socket(); c.connect(s.getsockname()); conn, _ = s.accept()
    for x in (c, conn, s, a, b):
        x.close()
    socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()
    async def coro():
        await asyncio.sleep(0.001)
        return 5
    assert asyncio.run(coro()) == 5
    with tempfile.TemporaryFile() as f:
        f.write(b"x" * 4096); f.flush()
        m = mmap.mmap(f.fileno(), 4096); assert m[:1] == b"x"; m.close()
    with multiprocessing.Pool(2) as pool:
        assert pool.map(abs, [-1, -2]) == [1, 2]
    signal.signal(signal.SIGALRM, lambda *_: None); signal.setitimer(signal.ITIMER_REAL, 0.001); time.sleep(0.01)
    os.urandom(16); os.sched_getaffinity(0); os.statvfs("/")
    print("workload ok")

if __name__ == "__main__":
    main()
"""


def test_a_python_workload_runs_under_the_default_profile(tmp_path: Path) -> None:
    # Threads (clone3 -> ENOSYS -> clone), processes, sockets, asyncio, mmap, POSIX
    # semaphores and timers: what real images do beyond busybox.
    import sys

    script = tmp_path / "workload.py"
    script.write_text(PYTHON_WORKLOAD)
    code, output = exec_filtered(seccomp.default_profile(), "", argv=[sys.executable, "-I", str(script)])
    assert code == 0, output
    assert "workload ok" in output
