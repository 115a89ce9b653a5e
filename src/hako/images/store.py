"""ImageStore: the images of one store root — pull, look up, tag, remove, import, layer dirs.

On disk under the root: ``blobs/sha256/`` (content store), ``hako.db`` (metadata tables)
and the snapshotter's layer directories. Names are kept fully qualified
(``docker.io/library/busybox:latest``); lookups normalise what the user typed.
"""

from __future__ import annotations

import fcntl
import os

from hako.errors import Conflict, NotFound
from hako.images.content import ContentStore
from hako.images.metadata import ImageDB, ImageRow
from hako.images.reference import InvalidReference, Reference, is_image_id, parse
from hako.records import dataclass, field
from hako.runtime import fastjson as json  # json's decoder imports re (and enum, functools, ...)

TYPE_CHECKING = False  # looking an image up is on ``hako run``'s path: no typing, pathlib, contextlib
if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path
    from typing import Any


class _Lock:
    """``ImageStore.lock``: flock on ``images.lock`` for the ``with`` block."""

    def __init__(self, path: str, exclusive: bool) -> None:
        self.path, self.exclusive = path, exclusive

    def __enter__(self) -> None:
        self.f = open(self.path, "a+b")  # noqa: SIM115 - closed in __exit__
        try:
            fcntl.flock(self.f.fileno(), fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH)
        except BaseException:
            self.f.close()
            raise

    def __exit__(self, *_: object) -> None:
        try:
            fcntl.flock(self.f.fileno(), fcntl.LOCK_UN)
        finally:
            self.f.close()


@dataclass  # hako.records: construction, == and repr are all it needs
class Image:
    id: str                       # "sha256:<config digest>"
    repo_tags: list[str]          # fully qualified: "127.0.0.1:5000/hako-test/busybox:latest"
    repo_digests: list[str]       # "registry/repo@sha256:..."
    config: dict[str, Any]        # the full OCI image config JSON
    layers: list[str]             # diff_ids, bottom to top
    chain_ids: list[str]
    manifest_digest: str
    created: str
    size: int
    added: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        return self.id[7:19]

    @property
    def architecture(self) -> str:
        return str(self.config.get("architecture", ""))

    @property
    def os(self) -> str:
        return str(self.config.get("os", ""))


class ImageStore:
    def __init__(self, root: str | Path, conn: sqlite3.Connection | None = None) -> None:
        """``conn``: an open connection to the store's database to share (the engine's)."""
        self._root = os.fspath(root)
        os.makedirs(self._root, exist_ok=True)
        self.content = ContentStore(self._root)
        self.db = ImageDB(self._root, conn)
        self._snapshotter: Any = None

    @property
    def root(self) -> Path:
        from pathlib import Path

        return Path(self._root)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ImageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def snapshotter(self) -> Any:
        if self._snapshotter is None:
            from hako.storage.snapshots import Snapshotter

            self._snapshotter = Snapshotter(self._root)
        return self._snapshotter

    def lock(self, exclusive: bool = False) -> _Lock:
        """Pulls hold it shared, garbage collection exclusive: gc never sees a half-made pull."""
        return _Lock(os.path.join(self._root, "images.lock"), exclusive)

    # -- lookups -----------------------------------------------------------------------
    def _image(self, row: ImageRow) -> Image:
        config_digest = row.id
        try:
            config = json.loads(self.content.read(config_digest))
        except NotFound:
            config = {}
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        return Image(row.id, row.tags, row.digests, config, diff_ids, row.chain_ids, row.manifest_digest,
                     row.created, row.size, row.added)

    def resolve_id(self, ref_or_id: str) -> str:
        s = ref_or_id.strip()
        h = s.removeprefix("sha256:")
        if len(h) == 64 and is_image_id(h):
            if self.db.image("sha256:" + h):
                return "sha256:" + h
            raise NotFound(f"image {ref_or_id} not found")
        ref: Reference | None
        try:
            ref = parse(s)
        except InvalidReference:
            ref = None
        if ref is not None:
            found = self._by_reference(ref)
            if found:
                return found
            if ref.registry == "docker.io" and "/" not in s.split(":")[0].split("@")[0]:
                # Short names of images made here (import, tag) may also live under localhost/.
                found = self._by_reference(parse("localhost/" + s))
                if found:
                    return found
        if is_image_id(s):
            ids = self.db.ids_with_prefix("sha256:" + h)
            if len(ids) == 1:
                return ids[0]
            if len(ids) > 1:
                raise Conflict(f"image id {ref_or_id} is ambiguous: {len(ids)} images match")
        raise NotFound(f"image {ref_or_id} not found")

    def _by_reference(self, ref: Reference) -> str | None:
        return self.db.by_digest(f"{ref.name}@{ref.digest}") if ref.digest else self.db.by_tag(str(ref))

    def get(self, ref_or_id: str) -> Image:
        row = self.db.image(self.resolve_id(ref_or_id))
        if row is None:
            raise NotFound(f"image {ref_or_id} not found")
        return self._image(row)

    def exists(self, ref_or_id: str) -> bool:
        try:
            self.resolve_id(ref_or_id)
        except (NotFound, Conflict):
            return False
        return True

    def layer_dirs(self, image: Image) -> list[Path]:
        return [self.snapshotter.layer_path(c) for c in image.chain_ids]

    def manifest(self, image: Image) -> dict[str, Any]:
        return json.loads(self.content.read(image.manifest_digest))

    # -- changes -----------------------------------------------------------------------
    def pull(self, ref: str, *, platform: str | None = None, tls_verify: bool | None = None,
             quiet: bool = False) -> Image:
        from pathlib import Path

        from hako.images.puller import pull

        # Transports as podman spells them: docker://REF, oci-archive:PATH, docker-archive:PATH.
        ref = ref.removeprefix("docker://")
        for transport in ("oci-archive:", "docker-archive:", "oci:"):
            if ref.startswith(transport):
                path, _, tag = ref[len(transport):].partition(":")
                loaded = self.load(Path(path), tag=tag or None)
                if not loaded:
                    raise NotFound(f"{path} holds no image")
                return loaded[0]
        with self.lock():
            image_id = pull(self, ref, platform=platform, tls_verify=tls_verify, quiet=quiet)
        return self.get(image_id)

    def tag(self, src: str, dst: str) -> None:
        image_id = self.resolve_id(src)
        ref = parse(dst)
        if ref.digest:
            raise InvalidReference(f"cannot tag with a digest: {dst}")
        self.db.tag(image_id, str(ref))

    def untag(self, name: str) -> None:
        ref = parse(name)
        if self.db.by_tag(str(ref)) is None:
            raise NotFound(f"image {name} not found")
        self.db.untag(str(ref))

    def remove(self, ref_or_id: str, force: bool = False) -> list[str]:
        """Docker's rmi: a tag of a multiply-tagged image is only untagged; returns what was done."""
        image_id = self.resolve_id(ref_or_id)
        row = self.db.image(image_id)
        assert row is not None
        by_name = None
        try:
            r = parse(ref_or_id)
            if str(r) in row.tags:
                by_name = str(r)
        except InvalidReference:
            pass
        if by_name and len(row.tags) > 1:
            self.db.untag(by_name)
            return [f"Untagged: {by_name}"]
        users = self.db.users(image_id)
        if users:
            if not force:
                raise Conflict(f"image {ref_or_id} is in use by container {users[0][:12]}")
            # Forced: the image loses its names but stays for the containers that run on it.
            for t in row.tags:
                self.db.untag(t)
            return [f"Untagged: {t}" for t in row.tags]
        if not by_name and len(row.tags) > 1 and not force:
            raise Conflict(f"image {ref_or_id} is referenced by {len(row.tags)} tags; use -f to remove it")
        from hako.images.gc import release
        from hako.images.mounts import unmount_all

        # Exclusive: a concurrent pull may have planned to reuse one of these layers.
        with self.lock(exclusive=True):
            unmount_all(self, self._image(row))
            self.db.delete_image(image_id)
            release(self, row)
        return [f"Untagged: {t}" for t in row.tags] + [f"Deleted: {image_id}"]

    def import_tarball(self, path: Path, ref: str | None = None, *, message: str = "",
                       changes: dict[str, Any] | None = None) -> Image:
        from pathlib import Path

        from hako.images.importer import import_tarball

        with self.lock():
            image_id = import_tarball(self, Path(path), ref, message=message, changes=changes)
        return self.get(image_id)

    def push(self, ref_or_id: str, dest: str | None = None, *, tls_verify: bool | None = None,
             quiet: bool = False, compression: str = "gzip") -> str:
        from hako.images.pusher import push

        # Shared, like a pull: the compressed blobs a push makes are unreferenced until it
        # records the pushed digest, and prune must not sweep them mid-upload.
        with self.lock():
            return push(self, ref_or_id, dest, tls_verify=tls_verify, quiet=quiet, compression=compression)

    def save(self, refs: list[str], output: Path, fmt: str = "oci-archive") -> None:
        from pathlib import Path

        from hako.images.archive import save

        with self.lock():  # prune must not delete the blobs being archived
            save(self, refs, Path(output), fmt)

    def load(self, path: Path, quiet: bool = True, tag: str | None = None) -> list[Image]:
        from pathlib import Path

        from hako.images.archive import load

        with self.lock():
            ids = load(self, Path(path), quiet=quiet, tag=tag)
        return [self.get(i) for i in ids]

    def prune(self, all_images: bool = False) -> list[str]:
        from hako.images.gc import prune

        return prune(self, all_images)

    def mount(self, ref_or_id: str) -> Path:
        from hako.images.mounts import mount

        return mount(self, self.get(ref_or_id))

    def unmount(self, ref_or_id: str) -> None:
        from hako.images.mounts import unmount

        unmount(self, self.get(ref_or_id))

    def inspect(self, ref_or_id: str) -> dict[str, Any]:
        from hako.images.inspection import docker_inspect

        return docker_inspect(self, self.get(ref_or_id))

    # Last in the class: a method named ``list`` would shadow the builtin in later annotations.
    def list(self) -> list[Image]:
        return [self._image(r) for r in self.db.images()]
