"""Garbage collection: blobs and layer snapshots no image refers to.

``release`` runs after ``rmi`` and only looks at what the removed image used; ``prune``
removes dangling (or all unused) images and then sweeps everything unreferenced, under the
store's exclusive lock so that no pull is half-way (pulls hold the lock shared).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hako.errors import ConfigError, HakoError, NotFound
from hako.images.manifest import Index, Manifest, parse_manifest
from hako.images.metadata import ImageRow

if TYPE_CHECKING:
    from hako.images.store import ImageStore


def manifest_blobs(store: ImageStore, digest: str, out: set[str]) -> None:
    """``digest`` and every blob below it that the content store holds."""
    if digest in out or not store.content.has(digest):
        return
    out.add(digest)
    try:
        m = parse_manifest(store.content.read(digest))
    except (ConfigError, NotFound):
        return
    if isinstance(m, Manifest):
        out.add(m.config.digest)
        out.update(lay.digest for lay in m.layers)
    elif isinstance(m, Index):
        for child in m.manifests:
            manifest_blobs(store, child.digest, out)


def _row_roots(row: ImageRow) -> list[str]:
    return [row.manifest_digest, row.id] + [d.rsplit("@", 1)[1] for d in row.digests]


def referenced(store: ImageStore) -> tuple[set[str], set[str]]:
    """The blobs and layer chain ids some recorded image still needs."""
    blobs: set[str] = set()
    chains: set[str] = set()
    for row in store.db.images():
        for d in _row_roots(row):
            manifest_blobs(store, d, blobs)
        chains.update(row.chain_ids)
    for mdigest in store.db.digest_manifests().values():
        manifest_blobs(store, mdigest, blobs)
    return blobs, chains


def _remove_layers(store: ImageStore, chains: set[str]) -> list[str]:
    removed = []
    for chain in sorted(chains):
        try:
            store.snapshotter.remove_layer(chain)
        except (OSError, HakoError):
            continue
        removed.append(chain)
    store.db.delete_layers(removed)
    return removed


def release(store: ImageStore, row: ImageRow) -> None:
    """Free the layers and blobs of a deleted image that no other image shares."""
    mine: set[str] = set()
    for d in _row_roots(row):
        manifest_blobs(store, d, mine)
    blobs, chains = referenced(store)
    _remove_layers(store, set(row.chain_ids) - chains)
    for d in mine - blobs:
        store.content.delete(d)


def prune(store: ImageStore, all_images: bool = False) -> list[str]:
    out: list[str] = []
    with store.lock(exclusive=True):
        for row in store.db.images():
            if store.db.users(row.id):
                continue
            if row.tags and not all_images:
                continue
            from hako.images.mounts import unmount_all

            unmount_all(store, store._image(row))
            store.db.delete_image(row.id)
            out.append(f"Deleted: {row.id}")
        out += [f"Deleted layer: {c}" for c in collect(store)]
    return out


def collect(store: ImageStore) -> list[str]:
    """Sweep every blob and layer nobody refers to. Caller holds the exclusive lock."""
    blobs, chains = referenced(store)
    known = {lay.chain_id for lay in store.db.layers()}
    removed = _remove_layers(store, known - chains)
    for d in list(store.content.digests()):
        if d not in blobs:
            store.content.delete(d)
    store.content.sweep_tmp(older_than=0.0)
    removed += _orphan_layers(store, chains | known)
    # Half-unpacked layers of killed pulls. Only old entries: the engine also builds
    # flattened lower dirs there, outside our lock, and none takes an hour.
    store.snapshotter.clean_tmp(older_than=3600.0)
    return removed


def _orphan_layers(store: ImageStore, keep: set[str]) -> list[str]:
    """Layers a killed pull committed before it could record them. Safe under the
    exclusive lock: no pull of ours is running."""
    ours = {c for c in store.snapshotter.layer_ids() if c.startswith("sha256:") and len(c) == 71}
    return _remove_layers(store, ours - keep)
