"""Image references: ``[registry/]repository[:tag][@digest]``, normalised the way Docker does.

A name without a registry is on Docker Hub (``docker.io``), and a one-component
repository there lives under ``library/``. The first component is a registry when it
contains a dot or a colon, or is ``localhost``.
"""

from __future__ import annotations

from hako.errors import HakoError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"

# ``hako run IMAGE`` parses a reference on its way to the container: the common parts are checked
# with str methods, and the re module (with enum, functools, ...) loads only for registries and
# digests, compiled once on first use.
_PATTERNS = {
    "digest": r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}\Z",
    "sha256": r"[0-9a-f]{64}\Z",
}
_compiled: dict[str, re.Pattern[str]] = {}
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_LABEL = _ALNUM | {"-"}
_IPV6 = frozenset("0123456789abcdefABCDEF:")
_HEX = frozenset("0123456789abcdef")


def _pattern(name: str) -> re.Pattern[str]:
    p = _compiled.get(name)
    if p is None:
        import re

        p = _compiled[name] = re.compile(_PATTERNS[name])
    return p


def __getattr__(name: str) -> re.Pattern[str]:
    # SHA256_HEX (a compiled pattern) stays importable; it is compiled when first asked for.
    if name == "SHA256_HEX":
        return _pattern("sha256")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_sha256_hex(s: str) -> bool:
    """64 lower-case hex digits (``SHA256_HEX.match``)."""
    return len(s) == 64 and set(s) <= _HEX


def valid_component(comp: str) -> bool:
    """A repository path component: ``[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*``."""
    sep = ""
    prev_alnum = False
    for c in comp:
        if c in _LOWER_ALNUM:
            if sep and sep not in (".", "_", "__") and sep.strip("-"):
                return False
            sep = ""
            prev_alnum = True
        elif c in "._-":
            if not prev_alnum and not sep:
                return False  # a leading separator
            sep += c
            prev_alnum = False
        else:
            return False
    return prev_alnum


def _port(text: str) -> bool:
    return bool(text) and text.isascii() and text.isdigit()


def valid_domain(domain: str) -> bool:
    """A registry host: the ``domain`` pattern (``host[.labels][:port]`` or ``[ipv6][:port]``)."""
    if domain.startswith("["):
        inner, bracket, rest = domain[1:].partition("]")
        if not bracket or not inner or not set(inner) <= _IPV6:
            return False
        return rest == "" or (rest[0] == ":" and _port(rest[1:]))
    host, colon, port = domain.partition(":")
    if colon and not _port(port):
        return False
    first, *others = host.split(".")
    if not first or first[0] not in _ALNUM or first[-1] not in _ALNUM or not set(first) <= _LABEL:
        return False
    return all(label and set(label) <= _LABEL for label in others)


def valid_tag(tag: str) -> bool:
    """``[\\w][\\w.-]{0,127}``: a word character, then word characters, dots and dashes."""
    return (0 < len(tag) <= 128 and (tag[0].isalnum() or tag[0] == "_")
            and all(c.isalnum() or c in "_.-" for c in tag))


class InvalidReference(HakoError):
    pass


class Reference:
    """A parsed reference: immutable, compared and hashed by value (a frozen dataclass's behaviour,
    without the dataclasses module's start-up cost)."""

    __slots__ = ("registry", "repository", "tag", "digest")
    __match_args__ = ("registry", "repository", "tag", "digest")
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    def __init__(self, registry: str, repository: str, tag: str | None = None, digest: str | None = None) -> None:
        set_ = object.__setattr__
        set_(self, "registry", registry)
        set_(self, "repository", repository)
        set_(self, "tag", tag)
        set_(self, "digest", digest)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: a Reference is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: a Reference is immutable")

    def _key(self) -> tuple[str, str, str | None, str | None]:
        return (self.registry, self.repository, self.tag, self.digest)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Reference)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Reference(registry={self.registry!r}, repository={self.repository!r}, tag={self.tag!r}, "
                f"digest={self.digest!r})")

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
        if not _pattern("digest").match(digest):
            raise InvalidReference(f"invalid reference {ref!r}: bad digest {digest!r}")
        if digest.startswith("sha256:") and not is_sha256_hex(digest[7:]):
            raise InvalidReference(f"invalid reference {ref!r}: bad sha256 digest")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not valid_tag(tag):
            raise InvalidReference(f"invalid reference {ref!r}: bad tag {tag!r}")
    parts = rest.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"
                           or parts[0] != parts[0].lower()):
        registry, repo_parts = parts[0], parts[1:]
        if not valid_domain(registry):
            raise InvalidReference(f"invalid reference {ref!r}: bad registry {registry!r}")
    else:
        registry, repo_parts = DEFAULT_REGISTRY, parts
    if registry == "index.docker.io":
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and len(repo_parts) == 1:
        repo_parts = ["library", *repo_parts]
    for comp in repo_parts:
        if not valid_component(comp):
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
