"""hako.storage.overlay as root: merging overlay-format layer dirs, and mounting MountSpecs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hako.errors import KernelError
from hako.storage import overlay
from hako.storage.overlay import MountSpec


def overlay_layer(root: Path) -> Path:
    """An upper layer in overlay format: a whiteout, an opaque dir, a hardlink pair, attrs."""
    (root / "opq").mkdir(parents=True)
    os.setxattr(root / "opq", "trusted.overlay.opaque", b"y")
    (root / "opq/new").write_text("new")
    os.mknod(root / "gone", stat.S_IFCHR | 0o600, 0)
    (root / "a").write_text("shared")
    os.link(root / "a", root / "b")
    (root / "suid").write_bytes(b"#!")
    os.chown(root / "suid", 1000, 1000)
    os.chmod(root / "suid", 0o4755)
    os.setxattr(root / "a", "user.k", b"v")
    os.symlink("/nowhere", root / "sym")
    os.mkfifo(root / "fifo")
    (root / "f2d").mkdir()
    (root / "f2d/x").write_text("x")
    return root


def lower_tree(root: Path) -> Path:
    (root / "opq").mkdir(parents=True)
    (root / "opq/old").write_text("old")
    (root / "gone").write_text("bye")
    (root / "keep").write_text("keep")
    (root / "f2d").write_text("was a file")
    return root


@pytest.mark.parametrize("link", [False, True])
def test_merge_layer(tmp_path: Path, link: bool) -> None:
    upper = overlay_layer(tmp_path / "upper")
    dst = lower_tree(tmp_path / "dst")
    overlay.merge_layer(upper, dst, link=link)
    assert sorted(os.listdir(dst)) == ["a", "b", "f2d", "fifo", "keep", "opq", "suid", "sym"]
    assert os.listdir(dst / "opq") == ["new"]
    assert not os.listxattr(dst / "opq")
    assert os.stat(dst / "a").st_ino == os.stat(dst / "b").st_ino
    assert (os.stat(dst / "a").st_ino == os.stat(upper / "a").st_ino) is link
    st = os.stat(dst / "suid")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4755, 1000, 1000)
    assert os.getxattr(dst / "a", "user.k") == b"v"
    assert os.readlink(dst / "sym") == "/nowhere"
    assert stat.S_ISFIFO(os.lstat(dst / "fifo").st_mode)
    assert os.listdir(dst / "f2d") == ["x"]


def test_mount_overlay_and_bind(tmp_path: Path, mounts: list[Path]) -> None:
    lo1, lo2 = tmp_path / "lo1", tmp_path / "lo2"
    lo1.mkdir()
    lo2.mkdir()
    (lo1 / "one").write_text("1")
    (lo2 / "two").write_text("2")
    target = tmp_path / "t"
    target.mkdir()
    overlay.mount(
        MountSpec("overlay", "overlay", [*overlay.overlay_options([str(lo2), str(lo1)]), "ro"]), target
    )
    mounts.append(target)
    assert sorted(os.listdir(target)) == ["one", "two"]
    overlay.unmount(target)
    bind = tmp_path / "b"
    bind.mkdir()
    overlay.mount(MountSpec("bind", str(lo1), ["rbind", "ro"]), bind)
    mounts.append(bind)
    assert os.listdir(bind) == ["one"]
    with pytest.raises(OSError):
        (bind / "x").write_text("no")
    overlay.unmount(bind)
    with pytest.raises(KernelError, match="umount2"):
        overlay.unmount(bind)
    with pytest.raises(KernelError, match="mount"):
        overlay.mount(MountSpec("overlay", "overlay", ["lowerdir=/does/not/exist"]), target)
