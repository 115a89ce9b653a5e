from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import zstandard

from hako.errors import RegistryError
from hako.images.content import ContentStore
from hako.images.stream import LayerReader

TAR = b"".join(bytes([i % 251]) * 1000 for i in range(3000))


def chunks(data: bytes, n: int = 7777) -> list[bytes]:
    return [data[i:i + n] for i in range(0, len(data), n)]


@pytest.mark.parametrize("kind,blob", [
    ("none", TAR),
    ("gzip", gzip.compress(TAR)),
    ("gzip", gzip.compress(TAR[:1000]) + gzip.compress(TAR[1000:])),  # multi-member
    ("zstd", zstandard.ZstdCompressor().compress(TAR)),
    ("zstd", zstandard.ZstdCompressor().compress(TAR[:5]) + zstandard.ZstdCompressor().compress(TAR[5:])),
])
def test_reader_hashes_and_decompresses(kind: str, blob: bytes, tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    w = cs.writer()
    r = LayerReader(iter(chunks(blob)), kind, w)
    out = bytearray()
    while data := r.read(10240):
        out += data
    r.drain()
    assert bytes(out) == TAR
    assert r.diff_id == "sha256:" + hashlib.sha256(TAR).hexdigest()
    assert r.blob_digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert r.compressed_size == len(blob) and r.size == len(TAR)
    assert w.commit(r.blob_digest, len(blob)) == r.blob_digest
    assert cs.read(r.blob_digest) == blob


def test_reader_feeds_tarfile_stream() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("f")
        ti.size = 5
        tf.addfile(ti, io.BytesIO(b"12345"))
    r = LayerReader(iter(chunks(gzip.compress(buf.getvalue()), 100)), "gzip")
    with tarfile.open(fileobj=r, mode="r|") as tf:  # type: ignore[call-overload]
        names = [m.name for m in tf]
    r.drain()
    assert names == ["f"] and r.size == len(buf.getvalue())


def test_garbage_is_a_registry_error() -> None:
    r = LayerReader(iter([b"\x1f\x8bnot gzip at all"]), "gzip")
    with pytest.raises(RegistryError, match="decompress"):
        r.read(100)


@pytest.mark.parametrize("kind", ["gzip", "xz", "bzip2"])
def test_truncated_stream_is_an_error_not_a_shorter_layer(kind: str) -> None:
    import bz2
    import lzma

    data = TAR
    packed = {"gzip": gzip.compress, "xz": lzma.compress, "bzip2": bz2.compress}[kind](data)
    r = LayerReader(iter([packed[: len(packed) // 2]]), kind, label="layer sha256:x")
    with pytest.raises(RegistryError, match="layer sha256:x is truncated"):
        r.read()
