"""ImageStore on a real kernel: import, lookups, tags, rmi, prune, save/load (needs root:
layers hold whiteout devices and foreign owners)."""

from __future__ import annotations

import gzip
import json
import os
import tarfile
from pathlib import Path

import pytest

from hako.errors import Conflict, HakoError, NotFound
from hako.images.store import ImageStore
from hako.testing import images as ti


@pytest.fixture(scope="module")
def rootfs_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("tarball") / "rootfs.tar.gz"
    p.write_bytes(gzip.compress(ti.busybox_tar(), 1))
    return p


def test_import_tarball(image_store: ImageStore, rootfs_tar: Path) -> None:
    img = image_store.import_tarball(rootfs_tar, "myimage:v1")
    assert img.id.startswith("sha256:") and len(img.id) == 71
    assert img.repo_tags == ["docker.io/library/myimage:v1"]
    assert img.config["rootfs"]["diff_ids"] == img.layers == img.chain_ids
    assert img.config["os"] == "linux" and img.config["config"]["Env"][0].startswith("PATH=")
    dirs = image_store.layer_dirs(img)
    assert len(dirs) == 1 and (dirs[0] / "bin/busybox").is_file()
    assert os.readlink(dirs[0] / "bin/sh") == "/bin/busybox"
    assert img.size == len(ti.busybox_tar())
    for name in ("myimage:v1", "docker.io/library/myimage:v1", img.id, img.id[7:], img.id[7:19]):
        assert image_store.get(name).id == img.id
    with pytest.raises(NotFound, match="image nope not found"):
        image_store.get("nope")
    # The layer blob is kept (uncompressed, so its digest is the diff_id): push and save need it.
    assert image_store.content.has(img.layers[0])


def test_import_without_name_and_plain_tar(image_store: ImageStore, tmp_path: Path) -> None:
    p = tmp_path / "plain.tar"
    p.write_bytes(ti.tar_entries([ti.Entry("hello.txt", data=b"hi")]))
    img = image_store.import_tarball(p, None)
    assert img.repo_tags == []
    assert (image_store.layer_dirs(img)[0] / "hello.txt").read_bytes() == b"hi"
    assert [i.id for i in image_store.list()] == [img.id]


def test_tag_untag_rmi(image_store: ImageStore, rootfs_tar: Path) -> None:
    img = image_store.import_tarball(rootfs_tar, "one")
    image_store.tag("one", "localhost:5000/two:x")
    assert sorted(image_store.get(img.id).repo_tags) == ["docker.io/library/one:latest", "localhost:5000/two:x"]
    with pytest.raises(Conflict, match="referenced by 2 tags"):
        image_store.remove(img.id)
    assert image_store.remove("one") == ["Untagged: docker.io/library/one:latest"]
    layer = image_store.layer_dirs(img)[0]
    out = image_store.remove("localhost:5000/two:x")
    assert out[-1] == f"Deleted: {img.id}"
    assert not layer.exists()
    assert list(image_store.content.digests()) == []
    assert image_store.list() == []


def test_rmi_refuses_image_in_use(image_store: ImageStore, rootfs_tar: Path) -> None:
    from hako.images.metadata import add_container_ref, remove_container_ref

    img = image_store.import_tarball(rootfs_tar, "used")
    add_container_ref(image_store.root, "c0ffee" * 10, img.id)
    with pytest.raises(Conflict, match="in use by container c0ffeec0ffee"):
        image_store.remove("used")
    assert image_store.remove("used", force=True) == ["Untagged: docker.io/library/used:latest"]
    assert image_store.get(img.id).repo_tags == []
    assert image_store.prune() == []  # still in use
    remove_container_ref(image_store.root, "c0ffee" * 10)
    assert image_store.prune() == [f"Deleted: {img.id}", f"Deleted layer: {img.chain_ids[0]}"]
    assert list(image_store.content.digests()) == []


def test_shared_layers_survive_rmi(image_store: ImageStore, rootfs_tar: Path, tmp_path: Path) -> None:
    a = image_store.import_tarball(rootfs_tar, "a")
    b = image_store.import_tarball(rootfs_tar, "b")  # same tar: same layer, new config
    assert a.id != b.id and a.chain_ids == b.chain_ids
    image_store.remove("a")
    assert image_store.layer_dirs(b)[0].is_dir()
    assert image_store.content.has(b.layers[0])


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive"])
def test_save_load_round_trip(image_store: ImageStore, rootfs_tar: Path, tmp_path: Path, fmt: str) -> None:
    img = image_store.import_tarball(rootfs_tar, "example.com/saved:1")
    out = tmp_path / "out.tar"
    image_store.save(["example.com/saved:1"], out, fmt)
    with tarfile.open(out) as tf:
        names = tf.getnames()
    if fmt == "oci-archive":
        assert {"oci-layout", "index.json", f"blobs/sha256/{img.id[7:]}"} <= set(names)
    else:
        assert {"manifest.json", "repositories", f"{img.id[7:]}.json", f"{img.layers[0][7:]}.tar"} <= set(names)
    other = ImageStore(tmp_path / "other")
    [loaded] = other.load(out)
    assert loaded.id == img.id
    assert loaded.repo_tags == ["example.com/saved:1"]
    assert (other.layer_dirs(loaded)[0] / "bin/busybox").is_file()
    other.close()


def test_load_rejects_tampered_archive(image_store: ImageStore, rootfs_tar: Path, tmp_path: Path) -> None:
    img = image_store.import_tarball(rootfs_tar, "t")
    out = tmp_path / "out.tar"
    image_store.save(["t"], out, "oci-archive")
    # Flip one byte inside the layer blob's data, in place.
    with tarfile.open(out) as tf:
        m = tf.getmember(f"blobs/sha256/{img.layers[0][7:]}")
    with open(out, "r+b") as f:
        f.seek(m.offset_data + 5000)
        b = f.read(1)
        f.seek(m.offset_data + 5000)
        f.write(bytes([b[0] ^ 0xFF]))
    other = ImageStore(tmp_path / "other")
    with pytest.raises(Exception, match=img.layers[0]):
        other.load(out)
    assert other.list() == [] and list(other.content.digests()) == []
    assert not any((tmp_path / "other/layers").iterdir())
    other.close()


def test_inspect_is_docker_shaped(image_store: ImageStore, rootfs_tar: Path) -> None:
    img = image_store.import_tarball(rootfs_tar, "insp:1")
    d = image_store.inspect("insp:1")
    assert d["Id"] == img.id and d["RepoTags"] == ["insp:1"]
    assert d["RootFS"] == {"Type": "layers", "Layers": img.layers}
    assert d["Os"] == "linux" and d["Size"] == img.size and "Env" in d["Config"]
    json.dumps(d)


def test_python_api(tmp_path: Path, rootfs_tar: Path) -> None:
    import hako.images

    root = tmp_path / "api-root"
    img = hako.images.import_tarball(rootfs_tar, "api:1", root=root)
    assert hako.images.get("api:1", root=root).id == img.id
    hako.images.tag("api:1", "api:2", root=root)
    assert [i.id for i in hako.images.list_images(root=root)] == [img.id]
    assert hako.images.inspect("api:2", root=root)["RepoTags"] == ["api:1", "api:2"]
    hako.images.remove("api:1", root=root)
    assert hako.images.remove("api:2", root=root)[-1] == f"Deleted: {img.id}"


def test_prune_removes_orphan_layers(image_store: ImageStore, rootfs_tar: Path) -> None:
    img = image_store.import_tarball(rootfs_tar, "kept")
    orphan = "sha256:" + "e" * 64  # as if a killed pull had committed it before recording
    with image_store.snapshotter.new_layer(orphan) as d:
        (d / "f").write_text("x")
    assert image_store.snapshotter.has_layer(orphan)
    assert f"Deleted layer: {orphan}" in image_store.prune()
    assert not image_store.snapshotter.has_layer(orphan)
    assert image_store.layer_dirs(img)[0].is_dir()


def test_pull_from_archive_transport(image_store: ImageStore, rootfs_tar: Path, tmp_path: Path) -> None:
    img = image_store.import_tarball(rootfs_tar, "example.com/arc:1")
    out = tmp_path / "a.tar"
    image_store.save(["example.com/arc:1"], out, "docker-archive")
    other = ImageStore(tmp_path / "other")
    assert other.pull(f"docker-archive:{out}").id == img.id
    other.close()


def test_prune_all_unmounts_first(image_store: ImageStore, rootfs_tar: Path, mounts: list[Path]) -> None:
    img = image_store.import_tarball(rootfs_tar, "mounted")
    path = image_store.mount("mounted")
    mounts.append(path)  # detached at teardown if prune did not
    assert (path / "bin/busybox").is_file()
    assert f"Deleted: {img.id}" in image_store.prune(all_images=True)
    assert not path.exists() and image_store.list() == []


def test_load_refuses_a_layout_whose_config_was_tampered_with(image_store: ImageStore, tmp_path: Path) -> None:
    b = ti.build_image([ti.tar_entries([ti.Entry("hello.txt", data=b"hi")])])
    layout = ti.write_layout(tmp_path / "layout", b)
    cdigest = json.loads(b.manifest)["config"]["digest"]
    (layout / "blobs/sha256" / cdigest[7:]).write_bytes(b'{"tampered": true}')
    with pytest.raises(HakoError, match=f"config {cdigest} .* does not match its digest"):
        image_store.load(layout)
    assert image_store.list() == [] and list(image_store.content.digests()) == []
