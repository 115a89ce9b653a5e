"""Streamed unpacking of one image layer tar, with OCI whiteouts and hostile-archive checks.

The tar is read once, front to back (the caller feeds a decompressing, hashing reader that
cannot seek). Two modes:

* overlay (``overlay_whiteouts=True``): ``dest`` is an empty directory that becomes one
  overlayfs lower layer. ``.wh.NAME`` becomes a 0/0 character device and ``.wh..wh..opq``
  the ``trusted.overlay.opaque=y`` xattr, which is what overlayfs reads.
* apply (``overlay_whiteouts=False``): ``dest`` is a merged tree (the copying fallback or
  an export) and whiteouts delete what lower layers left there.

OCI says whiteouts only hide what LOWER layers made; what this layer writes stays, wherever
the marker sits in the tar. So the extractor remembers every path this layer created
(``_mine``) and never lets a marker of the same layer remove it, which makes the result
independent of entry order (``layered:edge`` puts ``.wh.X`` after the re-created X).

Safety: every entry name is cleaned lexically (a leading ``/`` is dropped like Docker does,
``..`` that climbs above the root is refused), and parents are opened one component at a
time with O_NOFOLLOW from a descriptor of ``dest``; every create, link and removal is an
``*at`` call on that parent descriptor that does not follow the last component. So no entry
is ever written through a symlink, whether this layer or (in apply mode) an earlier one
planted it: such entries are refused with an error naming them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import struct
import tarfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from hako.errors import HakoError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
# aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): never content, never a whiteout.
AUFS_META_PREFIX = ".wh..wh."
OPAQUE_XATTR = "trusted.overlay.opaque"
# Marks directories an overlay layer made only as parents of its entries, while the lower
# layers were not at hand; fix_implicit_dirs() gives them the lower layers' attributes later.
IMPLICIT_XATTR = "trusted.hako.implicit"
PAX_XATTR_PREFIX = "SCHILY.xattr."
# A layer must not steer overlayfs (redirects, metacopy, opaque) nor our own bookkeeping.
FORBIDDEN_XATTRS = ("trusted.overlay.", "user.overlay.", "trusted.hako.")

# Deeper trees would only serve to exhaust recursion in tools that walk them (ours too).
MAX_DEPTH = 400

_CHUNK = 1 << 20
_DIR_CACHE = 128
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_NEWFILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class LayerError(HakoError):
    """A layer could not be unpacked; the message names the tar entry."""

    def __init__(self, entry: str, message: str) -> None:
        self.entry = entry
        super().__init__(f"layer entry {entry!r}: {message}")


class UnsafeLayerError(LayerError):
    """The layer tries to write outside its destination, or holds what is not allowed."""


@dataclass
class LayerStats:
    entries: int = 0
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    devices: int = 0
    fifos: int = 0
    whiteouts: int = 0
    opaques: int = 0
    bytes: int = 0


def clean_path(name: str, entry: str | None = None) -> str:
    """Return ``name`` as a relative path inside the layer root ('' for the root itself).

    A leading '/' is dropped and '.' components vanish; '..' is resolved lexically and
    refused when it would climb above the root.
    """
    # Most names are already clean ("usr/lib/x.so"): no '.'-led, empty or trailing parts.
    if (
        name
        and name[0] not in "/."
        and name[-1] != "/"
        and "//" not in name
        and "/." not in name
        and "\0" not in name
        and name.count("/") < MAX_DEPTH
    ):
        return name
    parts: list[str] = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                what = "path" if entry is None else f"link target {name!r}"
                raise UnsafeLayerError(entry or name, f"{what} escapes the layer root")
            parts.pop()
            continue
        if "\0" in comp:
            raise UnsafeLayerError(entry or name, "NUL byte in name")
        parts.append(comp)
    if len(parts) > MAX_DEPTH:
        raise UnsafeLayerError(entry or name, f"path nested deeper than {MAX_DEPTH} directories")
    return "/".join(parts)


def whiteout_target(base: str, entry: str) -> str | None:
    """The sibling name a ``.wh.NAME`` entry hides, or None for opaque/aufs markers.

    Raises for the markers that would name the directory itself or its parent.
    """
    victim = base[len(WHITEOUT_PREFIX) :]
    if victim in ("", ".", ".."):
        raise UnsafeLayerError(entry, "whiteout names no sibling")
    return victim


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent, name


def _is_root() -> bool:
    return os.geteuid() == 0


def _current_umask() -> int:
    # Reading it with os.umask() would briefly change it for every thread of the process.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


class _Source:
    """A forward-only reader with ``tell`` and forward ``seek`` over a non-seekable stream.

    tarfile's ``r|`` mode reads through a 10 KiB record buffer; this one buffers 1 MiB and
    lets file data bypass the buffer, so big files are copied with few large reads.
    """

    __slots__ = ("_raw", "_buf", "_off", "_pos")

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._buf = b""
        self._off = 0
        self._pos = 0

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self._pos:
            raise OSError(errno.ESPIPE, "layer stream can only be read forward")
        self.skip(pos - self._pos)
        return self._pos

    def skip(self, n: int) -> None:
        while n > 0:
            avail = len(self._buf) - self._off
            if avail == 0:
                if not self._refill():
                    return
                continue
            take = min(avail, n)
            self._off += take
            self._pos += take
            n -= take

    def _refill(self) -> bool:
        chunk = self._raw.read(_CHUNK)
        self._buf = chunk or b""
        self._off = 0
        return bool(chunk)

    def read(self, n: int = -1) -> bytes:
        buf, off = self._buf, self._off
        end = off + n
        if 0 <= n and end <= len(buf):
            self._off = end
            self._pos += n
            return buf[off:end]
        parts = [buf[off:]]
        have = len(buf) - off
        self._buf, self._off = b"", 0
        while n < 0 or have < n:
            chunk = self._raw.read(_CHUNK if n < 0 else max(_CHUNK, n - have))
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        if 0 <= n < len(data):
            self._buf, self._off = data, n
            data = data[:n]
        self._pos += len(data)
        return data

    def copy_to_fd(self, fd: int, n: int) -> int:
        """Write the next ``n`` bytes to ``fd``; returns how many the stream had."""
        done = 0
        avail = len(self._buf) - self._off
        if avail:
            take = min(avail, n)
            _write_all(fd, memoryview(self._buf)[self._off : self._off + take])
            self._off += take
            done = take
        while done < n:
            chunk = self._raw.read(min(_CHUNK, n - done))
            if not chunk:
                break
            _write_all(fd, chunk)
            done += len(chunk)
        self._pos += done
        return done


# Entry kinds, as ustar type flags.
_REG, _LNK, _SYM, _CHR, _BLK, _DIR, _FIFO = b"0", b"1", b"2", b"3", b"4", b"5", b"6"
_FAST_TYPES = frozenset((b"0", b"\0", b"7", b"1", b"2", b"3", b"4", b"5", b"6"))
_POSIX_MAGIC = b"ustar\x0000"
_ZERO_BLOCK = bytes(512)
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")
_EMPTY: dict[str, str] = {}


class _Member:
    """What the extractor needs of one tar entry (TarInfo is much slower to build)."""

    __slots__ = (
        "name",
        "kind",
        "mode",
        "uid",
        "gid",
        "size",
        "mtime",
        "linkname",
        "devmajor",
        "devminor",
        "pax_headers",
        "next_offset",
    )

    name: str
    kind: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime: float
    linkname: str
    devmajor: int
    devminor: int
    pax_headers: dict[str, str]
    next_offset: int


def _octal(field: bytes) -> int:
    # int() allows surrounding whitespace; anything odd (a NUL inside) raises and the
    # header goes to tarfile, which cuts at the first NUL.
    return int(field.rstrip(b"\0 ") or b"0", 8)


class _HeaderReader:
    """Reads tar headers: plain ustar ones by a fast path, anything else through tarfile.

    The slow path (PAX, GNU long names, base-256 numbers, odd checksums) hands the header
    to ``tarfile.TarInfo`` so its many formats are parsed by the standard library; the
    attributes tarfile's ``_proc_*`` methods read from their TarFile are provided here.
    """

    def __init__(self, src: _Source) -> None:
        self.fileobj = src
        self.encoding = "utf-8"
        self.errors = "surrogateescape"
        self.pax_headers: dict[str, str] = {}
        self.offset = 0

    def next(self) -> _Member | None:
        src = self.fileobj
        start = src.tell()
        buf = src.read(512)
        if len(buf) < 512:
            if not buf:
                return None  # no end-of-archive blocks: tolerated like tar does
            raise LayerError("", f"tar truncated in a header at offset {start}")
        if buf == _ZERO_BLOCK:
            return None
        if buf[257:265] == _POSIX_MAGIC and buf[156:157] in _FAST_TYPES and not self.pax_headers:
            m = self._fast(buf, start)
            if m is not None:
                return m
        return self._slow(buf, start)

    def _fast(self, buf: bytes, start: int) -> _Member | None:
        (name, mode, uid, gid, size, mtime, chksum, kind, linkname, _magic, _u, _g, major, minor, prefix) = (
            _HEADER.unpack(buf)
        )
        try:
            # the checksum field itself counts as eight spaces
            if _octal(chksum) != sum(buf) - sum(chksum) + 256:
                return None
            m = _Member()
            m.mode = _octal(mode)
            m.uid = _octal(uid)
            m.gid = _octal(gid)
            m.size = _octal(size)
            m.mtime = _octal(mtime)
            if kind in (_CHR, _BLK):
                m.devmajor = _octal(major)
                m.devminor = _octal(minor)
            else:
                m.devmajor = m.devminor = 0
        except ValueError:
            return None  # base-256 numbers and the like: tarfile knows them
        n = name.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        if prefix[0]:
            n = prefix.split(b"\0", 1)[0].decode("utf-8", "surrogateescape") + "/" + n
        if kind in (b"\0", b"7"):
            kind = _DIR if n.endswith("/") and kind == b"\0" else _REG
        if kind == _DIR:
            n = n.rstrip("/") or n
        m.name = n
        m.kind = kind
        m.linkname = linkname.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        m.pax_headers = _EMPTY
        data = start + 512
        m.next_offset = data + ((m.size + 511) & ~511 if kind == _REG else 0)
        return m

    def _slow(self, buf: bytes, start: int) -> _Member:
        try:
            info = tarfile.TarInfo.frombuf(buf, self.encoding, self.errors)
            info.offset = start
            info = info._proc_member(self)  # type: ignore[attr-defined]
        except tarfile.HeaderError as e:
            raise LayerError("", f"corrupt tar header at offset {start}: {e}") from e
        except tarfile.TarError as e:
            raise LayerError("", f"corrupt tar at offset {start}: {e}") from e
        m = _Member()
        m.name = info.name
        if info.sparse is not None:
            raise LayerError(info.name, "sparse files are not supported")
        if info.isreg():
            m.kind = _REG
        elif info.type in (_LNK, _SYM, _CHR, _BLK, _DIR, _FIFO):
            m.kind = info.type
        else:
            raise LayerError(info.name, f"unsupported tar entry type {info.type!r}")
        m.mode = info.mode
        m.uid = info.uid
        m.gid = info.gid
        m.size = info.size
        m.mtime = info.mtime
        m.linkname = info.linkname
        m.devmajor = info.devmajor
        m.devminor = info.devminor
        m.pax_headers = info.pax_headers
        m.next_offset = self.offset  # tarfile's _proc_builtin put the next header's offset here
        return m


def _write_all(fd: int, data: bytes | memoryview) -> None:
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)
        while written < len(view):
            written += os.write(fd, view[written:])


class _Extractor:
    def __init__(
        self, src: _Source, dest: Path, overlay: bool, allow_devices: bool, lowers: Sequence[Path] = ()
    ) -> None:
        self.src = src
        self.dest = dest
        self.overlay = overlay
        self.allow_devices = allow_devices
        self.root = _is_root()
        self.umask = _current_umask()
        self.stats = LayerStats()
        try:
            self.root_fd = os.open(dest, _O_DIR)
        except OSError as e:
            raise HakoError(f"{dest}: cannot unpack a layer here: {e.strerror}") from e
        self.dirs: OrderedDict[str, int] = OrderedDict()
        self.dirs[""] = self.root_fd
        self.sgid_dirs: set[str] = set()
        self._note_sgid("", os.fstat(self.root_fd).st_mode)
        # Files we create belong to us; chown is needed only for other owners (or in setgid dirs).
        self.owner_is_root = self.root and os.getegid() == 0
        # Paths this layer created, explicitly or as implicit parents: never whited out by it.
        self.mine: set[str] = {""}
        # Overlay mode: whiteout devices this layer made (a re-created dir there is opaque).
        self.whited: set[str] = set()
        self.dir_times: list[tuple[str, int]] = []
        self.entry = ""
        self.lower_fds: list[int] = []
        self.implicit: set[str] = set()
        if overlay:
            for lower in lowers:
                try:
                    self.lower_fds.append(os.open(lower, _O_DIR))
                except OSError as e:
                    self.close()
                    raise HakoError(f"{lower}: lower layer not readable: {e.strerror}") from e

    def close(self) -> None:
        for fd in self.dirs.values():
            os.close(fd)
        self.dirs.clear()
        for fd in self.lower_fds:
            os.close(fd)
        self.lower_fds.clear()

    def _lower_dir(self, path: str) -> os.stat_result | None:
        return lower_dir_stat(self.lower_fds, path)

    # -- directory descriptors -------------------------------------------------------

    def dir_fd(self, path: str, create: bool = True) -> int | None:
        """A descriptor of directory ``path`` reached without following any symlink.

        Missing directories are created (0755, root) when ``create``; otherwise None.
        """
        dirs = self.dirs
        fd = dirs.get(path)
        if fd is not None:
            dirs.move_to_end(path)
            if create and path not in self.mine:
                self._claim(path)
            return fd
        # Walk down from the deepest directory already open (the root always is).
        missing = [path]
        parent = _split(path)[0]
        while parent not in dirs:
            missing.append(parent)
            parent = _split(parent)[0]
        pfd = dirs[parent]
        if create and parent not in self.mine:
            self._claim(parent)
        for sub in reversed(missing):
            child = self._open_child(pfd, sub, create)
            if child is None:
                return None
            pfd = child
        return pfd

    def _open_child(self, pfd: int, path: str, create: bool) -> int | None:
        name = _split(path)[1]
        try:
            fd = os.open(name, _O_DIR, dir_fd=pfd)
            if create:
                self.mine.add(path)
        except FileNotFoundError:
            if not create:
                return None
            fd = self._mkdir_implicit(pfd, path, name)
        except OSError as e:
            if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                raise UnsafeLayerError(
                    self.entry, f"parent {path!r} is a symlink; refusing to follow it"
                ) from None
            if not create:
                return None
            # A non-directory where this entry needs a directory: the layer replaces it.
            os.unlink(name, dir_fd=pfd)
            fd = self._mkdir_implicit(pfd, path, name)
        self._cache(path, fd)
        return fd

    def _claim(self, path: str) -> None:
        # A directory this layer writes into is this layer's too, as in overlay mode where
        # it is created in the layer's own dir: a later whiteout of it only hides lower content.
        while path not in self.mine:
            self.mine.add(path)
            path = _split(path)[0]

    def _mkdir_implicit(self, pfd: int, path: str, name: str) -> int:
        os.mkdir(name, 0o755, dir_fd=pfd)
        fd = os.open(name, _O_DIR, dir_fd=pfd)
        uid = gid = 0
        mode = 0o755
        # In an overlay layer this directory hides the lower one's attributes: copy them,
        # so the merged view matches applying the layer onto the lower tree.
        lower = self._lower_dir(path) if self.lower_fds and path not in self.whited else None
        if self.overlay and not self.lower_fds and path not in self.whited:
            self.implicit.add(path)
        if lower is not None:
            uid, gid, mode = lower.st_uid, lower.st_gid, stat.S_IMODE(lower.st_mode)
            self.dir_times.append((path, lower.st_mtime_ns))
        if self.root:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        self.mine.add(path)
        if path in self.whited:
            self.whited.discard(path)
            os.setxattr(fd, OPAQUE_XATTR, b"y")
        return fd

    def _note_sgid(self, path: str, mode: int) -> None:
        # New files take a setgid directory's group: only there must a 0:0 file be chowned.
        if mode & stat.S_ISGID:
            self.sgid_dirs.add(path)
        else:
            self.sgid_dirs.discard(path)

    def _cache(self, path: str, fd: int) -> None:
        dirs = self.dirs
        old = dirs.pop(path, None)
        if old is not None and old != fd:
            os.close(old)
        dirs[path] = fd
        self._note_sgid(path, os.fstat(fd).st_mode)
        if len(dirs) > _DIR_CACHE:
            for victim in list(dirs)[: len(dirs) - _DIR_CACHE]:
                if victim == "":
                    continue
                os.close(dirs.pop(victim))

    def _forget(self, path: str) -> None:
        """Drop cached descriptors of ``path`` and everything below it (it was removed)."""
        prefix = path + "/"
        for p in [p for p in self.dirs if p == path or p.startswith(prefix) or path == ""]:
            if p == "":
                continue
            os.close(self.dirs.pop(p))

    def _remove(self, pfd: int, path: str, name: str) -> bool:
        """Remove ``name`` (any type, directories recursively) without following symlinks."""
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            self._forget(path)
            shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)
        return True

    # -- entries ----------------------------------------------------------------------

    def run(self, reader: _HeaderReader) -> None:
        while True:
            m = reader.next()
            if m is None:
                break
            self.entry = m.name
            try:
                self.one(m)
            except HakoError:
                raise
            except OSError as e:
                raise LayerError(m.name, e.strerror or str(e)) from e
            # Skip the member's padding (or data this entry type does not use).
            self.src.seek(m.next_offset)
        self.entry = ""
        self.finish_dirs()

    def one(self, m: _Member) -> None:
        self.stats.entries += 1
        path = clean_path(m.name)
        parent, name = _split(path)
        if name.startswith(WHITEOUT_PREFIX):
            self.whiteout(parent, name)
            return
        kind = m.kind
        if kind == _REG:
            self.regular(m, path, parent, name)
        elif kind == _DIR:
            self.directory(m, path, parent, name)
        elif kind == _SYM:
            self.symlink(m, path, parent, name)
        elif kind == _LNK:
            self.hardlink(m, path, parent, name)
        elif kind in (_CHR, _BLK, _FIFO):
            self.special(m, path, parent, name)
        else:
            raise LayerError(m.name, f"unsupported tar entry type {kind!r}")

    def regular(self, m: _Member, path: str, parent: str, name: str) -> None:
        if not name:
            raise UnsafeLayerError(m.name, "a file cannot replace the layer root")
        pfd = self.dir_fd(parent)
        assert pfd is not None
        perm = m.mode & 0o777
        try:
            fd = os.open(name, _O_NEWFILE, perm, dir_fd=pfd)
        except FileExistsError:
            self._replace(pfd, path, name)
            fd = os.open(name, _O_NEWFILE, perm, dir_fd=pfd)
        try:
            size = m.size
            if size:
                got = self.src.copy_to_fd(fd, size)
                if got != size:
                    raise LayerError(m.name, f"tar ends inside the file ({got} of {size} bytes)")
            self._meta_fd(fd, m, parent)
        finally:
            os.close(fd)
        self.mine.add(path)
        self.stats.files += 1
        self.stats.bytes += m.size

    def _replace(self, pfd: int, path: str, name: str) -> None:
        self._remove(pfd, path, name)
        self.whited.discard(path)

    def _meta_fd(self, fd: int, m: _Member, parent: str) -> None:
        if self.root and (m.uid or m.gid or not self.owner_is_root or parent in self.sgid_dirs):
            os.fchown(fd, m.uid, m.gid)
        mode = m.mode & 0o7777
        # chown clears setuid/setgid, so the mode goes after it; skip it when open() got it right.
        if mode != (mode & 0o777 & ~self.umask):
            os.fchmod(fd, mode)
        if m.pax_headers:
            self._xattrs_fd(fd, m)
        mtime = int(m.mtime * 1_000_000_000)
        os.utime(fd, ns=(mtime, mtime))

    def _xattr_items(self, m: _Member) -> list[tuple[str, bytes]]:
        out = []
        for key, value in m.pax_headers.items():
            if not key.startswith(PAX_XATTR_PREFIX):
                continue
            attr = key[len(PAX_XATTR_PREFIX) :]
            if attr.startswith(FORBIDDEN_XATTRS):
                continue
            out.append((attr, value.encode("utf-8", "surrogateescape")))
        return out

    def _xattrs_fd(self, fd: int, m: _Member) -> None:
        for attr, value in self._xattr_items(m):
            try:
                os.setxattr(fd, attr, value)
            except OSError as e:
                if e.errno in (errno.ENOTSUP, errno.EPERM) and not attr.startswith("user."):
                    continue  # trusted.*/security.* without privilege: what tar does too
                raise LayerError(m.name, f"setting xattr {attr}: {e.strerror}") from e

    def directory(self, m: _Member, path: str, parent: str, name: str) -> None:
        if not name:
            fd = self.root_fd
        else:
            pfd = self.dir_fd(parent)
            assert pfd is not None
            opaque = False
            try:
                os.mkdir(name, 0o700, dir_fd=pfd)
            except FileExistsError:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    opaque = self.overlay and path in self.whited
                    self._replace(pfd, path, name)
                    os.mkdir(name, 0o700, dir_fd=pfd)
            fd = os.open(name, _O_DIR, dir_fd=pfd)
            self._cache(path, fd)
            if opaque:
                os.setxattr(fd, OPAQUE_XATTR, b"y")
        if self.root:
            os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, m.mode & 0o7777)
        self._note_sgid(path, m.mode)
        if m.pax_headers:
            self._xattrs_fd(fd, m)
        self.mine.add(path)
        self.implicit.discard(path)
        self.dir_times.append((path, int(m.mtime * 1_000_000_000)))
        self.stats.dirs += 1

    def symlink(self, m: _Member, path: str, parent: str, name: str) -> None:
        if not name:
            raise UnsafeLayerError(m.name, "a symlink cannot replace the layer root")
        pfd = self.dir_fd(parent)
        assert pfd is not None
        # The target may point anywhere: it is never followed while unpacking.
        try:
            os.symlink(m.linkname, name, dir_fd=pfd)
        except FileExistsError:
            self._replace(pfd, path, name)
            os.symlink(m.linkname, name, dir_fd=pfd)
        self._meta_path(pfd, name, m, chmod=False)
        self.mine.add(path)
        self.stats.symlinks += 1

    def _meta_path(self, pfd: int, name: str, m: _Member, chmod: bool) -> None:
        if self.root:
            os.chown(name, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        if chmod:
            os.chmod(name, m.mode & 0o7777, dir_fd=pfd, follow_symlinks=False)
        for attr, value in self._xattr_items(m) if m.pax_headers else ():
            target = f"/proc/self/fd/{pfd}/{name}"
            try:
                os.setxattr(target, attr, value, follow_symlinks=False)
            except OSError as e:
                if e.errno in (errno.ENOTSUP, errno.EPERM):
                    continue  # user.* is not allowed on symlinks and devices
                raise LayerError(m.name, f"setting xattr {attr}: {e.strerror}") from e
        mtime = int(m.mtime * 1_000_000_000)
        os.utime(name, ns=(mtime, mtime), dir_fd=pfd, follow_symlinks=False)

    def hardlink(self, m: _Member, path: str, parent: str, name: str) -> None:
        target = clean_path(m.linkname, m.name)
        if not name or not target:
            raise UnsafeLayerError(m.name, "hardlink to or from the layer root")
        if target == path:
            raise LayerError(m.name, "hardlink to itself")
        if target in self.whited:
            raise LayerError(m.name, f"hardlink target {m.linkname!r} was whited out")
        tparent, tname = _split(target)
        tfd = self.dir_fd(tparent, create=False)
        if tfd is None:
            raise LayerError(m.name, f"hardlink target {m.linkname!r} does not exist")
        # Resolving the link's own parent may evict tfd from the cache: keep a copy.
        tfd = os.dup(tfd)
        try:
            self._link(m, path, parent, name, tfd, tname)
        finally:
            os.close(tfd)

    def _link(self, m: _Member, path: str, parent: str, name: str, tfd: int, tname: str) -> None:
        pfd = self.dir_fd(parent)
        assert pfd is not None
        try:
            st = os.stat(tname, dir_fd=tfd, follow_symlinks=False)
        except FileNotFoundError:
            raise LayerError(m.name, f"hardlink target {m.linkname!r} does not exist") from None
        if stat.S_ISDIR(st.st_mode):
            raise UnsafeLayerError(m.name, f"hardlink target {m.linkname!r} is a directory")
        try:
            os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileExistsError:
            cur = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if (cur.st_dev, cur.st_ino) == (st.st_dev, st.st_ino):
                return
            self._replace(pfd, path, name)
            os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        self.mine.add(path)
        self.stats.hardlinks += 1

    def special(self, m: _Member, path: str, parent: str, name: str) -> None:
        if not name:
            raise UnsafeLayerError(m.name, "a device cannot replace the layer root")
        if m.kind == _FIFO:
            kind, dev = stat.S_IFIFO, 0
        else:
            if not self.allow_devices:
                raise UnsafeLayerError(m.name, "device nodes are not allowed in this layer")
            kind = stat.S_IFCHR if m.kind == _CHR else stat.S_IFBLK
            dev = os.makedev(m.devmajor, m.devminor)
        pfd = self.dir_fd(parent)
        assert pfd is not None
        try:
            os.mknod(name, kind | 0o600, dev, dir_fd=pfd)
        except FileExistsError:
            self._replace(pfd, path, name)
            os.mknod(name, kind | 0o600, dev, dir_fd=pfd)
        self._meta_path(pfd, name, m, chmod=True)
        self.mine.add(path)
        if m.kind == _FIFO:
            self.stats.fifos += 1
        else:
            self.stats.devices += 1

    # -- whiteouts --------------------------------------------------------------------

    def whiteout(self, parent: str, base: str) -> None:
        if base == OPAQUE_MARKER:
            self.stats.opaques += 1
            self.opaque(parent)
            return
        if base.startswith(AUFS_META_PREFIX):
            return
        victim = whiteout_target(base, self.entry)
        assert victim is not None
        path = f"{parent}/{victim}" if parent else victim
        self.stats.whiteouts += 1
        if path in self.mine:
            # This layer made it: the marker only hides what lower layers had below it.
            fd = self.dir_fd(parent, create=False)
            if fd is None:
                return
            try:
                st = os.stat(victim, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if stat.S_ISDIR(st.st_mode):
                self.opaque(path)
            return
        if self.overlay:
            pfd = self.dir_fd(parent)
            assert pfd is not None
            try:
                os.mknod(victim, stat.S_IFCHR | 0o600, 0, dir_fd=pfd)
            except FileExistsError:
                pass  # a second marker for the same name
            self.whited.add(path)
        else:
            pfd = self.dir_fd(parent, create=False)
            if pfd is not None:
                self._remove(pfd, path, victim)

    def opaque(self, path: str) -> None:
        if self.overlay:
            fd = self.dir_fd(path)
            assert fd is not None
            os.setxattr(fd, OPAQUE_XATTR, b"y")
            return
        fd = self.dir_fd(path, create=False)
        if fd is not None:
            # Our own descriptors: the cache may close its ones while we walk down.
            self._clear_lower(os.dup(fd), path)

    def _clear_lower(self, fd: int, path: str) -> None:
        """Apply mode: remove everything under ``path`` that this layer did not create.

        Takes ownership of ``fd``.
        """
        try:
            for name in os.listdir(fd):
                child = f"{path}/{name}" if path else name
                if child not in self.mine:
                    self._remove(fd, child, name)
                    continue
                try:
                    cfd = os.open(name, _O_DIR, dir_fd=fd)
                except OSError:
                    continue  # this layer's own non-directory: it stays
                self._clear_lower(cfd, child)
        finally:
            os.close(fd)

    def _existing_dir(self, path: str) -> int | None:
        try:
            return self.dir_fd(path, create=False)
        except UnsafeLayerError:
            return None  # replaced by a symlink later in the layer

    def finish_dirs(self) -> None:
        if self.implicit and self.root:
            marked = 0
            for path in self.implicit:
                fd = self._existing_dir(path)
                if fd is not None:
                    os.setxattr(fd, IMPLICIT_XATTR, b"y")
                    marked += 1
            if marked:
                os.setxattr(self.root_fd, IMPLICIT_XATTR, b"y")
        # Children change their parent's mtime, so directories get theirs last.
        for path, mtime in self.dir_times:
            fd = self._existing_dir(path)
            if fd is not None:
                os.utime(fd, ns=(mtime, mtime))


def lower_dir_stat(lower_fds: Sequence[int], path: str) -> os.stat_result | None:
    """The stat of directory ``path`` as the lower layers (descriptors, top first) show it.

    Walked with O_NOFOLLOW like everything else; a non-directory on the way (a whiteout,
    a file, a symlink) or an opaque directory hides whatever the layers below hold.
    """
    for root in lower_fds:
        fd = os.dup(root)
        hidden = False
        try:
            for comp in path.split("/"):
                try:
                    nfd = os.open(comp, _O_DIR, dir_fd=fd)
                except FileNotFoundError:
                    break
                except OSError:
                    hidden = True
                    break
                os.close(fd)
                fd = nfd
                try:
                    hidden = hidden or os.getxattr(fd, OPAQUE_XATTR) == b"y"
                except OSError:
                    pass
            else:
                return os.fstat(fd)
        finally:
            os.close(fd)
        if hidden:
            return None
    return None


def _has_xattr(path: str, name: str) -> bool:
    try:
        os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return False
    return True


def has_implicit_dirs(layer: Path) -> bool:
    """Whether overlay layer ``layer`` still waits for ``fix_implicit_dirs``."""
    return _has_xattr(str(layer), IMPLICIT_XATTR)


def fix_implicit_dirs(layer: Path, lowers: Sequence[Path]) -> int:
    """Give the implicit directories of overlay layer ``layer`` their lower attributes.

    ``lowers`` are the layer dirs below it, top first, all present. Does nothing (one
    getxattr) for layers without implicit directories; safe to run twice or concurrently.
    Returns how many directories were fixed.
    """
    if not has_implicit_dirs(layer):
        return 0
    fds: list[int] = []
    fixed = 0
    try:
        for lower in lowers:
            fds.append(os.open(lower, _O_DIR))
        for dirpath, _dirnames, _files in os.walk(layer):
            if dirpath == str(layer) or not _has_xattr(dirpath, IMPLICIT_XATTR):
                continue
            rel = os.path.relpath(dirpath, layer)
            st = lower_dir_stat(fds, rel)
            if st is not None:
                os.chown(dirpath, st.st_uid, st.st_gid, follow_symlinks=False)
                os.chmod(dirpath, stat.S_IMODE(st.st_mode))
                os.utime(dirpath, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            with contextlib.suppress(OSError):
                os.removexattr(dirpath, IMPLICIT_XATTR, follow_symlinks=False)
            fixed += 1
        with contextlib.suppress(OSError):
            os.removexattr(layer, IMPLICIT_XATTR)
    finally:
        for fd in fds:
            os.close(fd)
    return fixed


def apply_layer(
    tar_stream: BinaryIO,
    dest: Path,
    *,
    overlay_whiteouts: bool = True,
    allow_devices: bool = True,
    lowers: Sequence[Path] = (),
) -> LayerStats:
    """Unpack an uncompressed layer tar read sequentially from ``tar_stream`` into ``dest``.

    The stream is read to its end, so a hashing reader sees every byte. Raises LayerError
    (UnsafeLayerError for hostile entries) naming the entry; nothing is written outside
    ``dest``.

    ``lowers`` (overlay mode only, optional): the layer dirs below this one, top first.
    Directories this layer creates only as parents of its entries then take their
    attributes from the lower layers instead of 0755 root (what apply mode keeps).
    Without them (layers unpacked in parallel), such directories are marked and the
    snapshotter fixes them with ``fix_implicit_dirs`` once the whole stack is present.
    """
    src = _Source(tar_stream)
    ex = _Extractor(src, Path(dest), overlay_whiteouts, allow_devices, lowers)
    try:
        try:
            ex.run(_HeaderReader(src))
        except RecursionError as e:
            raise LayerError(ex.entry, "tree too deep to process") from e
        src.skip(1 << 62)
    finally:
        ex.close()
    return ex.stats
