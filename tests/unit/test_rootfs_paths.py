"""Resolving paths inside a hostile rootfs: symlinks and .. never leave it."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hako.errors import KernelError
from hako.runtime import paths
from hako.runtime.paths import (
    mkdir_all_in_root,
    open_in_root,
    open_target,
    resolve_in_root,
    secure_join,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A rootfs with escaping symlinks, next to a 'host' file it must never reach."""
    (tmp_path / "host-secret").write_text("host")
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc/secret").write_text("container")
    (r / "host-secret").write_text("container copy")
    (r / "evil").symlink_to("/")
    (r / "up").symlink_to("../../..")
    (r / "abs").symlink_to("/etc/secret")
    (r / "rel").symlink_to("../../host-secret")
    (r / "dangling").symlink_to("../run/resolv.conf")
    (r / "loop").symlink_to("loop")
    (r / "magic").symlink_to("/proc/self/root")
    (r / "file").write_text("x")
    return r


@pytest.fixture(params=["openat2", "walker"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every resolution test runs with the kernel's openat2 and with the manual fallback."""
    monkeypatch.setattr(paths, "_have_openat2", None if request.param == "openat2" else False)
    yield request.param


def read(root: Path, path: str) -> str:
    fd = resolve_in_root(root, path, os.O_RDONLY)
    try:
        return os.read(fd, 100).decode()
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("/etc/secret", "container"),
        ("/evil/etc/secret", "container"),
        ("/up/etc/secret", "container"),
        ("/../../../etc/secret", "container"),
        ("/abs", "container"),
        ("/rel", "container copy"),
        ("/evil/host-secret", "container copy"),
    ],
)
def test_symlinks_stay_inside(root: Path, mode: str, path: str, content: str) -> None:
    assert read(root, path) == content


def test_missing_and_loops(root: Path, mode: str) -> None:
    with pytest.raises(KernelError) as e:
        read(root, "/nope")
    assert e.value.errno == errno.ENOENT
    with pytest.raises(KernelError) as e:
        read(root, "/loop")
    assert e.value.errno == errno.ELOOP
    with pytest.raises(KernelError) as e:
        read(root, "/file/x")
    assert e.value.errno == errno.ENOTDIR


def test_magic_links_refused_by_openat2(root: Path) -> None:
    # The kernel refuses /proc/self/root (RESOLVE_NO_MAGICLINKS); the walker reads it as "/"
    # of the rootfs. Either way nothing outside is reached.
    rfd = os.open(root, os.O_PATH)
    try:
        with pytest.raises(KernelError) as e:
            open_in_root(rfd, "/proc/self/root/etc")
        assert e.value.errno in (errno.ENOENT, errno.ELOOP)
    finally:
        os.close(rfd)


def test_open_nofollow_gives_the_link(root: Path, mode: str) -> None:
    rfd = os.open(root, os.O_PATH)
    fd = open_in_root(rfd, "/evil", follow=False)
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == str(root / "evil")
    finally:
        os.close(fd)
        os.close(rfd)


def test_secure_join(root: Path) -> None:
    assert secure_join(root, "/evil/etc/../etc/secret") == "/etc/secret"
    assert secure_join(root, "/up/x/y") == "/x/y"
    assert secure_join(root, "/dangling") == "/run/resolv.conf"
    assert secure_join(root, "/nope/../../etc") == "/etc"
    assert secure_join(root, "/") == "/"


def test_mkdir_all_creates_inside(root: Path, tmp_path: Path) -> None:
    rfd = os.open(root, os.O_PATH)
    try:
        os.close(mkdir_all_in_root(rfd, "/evil/tmp/a/b"))
        os.close(mkdir_all_in_root(rfd, "/up/escape/c"))
        assert (root / "tmp/a/b").is_dir()
        assert (root / "escape/c").is_dir()
        assert not (tmp_path / "escape").exists() and not Path("/escape").exists()
        with pytest.raises(KernelError) as e:
            mkdir_all_in_root(rfd, "/file/sub")
        assert e.value.errno == errno.ENOTDIR
    finally:
        os.close(rfd)


def test_open_target_creates_dangling_symlink_target(root: Path) -> None:
    rfd = os.open(root, os.O_PATH)
    try:
        with open_target(rfd, "/dangling", "file") as t:
            assert t.name == "resolv.conf"
            assert os.readlink(f"/proc/self/fd/{t.fd}") == str(root / "run/resolv.conf")
        with open_target(rfd, "/evil/mnt/dir", "dir") as t:
            assert os.readlink(f"/proc/self/fd/{t.fd}") == str(root / "mnt/dir")
        with pytest.raises(KernelError):
            open_target(rfd, "/", "dir")
        with pytest.raises(KernelError) as e:
            open_target(rfd, "/missing/x", None)
        assert e.value.errno == errno.ENOENT
    finally:
        os.close(rfd)


def test_symlink_swapped_in_after_resolution_fails(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The owner of the rootfs replaces the resolved directory by a symlink to / between our
    # resolution and our open (the CVE-2021-30465 race, made deterministic).
    (root / "mnt").mkdir()
    real = paths.secure_join

    def racing(r: int, path: str) -> str:
        out = real(r, path)
        (root / "mnt").rmdir()
        (root / "mnt").symlink_to("/")
        return out

    monkeypatch.setattr(paths, "secure_join", racing)
    rfd = os.open(root, os.O_PATH)
    try:
        with pytest.raises(KernelError) as e:
            open_target(rfd, "/mnt", "dir")
        assert e.value.errno == errno.ELOOP
    finally:
        os.close(rfd)
