"""``hako`` container commands with Docker's flags: run, create, start, stop, ps, logs, exec, ...

Every command is a thin layer over ``hako.engine`` (the Python API uses the same code). Heavy
modules (rich, the image store) are imported only by the commands that need them.
"""

from __future__ import annotations

import os
import sys
import time

from hako.engine.trace import phase
from hako.errors import HakoError

TYPE_CHECKING = False  # argparse, json, pathlib and typing load only where a command needs them
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
    if command == "ps":
        if rest:
            return None  # ps takes no arguments: argparse reports it
        return Args(root=root, debug=debug, command="ps", func=cmd_ps, **values)
    if command == "rm":
        # nargs="+": argparse takes the containers up to the next option, and then fails.
        if not rest or any(a.startswith("-") for a in rest):
            return None
        return Args(root=root, debug=debug, command="rm", func=cmd_rm, containers=rest, **values)
    if not rest:
        return None  # no image: argparse reports it
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


# --- lifecycle -----------------------------------------------------------------------------------------
def cmd_start(args: argparse.Namespace) -> int:
    from hako.engine.containers import ContainerError

    eng = _engine(args)
    code = 0
    for ref in args.containers:
        try:
            sock = eng.start(ref, attach=args.attach)
        except ContainerError as exc:
            print(f"hako: {exc}", file=sys.stderr)
            code = exc.code
            continue
        if sock is not None:
            return attach_session(sock, stdin=args.interactive, tty=bool(eng.get(ref)["Config"].get("Tty")))
        print(ref)
    return code


def cmd_attach(args: argparse.Namespace) -> int:
    from hako.engine.containers import connect_attach

    eng = _engine(args)
    rec = eng.get(args.container)
    if not eng.is_running(rec):
        raise HakoError(f"container {rec['Name']} is not running")
    sock = connect_attach(eng.cdir(rec["Id"]))
    stdin = not args.no_stdin and bool(rec["Config"].get("OpenStdin"))
    return attach_session(sock, stdin=stdin, tty=bool(rec["Config"].get("Tty")))


def _each(args: argparse.Namespace, fn: Any) -> int:
    code = 0
    for ref in args.containers:
        try:
            fn(ref)
            print(ref)
        except HakoError as exc:
            print(f"hako: {exc}", file=sys.stderr)
            code = 1
    return code


def cmd_stop(args: argparse.Namespace) -> int:
    eng = _engine(args)
    return _each(args, lambda r: eng.stop(r, args.time, args.signal))


def cmd_restart(args: argparse.Namespace) -> int:
    eng = _engine(args)
    return _each(args, lambda r: eng.restart(r, args.time))


def cmd_kill(args: argparse.Namespace) -> int:
    eng = _engine(args)
    return _each(args, lambda r: eng.kill(r, args.signal))


def cmd_pause(args: argparse.Namespace) -> int:
    eng = _engine(args)
    return _each(args, eng.pause)


def cmd_unpause(args: argparse.Namespace) -> int:
    eng = _engine(args)
    return _each(args, eng.unpause)


def cmd_rm(args: argparse.Namespace) -> int:
    eng = _engine(args)
    return _each(args, lambda r: eng.remove(r, force=args.force, volumes=args.volumes,
                                            from_monitor=args.from_monitor))


def cmd_wait(args: argparse.Namespace) -> int:
    eng = _engine(args)
    for ref in args.containers:
        print(eng.wait(ref))
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    _engine(args).rename(args.container, args.new_name)
    return 0


# --- ps / inspect / logs -------------------------------------------------------------------------------
def _epoch(ts: str) -> float | None:
    """RFC 3339 UTC ``YYYY-MM-DDTHH:MM:SS...Z`` to a Unix time, without datetime's import cost."""
    try:
        y, mo, d = int(ts[0:4]), int(ts[5:7]), int(ts[8:10])
        h, mi, s = int(ts[11:13]), int(ts[14:16]), int(ts[17:19])
    except ValueError:
        return None
    # Days from the civil date (Howard Hinnant's algorithm).
    y -= mo <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146097 + (yoe * 365 + yoe // 4 - yoe // 100 + doy) - 719468
    return days * 86400 + h * 3600 + mi * 60 + s


def _ago(ts: str) -> str:
    t = _epoch(ts)
    if t is None or ts.startswith("0001"):
        return ""
    secs = int(time.time() - t)
    if secs < 1:
        return "Less than a second"
    if secs < 60:
        return f"{secs} second{'s' if secs != 1 else ''}"
    if secs < 3600:
        return f"{secs // 60} minute{'s' if secs // 60 != 1 else ''}"
    if secs < 86400:
        return f"{secs // 3600} hour{'s' if secs // 3600 != 1 else ''}"
    return f"{secs // 86400} day{'s' if secs // 86400 != 1 else ''}"


def status_text(info: dict[str, Any]) -> str:
    s = info["State"]
    st = s["Status"]
    if st in ("running", "paused"):
        text = f"Up {_ago(s['StartedAt'])}"
        if s.get("Health"):
            hs = s["Health"]["Status"]
            text += " (health: starting)" if hs == "starting" else f" ({hs})"
        return text + (" (Paused)" if st == "paused" else "")
    if st == "restarting":
        return f"Restarting ({s['ExitCode']}) {_ago(s['FinishedAt'])} ago"
    if st == "exited":
        return f"Exited ({s['ExitCode']}) {_ago(s['FinishedAt'])} ago"
    return "Created"


def _matches(info: dict[str, Any], filters: list[str]) -> bool:
    for f in filters:
        key, _, value = f.partition("=")
        if key == "status" and info["State"]["Status"] != value:
            return False
        if key == "name" and value not in info["Name"]:
            return False
        if key == "id" and not info["Id"].startswith(value):
            return False
        if key == "ancestor" and value not in (info["Config"]["Image"], info["Image"]) and \
                not info["Config"]["Image"].endswith("/" + value) and \
                not info["Config"]["Image"].endswith("/" + value + ":latest"):
            return False
        if key == "exited" and (info["State"]["Status"] != "exited" or str(info["State"]["ExitCode"]) != value):
            return False
        if key == "health" and (info["State"].get("Health") or {}).get("Status", "none") != value:
            return False
        if key == "label":
            k, eq, v = value.partition("=")
            labels = info["Config"].get("Labels") or {}
            if k not in labels or (eq and labels[k] != v):
                return False
    return True


def cmd_ps(args: argparse.Namespace) -> int:
    eng = _engine(args)
    infos = [i for i in eng.list_containers(all_containers=args.all or bool(args.filter)) if _matches(i, args.filter)]
    if args.last is not None:
        infos = infos[:args.last]
    if args.quiet:
        for i in infos:
            print(i["Id"][:12] if not args.no_trunc else i["Id"])
        return 0
    rows = []
    for i in infos:
        cmd = " ".join((i["Config"].get("Entrypoint") or []) + (i["Config"].get("Cmd") or []))
        row = {"ID": i["Id"][:12] if not args.no_trunc else i["Id"], "Image": i["Config"]["Image"],
               "Command": cmd if args.no_trunc else (cmd[:20] + "…" if len(cmd) > 20 else cmd),
               "CreatedAt": i["Created"], "RunningFor": _ago(i["Created"]) + " ago", "Status": status_text(i),
               "State": i["State"]["Status"], "Ports": "", "Names": i["Name"].lstrip("/"),
               "Labels": ",".join(f"{k}={v}" for k, v in (i["Config"].get("Labels") or {}).items())}
        rows.append(row)
    if args.format == "json" or args.format == "{{json .}}":
        import json

        for r in rows:
            print(json.dumps(r))
        return 0
    if args.format:
        for r in rows:
            print(_go_template(args.format, r))
        return 0
    cols = [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"), ("CREATED", "RunningFor"),
            ("STATUS", "Status"), ("PORTS", "Ports"), ("NAMES", "Names")]
    _table(cols, rows)
    return 0


def _go_template(fmt: str, data: dict[str, Any]) -> str:
    import re

    return re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: str(data.get(m.group(1), "")), fmt).replace("\\t", "\t")


def _table(cols: list[tuple[str, str]], rows: list[dict[str, Any]]) -> None:
    widths = [max([len(h)] + [len(str(r[k])) for r in rows]) for h, k in cols]
    print("   ".join(h.ljust(w) for (h, _), w in zip(cols, widths, strict=True)).rstrip())
    for r in rows:
        print("   ".join(str(r[k]).ljust(w) for (_, k), w in zip(cols, widths, strict=True)).rstrip())


def cmd_inspect(args: argparse.Namespace) -> int:
    import json

    eng = _engine(args)
    out = []
    code = 0
    for ref in args.containers:
        try:
            out.append(eng.inspect(ref))
        except HakoError as exc:
            print(f"hako: {exc}", file=sys.stderr)
            code = 1
    if args.format:
        for i in out:
            print(_inspect_format(args.format, i))
    else:
        print(json.dumps(out, indent=4))
    return code


def _inspect_format(fmt: str, data: dict[str, Any]) -> str:
    import json
    import re

    def lookup(m: re.Match[str]) -> str:
        expr = m.group(1).strip()
        as_json = expr.startswith("json ")
        path = expr[5:].strip() if as_json else expr
        cur: Any = data
        for part in [p for p in path.split(".") if p]:
            cur = cur.get(part) if isinstance(cur, dict) else None
        if as_json:
            return json.dumps(cur)
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return "<no value>" if cur is None else str(cur)

    return re.sub(r"\{\{(.*?)\}\}", lookup, fmt)


def cmd_logs(args: argparse.Namespace) -> int:
    from hako.engine import logs

    eng = _engine(args)
    rec = eng.get(args.container)
    cdir = eng.cdir(rec["Id"])
    tail = None if args.tail in (None, "all") else int(args.tail)
    since = logs.parse_since(args.since)
    lines = (logs.follow(cdir, lambda: eng.is_running(rec), tail, since) if args.follow
             else logs.read_logs(cdir, tail, since))
    out, err = sys.stdout, sys.stderr
    for line in lines:
        text = f"{line.time} {line.text}" if args.timestamps else line.text
        stream = err if line.stream == "stderr" else out
        stream.write(text)
        stream.flush()
    return 0


# --- exec / top / cp / export ----------------------------------------------------------------------
def cmd_exec(args: argparse.Namespace) -> int:
    import json
    import subprocess

    eng = _engine(args)
    argv, pj = eng.exec_argv(args.container, args.command, tty=args.tty, detach=args.detach, user=args.user,
                             env=args.env, workdir=args.workdir, privileged=args.privileged)
    log = pj.with_suffix(".log")
    argv = [argv[0], "--log", str(log), "--log-format", "json", *argv[1:]]
    try:
        stdin = None if args.interactive else subprocess.DEVNULL
        out = subprocess.DEVNULL if args.detach else None
        code = subprocess.run(argv, stdin=stdin, stdout=out, stderr=out).returncode
        if code != 0 and log.exists():
            for line in reversed(log.read_text(errors="replace").splitlines()):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("level") in ("error", "fatal"):
                    from hako.engine.monitor import exit_code_for

                    msg = str(entry.get("msg", ""))
                    return exit_code_for(msg) if exit_code_for(msg) != 125 else 126
        return code
    finally:
        pj.unlink(missing_ok=True)
        log.unlink(missing_ok=True)


def cmd_top(args: argparse.Namespace) -> int:
    from pathlib import Path

    eng = _engine(args)
    pids = eng.top(args.container)
    rows = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            status = {k: v.strip() for k, _, v in (line.partition(":") for line in
                                                   Path(f"/proc/{pid}/status").read_text().splitlines())}
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        rows.append({"UID": status.get("Uid", "").split()[0] if status.get("Uid") else "", "PID": str(pid),
                     "PPID": fields[1], "STAT": fields[0], "CMD": cmdline or stat[stat.index("(") + 1:stat.rindex(")")]})
    _table([("UID", "UID"), ("PID", "PID"), ("PPID", "PPID"), ("STAT", "STAT"), ("CMD", "CMD")], rows)
    return 0


def cmd_cp(args: argparse.Namespace) -> int:
    from hako.engine.files import copy

    copy(_engine(args), args.src, args.dst)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hako.engine.files import export

    export(_engine(args), args.container, args.output)
    return 0


def cmd_port(args: argparse.Namespace) -> int:
    _engine(args).get(args.container)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    removed = _engine(args).prune()
    print("Deleted Containers:")
    for cid in removed:
        print(cid)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from hako.engine.stats import run_stats

    return run_stats(_engine(args), args.containers, all_containers=args.all, no_stream=args.no_stream,
                     fmt=args.format)


def cmd_debug(args: argparse.Namespace) -> int:
    from hako.engine.files import debug_shell

    return debug_shell(_engine(args), args.container, args.image, args.command)


# --- volumes -------------------------------------------------------------------------------------------
def cmd_volume_create(args: argparse.Namespace) -> int:
    eng = _engine(args)
    labels = dict(item.partition("=")[::2] for item in args.label)
    print(eng.volumes.create(args.name, labels=labels))
    return 0


def cmd_volume_ls(args: argparse.Namespace) -> int:
    import json

    vols = _engine(args).volumes.list_volumes()
    if args.quiet:
        for v in vols:
            print(v["Name"])
    elif args.format == "json":
        for v in vols:
            print(json.dumps(v))
    else:
        _table([("DRIVER", "Driver"), ("VOLUME NAME", "Name")], vols)
    return 0


def cmd_volume_inspect(args: argparse.Namespace) -> int:
    import json

    eng = _engine(args)
    print(json.dumps([eng.volumes.inspect(n) for n in args.names], indent=4))
    return 0


def cmd_volume_rm(args: argparse.Namespace) -> int:
    eng = _engine(args)
    code = 0
    for n in args.names:
        try:
            eng.volumes.remove(n, force=args.force)
            print(n)
        except HakoError as exc:
            print(f"hako: {exc}", file=sys.stderr)
            code = 1
    return code


def cmd_volume_prune(args: argparse.Namespace) -> int:
    removed = _engine(args).volumes.prune(all_volumes=args.all)
    print("Deleted Volumes:")
    for n in removed:
        print(n)
    return 0


# --- system ----------------------------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> int:
    from hako.engine.system import info

    return _print_mapping(info(_engine(args)), args.format)


def cmd_version(args: argparse.Namespace) -> int:
    from hako.engine.system import version

    return _print_mapping(version(_engine(args)), args.format)


def _print_mapping(data: dict[str, Any], fmt: str | None) -> int:
    import json

    if fmt == "json":
        print(json.dumps(data, indent=2))
    else:
        for k, v in data.items():
            print(f"{k}: {v}")
    return 0


def cmd_system_df(args: argparse.Namespace) -> int:
    from hako.engine.system import disk_usage

    rows = disk_usage(_engine(args))
    _table([("TYPE", "Type"), ("TOTAL", "Total"), ("ACTIVE", "Active"), ("SIZE", "Size")], rows)
    return 0


def cmd_system_prune(args: argparse.Namespace) -> int:
    from hako.engine.system import prune

    for line in prune(_engine(args), volumes=args.volumes):
        print(line)
    return 0


# --- registration ----------------------------------------------------------------------------------------
class _Skipped:
    """Stands in for the parsers of commands not being run: every call is absorbed."""

    def __getattr__(self, name: str) -> Any:
        return self

    def __call__(self, *args: Any, **kw: Any) -> Any:
        return self


COMMANDS = frozenset({
    "run", "create", "start", "attach", "stop", "restart", "kill", "rm", "wait", "pause", "unpause", "rename",
    "ps", "inspect", "logs", "exec", "top", "stats", "cp", "export", "port", "debug", "container", "volume",
    "system", "info", "version",
})


def register(subparsers: Any, only: str | None = None) -> None:
    """Add the container commands; with ``only``, build just that command's parser (start-up time)."""
    import argparse

    def add(name: str, func: Any, help_: str, **kw: Any) -> Any:
        if only is not None and name != only:
            return _Skipped()
        p = subparsers.add_parser(name, help=help_, **kw)
        p.set_defaults(func=func)
        return p

    _add_create_flags(add("run", cmd_run, "create and start a container", add_help=False))
    _add_create_flags(add("create", cmd_create, "create a container", add_help=False))

    p = add("start", cmd_start, "start stopped containers")
    p.add_argument("-a", "--attach", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("containers", nargs="+")

    p = add("attach", cmd_attach, "attach to a running container's output (and stdin when it was run with -i)")
    p.add_argument("--no-stdin", action="store_true")
    p.add_argument("container")

    for name, func, help_ in (("stop", cmd_stop, "stop running containers"),
                              ("restart", cmd_restart, "restart containers")):
        p = add(name, func, help_)
        p.add_argument("-t", "--time", type=float)
        if name == "stop":
            p.add_argument("-s", "--signal")
        p.add_argument("containers", nargs="+")

    p = add("kill", cmd_kill, "send a signal to containers")
    p.add_argument("-s", "--signal", default="KILL")
    p.add_argument("containers", nargs="+")

    p = add("rm", cmd_rm, "remove containers")
    _add_flags(p, RM_FLAGS)
    p.add_argument("containers", nargs="+")

    for name, func, help_ in (("wait", cmd_wait, "wait for containers to stop; print exit codes"),
                              ("pause", cmd_pause, "freeze containers"),
                              ("unpause", cmd_unpause, "thaw containers")):
        p = add(name, func, help_)
        p.add_argument("containers", nargs="+")

    p = add("rename", cmd_rename, "rename a container")
    p.add_argument("container")
    p.add_argument("new_name")

    p = add("ps", cmd_ps, "list containers")
    _add_flags(p, PS_FLAGS)

    p = add("inspect", cmd_inspect, "show a container's details as JSON")
    p.add_argument("-f", "--format")
    p.add_argument("containers", nargs="+")

    p = add("logs", cmd_logs, "show a container's logs")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-n", "--tail")
    p.add_argument("--since")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("container")

    p = add("exec", cmd_exec, "run a command in a running container")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-u", "--user")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-w", "--workdir")
    p.add_argument("--privileged", action="store_true")
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER)

    p = add("top", cmd_top, "list a container's processes")
    p.add_argument("container")

    p = add("stats", cmd_stats, "live resource usage from the containers' cgroups")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("--no-stream", action="store_true")
    p.add_argument("--format")
    p.add_argument("containers", nargs="*")

    p = add("cp", cmd_cp, "copy files between a container and the host (CONTAINER:PATH)")
    p.add_argument("src")
    p.add_argument("dst")

    p = add("export", cmd_export, "write a container's filesystem as a tar archive")
    p.add_argument("-o", "--output")
    p.add_argument("container")

    p = add("port", cmd_port, "list port mappings (none until bridge networks exist)")
    p.add_argument("container")

    p = add("debug", cmd_debug, "a shell in a container's namespaces and cgroup (its root at /proc/1/root)")
    p.add_argument("--image", help="tools image whose root is used for the shell (default: the target's)")
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER)

    container = add("container", None, "manage containers")
    csub = container.add_subparsers(dest="container_command", metavar="COMMAND")
    pp = csub.add_parser("prune", help="remove all stopped containers")
    pp.add_argument("-f", "--force", action="store_true")
    pp.set_defaults(func=cmd_prune)
    pl = csub.add_parser("ls", help="list containers")
    _add_flags(pl, PS_FLAGS)
    pl.set_defaults(func=cmd_ps)

    volume = add("volume", None, "manage volumes")
    vsub = volume.add_subparsers(dest="volume_command", metavar="COMMAND")
    v = vsub.add_parser("create", help="create a named volume")
    v.add_argument("--label", action="append", default=[])
    v.add_argument("name", nargs="?")
    v.set_defaults(func=cmd_volume_create)
    v = vsub.add_parser("ls", help="list volumes")
    v.add_argument("-q", "--quiet", action="store_true")
    v.add_argument("--format")
    v.set_defaults(func=cmd_volume_ls)
    v = vsub.add_parser("inspect", help="show volumes as JSON")
    v.add_argument("names", nargs="+")
    v.set_defaults(func=cmd_volume_inspect)
    v = vsub.add_parser("rm", help="remove volumes not in use")
    v.add_argument("-f", "--force", action="store_true")
    v.add_argument("names", nargs="+")
    v.set_defaults(func=cmd_volume_rm)
    v = vsub.add_parser("prune", help="remove unused anonymous volumes (-a: all unused)")
    v.add_argument("-a", "--all", action="store_true")
    v.add_argument("-f", "--force", action="store_true")
    v.set_defaults(func=cmd_volume_prune)

    system = add("system", None, "manage hako")
    ssub = system.add_subparsers(dest="system_command", metavar="COMMAND")
    s = ssub.add_parser("df", help="disk usage")
    s.set_defaults(func=cmd_system_df)
    s = ssub.add_parser("prune", help="remove stopped containers and unused anonymous volumes")
    s.add_argument("-f", "--force", action="store_true")
    s.add_argument("-a", "--all", action="store_true")
    s.add_argument("--volumes", action="store_true")
    s.set_defaults(func=cmd_system_prune)
    s = ssub.add_parser("info", help="system information")
    s.add_argument("--format")
    s.set_defaults(func=cmd_info)

    p = add("info", cmd_info, "system information")
    p.add_argument("-f", "--format")
    p = add("version", cmd_version, "versions of hako and its runtime")
    p.add_argument("-f", "--format")
