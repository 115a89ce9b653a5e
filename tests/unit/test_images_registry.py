"""The distribution client against a real docker-registry (no root needed)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from hako.errors import NotFound, RegistryError
from hako.images import mediatypes as mt
from hako.images.registry import RegistryClient, is_loopback
from hako.testing import images as ti


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1:5000") and is_loopback("localhost") and is_loopback("[::1]:5000")
    assert not is_loopback("quay.io") and not is_loopback("10.0.0.1:5000")


def test_oci_manifest_needs_accept_and_we_send_it(registry: ti.RegistryProcess, tmp_path: Path) -> None:
    built = ti.build_image([ti.tar_entries([ti.Entry("a", data=b"a")])])
    ti.push(registry.host, "unit/oci", "v1", built)
    with RegistryClient(registry.host, root=tmp_path) as c:
        m = c.get_manifest("unit/oci", "v1")
        assert m.digest == built.digest and m.media_type == mt.OCI_MANIFEST and m.data == built.manifest
        assert c.get_manifest("unit/oci", built.digest).data == built.manifest
        assert c.manifest_exists("unit/oci", "v1") and not c.manifest_exists("unit/oci", "nope")
        with pytest.raises(NotFound):
            c.get_manifest("unit/oci", "nope")


def test_blob_stream_and_range_resume(registry: ti.RegistryProcess, tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with RegistryClient(registry.host, root=tmp_path) as c:
        c.upload_blob("unit/blobs", digest, len(data), lambda: iter([data[:1000], data[1000:]]))
        assert c.blob_exists("unit/blobs", digest)
        assert b"".join(c.stream_blob("unit/blobs", digest)) == data
        assert b"".join(c.stream_blob("unit/blobs", digest, offset=12345)) == data[12345:]
        with pytest.raises(NotFound):
            b"".join(c.stream_blob("unit/blobs", "sha256:" + "0" * 64))


def test_chunked_upload_and_cross_repo_mount(registry: ti.RegistryProcess, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from hako.images import registry as regmod

    monkeypatch.setattr(regmod, "UPLOAD_CHUNK", 100_000)  # force several PATCHes
    data = os.urandom(350_000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with RegistryClient(registry.host, root=tmp_path) as c:
        c.upload_blob("unit/chunks", digest, len(data), lambda: (data[i:i + 30_000] for i in range(0, len(data), 30_000)))
        assert b"".join(c.stream_blob("unit/chunks", digest)) == data
        c.upload_blob("unit/mounted", digest, len(data), lambda: iter(()), mount_from="unit/chunks")
        assert c.blob_exists("unit/mounted", digest)
        with pytest.raises(RegistryError, match="differs"):
            c.upload_blob("unit/bad", digest, len(data) + 1, lambda: iter([data]))


def test_manifest_put_needs_exact_content_type(registry: ti.RegistryProcess, tmp_path: Path) -> None:
    built = ti.build_image([ti.tar_entries([ti.Entry("b", data=b"b")])])
    ti.push(registry.host, "unit/put", "v0", built)
    with RegistryClient(registry.host, root=tmp_path) as c:
        c.put_manifest("unit/put", "v2", built.manifest, built.media_type)
        assert c.get_manifest("unit/put", "v2").digest == built.digest
        with pytest.raises(RegistryError, match="MANIFEST_INVALID"):
            c.put_manifest("unit/put", "v3", built.manifest, mt.DOCKER_MANIFEST)


def test_unreachable_registry(tmp_path: Path) -> None:
    port = ti.free_port()
    with RegistryClient(f"127.0.0.1:{port}", root=tmp_path) as c:
        with pytest.raises(RegistryError, match=f"cannot reach registry 127.0.0.1:{port}"):
            c.ping()


def _mock(monkeypatch: pytest.MonkeyPatch, handler: object) -> list[str]:
    """Serve the client from ``handler`` (faults a real registry will not produce on demand)."""
    import httpx

    seen: list[str] = []

    def wrapped(req: httpx.Request) -> httpx.Response:
        seen.append(f"{req.method} {req.url}")
        return handler(req)  # type: ignore[operator]

    def make(self: RegistryClient, verify: bool) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(wrapped), follow_redirects=True)

    monkeypatch.setattr(RegistryClient, "_make_client", make)
    monkeypatch.setattr("hako.images.registry.time.sleep", lambda s: None)
    return seen


def test_retries_transient_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import httpx

    calls = {"n": 0}

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/v2/":
            return httpx.Response(200)
        calls["n"] += 1
        return httpx.Response(503) if calls["n"] < 3 else httpx.Response(200, stream=httpx.ByteStream(b"ok"))

    _mock(monkeypatch, handler)
    with RegistryClient("127.0.0.1:1", root=tmp_path) as c:
        assert b"".join(c.stream_blob("r", "sha256:" + "0" * 64)) == b"ok"
    assert calls["n"] == 3


def test_insecure_registry_tries_https_then_http(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import httpx

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.scheme == "https":
            raise httpx.ConnectError("no TLS here", request=req)
        return httpx.Response(200)

    seen = _mock(monkeypatch, handler)
    with RegistryClient("registry.example:5000", root=tmp_path, tls_verify=False) as c:
        c.ping()
    assert seen[0].startswith("GET https://registry.example:5000/v2/")
    assert seen[-1] == "GET http://registry.example:5000/v2/"
    seen.clear()
    with RegistryClient("registry.example:5000", root=tmp_path) as c:
        with pytest.raises(RegistryError, match="cannot reach"):
            c.ping()
    assert all(s.startswith("GET https://") for s in seen)


def test_redirected_blob_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import httpx

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/v2/":
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="x"'})
        if req.url.host == "cdn.example":
            assert "authorization" not in req.headers  # credentials never follow a redirect elsewhere
            return httpx.Response(200, stream=httpx.ByteStream(b"blob"))
        assert req.headers["authorization"].startswith("Basic ")
        return httpx.Response(307, headers={"Location": "https://cdn.example/b?sig=1"})

    from hako.images.auth import Credentials

    _mock(monkeypatch, handler)
    with RegistryClient("127.0.0.1:1", root=tmp_path, credentials=Credentials("u", "p")) as c:
        assert b"".join(c.stream_blob("r", "sha256:" + "0" * 64)) == b"blob"


def test_upload_location_on_another_host_gets_no_credentials(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    import httpx

    uploads: list[httpx.Headers] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/v2/":
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="x"'})
        if req.url.host == "uploads.example":
            uploads.append(req.headers)
            return httpx.Response(201)
        assert req.headers["authorization"].startswith("Basic ")
        return httpx.Response(202, headers={"Location": "https://uploads.example/u/1?state=s"})

    from hako.images.auth import Credentials

    _mock(monkeypatch, handler)
    data = b"layer"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with RegistryClient("127.0.0.1:1", root=tmp_path, credentials=Credentials("u", "p")) as c:
        c.upload_blob("r", digest, len(data), lambda: [data])
    assert len(uploads) == 1 and "authorization" not in uploads[0]


def test_manifest_digest_header_mismatch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import httpx

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(200, content=b"{}", headers={"Content-Type": mt.OCI_MANIFEST,
                                                          "Docker-Content-Digest": "sha256:" + "1" * 64})

    _mock(monkeypatch, handler)
    with RegistryClient("127.0.0.1:1", root=tmp_path) as c:
        with pytest.raises(RegistryError, match="registry says sha256:1111"):
            c.get_manifest("r", "latest")


def test_oversized_manifest_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import httpx

    from hako.images.registry import MAX_MANIFEST

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(200, stream=httpx.ByteStream(b" " * (MAX_MANIFEST + 1)),
                              headers={"Content-Type": mt.OCI_MANIFEST})

    _mock(monkeypatch, handler)
    with RegistryClient("127.0.0.1:1", root=tmp_path) as c:
        with pytest.raises(RegistryError, match="larger than"):
            c.get_manifest("r", "latest")


def test_credentials_never_go_to_a_plain_http_token_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import httpx

    def handler(req: httpx.Request) -> httpx.Response:
        assert req.url.host == "registry.example", "nothing may reach the token server"
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="http://auth.example/token"'})

    from hako.images.auth import Credentials

    _mock(monkeypatch, handler)
    with RegistryClient("registry.example:5000", root=tmp_path, credentials=Credentials("u", "p")) as c:
        with pytest.raises(RegistryError, match="plain HTTP"):
            c.get_manifest("r", "latest")
