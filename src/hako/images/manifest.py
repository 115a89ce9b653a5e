"""OCI/Docker manifests, indexes and image configs, parsed into dataclasses, and platform choice.

Parsing checks the fields hako relies on and names the JSON path of what is wrong.
"""

from __future__ import annotations

import json
import platform as _platform
from dataclasses import dataclass, field
from typing import Any

from hako.errors import ConfigError
from hako.images import mediatypes as mt
from hako.images.reference import is_sha256_hex

ATTESTATION_REF_TYPE = "vnd.docker.reference.type"


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @staticmethod
    def parse(s: str) -> Platform:
        parts = s.split("/")
        if len(parts) < 2 or len(parts) > 3 or not all(parts):
            raise ConfigError("--platform", f"invalid platform {s!r}: want os/arch[/variant]")
        os_, arch = parts[0], normalize_arch(parts[1])
        variant = parts[2] if len(parts) == 3 else ""
        if arch == "arm64" and variant == "v8":
            variant = ""
        return Platform(os_, arch, variant)


def normalize_arch(arch: str) -> str:
    return {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "i686": "386",
            "i386": "386"}.get(arch, arch)


def host_platform() -> Platform:
    arch = normalize_arch(_platform.machine())
    variant = "v7" if arch == "arm" else ""
    return Platform("linux", arch, variant)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    urls: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform is not None:
            d["platform"] = {"architecture": self.platform.architecture, "os": self.platform.os}
            if self.platform.variant:
                d["platform"]["variant"] = self.platform.variant
        return d


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: list[Descriptor]
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: list[Descriptor]
    annotations: dict[str, str] = field(default_factory=dict)


def _descriptor(obj: Any, path: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise ConfigError(path, "descriptor must be an object")
    mt_ = obj.get("mediaType")
    digest = obj.get("digest")
    size = obj.get("size")
    if not isinstance(mt_, str):
        raise ConfigError(f"{path}.mediaType", "missing or not a string")
    if not isinstance(digest, str) or ":" not in digest:
        raise ConfigError(f"{path}.digest", f"invalid digest {digest!r}")
    if not digest.startswith("sha256:"):
        raise ConfigError(f"{path}.digest", f"unsupported digest {digest!r}: only sha256")
    # Digests become URL and file path components: nothing but 64 lower-case hex digits.
    if not is_sha256_hex(digest[7:]):
        raise ConfigError(f"{path}.digest", f"invalid sha256 digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ConfigError(f"{path}.size", f"invalid size {size!r}")
    plat = None
    p = obj.get("platform")
    if isinstance(p, dict):
        plat = Platform(str(p.get("os", "")), normalize_arch(str(p.get("architecture", ""))),
                        str(p.get("variant", "")))
    ann = obj.get("annotations") or {}
    if not isinstance(ann, dict):
        raise ConfigError(f"{path}.annotations", "must be an object")
    return Descriptor(mt_, digest, size, {str(k): str(v) for k, v in ann.items()}, plat,
                      tuple(obj.get("urls") or ()))


def parse_manifest(data: bytes, media_type: str | None = None) -> Manifest | Index:
    """Parse a manifest or index; ``media_type`` is the Content-Type when the body lacks one."""
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise ConfigError("manifest", f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ConfigError("manifest", "must be a JSON object")
    mtype = obj.get("mediaType") or media_type or ""
    if ";" in mtype:
        mtype = mtype.split(";", 1)[0].strip()
    if not mtype or mtype in ("application/json", "application/octet-stream"):
        # OCI allows omitting mediaType; decide by shape.
        mtype = mt.OCI_INDEX if "manifests" in obj else mt.OCI_MANIFEST
    if mtype in (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED) or obj.get("schemaVersion") == 1:
        raise ConfigError("manifest.schemaVersion", "Docker schema 1 manifests are not supported")
    if obj.get("schemaVersion") != 2:
        raise ConfigError("manifest.schemaVersion", f"must be 2, got {obj.get('schemaVersion')!r}")
    ann = {str(k): str(v) for k, v in (obj.get("annotations") or {}).items()}
    if mtype in mt.INDEXES:
        ms = obj.get("manifests")
        if not isinstance(ms, list):
            raise ConfigError("index.manifests", "must be a list")
        return Index(mtype, [_descriptor(m, f"index.manifests[{i}]") for i, m in enumerate(ms)], ann)
    if mtype in mt.MANIFESTS:
        layers = obj.get("layers")
        if not isinstance(layers, list):
            raise ConfigError("manifest.layers", "must be a list")
        return Manifest(mtype, _descriptor(obj.get("config"), "manifest.config"),
                        [_descriptor(lay, f"manifest.layers[{i}]") for i, lay in enumerate(layers)], ann)
    raise ConfigError("manifest.mediaType", f"unsupported media type {mtype!r}")


def is_attestation(desc: Descriptor) -> bool:
    if desc.annotations.get(ATTESTATION_REF_TYPE) == "attestation-manifest":
        return True
    return desc.platform is not None and desc.platform.os == "unknown" and desc.platform.architecture == "unknown"


def select_platform(index: Index, want: Platform | None = None) -> Descriptor:
    """The best manifest of an index for ``want`` (default: this host), skipping attestations.

    An exact variant match wins; otherwise an entry without variant; otherwise the first
    entry with the right os/arch.
    """
    want = want or host_platform()
    candidates = [d for d in index.manifests
                  if not is_attestation(d) and d.media_type in (*mt.MANIFESTS, *mt.INDEXES)]
    best: Descriptor | None = None
    best_score = -1
    for d in candidates:
        p = d.platform
        if p is None:
            if len(candidates) == 1:
                return d
            continue
        if p.os != want.os or p.architecture != want.architecture:
            continue
        pv = "" if (p.architecture == "arm64" and p.variant == "v8") else p.variant
        score = 2 if pv == want.variant else (1 if not pv or not want.variant else 0)
        if score > best_score:
            best, best_score = d, score
    if best is None:
        avail = ", ".join(str(d.platform) for d in candidates if d.platform) or "none"
        raise ConfigError("--platform", f"no image for platform {want} (available: {avail})")
    return best


def manifest_json(config: Descriptor, layers: list[Descriptor], media_type: str = mt.OCI_MANIFEST,
                  annotations: dict[str, str] | None = None) -> bytes:
    """Serialize a manifest deterministically (the bytes are what gets digested)."""
    obj: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, "config": config.to_json(),
                           "layers": [lay.to_json() for lay in layers]}
    if annotations:
        obj["annotations"] = annotations
    return json.dumps(obj, separators=(",", ":")).encode()


def config_diff_ids(config: dict[str, Any]) -> list[str]:
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise ConfigError("config.rootfs", "must be an object with type \"layers\"")
    ids = rootfs.get("diff_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) and i.startswith("sha256:") for i in ids):
        raise ConfigError("config.rootfs.diff_ids", "must be a list of sha256 digests")
    return list(ids)


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    import hashlib

    out: list[str] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out
