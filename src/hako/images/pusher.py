"""Push: every blob the registry lacks (cross-repo mounted when the image came from another
repository of the same registry), then the manifest under the tag, byte for byte as stored,
so the pushed digest is the local manifest digest.

Uncompressed layers (``hako import``, docker-archive loads) are compressed first, gzip by
default, like ``docker push``; that makes a new manifest (same config, same image id). The
compressed blobs stay in the content store, and gzip with mtime 0 is deterministic, so
pushing again gives the same digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from hako.errors import ConfigError, NotFound, RegistryError
from hako.images import mediatypes as mt
from hako.images import progress as progmod
from hako.images.manifest import Descriptor, Manifest, manifest_json, parse_manifest
from hako.images.reference import parse

if TYPE_CHECKING:
    from hako.images.store import ImageStore


def _file_chunks(store: ImageStore, digest: str) -> Iterator[bytes]:
    with store.content.open(digest) as f:
        while chunk := f.read(1 << 20):
            yield chunk


def push(store: ImageStore, ref_or_id: str, dest: str | None = None, *, tls_verify: bool | None = None,
         quiet: bool = False, compression: str = "gzip") -> str:
    from hako.images.registry import RegistryClient

    image = store.get(ref_or_id)
    target = parse(dest or ref_or_id)
    mdata = store.content.read(image.manifest_digest)
    m = parse_manifest(mdata)
    if not isinstance(m, Manifest):
        raise RegistryError(f"image {ref_or_id}: stored manifest {image.manifest_digest} is not a manifest")
    if compression != "none" and any(mt.layer_compression(lay.media_type) == "none" for lay in m.layers):
        m, mdata = _compressed(store, m, compression)
    mdigest = "sha256:" + hashlib.sha256(mdata).hexdigest()
    blobs: list[Descriptor] = [*m.layers, m.config]
    for b in blobs:
        if not store.content.has(b.digest):
            raise NotFound(f"blob {b.digest} of image {image.short_id} is not in the content store; "
                           f"pull the image again to push it")
    mount_from = None
    for rd in image.repo_digests:
        r = parse(rd)
        if r.registry == target.registry and r.repository != target.repository:
            mount_from = r.repository
            break
    progress = progmod.make(quiet)
    try:
        with RegistryClient(target.api_host, root=store.root, tls_verify=tls_verify) as client:
            repo = target.repository

            def one(b: Descriptor) -> None:
                bar = progress.layer(b.digest, b.size)
                if client.blob_exists(repo, b.digest):
                    bar.done("already exists")
                    return
                client.upload_blob(repo, b.digest, b.size, lambda: _file_chunks(store, b.digest), mount_from)
                bar.done()

            with ThreadPoolExecutor(max_workers=4, thread_name_prefix="hako-push") as pool:
                for f in [pool.submit(one, b) for b in blobs]:
                    f.result()
            progress.message("Writing manifest to image destination")
            client.put_manifest(repo, target.tag or mdigest, mdata, m.media_type)
    finally:
        progress.close()
    if mdigest != image.manifest_digest:
        store.content.put(mdata, mdigest)
    store.db.add_digest(f"{target.name}@{mdigest}", image.id, mdigest)
    return mdigest


def _compressed(store: ImageStore, m: Manifest, compression: str) -> tuple[Manifest, bytes]:
    """``m`` with every uncompressed layer replaced by a compressed copy in the content store."""
    import zlib

    if compression not in ("gzip", "zstd"):
        raise ConfigError("--compression-format", f"unknown compression {compression!r}: gzip, zstd or none")
    layers = []
    for lay in m.layers:
        if mt.layer_compression(lay.media_type) != "none":
            layers.append(lay)
            continue
        with store.content.writer() as w:
            if compression == "gzip":
                # wbits 31: a gzip header with mtime 0, so the output depends on the input only.
                c = zlib.compressobj(6, zlib.DEFLATED, 31)
                for chunk in _file_chunks(store, lay.digest):
                    w.write(c.compress(chunk))
                w.write(c.flush())
                media = mt.OCI_LAYER_GZIP
            else:
                import zstandard

                z = zstandard.ZstdCompressor(level=3).compressobj()
                for chunk in _file_chunks(store, lay.digest):
                    w.write(z.compress(chunk))
                w.write(z.flush())
                media = mt.OCI_LAYER_ZSTD
            digest = w.commit()
            size = w.size
        layers.append(Descriptor(media, digest, size, dict(lay.annotations)))
    data = manifest_json(m.config, layers, mt.OCI_MANIFEST, m.annotations or None)
    new = parse_manifest(data)
    assert isinstance(new, Manifest)
    return new, data
