"""Push: every blob the registry lacks (cross-repo mounted when the image came from another
repository of the same registry), then the manifest under the tag, byte for byte as stored,
so the pushed digest is the local manifest digest."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from hako.errors import NotFound, RegistryError
from hako.images import progress as progmod
from hako.images.manifest import Descriptor, Manifest, parse_manifest
from hako.images.reference import parse

if TYPE_CHECKING:
    from hako.images.store import ImageStore


def _file_chunks(store: ImageStore, digest: str) -> Iterator[bytes]:
    with store.content.open(digest) as f:
        while chunk := f.read(1 << 20):
            yield chunk


def push(store: ImageStore, ref_or_id: str, dest: str | None = None, *, tls_verify: bool | None = None,
         quiet: bool = False) -> str:
    from hako.images.registry import RegistryClient

    image = store.get(ref_or_id)
    target = parse(dest or ref_or_id)
    mdata = store.content.read(image.manifest_digest)
    m = parse_manifest(mdata)
    if not isinstance(m, Manifest):
        raise RegistryError(f"image {ref_or_id}: stored manifest {image.manifest_digest} is not a manifest")
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
            client.put_manifest(repo, target.tag or image.manifest_digest, mdata, m.media_type)
    finally:
        progress.close()
    store.db.add_digest(f"{target.name}@{image.manifest_digest}", image.id, image.manifest_digest)
    return image.manifest_digest
