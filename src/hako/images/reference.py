"""Image references: ``[registry/]repository[:tag][@digest]``, normalised the way Docker does.

A name without a registry is on Docker Hub (``docker.io``), and a one-component
repository there lives under ``library/``. The first component is a registry when it
contains a dot or a colon, or is ``localhost``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hako.errors import HakoError

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}\Z")
_DOMAIN = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?\Z"
                     r"|\[[0-9a-fA-F:]+\](?::[0-9]+)?\Z")
SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")


class InvalidReference(HakoError):
    pass


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        # Docker Hub's API lives on a different host than its name.
        return "registry-1.docker.io" if self.registry == DEFAULT_REGISTRY else self.registry

    @property
    def reference(self) -> str:
        """What goes into ``/v2/<name>/manifests/<reference>``: the digest wins over the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()

    def familiar(self) -> str:
        """The short form Docker prints: ``busybox:latest`` for ``docker.io/library/busybox:latest``."""
        if self.registry == DEFAULT_REGISTRY:
            return self.repository.removeprefix("library/") + self._suffix()
        return str(self)


def parse(ref: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise; ``default_tag`` adds ``latest`` when neither tag nor digest is given."""
    if not ref or ref != ref.strip():
        raise InvalidReference(f"invalid reference {ref!r}")
    rest = ref
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidReference(f"invalid reference {ref!r}: bad digest {digest!r}")
        if digest.startswith("sha256:") and not SHA256_HEX.match(digest[7:]):
            raise InvalidReference(f"invalid reference {ref!r}: bad sha256 digest")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidReference(f"invalid reference {ref!r}: bad tag {tag!r}")
    parts = rest.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"
                           or parts[0] != parts[0].lower()):
        registry, repo_parts = parts[0], parts[1:]
        if not _DOMAIN.match(registry):
            raise InvalidReference(f"invalid reference {ref!r}: bad registry {registry!r}")
    else:
        registry, repo_parts = DEFAULT_REGISTRY, parts
    if registry == "index.docker.io":
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and len(repo_parts) == 1:
        repo_parts = ["library", *repo_parts]
    for comp in repo_parts:
        if not _COMPONENT.match(comp):
            raise InvalidReference(f"invalid reference {ref!r}: repository name must be lowercase "
                                   f"alphanumerics separated by . _ __ -")
    repository = "/".join(repo_parts)
    if len(registry) + 1 + len(repository) > 255:
        raise InvalidReference(f"invalid reference {ref!r}: name too long")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(registry, repository, tag, digest)


def is_image_id(s: str) -> bool:
    """A full or short (>= 3 hex chars) image id, with or without ``sha256:``."""
    h = s.removeprefix("sha256:")
    return 3 <= len(h) <= 64 and all(c in "0123456789abcdef" for c in h)
