"""Fixtures for the runtime tests: a private --root, a cgroup parent of our own, a CLI driver.

Every container gets an absolute cgroupsPath under ``/hako-test-rt-<pid>`` (never the
caller's own cgroup: on this machine that is under /process_api, which must not be touched),
and teardown force-deletes whatever a test left and removes that parent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

RUNTIME = str(Path(sys.executable).parent / "hako-runtime")
CG_PARENT = f"hako-test-rt-{os.getpid()}"
CG_MOUNT = "/sys/fs/cgroup"


def cgroup_dirs(rel: str) -> list[Path]:
    """Every hierarchy's directory for the cgroup path ``rel`` that exists."""
    out = []
    for h in Path(CG_MOUNT).iterdir():
        p = h / rel.lstrip("/")
        if p.is_dir():
            out.append(p)
    return out


@dataclass
class Runtime:
    root: Path
    tmp: Path

    def __call__(
        self, *args: str, check: bool = True, input: bytes | None = None, timeout: float = 30,
        stdout: Any = None, env: dict[str, str] | None = None, stderr: Any = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run hako-runtime --root <root> args. Use ``stdout`` (a file) for create/run -d: the
        container inherits it, so a pipe would not see EOF until the container exits."""
        cmd = [RUNTIME, "--root", str(self.root), *args]
        p = subprocess.run(
            cmd, input=input, stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=stderr if stderr is not None else subprocess.PIPE, timeout=timeout, env=env,
        )
        if stderr is not None:
            stderr.seek(0)
            p.stderr = stderr.read()
        if check and p.returncode != 0:
            raise AssertionError(f"{cmd} failed ({p.returncode}): {p.stderr.decode()}")
        return p

    def create(self, cid: str, bundle: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """create with the container's stdout in <tmp>/<id>.out (see ``output``)."""
        return self.detached("create", "--bundle", str(bundle), *extra, cid, cid=cid, check=check)

    def detached(self, *args: str, cid: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """A call whose stdio the container inherits (create, run -d): files, not pipes."""
        import tempfile

        with open(self.tmp / f"{cid}.out", "ab") as out, tempfile.TemporaryFile() as err:
            return self(*args, stdout=out, stderr=err, check=check)

    def output(self, cid: str) -> str:
        p = self.tmp / f"{cid}.out"
        return p.read_text() if p.exists() else ""

    def state(self, cid: str) -> dict[str, Any]:
        return json.loads(self("state", cid).stdout)

    def ids(self) -> list[str]:
        # Container state dirs; the runtime's own caches (".seccomp-cache") start with a dot.
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    r = Runtime(root=tmp_path / "rtroot", tmp=tmp_path)
    yield r
    for cid in r.ids():
        subprocess.run([RUNTIME, "--root", str(r.root), "delete", "--force", cid], capture_output=True, timeout=30)
    for d in sorted(cgroup_dirs(CG_PARENT), key=lambda p: len(str(p)), reverse=True):
        for sub in sorted(d.rglob("*"), key=lambda p: len(str(p)), reverse=True):
            if sub.is_dir():
                sub.rmdir()
        d.rmdir()


def cg_path(cid: str) -> str:
    return f"/{CG_PARENT}/{cid}"


@pytest.fixture
def rbundle(bundle: Path) -> Path:
    """The busybox bundle with a cgroupsPath under our own parent (set for id ``c1``)."""
    return set_config(bundle, cid="c1")


def set_config(bundle: Path, cid: str = "c1", args: list[str] | None = None, **changes: Any) -> Path:
    from hako.testing.config import default_config, write_config

    cfg = default_config(args or ["sleep", "1000"])
    cfg["linux"]["cgroupsPath"] = cg_path(cid)
    for k, v in changes.items():
        cfg[k] = v
    write_config(bundle, cfg)
    return bundle


def edit_config(bundle: Path, fn: Any) -> None:
    path = bundle / "config.json"
    cfg = json.loads(path.read_text())
    fn(cfg)
    path.write_text(json.dumps(cfg))


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def ns_inode(pid: int | str, name: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{name}").st_ino


def alive(pid: int) -> bool:
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return data[data.rindex(")") + 2] not in "ZX"
