"""A client for the OCI distribution API (``/v2/``), on httpx.

HTTPS by default; plain HTTP for loopback registries, and HTTPS-without-verification then
HTTP for registries marked insecure (``tls_verify=False``, ``$HAKO_INSECURE_REGISTRIES``,
or ``insecure = true`` in /etc/containers/registries.conf). Authentication follows the
401 challenge: Basic with stored credentials, or Bearer tokens per repository scope.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hako.errors import NotFound, RegistryError
from hako.images import auth as authmod
from hako.images import mediatypes as mt

RETRIES = 4
CHUNK = 1 << 20
UPLOAD_CHUNK = 16 << 20
TRANSIENT = {408, 429, 500, 502, 503, 504}
# What containerd accepts too: a manifest is a few KiB, a bigger answer is an attack on memory.
MAX_MANIFEST = 4 << 20


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def configured_insecure(host: str) -> bool:
    env = os.environ.get("HAKO_INSECURE_REGISTRIES", "")
    if host in [h.strip() for h in env.split(",") if h.strip()]:
        return True
    conf = Path("/etc/containers/registries.conf")
    try:
        import tomllib

        data = tomllib.loads(conf.read_text())
    except (OSError, ValueError):
        return False
    for reg in data.get("registry", []) or []:
        if isinstance(reg, dict) and reg.get("location") == host and reg.get("insecure") is True:
            return True
    return False


@dataclass
class ManifestResponse:
    data: bytes
    media_type: str
    digest: str


class RegistryClient:
    """One registry host; thread-safe (layers download in parallel on one client)."""

    def __init__(self, host: str, *, root: Path, tls_verify: bool | None = None,
                 credentials: authmod.Credentials | None = None) -> None:
        self.host = host
        self.root = root
        if tls_verify is None:
            tls_verify = not configured_insecure(host)
        if is_loopback(host):
            self.schemes = [("http", True)]
        elif tls_verify:
            self.schemes = [("https", True)]
        else:
            self.schemes = [("https", False), ("http", False)]
        self._credentials = credentials
        self._creds_loaded = credentials is not None
        self._base: str | None = None
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._auth_header: dict[str, str] = {}   # scope -> Authorization value
        self._challenge: authmod.Challenge | None = None

    # -- plumbing ----------------------------------------------------------------------
    @property
    def credentials(self) -> authmod.Credentials | None:
        if not self._creds_loaded:
            self._credentials = authmod.lookup(self.root, self.host)
            self._creds_loaded = True
        return self._credentials

    def _make_client(self, verify: bool) -> httpx.Client:
        # A loopback registry is never reached through $HTTP_PROXY.
        return httpx.Client(verify=verify, follow_redirects=True, http2=False, trust_env=not is_loopback(self.host),
                            timeout=httpx.Timeout(30.0, connect=10.0),
                            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
                            headers={"User-Agent": "hako/0.1"})

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure(self) -> tuple[httpx.Client, str]:
        with self._lock:
            if self._client is not None and self._base is not None:
                return self._client, self._base
            last: Exception | None = None
            for scheme, verify in self.schemes:
                client = self._make_client(verify)
                base = f"{scheme}://{self.host}"
                try:
                    r = self._retry(lambda c=client, b=base: c.get(f"{b}/v2/"))  # type: ignore[misc]
                except RegistryError as exc:
                    client.close()
                    last = exc
                    continue
                if r.status_code == 401:
                    self._challenge = self._parse_401(r)
                elif r.status_code >= 400 and r.status_code != 404:
                    client.close()
                    raise RegistryError(f"registry {self.host}: /v2/ answered HTTP {r.status_code}")
                self._client, self._base = client, base
                return client, base
            detail = str(last).removeprefix(f"registry {self.host}: ")
            raise RegistryError(f"cannot reach registry {self.host}: {detail}")

    def ping(self) -> None:
        self._ensure()

    @staticmethod
    def _parse_401(r: httpx.Response) -> authmod.Challenge | None:
        h = r.headers.get("WWW-Authenticate")
        return authmod.parse_challenge(h) if h else None

    def _retry(self, fn: Callable[[], httpx.Response]) -> httpx.Response:
        delay = 0.2
        for attempt in range(RETRIES):
            try:
                r = fn()
            except httpx.TransportError as exc:
                if attempt == RETRIES - 1:
                    raise RegistryError(f"registry {self.host}: {type(exc).__name__}: {exc}") from None
            else:
                if r.status_code not in TRANSIENT or attempt == RETRIES - 1:
                    return r
                r.close()
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _authorization(self, scope: str) -> str | None:
        with self._lock:
            if scope in self._auth_header:
                return self._auth_header[scope]
        ch = self._challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            creds = self.credentials
            value = creds.basic() if creds else None
        elif ch.scheme == "bearer":
            client, base = self._ensure()
            creds = self.credentials
            realm = ch.params.get("realm", "")
            if creds and base.startswith("https:") and realm.startswith("http:") \
                    and not is_loopback(httpx.URL(realm).host):
                raise RegistryError(f"registry {self.host}: token server {realm} is plain HTTP; "
                                    "refusing to send the credentials there")
            value = "Bearer " + authmod.fetch_token(client, ch, scope, creds)
        else:
            raise RegistryError(f"registry {self.host}: unsupported auth scheme {ch.scheme!r}")
        if value:
            with self._lock:
                self._auth_header[scope] = value
        return value

    def request(self, method: str, path_or_url: str, *, scope: str, stream: bool = False,
                headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        """Send with auth for ``scope``; on 401 take the new challenge and try once more."""
        client, base = self._ensure()
        url = path_or_url if path_or_url.startswith(("http://", "https://")) else base + path_or_url
        # An upload Location may name another host: our credentials and tokens never go there.
        own = url.startswith(base + "/")
        for attempt in range(2):
            h = dict(headers or {})
            authz = self._authorization(scope) if own else None
            if authz:
                h["Authorization"] = authz
            req = client.build_request(method, url, headers=h, **kw)
            r = self._retry(lambda req=req: client.send(req, stream=stream))  # type: ignore[misc]
            if r.status_code == 401:
                r.close()
                ch = self._parse_401(r)
                with self._lock:
                    self._auth_header.pop(scope, None)
                if attempt == 1 or ch is None or (ch.scheme == "basic" and self.credentials is None):
                    break
                self._challenge = ch
                continue
            return r
        raise RegistryError(f"registry {self.host}: authentication required for {url} "
                            f"(hako login {self.host})")

    @staticmethod
    def _error(r: httpx.Response, what: str) -> str:
        detail = ""
        try:
            if not r.is_stream_consumed:
                r.read()
            body = r.json()
            errs = body.get("errors") or []
            if errs:
                detail = ": " + "; ".join(f"{e.get('code')} {e.get('message', '')}".strip() for e in errs)
        except (ValueError, AttributeError, TypeError, httpx.HTTPError):
            pass  # an error body that is not the registry's JSON just has no detail
        return f"{what}: HTTP {r.status_code}{detail}"

    # -- manifests ---------------------------------------------------------------------
    def get_manifest(self, repo: str, reference: str) -> ManifestResponse:
        scope = f"repository:{repo}:pull"
        what = f"manifest {self.host}/{repo}:{reference}"
        r = self.request("GET", f"/v2/{repo}/manifests/{reference}", scope=scope, stream=True,
                         headers={"Accept": mt.ACCEPT_MANIFESTS})
        try:
            if r.status_code == 404:
                raise NotFound(f"{what} not found")
            if r.status_code != 200:
                raise RegistryError(self._error(r, what))
            buf = bytearray()
            for chunk in r.iter_bytes():
                buf += chunk
                if len(buf) > MAX_MANIFEST:
                    raise RegistryError(f"{what}: larger than {MAX_MANIFEST} bytes; refused")
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise RegistryError(f"{what}: {type(exc).__name__}: {exc}") from None
        finally:
            r.close()
        data = bytes(buf)
        import hashlib

        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"manifest {reference}: content digest is {digest}: corrupted or tampered")
        claimed = r.headers.get("Docker-Content-Digest", "")
        if claimed.startswith("sha256:") and claimed != digest:
            raise RegistryError(f"{what}: registry says {claimed} but the content digest is {digest}: "
                                "corrupted or tampered")
        ctype = r.headers.get("Content-Type", "").split(";")[0].strip()
        return ManifestResponse(data, ctype, digest)

    def manifest_exists(self, repo: str, reference: str) -> bool:
        r = self.request("HEAD", f"/v2/{repo}/manifests/{reference}", scope=f"repository:{repo}:pull",
                         headers={"Accept": mt.ACCEPT_MANIFESTS})
        return r.status_code == 200

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        r = self.request("PUT", f"/v2/{repo}/manifests/{reference}", scope=f"repository:{repo}:pull,push",
                         headers={"Content-Type": media_type}, content=data)
        if r.status_code not in (200, 201, 202):
            raise RegistryError(self._error(r, f"push manifest {self.host}/{repo}:{reference}"))
        return r.headers.get("Docker-Content-Digest", "")

    # -- blobs -------------------------------------------------------------------------
    def get_blob(self, repo: str, digest: str, max_size: int = 64 << 20) -> bytes:
        out = bytearray()
        for chunk in self.stream_blob(repo, digest):
            out += chunk
            if len(out) > max_size:
                raise RegistryError(f"blob {digest}: larger than {max_size} bytes")
        return bytes(out)

    def stream_blob(self, repo: str, digest: str, offset: int = 0) -> Iterator[bytes]:
        """Yield the blob's bytes; a connection that drops mid-blob resumes with ``Range``."""
        scope = f"repository:{repo}:pull"
        got = offset
        failures = 0
        while True:
            headers = {"Range": f"bytes={got}-"} if got else {}
            r = self.request("GET", f"/v2/{repo}/blobs/{digest}", scope=scope, stream=True, headers=headers)
            try:
                if r.status_code == 404:
                    raise NotFound(f"blob {digest} not found in {self.host}/{repo}")
                if r.status_code == 416 and got:
                    return
                if r.status_code not in (200, 206):
                    raise RegistryError(self._error(r, f"blob {digest} from {self.host}/{repo}"))
                skip = got if (r.status_code == 200 and got) else 0
                try:
                    for chunk in r.iter_raw(CHUNK):
                        if skip:
                            if len(chunk) <= skip:
                                skip -= len(chunk)
                                continue
                            chunk = chunk[skip:]
                            skip = 0
                        got += len(chunk)
                        yield chunk
                    return
                except (httpx.TransportError, httpx.StreamError) as exc:
                    failures += 1
                    if failures >= RETRIES:
                        raise RegistryError(f"blob {digest}: download failed after {failures} tries: "
                                            f"{exc}") from None
                    time.sleep(0.2 * failures)
            finally:
                r.close()

    def blob_exists(self, repo: str, digest: str) -> bool:
        r = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull")
        return r.status_code == 200

    def upload_blob(self, repo: str, digest: str, size: int, chunks: Callable[[], Iterable[bytes]],
                    mount_from: str | None = None) -> None:
        """POST to start, PATCH the bytes, PUT ``?digest=`` to finish, always following Location."""
        scope = f"repository:{repo}:pull,push"
        if mount_from and mount_from != repo:
            r = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope=f"{scope} repository:{mount_from}:pull",
                             params={"mount": digest, "from": mount_from})
            if r.status_code == 201:
                return
        else:
            r = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope=scope)
        if r.status_code != 202:
            raise RegistryError(self._error(r, f"start upload of {digest} to {self.host}/{repo}"))
        location = self._location(r)
        buf = bytearray()
        octet = {"Content-Type": "application/octet-stream"}
        sent = 0
        for chunk in chunks():
            buf += chunk
            if len(buf) >= UPLOAD_CHUNK:
                location = self._patch(location, bytes(buf), sent, scope)
                sent += len(buf)
                buf.clear()
        if sent + len(buf) != size:
            raise RegistryError(f"blob {digest}: local size {sent + len(buf)} differs from {size}")
        url = httpx.URL(location)
        url = url.copy_merge_params({"digest": digest})
        r = self.request("PUT", str(url), scope=scope, headers=octet, content=bytes(buf))
        if r.status_code not in (201, 204):
            raise RegistryError(self._error(r, f"finish upload of {digest} to {self.host}/{repo}"))

    def _patch(self, location: str, data: bytes, offset: int, scope: str) -> str:
        r = self.request("PATCH", location, scope=scope, content=data, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(data) - 1}"})
        if r.status_code != 202:
            raise RegistryError(self._error(r, f"upload chunk to {location}"))
        return self._location(r)

    def _location(self, r: httpx.Response) -> str:
        loc = r.headers.get("Location")
        if not loc:
            raise RegistryError(f"registry {self.host}: upload answer without Location")
        return str(r.url.join(loc))
