"""``exec``: run one more process in a running container's namespaces and cgroup.

The bootstrap child is non-dumpable before it joins anything, and all of the container's
namespaces are opened from its init's /proc/<pid>/ns before the first setns. Only the
namespaces that differ from ours are joined (setns into our own user namespace is EINVAL).
"""

from __future__ import annotations

import _signal as signal  # signal.py wraps it in enums: start-up time
import os

from hako.errors import Conflict, HakoError
from hako.runtime import log
from hako.runtime.state import Container, seccomp_cache_dir

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    from typing import Any

    from hako.runtime.nsexec import NsPlan
    from hako.spec.runtime import Process

NS_FILES = {"user": "user", "cgroup": "cgroup", "ipc": "ipc", "uts": "uts", "network": "net", "pid": "pid",
            "time": "time", "mount": "mnt"}


def join_plan(pid: int) -> NsPlan:
    from hako.runtime.nsexec import NsPlan

    plan = NsPlan()
    for t, name in NS_FILES.items():
        path = f"/proc/{pid}/ns/{name}"
        try:
            if os.stat(path).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                continue
        except FileNotFoundError:
            continue
        plan.join.append((t, path))
    return plan


def exec_in(
    root: str,
    cid: str,
    proc: Process,
    *,
    detach: bool,
    pid_file: str | None,
    console_socket: str | None,
    preserve_fds: int,
    seccomp: Any,
) -> int:
    c = Container(root, cid)
    c.lock()
    try:
        st = c.load()
        status = c.status()
        if status not in ("running", "created"):
            raise Conflict(f"cannot exec in a {status} container {cid}: container not running")
        cgm = c.cgroup_manager()
        from hako.runtime.validate import lsm_check

        lsm_check(proc)
        if proc.terminal and not console_socket and detach:
            raise HakoError("cannot allocate tty if hako-runtime will detach without setting console socket")
        plan = join_plan(st.pid)
    finally:
        c.unlock()
    console = None
    own_console = None
    if proc.terminal:
        from hako.sys.tty import connect_console

        if console_socket:
            console = connect_console(console_socket)
        else:
            import socket

            own_console, console = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    listener = None
    notify_parent = notify_child = None
    profile = seccomp
    if seccomp is not None:
        listener = (seccomp.get("listenerPath"), seccomp.get("listenerMetadata", ""))
        if listener[0]:
            import hako.seccomp as sc

            # The runtime must know before forking whether a listener fd will come back.
            seccomp = sc.prepare(seccomp, cache_dir=seccomp_cache_dir(root))
            if getattr(seccomp, "notify", False):
                import socket

                notify_parent, notify_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            profile = None
    from hako.runtime.channel import Channel
    from hako.runtime.nsexec import bootstrap

    def prepare() -> None:
        # Runs in the bootstrap child while the runtime writes its pid into the cgroups.
        nonlocal seccomp
        from hako.runtime.process import preload

        preload(proc, seccomp=seccomp is not None)
        if profile is not None:
            import hako.seccomp as sc

            seccomp = sc.prepare(profile, cache_dir=seccomp_cache_dir(root))
    parent, child = Channel.pair()
    if not detach:
        from hako.sys.proc import set_child_subreaper

        set_child_subreaper()

    def run() -> None:
        parent.close()
        from hako.runtime.process import exec_process, find_executable

        if st.host_mounts is not None:
            # No mount namespace to join: the container's root is its init's chroot.
            os.chroot(f"/proc/{st.pid}/root")
            os.chdir("/")

        if console is not None:
            from hako.sys import tty

            tty.hand_over_pty(console, (cs.height, cs.width) if (cs := proc.console_size) else None)
        exe = find_executable(proc.args[0], proc.env)
        if proc.exec_cpu_affinity is not None and proc.exec_cpu_affinity.final is not None:
            _set_affinity(0, proc.exec_cpu_affinity.final, "final")  # in the container's cgroup now
        ready = None
        if notify_child is not None:
            import socket

            nc = notify_child

            def ready(fd: int) -> None:
                socket.send_fds(nc, [b"seccomp"], [fd])
                os.close(fd)

        exec_process(proc, exe, preserve_fds=preserve_fds, seccomp=seccomp, seccomp_ready=ready)

    c1 = os.fork()
    if c1 == 0:
        bootstrap(child, plan, run, prepare)
    child.close()
    if console is not None:
        console.close()
    if notify_child is not None:
        notify_child.close()
    pid = 0
    try:
        log.phase("fork")
        aff = proc.exec_cpu_affinity
        if aff is not None and aff.initial is not None:
            # Before the cgroup join (the spec's "initial"); C1 waits for "go" until after it.
            _set_affinity(c1, aff.initial, "initial")
        if cgm is not None:
            cgm.apply(c1)
        log.phase("cgroups")
        parent.send("go")
        msg = parent.expect("pid", f"exec in {cid}")
        log.phase("namespaces")
        pid = msg["pid"]
        os.waitpid(c1, 0)
        c1 = 0
        if notify_parent is not None:
            assert listener is not None
            _forward_notify_fd(notify_parent, c, listener[0], listener[1], pid)
        # EOF = exec succeeded (our end is close-on-exec in the child); a message = it failed.
        msg2 = parent.recv()
        if msg2 is not None:
            raise HakoError(msg2.get("msg", "exec failed"))
        log.phase("exec")
    except BaseException:
        for p in (c1, pid):
            if p:
                try:
                    os.kill(p, signal.SIGKILL)
                    os.waitpid(p, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
        raise
    finally:
        parent.close()
    if pid_file:
        from hako.runtime.create import write_pid_file

        write_pid_file(pid_file, pid)
    if detach:
        return 0
    master = None
    if own_console is not None:
        import socket

        _, fds, _, _ = socket.recv_fds(own_console, 1024, 1)
        master = fds[0] if fds else None
        own_console.close()
    return wait_foreground(pid, master)


def _set_affinity(pid: int, cpus: set[int], which: str) -> None:
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError as e:
        listed = ",".join(str(c) for c in sorted(cpus))
        raise HakoError(f"process.execCPUAffinity.{which} {listed}: sched_setaffinity: "
                        f"{(e.strerror or str(e)).lower()}") from None


def _forward_notify_fd(sock: Any, c: Container, path: str, metadata: str, pid: int) -> None:
    import socket

    import hako.seccomp as sc
    from hako.runtime import fastjson

    _, fds, _, _ = socket.recv_fds(sock, 64, 1)
    sock.close()
    if not fds:
        raise HakoError("seccomp: the exec'd process did not send its notify listener fd")
    try:
        c.state = None
        sc.send_to_listener(path, fds[0], fastjson.dumps(c.oci_state()).encode(), metadata, pid)
    finally:
        os.close(fds[0])


def forward_signals(pid: int) -> None:
    """From now on the signals a terminal or supervisor sends us go to ``pid``."""
    forward = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
               signal.SIGWINCH, signal.SIGCONT]

    def handler(sig: int, _frame: Any) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    for s in forward:
        signal.signal(s, handler)


def wait_foreground(pid: int, master: int | None = None) -> int:
    """Wait for ``pid`` (our child via the subreaper) forwarding signals; return its exit code."""
    forward_signals(pid)
    pump = None
    if master is not None:
        import threading

        from hako.runtime.console import proxy

        pump = threading.Thread(target=proxy, args=(master,), daemon=True)
        pump.start()
    code = 0
    while True:
        try:
            wpid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if wpid == pid:
            code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            break
    if pump is not None:
        pump.join(2)  # drain what the process wrote before it exited
    return code
