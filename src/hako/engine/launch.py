"""Starting a container's monitor: started ahead of ``create``, forked by a running monitor, or fresh.

Kept apart from ``hako.engine.containers`` (and light: no SQLite, no json) so that ``hako run`` can
start the monitor's interpreter before it even imports the engine.
"""

from __future__ import annotations

import _socket
import marshal
import os
import sys

from hako.engine import monitor as mon
from hako.engine.runtime_client import default_runtime, resolve_runtime, runtime_in_process
from hako.errors import HakoError

TYPE_CHECKING = False  # the typing module costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    import socket
    from pathlib import Path
    from typing import Any


def spawn_monitor(cdir: str | Path, client: socket.socket | None, inprocess: bool = False,
                  pending: PendingMonitor | None = None) -> dict[str, Any]:
    """A monitor for the container in ``cdir``; its start report (ok, pid or error, code).

    A monitor started ahead (``pending``) is used first; else a running monitor of the same store
    forks it when it can (copy-on-write pages, no interpreter start-up); otherwise a fresh
    ``python -S`` is double-forked. A fresh one then serves as the next one's parent (the zygote).
    ``HAKO_MONITOR_FORK=0`` always starts a fresh interpreter."""
    cdir = str(cdir)
    client_fd = client.fileno() if client is not None else -1
    zygote = os.path.join(os.path.dirname(os.path.dirname(cdir)), "zygote")
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
            tmp = f"{zygote}.{os.getpid()}"
            with open(tmp, "w") as f:
                f.write(os.path.basename(cdir))
            os.rename(tmp, zygote)
        except OSError:
            pass
    return report


def _zygote_dir(zygote: str) -> str:
    with open(zygote) as f:
        name = f.read().strip()
    if not name or "/" in name:
        raise ValueError(f"zygote file {zygote}: bad container id")
    return os.path.join(os.path.dirname(zygote), "containers", name)


def _spawn_from_zygote(zygote: str, cdir: str, client_fd: int) -> dict[str, Any] | None:
    """Ask the monitor named in ``zygote`` to fork ours; None when there is none or it did not."""
    try:
        sock = _connect_raw(_zygote_dir(zygote))
    except (OSError, ValueError):
        return None
    r, w = os.pipe()
    try:
        fds = [w] + ([client_fd] if client_fd >= 0 else [])
        frame = mon.HEADER.pack(mon.SPAWN, len(cdir.encode())) + cdir.encode()
        try:
            sock.sendmsg([frame], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
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

    def __init__(self, attach: bool, inprocess: bool, fork_only: bool = False) -> None:
        self.attach = attach
        self._ours: Any = None
        theirs: Any = None
        if attach:
            # _socket: the socket module (and enum) would cost start-up time here.
            self._ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        go_r, self.go_w = os.pipe2(os.O_CLOEXEC)
        try:
            self.report_r = _exec_monitor(f"fd:{go_r}", theirs.fileno() if theirs else -1, inprocess, [go_r],
                                          fork_only=fork_only)
        finally:
            os.close(go_r)
            if theirs is not None:
                theirs.close()

    def take_raw_socket(self) -> Any:
        """Our end of the attach socket as the bare ``_socket.socket`` (None when detached); the
        ``socket`` module that ``ours`` needs imports enum, several ms of ``hako run``."""
        raw, self._ours = self._ours, None
        return raw

    @property
    def ours(self) -> socket.socket | None:
        """Our end of the attach socket (None when detached)."""
        if self._ours is None:
            return None
        import socket

        return socket.socket(fileno=self._ours.detach())

    def launch(self, cdir: str | Path) -> dict[str, Any]:
        os.write(self.go_w, str(cdir).encode())
        os.close(self.go_w)
        self.go_w = -1
        return _read_report(self.report_r, str(cdir))

    def cancel(self) -> None:
        if self.go_w >= 0:
            os.close(self.go_w)
            self.go_w = -1
            os.close(self.report_r)
        if self._ours is not None:
            self._ours.close()
            self._ours = None


def prespawn_monitor(root: str | Path, runtime: str | None, attach: bool,
                     fork_only: bool = False) -> PendingMonitor | None:
    """A monitor started ahead for a container about to be created (``Engine.adopt`` it), or None
    when a running monitor of this store will fork it anyway."""
    if os.environ.get("HAKO_MONITOR_FORK", "1") != "0" and zygote_alive(root):
        return None
    try:
        path = resolve_runtime(runtime or default_runtime())
    except HakoError:
        return None
    return PendingMonitor(attach, runtime_in_process(path), fork_only)


def zygote_alive(store_root: str | Path) -> bool:
    """Whether a running monitor of this store can fork the next one (then no fresh one is needed)."""
    try:
        sock = _connect_raw(_zygote_dir(os.path.join(str(store_root), "engine", "zygote")))
    except (OSError, ValueError):
        return False
    sock.close()
    return True


def _exec_monitor(cdir_arg: str, client_fd: int, inprocess: bool, keep: list[int], *, fork_only: bool = False) -> int:
    """Double-fork and exec ``python -S`` running the monitor; the read end of its report pipe.

    ``fork_only``: the grandchild runs the monitor without the exec, in this interpreter as it is
    now. Only for ``start_early``, first thing in ``hako run``: so little is loaded yet that the
    fork costs what a fresh interpreter would, minus its ~7 ms start-up, which would otherwise be
    on the way to the container's start. Everything else matches the exec: environment, stdio,
    fds, session, subreaper."""
    import hako

    pythonpath = os.path.dirname(os.path.dirname(os.path.realpath(hako.__file__)))
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
            kept = [w, *keep] + ([client_fd] if client_fd >= 0 else [])
            for fd in kept:
                os.set_inheritable(fd, True)
            os.chdir("/")
            mon.set_subreaper()
            if fork_only:
                _become_monitor(argv[4:], env, kept)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    os.close(w)
    os.waitpid(pid, 0)
    return r


def _become_monitor(args: list[str], env: dict[str, str], kept: list[int]) -> None:
    """The rest of a fork-only monitor start (see ``_exec_monitor``); never returns."""
    import posix

    code = 1
    try:
        # What the exec would have closed (every fd is close-on-exec here, the go pipe's write
        # end too, which the monitor must not hold) and the environment it would have had.
        low = 3
        for fd in sorted(set(kept)):
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, 1 << 20)
        os.environ.clear()
        os.environ.update(env)
        posix.environ.clear()
        posix.environ.update({k.encode(): v.encode() for k, v in env.items()})
        code = mon.main([sys.executable, *args])
    except BaseException:  # noqa: BLE001 - never unwind into the CLI's code in the monitor
        code = 1
    finally:
        os._exit(code)


def _read_report(r: int, cdir: str) -> dict[str, Any]:
    with os.fdopen(r, "rb") as f:
        data = f.read()
    if not data:
        st: dict[str, Any] = {}
        try:
            st = mon.read_marshal(os.path.join(cdir, mon.STATE))
        except (OSError, ValueError, EOFError):
            pass
        return {"ok": False, "error": st.get("error") or "the monitor exited before starting the container",
                "code": 125}
    return dict(marshal.loads(data))


def _spawn_fresh(cdir: str, client_fd: int, inprocess: bool = False) -> dict[str, Any]:
    return _read_report(_exec_monitor(cdir, client_fd, inprocess, []), cdir)


def _connect_raw(cdir: str | Path) -> Any:
    """A ``_socket.socket`` connected to the monitor's attach.sock (through the directory's fd:
    the path may be longer than a socket address allows)."""
    dfd = os.open(cdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            s.connect(f"/proc/self/fd/{dfd}/attach.sock")
        except OSError:
            s.close()
            raise
        return s
    finally:
        os.close(dfd)


def connect_attach(cdir: str | Path) -> socket.socket:
    import socket

    return socket.socket(fileno=_connect_raw(cdir).detach())


_early: tuple[str, PendingMonitor] | None = None


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
        # Forked, not exec'd: nothing heavy is loaded yet (see _exec_monitor).
        pending = prespawn_monitor(root, runtime or os.environ.get("HAKO_RUNTIME"), attach=not detach,
                                   fork_only=os.environ.get("HAKO_MONITOR_FORK", "1") != "0")
    except OSError:
        return
    if pending is not None:
        _early = (os.path.abspath(root), pending)


def take_early(root: str | Path) -> PendingMonitor | None:
    """The monitor ``start_early`` started for this store, if any (else it is dropped)."""
    global _early
    early, _early = _early, None
    if early is None:
        return None
    if early[0] != os.path.abspath(root):
        early[1].cancel()
        return None
    return early[1]
