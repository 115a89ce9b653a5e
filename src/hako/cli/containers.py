"""``hako`` container commands with Docker's flags: run, create, start, stop, ps, logs, exec, ...

Every command is a thin layer over ``hako.engine`` (the Python API uses the same code). Heavy
modules (rich, the image store) are imported only by the commands that need them.
"""

from __future__ import annotations

import sys
import time

from hako.cli.run import (  # noqa: F401 - re-exported: run/create live in hako.cli.run (start-up time)
    APPEND,
    CREATE_FLAGS,
    FLAG,
    PS_FLAGS,
    RM_FLAGS,
    VALUE,
    Args,
    _add_create_flags,
    _add_flags,
    _engine,
    attach_session,
    cmd_create,
    cmd_run,
    create_options,
    fast_parse,
)
from hako.errors import HakoError

TYPE_CHECKING = False  # argparse, json, pathlib and typing load only where a command needs them
if TYPE_CHECKING:
    import argparse
    from typing import Any


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
        from hako.cli.gotemplate import render

        for r in rows:
            print(render(args.format, r))
        return 0
    cols = [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"), ("CREATED", "RunningFor"),
            ("STATUS", "Status"), ("PORTS", "Ports"), ("NAMES", "Names")]
    _table(cols, rows)
    return 0


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
        from hako.cli.gotemplate import render

        for i in out:
            print(render(args.format, i))
    else:
        print(json.dumps(out, indent=4))
    return code


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
