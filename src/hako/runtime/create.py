"""``create``: validate the bundle, fork the container's init and leave it blocked on the exec FIFO.

Everything ``create`` makes (state dir, cgroup, init process and with it its namespaces and
mounts) is undone when a later step fails, so a failed create leaves nothing behind.
"""

from __future__ import annotations

import os

from hako.errors import ConfigError, HakoError
from hako.records import dataclass
from hako.runtime import fastjson as json
from hako.runtime import log
from hako.runtime.state import Container, State, now_rfc3339, seccomp_cache_dir
from hako.spec.runtime import Spec, parse_config

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    import socket
    from typing import Any

    from hako.runtime.channel import Channel
    from hako.runtime.nsexec import NsPlan

FIFO_NAME = "exec.fifo"


@dataclass
class CreateOptions:
    root: str
    bundle: str = "."
    pid_file: str | None = None
    console_socket: str | None = None
    preserve_fds: int = 0
    no_pivot: bool = False
    no_new_keyring: bool = False
    systemd_cgroup: bool = False
    console: socket.socket | None = None  # ``run`` in the foreground: our own end of a socketpair


def load_bundle(bundle: str) -> tuple[Spec, str]:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ConfigError("", f"{path}: no such file or directory") from None
    except OSError as e:
        raise ConfigError("", f"{path}: {e.strerror}") from None
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise ConfigError("", f"{path}: not valid JSON: {e}") from None
    spec = parse_config(data)
    return spec, path


def validate_for_create(spec: Spec, rootfs: str) -> None:
    if spec.process is None:
        raise ConfigError("process", "is required to create a container")
    if spec.linux.namespace("mount") is None and spec.linux.rootfs_propagation:
        # It would be set on the caller's own "/".
        raise ConfigError("linux.rootfsPropagation", "needs a mount namespace of the container's own")
    if not os.path.isdir(rootfs):
        raise ConfigError("root.path", f"{rootfs}: no such file or directory")
    if spec.domainname and spec.linux.namespace("uts") is None:
        raise ConfigError("domainname", "setting the domainname needs a uts namespace")
    from hako.runtime.validate import lsm_check, validate_mounts

    # Mount, device, masked-path and sysctl errors before anything exists, with their JSON path.
    validate_mounts(spec)

    lsm_check(spec.process)
    if spec.linux.seccomp is not None:
        # Only the document here; it is compiled in C1 (prepare), during the cgroup join.
        from hako.seccomp.profile import validate as validate_seccomp

        validate_seccomp(spec.linux.seccomp)


def ns_plan(spec: Spec) -> NsPlan:
    from hako.runtime.nsexec import NsPlan

    plan = NsPlan(time_offsets=dict(spec.linux.time_offsets))
    for ns in spec.linux.namespaces:
        if ns.path:
            plan.join.append((ns.type, ns.path))
        else:
            plan.new.append(ns.type)
    return plan


def open_cgroup(spec: Spec, cid: str, systemd: bool) -> Any:
    import hako.cgroups as cg

    opener = getattr(cg, "open_manager", None)
    if opener is None:  # cgroups driver not available in this build
        if systemd:
            raise HakoError("--systemd-cgroup: systemd cgroup driver not available")
        return None
    return opener(spec.linux.cgroups_path, cid, systemd=systemd)


def effective_resources(spec: Spec) -> dict[str, Any]:
    """The spec's resources plus, like runc, the devices every container may use and those
    listed in linux.devices (appended after the spec's rules, so a deny-all still lets them)."""
    from hako.cgroups.resources import default_device_rules_json

    res = dict(spec.linux.resources)
    devices = list(res.get("devices") or [])
    devices.extend(default_device_rules_json())
    for d in spec.linux.devices:
        if d.type in ("c", "b", "u"):
            # "u" (unbuffered) is a character device to the kernel; fifos ("p") need no rule.
            kind = "b" if d.type == "b" else "c"
            devices.append({"allow": True, "type": kind, "major": d.major, "minor": d.minor, "access": "rwm"})
    res["devices"] = devices
    return res


def _init_child(
    spec: Spec,
    rootfs: str,
    chan: Channel,
    state_dir_fd: int,
    console: socket.socket | None,
    opts: CreateOptions,
    in_userns: bool,
    seccomp: Any = None,
    notify_sock: socket.socket | None = None,
) -> None:
    """The container's init (C2): rootfs, hostname, terminal; block on the FIFO; exec."""
    from hako.runtime.process import exec_process, find_executable

    proc = spec.process
    assert proc is not None
    from hako.runtime import rootfs as rootfs_mod

    state_for_hooks = b"{}"

    def before_pivot() -> None:
        # Everything is mounted and the host's root is still visible: the runtime runs prestart
        # and createRuntime hooks (in its namespaces), then we run createContainer hooks here, in
        # the container's namespaces, with paths resolved on the host, as the spec asks.
        nonlocal state_for_hooks
        h = spec.hooks
        if not (h.prestart or h.create_runtime or h.create_container):
            return
        chan.send("hooks")
        msg = chan.expect("hooks-done", "hooks")
        state_for_hooks = msg["state"].encode()
        if h.create_container:
            from hako.runtime.hooks import run_hooks

            run_hooks("createContainer", h.create_container, state_for_hooks)

    rootfs_mod.prepare_rootfs(
        spec, rootfs, no_pivot=opts.no_pivot, in_userns=in_userns, bundle=opts.bundle,
        before_pivot=before_pivot,
    )
    chan.send("phase", name="mounts")
    from hako.sys import proc as sp

    if spec.hostname:
        sp.sethostname(spec.hostname)
    if spec.domainname:
        sp.setdomainname(spec.domainname)
    exe = find_executable(proc.args[0], proc.env) if _cwd_ok(proc.cwd) else proc.args[0]
    if proc.terminal:
        from hako.sys import tty

        assert console is not None
        tty.hand_over_pty(console, (cs.height, cs.width) if (cs := proc.console_size) else None)
    rootfs_mod.finalize_rootfs(spec)
    if not opts.no_new_keyring:
        _new_session_keyring(spec)
    from hako.runtime.process import apply_limits

    apply_limits(proc)
    if spec.linux.personality is not None:
        # inherited across execve: the container's processes see the asked execution domain
        sp.personality(sp.PER_LINUX32 if spec.linux.personality["domain"] == "LINUX32" else sp.PER_LINUX)
    if notify_sock is not None:
        # A seccomp agent needs the listener fd before create returns, so the filter goes in
        # now (as runc does) and the fd travels to the runtime, which can still reach the agent.
        from hako.runtime.process import load_seccomp_now

        fd = load_seccomp_now(proc, seccomp)
        import socket  # already loaded: the runtime made notify_sock with it before forking

        socket.send_fds(notify_sock, [b"seccomp"], [fd])
        notify_sock.close()
        os.close(fd)
        seccomp = None
    # If the runtime died meanwhile, nobody will ever start or delete us: do not block on the FIFO.
    chan.send("created", strict=True)
    fd = os.open(FIFO_NAME, os.O_WRONLY | os.O_CLOEXEC, dir_fd=state_dir_fd)
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)
        os.close(state_dir_fd)
    chan.close()
    # From here on the runtime that created us is gone: errors go to the container's stderr.
    try:
        if spec.hooks.start_container:
            from hako.runtime.hooks import run_hooks

            run_hooks("startContainer", spec.hooks.start_container, state_for_hooks.replace(
                b'"status":"creating"', b'"status":"created"'))
        if "/" not in exe:
            exe = find_executable(proc.args[0], proc.env)
        exec_process(proc, exe, preserve_fds=opts.preserve_fds, seccomp=seccomp, limits_applied=True)
    except BaseException as e:  # noqa: BLE001
        os.write(2, f"hako-runtime: {e}\n".encode(errors="replace"))
        os._exit(127)


def _cwd_ok(cwd: str) -> bool:
    # Create a missing cwd like runc; the executable lookup is relative to PATH only.
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)
    except OSError:
        pass
    return True


def _new_session_keyring(spec: Spec) -> None:
    """Own session keyring so containers cannot see each other's keys (runc does the same)."""
    nr = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)
    if nr is None:
        return
    from hako.sys.libc import LIBC

    # KEYCTL_JOIN_SESSION_KEYRING (1) with no name: a fresh anonymous keyring. Failure (EPERM in
    # some user namespaces, ENOSYS) is not fatal, as for runc.
    LIBC.syscall(nr, 1, None)


def create(cid: str, opts: CreateOptions, *, subreaper: bool = False) -> tuple[Container, int, Spec]:
    """Create the container; returns (container, init host pid, spec). Undoes everything on error."""
    bundle = os.path.abspath(opts.bundle)
    opts.bundle = bundle  # init resolves relative bind sources against it
    cont = Container(opts.root, cid)
    spec, config_path = load_bundle(bundle)
    rootfs = spec.root.path if os.path.isabs(spec.root.path) else os.path.join(bundle, spec.root.path)
    rootfs = os.path.realpath(rootfs)
    validate_for_create(spec, rootfs)
    assert spec.process is not None
    if spec.process.terminal and not opts.console_socket and opts.console is None:
        raise HakoError("cannot allocate tty if hako-runtime will detach without setting console socket")
    if not spec.process.terminal and opts.console_socket:
        raise HakoError("cannot use console socket if hako-runtime will not detach or allocate tty")
    host_pre: list[int] | None = None
    if spec.linux.namespace("mount") is None:
        from hako.runtime.rootfs import mount_ids_under

        host_pre = mount_ids_under(rootfs)
    log.phase("parse")
    cont.make_dir()
    cgm: Any = None
    init_pid = 0
    c1 = 0
    try:
        cgm = open_cgroup(spec, cid, opts.systemd_cgroup)
        if cgm is not None:
            cgm.create()
            # Recorded now, so that `delete --force` can still remove the cgroup if this process
            # is killed before the end (pid 0: the container reads as stopped until then).
            cont.save(State(id=cid, bundle=bundle, rootfs=rootfs, created=now_rfc3339(), cgroup=cgm.save(),
                            systemd_cgroup=opts.systemd_cgroup, config=config_path, host_mounts=host_pre))
        os.mkfifo(cont.fifo, 0o622)
        # Writable by others, umask notwithstanding: init may run as a mapped (non-root) uid.
        os.chmod(cont.fifo, 0o622)
        dir_fd = os.open(cont.dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        console = opts.console
        if opts.console_socket:
            from hako.sys.tty import connect_console

            console = connect_console(opts.console_socket)
        if cgm is not None:
            cgm.set(effective_resources(spec))
        log.phase("cgroups")
        from hako.runtime.channel import Channel
        from hako.runtime.nsexec import bootstrap, write_id_maps

        plan = ns_plan(spec)
        seccomp: Any = None
        notify_parent = notify_child = None
        if spec.linux.seccomp is not None and spec.linux.seccomp.get("listenerPath"):
            import hako.seccomp as sc

            # The runtime must know before forking whether a listener fd will come back.
            seccomp = sc.prepare(spec.linux.seccomp, cache_dir=seccomp_cache_dir(opts.root))
            # Only notify rules produce a listener fd; listenerPath alone is ignored (as runc does).
            if getattr(seccomp, "notify", False):
                import socket

                notify_parent, notify_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

        def prepare() -> None:
            # Runs in C1 while the runtime writes C1's pid into the cgroup hierarchies.
            nonlocal seccomp
            from hako.runtime.process import preload

            assert spec.process is not None

            # After pivot_root the host's Python library is out of reach: import now what init needs.
            preload(spec.process, seccomp=spec.linux.seccomp is not None,
                    hooks=bool(spec.hooks.start_container or spec.hooks.create_container))
            import hako.runtime.rootfs  # noqa: F401

            if spec.linux.seccomp is not None and seccomp is None:
                import hako.seccomp as sc

                # Compiled here (once per profile and host: the engine's default profile is the
                # same for every container), loaded by init as its last step.
                seccomp = sc.prepare(spec.linux.seccomp, cache_dir=seccomp_cache_dir(opts.root))
        parent, child = Channel.pair()
        if subreaper:
            from hako.sys.proc import set_child_subreaper

            set_child_subreaper()
        in_userns = spec.linux.namespace("user") is not None

        def init() -> None:
            # The lock is held across the fork: flock belongs to the open file, so init must
            # drop its copy or every later operation on this container would wait for it.
            cont.unlock()
            parent.close()
            if notify_parent is not None:
                notify_parent.close()
            _init_child(spec, rootfs, child, dir_fd, console, opts, in_userns, seccomp, notify_child)

        c1 = os.fork()
        if c1 == 0:
            bootstrap(child, plan, init, prepare)
        child.close()
        if notify_child is not None:
            notify_child.close()
        os.close(dir_fd)
        if console is not None:
            console.close()
        if cgm is not None:
            cgm.apply(c1)
        parent.send("go")
        hooks_pending = False
        while True:
            msg = parent.expect_any("create")
            if msg["t"] == "userns":
                write_id_maps(c1, spec.linux.uid_mappings, spec.linux.gid_mappings)
                parent.send("mapped")
            elif msg["t"] == "pid":
                init_pid = msg["pid"]
                os.waitpid(c1, 0)
                c1 = 0
                log.phase("namespaces")
                if hooks_pending:
                    parent.send("hooks-done", state=_runtime_hooks(spec, cid, bundle, rootfs, init_pid))
            elif msg["t"] == "phase":
                log.phase(msg["name"])
            elif msg["t"] == "hooks":
                # init (C2) and the bootstrap (C1) share the channel: wait for init's pid if needed
                if init_pid:
                    parent.send("hooks-done", state=_runtime_hooks(spec, cid, bundle, rootfs, init_pid))
                else:
                    hooks_pending = True
            elif msg["t"] == "created":
                break
        parent.close()
        from hako.sys.procfs import start_time

        st = State(
            id=cid,
            bundle=bundle,
            rootfs=rootfs,
            pid=init_pid,
            start_time=start_time(init_pid),
            created=now_rfc3339(),
            annotations=dict(spec.annotations),
            cgroup=cgm.save() if cgm is not None else None,
            systemd_cgroup=opts.systemd_cgroup,
            config=config_path,
            hooks=[k for k in ("poststart", "poststop") if getattr(spec.hooks, k)],
            seccomp=spec.linux.seccomp is not None,
            host_mounts=host_pre,
        )
        cont.save(st)
        if notify_parent is not None:
            _forward_seccomp_fd(notify_parent, spec, json.dumps(cont.oci_state()).encode(), init_pid)
        if opts.pid_file:
            write_pid_file(opts.pid_file, init_pid)
        log.phase("created")
        return cont, init_pid, spec
    except BaseException:
        if c1:
            _kill_wait(c1, child=True)
        if init_pid:
            _kill_wait(init_pid, child=subreaper)
        if cgm is not None:
            try:
                cgm.destroy()
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
        if host_pre is not None:
            from hako.runtime.rootfs import unmount_host_mounts

            unmount_host_mounts(rootfs, host_pre)
        cont.remove_dir()
        raise
    finally:
        cont.unlock()


def _kill_wait(pid: int, *, child: bool) -> None:
    try:
        os.kill(pid, 9)  # SIGKILL; the signal module (with enum) costs start-up time
    except ProcessLookupError:
        return
    if child:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        return
    from hako.runtime.ops import wait_gone

    wait_gone(pid, None)


def _runtime_hooks(spec: Spec, cid: str, bundle: str, rootfs: str, pid: int) -> str:
    """prestart and createRuntime hooks, in the runtime's namespaces; the state JSON they got."""
    from hako.runtime.hooks import run_hooks
    from hako.runtime.state import OCI_VERSION

    state = json.dumps({
        "ociVersion": OCI_VERSION, "id": cid, "status": "creating", "pid": pid, "bundle": bundle,
        "rootfs": rootfs, "annotations": spec.annotations,
    })
    run_hooks("prestart", spec.hooks.prestart, state.encode())
    run_hooks("createRuntime", spec.hooks.create_runtime, state.encode())
    return state


def _forward_seccomp_fd(sock: socket.socket, spec: Spec, state: bytes, pid: int) -> None:
    import socket

    import hako.seccomp as sc

    assert spec.linux.seccomp is not None
    _, fds, _, _ = socket.recv_fds(sock, 64, 1)
    sock.close()
    if not fds:
        raise HakoError("seccomp: init did not send the notify listener fd")
    try:
        sc.send_to_listener(
            spec.linux.seccomp["listenerPath"], fds[0], state, spec.linux.seccomp.get("listenerMetadata", ""), pid
        )
    finally:
        os.close(fds[0])


def write_pid_file(path: str, pid: int) -> None:
    path = os.path.abspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)
