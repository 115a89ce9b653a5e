"""Fixtures shared by every test: root checks, busybox rootfs and bundles, scratch dirs.

Each area keeps its own fixtures in tests/fixtures_<area>.py (registered below), so
helpers for the runtime, cgroups, images and engine do not collide in one file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures_runtime",
    "tests.fixtures_cgroups",
    "tests.fixtures_images",
    "tests.fixtures_storage",
    "tests.fixtures_engine",
]

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root: real namespaces, mounts and cgroups")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/kernel/" in str(item.fspath) or "/tests/e2e/" in str(item.fspath):
            item.add_marker(needs_root)


@pytest.fixture(scope="session")
def scratch_root() -> Iterator[Path]:
    """One scratch directory per test session; everything tests make on disk lives below it."""
    path = Path(tempfile.mkdtemp(prefix="hako-tests-"))
    yield path
    # Mounts left by a failing test would make rmtree cross into them; lazily detach first.
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for m in sorted((m for m in mounts if m.startswith(str(path))), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def busybox_rootfs(scratch_root: Path) -> Path:
    """A pristine busybox rootfs; copy it (``bundle`` does) before changing anything."""
    from hako.testing.busybox import make_rootfs

    return make_rootfs(scratch_root / "busybox-rootfs")


@pytest.fixture
def bundle(tmp_path: Path, busybox_rootfs: Path) -> Path:
    """A fresh OCI bundle with a busybox rootfs and runc's default config (args: sh)."""
    from hako.testing.busybox import make_bundle

    return make_bundle(tmp_path / "bundle", rootfs_template=busybox_rootfs)
