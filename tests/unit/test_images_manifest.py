from __future__ import annotations

import hashlib
import json

import pytest

from hako.errors import ConfigError
from hako.images import mediatypes as mt
from hako.images.manifest import (
    Descriptor,
    Index,
    Manifest,
    Platform,
    chain_ids,
    config_diff_ids,
    manifest_json,
    parse_manifest,
    select_platform,
)

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def desc(d: str, plat: dict | None = None, mtype: str = mt.OCI_MANIFEST, ann: dict | None = None) -> dict:
    out: dict = {"mediaType": mtype, "digest": d, "size": 10}
    if plat:
        out["platform"] = plat
    if ann:
        out["annotations"] = ann
    return out


def test_parse_manifest_round_trip() -> None:
    data = manifest_json(Descriptor(mt.OCI_CONFIG, D1, 5), [Descriptor(mt.OCI_LAYER_GZIP, D2, 7)])
    m = parse_manifest(data)
    assert isinstance(m, Manifest)
    assert m.config.digest == D1 and m.layers[0].size == 7


def test_media_type_from_header_or_shape() -> None:
    body = json.dumps({"schemaVersion": 2, "manifests": [desc(D1)]}).encode()
    assert isinstance(parse_manifest(body), Index)
    body = json.dumps({"schemaVersion": 2, "config": desc(D1, mtype=mt.DOCKER_CONFIG), "layers": []}).encode()
    m = parse_manifest(body, mt.DOCKER_MANIFEST)
    assert isinstance(m, Manifest) and m.media_type == mt.DOCKER_MANIFEST


@pytest.mark.parametrize("obj,path", [
    ({"schemaVersion": 1}, "manifest.schemaVersion"),
    ({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": {"mediaType": "x", "digest": "md5:1", "size": 1},
      "layers": []}, "manifest.config.digest"),
    ({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": desc(D1), "layers": [{"mediaType": "x",
      "digest": D2, "size": -1}]}, "manifest.layers[0].size"),
    ({"schemaVersion": 2, "mediaType": "application/x-nope"}, "manifest.mediaType"),
])
def test_invalid_manifest_names_path(obj: dict, path: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_manifest(json.dumps(obj).encode())
    assert e.value.path == path


def _index() -> Index:
    body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        desc(D3, {"os": "unknown", "architecture": "unknown"},
             ann={"vnd.docker.reference.type": "attestation-manifest"}),
        desc(D1, {"os": "linux", "architecture": "amd64"}),
        desc(D2, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
    ]}
    idx = parse_manifest(json.dumps(body).encode())
    assert isinstance(idx, Index)
    return idx


def test_select_platform_skips_attestations() -> None:
    idx = _index()
    assert select_platform(idx, Platform("linux", "amd64")).digest == D1
    assert select_platform(idx, Platform.parse("linux/arm64")).digest == D2
    assert select_platform(idx, Platform.parse("linux/arm64/v8")).digest == D2
    assert select_platform(idx, Platform.parse("linux/aarch64")).digest == D2
    with pytest.raises(ConfigError, match="no image for platform linux/s390x"):
        select_platform(idx, Platform.parse("linux/s390x"))


def test_only_attestation_is_no_match() -> None:
    body = {"schemaVersion": 2, "manifests": [desc(D3, {"os": "unknown", "architecture": "unknown"})]}
    idx = parse_manifest(json.dumps(body).encode())
    assert isinstance(idx, Index)
    with pytest.raises(ConfigError):
        select_platform(idx, Platform("linux", "amd64"))


def test_bad_platform_string() -> None:
    with pytest.raises(ConfigError):
        Platform.parse("linux")


def test_chain_ids_follow_the_spec() -> None:
    a, b, c = ("sha256:" + hashlib.sha256(x).hexdigest() for x in (b"a", b"b", b"c"))
    ids = chain_ids([a, b, c])
    assert ids[0] == a
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert ids[1] == ab
    assert ids[2] == "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()


def test_config_diff_ids() -> None:
    assert config_diff_ids({"rootfs": {"type": "layers", "diff_ids": [D1]}}) == [D1]
    with pytest.raises(ConfigError, match="config.rootfs"):
        config_diff_ids({})


@pytest.mark.parametrize("bad", ["sha256:" + "../" * 21 + "x", "sha256:" + "A" * 64, "sha512:" + "1" * 128])
def test_descriptor_digest_must_be_sha256_hex(bad: str) -> None:
    data = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": desc(D1, mtype=mt.OCI_CONFIG),
                       "layers": [desc(bad, mtype=mt.OCI_LAYER_GZIP)]}).encode()
    with pytest.raises(ConfigError, match=r"layers\[0\]\.digest"):
        parse_manifest(data)
