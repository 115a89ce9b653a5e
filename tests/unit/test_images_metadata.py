from __future__ import annotations

import multiprocessing
from pathlib import Path

from hako.images.metadata import ImageDB, LayerRow, add_container_ref, remove_container_ref

I1, I2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
C1, C2 = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def test_add_tag_delete(tmp_path: Path) -> None:
    db = ImageDB(tmp_path)
    db.add_image(I1, "sha256:" + "m" * 0 + "3" * 64, "2024-01-01T00:00:00Z", 10,
                 [LayerRow(C1, C1, 5), LayerRow(C2, C2, 5)], ["r/x:1"], {"r/x@sha256:" + "3" * 64: "sha256:" + "3" * 64})
    row = db.image(I1)
    assert row is not None and row.tags == ["r/x:1"] and row.chain_ids == [C1, C2]
    db.add_image(I2, "sha256:" + "4" * 64, "", 5, [LayerRow(C1, C1, 5)], ["r/x:1"], {})
    # The tag moved to the newer image; the old one is dangling, not gone.
    assert db.by_tag("r/x:1") == I2 and db.image(I1).tags == []  # type: ignore[union-attr]
    db.delete_image(I1)
    assert db.image(I1) is None
    assert db.unused_layers() == [C2]
    db.delete_layers([C2, C1])  # C1 is still used by I2: kept
    assert [lay.chain_id for lay in db.layers()] == [C1]
    assert db.ids_with_prefix("sha256:22") == [I2]
    db.close()


def test_container_refs(tmp_path: Path) -> None:
    db = ImageDB(tmp_path)
    db.add_image(I1, "sha256:" + "3" * 64, "", 0, [], [], {})
    add_container_ref(tmp_path, "c1", I1)
    add_container_ref(tmp_path, "c2", I1)
    assert sorted(db.users(I1)) == ["c1", "c2"]
    remove_container_ref(tmp_path, "c1")
    assert db.users(I1) == ["c2"]
    db.close()


def _tagger(root: str, n: int) -> None:
    db = ImageDB(Path(root))
    for i in range(30):
        db.tag(I1, f"r/x:{n}-{i}")
    db.close()


def test_concurrent_writers(tmp_path: Path) -> None:
    db = ImageDB(tmp_path)
    db.add_image(I1, "sha256:" + "3" * 64, "", 0, [], [], {})
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_tagger, args=(str(tmp_path), n)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert len(db.image(I1).tags) == 120  # type: ignore[union-attr]
    db.close()
