"""``hako save`` / ``hako load``: OCI layout archives (oci-archive) and docker-archive tars.

oci-archive: ``oci-layout``, ``index.json`` (one entry per saved name, annotated with
``org.opencontainers.image.ref.name`` and ``io.containerd.image.name``), ``blobs/sha256/*``
exactly as pulled. docker-archive: ``manifest.json``, ``repositories``, ``<config>.json``
and one uncompressed ``<diff_id>.tar`` per layer, as skopeo and ``docker save`` write them.
Both load into podman, skopeo and Docker, and back into hako.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hako.errors import ConfigError, HakoError, NotFound
from hako.images import mediatypes as mt
from hako.images.manifest import Descriptor, Index, Manifest, manifest_json, parse_manifest, select_platform
from hako.images.reference import InvalidReference, parse
from hako.images.stream import LayerReader

if TYPE_CHECKING:
    from hako.images.store import Image, ImageStore

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
FORMATS = ("oci-archive", "docker-archive")


# -- save ------------------------------------------------------------------------------
def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = 0o644
    tf.addfile(ti, io.BytesIO(data))


def _add_blob(tf: tarfile.TarFile, store: ImageStore, name: str, digest: str) -> None:
    path = store.content.path(digest)
    if not path.exists():
        raise NotFound(f"blob {digest} is not in the content store; pull the image again to save it")
    ti = tarfile.TarInfo(name)
    ti.size = path.stat().st_size
    ti.mode = 0o644
    with open(path, "rb") as f:
        tf.addfile(ti, f)


def _manifest(store: ImageStore, image: Image) -> Manifest:
    m = parse_manifest(store.content.read(image.manifest_digest))
    if not isinstance(m, Manifest):
        raise HakoError(f"image {image.short_id}: stored manifest is not a manifest")
    return m


def save(store: ImageStore, refs: list[str], output: Path, fmt: str = "oci-archive") -> None:
    if fmt not in FORMATS:
        raise ConfigError("--format", f"unknown format {fmt!r}: use oci-archive or docker-archive")
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    os.close(fd)
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
            if fmt == "oci-archive":
                _save_oci(store, refs, tf)
            else:
                _save_docker(store, refs, tf)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _names(store: ImageStore, ref: str, image: Image) -> list[str]:
    """The names a saved ref stands for: itself if it names a tag, else the image's tags."""
    try:
        r = parse(ref)
        if str(r) in image.repo_tags:
            return [str(r)]
    except InvalidReference:
        pass
    return list(image.repo_tags)


def _save_oci(store: ImageStore, refs: list[str], tf: tarfile.TarFile) -> None:
    entries: list[dict[str, Any]] = []
    blobs: list[str] = []
    for ref in refs:
        image = store.get(ref)
        m = _manifest(store, image)
        size = store.content.size(image.manifest_digest)
        for d in [image.manifest_digest, m.config.digest, *(lay.digest for lay in m.layers)]:
            if d not in blobs:
                blobs.append(d)
        names = _names(store, ref, image) or [""]
        for name in names:
            ann = {REF_NAME: name, CONTAINERD_NAME: name} if name else {}
            entries.append(Descriptor(m.media_type, image.manifest_digest, size, ann).to_json())
    _add_bytes(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    tf.addfile(_dir("blobs"))
    tf.addfile(_dir("blobs/sha256"))
    for d in blobs:
        _add_blob(tf, store, f"blobs/sha256/{d[7:]}", d)
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
    _add_bytes(tf, "index.json", json.dumps(index).encode())


def _dir(name: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    return ti


def _save_docker(store: ImageStore, refs: list[str], tf: tarfile.TarFile) -> None:
    out: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    for ref in refs:
        image = store.get(ref)
        m = _manifest(store, image)
        cname = f"{image.id[7:]}.json"
        if cname not in written:
            _add_bytes(tf, cname, store.content.read(image.id))
            written.add(cname)
        layer_names = []
        for lay, diff_id, chain in zip(m.layers, image.layers, image.chain_ids, strict=True):
            name = f"{diff_id[7:]}.tar"
            layer_names.append(name)
            if name in written:
                continue
            written.add(name)
            comp = mt.layer_compression(lay.media_type) or "none"
            row = store.db.layer(chain)
            size = row.size if row and row.size else _tar_size(store, lay.digest, comp)
            ti = tarfile.TarInfo(name)
            ti.size = size
            ti.mode = 0o644
            reader = LayerReader(_chunks(store.content.path(lay.digest)), comp)
            tf.addfile(ti, reader)
            reader.drain()
            if reader.diff_id != diff_id:
                raise HakoError(f"layer {lay.digest}: stored blob does not match diff_id {diff_id}")
        tags = []
        for name in _names(store, ref, image):
            r = parse(name)
            fam = r.familiar()
            tags.append(fam)
            repo = fam.rsplit(":", 1)[0]
            repositories.setdefault(repo, {})[r.tag or "latest"] = image.layers[-1][7:] if image.layers else ""
        out.append({"Config": cname, "RepoTags": tags or None, "Layers": layer_names})
    _add_bytes(tf, "manifest.json", json.dumps(out).encode())
    if repositories:
        _add_bytes(tf, "repositories", json.dumps(repositories).encode())


def _tar_size(store: ImageStore, digest: str, comp: str) -> int:
    reader = LayerReader(_chunks(store.content.path(digest)), comp)
    reader.drain()
    return reader.size


def _chunks(path: Path, start: int = 0, length: int | None = None) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        left = length
        while left is None or left > 0:
            chunk = f.read(1 << 20 if left is None else min(1 << 20, left))
            if not chunk:
                break
            if left is not None:
                left -= len(chunk)
            yield chunk


# -- load ------------------------------------------------------------------------------
@dataclass
class _Member:
    offset: int
    size: int


class _Archive:
    """Random access to an uncompressed tar's members by (normalised) name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.members: dict[str, _Member] = {}
        with tarfile.open(path, "r:") as tf:
            for ti in tf:
                if ti.isfile():
                    self.members[ti.name.removeprefix("./")] = _Member(ti.offset_data, ti.size)

    def has(self, name: str) -> bool:
        return name in self.members

    def read(self, name: str) -> bytes:
        m = self._m(name)
        return b"".join(_chunks(self.path, m.offset, m.size))

    def chunks(self, name: str) -> Iterator[bytes]:
        m = self._m(name)
        return _chunks(self.path, m.offset, m.size)

    def _m(self, name: str) -> _Member:
        name = name.removeprefix("./")
        if name not in self.members:
            raise HakoError(f"archive {self.path}: member {name} missing")
        return self.members[name]

    def blob_name(self, digest: str) -> str:
        return f"blobs/sha256/{digest[7:]}"


class _LayoutDir(_Archive):
    """An OCI image layout directory (``oci:DIR``), read like an archive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.members = {}

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    def read(self, name: str) -> bytes:
        return self._file(name).read_bytes()

    def chunks(self, name: str) -> Iterator[bytes]:
        return _chunks(self._file(name))

    def _file(self, name: str) -> Path:
        p = self.path / name.removeprefix("./")
        if ".." in Path(name).parts or not p.is_file():
            raise HakoError(f"layout {self.path}: {name} missing")
        return p


def load(store: ImageStore, path: Path, quiet: bool = True, tag: str | None = None) -> list[str]:
    """Load every image of an archive (or OCI layout directory); ``tag`` picks one ref.name."""
    if path.is_dir():
        layout = _LayoutDir(path)
        if not layout.has("index.json"):
            raise HakoError(f"{path}: not an OCI image layout (no index.json)")
        return _load_oci(store, layout, tag)
    if not path.is_file():
        raise NotFound(f"archive {path} not found")
    with open(path, "rb") as f:
        comp = mt.sniff_compression(f.read(8))
    tmpdir = None
    try:
        if comp != "none":
            # Random access to members needs an uncompressed tar; decompress once.
            tmpdir = tempfile.mkdtemp(dir=store.content.tmp_dir, prefix="load-")
            plain = Path(tmpdir) / "archive.tar"
            with open(plain, "wb") as out:
                reader = LayerReader(_chunks(path), comp)
                while data := reader.read(1 << 20):
                    out.write(data)
            path = plain
        try:
            ar = _Archive(path)
        except tarfile.TarError as exc:
            raise HakoError(f"archive {path}: not a tar: {exc}") from None
        if ar.has("oci-layout") and ar.has("index.json"):
            return _load_oci(store, ar, tag)
        if ar.has("manifest.json"):
            return _load_docker(store, ar)
        raise HakoError(f"archive {path}: neither an OCI layout nor a docker-archive")
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)


def _read_checked(ar: _Archive, name: str, digest: str, what: str) -> bytes:
    """Member ``name``, refused unless its content hashes to ``digest``."""
    data = ar.read(name)
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise HakoError(f"archive {ar.path}: {what} {digest} ({name}) does not match its digest")
    return data


def _load_image(store: ImageStore, ar: _Archive, mdata: bytes, mdigest: str, m: Manifest,
                tags: list[str], digests: dict[str, str], blob_name: Any) -> str:
    from hako.images import progress as progmod
    from hako.images.puller import LayerJob, Resolved, plan, put_new_blob, record, rollback, run_jobs

    new_layers: list[str] = []
    new_blobs: list[str] = []
    cdata = _read_checked(ar, blob_name(m.config), m.config.digest, "config")
    image_id = m.config.digest
    try:
        put_new_blob(store, mdata, new_blobs, mdigest)
        put_new_blob(store, cdata, new_blobs, m.config.digest)
        config = json.loads(cdata)
        r = Resolved(mdigest, mdigest, m, config, m.config.digest)
        jobs, diff_ids, chains = plan(store, m, config)

        def source(job: LayerJob) -> Iterator[bytes]:
            return ar.chunks(blob_name(job.desc))

        sizes = run_jobs(store, jobs, source, progmod.make(True), new_layers, new_blobs)
        return record(store, r, chains, diff_ids, sizes, tags, digests)
    except BaseException:
        rollback(store, new_layers, new_blobs, image_id)
        raise


def _load_oci(store: ImageStore, ar: _Archive, tag: str | None = None) -> list[str]:
    index = parse_manifest(ar.read("index.json"))
    if not isinstance(index, Index):
        raise HakoError(f"archive {ar.path}: index.json is not an image index")
    entries = index.manifests
    if tag:
        entries = [d for d in entries if tag in (d.annotations.get(REF_NAME), d.annotations.get(CONTAINERD_NAME))]
        if not entries:
            raise NotFound(f"{ar.path}: no image named {tag!r}")
    ids = []
    for desc in entries:
        name = desc.annotations.get(CONTAINERD_NAME) or desc.annotations.get(REF_NAME) or ""
        tags = []
        # A bare tag ("latest", as skopeo writes for oci:DIR:latest) names no repository.
        if name and ("/" in name or ":" in name):
            try:
                tags = [str(parse(name))]
            except InvalidReference:
                tags = []
        mdigest = desc.digest
        mdata = _read_checked(ar, ar.blob_name(mdigest), mdigest, "manifest")
        m = parse_manifest(mdata, desc.media_type)
        if isinstance(m, Index):
            child = select_platform(m)
            mdigest = child.digest
            mdata = _read_checked(ar, ar.blob_name(mdigest), mdigest, "manifest")
            m = parse_manifest(mdata, child.media_type)
        assert isinstance(m, Manifest)
        ids.append(_load_image(store, ar, mdata, mdigest, m, tags, {},
                               lambda d: ar.blob_name(d.digest)))
    return ids


def _load_docker(store: ImageStore, ar: _Archive) -> list[str]:
    try:
        entries = json.loads(ar.read("manifest.json"))
    except ValueError:
        raise HakoError(f"archive {ar.path}: manifest.json is not JSON") from None
    if not isinstance(entries, list):
        raise HakoError(f"archive {ar.path}: manifest.json must be a list")
    ids = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise ConfigError(f"{ar.path}: manifest.json[{i}]", "must be an object")
        cname = e.get("Config")
        if not isinstance(cname, str):
            raise ConfigError(f"manifest.json[{i}].Config", "missing")
        cdata = ar.read(cname)
        cdigest = "sha256:" + hashlib.sha256(cdata).hexdigest()
        layers: list[Descriptor] = []
        names: dict[str, str] = {}
        for lname in e.get("Layers") or []:
            # The blob digest is needed up front for verification: hash the member once.
            h = hashlib.sha256()
            head = b""
            size = 0
            for c in ar.chunks(lname):
                if not head:
                    head = c[:8]
                h.update(c)
                size += len(c)
            comp = mt.sniff_compression(head)
            media = {"none": mt.OCI_LAYER, "gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD}.get(comp)
            if media is None:
                raise HakoError(f"archive {ar.path}: layer {lname} uses unsupported compression {comp}")
            digest = "sha256:" + h.hexdigest()
            layers.append(Descriptor(media, digest, size))
            names[digest] = lname
        config_desc = Descriptor(mt.OCI_CONFIG, cdigest, len(cdata))
        mdata = manifest_json(config_desc, layers)
        mdigest = "sha256:" + hashlib.sha256(mdata).hexdigest()
        m = parse_manifest(mdata)
        assert isinstance(m, Manifest)
        tags = []
        for t in e.get("RepoTags") or []:
            try:
                tags.append(str(parse(t)))
            except InvalidReference:
                pass

        def blob_name(d: Descriptor, names: dict[str, str] = names, cname: str = cname,
                      cdigest: str = cdigest) -> str:
            return cname if d.digest == cdigest else names[d.digest]

        ids.append(_load_image(store, ar, mdata, mdigest, m, tags, {}, blob_name))
    return ids
