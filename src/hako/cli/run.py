"""``hako run`` and ``hako create``, and the command-line parsing of run, create, rm and ps without argparse.

Kept apart from ``hako.cli.containers`` (all the other container commands): ``hako run`` loads only
this module on its way to the container's monitor.
"""

from __future__ import annotations

import os
import sys

from hako.engine.trace import phase
from hako.errors import HakoError

TYPE_CHECKING = False  # argparse and typing load only where a command needs them
if TYPE_CHECKING:
    import argparse
    from typing import Any


def _engine(args: argparse.Namespace) -> Any:
    from hako.engine.containers import Engine

    return Engine(args.root, runtime=getattr(args, "runtime", None) or os.environ.get("HAKO_RUNTIME"),
                  cgroup_parent=getattr(args, "cgroup_parent", None))


# --- run / create ----------------------------------------------------------------------------------
# One table for both parsers of run/create: argparse (help, errors, anything unusual) and
# ``fast_parse`` (the plain command lines, without argparse's import and set-up cost).
FLAG, VALUE, APPEND = "flag", "value", "append"
CREATE_FLAGS: tuple[tuple[tuple[str, ...], str, str | None], ...] = (
    (("-d", "--detach"), FLAG, "run in the background and print the container id"),
    (("-i", "--interactive"), FLAG, "keep stdin open"),
    (("-t", "--tty"), FLAG, "allocate a pseudo-terminal"),
    (("--rm",), FLAG, "remove the container when it exits"),
    (("--name",), VALUE, None),
    (("-e", "--env"), APPEND, None),
    (("--env-file",), APPEND, None),
    (("-w", "--workdir"), VALUE, None),
    (("-u", "--user"), VALUE, None),
    (("--entrypoint",), VALUE, None),
    (("-v", "--volume"), APPEND, None),
    (("--mount",), APPEND, None),
    (("--tmpfs",), APPEND, None),
    (("--read-only",), FLAG, None),
    (("-m", "--memory"), VALUE, None),
    (("--memory-swap",), VALUE, None),
    (("--cpus",), VALUE, None),
    (("-c", "--cpu-shares"), VALUE, None),
    (("--cpuset-cpus",), VALUE, None),
    (("--pids-limit",), VALUE, None),
    (("--ulimit",), APPEND, None),
    (("--cap-add",), APPEND, None),
    (("--cap-drop",), APPEND, None),
    (("--privileged",), FLAG, None),
    (("--security-opt",), APPEND, None),
    (("-h", "--hostname"), VALUE, None),
    (("--network", "--net"), VALUE, None),
    (("--restart",), VALUE, None),
    (("--health-cmd",), VALUE, None),
    (("--health-interval",), VALUE, None),
    (("--health-timeout",), VALUE, None),
    (("--health-retries",), VALUE, None),
    (("--health-start-period",), VALUE, None),
    (("--no-healthcheck",), FLAG, None),
    (("--init",), FLAG, None),
    (("-l", "--label"), APPEND, None),
    (("--stop-signal",), VALUE, None),
    (("--stop-timeout",), VALUE, None),
    (("--pull",), VALUE, None),
    (("--runtime",), VALUE, "any runc-compatible runtime (path or command)"),
    (("--cgroup-parent",), VALUE, None),
    (("--log-opt",), APPEND, None),
)
RM_FLAGS: tuple[tuple[tuple[str, ...], str, str | None], ...] = (
    (("-f", "--force"), FLAG, None),
    (("-v", "--volumes"), FLAG, None),
    (("--from-monitor",), FLAG, "==SUPPRESS=="),  # argparse.SUPPRESS: the monitor's autoremove
)
PS_FLAGS: tuple[tuple[tuple[str, ...], str, str | None], ...] = (
    (("-a", "--all"), FLAG, None),
    (("-q", "--quiet"), FLAG, None),
    (("-n", "--last"), VALUE, None),
    (("--no-trunc",), FLAG, None),
    (("-f", "--filter"), APPEND, None),
    (("--format",), VALUE, None),
)
_TYPES: dict[str, type] = {"cpus": float, "cpu_shares": int, "pids_limit": int, "health_retries": int,
                           "stop_timeout": int, "last": int}
_DEFAULTS: dict[str, str] = {"network": "none", "restart": "no", "pull": "missing"}
_CHOICES: dict[str, tuple[str, ...]] = {"pull": ("missing", "always", "never")}


def _dest(names: tuple[str, ...]) -> str:
    return next((n for n in names if n.startswith("--")), names[0])[2:].replace("-", "_")


def _add_create_flags(p: argparse.ArgumentParser) -> None:
    import argparse

    # -h is --hostname, as in Docker; help is only --help.
    p.add_argument("--help", action="help", help="show this help message and exit")
    _add_flags(p, CREATE_FLAGS)
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)


def _add_flags(p: argparse.ArgumentParser, flags: tuple[tuple[tuple[str, ...], str, str | None], ...]) -> None:
    for names, kind, help_ in flags:
        dest = _dest(names)
        kw: dict[str, Any] = {"help": help_} if help_ else {}
        if kind == FLAG:
            kw["action"] = "store_true"
        elif kind == APPEND:
            kw.update(action="append", default=[])
        else:
            if dest in _TYPES:
                kw["type"] = _TYPES[dest]
            if dest in _DEFAULTS:
                kw["default"] = _DEFAULTS[dest]
            if dest in _CHOICES:
                kw["choices"] = list(_CHOICES[dest])
        p.add_argument(*names, **kw)


class Args:
    """What ``fast_parse`` gives: the attributes argparse's Namespace would have."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)

    def __getattr__(self, name: str) -> Any:  # only for mypy: every attribute is set in __init__
        raise AttributeError(name)


FAST_COMMANDS = ("run", "create", "rm", "ps")


def fast_parse(argv: list[str], default_root: str) -> Args | None:
    """``hako [--root R] [--debug] run|create|rm|ps ...`` parsed as argparse would, or None when
    argparse has to (help, errors, abbreviations, attached short values, ``--``, options after
    rm's containers): argparse and its parser set-up cost more than 10 ms per command."""
    root, debug = default_root, False
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        arg = argv[i]
        if arg == "--debug":
            debug = True
        elif arg.startswith("--root=") and len(arg) > 7:
            root = arg[7:]
        elif arg == "--root" and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            i += 1
            root = argv[i]
        else:
            return None
        i += 1
    if i >= len(argv) or argv[i] not in FAST_COMMANDS:
        return None
    command = argv[i]
    flags = {"rm": RM_FLAGS, "ps": PS_FLAGS}.get(command, CREATE_FLAGS)
    by_name: dict[str, tuple[str, str]] = {}
    values: dict[str, Any] = {}
    for names, kind, _ in flags:
        dest = _dest(names)
        for n in names:
            by_name[n] = (dest, kind)
        values[dest] = False if kind == FLAG else [] if kind == APPEND else _DEFAULTS.get(dest)
    i += 1
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg == "-":
            if arg == "-":
                return None
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            found = by_name.get(name)
            if found is None or (eq and found[1] == FLAG):
                return None
            dest, kind = found
            if kind == FLAG:
                values[dest] = True
                i += 1
                continue
            if not eq:
                if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                    return None
                i += 1
                value = argv[i]
        else:
            found = by_name.get(arg)
            if found is None:
                # Bundled flags (-it, -dit); anything else (-eA=B, -m512m) is argparse's.
                if all(by_name.get("-" + c, ("", ""))[1] == FLAG for c in arg[1:]):
                    for c in arg[1:]:
                        values[by_name["-" + c][0]] = True
                    i += 1
                    continue
                return None
            dest, kind = found
            if kind == FLAG:
                values[dest] = True
                i += 1
                continue
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                return None
            i += 1
            value = argv[i]
        if dest in _CHOICES and value not in _CHOICES[dest]:
            return None
        if kind == APPEND:
            values[dest].append(value)
        elif dest in _TYPES:
            try:
                values[dest] = _TYPES[dest](value)
            except ValueError:
                return None
        else:
            values[dest] = value
        i += 1
    rest = argv[i:]
    if command in ("ps", "rm"):
        from hako.cli.containers import cmd_ps, cmd_rm
    if command == "ps":
        if rest:
            return None  # ps takes no arguments: argparse reports it
        return Args(root=root, debug=debug, command="ps", func=cmd_ps, **values)
    if command == "rm":
        # nargs="+": argparse takes the containers up to the next option, and then fails.
        if not rest or any(a.startswith("-") for a in rest):
            return None
        return Args(root=root, debug=debug, command="rm", func=cmd_rm, containers=rest, **values)
    if not rest or rest[1:2] == ["--"]:
        # No image: argparse reports it. ``IMAGE -- ...``: argparse's image takes the ``--`` along.
        return None
    values["image"] = rest[0]
    values["command"] = rest[1:]
    return Args(root=root, debug=debug, func=cmd_run if command == "run" else cmd_create, **values)


def create_options(args: argparse.Namespace) -> Any:
    from hako.engine.config import (
        CreateOptions,
        parse_bytes,
        parse_duration,
        parse_mount,
        parse_tmpfs,
        parse_volume,
    )

    mounts = [parse_volume(v) for v in args.volume] + [parse_mount(m) for m in args.mount]
    mounts += [parse_tmpfs(t) for t in args.tmpfs]

    def dur(v: str | None, what: str) -> float | None:
        return None if v is None else parse_duration(v, what)

    opts = CreateOptions(
        image=args.image, command=list(args.command), name=args.name, detach=args.detach,
        interactive=args.interactive, tty=args.tty, rm=args.rm, env=args.env, env_files=args.env_file,
        workdir=args.workdir, user=args.user, entrypoint=args.entrypoint, mounts=mounts,
        read_only=args.read_only, memory=parse_bytes(args.memory, "memory") if args.memory else None,
        memory_swap=parse_bytes(args.memory_swap, "memory-swap") if args.memory_swap else None,
        cpus=args.cpus, cpu_shares=args.cpu_shares, cpuset_cpus=args.cpuset_cpus, pids_limit=args.pids_limit,
        ulimits=args.ulimit, cap_add=args.cap_add, cap_drop=args.cap_drop, privileged=args.privileged,
        security_opt=args.security_opt, hostname=args.hostname, network=args.network, restart=args.restart,
        health_cmd=args.health_cmd, health_interval=dur(args.health_interval, "health-interval"),
        health_timeout=dur(args.health_timeout, "health-timeout"), health_retries=args.health_retries,
        health_start_period=dur(args.health_start_period, "health-start-period"),
        no_healthcheck=args.no_healthcheck, init=args.init, labels=args.label, stop_signal=args.stop_signal,
        stop_timeout=args.stop_timeout, pull=args.pull, runtime=args.runtime, cgroup_parent=args.cgroup_parent,
    )
    for lo in args.log_opt:
        k, _, v = lo.partition("=")
        if k == "max-size":
            opts.log_max_size = parse_bytes(v, "log-opt max-size")
        elif k == "max-file":
            opts.log_max_files = int(v)
    return opts


def cmd_create(args: argparse.Namespace) -> int:
    eng = _engine(args)
    rec = eng.create(create_options(args))
    print(rec["Id"])
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from hako.engine.containers import ContainerError
    from hako.engine.launch import prespawn_monitor, take_early

    # Started by main() already, or now: the monitor's interpreter then starts while we create.
    pending = take_early(args.root)
    if pending is None:
        pending = prespawn_monitor(args.root, args.runtime or os.environ.get("HAKO_RUNTIME"),
                                   attach=not args.detach)
    eng = _engine(args)
    eng.adopt(pending)
    try:
        opts = create_options(args)
        rec = eng.create(opts)
    except BaseException:
        eng.cancel_prespawn()
        raise
    cid = rec["Id"]
    if args.detach:
        try:
            eng.start_raw(cid, rec=rec)
        except ContainerError as exc:
            print(f"hako: {exc}", file=sys.stderr)
            return exc.code
        print(cid)
        return 0
    try:
        sock = eng.start_raw(cid, attach=True, rec=rec)
    except ContainerError as exc:
        print(f"hako: {exc}", file=sys.stderr)
        if opts.rm:
            eng.remove(cid, force=True)
        return exc.code
    assert sock is not None
    _proxy_signals(eng, cid)
    try:
        code = attach_session(sock, stdin=opts.interactive, tty=opts.tty)
        phase("cli", "exit received")
    except KeyboardInterrupt:
        eng.kill(cid, "KILL")
        code = 130
    if opts.rm:
        eng.remove(cid, force=True, volumes=True)
    return code


def _proxy_signals(eng: Any, cid: str) -> None:
    """Like Docker's sig-proxy: SIGINT, SIGTERM and SIGHUP to the attached command go to the container;
    the command keeps streaming until the container exits."""
    import _signal  # the signal module would import enum (and with it re's helpers)

    def forward(signum: int, _frame: Any) -> None:
        try:
            rec = eng.get(cid)
            eng.runtime(rec).kill(cid, str(signum))
        except HakoError:
            pass

    for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP):
        _signal.signal(sig, forward)


def attach_session(sock: Any, stdin: bool, tty: bool) -> int:
    """Copy the container's output to ours (and our stdin to it) until it exits; its exit code."""
    from hako.engine import monitor as mon
    from hako.engine.containers import read_frames, resize_payload, send_frame

    restore = None
    if stdin:
        if tty and os.isatty(0):
            import termios
            import tty as ttymod

            restore = termios.tcgetattr(0)
            ttymod.setraw(0)

            def resize(*_: Any) -> None:
                try:
                    size = os.get_terminal_size(0)
                    send_frame(sock, mon.RESIZE, resize_payload(size.lines, size.columns))
                except OSError:
                    pass

            import signal

            signal.signal(signal.SIGWINCH, resize)
            resize()

        def pump_stdin() -> None:
            try:
                while True:
                    data = os.read(0, 65536)
                    if not data:
                        send_frame(sock, mon.STDIN_CLOSE)
                        return
                    send_frame(sock, mon.STDIN, data)
            except OSError:
                return

        import threading

        threading.Thread(target=pump_stdin, daemon=True).start()
    code = 125
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        for kind, payload in read_frames(sock):
            if kind == mon.OUT:
                out.write(payload)
                out.flush()
            elif kind == mon.ERR:
                err.write(payload)
                err.flush()
            elif kind == mon.FAIL:
                err.write(b"hako: " + payload + b"\n")
            elif kind == mon.EXIT:
                code = int(payload)
    finally:
        if restore is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, restore)
        sock.close()
    return code
