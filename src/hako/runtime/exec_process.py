"""The process spec for ``exec``: ``--process FILE`` or the container's process plus flag overrides."""

from __future__ import annotations

import os

from hako.errors import ConfigError, HakoError
from hako.runtime import fastjson as json
from hako.runtime.argv import Parsed
from hako.spec.runtime import Capabilities, Process, parse_process

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    from typing import Any


def _read_json(path: str) -> Any:
    try:
        if path == "-":
            import sys

            return json.loads(sys.stdin.read())
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise HakoError(f"{path}: no such file or directory") from None
    except ValueError as e:
        raise ConfigError("", f"{path}: not valid JSON: {e}") from None


def build_process(root: str, cid: str, p: Parsed) -> tuple[Process, dict[str, Any] | None]:
    """Returns (process, seccomp profile of the container)."""
    from hako.runtime.create import load_bundle
    from hako.runtime.state import Container

    c = Container(root, cid)
    st = c.load()
    spec = None
    process_file = p.opt("process")
    # The config is needed for the base process (no --process) and for the seccomp profile;
    # clients always pass --process, and create recorded whether there is a profile.
    if not process_file or st.seccomp is not False:
        try:
            spec, _ = load_bundle(st.bundle)
        except HakoError:
            spec = None
    seccomp = spec.linux.seccomp if spec is not None else None
    if process_file:
        proc = parse_process(_read_json(process_file), "process")
    else:
        if len(p.args) < 2:
            raise HakoError('"exec" requires a command to run (or --process)')
        if spec is not None and spec.process is not None:
            base = spec.process
            proc = Process(
                args=list(p.args[1:]),
                cwd=base.cwd,
                env=list(base.env),
                user=base.user,
                capabilities=base.capabilities,
                rlimits=list(base.rlimits),
                no_new_privileges=base.no_new_privileges,
                apparmor_profile=base.apparmor_profile,
                selinux_label=base.selinux_label,
            )
        else:
            proc = Process(args=list(p.args[1:]))
    _apply_flags(proc, p)
    return proc, seccomp


def _apply_flags(proc: Process, p: Parsed) -> None:
    if p.opt("cwd"):
        cwd = p.opt("cwd") or "/"
        if not cwd.startswith("/"):
            raise ConfigError("--cwd", f"must be an absolute path, got {cwd!r}")
        proc.cwd = cwd
    for e in p.many("env"):
        if "=" not in e:
            raise ConfigError("--env", f"{e!r} is not of the form KEY=value")
        key = e.split("=", 1)[0] + "="
        proc.env = [x for x in proc.env if not x.startswith(key)] + [e]
    user = p.opt("user")
    if user:
        uid_s, _, gid_s = user.partition(":")
        try:
            uid = int(uid_s)
            gid = int(gid_s) if gid_s else 0
        except ValueError:
            raise ConfigError("--user", f"{user!r}: expected uid[:gid] as numbers") from None
        proc.user.uid, proc.user.gid = uid, gid  # proc was parsed for this call: nothing shares it
    gids = p.many("additional-gids")
    if gids:
        try:
            proc.user.additional_gids = [int(g) for g in gids]
        except ValueError:
            raise ConfigError("--additional-gids", "expected numbers") from None
    if p.flag("tty"):
        proc.terminal = True
    if p.flag("no-new-privs"):
        proc.no_new_privileges = True
    caps = p.many("cap")
    if caps:
        from hako.sys.capnames import CAP_NUMBERS

        names = []
        for c in caps:
            n = c.upper() if c.upper().startswith("CAP_") else "CAP_" + c.upper()
            if n not in CAP_NUMBERS:
                raise ConfigError("--cap", f"unknown capability {c!r}")
            names.append(n)
        base = proc.capabilities or Capabilities()
        proc.capabilities = Capabilities(
            bounding=sorted(set(base.bounding) | set(names)),
            effective=sorted(set(base.effective) | set(names)),
            inheritable=sorted(set(base.inheritable) | set(names)),
            permitted=sorted(set(base.permitted) | set(names)),
            ambient=sorted(set(base.ambient) | set(names)),
        )
    if p.opt("apparmor"):
        proc.apparmor_profile = p.opt("apparmor") or ""
    if p.opt("process-label"):
        proc.selinux_label = p.opt("process-label") or ""
    if not os.path.isabs(proc.cwd):
        raise ConfigError("process.cwd", f"must be an absolute path, got {proc.cwd!r}")
