from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from hako.images import auth


def test_parse_bearer_challenge() -> None:
    ch = auth.parse_challenge('Bearer realm="http://127.0.0.1:5001/token",service="reg",'
                              'scope="repository:a/b:pull,push"')
    assert ch.scheme == "bearer"
    assert ch.params == {"realm": "http://127.0.0.1:5001/token", "service": "reg",
                         "scope": "repository:a/b:pull,push"}


def test_parse_basic_challenge() -> None:
    ch = auth.parse_challenge('Basic realm="hako test \\"quoted\\""')
    assert ch.scheme == "basic" and ch.params["realm"] == 'hako test "quoted"'


def test_store_lookup_remove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    root = tmp_path / "root"
    assert auth.lookup(root, "r.example:5000") is None
    path = auth.store(root, "r.example:5000", auth.Credentials("u", "p:w"))
    assert path == root / "auth.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert auth.lookup(root, "r.example:5000") == auth.Credentials("u", "p:w")
    assert auth.remove(root, "r.example:5000")
    assert not auth.remove(root, "r.example:5000")
    assert auth.lookup(root, "r.example:5000") is None


def test_reads_docker_config_and_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    enc = base64.b64encode(b"dock:er").decode()
    (home / ".docker/config.json").write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": enc}}}))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    assert auth.lookup(tmp_path / "root", "docker.io") == auth.Credentials("dock", "er")
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "custom.json"))
    auth.store(tmp_path / "root", "docker.io", auth.Credentials("mine", "x"))
    assert (tmp_path / "custom.json").exists()
    assert auth.lookup(tmp_path / "root", "docker.io") == auth.Credentials("mine", "x")


def test_auths_that_is_not_an_object_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hako.errors import ConfigError

    path = tmp_path / "auth.json"
    path.write_text('{"auths": ["oops"]}')
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(path))
    for call in (lambda: auth.lookup(tmp_path, "r.example"),
                 lambda: auth.store(tmp_path, "r.example", auth.Credentials("u", "p"))):
        with pytest.raises(ConfigError, match=f"{path}: auths"):
            call()
