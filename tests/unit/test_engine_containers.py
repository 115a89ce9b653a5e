"""hako.engine.containers' path helpers, which stand in for pathlib on ``hako run``'s path."""

from __future__ import annotations

from pathlib import Path

import pytest

from hako.engine.config import absolute
from hako.engine.containers import _norm


def test_paths_normalised_as_pathlib_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for p in ("", ".", "./a", "a/b/", "/x//y/./z/", "//x", "///x", "a/../b", "/", "..", "/tmp/r"):
        assert _norm(p) == str(Path(p)), p
        assert absolute(p) == str(Path(p).absolute()), p
