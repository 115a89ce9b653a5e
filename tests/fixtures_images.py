"""Fixtures for the images tests: a real docker-registry on 127.0.0.1 (plain, basic auth),
test images built from busybox-static and pushed to it, and fresh image stores."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hako.testing import images as ti

USER, PASSWORD = "tester", "s3cret"


def _need_registry() -> None:
    if not shutil.which("docker-registry"):
        pytest.skip("docker-registry not installed (scripts/setup installs it)")


@pytest.fixture(scope="session")
def registry(scratch_root: Path) -> Iterator[ti.RegistryProcess]:
    """A plain-HTTP registry for the whole session."""
    _need_registry()
    reg = ti.start_registry(scratch_root / "registry")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def auth_registry(scratch_root: Path) -> Iterator[ti.RegistryProcess]:
    """A registry behind htpasswd (bcrypt) basic auth: tester / s3cret."""
    _need_registry()
    if not shutil.which("htpasswd"):
        pytest.skip("htpasswd not installed (apache2-utils)")
    reg = ti.start_registry(scratch_root / "registry-auth", basic_auth=(USER, PASSWORD))
    yield reg
    reg.stop()


@dataclass
class ImageSet:
    registry: ti.RegistryProcess
    busybox: ti.Built
    busybox_zstd: ti.Built
    busybox_docker: ti.Built
    layered: ti.Built
    multiarch: ti.Built

    def ref(self, name: str) -> str:
        return f"{self.registry.host}/hako-test/{name}"


@pytest.fixture(scope="session")
def test_images(registry: ti.RegistryProcess) -> ImageSet:
    """busybox (gzip, zstd, docker schema 2), layered (whiteouts etc.), multiarch (index)."""
    bb = ti.busybox_tar()
    busybox = ti.build_image([bb])
    zstd = ti.build_image([bb], compression="zstd")
    docker = ti.build_image([bb], flavor="docker")
    layered = ti.build_image([bb, *ti.layered_layers()])
    arm = ti.build_image([bb], architecture="arm64", variant="v8", config={"Labels": {"arch": "arm64"}})
    amd = ti.build_image([bb], config={"Labels": {"arch": "amd64"}})
    multi = ti.build_index([amd, arm])
    h = registry.host
    ti.push(h, "hako-test/busybox", "latest", busybox)
    ti.push(h, "hako-test/busybox", "zstd", zstd)
    ti.push(h, "hako-test/busybox", "docker", docker)
    ti.push(h, "hako-test/layered", "latest", layered)
    ti.push(h, "hako-test/multiarch", "latest", multi)
    return ImageSet(registry, busybox, zstd, docker, layered, multi)


@pytest.fixture
def image_store(tmp_path: Path) -> Iterator[object]:
    """An empty ImageStore with its own root (cleaned with tmp_path)."""
    from hako.images.store import ImageStore

    store = ImageStore(tmp_path / "store")
    yield store
    store.close()


class TokenServer:
    """The Docker token flow's issuer, for tests: RS256 JWTs signed with the openssl CLI.

    The registry trusts the self-signed certificate (``rootcertbundle``) and finds the key by
    ``kid``, the libtrust id of the public key: base32 of the first 30 bytes of the sha256 of
    its DER, in colon-separated groups of four.
    """

    def __init__(self, dir: Path) -> None:
        import base64
        import hashlib
        import subprocess
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        dir.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = dir / "key.pem", dir / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.cert), "-days", "2", "-subj", "/CN=hako-test-issuer"],
                       check=True, capture_output=True)
        pub = subprocess.run(["openssl", "pkey", "-in", str(self.key), "-pubout", "-outform", "DER"],
                             check=True, capture_output=True).stdout
        b32 = base64.b32encode(hashlib.sha256(pub).digest()[:30]).decode().rstrip("=")
        self.kid = ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                from urllib.parse import parse_qs, urlparse

                q = parse_qs(urlparse(self.path).query)
                authz = self.headers.get("Authorization", "")
                user = None
                if authz.startswith("Basic "):
                    u, _, p = base64.b64decode(authz[6:]).decode().partition(":")
                    if (u, p) != (USER, PASSWORD):
                        self.send_response(401)
                        self.end_headers()
                        return
                    user = u
                server.requests.append({"scope": " ".join(q.get("scope", [])), "user": user or ""})
                access = []
                for scope in q.get("scope", []):
                    for one in scope.split(" "):
                        kind, _, rest = one.partition(":")
                        name, _, actions = rest.rpartition(":")
                        if user:
                            access.append({"type": kind, "name": name, "actions": actions.split(",")})
                body = json.dumps({"token": server.sign(user or "", access)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def sign(self, sub: str, access: list[dict[str, object]]) -> str:
        import base64
        import subprocess
        import time
        import uuid

        def b64(b: bytes) -> str:
            return base64.urlsafe_b64encode(b).decode().rstrip("=")

        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        claims = {"iss": "hako-test-issuer", "sub": sub, "aud": "hako-test-registry", "exp": now + 600,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)], input=signing.encode(),
                             check=True, capture_output=True).stdout
        return f"{signing}.{b64(sig)}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def token_registry(scratch_root: Path) -> Iterator[tuple[ti.RegistryProcess, TokenServer]]:
    """A registry behind the bearer-token flow (Docker Hub's), with our own token server."""
    _need_registry()
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    tokens = TokenServer(scratch_root / "token")
    try:
        reg = ti.start_registry(scratch_root / "registry-token", token_auth={
            "realm": tokens.url, "service": "hako-test-registry", "issuer": "hako-test-issuer",
            "rootcertbundle": str(tokens.cert)})
        try:
            yield reg, tokens
        finally:
            reg.stop()
    finally:
        tokens.close()
