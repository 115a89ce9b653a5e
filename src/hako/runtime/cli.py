"""hako-runtime's command line: runc's subcommands and flags (see docs for the client contract).

Start-up is the hot path (container managers call us several times per container): only the
standard library modules a subcommand needs are imported, inside its handler.
"""

from __future__ import annotations

import os
import sys

from hako.errors import HakoError
from hako.runtime import log
from hako.runtime.argv import FlagSpec as F
from hako.runtime.argv import Parsed, parse

TYPE_CHECKING = False  # typing/collections.abc cost start-up time; mypy treats this name as true
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

VERSION = "0.1.0"
SPEC_VERSION = "1.0.2"

GLOBAL = [
    F("root", True),
    F("log", True),
    F("log-format", True),
    F("debug"),
    F("systemd-cgroup"),
    F("criu", True),
    F("rootless", optional_value=True),
    F("cgroup-manager", True),
    F("version", aliases=("-v",)),
    F("help", aliases=("-h",)),
]

CREATE_FLAGS = [
    F("bundle", True, aliases=("-b",)),
    F("pid-file", True),
    F("console-socket", True),
    F("no-pivot"),
    F("no-new-keyring"),
    F("preserve-fds", True),
    F("notify-socket", True),
]


class Ctx:
    def __init__(self, g: Parsed) -> None:
        self.root = g.opt("root") or default_root()
        self.systemd_cgroup = g.flag("systemd-cgroup")
        self.debug = g.flag("debug")


def default_root() -> str:
    if os.geteuid() != 0:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        if xdg:
            return os.path.join(xdg, "hako-runtime")
    return "/run/hako-runtime"


def _one_id(p: Parsed, cmd: str, extra_ok: bool = False) -> str:
    if not p.args:
        raise HakoError(f'"{cmd}" requires a container id')
    if len(p.args) > 1 and not extra_ok:
        raise HakoError(f'"{cmd}" takes exactly one container id, got {len(p.args)} arguments')
    return p.args[0]


def _int_flag(p: Parsed, name: str, default: int = 0) -> int:
    v = p.opt(name)
    if v is None:
        return default
    try:
        return int(v)
    except ValueError:
        raise HakoError(f"invalid value {v!r} for --{name}: not an integer") from None


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# ----------------------------------------------------------------------------------- commands
def cmd_create(ctx: Ctx, argv: list[str]) -> int:
    p = parse(argv, CREATE_FLAGS)
    cid = _one_id(p, "create")
    from hako.runtime.create import CreateOptions, create

    opts = _create_opts(ctx, p)
    assert isinstance(opts, CreateOptions)
    create(cid, opts)
    return 0


def _create_opts(ctx: Ctx, p: Parsed) -> object:
    from hako.runtime.create import CreateOptions

    return CreateOptions(
        root=ctx.root,
        bundle=p.opt("bundle") or ".",
        pid_file=p.opt("pid-file"),
        console_socket=p.opt("console-socket"),
        preserve_fds=_int_flag(p, "preserve-fds"),
        no_pivot=p.flag("no-pivot"),
        no_new_keyring=p.flag("no-new-keyring"),
        systemd_cgroup=ctx.systemd_cgroup,
    )


def cmd_run(ctx: Ctx, argv: list[str]) -> int:
    p = parse(argv, [*CREATE_FLAGS, F("detach", aliases=("-d",)), F("keep"), F("no-subreaper")])
    cid = _one_id(p, "run")
    from hako.runtime import ops
    from hako.runtime.create import CreateOptions, create
    from hako.runtime.execute import wait_foreground

    opts = _create_opts(ctx, p)
    assert isinstance(opts, CreateOptions)
    detach = p.flag("detach")
    own_console = None
    if not detach and not opts.console_socket:
        import socket

        from hako.runtime.create import load_bundle

        spec, _ = load_bundle(os.path.abspath(opts.bundle))
        if spec.process is not None and spec.process.terminal:
            own_console, opts.console = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    _, pid, spec = create(cid, opts, subreaper=not detach)
    master = None
    if own_console is not None:
        import socket

        _, fds, _, _ = socket.recv_fds(own_console, 1024, 1)
        master = fds[0] if fds else None
    if not detach:
        from hako.runtime.execute import forward_signals

        forward_signals(pid)  # before start: the process may react to a signal at once
    try:
        ops.start(ctx.root, cid)
    except BaseException:
        ops.delete(ctx.root, cid, force=True)
        raise
    if detach:
        return 0
    try:
        code = wait_foreground(pid, master)
    finally:
        if not p.flag("keep"):
            ops.delete(ctx.root, cid, force=True)
    return code


def cmd_start(ctx: Ctx, argv: list[str]) -> int:
    from hako.runtime import ops

    ops.start(ctx.root, _one_id(parse(argv, []), "start"))
    return 0


def cmd_state(ctx: Ctx, argv: list[str]) -> int:
    from hako.runtime import fastjson, ops

    _out(fastjson.dumps(ops.state(ctx.root, _one_id(parse(argv, []), "state"))) + "\n")
    return 0


def cmd_kill(ctx: Ctx, argv: list[str]) -> int:
    p = parse(argv, [F("all", aliases=("-a",)), F("signal", True, aliases=("-s",))])
    if not p.args:
        raise HakoError('"kill" requires a container id')
    if len(p.args) > 2:
        raise HakoError('"kill" takes a container id and at most one signal')
    from hako.runtime import ops

    sig = ops.parse_signal(p.args[1] if len(p.args) > 1 else (p.opt("signal") or "TERM"))
    ops.kill(ctx.root, p.args[0], sig, p.flag("all"))
    return 0


def cmd_delete(ctx: Ctx, argv: list[str]) -> int:
    p = parse(argv, [F("force", aliases=("-f",))])
    if not p.args:
        raise HakoError('"delete" requires a container id')
    from hako.runtime import ops

    for cid in p.args:
        ops.delete(ctx.root, cid, p.flag("force"))
    return 0


def cmd_pause(ctx: Ctx, argv: list[str]) -> int:
    from hako.runtime import ops

    ops.pause(ctx.root, _one_id(parse(argv, []), "pause"))
    return 0


def cmd_resume(ctx: Ctx, argv: list[str]) -> int:
    from hako.runtime import ops

    ops.resume(ctx.root, _one_id(parse(argv, []), "resume"))
    return 0


def cmd_ps(ctx: Ctx, argv: list[str]) -> int:
    from hako.runtime import fastjson

    p = parse(argv, [F("format", True, aliases=("-f",))], stop_at_positional=1)
    cid = _one_id(p, "ps", extra_ok=True)
    from hako.runtime import ops

    pids = ops.pids(ctx.root, cid)
    fmt = p.opt("format") or "table"
    if fmt == "json":
        _out(fastjson.dumps(pids) + "\n" if pids else "null\n")
        return 0
    if fmt != "table":
        raise HakoError(f"invalid format option {fmt!r}")
    from hako.runtime.report import ps_table

    _out(ps_table(pids))
    return 0


def cmd_list(ctx: Ctx, argv: list[str]) -> int:
    p = parse(argv, [F("format", True, aliases=("-f",)), F("quiet", aliases=("-q",))])
    from hako.runtime.report import list_containers

    _out(list_containers(ctx.root, p.opt("format") or "table", p.flag("quiet")))
    return 0


def cmd_exec(ctx: Ctx, argv: list[str]) -> int:
    flags = [
        F("process", True, aliases=("-p",)),
        F("detach", aliases=("-d",)),
        F("pid-file", True),
        F("cwd", True),
        F("env", True, multi=True, aliases=("-e",)),
        F("user", True, aliases=("-u",)),
        F("additional-gids", True, multi=True, aliases=("-g",)),
        F("tty", aliases=("-t",)),
        F("console-socket", True),
        F("preserve-fds", True),
        F("cap", True, multi=True, aliases=("-c",)),
        F("no-new-privs"),
        F("process-label", True),
        F("apparmor", True),
        F("ignore-paused"),
        F("cgroup", True),
    ]
    p = parse(argv, flags, stop_at_positional=1)
    if not p.args:
        raise HakoError('"exec" requires a container id')
    cid = p.args[0]
    from hako.runtime.exec_process import build_process
    from hako.runtime.execute import exec_in

    proc, seccomp = build_process(ctx.root, cid, p)
    return exec_in(
        ctx.root,
        cid,
        proc,
        detach=p.flag("detach"),
        pid_file=p.opt("pid-file"),
        console_socket=p.opt("console-socket"),
        preserve_fds=_int_flag(p, "preserve-fds"),
        seccomp=seccomp,
    )


def cmd_spec(ctx: Ctx, argv: list[str]) -> int:
    p = parse(argv, [F("bundle", True, aliases=("-b",)), F("rootless")])
    from hako.runtime.report import write_spec

    write_spec(p.opt("bundle") or ".", p.flag("rootless"))
    return 0


def cmd_features(ctx: Ctx, argv: list[str]) -> int:
    import json

    from hako.runtime.report import features

    _out(json.dumps(features(), indent=4) + "\n")
    return 0


def cmd_events(ctx: Ctx, argv: list[str]) -> int:
    p = parse(argv, [F("stats"), F("interval", True)])
    from hako.runtime.report import events

    return events(ctx.root, _one_id(p, "events"), p.flag("stats"), p.opt("interval") or "5s")


def cmd_update(ctx: Ctx, argv: list[str]) -> int:
    from hako.runtime.update import FLAGS, update

    p = parse(argv, [F("resources", True, aliases=("-r",)), *[F(n, True) for n in FLAGS]])
    update(ctx.root, _one_id(p, "update"), p)
    return 0


def cmd_unsupported(ctx: Ctx, argv: list[str]) -> int:
    raise HakoError("checkpoint/restore is not supported by hako-runtime (no CRIU integration)")


COMMANDS: dict[str, Callable[[Ctx, list[str]], int]] = {
    "create": cmd_create,
    "start": cmd_start,
    "run": cmd_run,
    "state": cmd_state,
    "kill": cmd_kill,
    "delete": cmd_delete,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "ps": cmd_ps,
    "list": cmd_list,
    "exec": cmd_exec,
    "spec": cmd_spec,
    "features": cmd_features,
    "events": cmd_events,
    "update": cmd_update,
    "checkpoint": cmd_unsupported,
    "restore": cmd_unsupported,
}

USAGE = """usage: hako-runtime [global flags] <command> [flags] [args]

commands: create start run state kill delete pause resume ps list exec spec features events update
global flags: --root DIR --log FILE --log-format text|json --debug --systemd-cgroup --version
"""


def version_text() -> str:
    return f"hako-runtime version {VERSION}\nspec: {SPEC_VERSION}\npython: {sys.version.split()[0]}\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        g = parse(args, GLOBAL, stop_at_first_positional=True)
    except HakoError as e:
        log.error(str(e))
        return 1
    log.configure(g.opt("log"), g.opt("log-format") or "text", g.flag("debug"))
    if g.flag("version"):
        _out(version_text())
        return 0
    if not g.args or g.flag("help"):
        (sys.stdout if g.flag("help") else sys.stderr).write(USAGE)
        return 0 if g.flag("help") else 1
    cmd, rest = g.args[0], g.args[1:]
    handler = COMMANDS.get(cmd)
    if handler is None:
        log.error(f"unknown command {cmd!r}")
        return 1
    if rest in (["--help"], ["-h"]) and cmd not in ("checkpoint", "restore"):
        sys.stdout.write(USAGE)
        return 0
    if g.opt("cgroup-manager") not in (None, "cgroupfs", "systemd"):
        log.error(f"--cgroup-manager {g.opt('cgroup-manager')}: not supported")
        return 1
    try:
        ctx = Ctx(g)
        if g.opt("cgroup-manager") == "systemd":
            ctx.systemd_cgroup = True
        code = handler(ctx, rest)
        log.phase("done")
        return code
    except HakoError as e:
        log.error(str(e))
        return 1
    except OSError as e:
        log.error(f"{e.filename + ': ' if e.filename else ''}{(e.strerror or str(e)).lower()}")
        return 1
    except KeyboardInterrupt:
        return 130


def run() -> None:
    """The console entry point: main(), then leave without the interpreter's teardown.

    Finalizing modules and freeing every object costs a few ms per call and hako-runtime is
    called several times per container; nothing here relies on atexit or on file objects being
    closed by the garbage collector, so only the standard streams need flushing.
    """
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        code = code or 1
    os._exit(code)


def run_in_forked_child(args: list[str], stdio: tuple[int, int, int]) -> NoReturn:
    """The whole life of a child that its caller forked to run one command as a library instead
    of starting this program: what posix_spawn of the binary would give it (``stdio`` as fds 0-2,
    no other fd, default signal handling), then ``main(args)`` and its exit code. Never returns
    into the caller's code, whatever happens."""
    import _signal

    code = 1
    try:
        _signal.set_wakeup_fd(-1)  # the caller's wakeup pipe is about to be closed
        for sig in (_signal.SIGCHLD, _signal.SIGHUP, _signal.SIGINT, _signal.SIGPIPE, _signal.SIGTERM):
            _signal.signal(sig, _signal.SIG_DFL)
        for i, fd in enumerate(stdio):
            os.dup2(fd, i)
        os.closerange(3, 1 << 20)
        # The caller's sys.stdout may be anything (a test's capture): the command writes to fds 1 and 2.
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - lives until _exit
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        code = main(args)
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        code = 1
    finally:
        os._exit(code)


if __name__ == "__main__":
    run()
