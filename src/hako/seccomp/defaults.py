"""hako's default seccomp profile: an allow list as strict as Docker's default.

Everything not listed fails with EPERM. The list is grouped by what the calls are for,
so a reviewer can see why each is harmless in a container; syscalls that reach past
the container's namespaces (mount, unshare, setns, module loading, kexec, reboot, clock
setting, keyrings, io_uring, userfaultfd, ...) are granted only with the capability that
would make them useful, as Docker does. ``clone`` without CAP_SYS_ADMIN is allowed only
without namespace flags, and ``clone3`` (whose flags live in memory BPF cannot read)
answers ENOSYS so libc falls back to ``clone``.

Names unknown to this libseccomp/architecture are skipped when the filter is built, so the
32-bit and arch-specific names below cost nothing where they do not exist.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing (with re, enum) costs ~4 ms of every `hako run`; mypy treats this as true
if TYPE_CHECKING:
    from typing import Any

ENOSYS = 38
EPERM = 1

# --- always allowed, by purpose -------------------------------------------------------

_FILES = (
    "access", "faccessat", "faccessat2", "chdir", "fchdir", "getcwd", "chmod", "fchmod", "fchmodat",
    "fchmodat2", "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32", "umask",
    "open", "openat", "openat2", "creat", "close", "close_range", "read", "readv", "pread64", "preadv",
    "preadv2", "write", "writev", "pwrite64", "pwritev", "pwritev2", "lseek", "_llseek", "dup", "dup2",
    "dup3", "fcntl", "fcntl64", "flock", "fsync", "fdatasync", "sync", "syncfs", "sync_file_range",
    "truncate", "truncate64", "ftruncate", "ftruncate64", "fallocate", "fadvise64", "fadvise64_64",
    "readahead", "stat", "stat64", "lstat", "lstat64", "fstat", "fstat64", "fstatat64", "newfstatat",
    "statx", "statfs", "statfs64", "fstatfs", "fstatfs64", "getdents", "getdents64", "mkdir", "mkdirat",
    "mknod", "mknodat", "rmdir", "link", "linkat", "symlink", "symlinkat", "unlink", "unlinkat",
    "rename", "renameat", "renameat2", "readlink", "readlinkat", "utime", "utimes", "utimensat",
    "utimensat_time64", "futimesat", "name_to_handle_at", "copy_file_range", "sendfile", "sendfile64",
    "splice", "tee", "vmsplice", "ioctl",
)
_XATTRS = (
    "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr", "listxattr",
    "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
)
_EVENTS = (
    "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait", "epoll_wait_old",
    "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4", "timerfd_create",
    "timerfd_settime", "timerfd_settime64", "timerfd_gettime", "timerfd_gettime64", "inotify_init",
    "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "fanotify_mark", "pipe", "pipe2",
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64",
)
_MEMORY = (
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync", "mlock",
    "mlock2", "mlockall", "munlock", "munlockall", "remap_file_pages", "membarrier", "memfd_create",
    "memfd_secret", "pkey_alloc", "pkey_free", "pkey_mprotect", "map_shadow_stack", "cachestat",
)
_PROCESSES = (
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "waitpid",
    "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid",
    "set_tid_address", "set_robust_list", "get_robust_list", "futex", "futex_time64", "futex_waitv",
    "futex_wait", "futex_wake", "futex_requeue", "rseq", "restart_syscall", "prctl",
    "getpriority", "setpriority", "ioprio_get", "ioprio_set", "sched_yield", "sched_getaffinity",
    "sched_setaffinity", "sched_getattr", "sched_setattr", "sched_getparam", "sched_setparam",
    "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "getcpu", "getrlimit", "ugetrlimit",
    "setrlimit", "prlimit64", "getrusage", "times", "sysinfo", "uname", "capget", "capset",
    "pidfd_open", "pidfd_send_signal", "process_mrelease", "get_thread_area", "set_thread_area",
    "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    "getrandom",
)
_SIGNALS = (
    "kill", "tkill", "tgkill", "pause", "alarm", "rt_sigaction", "rt_sigprocmask", "rt_sigpending",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_sigqueueinfo",
    "rt_tgsigqueueinfo", "rt_sigreturn", "sigreturn", "sigprocmask", "sigaltstack",
)
_TIME = (
    "time", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64",
    "clock_nanosleep", "clock_nanosleep_time64", "nanosleep", "adjtimex", "clock_adjtime",
    "clock_adjtime64", "getitimer", "setitimer", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
)
_IDENTITY = (
    "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid", "getegid32",
    "getresuid", "getresuid32", "getresgid", "getresgid32", "getgroups", "getgroups32", "setuid",
    "setuid32", "setgid", "setgid32", "setreuid", "setreuid32", "setregid", "setregid32", "setresuid",
    "setresuid32", "setresgid", "setresgid32", "setfsuid", "setfsuid32", "setfsgid", "setfsgid32",
    "setgroups", "setgroups32",
)
_NETWORK = (
    "socket", "socketpair", "socketcall", "bind", "listen", "accept", "accept4", "connect",
    "getsockname", "getpeername", "getsockopt", "setsockopt", "shutdown", "send", "sendto",
    "sendmsg", "sendmmsg", "recv", "recvfrom", "recvmsg", "recvmmsg", "recvmmsg_time64",
)
_SYSV_POSIX_IPC = (
    "ipc", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "semctl", "shmget", "shmat", "shmdt", "shmctl", "mq_open", "mq_unlink",
    "mq_timedsend", "mq_timedsend_time64", "mq_timedreceive", "mq_timedreceive_time64", "mq_notify",
    "mq_getsetattr",
)
# Debuggers and profilers inside the container: since kernel 4.8 seccomp is re-checked
# after a ptrace stop, so ptrace no longer lets a tracee escape the filter.
_TRACING = ("ptrace", "process_vm_readv", "process_vm_writev")

ALWAYS: tuple[tuple[str, ...], ...] = (
    _FILES, _XATTRS, _EVENTS, _MEMORY, _PROCESSES, _SIGNALS, _TIME, _IDENTITY, _NETWORK,
    _SYSV_POSIX_IPC, _TRACING,
)

# personality(2) values a program may set: plain Linux, 32-bit uname, UNAME26 and both,
# and 0xffffffff, which only queries. Others (e.g. ADDR_NO_RANDOMIZE) weaken ASLR.
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# Per-architecture extras, keyed by os.uname().machine.
ARCH_EXTRAS: dict[str, tuple[str, ...]] = {
    "x86_64": ("arch_prctl", "modify_ldt"),
    "aarch64": ("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"),
    "riscv64": ("riscv_flush_icache",),
}
ARCH_SETS: dict[str, tuple[str, ...]] = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "aarch64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    "riscv64": ("SCMP_ARCH_RISCV64",),
    "s390x": ("SCMP_ARCH_S390X", "SCMP_ARCH_S390"),
    "ppc64le": ("SCMP_ARCH_PPC64LE",),
}

# --- granted with a capability ---------------------------------------------------------

BY_CAPABILITY: dict[str, tuple[str, ...]] = {
    "CAP_SYS_ADMIN": (
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
        "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open",
        "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
        "umount2", "unshare",
    ),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_SYS_MODULE": ("init_module", "finit_module", "delete_module"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_PTRACE": ("kcmp", "pidfd_getfd", "process_madvise"),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    "CAP_SYS_NICE": ("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"),
    "CAP_SYSLOG": ("syslog",),
    "CAP_BPF": ("bpf",),
    "CAP_PERFMON": ("perf_event_open",),
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
}

# Docker's default capability set: what a container gets when no caps are given.
DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
CLONE_NAMESPACE_FLAGS = 0x7E020000


def _normalize(caps: list[str] | tuple[str, ...]) -> set[str]:
    return {c.upper() if c.upper().startswith("CAP_") else f"CAP_{c.upper()}" for c in caps}


def _allow(names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {"names": sorted(set(names)), "action": "SCMP_ACT_ALLOW"}


def default_profile(caps: list[str] | None = None, machine: str | None = None) -> dict[str, Any]:
    """The default profile as OCI ``linux.seccomp`` JSON for a process holding ``caps``.

    ``caps`` are capability names (``CAP_SYS_ADMIN`` or ``sys_admin``); None means Docker's
    default set. ``machine`` (``x86_64``, ``aarch64``...) defaults to this host's.
    """
    held = _normalize(DEFAULT_CAPS if caps is None else caps)
    machine = machine or os.uname().machine
    base = [name for group in ALWAYS for name in group]
    base += ARCH_EXTRAS.get(machine, ())
    granted = [name for cap, names in BY_CAPABILITY.items() if cap in held for name in names]
    rules: list[dict[str, Any]] = [_allow(base + granted)]
    rules += [
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]}
        for v in PERSONALITIES
    ]
    if "CAP_SYS_ADMIN" not in held:
        # s390 passes clone's flags in the second argument.
        flags_arg = 1 if machine == "s390x" else 0
        rules.append(
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": flags_arg, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
            }
        )
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": list(ARCH_SETS.get(machine, ("SCMP_ARCH_NATIVE",))),
        "syscalls": rules,
    }
