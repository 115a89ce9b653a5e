"""One pass over a layer blob: hash it, keep it, decompress it, hash the tar, unpack it.

``LayerReader`` is the file object handed to the tar extractor (which reads it
sequentially); each compressed chunk pulled from the source is hashed (the blob digest),
written to the content store's temp file, decompressed, and the tar bytes hashed (the
diff_id) before the extractor sees them. No byte is read twice or stored twice.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from hako.errors import RegistryError
from hako.images.content import BlobWriter


class _Identity:
    eof = False
    unused_data = b""

    def decompress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class _Gzip:
    """Multi-member gzip (``cat a.gz b.gz`` is valid) via zlib with the gzip header."""

    def __init__(self) -> None:
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def decompress(self, data: bytes) -> bytes:
        out = self.d.decompress(data)
        while self.d.eof and self.d.unused_data:
            rest = self.d.unused_data
            self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += self.d.decompress(rest)
        return out

    def flush(self) -> bytes:
        return self.d.flush()

    @property
    def eof(self) -> bool:
        return bool(self.d.eof)


def decompressor(kind: str) -> Any:
    if kind == "gzip":
        return _Gzip()
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj(read_across_frames=True)
    if kind == "xz":
        import lzma

        return lzma.LZMADecompressor()
    if kind == "bzip2":
        import bz2

        return bz2.BZ2Decompressor()
    if kind == "none":
        return _Identity()
    raise RegistryError(f"unsupported layer compression {kind!r}")


class LayerReader:
    """A read-only, sequential file object over the decompressed layer."""

    def __init__(self, chunks: Iterator[bytes], compression: str, blob: BlobWriter | None = None,
                 on_bytes: Callable[[int], None] | None = None, label: str = "layer") -> None:
        self._chunks = chunks
        self._label = label
        self._d = decompressor(compression)
        # These formats mark their end; zstd's decompressobj does not say across frames.
        self._check_end = compression in ("gzip", "xz", "bzip2")
        self._compression = compression
        self._blob = blob
        self._on_bytes = on_bytes
        # With a blob writer, its hasher is the blob digest: hash each byte once.
        self.blob_hash = blob.hasher if blob is not None else hashlib.sha256()
        self.diff_hash = hashlib.sha256()
        self.compressed_size = 0
        self.size = 0
        self._buf = b""
        self._pos = 0
        self._eof = False

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if not chunk:
                continue
            self.compressed_size += len(chunk)
            if self._blob is not None:
                self._blob.write(chunk)
            else:
                self.blob_hash.update(chunk)
            if self._on_bytes is not None:
                self._on_bytes(len(chunk))
            try:
                out = self._d.decompress(chunk)
            except Exception as exc:  # zlib.error, zstd.ZstdError, lzma.LZMAError ...
                raise RegistryError(f"{self._label} does not decompress (corrupted or tampered): {exc}") from None
            if out:
                self._push(out)
                return True
        if not self._eof:
            self._eof = True
            tail = self._d.flush() if hasattr(self._d, "flush") else b""
            if self._check_end and not self._d.eof:
                raise RegistryError(f"{self._label} is truncated (corrupted or tampered): its "
                                    f"{self._compression} stream ends early")
            if tail:
                self._push(tail)
                return True
        return False

    def _push(self, out: bytes) -> None:
        self.diff_hash.update(out)
        self.size += len(out)
        if self._pos >= len(self._buf):
            self._buf, self._pos = out, 0
        else:
            self._buf = self._buf[self._pos:] + out
            self._pos = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [self._buf[self._pos:]]
            self._buf, self._pos = b"", 0
            while self._fill():
                parts.append(self._buf)
                self._buf, self._pos = b"", 0
            return b"".join(parts)
        while len(self._buf) - self._pos < n:
            if not self._fill():
                break
        out = self._buf[self._pos:self._pos + n]
        self._pos += len(out)
        return out

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Consume what the extractor left (tar's end-of-archive padding) so the hashes cover it all."""
        self._buf, self._pos = b"", 0
        while self._fill():
            self._buf, self._pos = b"", 0

    @property
    def blob_digest(self) -> str:
        return "sha256:" + self.blob_hash.hexdigest()

    @property
    def diff_id(self) -> str:
        return "sha256:" + self.diff_hash.hexdigest()
