"""Build OCI/Docker test images in memory from busybox-static, write OCI layouts, push them.

Layers come from directory trees or from explicit tar entries, so tests can make
whiteouts, hardlinks, setuid files, uid 1000 owners and xattrs. Pushing talks to the
registry directly (POST + PUT, then the manifest), independent of hako's push code.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER_TYPES = {
    ("oci", "gzip"): "application/vnd.oci.image.layer.v1.tar+gzip",
    ("oci", "zstd"): "application/vnd.oci.image.layer.v1.tar+zstd",
    ("oci", "none"): "application/vnd.oci.image.layer.v1.tar",
    ("docker", "gzip"): "application/vnd.docker.image.rootfs.diff.tar.gzip",
}
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EPOCH = 1704067200  # 2024-01-01T00:00:00Z: fixed, so rebuilt images have the same digests


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Entry:
    """One tar entry. ``type``: file, dir, symlink, hardlink, fifo, char, block."""

    name: str
    type: str = "file"
    data: bytes = b""
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    link: str = ""
    xattrs: dict[str, str] = field(default_factory=dict)
    mtime: int = EPOCH
    major: int = 0
    minor: int = 0


_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
}


def tar_entries(entries: list[Entry], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """An uncompressed tar of ``entries``, in this order (tests rely on odd orders)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for e in entries:
            ti = tarfile.TarInfo(e.name)
            ti.type = _TYPES[e.type]
            ti.mode = e.mode if e.mode is not None else (0o755 if e.type == "dir" else 0o644)
            ti.uid, ti.gid, ti.mtime = e.uid, e.gid, e.mtime
            ti.uname = ti.gname = ""
            ti.linkname = e.link
            ti.devmajor, ti.devminor = e.major, e.minor
            if e.xattrs:
                ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in e.xattrs.items()}
            if e.type == "file":
                ti.size = len(e.data)
                tf.addfile(ti, io.BytesIO(e.data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def tar_dir(root: Path) -> bytes:
    """A deterministic tar of a directory tree (sorted names, fixed mtimes, numeric owners)."""
    entries: list[Entry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            arc = name if rel == "." else f"{rel}/{name}"
            st = p.lstat()
            mode = st.st_mode & 0o7777
            if p.is_symlink():
                entries.append(
                    Entry(arc, "symlink", link=os.readlink(p), mode=0o777, uid=st.st_uid, gid=st.st_gid)
                )
            elif p.is_dir():
                entries.append(Entry(arc, "dir", mode=mode, uid=st.st_uid, gid=st.st_gid))
            elif p.is_file():
                entries.append(Entry(arc, "file", p.read_bytes(), mode=mode, uid=st.st_uid, gid=st.st_gid))
    return tar_entries(entries)


_BUSYBOX_TAR: bytes | None = None


def busybox_tar() -> bytes:
    """The busybox rootfs of hako.testing.busybox as one layer tar (cached per process)."""
    global _BUSYBOX_TAR
    if _BUSYBOX_TAR is None:
        import tempfile

        from hako.testing.busybox import make_rootfs

        with tempfile.TemporaryDirectory(prefix="hako-bbtar-") as d:
            _BUSYBOX_TAR = tar_dir(make_rootfs(Path(d) / "rootfs"))
    return _BUSYBOX_TAR


def compress(tar: bytes, kind: str = "gzip") -> bytes:
    if kind == "gzip":
        return gzip.compress(tar, compresslevel=1, mtime=0)
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3).compress(tar)
    if kind == "none":
        return tar
    raise ValueError(kind)


@dataclass
class Built:
    """A manifest or index plus every blob below it."""

    media_type: str
    manifest: bytes
    blobs: dict[str, bytes]
    children: list[Built] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    diff_ids: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def config_digest(self) -> str:
        return sha256(json.dumps(self.config, separators=(",", ":"), sort_keys=True).encode())


def build_image(
    layers: list[bytes],
    *,
    compression: str = "gzip",
    flavor: str = "oci",
    architecture: str = "amd64",
    os_: str = "linux",
    variant: str = "",
    config: dict[str, Any] | None = None,
    layer_compressions: list[str] | None = None,
) -> Built:
    """``layers``: uncompressed tars, bottom first. ``flavor``: "oci" or "docker" media types."""
    blobs: dict[str, bytes] = {}
    descs = []
    diff_ids = []
    for i, tar in enumerate(layers):
        kind = layer_compressions[i] if layer_compressions else compression
        blob = compress(tar, kind)
        d = sha256(blob)
        blobs[d] = blob
        descs.append({"mediaType": LAYER_TYPES[(flavor, kind)], "digest": d, "size": len(blob)})
        diff_ids.append(sha256(tar))
    cfg: dict[str, Any] = {
        "created": "2024-01-01T00:00:00Z",
        "architecture": architecture,
        "os": os_,
        "config": {"Env": [PATH_ENV], "Cmd": ["sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(layers))
        ],
    }
    if variant:
        cfg["variant"] = variant
    if config:
        cfg["config"].update(config)
    cdata = json.dumps(cfg, separators=(",", ":"), sort_keys=True).encode()
    blobs[sha256(cdata)] = cdata
    mtype = OCI_MANIFEST if flavor == "oci" else DOCKER_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": mtype,
        "config": {
            "mediaType": OCI_CONFIG if flavor == "oci" else DOCKER_CONFIG,
            "digest": sha256(cdata),
            "size": len(cdata),
        },
        "layers": descs,
    }
    return Built(mtype, json.dumps(manifest, indent=3).encode(), blobs, config=cfg, diff_ids=diff_ids)


def attestation_manifest(subject: Built) -> Built:
    """A buildkit-style attestation: an in-toto layer, platform unknown/unknown."""
    stmt = json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "subject": []}).encode()
    cfg = b'{"architecture":"unknown","os":"unknown","rootfs":{"type":"layers","diff_ids":[]}}'
    blobs = {sha256(stmt): stmt, sha256(cfg): cfg}
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(cfg), "size": len(cfg)},
        "layers": [
            {
                "mediaType": "application/vnd.in-toto+json",
                "digest": sha256(stmt),
                "size": len(stmt),
                "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
            }
        ],
    }
    return Built(OCI_MANIFEST, json.dumps(manifest).encode(), blobs)


def build_index(images: list[Built], *, attest: bool = True, flavor: str = "oci") -> Built:
    entries = []
    children = list(images)
    for img in images:
        p = {"architecture": img.config["architecture"], "os": img.config["os"]}
        if img.config.get("variant"):
            p["variant"] = img.config["variant"]
        entries.append(
            {"mediaType": img.media_type, "digest": img.digest, "size": len(img.manifest), "platform": p}
        )
    if attest and images:
        a = attestation_manifest(images[0])
        children.append(a)
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": a.digest,
                "size": len(a.manifest),
                "platform": {"architecture": "unknown", "os": "unknown"},
                "annotations": {
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": images[0].digest,
                },
            }
        )
    mtype = OCI_INDEX if flavor == "oci" else DOCKER_LIST
    index = {"schemaVersion": 2, "mediaType": mtype, "manifests": entries}
    return Built(mtype, json.dumps(index, indent=3).encode(), {}, children)


def all_blobs(b: Built) -> dict[str, bytes]:
    out = dict(b.blobs)
    for c in b.children:
        out.update(all_blobs(c))
        out[c.digest] = c.manifest
    return out


def write_layout(dest: Path, b: Built, tag: str = "latest") -> Path:
    """An OCI image layout directory (``oci:DEST:TAG`` for skopeo)."""
    blobdir = dest / "blobs" / "sha256"
    blobdir.mkdir(parents=True, exist_ok=True)
    for d, data in {**all_blobs(b), b.digest: b.manifest}.items():
        (blobdir / d[7:]).write_bytes(data)
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": b.media_type,
                "digest": b.digest,
                "size": len(b.manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (dest / "index.json").write_text(json.dumps(index))
    return dest


def push(registry: str, repo: str, tag: str, b: Built, auth: tuple[str, str] | None = None) -> str:
    """Push blobs, child manifests, then ``b`` under ``tag``, straight over HTTP. Returns the digest."""
    import httpx

    with httpx.Client(base_url=f"http://{registry}", auth=auth, timeout=60, trust_env=False) as c:
        for d, data in b.blobs.items():
            if c.head(f"/v2/{repo}/blobs/{d}").status_code == 200:
                continue
            r = c.post(f"/v2/{repo}/blobs/uploads/")
            r.raise_for_status()
            # httpx's params= would replace the query; Location carries a signed _state in it.
            loc = httpx.URL(str(r.url.join(r.headers["Location"]))).copy_merge_params({"digest": d})
            r = c.put(loc, content=data, headers={"Content-Type": "application/octet-stream"})
            r.raise_for_status()
        for child in b.children:
            push(registry, repo, child.digest, child, auth)
        r = c.put(f"/v2/{repo}/manifests/{tag}", content=b.manifest, headers={"Content-Type": b.media_type})
        r.raise_for_status()
    return b.digest


def layered_layers() -> list[bytes]:
    """Three layers above busybox exercising whiteouts, opaque dirs, hardlinks, setuid, owners, xattrs."""
    E = Entry
    l1 = tar_entries(
        [
            E("opt", "dir"),
            E("opt/app", "dir"),
            E("opt/app/config.txt", data=b"version=1\n"),
            E("opt/app/data", "dir"),
            E("opt/app/data/a", data=b"a"),
            E("opt/app/data/sub", "dir"),
            E("opt/app/data/sub/c", data=b"c"),
            E("opt/remove-me.txt", data=b"bye"),
            E("opt/replace-dir", "dir"),
            E("opt/replace-dir/old1", data=b"1"),
            E("opt/replace-dir/sub", "dir"),
            E("opt/replace-dir/sub/old3", data=b"3"),
            E("opt/dir-to-file", "dir"),
            E("opt/dir-to-file/child.txt", data=b"child"),
            E("opt/file-to-dir", data=b"file"),
            E("opt/recreated.txt", data=b"old"),
            E("etc/motd", data=b"hello\n"),
        ]
    )
    l2 = tar_entries(
        [
            E("opt", "dir"),
            E("opt/.wh.remove-me.txt"),
            E("opt/.wh.never-existed"),
            E("opt/app", "dir"),
            E("opt/app/config.txt", data=b"version=2\n"),
            E("opt/app/data", "dir"),
            E("opt/app/data/.wh.sub"),
            E("usr/bin", "dir"),
            E("usr/bin/.wh.wget"),
            E("opt/replace-dir", "dir"),
            E("opt/replace-dir/new.txt", data=b"new"),
            E("opt/replace-dir/.wh..wh..opq"),
            E("opt/.wh.recreated.txt"),
            E("opt/recreated.txt", data=b"new"),
            E("opt/dir-to-file", data=b"now a file"),
            E("opt/file-to-dir", "dir"),
            E("opt/file-to-dir/inside.txt", data=b"inside"),
        ]
    )
    l3 = tar_entries(
        [
            E("opt/original.txt", data=b"original\n"),
            E("opt/hardlink.txt", "hardlink", link="opt/original.txt"),
            E("opt/rel-link", "symlink", link="original.txt"),
            E("opt/dangling", "symlink", link="/nonexistent"),
            E("opt/setuid-bin", data=b"#!/bin/sh\n", mode=0o4755),
            E("opt/setgid-dir", "dir", mode=0o2775),
            E("opt/owned-by-1000.txt", data=b"mine\n", mode=0o640, uid=1000, gid=1000),
            E("home/user", "dir", mode=0o750, uid=1000, gid=1000),
            E("opt/xattr.txt", data=b"x", xattrs={"user.hako": "test-value"}),
            E("opt/empty", data=b""),
            E("opt/deep/no/parent/entry.txt", data=b"deep"),
        ]
    )
    return [l1, l2, l3]


# -- a real registry (Debian's docker-registry) on 127.0.0.1 --------------------------------
@dataclass
class RegistryProcess:
    host: str  # "127.0.0.1:PORT"
    dir: Path
    pid: int
    auth: tuple[str, str] | None = None
    proc: Any = None  # the Popen, so stopping it also reaps it

    @property
    def storage(self) -> Path:
        return self.dir / "storage"

    def blob_path(self, digest: str) -> Path:
        h = digest[7:]
        return self.storage / "docker/registry/v2/blobs/sha256" / h[:2] / h / "data"

    def stop(self) -> None:
        import signal
        import subprocess

        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(
    dir: Path, *, basic_auth: tuple[str, str] | None = None, token_auth: dict[str, str] | None = None
) -> RegistryProcess:
    """Start docker-registry with a config written here; ``env -i`` because any REGISTRY_*
    variable would override the config. ``token_auth``: realm, service, issuer, rootcertbundle."""
    import subprocess
    import time

    import httpx

    dir.mkdir(parents=True, exist_ok=True)
    (dir / "storage").mkdir(exist_ok=True)
    port = free_port()
    cfg = f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {dir}/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: hako-test-http-secret
"""
    if basic_auth:
        out = subprocess.run(
            ["htpasswd", "-Bbn", basic_auth[0], basic_auth[1]], check=True, capture_output=True, text=True
        ).stdout
        (dir / "htpasswd").write_text(out)
        cfg += f"auth:\n  htpasswd:\n    realm: hako-test-registry\n    path: {dir}/htpasswd\n"
    if token_auth:
        cfg += "auth:\n  token:\n" + "".join(f"    {k}: {v}\n" for k, v in token_auth.items())
    (dir / "config.yml").write_text(cfg)
    log = open(dir / "registry.log", "wb")
    proc = subprocess.Popen(
        [
            "env",
            "-i",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            f"HOME={dir}",
            "docker-registry",
            "serve",
            str(dir / "config.yml"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    reg = RegistryProcess(f"127.0.0.1:{port}", dir, proc.pid, basic_auth, proc)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {(dir / 'registry.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://{reg.host}/v2/", timeout=1, trust_env=False).status_code in (200, 401):
                return reg
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    reg.stop()
    raise RuntimeError(f"docker-registry did not answer on {reg.host}")


class SlowProxy:
    """A TCP proxy on 127.0.0.1 that forwards the upstream's answers at ``rate`` bytes/s, so
    a test can catch a pull in the middle of a layer."""

    def __init__(self, upstream: str, rate: int = 0, cut_after: int = 0) -> None:
        import socket
        import threading

        self.upstream = upstream
        self.rate = rate
        # cut_after: the first answer stream to pass this many bytes is cut (once), to test resuming.
        self.cut_after = cut_after
        self.cuts = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            h, p = self.upstream.rsplit(":", 1)
            up = socket.create_connection((h, int(p)))
            threading.Thread(target=self._pump, args=(client, up, 0), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, self.rate, True), daemon=True).start()

    def _pump(self, src: Any, dst: Any, rate: int, answers: bool = False) -> None:
        import time

        step = max(rate // 20, 1024) if rate else 65536
        sent = 0
        try:
            while not self._stop.is_set():
                data = src.recv(step)
                if not data:
                    break
                dst.sendall(data)
                sent += len(data)
                if answers and self.cut_after and not self.cuts and sent > self.cut_after:
                    self.cuts += 1
                    break
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            import socket

            for s in (src, dst):
                try:
                    # shutdown, not just close: the other pump thread still holds the socket,
                    # and only shutdown sends the FIN at once.
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
