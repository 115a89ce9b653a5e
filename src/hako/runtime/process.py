"""The last steps before the container's process runs, shared by init and ``exec``.

Order matters and follows what the kernel allows: the bounding set is dropped while we still
hold CAP_SETPCAP; the user switch keeps the permitted set (PR_SET_KEEPCAPS) so capset can then
install exactly the configured sets; ambient caps come last because they need permitted and
inheritable. Seccomp is loaded as late as possible (after no_new_privs) so the filter does not
have to allow the runtime's own syscalls; without no_new_privs it must come before capabilities
are dropped, since loading a filter then needs CAP_SYS_ADMIN.
"""

from __future__ import annotations

import _signal as signal  # signal.py wraps it in enums: start-up time
import os
import stat

from hako.errors import ConfigError, HakoError
from hako.spec.runtime import Process

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def env_get(env: list[str], key: str) -> str | None:
    prefix = key + "="
    for e in reversed(env):
        if e.startswith(prefix):
            return e[len(prefix) :]
    return None


def find_executable(name: str, env: list[str]) -> str:
    """Resolve args[0] like execvp in the current root; errors use the texts clients match on."""
    if "/" in name:
        try:
            st = os.stat(name)
        except FileNotFoundError:
            raise HakoError(f'exec: "{name}": stat {name}: no such file or directory') from None
        except OSError as e:
            raise HakoError(f'exec: "{name}": stat {name}: {(e.strerror or str(e)).lower()}') from None
        if stat.S_ISDIR(st.st_mode):
            raise HakoError(f'exec: "{name}": is a directory')
        if not os.access(name, os.X_OK):
            raise HakoError(f'exec: "{name}": permission denied')
        return name
    path = env_get(env, "PATH")
    if path is None:
        path = DEFAULT_PATH
    for d in path.split(":"):
        cand = os.path.join(d or ".", name)
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return cand
    raise HakoError(f'exec: "{name}": executable file not found in $PATH')


def _write_attr(attr: str, value: str) -> None:
    for p in (f"/proc/thread-self/attr/apparmor/{attr}", f"/proc/thread-self/attr/{attr}"):
        if os.path.exists(p):
            with open(p, "w") as f:
                f.write(value)
            return


def _set_rlimits(proc: Process) -> None:
    if not proc.rlimits:
        return
    import resource

    for r in proc.rlimits:
        num = getattr(resource, r.type, None)
        if num is None:
            raise ConfigError("process.rlimits", f"{r.type} is not supported on this host")
        try:
            resource.setrlimit(num, (r.soft, r.hard))
        except OSError as e:
            raise HakoError(f"process.rlimits {r.type} {r.soft}/{r.hard}: setrlimit: {(e.strerror or str(e)).lower()}") from None
        except ValueError as e:
            raise HakoError(f"process.rlimits {r.type} {r.soft}/{r.hard}: {e}") from None


def _setup_user(proc: Process) -> None:
    u = proc.user
    os.setgroups(list(u.additional_gids))
    os.setresgid(u.gid, u.gid, u.gid)
    os.setresuid(u.uid, u.uid, u.uid)


def _home(env: list[str], uid: int) -> list[str]:
    if env_get(env, "HOME") is not None:
        return env
    home = "/"
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    home = parts[5] or "/"
                    break
    except OSError:
        pass
    return [*env, "HOME=" + home]


def reset_signals() -> None:
    """Default dispositions and an empty mask: the caller may ignore SIGPIPE, Python ignores some."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def keep_fds(preserve_fds: int) -> None:
    """fds 0-2 and 3..3+N-1 survive exec; everything else is marked close-on-exec now.

    Marking (CLOSE_RANGE_CLOEXEC) rather than closing keeps our error channel usable until
    the exec itself, which then closes it: EOF on the other side means the exec succeeded.
    """
    from hako.errors import KernelError
    from hako.sys.libc import syscall
    from hako.sys.proc import SYS_CLOSE_RANGE

    for fd in range(3, 3 + preserve_fds):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    try:
        syscall(SYS_CLOSE_RANGE, 3 + preserve_fds, -1, 4, name="close_range")  # 4 = CLOSE_RANGE_CLOEXEC
    except KernelError:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd >= 3 + preserve_fds:
                try:
                    os.set_inheritable(fd, False)
                except OSError:
                    pass


def apply_limits(proc: Process) -> None:
    """rlimits, oom_score_adj, scheduler and I/O priority; init applies them before create returns,
    so one that cannot be applied (above the hard limit, a lower score without CAP_SYS_RESOURCE, a
    real-time policy the cgroup gives no runtime) fails create, as in runc."""
    _set_rlimits(proc)
    if proc.scheduler is not None or proc.io_priority is not None:
        _set_scheduling(proc)
    if proc.oom_score_adj is not None:
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(proc.oom_score_adj))
        except OSError as e:
            raise HakoError(
                f"process.oomScoreAdj {proc.oom_score_adj}: write /proc/self/oom_score_adj: "
                f"{(e.strerror or str(e)).lower()}"
            ) from None


def _set_scheduling(proc: Process) -> None:
    from hako.errors import KernelError
    from hako.spec.runtime import IOPRIO_CLASSES, SCHED_FLAGS, SCHED_POLICIES
    from hako.sys import proc as sp

    sc = proc.scheduler
    if sc is not None:
        flags = 0
        for f in sc.flags:
            flags |= SCHED_FLAGS[f]
        try:
            sp.sched_setattr(SCHED_POLICIES[sc.policy], flags, sc.nice, sc.priority, sc.runtime, sc.deadline,
                             sc.period)
        except KernelError as e:
            raise HakoError(f"process.scheduler {sc.policy}: sched_setattr: {os.strerror(e.errno).lower()}") from None
    io = proc.io_priority
    if io is not None:
        try:
            sp.ioprio_set(IOPRIO_CLASSES[io.io_class], io.priority)
        except KernelError as e:
            raise HakoError(f"process.ioPriority {io.io_class} {io.priority}: ioprio_set: {os.strerror(e.errno).lower()}") from None


def preload(proc: Process, *, seccomp: bool = False, hooks: bool = False) -> None:
    """Import what the container process will need once it can no longer see the host's files."""
    import hako.errors  # noqa: F401
    import hako.sys.caps  # noqa: F401
    import hako.sys.libc  # noqa: F401
    import hako.sys.proc  # noqa: F401

    if proc.terminal:
        import hako.sys.tty  # noqa: F401
    if os.environ.get("HAKO_RUNTIME_TRACEBACK"):
        import traceback  # noqa: F401 - nsexec prints child tracebacks with it
    if proc.rlimits:
        import resource  # noqa: F401
    if seccomp:
        import hako.seccomp

        hako.seccomp.warm()
    if hooks:
        import hako.runtime.hooks  # noqa: F401


def exec_process(
    proc: Process,
    exe: str,
    *,
    preserve_fds: int = 0,
    seccomp: Any = None,  # raw linux.seccomp or hako.seccomp.prepare()'s result
    seccomp_ready: Any = None,
    limits_applied: bool = False,
) -> None:
    """Apply the process spec to this (root, fully privileged) process and execve. Never returns."""
    from hako.sys import caps as capmod
    from hako.sys.proc import set_no_new_privs

    try:
        os.chdir(proc.cwd)
    except OSError as e:
        raise HakoError(f"chdir to cwd ({proc.cwd!r}) set in config.json failed: {(e.strerror or str(e)).lower()}") from None
    if not limits_applied:
        apply_limits(proc)
    if proc.apparmor_profile:
        _write_attr("exec", "exec " + proc.apparmor_profile)
    if proc.selinux_label:
        _write_attr("exec", proc.selinux_label)
    env = _home(list(proc.env), proc.user.uid)
    if seccomp is not None and not proc.no_new_privileges:
        _load_seccomp(seccomp, seccomp_ready)
        seccomp = None
    c = proc.capabilities
    if c is not None:
        capmod.drop_bounding(c.bounding)
        capmod.set_keepcaps(True)
    _setup_user(proc)
    if c is not None:
        capmod.set_keepcaps(False)
        capmod.capset(c.effective, c.permitted, c.inheritable)
        # The kernel only lets a capability into the ambient set when it is permitted and
        # inheritable; runc's default spec lists ambient caps without inheritable ones, which
        # runc then silently leaves out: do the same.
        ambient = [n for n in c.ambient if n in c.permitted and n in c.inheritable]
        if ambient:
            capmod.set_ambient(ambient)
    if proc.user.umask is not None:
        os.umask(proc.user.umask)
    else:
        os.umask(0o022)
    if proc.no_new_privileges:
        set_no_new_privs()
    keep_fds(preserve_fds)
    reset_signals()
    if seccomp is not None:
        _load_seccomp(seccomp, seccomp_ready)
    try:
        os.execve(exe, proc.args, dict(e.split("=", 1) for e in env))
    except OSError as e:
        raise HakoError(f'exec: "{proc.args[0]}": {(e.strerror or str(e)).lower()}') from None


def load_seccomp_now(proc: Process, seccomp: Any) -> int:
    """Load the filter early (notify agents need the fd before create returns); the fd."""
    from hako import seccomp as sc

    if not proc.no_new_privileges:
        fd = sc.load(seccomp)
    else:
        from hako.sys.proc import set_no_new_privs

        set_no_new_privs()
        fd = sc.load(seccomp)
    if fd is None:
        raise HakoError("seccomp: linux.seccomp.listenerPath is set but no rule uses SCMP_ACT_NOTIFY")
    return fd


def _load_seccomp(seccomp: Any, ready: Any) -> None:
    from hako import seccomp as sc

    fd = sc.load(seccomp)
    if fd is not None and ready is not None:
        ready(fd)
