"""The per-container monitor: one small process per running container, outliving the CLI.

It is started as ``python -S -c 'from hako.engine.monitor import main; main()' DIR SYNC_FD CLIENT_FD MODE``
(double-forked and ``setsid`` by the CLI, which also makes it the child subreaper: that setting
survives execve; ``DIR`` may be ``fd:N``, a pipe on which the directory arrives once the engine has
created the container, so that this interpreter's start-up overlaps the create), or forked by an
already running monitor of the same store on request (``SPAWN`` on its attach socket, with the fds
passed over SCM_RIGHTS), which shares that interpreter's pages copy-on-write and skips the
interpreter's start-up. Its resident size is paid once per container, so it imports only modules
built into the interpreter (posix, _socket, _signal, select, _struct, time, marshal): no ``os``,
``json``, ``socket``, ``signal`` or ``io`` objects (files are read and written through posix fds),
and a forked monitor makes as few new objects as it can: each one dirties a page it would
otherwise share. With ``MODE`` ``inprocess`` (hako's own runtime) it imports ``hako.runtime`` once
and runs each runtime command in a forked child (``fork_runtime``) instead of a new interpreter.
The container's init is re-parented to it, so it collects the exit status; it holds the container's
stdio (pipes, or a pty received over the runtime's ``--console-socket``), writes json-file logs with
rotation, serves attach clients on ``attach.sock``, runs health checks through the runtime's ``exec``
and applies the restart policy.

Its output is ``state`` (a marshal dict written atomically) plus the logs; everything it needs
comes from ``monitor.spec`` (marshal) written by the engine before it was started.
"""
from __future__ import annotations

import _signal
import _socket
import _struct
import marshal
import posix
import posix as os  # the monitor's "os": the C module only, without os.py's imports
import select
import sys
import time

from hako.engine import trace

TYPE_CHECKING = False  # the monitor imports no typing; mypy treats this name as true
if TYPE_CHECKING:
    from collections.abc import Callable

# Frame types on the attach socket. Monitor -> client:
OUT, ERR, EXIT, FAIL = 1, 2, 3, 4
# Client -> monitor:
STDIN, STDIN_CLOSE, RESIZE, SPAWN = 0, 1, 2, 9
HEADER = _struct.Struct(">BI")
STATE = "state"
SPEC = "monitor.spec"

# JSON string escapes for log lines, without the json module (it imports re).
_ESC = {i: f"\\u{i:04x}" for i in range(32)}
_ESC.update({ord('"'): '\\"', ord("\\"): "\\\\", 10: "\\n", 13: "\\r", 9: "\\t"})


def jstr(text: str) -> str:
    return '"' + text.translate(_ESC) + '"'


def join(*parts: str) -> str:
    return "/".join(parts)


def exists(path: str) -> bool:
    try:
        posix.stat(path)
    except OSError:
        return False
    return True


PR_SET_CHILD_SUBREAPER = 36
PR_SET_NAME = 15


def now_rfc3339(t: float | None = None) -> str:
    t = time.time() if t is None else t
    secs = int(t)
    tm = time.gmtime(secs)
    # Not time.strftime: its first call in a forked monitor writes ~150 KiB of pages the monitor
    # otherwise shares (locale conversions, buffers); every log line goes through here.
    # %-formatting, not an f-string with format specs: ~30 KiB fewer pages written the same way.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ" % (  # noqa: UP031
        tm[0], tm[1], tm[2], tm[3], tm[4], tm[5], int((t - secs) * 1e9))


def read_file(path: str) -> bytes:
    """A whole (small) file through the posix module alone: a forked monitor that made the io
    module's objects and buffers would dirty pages it otherwise shares with its parent."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def write_file(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def proc_start_time(pid: int) -> str:
    try:
        data = read_file(f"/proc/{pid}/stat").decode(errors="replace")
    except OSError:
        return ""
    # Field 22 (starttime); the command name in parentheses may contain spaces. A zombie is dead.
    fields = data[data.rindex(")") + 2:].split()
    return "" if fields[0] in ("Z", "X") else fields[19]


def write_atomic(path: str, data: dict) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    write_file(tmp, marshal.dumps(data))
    os.rename(tmp, path)


def read_marshal(path: str) -> dict:
    return dict(marshal.loads(read_file(path)))


_PRCTL: Callable[..., int] | None = None


def _prctl() -> Callable[..., int]:
    """libc's prctl through ctypes, looked up and called once in this process, before any fork:
    a forked monitor that did the lookup itself would dirty ~100 KiB of shared pages."""
    global _PRCTL
    fn = _PRCTL
    if fn is None:
        from hako.sys import ffi

        fn = ffi.CDLL(None, use_errno=True).prctl
        fn(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE: warms ctypes' argument conversion
        _PRCTL = fn
    return fn


def set_subreaper() -> None:
    """Called by the engine in the monitor's process just before execve (the flag survives exec)."""
    from hako.sys import ffi

    libc = ffi.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ffi.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


class LogWriter:
    """Docker's json-file format, one JSON object per line, rotated by size."""

    def __init__(self, path: str, max_size: int, max_files: int) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size
        self.partial = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        data = self.partial[stream] + data
        lines = data.split(b"\n")
        self.partial[stream] = lines.pop()
        if len(self.partial[stream]) > 16384:
            lines.append(self.partial[stream])
            self.partial[stream] = b""
            self._emit(stream, lines, last_partial=True)
        else:
            self._emit(stream, lines)

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self.partial[stream] = b""
                self._emit(stream, [rest], last_partial=True)

    def _emit(self, stream: str, lines: list[bytes], last_partial: bool = False) -> None:
        if not lines:
            return
        ts = now_rfc3339()
        out: list[bytes] = []
        pending = 0
        for i, line in enumerate(lines):
            nl = "" if (last_partial and i == len(lines) - 1) else "\n"
            text = line.decode("utf-8", "replace") + nl
            entry = f'{{"log":{jstr(text)},"stream":"{stream}","time":"{ts}"}}\n'.encode()
            # Rotate between lines, never inside one, as soon as the next line would not fit.
            if self.max_size > 0 and self.size + pending + len(entry) > self.max_size and self.size + pending > 0:
                self._write(b"".join(out))
                out, pending = [], 0
                self.rotate()
            out.append(entry)
            pending += len(entry)
        self._write(b"".join(out))

    def _write(self, blob: bytes) -> None:
        if blob:
            os.write(self.fd, blob)
            self.size += len(blob)

    def rotate(self) -> None:
        os.close(self.fd)
        if self.max_files <= 1:
            os.truncate(self.path, 0)
        else:
            for i in range(self.max_files - 1, 0, -1):
                src = self.path if i == 1 else f"{self.path}.{i - 1}"
                if exists(src):
                    os.rename(src, f"{self.path}.{i}")
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = 0


class Monitor:
    def __init__(self, cdir: str, sync_fd: int, client_fd: int) -> None:
        self.cdir = cdir
        self.spec = read_marshal(join(cdir, SPEC))
        trace.configure(self.spec.get("trace") or "")
        trace.phase("mon", "spec read")
        self.id: str = self.spec["id"]
        self.sync_fd = sync_fd
        if sync_fd >= 0:
            # Inherited across the exec that may have started us; no runtime we spawn may hold it
            # (a hung one would keep the waiting CLI from ever seeing EOF).
            os.set_inheritable(sync_fd, False)
        self.state_path = join(cdir, STATE)
        try:
            self.state = read_marshal(self.state_path)
        except (OSError, ValueError, EOFError):
            self.state = {}
        self.state.update(monitor_pid=os.getpid(), monitor_start=proc_start_time(os.getpid()),
                          error="", pid=0)
        self.logs = LogWriter(self.spec["log_path"], self.spec.get("log_max_size", 0),
                              self.spec.get("log_max_files", 1))
        self.clients: dict[int, _socket.socket] = {}
        self.client_buf: dict[int, bytes] = {}
        # The attached command that started us removes a --rm container itself, if it is still there.
        self.owner_fd = client_fd
        self.owner_has_exit = False
        if client_fd >= 0:
            os.set_inheritable(client_fd, False)  # as the sync pipe: ours, not the runtime's
            c = _socket.socket(fileno=client_fd)
            self.clients[c.fileno()] = c
            self.client_buf[c.fileno()] = b""
        self.listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        dfd = os.open(cdir, os.O_RDONLY | os.O_DIRECTORY)
        self.dfd = dfd
        sock_path = f"/proc/self/fd/{dfd}/attach.sock"
        try:
            os.unlink(sock_path)
        except FileNotFoundError:
            pass
        self.listener.bind(sock_path)
        self.listener.listen(16)
        self.poll = select.poll()
        self.fd_stream: dict[int, str] = {}
        self.stdin_fd = -1
        self.master_fd = -1
        self.pid = 0
        self.runtime_children: dict[int, int | None] = {}
        self.health_proc: tuple[int, float, str] | None = None
        self.next_health = 0.0
        self.exit_status: int | None = None
        self.started_mono = 0.0
        self.sigr, self.sigw = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    # --- state -------------------------------------------------------------------------------
    def save(self, **changes: object) -> None:
        self.state.update(changes)
        write_atomic(self.state_path, self.state)

    def report(self, msg: dict) -> None:
        if self.sync_fd >= 0:
            try:
                os.write(self.sync_fd, marshal.dumps(msg))
            except OSError:
                pass
            os.close(self.sync_fd)
            self.sync_fd = -1

    # --- runtime -----------------------------------------------------------------------------
    def runtime_argv(self, *args: str) -> list[str]:
        s = self.spec
        return [s["runtime"], "--root", s["runtime_root"], "--log", join(self.cdir, "runtime.log"),
                "--log-format", "json", *s.get("runtime_args", []), *args]

    def spawn(self, argv: list[str], stdio: tuple[int, int, int]) -> int:
        if self.spec.get("inprocess") and argv[0] == self.spec["runtime"]:
            return self.fork_runtime(argv, stdio)
        actions = [(os.POSIX_SPAWN_DUP2, fd, i) for i, fd in enumerate(stdio)]
        return os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)

    def fork_runtime(self, argv: list[str], stdio: tuple[int, int, int]) -> int:
        """hako's own runtime, called as a library in a forked child instead of a new interpreter.

        The child is what ``posix_spawn`` of the binary would have made, minus the exec: the same
        stdio, no other fds, default signal dispositions, the same argv to ``hako.runtime.cli.main``
        (errors in runtime.log, exit code). Its imports stay in the child, so the monitor stays small;
        the container's init it forks is re-parented to us (the subreaper) when it exits."""
        pid = os.fork()
        if pid != 0:
            return pid
        from hako.runtime.cli import run_in_forked_child

        run_in_forked_child(argv[1:], stdio)

    def wait_runtime(self, pid: int) -> int:
        # Children may also be reaped by the main loop's waitpid(-1); it parks their status here.
        while True:
            if self.runtime_children.get(pid) is not None:
                status = self.runtime_children.pop(pid)
                assert status is not None
                return status
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                # Reaped by the main loop's waitpid(-1), which parked its status (0 is a status too).
                code = self.runtime_children.pop(pid, None)
                return 255 if code is None else code
            except InterruptedError:
                continue
            return os.waitstatus_to_exitcode(status)

    def run_runtime(self, *args: str, stdio: tuple[int, int, int] | None = None) -> int:
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        try:
            pid = self.spawn(self.runtime_argv(*args), stdio or (null, null, null))
            self.runtime_children[pid] = None
            return self.wait_runtime(pid)
        finally:
            os.close(null)

    def runtime_error(self) -> str:
        try:
            with open(join(self.cdir, "runtime.log"), errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return ""
        for line in reversed(lines):
            if '"level":"error"' in line.replace(" ", "") or '"level":"fatal"' in line.replace(" ", ""):
                # The json module is not loaded in the monitor; pay for it only on this error path.
                import json

                try:
                    return str(json.loads(line).get("msg", ""))
                except ValueError:
                    return line
        return ""

    # --- container start ---------------------------------------------------------------------
    def start_container(self) -> tuple[bool, str, int]:
        """Create and start the container from a short-lived child of this monitor.

        The monitor's pages are paid once per container for as long as it runs, and every page a
        forked monitor writes stops being shared: calling the runtime, reading its pid file and
        writing the state would leave hundreds of KiB private. The child does all of that and
        dies; this process only opens the stdio pipes (so it holds the read ends), and learns
        the init's pid, the state written and, with a tty, the pty master over a socketpair.
        The init is re-parented to this process, the subreaper, when the runtime's child exits."""
        s = self.spec
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        child_only = [null]
        out_r = -1
        if s.get("tty"):
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            stdio = (null, null, err_w)
            child_only.append(err_w)
        else:
            in_r = null
            if s.get("open_stdin"):
                in_r, self.stdin_fd = os.pipe2(os.O_CLOEXEC)
                child_only.append(in_r)
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            child_only += [out_w, err_w]
            stdio = (in_r, out_w, err_w)
        ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            ours.close()
            self.setup_child(theirs, stdio, err_r)
        self.runtime_children[pid] = None
        theirs.close()
        for fd in child_only:
            os.close(fd)
        try:
            data, ancdata, _, _ = ours.recvmsg(65536, _socket.CMSG_SPACE(4))
        except OSError:
            data, ancdata = b"", []
        ours.close()
        self.wait_runtime(pid)
        if data:
            result: dict = marshal.loads(data)
            self.state = result.pop("state")
            if self.sync_fd >= 0:
                os.close(self.sync_fd)  # the child has reported; the CLI reads to EOF
                self.sync_fd = -1
        else:  # the child died before it could say anything (killed, out of memory)
            result = {"ok": False, "error": "monitor: the container's setup process died", "code": 125}
            self.save(status="exited", exit_code=125, error=result["error"], finished_at=now_rfc3339(), pid=0)
            self.report(result)
        if ancdata:
            self.master_fd = int.from_bytes(ancdata[0][2][:4], sys.byteorder)
            self.stdin_fd = self.master_fd if s.get("open_stdin") else -1
        if not result["ok"]:
            os.close(err_r)
            if out_r >= 0:
                os.close(out_r)
            if self.stdin_fd >= 0 and self.stdin_fd != self.master_fd:
                os.close(self.stdin_fd)
            self.stdin_fd = -1
            return False, str(result["error"]), int(result["code"])
        self.pid = int(result["pid"])
        if s.get("tty"):
            os.close(err_r)
            if self.master_fd >= 0:
                self.watch(self.master_fd, "stdout")
        else:
            self.watch(out_r, "stdout")
            self.watch(err_r, "stderr")
        return True, "", 0

    def setup_child(self, result: _socket.socket, stdio: tuple[int, int, int], err_r: int) -> None:
        """The child of ``start_container``: never returns."""
        msg: dict = {"ok": False, "error": "monitor: container setup failed", "code": 125}
        fds: list[int] = []
        try:
            _signal.set_wakeup_fd(-1)  # the monitor's wakeup pipe is not for this child's children
            _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
            ok, error, code = self.create_and_start(stdio, err_r)
            if ok:
                self.save(status="running", pid=self.pid, started_at=now_rfc3339(), exit_code=0,
                          oom_killed=False, health=self.initial_health(), finished_at="0001-01-01T00:00:00Z")
                msg = {"ok": True, "pid": self.pid}
                fds = [self.master_fd] if self.master_fd >= 0 else []
            else:
                self.save(status="exited", exit_code=code, error=error, finished_at=now_rfc3339(), pid=0)
                msg = {"ok": False, "error": error, "code": code}
        except BaseException as exc:  # noqa: BLE001 - the monitor reports it; this child must not unwind
            msg = {"ok": False, "error": f"monitor: {exc}", "code": 125}
        finally:
            try:
                self.report(msg)
                anc = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds[0].to_bytes(4, sys.byteorder))] if fds else []
                result.sendmsg([marshal.dumps(dict(msg, state=self.state))], anc)
            finally:
                os._exit(0)

    def initial_health(self) -> dict | None:
        if not self.spec.get("health"):
            return None
        return {"Status": "starting", "FailingStreak": 0, "Log": (self.state.get("health") or {}).get("Log", [])}

    def create_and_start(self, stdio: tuple[int, int, int], err_r: int) -> tuple[bool, str, int]:
        s = self.spec
        pid_file = join(self.cdir, "container.pid")
        try:
            os.unlink(pid_file)
        except FileNotFoundError:
            pass
        try:
            os.truncate(join(self.cdir, "runtime.log"), 0)
        except OSError:
            pass
        # A stale runtime state from an earlier run (monitor killed, reboot) would block create.
        if exists(join(s["runtime_root"], self.id)):
            self.run_runtime("delete", "--force", self.id)
        args = ["create", "--bundle", s["bundle"], "--pid-file", pid_file]
        console = None
        if s.get("tty"):
            console_path = f"/tmp/hako-console-{os.getpid()}-{self.id[:12]}.sock"
            try:
                os.unlink(console_path)
            except FileNotFoundError:
                pass
            console = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            console.bind(console_path)
            console.listen(1)
            args += ["--console-socket", console_path]
        args.append(self.id)
        pid = self.spawn(self.runtime_argv(*args), stdio)
        self.runtime_children[pid] = None
        for fd in set(stdio):
            os.close(fd)
        if console is not None:
            # The runtime connects once it has made the pty and sends the master over SCM_RIGHTS.
            console.settimeout(30)
            try:
                cfd, _ = console._accept()  # type: ignore[attr-defined]
                conn = _socket.socket(fileno=cfd)
                try:
                    _, ancdata, _, _ = conn.recvmsg(4096, _socket.CMSG_SPACE(4))
                finally:
                    conn.close()
                self.master_fd = int.from_bytes(ancdata[0][2][:4], sys.byteorder)
            except OSError:
                pass
            finally:
                console.close()
                try:
                    os.unlink(console_path)
                except OSError:
                    pass
        code = self.wait_runtime(pid)
        trace.phase("mon", "runtime create")
        if code != 0:
            out = b""
            os.set_blocking(err_r, False)
            try:
                out = os.read(err_r, 65536)
            except OSError:
                pass
            msg = self.runtime_error() or out.decode(errors="replace").strip() or f"runtime create exited {code}"
            return False, msg, exit_code_for(msg)
        self.pid = int(read_file(pid_file).strip())
        code = self.run_runtime("start", self.id)
        trace.phase("mon", "runtime start")
        if code != 0:
            msg = self.runtime_error() or f"runtime start exited {code}"
            self.run_runtime("kill", self.id, "KILL")
            return False, msg, exit_code_for(msg)
        return True, "", 0

    def watch(self, fd: int, stream: str) -> None:
        os.set_blocking(fd, False)
        self.fd_stream[fd] = stream
        self.poll.register(fd, select.POLLIN)

    def unwatch(self, fd: int) -> None:
        self.fd_stream.pop(fd, None)
        try:
            self.poll.unregister(fd)
        except KeyError:
            pass
        os.close(fd)

    # --- clients -----------------------------------------------------------------------------
    def broadcast(self, kind: int, data: bytes) -> bool:
        """Send to every client; whether the owner (the command that started us attached) got it."""
        frame = HEADER.pack(kind, len(data)) + data
        owner_got = False
        for fd, c in list(self.clients.items()):
            try:
                c.sendall(frame)
                owner_got = owner_got or fd == self.owner_fd
            except OSError:
                self.drop_client(fd)
        return owner_got

    def drop_client(self, fd: int) -> None:
        if fd == self.owner_fd:
            self.owner_fd = -1
        c = self.clients.pop(fd, None)
        self.client_buf.pop(fd, None)
        try:
            self.poll.unregister(fd)
        except KeyError:
            pass
        if c is not None:
            c.close()

    def client_input(self, fd: int) -> None:
        c = self.clients[fd]
        fds: list[int] = []
        try:
            data, ancdata, _, _ = c.recvmsg(65536, _socket.CMSG_SPACE(8))
        except OSError:
            data, ancdata = b"", []
        for level, kind, raw in ancdata:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                fds += [int.from_bytes(raw[i:i + 4], sys.byteorder) for i in range(0, len(raw) - len(raw) % 4, 4)]
        if not data:
            for extra in fds:
                os.close(extra)
            self.drop_client(fd)
            return
        buf = self.client_buf[fd] + data
        while len(buf) >= HEADER.size:
            kind, n = HEADER.unpack_from(buf)
            if len(buf) < HEADER.size + n:
                break
            payload = buf[HEADER.size:HEADER.size + n]
            buf = buf[HEADER.size + n:]
            if kind == SPAWN and fds:
                self.spawn_sibling(payload.decode(), fds)
                fds = []
            else:
                self.handle_frame(kind, payload)
        for extra in fds:
            os.close(extra)
        if fd in self.client_buf:
            self.client_buf[fd] = buf

    def spawn_sibling(self, cdir: str, fds: list[int]) -> None:
        """Fork a monitor for another container (fds: its sync pipe, then maybe its attach client).

        The child shares this interpreter's pages copy-on-write, so a second monitor costs a fraction
        of a fresh interpreter, and it skips the interpreter's start-up. It never returns here."""
        import gc

        prctl = _prctl()
        # Collections would write to every tracked object's header and unshare the child's pages.
        gc.freeze()
        pid = os.fork()
        if pid != 0:
            for fd in fds:
                os.close(fd)
            return
        code = 1
        try:
            # No signal may land in an fd number that is about to be closed and reused.
            _signal.set_wakeup_fd(-1)
            # Forget the parent's sockets without closing them twice, then close every fd we do not keep.
            for c in list(self.clients.values()) + [self.listener]:
                c.detach()
            # close_range between the fds we keep: no Python objects made (each dirties shared pages).
            low = 3
            for keep in sorted(set(fds)):
                os.closerange(low, keep)
                low = keep + 1
            os.closerange(low, 1 << 20)
            os.setsid()
            prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            code = main([sys.argv[0], cdir, str(fds[0]), str(fds[1] if len(fds) > 1 else -1)])
        except BaseException:
            code = 1
        finally:
            os._exit(code)

    def handle_frame(self, kind: int, payload: bytes) -> None:
        if kind == STDIN and self.stdin_fd >= 0:
            try:
                os.set_blocking(self.stdin_fd, True)
                os.write(self.stdin_fd, payload)
            except OSError:
                pass
        elif kind == STDIN_CLOSE and self.stdin_fd >= 0 and self.master_fd < 0:
            os.close(self.stdin_fd)
            self.stdin_fd = -1
        elif kind == RESIZE and self.master_fd >= 0 and len(payload) == 4:
            import fcntl
            import termios

            rows, cols = _struct.unpack(">HH", payload)
            try:
                fcntl.ioctl(self.master_fd, termios.TIOCSWINSZ, _struct.pack("HHHH", rows, cols, 0, 0))
            except OSError:
                pass

    # --- health checks -----------------------------------------------------------------------
    def start_health(self) -> None:
        h = self.spec["health"]
        test = h["test"]
        if test[0] == "CMD-SHELL":
            argv = ["/bin/sh", "-c", " ".join(test[1:])]
        else:
            argv = test[1:]
        out_path = join(self.cdir, "health.out")
        out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        try:
            pid = self.spawn(self.runtime_argv("exec", self.id, *argv), (null, out, out))
        finally:
            os.close(out)
            os.close(null)
        self.health_proc = (pid, time.monotonic(), now_rfc3339())

    def finish_health(self, code: int, timed_out: bool = False) -> None:
        assert self.health_proc is not None
        _, _, started = self.health_proc
        self.health_proc = None
        h = self.spec["health"]
        try:
            with open(join(self.cdir, "health.out"), "rb") as f:
                output = f.read(4096).decode(errors="replace")
        except OSError:
            output = ""
        if timed_out:
            output = f"Health check exceeded timeout ({h['timeout']}s)"
            code = -1
        health = self.state.get("health") or {"Status": "starting", "FailingStreak": 0, "Log": []}
        in_start_period = time.monotonic() - self.started_mono < h.get("start_period", 0)
        if code == 0:
            health["Status"] = "healthy"
            health["FailingStreak"] = 0
        elif not in_start_period:
            health["FailingStreak"] = health.get("FailingStreak", 0) + 1
            if health["FailingStreak"] >= h.get("retries", 3):
                health["Status"] = "unhealthy"
        health["Log"] = (health.get("Log", []) + [{"Start": started, "End": now_rfc3339(),
                                                  "ExitCode": code, "Output": output}])[-5:]
        self.save(health=health)
        self.next_health = time.monotonic() + h["interval"]

    # --- main loop ---------------------------------------------------------------------------
    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            if pid == self.pid:
                self.exit_status = code if code >= 0 else 128 - code
            elif self.health_proc is not None and pid == self.health_proc[0]:
                self.finish_health(code)
            elif pid in self.runtime_children:
                self.runtime_children[pid] = code

    def pump(self, fd: int) -> bool:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            self.unwatch(fd)
            return False
        stream = self.fd_stream[fd]
        self.logs.write(stream, data)
        self.broadcast(OUT if stream == "stdout" else ERR, data)
        return True

    def run_once(self) -> int:
        """Start the container and serve it until it exits; returns its exit code."""
        self.exit_status = None
        self.save(status="starting", pid=0, error="")
        ok, msg, code = self.start_container()
        if not ok:
            self.logs.flush()
            self.broadcast(FAIL, msg.encode())
            self.owner_has_exit = self.broadcast(EXIT, str(code).encode())
            self.run_runtime("delete", "--force", self.id)
            return code
        self.started_mono = time.monotonic()
        if self.spec.get("health"):
            self.next_health = self.started_mono + self.spec["health"]["interval"]
        self.reap()
        while self.exit_status is None:
            timeout = -1
            if self.health_proc is not None:
                deadline = self.health_proc[1] + self.spec["health"]["timeout"]
                timeout = max(0, int((deadline - time.monotonic()) * 1000) + 1)
                if time.monotonic() >= deadline:
                    try:
                        os.kill(self.health_proc[0], 9)
                    except ProcessLookupError:
                        pass
                    pid = self.health_proc[0]
                    os.waitpid(pid, 0)
                    self.finish_health(-1, timed_out=True)
                    continue
            elif self.spec.get("health"):
                timeout = max(0, int((self.next_health - time.monotonic()) * 1000) + 1)
                if time.monotonic() >= self.next_health:
                    self.start_health()
                    continue
            for fd, _ev in self.poll.poll(timeout):
                if fd == self.sigr:
                    try:
                        os.read(self.sigr, 512)
                    except OSError:
                        pass
                    self.reap()
                elif fd == self.listener.fileno():
                    self.accept()
                elif fd in self.clients:
                    self.client_input(fd)
                elif fd in self.fd_stream:
                    self.pump(fd)
        # Drain what the container wrote just before it died; the pid namespace is gone, so EOF comes.
        deadline = time.monotonic() + 2
        while self.fd_stream and time.monotonic() < deadline:
            for fd, _ev in self.poll.poll(100):
                if fd in self.fd_stream:
                    self.pump(fd)
        for fd in list(self.fd_stream):
            self.unwatch(fd)
        if self.stdin_fd >= 0 and self.stdin_fd != self.master_fd:
            os.close(self.stdin_fd)
        self.stdin_fd = self.master_fd = -1
        self.logs.flush()
        if self.health_proc is not None:
            try:
                os.kill(self.health_proc[0], 9)
                os.waitpid(self.health_proc[0], 0)
            except OSError:
                pass
            self.health_proc = None
        code = self.exit_status
        trace.phase("mon", "exited")
        oom = self.oom_killed()
        self.run_runtime("delete", "--force", self.id)
        trace.phase("mon", "runtime delete")
        h = self.state.get("health")
        if h:
            h["Status"] = "unhealthy" if h.get("Status") == "unhealthy" else h.get("Status", "starting")
        self.save(status="exited", pid=0, exit_code=code, oom_killed=oom, finished_at=now_rfc3339())
        self.owner_has_exit = self.broadcast(EXIT, str(code).encode())
        return code

    def oom_killed(self) -> bool:
        # Read the counter straight from the cgroup (one file, no imports); hako.cgroups only when the
        # hierarchy is not where the usual mounts put it.
        cg = self.spec.get("cgroups_path") or ""
        for path in (f"/sys/fs/cgroup/memory{cg}/memory.oom_control", f"/sys/fs/cgroup{cg}/memory.events"):
            try:
                with open(path) as f:
                    for line in f:
                        k, _, v = line.partition(" ")
                        if k == "oom_kill":
                            return int(v) > 0
            except (OSError, ValueError):
                continue
        try:
            from hako.cgroups import open_manager

            return bool(open_manager(cg, self.id).oom_kill_count())
        except Exception:
            return False

    def accept(self) -> None:
        try:
            cfd, _ = self.listener._accept()  # type: ignore[attr-defined]
        except OSError:
            return
        c = _socket.socket(fileno=cfd)
        c.settimeout(10)
        self.clients[c.fileno()] = c
        self.client_buf[c.fileno()] = b""
        self.poll.register(c.fileno(), select.POLLIN)

    def should_restart(self, code: int) -> bool:
        if exists(join(self.cdir, "stopping")):
            return False
        policy = self.spec.get("restart") or {}
        name = policy.get("name", "no")
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure" and code != 0:
            limit = int(policy.get("max", 0))
            return limit <= 0 or int(self.state.get("restart_count", 0)) < limit
        return False

    def main(self) -> int:
        _signal.signal(_signal.SIGCHLD, lambda *_: None)
        _signal.set_wakeup_fd(self.sigw)
        for sig in (_signal.SIGHUP, _signal.SIGPIPE, _signal.SIGINT):
            _signal.signal(sig, _signal.SIG_IGN)
        self.poll.register(self.sigr, select.POLLIN)
        self.poll.register(self.listener.fileno(), select.POLLIN)
        for fd in self.clients:
            self.poll.register(fd, select.POLLIN)
        delay = 0.1
        while True:
            code = self.run_once()
            ran_for = time.monotonic() - self.started_mono if self.started_mono else 0
            if self.state.get("error") or not self.should_restart(code):
                break
            # Back off like Docker: doubling delays, reset after a run that lasted a while.
            delay = 0.1 if ran_for > 10 else min(delay * 2, 60)
            self.save(status="restarting", restart_count=int(self.state.get("restart_count", 0)) + 1)
            end = time.monotonic() + delay
            while time.monotonic() < end:
                for fd, _ev in self.poll.poll(max(1, int((end - time.monotonic()) * 1000))):
                    if fd == self.listener.fileno():
                        self.accept()
                    elif fd in self.clients:
                        self.client_input(fd)
                    elif fd == self.sigr:
                        os.read(self.sigr, 512)
                        self.reap()
                if exists(join(self.cdir, "stopping")):
                    break
            if exists(join(self.cdir, "stopping")):
                self.save(status="exited")
                break
        self.save(monitor_pid=0)
        if self.spec.get("autoremove") and not self.owner_has_exit:
            self.autoremove()
        for fd in list(self.clients):
            self.drop_client(fd)
        try:
            os.unlink(f"/proc/self/fd/{self.dfd}/attach.sock")
        except OSError:
            pass
        return 0

    def autoremove(self) -> None:
        # Removal needs the database and the snapshotter: a full hako process, paid only once at the end.
        env = os.environ
        argv = [self.spec["python"], "-m", "hako.cli.main", "--root", self.spec["root"], "rm", "-f", "-v",
                "--from-monitor", self.id]
        try:
            pid = os.posix_spawn(argv[0], argv, env)
            self.runtime_children[pid] = None
            self.wait_runtime(pid)
        except OSError:
            pass


def exit_code_for(msg: str) -> int:
    low = msg.lower()
    if "no such file" in low or "not found" in low:
        return 127
    if "permission denied" in low or "exec format" in low:
        return 126
    return 125


RUNTIME_MODULES = (
    "hako.runtime.cli", "hako.runtime.create", "hako.runtime.ops", "hako.runtime.state", "hako.runtime.process",
    "hako.runtime.rootfs", "hako.runtime.nsexec", "hako.runtime.channel", "hako.runtime.mount_options",
    "hako.runtime.paths", "hako.cgroups", "hako.cgroups.detect", "hako.cgroups.v1", "hako.cgroups.v2",
    "hako.cgroups.resources", "hako.seccomp", "hako.seccomp.filter", "hako.seccomp.profile",
    "hako.seccomp.libseccomp", "hako.sys.caps", "hako.sys.mount", "hako.sys.proc", "hako.sys.procfs",
)


def preload_runtime() -> None:
    """Import hako's runtime once, so that the children that run its commands (``fork_runtime``) and
    the monitors forked from this one (``spawn_sibling``) find it loaded and share its pages."""
    import gc
    import importlib

    for name in RUNTIME_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    # Collections would write to every module object's header and unshare the children's pages.
    gc.freeze()


def warm_log_writer() -> None:
    """Run the log writer on /dev/null until CPython has specialised its code, in the monitor that
    will fork its siblings: a sibling's first log lines then do not rewrite those code objects
    (~150 KiB less private memory for each container that writes output)."""
    w = LogWriter("/dev/null", 0, 1)
    try:
        for _ in range(64):
            w.write("stdout", b"warm up\n")
            w.write("stderr", b'"quoted"\tand a partial line')
            w.flush()
    finally:
        os.close(w.fd)


def read_cdir(go_fd: int) -> str:
    """A monitor started ahead of its container waits here for the container's directory."""
    data = b""
    while True:
        chunk = os.read(go_fd, 4096)
        if not chunk:
            break
        data += chunk
    os.close(go_fd)
    return data.decode()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    cdir = argv[1]
    sync_fd = int(argv[2]) if len(argv) > 2 else -1
    client_fd = int(argv[3]) if len(argv) > 3 else -1
    trace.phase("mon", "main")
    if len(argv) > 4:
        # Started by the engine (not forked by a monitor, which passes its name on): a name for
        # ps/top, since a monitor forked early from `hako run` still shows that command line.
        _prctl()(PR_SET_NAME, b"hako-monitor", 0, 0, 0)
    if len(argv) > 4 and argv[4] == "inprocess":
        preload_runtime()
        trace.phase("mon", "runtime preloaded")
    if len(argv) > 4:
        warm_log_writer()
    if cdir.startswith("fd:"):
        # Started while the engine still creates the container: the imports above overlap its work.
        cdir = read_cdir(int(cdir[3:]))
        trace.phase("mon", "directory received")
        if not cdir:
            return 0  # the create failed; nothing to monitor
    try:
        mon = Monitor(cdir, sync_fd, client_fd)
    except BaseException as exc:
        if sync_fd >= 0:
            os.write(sync_fd, marshal.dumps({"ok": False, "error": f"monitor: {exc}", "code": 125}))
        raise
    try:
        return mon.main()
    except BaseException as exc:
        mon.report({"ok": False, "error": f"monitor: {exc}", "code": 125})
        try:
            mon.save(status="exited", error=f"monitor: {exc}", monitor_pid=0)
        except OSError:
            pass
        raise


if __name__ == "__main__":
    sys.exit(main())
