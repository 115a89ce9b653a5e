"""hako.engine.containers' path helpers, which stand in for pathlib and shutil on ``hako run``'s path."""

from __future__ import annotations

from pathlib import Path

import pytest

from hako.engine.config import absolute
from hako.engine.containers import _norm, _rmtree


def test_paths_normalised_as_pathlib_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for p in ("", ".", "./a", "a/b/", "/x//y/./z/", "//x", "///x", "a/../b", "/", "..", "/tmp/r"):
        assert _norm(p) == str(Path(p)), p
        assert absolute(p) == str(Path(p).absolute()), p


def test_rmtree_removes_without_following_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f").write_text("y")
    (tree / "link").symlink_to(outside)
    (tree / "a" / "dangling").symlink_to(tmp_path / "nowhere")
    _rmtree(str(tree))
    assert not tree.exists() and (outside / "keep").read_text() == "x"
    _rmtree(str(tree))  # gone already: nothing to do, no error
