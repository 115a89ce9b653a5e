"""The snapshotter: unpacked layers by chain id, and container root filesystems over them.

Layout under ``root``::

    layers/<chain>/     one layer in overlayfs format (whiteout devices, opaque xattrs)
    l/<short>           -> ../layers/<chain>: short lowerdir paths, so more layers fit
                        in the one page of mount options
    flat/<short>/       bottom layers merged into one tree (hardlinks), for stacks that
                        do not fit even with short paths; keyed by the top chain id merged
    containers/<key>/   upper/ and work/ (overlay) or rootfs/ (the copying "vfs" driver)
    tmp/                layers and flattened trees being built; renamed into place

Snapshotters only describe mounts (``MountSpec``); the engine's runtime performs them.
"""

from __future__ import annotations

import _sha256
import errno
import os
import stat

from hako.errors import Conflict, HakoError, KernelError, NotFound
from hako.storage import overlay
from hako.storage.overlay import MountSpec
from hako.sys import ffi
from hako.sys.libc import LIBC

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager
    from pathlib import Path

__all__ = ["MountSpec", "Snapshotter"]

# ``hako run`` prepares, mounts and removes a container's snapshot on its critical path: those
# methods work on strings and import no pathlib, re, hashlib (OpenSSL), base64, uuid, contextlib,
# shutil or the layer unpacker; the others keep returning pathlib paths.
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:+-")
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
IMPLICIT_XATTR = "trusted.hako.implicit"  # = hako.storage.layers.IMPLICIT_XATTR
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
# Room kept in the options page for upperdir= and workdir= of any container key, so a
# given image always flattens at the same layer and the flattened tree is shared.
_KEY_RESERVE = 128

LIBC.renameat2.argtypes = [ffi.c_int, ffi.c_char_p, ffi.c_int, ffi.c_char_p, ffi.c_uint]


def _rename_noreplace(src: str | Path, dst: str | Path) -> bool:
    """Rename ``src`` to ``dst`` unless ``dst`` exists; False when it did."""
    rc = LIBC.renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
    if rc == 0:
        return True
    err = ffi.get_errno()
    if err in (errno.EEXIST, errno.ENOTEMPTY):
        return False
    raise KernelError("renameat2", err, f"{src} -> {dst}")


def _mounted_user(cdir: str | Path) -> str | None:
    """The mount point of an overlay whose upper dir or source lies in ``cdir``, if any."""
    needles = (f"upperdir={cdir}/", f" {cdir}/")
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                if any(n in overlay.mountinfo_path(line) for n in needles):
                    return overlay.mountinfo_path(line.split()[4])
    except OSError:
        pass
    return None


def valid_key(value: str) -> bool:
    """``^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}$`` (without a final newline), without re."""
    return (0 < len(value) <= 128 and value[0].isascii() and value[0].isalnum()
            and set(value) <= _KEY_CHARS)


def _check_name(what: str, value: str) -> str:
    if not valid_key(value) or value in (".", ".."):
        raise HakoError(f"{what} {value!r}: only letters, digits and _.:+- are allowed")
    return value


def _short(chain_id: str) -> str:
    """The first 12 characters of the lower-case base32 of the chain id's sha256 (60 bits)."""
    bits = int.from_bytes(_sha256.sha256(chain_id.encode()).digest()[:8], "big") >> 4
    return "".join(_B32[(bits >> shift) & 31] for shift in range(55, -1, -5))


def _rmtree(path: str | Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _absolute(path: str) -> str:
    """``str(Path(path).absolute())`` without pathlib."""
    lead = "//" if path.startswith("//") and not path.startswith("///") else "/"
    parts = [c for c in path.split("/") if c and c != "."]
    if not path.startswith("/"):
        cwd = os.getcwd()
        return cwd if not parts else cwd.rstrip("/") + "/" + "/".join(parts)
    return lead + "/".join(parts)


def remove_tree(path: str) -> None:
    """``_rmtree`` for the small trees of a removed container (shutil imports fnmatch and re):
    symlinks are removed, never followed; what cannot go stays, as with ignore_errors. The
    engine removes its container directories with it too."""
    try:
        entries = os.scandir(path)
    except OSError:
        return
    with entries:
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    remove_tree(entry.path)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def _has_xattr(path: str, name: str) -> bool:
    try:
        os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return False
    return True


class Snapshotter:
    """Layers by chain id, and per-container overlay (or copied) root filesystems.

    ``driver`` is "overlay" or "vfs" (full copies, for kernels without overlayfs);
    by default overlay when the kernel has it.
    """

    def __init__(self, root: str | Path, driver: str | None = None) -> None:
        self._root = _absolute(os.fspath(root))
        if driver is None:
            driver = "overlay" if overlay.overlay_supported() else "vfs"
        if driver not in ("overlay", "vfs"):
            raise HakoError(f"snapshot driver {driver!r}: use overlay or vfs")
        self.driver = driver
        if driver == "overlay":
            overlay.check_path(self._root)
        for sub in ("layers", "l", "flat", "containers", "tmp"):
            os.makedirs(os.path.join(self._root, sub), exist_ok=True)

    @property
    def root(self) -> Path:
        from pathlib import Path

        return Path(self._root)

    # -- layers -----------------------------------------------------------------------

    def _layer_str(self, chain_id: str) -> str:
        return os.path.join(self._root, "layers", _check_name("chain id", chain_id).replace(":", "-"))

    def _layer_dir(self, chain_id: str) -> Path:
        from pathlib import Path

        return Path(self._layer_str(chain_id))

    def _link(self, chain_id: str) -> str:
        return os.path.join(self._root, "l", _short(chain_id))

    def layer_ids(self) -> list[str]:
        """The ``algo:hex`` chain ids of the layers on disk, recorded by the caller or not."""
        out = []
        for name in os.listdir(os.path.join(self._root, "layers")):
            algo, sep, rest = name.partition("-")
            if sep and valid_key(name):
                out.append(f"{algo}:{rest}")
        return out

    def has_layer(self, chain_id: str) -> bool:
        return os.path.isdir(self._layer_str(chain_id))

    def layer_path(self, chain_id: str) -> Path:
        from pathlib import Path

        return Path(self._layer_path(chain_id))

    def _layer_path(self, chain_id: str) -> str:
        path = self._layer_str(chain_id)
        if not os.path.isdir(path):
            raise NotFound(f"layer {chain_id}: not in the snapshot store {self._root}")
        return path

    def lower_dirs(self, chain_ids: list[str]) -> list[Path]:
        """The layer dirs of ``chain_ids`` (bottom first) top first: ``apply_layer(lowers=)``."""
        return [self.layer_path(c) for c in reversed(chain_ids)]

    def _tmpdir(self, hint: str) -> Path:
        from pathlib import Path

        path = Path(self._root, "tmp", f"{hint[-16:]}-{os.urandom(6).hex()}")
        path.mkdir(mode=0o755)
        return path

    def new_layer(self, chain_id: str) -> AbstractContextManager[Path]:
        """Yield an empty directory to unpack into; it becomes the layer on success.

        If another process committed the same chain id meanwhile, ours is dropped quietly.
        """
        import contextlib

        return contextlib.contextmanager(self._new_layer)(chain_id)

    def _new_layer(self, chain_id: str) -> Iterator[Path]:
        final = self._layer_dir(chain_id)
        with self._building(final) as tmp:
            yield tmp
        self._ensure_link(chain_id, str(final))

    def _building(self, final: Path) -> AbstractContextManager[Path]:
        """Yield a temp dir that is renamed to ``final`` on success and removed on failure.

        An equal tree another process put at ``final`` meanwhile wins; ours goes.
        """
        import contextlib

        return contextlib.contextmanager(self._build)(final)

    def _build(self, final: Path) -> Iterator[Path]:
        tmp = self._tmpdir(final.name)
        try:
            yield tmp
        except BaseException:
            _rmtree(tmp)
            raise
        if not _rename_noreplace(tmp, final):
            _rmtree(tmp)

    def _ensure_link(self, chain_id: str, final: str) -> None:
        link = self._link(chain_id)
        try:
            os.symlink(f"../layers/{os.path.basename(final)}", link)
        except FileExistsError:
            pass

    def remove_layer(self, chain_id: str) -> None:
        final = self._layer_str(chain_id)
        try:
            os.unlink(self._link(chain_id))
        except FileNotFoundError:
            pass
        for path in (final, os.path.join(self._root, "flat", _short(chain_id))):
            self._discard(path)

    def _discard(self, path: str | Path, fast: bool = False) -> None:
        # Rename first, so the path disappears at once and a half-deleted tree is never seen.
        trash = os.path.join(self._root, "tmp", f"trash-{os.urandom(6).hex()}")
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        if fast:
            try:
                remove_tree(trash)
                return
            except RecursionError:
                pass  # a tree deeper than the interpreter's stack: shutil's walk
        _rmtree(trash)

    def clean_tmp(self, older_than: float = 24 * 3600) -> int:
        """Remove what crashed processes left in tmp/ (for garbage collection); returns a count.

        Only entries untouched for ``older_than`` seconds go, so running pulls keep theirs.
        """
        import time

        removed = 0
        limit = time.time() - older_than
        with os.scandir(os.path.join(self._root, "tmp")) as entries:
            for entry in entries:
                try:
                    old = entry.stat(follow_symlinks=False).st_mtime < limit
                except FileNotFoundError:
                    continue  # its writer committed or removed it meanwhile
                if not old:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    _rmtree(entry.path)
                else:
                    try:
                        os.unlink(entry.path)
                    except FileNotFoundError:
                        pass
                removed += 1
        return removed

    # -- containers -------------------------------------------------------------------

    def _container_dir(self, key: str) -> str:
        return os.path.join(self._root, "containers", _check_name("snapshot key", key))

    def _fix_layers(self, chain_ids: list[str]) -> None:
        """Finish layers unpacked without their lowers (see layers.fix_implicit_dirs)."""
        for i, c in enumerate(chain_ids):
            layer = self._layer_path(c)
            if i and _has_xattr(layer, IMPLICIT_XATTR):
                from hako.storage.layers import fix_implicit_dirs

                fix_implicit_dirs(self.layer_path(c), self.lower_dirs(chain_ids[:i]))

    def _lowers(self, chain_ids: list[str]) -> list[str]:
        """Lowerdir paths, top first; the bottom ones flattened when they would not fit."""
        self._fix_layers(chain_ids)
        for c in chain_ids:
            link = self._link(c)
            if not os.path.lexists(link):
                self._ensure_link(c, self._layer_str(c))
        paths = [self._link(c) for c in reversed(chain_ids)]
        reserve = 2 * len(f",upperdir={self._root}/containers//upper") + 2 * _KEY_RESERVE
        if overlay.fits(paths, reserve):
            return paths
        flat_path = os.path.join(self._root, "flat", _short(chain_ids[0]))
        keep = len(paths) - 1
        while keep > 0 and not overlay.fits(paths[:keep] + [flat_path], reserve):
            keep -= 1
        bottom = chain_ids[: len(chain_ids) - keep]
        return paths[:keep] + [str(self._flatten(bottom))]

    def _flatten(self, chain_ids: list[str]) -> Path:
        from pathlib import Path

        final = Path(self._root, "flat", _short(chain_ids[-1]))
        if final.is_dir():
            return final
        with self._building(final) as tmp:
            for c in chain_ids:
                overlay.merge_layer(self._layer_dir(c), tmp, link=True)
        return final

    def _empty(self) -> str:
        path = os.path.join(self._root, "empty")
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
        return path

    def _new_container_dir(self, key: str) -> str:
        """Create the container dir of ``key``; the caller removes it again if filling it fails."""
        cdir = self._container_dir(key)
        try:
            os.mkdir(cdir, 0o700)
        except FileExistsError:
            raise Conflict(f"snapshot {key}: exists already") from None
        return cdir

    def prepare(self, key: str, chain_ids: list[str]) -> list[MountSpec]:
        """A writable root filesystem for ``key`` over the layers ``chain_ids`` (bottom first)."""
        cdir = self._new_container_dir(key)
        try:
            if self.driver == "vfs":
                rootfs = os.path.join(cdir, "rootfs")
                self._copy_tree(chain_ids, rootfs)
                return [MountSpec("bind", rootfs, ["rbind", "rw"])]
            lowers = self._lowers(chain_ids) if chain_ids else [self._empty()]
            upper, work = os.path.join(cdir, "upper"), os.path.join(cdir, "work")
            os.mkdir(upper, 0o755)
            os.mkdir(work, 0o700)
            opts = overlay.overlay_options(lowers, upper, work)
            return [MountSpec("overlay", "overlay", opts)]
        except BaseException:
            _rmtree(cdir)
            raise

    def view(self, key: str, chain_ids: list[str]) -> list[MountSpec]:
        """A read-only root filesystem over ``chain_ids`` (bottom first)."""
        if self.driver == "vfs":
            cdir = self._new_container_dir(key)
            try:
                rootfs = os.path.join(cdir, "rootfs")
                self._copy_tree(chain_ids, rootfs)
                return [MountSpec("bind", rootfs, ["rbind", "ro"])]
            except BaseException:
                _rmtree(cdir)
                raise
        if not chain_ids:
            return [MountSpec("bind", self._empty(), ["rbind", "ro"])]
        lowers = self._lowers(chain_ids)
        if len(lowers) == 1:
            # overlayfs wants two lowers when there is no upper; one layer is a plain bind.
            return [MountSpec("bind", lowers[0], ["rbind", "ro"])]
        return [MountSpec("overlay", "overlay", [*overlay.overlay_options(lowers), "ro"])]

    def _copy_tree(self, chain_ids: list[str], rootfs: str) -> None:
        os.mkdir(rootfs, 0o755)
        self._fix_layers(chain_ids)
        for c in chain_ids:
            overlay.merge_layer(self._layer_path(c), rootfs, link=False)

    def mount(self, mounts: list[MountSpec], target: str | Path) -> None:
        for i, spec in enumerate(mounts):
            try:
                overlay.mount(spec, target)
            except BaseException:
                for _ in range(i):
                    overlay.unmount(target)
                raise

    def unmount(self, target: str | Path) -> None:
        overlay.unmount(target)

    def remove(self, key: str) -> None:
        """Delete the container's snapshot; refused while an overlay still uses it."""
        cdir = self._container_dir(key)
        user = _mounted_user(cdir)
        if user is not None:
            raise Conflict(f"snapshot {key}: still mounted at {user}")
        self._discard(cdir, fast=True)

    def usage(self, key: str) -> int:
        """Bytes the container wrote: apparent sizes in its upper dir, hardlinks counted once."""
        top = os.path.join(self._container_dir(key), "rootfs" if self.driver == "vfs" else "upper")
        if not os.path.isdir(top):
            raise NotFound(f"snapshot {key}: not found")
        seen: set[tuple[int, int]] = set()
        total = 0
        for dirpath, dirnames, filenames in os.walk(top):
            for name in filenames + dirnames:
                st = os.lstat(os.path.join(dirpath, name))
                if stat.S_ISDIR(st.st_mode):
                    continue
                if st.st_nlink > 1:
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                total += st.st_size
        return total
