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

import base64
import contextlib
import ctypes
import errno
import hashlib
import os
import re
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

from hako.errors import Conflict, HakoError, KernelError, NotFound
from hako.storage import overlay
from hako.storage.layers import fix_implicit_dirs, has_implicit_dirs
from hako.storage.overlay import MountSpec
from hako.sys.libc import LIBC

__all__ = ["MountSpec", "Snapshotter"]

_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}$")
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
# Room kept in the options page for upperdir= and workdir= of any container key, so a
# given image always flattens at the same layer and the flattened tree is shared.
_KEY_RESERVE = 128

LIBC.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]


def _rename_noreplace(src: Path, dst: Path) -> bool:
    """Rename ``src`` to ``dst`` unless ``dst`` exists; False when it did."""
    rc = LIBC.renameat2(_AT_FDCWD, bytes(src), _AT_FDCWD, bytes(dst), _RENAME_NOREPLACE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EEXIST, errno.ENOTEMPTY):
        return False
    raise KernelError("renameat2", err, f"{src} -> {dst}")


def _mounted_user(cdir: Path) -> str | None:
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


def _check_name(what: str, value: str) -> str:
    if not _KEY_RE.match(value) or value in (".", ".."):
        raise HakoError(f"{what} {value!r}: only letters, digits and _.:+- are allowed")
    return value


def _short(chain_id: str) -> str:
    digest = hashlib.sha256(chain_id.encode()).digest()
    return base64.b32encode(digest).decode()[:12].lower()


class Snapshotter:
    """Layers by chain id, and per-container overlay (or copied) root filesystems.

    ``driver`` is "overlay" or "vfs" (full copies, for kernels without overlayfs);
    by default overlay when the kernel has it.
    """

    def __init__(self, root: Path, driver: str | None = None) -> None:
        self.root = Path(root).absolute()
        if driver is None:
            driver = "overlay" if overlay.overlay_supported() else "vfs"
        if driver not in ("overlay", "vfs"):
            raise HakoError(f"snapshot driver {driver!r}: use overlay or vfs")
        self.driver = driver
        if driver == "overlay":
            overlay.check_path(str(self.root))
        for sub in ("layers", "l", "flat", "containers", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # -- layers -----------------------------------------------------------------------

    def _layer_dir(self, chain_id: str) -> Path:
        return self.root / "layers" / _check_name("chain id", chain_id).replace(":", "-")

    def _link(self, chain_id: str) -> Path:
        return self.root / "l" / _short(chain_id)

    def layer_ids(self) -> list[str]:
        """The ``algo:hex`` chain ids of the layers on disk, recorded by the caller or not."""
        out = []
        for name in os.listdir(self.root / "layers"):
            algo, sep, rest = name.partition("-")
            if sep and _KEY_RE.match(name):
                out.append(f"{algo}:{rest}")
        return out

    def has_layer(self, chain_id: str) -> bool:
        return self._layer_dir(chain_id).is_dir()

    def layer_path(self, chain_id: str) -> Path:
        path = self._layer_dir(chain_id)
        if not path.is_dir():
            raise NotFound(f"layer {chain_id}: not in the snapshot store {self.root}")
        return path

    def lower_dirs(self, chain_ids: list[str]) -> list[Path]:
        """The layer dirs of ``chain_ids`` (bottom first) top first: ``apply_layer(lowers=)``."""
        return [self.layer_path(c) for c in reversed(chain_ids)]

    def _tmpdir(self, hint: str) -> Path:
        path = self.root / "tmp" / f"{hint[-16:]}-{uuid.uuid4().hex[:12]}"
        path.mkdir(mode=0o755)
        return path

    @contextlib.contextmanager
    def new_layer(self, chain_id: str) -> Iterator[Path]:
        """Yield an empty directory to unpack into; it becomes the layer on success.

        If another process committed the same chain id meanwhile, ours is dropped quietly.
        """
        final = self._layer_dir(chain_id)
        with self._building(final) as tmp:
            yield tmp
        self._ensure_link(chain_id, final)

    @contextlib.contextmanager
    def _building(self, final: Path) -> Iterator[Path]:
        """Yield a temp dir that is renamed to ``final`` on success and removed on failure.

        An equal tree another process put at ``final`` meanwhile wins; ours goes.
        """
        tmp = self._tmpdir(final.name)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if not _rename_noreplace(tmp, final):
            shutil.rmtree(tmp, ignore_errors=True)

    def _ensure_link(self, chain_id: str, final: Path) -> None:
        link = self._link(chain_id)
        try:
            os.symlink(f"../layers/{final.name}", link)
        except FileExistsError:
            pass

    def remove_layer(self, chain_id: str) -> None:
        final = self._layer_dir(chain_id)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._link(chain_id))
        for path in (final, self.root / "flat" / _short(chain_id)):
            self._discard(path)

    def _discard(self, path: Path) -> None:
        # Rename first, so the path disappears at once and a half-deleted tree is never seen.
        trash = self.root / "tmp" / f"trash-{uuid.uuid4().hex[:12]}"
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def clean_tmp(self, older_than: float = 24 * 3600) -> int:
        """Remove what crashed processes left in tmp/ (for garbage collection); returns a count.

        Only entries untouched for ``older_than`` seconds go, so running pulls keep theirs.
        """
        import time

        removed = 0
        limit = time.time() - older_than
        with os.scandir(self.root / "tmp") as entries:
            for entry in entries:
                try:
                    old = entry.stat(follow_symlinks=False).st_mtime < limit
                except FileNotFoundError:
                    continue  # its writer committed or removed it meanwhile
                if not old:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                removed += 1
        return removed

    # -- containers -------------------------------------------------------------------

    def _container_dir(self, key: str) -> Path:
        return self.root / "containers" / _check_name("snapshot key", key)

    def _fix_layers(self, chain_ids: list[str]) -> None:
        """Finish layers unpacked without their lowers (see layers.fix_implicit_dirs)."""
        for i, c in enumerate(chain_ids):
            layer = self.layer_path(c)
            if i and has_implicit_dirs(layer):
                fix_implicit_dirs(layer, self.lower_dirs(chain_ids[:i]))

    def _lowers(self, chain_ids: list[str]) -> list[str]:
        """Lowerdir paths, top first; the bottom ones flattened when they would not fit."""
        self._fix_layers(chain_ids)
        for c in chain_ids:
            link = self._link(c)
            if not os.path.lexists(link):
                self._ensure_link(c, self._layer_dir(c))
        paths = [str(self._link(c)) for c in reversed(chain_ids)]
        reserve = 2 * len(f",upperdir={self.root}/containers//upper") + 2 * _KEY_RESERVE
        if overlay.fits(paths, reserve):
            return paths
        flat_path = str(self.root / "flat" / _short(chain_ids[0]))
        keep = len(paths) - 1
        while keep > 0 and not overlay.fits(paths[:keep] + [flat_path], reserve):
            keep -= 1
        bottom = chain_ids[: len(chain_ids) - keep]
        return paths[:keep] + [str(self._flatten(bottom))]

    def _flatten(self, chain_ids: list[str]) -> Path:
        final = self.root / "flat" / _short(chain_ids[-1])
        if final.is_dir():
            return final
        with self._building(final) as tmp:
            for c in chain_ids:
                overlay.merge_layer(self._layer_dir(c), tmp, link=True)
        return final

    def _empty(self) -> str:
        path = self.root / "empty"
        path.mkdir(mode=0o755, exist_ok=True)
        return str(path)

    @contextlib.contextmanager
    def _new_container_dir(self, key: str) -> Iterator[Path]:
        """Create the container dir of ``key``; it goes again if filling it fails."""
        cdir = self._container_dir(key)
        try:
            cdir.mkdir(mode=0o700)
        except FileExistsError:
            raise Conflict(f"snapshot {key}: exists already") from None
        try:
            yield cdir
        except BaseException:
            shutil.rmtree(cdir, ignore_errors=True)
            raise

    def prepare(self, key: str, chain_ids: list[str]) -> list[MountSpec]:
        """A writable root filesystem for ``key`` over the layers ``chain_ids`` (bottom first)."""
        with self._new_container_dir(key) as cdir:
            if self.driver == "vfs":
                rootfs = cdir / "rootfs"
                self._copy_tree(chain_ids, rootfs)
                return [MountSpec("bind", str(rootfs), ["rbind", "rw"])]
            lowers = self._lowers(chain_ids) if chain_ids else [self._empty()]
            upper, work = cdir / "upper", cdir / "work"
            upper.mkdir(mode=0o755)
            work.mkdir(mode=0o700)
            opts = overlay.overlay_options(lowers, str(upper), str(work))
            return [MountSpec("overlay", "overlay", opts)]

    def view(self, key: str, chain_ids: list[str]) -> list[MountSpec]:
        """A read-only root filesystem over ``chain_ids`` (bottom first)."""
        if self.driver == "vfs":
            with self._new_container_dir(key) as cdir:
                rootfs = cdir / "rootfs"
                self._copy_tree(chain_ids, rootfs)
                return [MountSpec("bind", str(rootfs), ["rbind", "ro"])]
        if not chain_ids:
            return [MountSpec("bind", self._empty(), ["rbind", "ro"])]
        lowers = self._lowers(chain_ids)
        if len(lowers) == 1:
            # overlayfs wants two lowers when there is no upper; one layer is a plain bind.
            return [MountSpec("bind", lowers[0], ["rbind", "ro"])]
        return [MountSpec("overlay", "overlay", [*overlay.overlay_options(lowers), "ro"])]

    def _copy_tree(self, chain_ids: list[str], rootfs: Path) -> None:
        rootfs.mkdir(mode=0o755)
        self._fix_layers(chain_ids)
        for c in chain_ids:
            overlay.merge_layer(self.layer_path(c), rootfs, link=False)

    def mount(self, mounts: list[MountSpec], target: Path) -> None:
        for i, spec in enumerate(mounts):
            try:
                overlay.mount(spec, target)
            except BaseException:
                for _ in range(i):
                    overlay.unmount(target)
                raise

    def unmount(self, target: Path) -> None:
        overlay.unmount(target)

    def remove(self, key: str) -> None:
        """Delete the container's snapshot; refused while an overlay still uses it."""
        cdir = self._container_dir(key)
        user = _mounted_user(cdir)
        if user is not None:
            raise Conflict(f"snapshot {key}: still mounted at {user}")
        self._discard(cdir)

    def usage(self, key: str) -> int:
        """Bytes the container wrote: apparent sizes in its upper dir, hardlinks counted once."""
        cdir = self._container_dir(key)
        top = cdir / ("rootfs" if self.driver == "vfs" else "upper")
        if not top.is_dir():
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
