"""The content-addressed blob store: ``<root>/blobs/sha256/<hex>``.

A blob is written to a temp file in ``<root>/blobs/tmp`` (same filesystem), and renamed to
its final name only after its size and digest were checked, so a killed writer never
leaves a partial blob under a real digest. Leftover temp files are swept by ``gc``.
"""

from __future__ import annotations

import os
import stat

from hako.errors import NotFound, RegistryError
from hako.images.reference import is_sha256_hex

TYPE_CHECKING = False  # reading a blob is on ``hako run``'s path: no hashlib, tempfile or pathlib there
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import BinaryIO


def check_digest(digest: str) -> str:
    if not digest.startswith("sha256:") or not is_sha256_hex(digest[7:]):
        raise RegistryError(f"unsupported or invalid digest {digest!r}")
    return digest[7:]


class BlobWriter:
    """Accumulates a blob in a temp file while hashing it; ``commit`` verifies and renames."""

    def __init__(self, store: ContentStore) -> None:
        import hashlib
        import tempfile
        from pathlib import Path

        self.store = store
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="blob-")
        self.path = Path(name)
        self.file: BinaryIO = os.fdopen(fd, "wb")
        self.hasher = hashlib.sha256()
        self.size = 0
        self.done = False
        self.existed = False

    def write(self, data: bytes | memoryview) -> None:
        self.hasher.update(data)
        self.file.write(data)
        self.size += len(data)

    def commit(self, digest: str | None = None, size: int | None = None) -> str:
        """Check the expected digest/size (when given) and move into place; returns the digest."""
        self.file.close()
        actual = "sha256:" + self.hasher.hexdigest()
        try:
            if size is not None and size != self.size:
                raise RegistryError(f"blob {digest or actual}: size {self.size} does not match "
                                    f"the expected {size}")
            if digest is not None and digest != actual:
                raise RegistryError(f"blob {digest}: content digest is {actual}: corrupted or tampered")
            final = self.store.path(actual)
            if final.exists():
                # Same digest, same bytes: keep the old file (its inode may be in use).
                self.existed = True
                self.path.unlink()
            else:
                os.replace(self.path, final)
        except BaseException:
            self.abort()
            raise
        self.done = True
        return actual

    def abort(self) -> None:
        if not self.done:
            self.file.close()
            self.path.unlink(missing_ok=True)
            self.done = True

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class ContentStore:
    def __init__(self, root: str | Path) -> None:
        self._root = os.fspath(root)
        self._dir = os.path.join(self._root, "blobs", "sha256")
        self._tmp_dir = os.path.join(self._root, "blobs", "tmp")
        os.makedirs(self._dir, exist_ok=True)
        os.makedirs(self._tmp_dir, exist_ok=True)

    @property
    def root(self) -> Path:
        from pathlib import Path

        return Path(self._root)

    @property
    def dir(self) -> Path:
        from pathlib import Path

        return Path(self._dir)

    @property
    def tmp_dir(self) -> Path:
        from pathlib import Path

        return Path(self._tmp_dir)

    def path(self, digest: str) -> Path:
        from pathlib import Path

        return Path(self._dir, check_digest(digest))

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def read(self, digest: str) -> bytes:
        try:
            with open(os.path.join(self._dir, check_digest(digest)), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put(self, data: bytes, digest: str | None = None) -> str:
        if digest is not None and self.has(digest):
            import hashlib

            if hashlib.sha256(data).hexdigest() != check_digest(digest):
                raise RegistryError(f"blob {digest}: content does not match its digest")
            return digest
        with self.writer() as w:
            w.write(data)
            return w.commit(digest, len(data) if digest else None)

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def digests(self) -> Iterator[str]:
        for p in self.dir.iterdir():
            if is_sha256_hex(p.name):
                yield "sha256:" + p.name

    def sweep_tmp(self, older_than: float = 3600.0) -> int:
        """Remove what writers that died left in tmp/ (blob files, and the directories of
        ``load`` and ``save``); younger entries may belong to a live pull."""
        import shutil
        import time

        n = 0
        now = time.time()
        for p in self.tmp_dir.iterdir():
            try:
                st = p.lstat()
                if now - st.st_mtime < older_than:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(p)
                else:
                    p.unlink()
                n += 1
            except FileNotFoundError:
                pass
        return n
