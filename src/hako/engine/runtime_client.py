"""Drive any runc-compatible runtime binary (hako-runtime, runc, crun) through its command line."""

from __future__ import annotations

import os
import sys

from hako.errors import HakoError, NotFound

TYPE_CHECKING = False  # typing and pathlib cost start-up time (hako run imports this first)
if TYPE_CHECKING:
    import subprocess
    from pathlib import Path
    from typing import Any


def _which(name: str, path: str) -> str | None:
    for d in path.split(os.pathsep):
        candidate = os.path.join(d, name)
        if d and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def resolve_runtime(name: str) -> str:
    """An absolute path for ``name`` (a path, or a command looked up in $PATH)."""
    if "/" in name:
        if not os.path.exists(name):
            raise NotFound(f"runtime {name}: no such file")
        return os.path.realpath(name)
    # hako-runtime lives beside the interpreter of a virtualenv that may not be on $PATH.
    found = (_which(name, os.environ.get("PATH", os.defpath)) or _which(name, os.path.dirname(sys.executable))
             or _which(name, "/usr/local/sbin:/usr/sbin:/sbin"))
    if found is None:
        raise NotFound(f"runtime {name!r} not found in PATH")
    return found


def runtime_in_process(path: str) -> bool:
    """Whether ``path`` is hako's own runtime (the ``hako-runtime`` beside this interpreter), which the
    engine calls as a library instead of as a binary; ``HAKO_RUNTIME_INPROCESS=0`` turns that off."""
    if os.environ.get("HAKO_RUNTIME_INPROCESS", "1") == "0":
        return False
    own = os.path.join(os.path.dirname(sys.executable), "hako-runtime")
    try:
        return os.path.samefile(path, own)
    except OSError:
        return False


def default_runtime() -> str:
    env = os.environ.get("HAKO_RUNTIME")
    if env:
        return env
    try:
        return resolve_runtime("hako-runtime")
    except NotFound:
        return "runc"


def _single_threaded() -> bool:
    # fork() copies only the calling thread: with others running (an attach session's stdin pump),
    # a lock they hold could never be released in the child.
    threading = sys.modules.get("threading")
    return threading is None or threading.active_count() == 1


def _run_in_child(args: list[str]) -> tuple[int, str, str]:
    """hako's own runtime called as a library in a forked child (no interpreter start-up): the
    same argv, stdout and stderr captured, the exit code."""
    sys.stdout.flush()
    sys.stderr.flush()
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        from hako.runtime.cli import run_in_forked_child

        run_in_forked_child(args, (os.open("/dev/null", os.O_RDONLY), out_w, err_w))
    os.close(out_w)
    os.close(err_w)
    with os.fdopen(out_r, "rb") as f:
        out = f.read()
    with os.fdopen(err_r, "rb") as f:
        err = f.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace"), err.decode(errors="replace")


class RuntimeClient:
    def __init__(self, path: str, root: Path) -> None:
        self.path = path
        self.root = root

    def argv(self, *args: str) -> list[str]:
        return [self.path, "--root", str(self.root), *args]

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        import subprocess

        if runtime_in_process(self.path) and _single_threaded():
            code, out, err = _run_in_child(self.argv(*args)[1:])
            proc = subprocess.CompletedProcess(self.argv(*args), code, out, err)
        else:
            proc = subprocess.run(self.argv(*args), capture_output=True, text=True)
        if check and proc.returncode != 0:
            msg = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            raise HakoError(f"{os.path.basename(self.path)} {args[0]} {args[-1]}: {msg}")
        return proc

    def state(self, cid: str) -> dict[str, Any] | None:
        if not (self.root / cid).exists():
            return None
        proc = self._run("state", cid, check=False)
        if proc.returncode != 0:
            return None
        import json

        try:
            return dict(json.loads(proc.stdout))
        except ValueError:
            return None

    def kill(self, cid: str, sig: str, all_procs: bool = False) -> None:
        args = ["kill", *(["--all"] if all_procs else []), cid, sig]
        self._run(*args)

    def delete(self, cid: str, force: bool = True) -> None:
        if not (self.root / cid).exists():
            return
        self._run("delete", *(["--force"] if force else []), cid, check=False)

    def pause(self, cid: str) -> None:
        self._run("pause", cid)

    def resume(self, cid: str) -> None:
        self._run("resume", cid)

    def ps_pids(self, cid: str) -> list[int]:
        import json

        proc = self._run("ps", "--format", "json", cid)
        return [int(p) for p in json.loads(proc.stdout or "[]") or []]

    def exec_argv(self, cid: str, process_json: Path, *, tty: bool, detach: bool) -> list[str]:
        args = ["exec", "--process", str(process_json)]
        if tty:
            args.append("--tty")
        if detach:
            args.append("--detach")
        return self.argv(*args, cid)
