"""Fixtures for the engine tests: a store root with a busybox image, and a ``hako`` runner.

Each test module gets its own store root (``HAKO_ROOT``) and its own cgroup parent
(``/hako-test-engine-<random>``); teardown removes every container (which stops its monitor and unmounts
its root), then the cgroup parents and any mount left below the root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HAKO = str(Path(sys.executable).parent / "hako")


def import_busybox(root: Path, rootfs: Path, scratch: Path, ref: str = "busybox:latest") -> str:
    """Make ``ref`` from the busybox rootfs: through the image store, else as a directory image."""
    try:
        from hako.images.store import ImageStore
    except ImportError:
        from hako.engine.images import register_dir_image

        return register_dir_image(root, ref, rootfs).id
    tar = scratch / "busybox-engine.tar"
    if not tar.exists():
        with tarfile.open(tar, "w") as t:
            t.add(rootfs, arcname=".")
    store = ImageStore(root)
    try:
        return store.import_tarball(tar, ref).id
    finally:
        store.close()


@dataclass
class HakoEnv:
    root: Path
    cgroup_parent: str
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = False, timeout: float = 60, input: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([HAKO, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              input=input, stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"hako {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def out(self, *args: str) -> str:
        return self.run(*args, check=True).stdout.strip()

    def inspect(self, ref: str) -> dict:  # type: ignore[type-arg]
        return json.loads(self.out("inspect", ref))[0]  # type: ignore[no-any-return]

    def state_file(self, ref: str) -> dict:  # type: ignore[type-arg]
        from hako.engine.monitor import STATE, read_marshal

        cid = self.inspect(ref)["Id"]
        return read_marshal(str(self.root / "engine" / "containers" / cid / STATE))


def _cleanup(env: HakoEnv) -> None:
    ids = env.run("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        env.run("rm", "-f", "-v", *ids)
    for ctrl in Path("/sys/fs/cgroup").iterdir():
        top = ctrl / env.cgroup_parent.lstrip("/")
        if top.is_dir():
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(str(p)), reverse=True):
                try:
                    d.rmdir()
                except OSError:
                    pass
            try:
                top.rmdir()
            except OSError:
                pass
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for m in sorted((m for m in mounts if m.startswith(str(env.root))), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], check=False, capture_output=True)
    shutil.rmtree(env.root, ignore_errors=True)


@pytest.fixture(scope="module")
def hako_env(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs: Path, scratch_root: Path) -> Iterator[HakoEnv]:
    root = tmp_path_factory.mktemp("hako-engine")
    parent = f"/hako-test-engine-{os.urandom(4).hex()}"
    # runc by default here (the reference); test_basic_lifecycle_with_each_runtime covers the others,
    # and HAKO_TEST_ENGINE_RUNTIME=hako-runtime runs every engine test on another one.
    runtime = os.environ.get("HAKO_TEST_ENGINE_RUNTIME", "runc")
    env = dict(os.environ, HAKO_ROOT=str(root), HAKO_CGROUP_PARENT=parent, HAKO_RUNTIME=runtime)
    import_busybox(root, busybox_rootfs, scratch_root)
    h = HakoEnv(root, parent, env)
    try:
        yield h
    finally:
        _cleanup(h)
