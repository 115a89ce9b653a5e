"""``hako import``: a root filesystem tarball becomes a one-layer image (``docker import``).

The tarball may be plain, gzip, zstd, xz or bzip2. Its tar stream is stored once as an
uncompressed layer blob (so its digest is the diff_id) and then unpacked from there: the
chain id, the snapshot's name, is only known once the whole stream was hashed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hako.errors import NotFound
from hako.images import mediatypes as mt
from hako.images.manifest import Descriptor, host_platform, manifest_json
from hako.images.stream import LayerReader

if TYPE_CHECKING:
    from hako.images.store import ImageStore

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
READ = 1 << 20


def file_chunks(path: Path, size: int = READ) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def import_tarball(store: ImageStore, path: Path, ref: str | None, *, message: str = "",
                   changes: dict[str, Any] | None = None) -> str:
    from hako.images.puller import Resolved, put_new_blob, record, rollback, unpack_layer
    from hako.images.reference import parse

    if not path.is_file():
        raise NotFound(f"tarball {path} not found")
    with open(path, "rb") as f:
        head = f.read(8)
    compression = mt.sniff_compression(head)
    target = parse(ref) if ref else None
    new_layers: list[str] = []
    new_blobs: list[str] = []
    image_id = None
    try:
        # Pass 1: decompress into an uncompressed blob; its digest is the diff_id.
        with store.content.writer() as w:
            reader = LayerReader(file_chunks(path), compression)
            while data := reader.read(READ):
                w.write(data)
            diff_id = w.commit()
            size = w.size
        if not w.existed:
            new_blobs.append(diff_id)
        desc = Descriptor(mt.OCI_LAYER, diff_id, size)
        chain_id = diff_id
        sizes: dict[str, int] = {}
        if not (store.snapshotter.has_layer(chain_id) and store.db.layer(chain_id)):
            sizes[chain_id] = unpack_layer(store, file_chunks(store.content.path(diff_id)), desc, diff_id,
                                           chain_id, keep_blob=False)
            new_layers.append(chain_id)
        created = now_rfc3339()
        plat = host_platform()
        cfg: dict[str, Any] = {"Env": [DEFAULT_PATH]}
        cfg.update(changes or {})
        config: dict[str, Any] = {
            "created": created, "architecture": plat.architecture, "os": plat.os,
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": created, "created_by": "hako import",
                         "comment": message or f"imported from {path.name}"}],
        }
        if plat.variant:
            config["variant"] = plat.variant
        cdata = json.dumps(config, separators=(",", ":")).encode()
        cdigest = put_new_blob(store, cdata, new_blobs)
        image_id = cdigest
        mdata = manifest_json(Descriptor(mt.OCI_CONFIG, cdigest, len(cdata)), [desc])
        mdigest = put_new_blob(store, mdata, new_blobs)
        from hako.images.manifest import parse_manifest

        manifest = parse_manifest(mdata)
        r = Resolved(mdigest, mdigest, manifest, config, cdigest)  # type: ignore[arg-type]
        tags = [str(target)] if target and target.tag else []
        return record(store, r, [chain_id], [diff_id], sizes, tags, {})
    except BaseException:
        rollback(store, new_layers, new_blobs, image_id)
        raise

