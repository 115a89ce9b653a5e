"""Registry credentials and the Docker/OCI token flow.

Where credentials live (``hako login`` writes, pulls read):

* written to ``$REGISTRY_AUTH_FILE`` if set, else ``<store root>/auth.json`` — one file per
  store, so a test store or a second root never sees the host's logins;
* read from that file first, then ``${XDG_RUNTIME_DIR}/containers/auth.json`` (podman's),
  then ``~/.docker/config.json`` (Docker's). All three share the format
  ``{"auths": {"<registry>": {"auth": base64("user:password")}}}``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hako.errors import ConfigError, RegistryError


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def write_path(root: Path) -> Path:
    env = os.environ.get("REGISTRY_AUTH_FILE")
    return Path(env) if env else root / "auth.json"


def read_paths(root: Path) -> list[Path]:
    paths = [write_path(root)]
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        paths.append(Path(xdg) / "containers" / "auth.json")
    paths.append(Path.home() / ".docker" / "config.json")
    return paths


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ConfigError(str(path), f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "must be a JSON object")
    return data


def _auths(path: Path, data: dict) -> dict:
    auths = data.get("auths")
    if auths is None:
        return {}
    if not isinstance(auths, dict):
        raise ConfigError(f"{path}: auths", "must be a JSON object")
    return auths


def _keys(registry: str) -> list[str]:
    keys = [registry]
    if registry in ("docker.io", "registry-1.docker.io"):
        keys += ["docker.io", "https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"]
    keys += [f"https://{registry}", f"http://{registry}"]
    return keys


def lookup(root: Path, registry: str) -> Credentials | None:
    for path in read_paths(root):
        auths = _auths(path, _load(path))
        for key in _keys(registry):
            entry = auths.get(key)
            if isinstance(entry, dict) and entry.get("auth"):
                try:
                    user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
                except ValueError:
                    raise ConfigError(f"{path}: auths.{key}.auth", "not base64 of user:password") from None
                return Credentials(user, pw)
    return None


def _save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp makes it 0600: the password is never readable by others, not even briefly.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".auth-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        # A full disk must not leave a half-written copy of the credentials behind.
        os.unlink(tmp)
        raise


def store(root: Path, registry: str, creds: Credentials) -> Path:
    path = write_path(root)
    data = _load(path)
    data["auths"] = _auths(path, data)
    data["auths"][registry] = {
        "auth": base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()}
    _save(path, data)
    return path


def remove(root: Path, registry: str) -> bool:
    path = write_path(root)
    data = _load(path)
    auths = _auths(path, data)
    if registry not in auths:
        return False
    del auths[registry]
    _save(path, data)
    return True


_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer", lower case
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge:
    """Parse one ``WWW-Authenticate`` challenge: ``Bearer realm="...",service="...",scope="..."``."""
    header = header.strip()
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m or m.end() == pos:
            break
        val = m.group(2)
        if val.startswith('"'):
            val = re.sub(r"\\(.)", r"\1", val[1:-1])
        params[m.group(1).lower()] = val
        pos = m.end()
    return Challenge(scheme.lower(), params)


def fetch_token(client: object, challenge: Challenge, scope: str | None, creds: Credentials | None) -> str:
    """Ask the token server named in the challenge for a bearer token with ``scope``."""
    import httpx

    assert isinstance(client, httpx.Client)
    realm = challenge.params.get("realm")
    if not realm:
        raise RegistryError("bearer challenge without realm")
    params: dict[str, str] = {}
    if challenge.params.get("service"):
        params["service"] = challenge.params["service"]
    if scope:
        params["scope"] = scope
    headers = {"Authorization": creds.basic()} if creds else {}
    try:
        r = client.get(realm, params=params, headers=headers)
    except httpx.HTTPError as exc:
        raise RegistryError(f"token server {realm}: {exc}") from None
    if r.status_code in (401, 403):
        raise RegistryError(f"token server {realm}: authentication failed ({r.status_code})")
    if r.status_code != 200:
        raise RegistryError(f"token server {realm}: HTTP {r.status_code}")
    try:
        body = r.json()
    except ValueError:
        raise RegistryError(f"token server {realm}: answer is not JSON") from None
    token = body.get("token") or body.get("access_token")
    if not isinstance(token, str) or not token:
        raise RegistryError(f"token server {realm}: answer has no token")
    return token
