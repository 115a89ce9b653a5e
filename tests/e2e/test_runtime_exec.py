"""``exec`` and the console socket, checked against the kernel."""

from __future__ import annotations

import array
import json
import os
import socket
import threading
import time
from pathlib import Path

from tests.fixtures_runtime import Runtime, alive, ns_inode, proc_status


def _running(rt: Runtime, bundle: Path, cid: str = "c1") -> int:
    rt.create(cid, bundle)
    rt("start", cid)
    pid: int = rt.state(cid)["pid"]
    return pid


def test_exec_foreground_joins_every_namespace(rt: Runtime, rbundle: Path) -> None:
    pid = _running(rt, rbundle)
    p = rt("exec", "c1", "sh", "-c", "echo $$; for n in net mnt pid; do readlink /proc/self/ns/$n; done; exit 3",
           check=False)
    assert p.returncode == 3, p.stderr
    lines = p.stdout.decode().split()
    assert lines[0] != "1"  # another process in the container's pid namespace
    assert lines[1] == f"net:[{ns_inode(pid, 'net')}]"
    assert lines[2] == f"mnt:[{ns_inode(pid, 'mnt')}]"
    assert lines[3] == f"pid:[{ns_inode(pid, 'pid')}]"


def test_exec_detach_pid_file_and_process_json(rt: Runtime, rbundle: Path) -> None:
    init = _running(rt, rbundle)
    proc = {"args": ["sleep", "100"], "cwd": "/tmp", "env": ["PATH=/bin"], "user": {"uid": 65534, "gid": 65534},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
                             # a non-root uid keeps capabilities across execve only through ambient
                             "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]},
            "noNewPrivileges": True}
    pf = rt.tmp / "proc.json"
    pf.write_text(json.dumps(proc))
    pidfile = rt.tmp / "exec.pid"
    p = rt.detached("exec", "--process", str(pf), "--detach", "--pid-file", str(pidfile), "c1", cid="c1")
    assert p.returncode == 0
    pid = int(pidfile.read_text())
    st = proc_status(pid)
    assert st["Uid"].split()[0] == "65534" and st["Gid"].split()[0] == "65534"
    assert st["CapEff"] == hex(1 << 5)[2:].rjust(16, "0") and st["CapBnd"] == st["CapEff"]
    assert st["CapAmb"] == st["CapEff"]
    assert st["NoNewPrivs"] == "1"
    assert os.readlink(f"/proc/{pid}/cwd") == "/tmp"
    assert ns_inode(pid, "pid") == ns_inode(init, "pid")
    assert json.loads(rt("ps", "--format", "json", "c1").stdout) == sorted([init, pid])
    rt("kill", "c1", "KILL")
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(pid)  # dies with the pid namespace's init


def test_exec_flags_env_user_cwd(rt: Runtime, rbundle: Path) -> None:
    _running(rt, rbundle)
    p = rt("exec", "--env", "A=1", "-e", "B=2", "--cwd", "/tmp", "-u", "1000:1001", "c1",
           "sh", "-c", "echo $A $B $(pwd) $(id -u) $(id -g)")
    assert p.stdout.decode().split() == ["1", "2", "/tmp", "1000", "1001"]


def test_exec_not_found_and_stopped(rt: Runtime, rbundle: Path) -> None:
    _running(rt, rbundle)
    p = rt("exec", "c1", "no-such-prog", check=False)
    assert p.returncode == 1 and b"executable file not found in $PATH" in p.stderr
    rt("kill", "c1", "KILL")
    deadline = time.monotonic() + 10
    while rt.state("c1")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.01)
    p = rt("exec", "c1", "true", check=False)
    assert p.returncode == 1 and b"container not running" in p.stderr


def test_exec_cannot_see_runtime_interpreter(rt: Runtime, rbundle: Path) -> None:
    """CVE-2019-5736: /proc/<pid>/exe of a runtime process must not be openable for writing."""
    _running(rt, rbundle)
    # Every process of the container as seen from inside: none may be the host's interpreter.
    p = rt("exec", "c1", "sh", "-c", "for e in /proc/[0-9]*/exe; do readlink $e; done")
    assert "python" not in p.stdout.decode()


class ConsoleListener:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.fds: list[int] = []
        self.payload = b""
        self.cmsg_count = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        conn, _ = self.sock.accept()
        fds = array.array("i")
        msg, anc, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(16 * fds.itemsize))
        self.payload = msg
        self.cmsg_count = len(anc)
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        self.fds = list(fds)
        conn.close()

    def master(self) -> int:
        self.thread.join(10)
        assert self.cmsg_count == 1 and len(self.fds) == 1 and self.payload
        return self.fds[0]


def _read_until(fd: int, needle: bytes, timeout: float = 10) -> bytes:
    import select

    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
    return buf


def test_console_socket_create_sends_master(rt: Runtime, rbundle: Path) -> None:
    from tests.fixtures_runtime import edit_config

    edit_config(rbundle, lambda c: (c["process"].__setitem__("terminal", True),
                                    c["process"].__setitem__("args", ["sh", "-c", "tty; sleep 100"])))
    lis = ConsoleListener(rt.tmp / "console.sock")
    rt.create("c1", rbundle, "--console-socket", str(lis.path))
    master = lis.master()  # sent before create returned
    rt("start", "c1")
    out = _read_until(master, b"/dev/pts/")
    assert b"/dev/pts/0" in out
    pid = rt.state("c1")["pid"]
    st = Path(f"/proc/{pid}/stat").read_text()
    fields = st[st.rindex(")") + 2:].split()
    assert fields[4] != "0"  # has a controlling terminal (tty_nr)
    os.close(master)


def test_console_size_is_set_on_the_pty(rt: Runtime, rbundle: Path) -> None:
    from tests.fixtures_runtime import edit_config

    def cfg(c: dict) -> None:  # type: ignore[type-arg]
        c["process"].update(terminal=True, consoleSize={"height": 33, "width": 111},
                            args=["sh", "-c", "echo size=$(stty size); sleep 100"])

    edit_config(rbundle, cfg)
    lis = ConsoleListener(rt.tmp / "console.sock")
    rt.create("c1", rbundle, "--console-socket", str(lis.path))
    master = lis.master()
    rt("start", "c1")
    assert b"size=33 111" in _read_until(master, b"size=33 111")
    os.close(master)


def test_console_socket_exec(rt: Runtime, rbundle: Path) -> None:
    _running(rt, rbundle)
    lis = ConsoleListener(rt.tmp / "exec.sock")
    pidfile = rt.tmp / "e.pid"
    rt.detached("exec", "-t", "-d", "--console-socket", str(lis.path), "--pid-file", str(pidfile), "c1",
                "sh", "-c", "tty; sleep 100", cid="c1")
    master = lis.master()
    assert b"/dev/pts/" in _read_until(master, b"/dev/pts/")
    os.close(master)


def test_blocked_init_is_not_dumpable(rt: Runtime, rbundle: Path) -> None:
    """CVE-2019-5736: while init is still our interpreter (created state), container root without
    CAP_SYS_PTRACE must not reach /proc/1/exe; it could if init were dumpable."""
    rt.create("c1", rbundle)
    assert "python" in Path(f"/proc/{rt.state('c1')['pid']}/cmdline").read_bytes().decode()
    p = rt("exec", "c1", "sh", "-c", "readlink /proc/1/exe; cat /proc/1/environ >/dev/null", check=False)
    assert p.returncode != 0
    assert b"python" not in p.stdout
    assert b"ermission denied" in p.stderr


def test_rlimits_and_oom_score(rt: Runtime, bundle: Path) -> None:
    from tests.fixtures_runtime import edit_config, set_config

    set_config(bundle, "o1", ["sh", "-c", "ulimit -n; cat /proc/self/oom_score_adj"])
    edit_config(bundle, lambda c: (c["process"].__setitem__("oomScoreAdj", 123),
                                   c["process"].__setitem__("rlimits", [{"type": "RLIMIT_NOFILE", "soft": 321,
                                                                         "hard": 654}])))
    p = rt("run", "-b", str(bundle), "o1")
    assert p.stdout.decode().split() == ["321", "123"]


def test_run_foreground_terminal_without_console_socket(rt: Runtime, bundle: Path) -> None:
    from tests.fixtures_runtime import edit_config, set_config

    set_config(bundle, "t1", ["sh", "-c", "tty; exit 4"])
    edit_config(bundle, lambda c: c["process"].__setitem__("terminal", True))
    p = rt("run", "-b", str(bundle), "t1", check=False)
    assert p.returncode == 4, p.stderr
    assert b"/dev/pts/0" in p.stdout


def test_exec_foreground_tty_without_console_socket(rt: Runtime, rbundle: Path) -> None:
    _running(rt, rbundle)
    p = rt("exec", "-t", "c1", "sh", "-c", "tty; exit 5", check=False)
    assert p.returncode == 5, p.stderr
    assert b"/dev/pts/" in p.stdout


def test_exec_preserve_fds(rt: Runtime, rbundle: Path) -> None:
    import subprocess

    from tests.fixtures_runtime import RUNTIME

    _running(rt, rbundle)
    r, w = os.pipe()
    try:
        # bash (dash takes one-digit fds only) puts our pipe on fd 3 of the runtime (subprocess would close a dup2'ed fd 3)
        p = subprocess.run(
            ["/bin/bash", "-c", f'exec "$0" "$@" 3>&{w}', RUNTIME, "--root", str(rt.root), "exec",
             "--preserve-fds", "1", "c1", "sh", "-c", "echo via-fd3 >&3; ls /proc/$$/fd; true"],
            capture_output=True, pass_fds=(w,), timeout=30,
        )
        assert p.returncode == 0, p.stderr
        os.close(w)
        w = -1
        assert os.read(r, 100) == b"via-fd3\n"
        assert p.stdout.split() == [b"0", b"1", b"2", b"3"]  # nothing else leaked from the runtime
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
