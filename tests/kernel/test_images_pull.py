"""Pull from a real docker-registry into a real store, then look at the merged tree."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hako.errors import HakoError, RegistryError
from hako.images.store import ImageStore
from hako.testing import images as ti
from tests.fixtures_images import PASSWORD, USER, ImageSet


def _tree(root: Path) -> dict[str, tuple]:
    """path -> (kind, mode, uid, gid, content-or-target) for every entry under root."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", 0, st.st_uid, st.st_gid, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, None)
            else:
                out[rel] = ("f", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, p.read_bytes())
    return out


def test_pull_layered_and_mount(image_store: ImageStore, test_images: ImageSet) -> None:
    img = image_store.pull(test_images.ref("layered"), quiet=True)
    assert img.id == test_images.layered.config_digest
    assert img.layers == test_images.layered.diff_ids
    assert img.manifest_digest == test_images.layered.digest
    assert img.repo_digests == [f"{test_images.registry.host}/hako-test/layered@{test_images.layered.digest}"]
    assert len(image_store.layer_dirs(img)) == 4
    path = image_store.mount(img.id)
    try:
        assert image_store.mount(img.id) == path  # idempotent
        tree = _tree(path)
        opt = {k[4:]: v for k, v in tree.items() if k.startswith("opt/")}
        assert sorted(opt) == sorted([
            "app", "app/config.txt", "app/data", "app/data/a", "replace-dir", "replace-dir/new.txt",
            "dir-to-file", "file-to-dir", "file-to-dir/inside.txt", "recreated.txt", "original.txt",
            "hardlink.txt", "rel-link", "dangling", "setuid-bin", "setgid-dir", "owned-by-1000.txt",
            "xattr.txt", "empty", "deep", "deep/no", "deep/no/parent", "deep/no/parent/entry.txt"])
        assert opt["app/config.txt"][4] == b"version=2\n"
        assert opt["recreated.txt"][4] == b"new"
        assert opt["dir-to-file"][0] == "f" and opt["file-to-dir"][0] == "d"
        assert opt["setuid-bin"][1] == 0o4755 and opt["setgid-dir"][1] == 0o2775
        assert opt["owned-by-1000.txt"][1:4] == (0o640, 1000, 1000)
        assert tree["home/user"][1:4] == (0o750, 1000, 1000)
        assert opt["rel-link"][4] == "original.txt" and opt["dangling"][4] == "/nonexistent"
        assert opt["empty"][4] == b""
        a, b = (path / "opt/original.txt").stat(), (path / "opt/hardlink.txt").stat()
        assert (a.st_ino, a.st_nlink) == (b.st_ino, 2)
        assert os.getxattr(path / "opt/xattr.txt", "user.hako") == b"test-value"
        assert "usr/bin/wget" not in tree and tree["bin/sh"][4] == "/bin/busybox"
        assert tree["etc/motd"][4] == b"hello\n"
        assert not any(Path(k).name.startswith(".wh.") for k in tree)
        with pytest.raises(OSError):
            (path / "opt/new-file").write_text("x")  # read-only view
    finally:
        image_store.unmount(img.id)
    assert not path.exists()


@pytest.mark.parametrize("tag,attr", [("latest", "busybox"), ("zstd", "busybox_zstd"), ("docker", "busybox_docker")])
def test_pull_compressions_and_media_types(image_store: ImageStore, test_images: ImageSet, tag: str,
                                           attr: str) -> None:
    built = getattr(test_images, attr)
    img = image_store.pull(test_images.ref(f"busybox:{tag}"), quiet=True)
    assert img.manifest_digest == built.digest
    assert img.layers == built.diff_ids
    assert (image_store.layer_dirs(img)[0] / "bin/busybox").stat().st_size > 100000
    for d in built.blobs:
        assert image_store.content.has(d)


def test_same_layer_other_compression_fetches_blob_only(image_store: ImageStore, test_images: ImageSet) -> None:
    a = image_store.pull(test_images.ref("busybox:latest"), quiet=True)
    layer = image_store.layer_dirs(a)[0]
    inode = layer.stat().st_ino
    b = image_store.pull(test_images.ref("busybox:zstd"), quiet=True)
    assert a.id == b.id  # same config
    assert image_store.layer_dirs(b)[0].stat().st_ino == inode  # not unpacked again
    zstd_blob = next(d for d in test_images.busybox_zstd.blobs if d != b.id)
    assert image_store.content.has(zstd_blob)
    assert sorted(image_store.get(a.id).repo_tags) == sorted([test_images.ref("busybox:latest"),
                                                              test_images.ref("busybox:zstd")])


def test_multiarch_platforms(image_store: ImageStore, test_images: ImageSet) -> None:
    ref = test_images.ref("multiarch")
    amd = image_store.pull(ref, quiet=True, platform="linux/amd64")
    assert amd.config["architecture"] == "amd64" and amd.config["config"]["Labels"] == {"arch": "amd64"}
    assert amd.repo_digests == [f"{test_images.registry.host}/hako-test/multiarch@{test_images.multiarch.digest}"]
    arm = image_store.pull(ref, quiet=True, platform="linux/arm64")
    assert arm.config["architecture"] == "arm64" and arm.config["variant"] == "v8"
    assert arm.chain_ids == amd.chain_ids  # the same busybox layer, unpacked once
    from hako.errors import ConfigError

    with pytest.raises(ConfigError, match="no image for platform linux/s390x"):
        image_store.pull(ref, quiet=True, platform="linux/s390x")


def _store_state(store: ImageStore) -> tuple:
    layers = sorted(p.name for p in (store.root / "layers").iterdir()) if (store.root / "layers").exists() else []
    return ([i.id for i in store.list()], sorted(store.content.digests()), layers,
            sorted(os.listdir(store.content.tmp_dir)))


def test_tampered_blob_is_refused(image_store: ImageStore, registry: ti.RegistryProcess) -> None:
    good = ti.tar_entries([ti.Entry("good.txt", data=os.urandom(3000))])
    bad = ti.tar_entries([ti.Entry("bad.txt", data=os.urandom(300000))])
    built = ti.build_image([good, bad])
    ti.push(registry.host, "hako-test/tampered", "latest", built)
    bad_blob = [d for d in built.blobs if d != built.config_digest][1]
    path = registry.blob_path(bad_blob)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the digest can tell
    path.write_bytes(bytes(data))
    before = _store_state(image_store)
    with pytest.raises(HakoError, match=bad_blob):
        image_store.pull(f"{registry.host}/hako-test/tampered", quiet=True)
    assert _store_state(image_store) == before


def test_wrong_diff_id_is_refused(image_store: ImageStore, registry: ti.RegistryProcess) -> None:
    built = ti.build_image([ti.tar_entries([ti.Entry("x", data=b"x")])])
    wrong = "sha256:" + "0" * 64
    built = ti.build_image([ti.tar_entries([ti.Entry("x", data=b"x")])])
    cfg = dict(built.config, rootfs={"type": "layers", "diff_ids": [wrong]})
    import json

    cdata = json.dumps(cfg).encode()
    manifest = json.loads(built.manifest)
    old = manifest["config"]["digest"]
    manifest["config"] = {"mediaType": ti.OCI_CONFIG, "digest": ti.sha256(cdata), "size": len(cdata)}
    blobs = {k: v for k, v in built.blobs.items() if k != old}
    blobs[ti.sha256(cdata)] = cdata
    b2 = ti.Built(ti.OCI_MANIFEST, json.dumps(manifest).encode(), blobs)
    ti.push(registry.host, "hako-test/wrongdiff", "latest", b2)
    before = _store_state(image_store)
    with pytest.raises(RegistryError, match=f"does not match diff_id {wrong}"):
        image_store.pull(f"{registry.host}/hako-test/wrongdiff", quiet=True)
    assert _store_state(image_store) == before


def test_basic_auth(image_store: ImageStore, auth_registry: ti.RegistryProcess, monkeypatch: pytest.MonkeyPatch,
                    tmp_path: Path) -> None:
    from hako.images import auth

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    built = ti.build_image([ti.busybox_tar()])
    ti.push(auth_registry.host, "hako-test/private", "latest", built, auth=(USER, PASSWORD))
    ref = f"{auth_registry.host}/hako-test/private"
    with pytest.raises(RegistryError, match="authentication required"):
        image_store.pull(ref, quiet=True)
    auth.store(image_store.root, auth_registry.host, auth.Credentials(USER, "wrong"))
    with pytest.raises(RegistryError, match="authentication required"):
        image_store.pull(ref, quiet=True)
    auth.store(image_store.root, auth_registry.host, auth.Credentials(USER, PASSWORD))
    img = image_store.pull(ref, quiet=True)
    assert img.manifest_digest == built.digest
    # Push back under another name with the same credentials.
    assert image_store.push(ref, f"{auth_registry.host}/hako-test/private2:v2", quiet=True) == built.digest


def test_push_round_trip(image_store: ImageStore, test_images: ImageSet, tmp_path: Path) -> None:
    img = image_store.pull(test_images.ref("layered"), quiet=True)
    dest = test_images.ref("pushed:copy")
    assert image_store.push(img.id, dest, quiet=True) == img.manifest_digest
    other = ImageStore(tmp_path / "other")
    again = other.pull(dest, quiet=True)
    assert again.id == img.id and again.manifest_digest == img.manifest_digest
    other.close()
    # An imported image (uncompressed layer) pushes and pulls back too.
    p = tmp_path / "t.tar"
    p.write_bytes(ti.tar_entries([ti.Entry("f", data=b"imported")]))
    imp = image_store.import_tarball(p, test_images.ref("imported:1"))
    d1 = image_store.push(test_images.ref("imported:1"), quiet=True)
    assert image_store.push(test_images.ref("imported:1"), quiet=True) == d1  # deterministic gzip
    dz = image_store.push(test_images.ref("imported:1"), test_images.ref("imported:zstd"), quiet=True,
                          compression="zstd")
    assert dz != d1
    assert image_store.push(test_images.ref("imported:1"), test_images.ref("imported:raw"), quiet=True,
                            compression="none") == imp.manifest_digest
    third = ImageStore(tmp_path / "third")
    got = third.pull(test_images.ref("imported:1"), quiet=True)
    assert got.id == imp.id
    assert (third.layer_dirs(got)[0] / "f").read_bytes() == b"imported"
    third.close()


def test_token_auth(image_store: ImageStore, token_registry: tuple, monkeypatch: pytest.MonkeyPatch,
                    tmp_path: Path) -> None:
    from hako.images import auth

    reg, tokens = token_registry
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    ref = f"{reg.host}/hako-test/tokened:latest"
    # Anonymous: the token server grants nothing, the registry keeps saying 401.
    with pytest.raises(RegistryError, match="authentication required"):
        image_store.pull(ref, quiet=True)
    auth.store(image_store.root, reg.host, auth.Credentials(USER, PASSWORD))
    src = image_store.import_tarball(_tar(tmp_path, b"token"), "local:1")
    digest = image_store.push("local:1", ref, quiet=True)
    assert digest != src.manifest_digest  # the uncompressed imported layer went out gzipped
    assert any(r["scope"] == "repository:hako-test/tokened:pull,push" and r["user"] == USER
               for r in tokens.requests)
    other = ImageStore(tmp_path / "other")  # credentials are per store root
    with pytest.raises(RegistryError, match="authentication required"):
        other.pull(ref, quiet=True)
    auth.store(other.root, reg.host, auth.Credentials(USER, PASSWORD))
    got = other.pull(ref, quiet=True)
    assert got.id == src.id and got.manifest_digest == digest
    assert [lay["mediaType"] for lay in other.manifest(got)["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+gzip"]
    other.close()


def _tar(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "one.tar"
    p.write_bytes(ti.tar_entries([ti.Entry("t.txt", data=data)]))
    return p


def test_dropped_connection_resumes_with_range(image_store: ImageStore, registry: ti.RegistryProcess) -> None:
    data = os.urandom(3 << 20)
    built = ti.build_image([ti.tar_entries([ti.Entry("blob.bin", data=data)])], compression="none")
    ti.push(registry.host, "hako-test/resume", "latest", built)
    proxy = ti.SlowProxy(registry.host, cut_after=1 << 20)
    try:
        img = image_store.pull(f"{proxy.host}/hako-test/resume", quiet=True)
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert img.id == built.config_digest
    assert (image_store.layer_dirs(img)[0] / "blob.bin").read_bytes() == data


def test_pull_by_digest(image_store: ImageStore, test_images: ImageSet) -> None:
    name = f"{test_images.registry.host}/hako-test/busybox"
    ref = f"{name}@{test_images.busybox.digest}"
    img = image_store.pull(ref, quiet=True)
    assert img.repo_tags == [] and img.repo_digests == [ref]
    assert image_store.get(ref).id == img.id


def test_concurrent_pulls_of_one_image(tmp_path: Path, test_images: ImageSet) -> None:
    import subprocess
    import sys

    hako = str(Path(sys.executable).parent / "hako")
    root = tmp_path / "root"
    ref = test_images.ref("layered:latest")
    procs = [subprocess.Popen([hako, "--root", str(root), "pull", "-q", ref], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert {o[0].strip() for o in outs} == {test_images.layered.config_digest[7:]}
    store = ImageStore(root)
    [img] = store.list()
    assert len(list((root / "layers").iterdir())) == 4
    assert all(d.is_dir() for d in store.layer_dirs(img))
    assert not list(store.content.tmp_dir.iterdir())
    store.close()


def test_platform_mismatch_of_single_manifest(image_store: ImageStore, test_images: ImageSet) -> None:
    from hako.errors import ConfigError

    with pytest.raises(ConfigError, match="is linux/amd64, not linux/arm64"):
        image_store.pull(test_images.ref("busybox:latest"), platform="linux/arm64", quiet=True)
    assert image_store.pull(test_images.ref("busybox:latest"), platform="linux/amd64", quiet=True)


def test_pull_from_oci_layout_dir(image_store: ImageStore, test_images: ImageSet, tmp_path: Path) -> None:
    layout = ti.write_layout(tmp_path / "layout", test_images.multiarch, "v1")
    img = image_store.pull(f"oci:{layout}:v1", quiet=True)
    assert img.config["architecture"] == "amd64"  # chosen from the index, attestation skipped
    with pytest.raises(HakoError, match="no image named 'v2'"):
        image_store.pull(f"oci:{layout}:v2", quiet=True)
