"""Starting a container's monitor: started ahead of ``create``, forked by a running monitor, or fresh.

Kept apart from ``hako.engine.containers`` (and light: no SQLite, no json) so that ``hako run`` can
start the monitor's interpreter before it even imports the engine.
"""

from __future__ import annotations

import marshal
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hako.engine import monitor as mon
from hako.engine.runtime_client import default_runtime, resolve_runtime, runtime_in_process
from hako.errors import HakoError

if TYPE_CHECKING:
    import socket


def spawn_monitor(cdir: Path, client: socket.socket | None, inprocess: bool = False,
                  pending: PendingMonitor | None = None) -> dict[str, Any]:
    """A monitor for the container in ``cdir``; its start report (ok, pid or error, code).

    A monitor started ahead (``pending``) is used first; else a running monitor of the same store
    forks it when it can (copy-on-write pages, no interpreter start-up); otherwise a fresh
    ``python -S`` is double-forked. A fresh one then serves as the next one's parent (the zygote).
    ``HAKO_MONITOR_FORK=0`` always starts a fresh interpreter."""
    client_fd = client.fileno() if client is not None else -1
    zygote = cdir.parent.parent / "zygote"
    if pending is not None:
        report = pending.launch(cdir)
    else:
        if os.environ.get("HAKO_MONITOR_FORK", "1") != "0":
            report_z = _spawn_from_zygote(zygote, cdir, client_fd)
            if report_z is not None:
                return report_z
        report = _spawn_fresh(cdir, client_fd, inprocess)
    if report.get("ok"):
        try:
            tmp = zygote.with_name(f"zygote.{os.getpid()}")
            tmp.write_text(cdir.name)
            tmp.rename(zygote)
        except OSError:
            pass
    return report


def _spawn_from_zygote(zygote: Path, cdir: Path, client_fd: int) -> dict[str, Any] | None:
    """Ask the monitor named in ``zygote`` to fork ours; None when there is none or it did not."""
    import socket

    try:
        parent = cdir.parent / zygote.read_text().strip()
        sock = connect_attach(parent)
    except (OSError, ValueError):
        return None
    r, w = os.pipe()
    try:
        fds = [w] + ([client_fd] if client_fd >= 0 else [])
        frame = mon.HEADER.pack(mon.SPAWN, len(str(cdir).encode())) + str(cdir).encode()
        try:
            sock.sendmsg([frame], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                    b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds))])
        except OSError:
            return None
    finally:
        os.close(w)
        sock.close()
    with os.fdopen(r, "rb") as f:
        data = f.read()
    # EOF without a report: that monitor went away before forking (its container exited).
    return dict(marshal.loads(data)) if data else None


class PendingMonitor:
    """A fresh monitor interpreter started before its container exists: its start-up (and, for
    hako's own runtime, the runtime's imports) overlap the engine's create work. It waits for the
    container directory on a pipe and exits quietly when that pipe closes without one."""

    def __init__(self, attach: bool, inprocess: bool) -> None:
        import socket

        self.ours: socket.socket | None = None
        theirs: socket.socket | None = None
        if attach:
            self.ours, theirs = socket.socketpair()
        go_r, self.go_w = os.pipe2(os.O_CLOEXEC)
        try:
            self.report_r = _exec_monitor(f"fd:{go_r}", theirs.fileno() if theirs else -1, inprocess, [go_r])
        finally:
            os.close(go_r)
            if theirs is not None:
                theirs.close()

    def launch(self, cdir: Path) -> dict[str, Any]:
        os.write(self.go_w, str(cdir).encode())
        os.close(self.go_w)
        self.go_w = -1
        return _read_report(self.report_r, cdir)

    def cancel(self) -> None:
        if self.go_w >= 0:
            os.close(self.go_w)
            self.go_w = -1
            os.close(self.report_r)
        if self.ours is not None:
            self.ours.close()
            self.ours = None


def prespawn_monitor(root: Path, runtime: str | None, attach: bool) -> PendingMonitor | None:
    """A monitor started ahead for a container about to be created (``Engine.adopt`` it), or None
    when a running monitor of this store will fork it anyway."""
    if os.environ.get("HAKO_MONITOR_FORK", "1") != "0" and zygote_alive(Path(root)):
        return None
    try:
        path = resolve_runtime(runtime or default_runtime())
    except HakoError:
        return None
    return PendingMonitor(attach, runtime_in_process(path))


def zygote_alive(store_root: Path) -> bool:
    """Whether a running monitor of this store can fork the next one (then no fresh one is needed)."""
    containers = store_root / "engine" / "containers"
    try:
        sock = connect_attach(containers / (containers.parent / "zygote").read_text().strip())
    except (OSError, ValueError):
        return False
    sock.close()
    return True


def _exec_monitor(cdir_arg: str, client_fd: int, inprocess: bool, keep: list[int]) -> int:
    """Double-fork and exec ``python -S`` running the monitor; the read end of its report pipe."""
    import hako

    pythonpath = str(Path(hako.__file__).resolve().parent.parent)
    r, w = os.pipe2(os.O_CLOEXEC)
    argv = [sys.executable, "-S", "-c", "from hako.engine.monitor import main; main()", cdir_arg, str(w),
            str(client_fd), "inprocess" if inprocess else "-"]
    env = {"PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
           "PYTHONPATH": pythonpath}
    if os.environ.get("HAKO_TRACE"):
        env["HAKO_TRACE"] = os.environ["HAKO_TRACE"]
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            for fd in [w, *keep] + ([client_fd] if client_fd >= 0 else []):
                os.set_inheritable(fd, True)
            os.chdir("/")
            mon.set_subreaper()
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    os.close(w)
    os.waitpid(pid, 0)
    return r


def _read_report(r: int, cdir: Path) -> dict[str, Any]:
    with os.fdopen(r, "rb") as f:
        data = f.read()
    if not data:
        st: dict[str, Any] = {}
        try:
            st = mon.read_marshal(str(cdir / mon.STATE))
        except (OSError, ValueError, EOFError):
            pass
        return {"ok": False, "error": st.get("error") or "the monitor exited before starting the container",
                "code": 125}
    return dict(marshal.loads(data))


def _spawn_fresh(cdir: Path, client_fd: int, inprocess: bool = False) -> dict[str, Any]:
    return _read_report(_exec_monitor(str(cdir), client_fd, inprocess, []), cdir)


def connect_attach(cdir: Path) -> socket.socket:
    import socket

    dfd = os.open(cdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(f"/proc/self/fd/{dfd}/attach.sock")
        except OSError:
            s.close()
            raise
        return s
    finally:
        os.close(dfd)


_early: tuple[Path, PendingMonitor] | None = None


def start_early(argv: list[str], root: str) -> None:
    """For ``hako run``, called before the command line is even parsed: start the monitor now.

    ``argv`` is only scanned, not parsed: a wrong guess (``-d`` that belonged to the container's
    command) costs the monitor started ahead, never correctness (``Engine.start`` drops a monitor
    started for the other mode). ``take_early`` hands it to the command."""
    global _early
    i = argv.index("run") if "run" in argv else len(argv)
    head, rest = argv[:i], argv[i + 1:]
    for j, arg in enumerate(head):
        if arg == "--root" and j + 1 < len(head):
            root = head[j + 1]
        elif arg.startswith("--root="):
            root = arg.split("=", 1)[1]
    runtime = None
    detach = False
    for j, arg in enumerate(rest):
        if arg == "--runtime" and j + 1 < len(rest):
            runtime = rest[j + 1]
        elif arg.startswith("--runtime="):
            runtime = arg.split("=", 1)[1]
        elif arg == "--detach" or (arg.startswith("-") and not arg.startswith("--") and "d" in arg
                                   and set(arg[1:]) <= set("ditP")):
            detach = True
    try:
        pending = prespawn_monitor(Path(root), runtime or os.environ.get("HAKO_RUNTIME"), attach=not detach)
    except OSError:
        return
    if pending is not None:
        _early = (Path(root), pending)


def take_early(root: Path) -> PendingMonitor | None:
    """The monitor ``start_early`` started for this store, if any (else it is dropped)."""
    global _early
    early, _early = _early, None
    if early is None:
        return None
    if early[0] != Path(root):
        early[1].cancel()
        return None
    return early[1]
