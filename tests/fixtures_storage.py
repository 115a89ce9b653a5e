"""Helpers for the storage tests: build layer tars with tarfile, and describe trees.

Imported by tests/unit/test_storage_*.py and tests/kernel/test_storage_*.py; its fixtures
(``mounts``) are registered in tests/conftest.py.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hako.testing.images import Entry, tar_entries

BUSYBOX = Path("/bin/busybox")

# One tar builder for every test of the project: the storage tests' short names for it.
E = Entry
tar_bytes = tar_entries


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    """Mount points to detach at teardown, whatever the test did."""
    made: list[Path] = []
    yield made
    for target in reversed(made):
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


class OneWay(io.RawIOBase):
    """A stream that cannot seek or tell, and records how much was read."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        chunk = self._data.read(n)
        self.consumed += len(chunk)
        return chunk

    def seekable(self) -> bool:
        return False


def layered_scenario() -> list[list[E]]:
    """Four layers covering whiteouts in every order, type changes and every attribute."""
    busybox = BUSYBOX.read_bytes()
    base = [
        E("bin", "dir"),
        E("bin/busybox", data=busybox, mode=0o755),
        E("bin/sh", "symlink", link="/bin/busybox"),
        E("etc", "dir"),
        E("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n"),
        E("usr", "dir"),
        E("usr/bin", "dir"),
        E("usr/bin/wget", "symlink", link="/bin/busybox"),
        E("./opt", "dir"),
        E("./opt/app", "dir"),
        E("./opt/app/config.txt", data=b"version=1\n"),
        E("./opt/app/data", "dir"),
        E("./opt/app/data/a", data=b"a\n"),
        E("./opt/app/data/b", data=b"b\n"),
        E("./opt/app/data/sub", "dir"),
        E("./opt/app/data/sub/c", data=b"c\n"),
        E("./opt/remove-me.txt", data=b"bye\n"),
        E("./opt/replace-dir", "dir"),
        E("./opt/replace-dir/old1", data=b"1"),
        E("./opt/replace-dir/sub", "dir"),
        E("./opt/replace-dir/sub/old3", data=b"3"),
        E("./opt/opq-first", "dir"),
        E("./opt/opq-first/old", data=b"old"),
        E("./opt/dir-to-file", "dir"),
        E("./opt/dir-to-file/child.txt", data=b"child"),
        E("./opt/file-to-dir", data=b"i am a file"),
        E("./opt/recreated.txt", data=b"old\n"),
        E("./opt/recreated2.txt", data=b"old2\n"),
        E("./opt/redir", "dir"),
        E("./opt/redir/lower-only", data=b"lower"),
        E("./opt/redir2", "dir"),
        E("./opt/redir2/lower-only", data=b"lower"),
        E("./opt/implicit", "dir", mode=0o711),
        E("./opt/implicit/lower-only", data=b"lower"),
        E("./opt/with space.txt", data=b"space\n"),
    ]
    whiteouts = [
        E("opt/.wh.remove-me.txt"),
        E("opt/.wh.never-existed"),
        E("opt/app/data/.wh.sub"),
        E("usr/bin/.wh.wget"),
        # opaque marker AFTER the directory's new entries
        E("opt/replace-dir/new.txt", data=b"new"),
        E("opt/replace-dir/sub", "dir"),
        E("opt/replace-dir/sub/new-sub.txt", data=b"new-sub"),
        E("opt/replace-dir/.wh..wh..opq"),
        # opaque marker BEFORE the new entries
        E("opt/opq-first/.wh..wh..opq"),
        E("opt/opq-first/new", data=b"new"),
        # whiteout AFTER the re-created file (layered:edge), and BEFORE (the usual order)
        E("opt/recreated.txt", data=b"new\n"),
        E("opt/.wh.recreated.txt"),
        E("opt/.wh.recreated2.txt"),
        E("opt/recreated2.txt", data=b"new2\n"),
        # a directory re-created, whiteout after / before
        E("opt/redir/upper-only", data=b"upper"),
        E("opt/.wh.redir"),
        E("opt/.wh.redir2"),
        E("opt/redir2", "dir", mode=0o750),
        E("opt/redir2/upper-only", data=b"upper"),
        # whiteout, then the directory comes back only as the parent of a new file
        E("opt/.wh.implicit"),
        E("opt/implicit/upper-only", data=b"upper"),
        E("opt/app/config.txt", data=b"version=2\n"),
        # type changes without whiteouts
        E("opt/dir-to-file", data=b"now a file"),
        E("opt/file-to-dir", "dir"),
        E("opt/file-to-dir/child.txt", data=b"now a dir"),
    ]
    long_dir = "opt/" + "long-directory-name-" * 4
    attrs = [
        E("opt/original.txt", data=b"shared inode\n"),
        E("opt/hardlink.txt", "hardlink", link="opt/original.txt"),
        E("opt/rel-link", "symlink", link="original.txt"),
        E("opt/abs-link", "symlink", link="/opt/original.txt"),
        E("opt/dangling", "symlink", link="/does/not/exist"),
        E("opt/dir-link", "symlink", link="app"),
        E("opt/setuid-bin", data=busybox[:4096], mode=0o4755),
        E("opt/setgid-dir", "dir", mode=0o2775, gid=50),
        E("opt/owned-by-1000.txt", data=b"mine\n", mode=0o640, uid=1000, gid=1000),
        E("home", "dir"),
        E("home/user", "dir", mode=0o750, uid=1000, gid=1000),
        E("opt/xattr.txt", data=b"x\n", xattrs={"user.hako": "test-value"}),
        E("opt/empty"),
        E("opt/ünïcödé-名前.txt", data=b"utf8\n"),
        E(long_dir, "dir"),
        E(long_dir + "/a-file-with-a-path-over-one-hundred-characters.txt", data=b"long\n"),
        E("no/parent/entry/file.txt", data=b"orphan\n"),
        E("opt/fifo", "fifo", mode=0o600),
        E("opt/null", "char", mode=0o666, major=1, minor=3),
    ]
    top = [
        E("opt/.wh.rel-link"),
        E("opt/setgid-dir/inherit.txt", data=b"in setgid dir", gid=50),
        E("opt/setgid-dir/root-owned.txt", data=b"0:0 in a setgid dir"),
        E("opt/app", "dir", mode=0o700),
        E("opt/app/config.txt", data=b"version=3\n", mode=0o600),
    ]
    return [base, whiteouts, attrs, top]


LONG_FILE = "/opt/" + "long-directory-name-" * 4 + "/a-file-with-a-path-over-one-hundred-characters.txt"


def describe(root: Path, with_dir_mtimes: bool = False) -> dict[str, tuple[object, ...]]:
    """Every entry below ``root``: type, mode, owner, size, content hash, link, user xattrs."""
    out: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = "/" + os.path.relpath(full, root)
            st = os.lstat(full)
            kind = stat.S_IFMT(st.st_mode)
            digest = ""
            link = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(Path(full).read_bytes()).hexdigest()[:16]
            elif stat.S_ISLNK(st.st_mode):
                link = os.readlink(full)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                link = f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}"
            first = ""
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                first = inodes.setdefault(st.st_ino, rel)
            try:
                xattrs = tuple(
                    sorted(
                        (n, os.getxattr(full, n, follow_symlinks=False))
                        for n in os.listxattr(full, follow_symlinks=False)
                        if n.startswith("user.")
                    )
                )
            except OSError:
                xattrs = ()
            mtime = st.st_mtime_ns if (with_dir_mtimes or not stat.S_ISDIR(st.st_mode)) else 0
            size = st.st_size if not stat.S_ISDIR(st.st_mode) else 0
            out[rel] = (
                kind,
                oct(stat.S_IMODE(st.st_mode)),
                st.st_uid,
                st.st_gid,
                size,
                digest,
                link,
                first,
                xattrs,
                mtime,
            )
    return out
