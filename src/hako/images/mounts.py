"""``hako image mount``: a read-only merged view of an image's layers, for inspection.

This is the one place where the image store mounts by itself (the snapshotter only
describes mounts). Mount points live under ``<root>/image-mounts/<id>``; mounting twice
returns the existing mount.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from hako.errors import Conflict, HakoError

if TYPE_CHECKING:
    from hako.images.store import Image, ImageStore


def _key(image: Image) -> str:
    return "image-" + image.id[7:]


def target(store: ImageStore, image: Image) -> Path:
    return store.root / "image-mounts" / image.id[7:]


def is_mounted(path: Path) -> bool:
    from hako.storage.overlay import mountinfo_path

    p = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(mountinfo_path(line.split()[4]) == p for line in f)


def mount(store: ImageStore, image: Image) -> Path:
    t = target(store, image)
    if is_mounted(t):
        return t
    t.mkdir(parents=True, exist_ok=True)
    snap = store.snapshotter
    try:
        specs = snap.view(_key(image), image.chain_ids)
    except Conflict:
        # A copied (vfs) view left by an earlier mount: rebuild it.
        snap.remove(_key(image))
        specs = snap.view(_key(image), image.chain_ids)
    try:
        snap.mount(specs, t)
    except BaseException:
        snap.remove(_key(image))
        os.rmdir(t)
        raise
    return t


def unmount(store: ImageStore, image: Image) -> None:
    t = target(store, image)
    if not is_mounted(t):
        raise HakoError(f"image {image.short_id} is not mounted")
    while is_mounted(t):
        store.snapshotter.unmount(t)
    store.snapshotter.remove(_key(image))
    try:
        os.rmdir(t)
    except OSError:
        pass


def unmount_all(store: ImageStore, image: Image) -> None:
    """Before removing an image: drop its mount so no layer is busy."""
    if is_mounted(target(store, image)):
        unmount(store, image)
