from __future__ import annotations

import pytest

from hako.images.reference import InvalidReference, is_image_id, parse

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("ref,registry,repo,tag,digest", [
    ("busybox", "docker.io", "library/busybox", "latest", None),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
    ("user/app", "docker.io", "user/app", "latest", None),
    ("docker.io/busybox", "docker.io", "library/busybox", "latest", None),
    ("index.docker.io/library/busybox:x", "docker.io", "library/busybox", "x", None),
    ("127.0.0.1:5000/hako-test/busybox", "127.0.0.1:5000", "hako-test/busybox", "latest", None),
    ("localhost/foo:bar", "localhost", "foo", "bar", None),
    ("quay.io/a/b/c@" + D, "quay.io", "a/b/c", None, D),
    ("ghcr.io/a/b:v1@" + D, "ghcr.io", "a/b", "v1", D),
    ("localhost:5000/a_b.c__d-e", "localhost:5000", "a_b.c__d-e", "latest", None),
])
def test_parse(ref: str, registry: str, repo: str, tag: str | None, digest: str | None) -> None:
    r = parse(ref)
    assert (r.registry, r.repository, r.tag, r.digest) == (registry, repo, tag, digest)
    assert parse(str(r)) == r


@pytest.mark.parametrize("bad", ["", "a/UPPER", "a//b", "a:b:c:d", "busybox@sha256:zz",
                                 "busybox@sha256:" + "a" * 10, "-x", "a/-b", " busybox", "a:" + "t" * 200])
def test_invalid(bad: str) -> None:
    with pytest.raises(InvalidReference):
        parse(bad)


def test_familiar_and_reference() -> None:
    assert parse("busybox").familiar() == "busybox:latest"
    assert parse("user/app:1").familiar() == "user/app:1"
    assert parse("127.0.0.1:5000/x/y:z").familiar() == "127.0.0.1:5000/x/y:z"
    assert parse("busybox").api_host == "registry-1.docker.io"
    r = parse("a/b:t@" + D)
    assert r.reference == D
    assert parse("a/b", default_tag=False).tag is None


def test_is_image_id() -> None:
    assert is_image_id("abc")
    assert is_image_id("sha256:" + "0" * 64)
    assert not is_image_id("busybox")
    assert not is_image_id("ab")


def test_str_checks_match_the_reference_grammar() -> None:
    """parse() checks components, tags and registries without re (start-up time of ``hako run``):
    the same answers as the grammar's regular expressions, on every short string of a telling alphabet."""
    import itertools
    import re

    from hako.images.reference import is_sha256_hex, valid_component, valid_domain, valid_tag

    component = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
    tag = re.compile(r"[\w][\w.-]{0,127}\Z")
    domain = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?\Z"
                        r"|\[[0-9a-fA-F:]+\](?::[0-9]+)?\Z")
    for n in range(6):
        for chars in itertools.product("a0._-A", repeat=n):
            s = "".join(chars)
            assert valid_component(s) == bool(component.match(s)), s
            assert valid_tag(s) == bool(tag.match(s)), s
        for chars in itertools.product("a-.:[]1", repeat=n):
            s = "".join(chars)
            assert valid_domain(s) == bool(domain.match(s)), s
    for s in ("é", "٣x", "a\n", "_" * 128, "a" * 129, "x²", "localhost:5000", "[::1]:5000", "my-reg.example.com"):
        assert valid_tag(s) == bool(tag.match(s)), s
        assert valid_domain(s) == bool(domain.match(s)), s
    assert is_sha256_hex("a" * 64) and not is_sha256_hex("A" * 64) and not is_sha256_hex("a" * 63)
