"""The Python API of the image store: one function per command, each opening the store at
``root`` (default ``$HAKO_ROOT`` or /var/lib/hako) for the duration of the call.

    import hako.images
    img = hako.images.pull("127.0.0.1:5000/hako-test/busybox", root="/tmp/store")
    print(img.id, img.config["config"]["Cmd"])
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hako.images.store import Image, ImageStore

DEFAULT_ROOT = "/var/lib/hako"
PathLike = str | os.PathLike[str] | None


def _root(root: PathLike) -> Path:
    return Path(root if root is not None else os.environ.get("HAKO_ROOT", DEFAULT_ROOT))


@contextmanager
def open_store(root: PathLike = None) -> Iterator[ImageStore]:
    store = ImageStore(_root(root))
    try:
        yield store
    finally:
        store.close()


def pull(ref: str, *, root: PathLike = None, platform: str | None = None, tls_verify: bool | None = None,
         quiet: bool = True) -> Image:
    with open_store(root) as s:
        return s.pull(ref, platform=platform, tls_verify=tls_verify, quiet=quiet)


def push(ref: str, dest: str | None = None, *, root: PathLike = None, tls_verify: bool | None = None,
         quiet: bool = True) -> str:
    with open_store(root) as s:
        return s.push(ref, dest, tls_verify=tls_verify, quiet=quiet)


def get(ref_or_id: str, *, root: PathLike = None) -> Image:
    with open_store(root) as s:
        return s.get(ref_or_id)


def list_images(*, root: PathLike = None) -> list[Image]:
    with open_store(root) as s:
        return s.list()


def remove(ref_or_id: str, *, root: PathLike = None, force: bool = False) -> list[str]:
    with open_store(root) as s:
        return s.remove(ref_or_id, force=force)


def tag(src: str, dst: str, *, root: PathLike = None) -> None:
    with open_store(root) as s:
        s.tag(src, dst)


def inspect(ref_or_id: str, *, root: PathLike = None) -> dict[str, Any]:
    with open_store(root) as s:
        return s.inspect(ref_or_id)


def import_tarball(path: str | os.PathLike[str], ref: str | None = None, *, root: PathLike = None) -> Image:
    with open_store(root) as s:
        return s.import_tarball(Path(path), ref)


def save(refs: list[str], output: str | os.PathLike[str], *, fmt: str = "oci-archive",
         root: PathLike = None) -> None:
    with open_store(root) as s:
        s.save(refs, Path(output), fmt)


def load(path: str | os.PathLike[str], *, root: PathLike = None) -> list[Image]:
    with open_store(root) as s:
        return s.load(Path(path))


def prune(*, root: PathLike = None, all_images: bool = False) -> list[str]:
    with open_store(root) as s:
        return s.prune(all_images)
