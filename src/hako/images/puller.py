"""Pull: manifest (platform chosen from an index), config, then every missing layer in parallel.

Each layer is streamed once through blob hash → content store → decompression → diff_id
hash → tar extractor, straight into its snapshot directory. Nothing is recorded in the
database until every digest, size and diff_id was checked; on any failure the layers and
blobs this pull created are removed again.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hako.errors import ConfigError, HakoError, RegistryError
from hako.images import mediatypes as mt
from hako.images import progress as progmod
from hako.images.manifest import (
    Descriptor,
    Index,
    Manifest,
    Platform,
    chain_ids,
    config_diff_ids,
    normalize_arch,
    parse_manifest,
    select_platform,
)
from hako.images.metadata import LayerRow
from hako.images.reference import Reference, parse
from hako.images.stream import LayerReader

if TYPE_CHECKING:
    from hako.images.store import ImageStore

MAX_PARALLEL = 4


class Cancelled(HakoError):
    pass


@dataclass
class LayerJob:
    desc: Descriptor
    diff_id: str
    chain_id: str
    unpack: bool  # False: the snapshot exists, only the blob is missing from the content store


def unpack_layer(store: ImageStore, chunks: Iterator[bytes], desc: Descriptor, diff_id: str, chain_id: str,
                 on_bytes: Callable[[int], None] | None = None, keep_blob: bool = True) -> int:
    """Stream one layer blob into the snapshot ``chain_id``; returns the tar size. All-or-nothing."""
    from hako.storage.layers import apply_layer

    compression = mt.layer_compression(desc.media_type)
    if compression is None:
        raise RegistryError(f"layer {desc.digest}: unsupported media type {desc.media_type}")
    writer = store.content.writer() if keep_blob and not store.content.has(desc.digest) else None
    try:
        with store.snapshotter.new_layer(chain_id) as tmpdir:
            reader = LayerReader(chunks, compression, writer, on_bytes, label=f"layer {desc.digest}")
            try:
                apply_layer(reader, tmpdir)  # type: ignore[arg-type]
            except (RegistryError, Cancelled):
                raise
            except HakoError as exc:
                # A tar that does not parse is most often a corrupted blob: say so, by digest.
                try:
                    reader.drain()
                except HakoError:
                    raise exc from None
                verify_layer(reader, desc, diff_id)
                raise HakoError(f"layer {desc.digest}: {exc}") from exc
            reader.drain()
            verify_layer(reader, desc, diff_id)
            if writer is not None:
                writer.commit(desc.digest, desc.size)
        return reader.size
    finally:
        if writer is not None:
            writer.abort()


def verify_layer(reader: LayerReader, desc: Descriptor, diff_id: str) -> None:
    if reader.compressed_size != desc.size:
        raise RegistryError(f"layer {desc.digest}: got {reader.compressed_size} bytes, the manifest says "
                            f"{desc.size}: corrupted or tampered")
    if reader.blob_digest != desc.digest:
        raise RegistryError(f"layer {desc.digest}: content digest is {reader.blob_digest}: corrupted or tampered")
    if reader.diff_id != diff_id:
        raise RegistryError(f"layer {desc.digest}: uncompressed digest {reader.diff_id} does not match "
                            f"diff_id {diff_id} of the image config")


def fetch_blob(store: ImageStore, chunks: Iterator[bytes], desc: Descriptor,
               on_bytes: Callable[[int], None] | None = None) -> None:
    with store.content.writer() as w:
        for c in chunks:
            w.write(c)
            if on_bytes:
                on_bytes(len(c))
        w.commit(desc.digest, desc.size)


def _cancellable(it: Iterator[bytes], cancel: threading.Event) -> Iterator[bytes]:
    for chunk in it:
        if cancel.is_set():
            raise Cancelled("cancelled")
        yield chunk


@dataclass
class Resolved:
    top_digest: str
    manifest_digest: str
    manifest: Manifest
    config: dict[str, Any]
    config_digest: str


def resolve(store: ImageStore, client: Any, ref: Reference, platform: str | None,
            new_blobs: list[str]) -> Resolved:
    """Fetch the manifest (through an index when there is one) and the config into the content store."""
    repo = ref.repository
    top = client.get_manifest(repo, ref.reference)
    parsed = parse_manifest(top.data, top.media_type)
    put_new_blob(store, top.data, new_blobs, top.digest)
    mdigest = top.digest
    if isinstance(parsed, Index):
        desc = select_platform(parsed, Platform.parse(platform) if platform else None)
        sub = client.get_manifest(repo, desc.digest)
        parsed = parse_manifest(sub.data, sub.media_type)
        if not isinstance(parsed, Manifest):
            raise RegistryError(f"manifest {desc.digest}: nested indexes are not supported")
        put_new_blob(store, sub.data, new_blobs, sub.digest)
        mdigest = sub.digest
    assert isinstance(parsed, Manifest)
    cdesc = parsed.config
    if cdesc.media_type not in mt.CONFIGS:
        raise RegistryError(f"manifest {mdigest}: config media type {cdesc.media_type} is not an image")
    if store.content.has(cdesc.digest):
        cdata = store.content.read(cdesc.digest)
    else:
        cdata = client.get_blob(repo, cdesc.digest)
        if len(cdata) != cdesc.size:
            raise RegistryError(f"config {cdesc.digest}: got {len(cdata)} bytes, expected {cdesc.size}")
        put_new_blob(store, cdata, new_blobs, cdesc.digest)
    try:
        config = json.loads(cdata)
    except ValueError:
        raise RegistryError(f"config {cdesc.digest}: not JSON") from None
    if platform and mdigest == top.digest:
        # A single-platform image: refuse a mismatch rather than run the wrong architecture.
        want = Platform.parse(platform)
        have = Platform(str(config.get("os", "")), normalize_arch(str(config.get("architecture", ""))))
        if (have.os, have.architecture) != (want.os, want.architecture):
            raise ConfigError("--platform", f"image {ref} is {have}, not {want}")
    return Resolved(top.digest, mdigest, parsed, config, cdesc.digest)


def put_new_blob(store: ImageStore, data: bytes, new_blobs: list[str], digest: str | None = None) -> str:
    """Store ``data`` (checked against ``digest`` if given); a new blob is noted for rollback."""
    if digest is None:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if not store.content.has(digest):
        store.content.put(data, digest)
        new_blobs.append(digest)
    return digest


def plan(store: ImageStore, manifest: Manifest, config: dict[str, Any]) -> tuple[list[LayerJob], list[str], list[str]]:
    diff_ids = config_diff_ids(config)
    layers = manifest.layers
    if len(layers) != len(diff_ids):
        raise RegistryError(f"manifest has {len(layers)} layers but the config has {len(diff_ids)} diff_ids")
    chains = chain_ids(diff_ids)
    jobs: list[LayerJob] = []
    seen: set[str] = set()
    for desc, diff, chain in zip(layers, diff_ids, chains, strict=True):
        if chain in seen:
            continue
        seen.add(chain)
        have_layer = store.snapshotter.has_layer(chain) and store.db.layer(chain) is not None
        if not have_layer:
            jobs.append(LayerJob(desc, diff, chain, True))
        elif not store.content.has(desc.digest):
            jobs.append(LayerJob(desc, diff, chain, False))
    return jobs, diff_ids, chains


def run_jobs(store: ImageStore, jobs: list[LayerJob], source: Callable[[LayerJob], Iterator[bytes]],
             progress: progmod.Progress, new_layers: list[str], new_blobs: list[str]) -> dict[str, int]:
    """Run layer jobs on a bounded pool; the first failure cancels the others. Returns tar sizes."""
    sizes: dict[str, int] = {}
    cancel = threading.Event()
    lock = threading.Lock()

    def one(job: LayerJob) -> None:
        bar = progress.layer(job.desc.digest, job.desc.size)
        chunks = _cancellable(source(job), cancel)
        if job.unpack:
            had_blob = store.content.has(job.desc.digest)
            size = unpack_layer(store, chunks, job.desc, job.diff_id, job.chain_id, bar.advance)
            with lock:
                sizes[job.chain_id] = size
                new_layers.append(job.chain_id)
                if not had_blob:
                    new_blobs.append(job.desc.digest)
        else:
            fetch_blob(store, chunks, job.desc, bar.advance)
            with lock:
                new_blobs.append(job.desc.digest)
        bar.done()

    if not jobs:
        return sizes
    # Biggest first, so the long download starts at once and small layers fill in around it.
    ordered = sorted(jobs, key=lambda j: -j.desc.size)
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(jobs)), thread_name_prefix="hako-pull") as pool:
        futures = [pool.submit(one, j) for j in ordered]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:
            # Ctrl-C: stop the workers at their next chunk instead of finishing every download.
            cancel.set()
            for f in futures:
                f.cancel()
            raise
        failed = [f for f in done if f.exception() is not None]
        if failed:
            cancel.set()
            for f in futures:
                f.cancel()
            wait(futures)
            # Report the real error, not a Cancelled of a sibling.
            errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception()]
            real = [e for e in errors if not isinstance(e, Cancelled)]
            raise (real or errors)[0]  # type: ignore[misc]
    return sizes


def rollback(store: ImageStore, new_layers: list[str], new_blobs: list[str], image_id: str | None) -> None:
    """Undo what a failed pull/load committed, unless another process recorded it meanwhile."""
    if image_id and store.db.image(image_id) is not None:
        return
    for chain in new_layers:
        if store.db.layer(chain) is None:
            try:
                store.snapshotter.remove_layer(chain)
            except (OSError, HakoError):
                pass
    for d in new_blobs:
        store.content.delete(d)


def record(store: ImageStore, r: Resolved, chains: list[str], diff_ids: list[str], sizes: dict[str, int],
           tags: list[str], digests: dict[str, str]) -> str:
    rows = []
    for chain, diff in zip(chains, diff_ids, strict=True):
        if chain in sizes:
            size = sizes[chain]
        else:
            row = store.db.layer(chain)
            size = row.size if row else 0
        rows.append(LayerRow(chain, diff, size))
    image_id = r.config_digest
    created = str(r.config.get("created") or "")
    total = sum({row.chain_id: row.size for row in rows}.values())
    store.db.add_image(image_id, r.manifest_digest, created, total, rows, tags, digests)
    return image_id


def pull(store: ImageStore, ref_str: str, *, platform: str | None = None, tls_verify: bool | None = None,
         quiet: bool = False) -> str:
    from hako.images.registry import RegistryClient

    ref = parse(ref_str)
    progress = progmod.make(quiet)
    new_layers: list[str] = []
    new_blobs: list[str] = []
    image_id = None
    try:
        with RegistryClient(ref.api_host, root=store.root, tls_verify=tls_verify) as client:
            progress.message(f"Trying to pull {ref}...")
            r = resolve(store, client, ref, platform, new_blobs)
            image_id = r.config_digest
            jobs, diff_ids, chains = plan(store, r.manifest, r.config)
            for chain in chains:
                if all(j.chain_id != chain for j in jobs):
                    progress.message(f"Layer {chain[:19]} already present")

            def source(job: LayerJob) -> Iterator[bytes]:
                # A blob we hold already (its snapshot was removed) is unpacked from disk.
                if job.unpack and store.content.has(job.desc.digest):
                    from hako.images.importer import file_chunks

                    return file_chunks(store.content.path(job.desc.digest))
                return client.stream_blob(ref.repository, job.desc.digest)

            sizes = run_jobs(store, jobs, source, progress, new_layers, new_blobs)
            tags = [str(ref)] if ref.tag and not ref.digest else []
            digests = {f"{ref.name}@{r.top_digest}": r.top_digest}
            image_id = record(store, r, chains, diff_ids, sizes, tags, digests)
            progress.message("Writing manifest to image destination")
            return image_id
    except BaseException:
        rollback(store, new_layers, new_blobs, image_id)
        raise
    finally:
        progress.close()
