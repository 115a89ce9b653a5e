"""``hako image inspect``: Docker-shaped JSON built from the stored config and metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hako.errors import HakoError
from hako.images.reference import InvalidReference, parse

if TYPE_CHECKING:
    from hako.images.store import Image, ImageStore


def familiar(name: str) -> str:
    try:
        return parse(name, default_tag=False).familiar()
    except InvalidReference:
        return name


def docker_inspect(store: ImageStore, image: Image) -> dict[str, Any]:
    c = image.config
    history = c.get("history") or []
    return {
        "Id": image.id,
        "RepoTags": [familiar(t) for t in image.repo_tags],
        "RepoDigests": [familiar(d) for d in image.repo_digests],
        "Parent": "",
        "Comment": (history[-1].get("comment", "") if history and isinstance(history[-1], dict) else ""),
        "Created": image.created or c.get("created", ""),
        "DockerVersion": c.get("docker_version", ""),
        "Author": c.get("author", ""),
        "Config": c.get("config") or {},
        "Architecture": c.get("architecture", ""),
        "Variant": c.get("variant", ""),
        "Os": c.get("os", ""),
        "Size": image.size,
        "VirtualSize": image.size,
        "GraphDriver": {"Name": "overlay", "Data": {
            "LowerDirs": ":".join(str(p) for p in reversed(_layer_dirs(store, image)))}},
        "RootFS": {"Type": "layers", "Layers": list(image.layers)},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        "ManifestDigest": image.manifest_digest,
    }


def _layer_dirs(store: ImageStore, image: Image) -> list[Any]:
    try:
        return store.layer_dirs(image)
    except (HakoError, OSError):  # inspect works even when the snapshotter is unavailable
        return []
