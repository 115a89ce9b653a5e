"""Files in and out of containers: ``cp`` both ways, ``export``, and the ``debug`` shell.

Paths inside a container are resolved component by component against its root (symlinks
included), so an absolute symlink in the image can never lead a copy out onto the host.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hako.errors import ConfigError, HakoError, NotFound


def secure_join(root: Path, path: str, max_links: int = 40) -> Path:
    """``root``/``path`` with every symlink resolved as if ``root`` were ``/``."""
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            links += 1
            if links > max_links:
                raise HakoError(f"{path}: too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def _container_path(engine: Any, ref: str, path: str) -> Path:
    """Where ``path`` of the container lives on the host: a volume or bind source, else its root."""
    rec = engine.get(ref)
    cdir = engine.cdir(rec["Id"])
    norm = "/" + "/".join(p for p in path.split("/") if p)
    for m in sorted(rec.get("Mounts", []), key=lambda m: len(m["Destination"]), reverse=True):
        dest = m["Destination"].rstrip("/")
        if m["Type"] in ("bind", "volume") and (norm == dest or norm.startswith(dest + "/")):
            return secure_join(Path(m["Source"]), norm[len(dest):])
    rootfs = cdir / "bundle" / "rootfs"
    engine.images.mount_rootfs(rec["Hako"]["Rootfs"], rootfs)
    return secure_join(rootfs, norm)


def _split(arg: str) -> tuple[str | None, str]:
    if ":" in arg and not arg.startswith(("/", ".")):
        name, _, path = arg.partition(":")
        return name, path
    return None, arg


def copy(engine: Any, src: str, dst: str) -> None:
    """``hako cp CONTAINER:SRC HOSTDST`` or ``hako cp HOSTSRC CONTAINER:DST`` (``-`` is not supported)."""
    s_ctr, s_path = _split(src)
    d_ctr, d_path = _split(dst)
    if (s_ctr is None) == (d_ctr is None):
        raise ConfigError("cp", "exactly one of source and destination must be CONTAINER:PATH")
    source = _container_path(engine, s_ctr, s_path) if s_ctr else Path(s_path)
    target = _container_path(engine, d_ctr, d_path) if d_ctr else Path(d_path)
    if not source.exists() and not source.is_symlink():
        raise NotFound(f"{src}: no such file or directory")
    contents = s_path.endswith("/.")
    proc = subprocess.run(["cp", "-a", f"{source}/." if contents else str(source), str(target)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise HakoError(f"cp {src} {dst}: {proc.stderr.strip()}")


def export(engine: Any, ref: str, output: str | None) -> None:
    rec = engine.get(ref)
    rootfs = engine.cdir(rec["Id"]) / "bundle" / "rootfs"
    engine.images.mount_rootfs(rec["Hako"]["Rootfs"], rootfs)
    argv = ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", output or "-", "."]
    proc = subprocess.run(argv, stdout=None if output else sys.stdout.buffer, stderr=subprocess.PIPE)
    if proc.returncode > 1:  # 1: files changed while read; negative: the reader went away
        raise HakoError(f"export {ref}: {proc.stderr.decode(errors='replace').strip()}")


def debug_shell(engine: Any, ref: str, image: str | None, command: list[str]) -> int:
    """A throw-away container that shares the target's pid, network, ipc and uts namespaces and sits in
    a child of its cgroup; the target's root is at /proc/1/root."""
    from hako.cli.containers import attach_session
    from hako.engine.config import CreateOptions

    rec = engine.get(ref)
    st = engine.state(rec)
    if st.get("status") not in ("running", "paused") or not st.get("pid"):
        raise HakoError(f"container {rec['Name']} is not running")
    interactive = sys.stdin.isatty()
    opts = CreateOptions(image=image or rec["Image"], command=command or ["sh"], interactive=True,
                         tty=interactive, rm=True, cap_add=["SYS_PTRACE", "SYS_ADMIN"],
                         runtime=rec["HostConfig"]["Runtime"])
    opts.cgroup_parent = rec["Hako"]["CgroupsPath"]
    debug = engine.create(opts, join_pid=int(st["pid"]))
    sock = engine.start(debug["Id"], attach=True)
    try:
        return int(attach_session(sock, stdin=True, tty=interactive))
    finally:
        engine.remove(debug["Id"], force=True, volumes=True)
