from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hako.errors import NotFound, RegistryError
from hako.images.content import ContentStore


def test_put_read_and_verify(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    d = cs.put(b"hello")
    assert d == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert cs.read(d) == b"hello" and cs.size(d) == 5
    assert cs.path(d) == tmp_path / "blobs/sha256" / d[7:]
    assert list(cs.digests()) == [d]


def test_wrong_digest_leaves_nothing(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    bad = "sha256:" + "0" * 64
    with pytest.raises(RegistryError, match=bad):
        cs.put(b"hello", bad)
    assert not cs.has(bad)
    assert list(cs.tmp_dir.iterdir()) == []
    with cs.writer() as w:
        w.write(b"abc")
        with pytest.raises(RegistryError, match="size"):
            w.commit(size=4)
    assert list(cs.tmp_dir.iterdir()) == [] and list(cs.digests()) == []


def test_writer_abandoned_is_cleaned(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    with cs.writer() as w:
        w.write(b"partial")
    assert list(cs.tmp_dir.iterdir()) == []
    with pytest.raises(NotFound):
        cs.read("sha256:" + "1" * 64)
    with pytest.raises(RegistryError):
        cs.path("md5:abc")


def test_sweep_tmp_removes_stale_files_and_directories_only(tmp_path: Path) -> None:
    import os

    cs = ContentStore(tmp_path)
    stale_file, stale_dir, fresh = cs.tmp_dir / "blob-dead", cs.tmp_dir / "load-dead", cs.tmp_dir / "blob-live"
    stale_file.write_bytes(b"x")
    stale_dir.mkdir()
    (stale_dir / "archive.tar").write_bytes(b"x")  # what a killed `hako load` leaves
    fresh.write_bytes(b"x")
    for p in (stale_file, stale_dir):
        os.utime(p, (1, 1))
    assert cs.sweep_tmp() == 2
    assert [p.name for p in cs.tmp_dir.iterdir()] == ["blob-live"]
