"""hako.storage.snapshots as root: layer commits, overlay roots, copy-on-write, deep images."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from hako.errors import Conflict, NotFound
from hako.storage import overlay
from hako.storage.layers import apply_layer
from hako.storage.snapshots import MountSpec, Snapshotter
from tests.fixtures_storage import E, OneWay, tar_bytes


def add_layer(snap: Snapshotter, chain_id: str, entries: list[E], lowers: list[str] | None = None) -> str:
    with snap.new_layer(chain_id) as d:
        apply_layer(OneWay(tar_bytes(entries)), d, lowers=snap.lower_dirs(lowers or []))
    return chain_id


def mount_at(snap: Snapshotter, specs: list[MountSpec], target: Path, mounts: list[Path]) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    snap.mount(specs, target)
    mounts.append(target)
    return target


def test_lifecycle_copy_on_write(tmp_path: Path, mounts: list[Path]) -> None:
    snap = Snapshotter(tmp_path / "s", driver="overlay")
    base = add_layer(
        snap, "sha256:base", [E("etc", "dir"), E("etc/hostname", data=b"lower\n"), E("bin", "dir")]
    )
    top = add_layer(snap, "sha256:top", [E("etc/.wh.hostname"), E("bin/tool", data=b"t", mode=0o755)], [base])
    specs = snap.prepare("c1", [base, top])
    assert specs[0].type == "overlay" and specs[0].to_oci()["destination"] == "/"
    root = mount_at(snap, specs, tmp_path / "rootfs", mounts)
    assert sorted(os.listdir(root)) == ["bin", "etc"]
    assert os.listdir(root / "etc") == []
    (root / "etc/hostname").write_text("upper\n")
    (root / "bin/tool").write_bytes(b"changed")
    (root / "new.txt").write_bytes(b"x" * 1000)
    # the layers are untouched: writes went to the container's upper dir
    assert not os.path.lexists(snap.layer_path(base) / "etc/hostname.new")
    assert (snap.layer_path(base) / "etc/hostname").read_text() == "lower\n"
    assert (snap.layer_path(top) / "bin/tool").read_bytes() == b"t"
    assert snap.usage("c1") == len("upper\n") + len("changed") + 1000
    with pytest.raises(Conflict, match="still mounted"):
        snap.remove("c1")
    snap.unmount(root)
    mounts.remove(root)
    snap.remove("c1")
    assert os.listdir(tmp_path / "s/containers") == []
    assert os.listdir(tmp_path / "s/tmp") == []
    assert snap.has_layer(base) and snap.has_layer(top)


def test_prepare_errors(tmp_path: Path) -> None:
    snap = Snapshotter(tmp_path / "s", driver="overlay")
    base = add_layer(snap, "sha256:base", [E("f", data=b"1")])
    snap.prepare("c1", [base])
    with pytest.raises(Conflict, match="c1"):
        snap.prepare("c1", [base])
    with pytest.raises(NotFound, match="sha256:missing"):
        snap.prepare("c2", [base, "sha256:missing"])
    assert not (tmp_path / "s/containers/c2").exists()
    with pytest.raises(Exception, match="letters"):
        snap.prepare("../escape", [base])


def test_new_layer_discarded_on_error(tmp_path: Path) -> None:
    snap = Snapshotter(tmp_path / "s", driver="overlay")
    with pytest.raises(RuntimeError), snap.new_layer("sha256:bad") as d:
        (d / "partial").write_text("x")
        raise RuntimeError("download failed")
    assert not snap.has_layer("sha256:bad")
    assert os.listdir(tmp_path / "s/tmp") == []


def test_concurrent_new_layer_same_chain(tmp_path: Path) -> None:
    snap = Snapshotter(tmp_path / "s", driver="overlay")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def unpack(who: str) -> None:
        try:
            with snap.new_layer("sha256:same") as d:
                (d / "who").write_text(who)
                barrier.wait(timeout=10)  # both are inside before either commits
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=unpack, args=(w,)) for w in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert (snap.layer_path("sha256:same") / "who").read_text() in ("a", "b")
    assert os.listdir(tmp_path / "s/tmp") == []


def test_view_and_empty_images(tmp_path: Path, mounts: list[Path]) -> None:
    snap = Snapshotter(tmp_path / "s", driver="overlay")
    base = add_layer(snap, "sha256:base", [E("f", data=b"1")])
    one = snap.view("v1", [base])
    assert one[0].type == "bind"
    root = mount_at(snap, one, tmp_path / "v1", mounts)
    assert (root / "f").read_bytes() == b"1"
    with pytest.raises(OSError) as err:
        (root / "g").write_text("x")
    assert err.value.errno == errno.EROFS
    top = add_layer(snap, "sha256:top", [E("g", data=b"2")], [base])
    root2 = mount_at(snap, snap.view("v2", [base, top]), tmp_path / "v2", mounts)
    assert sorted(os.listdir(root2)) == ["f", "g"]
    empty = mount_at(snap, snap.prepare("scratch", []), tmp_path / "scratch", mounts)
    (empty / "x").write_text("ok")
    assert os.listdir(empty) == ["x"]


def test_remove_layer(tmp_path: Path) -> None:
    snap = Snapshotter(tmp_path / "s", driver="overlay")
    base = add_layer(snap, "sha256:base", [E("f", data=b"1")])
    assert len(os.listdir(tmp_path / "s/l")) == 1
    snap.remove_layer(base)
    assert not snap.has_layer(base)
    assert os.listdir(tmp_path / "s/l") == [] and os.listdir(tmp_path / "s/layers") == []
    snap.remove_layer(base)  # twice is fine


def _deep(snap: Snapshotter, n: int) -> list[str]:
    chain: list[str] = []
    for i in range(n):
        entries = [
            E("layers", "dir"),
            E(f"layers/f{i:03}", data=str(i).encode()),
            E("top", data=str(i).encode()),
        ]
        entries.append(E(f"layers/gone{i:03}", data=b"x"))
        if i:
            entries.append(E(f"layers/.wh.gone{i - 1:03}"))
        chain.append(add_layer(snap, f"sha256:l{i:03}", entries, chain))
    return chain


@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_deep_image(tmp_path: Path, mounts: list[Path], driver: str) -> None:
    n = 140
    snap = Snapshotter(tmp_path / "a-fairly-long-store-path" / "snapshots", driver=driver)
    chain = _deep(snap, n)
    specs = snap.prepare("deep", chain)
    if driver == "overlay":
        opts = specs[0].options
        assert overlay.options_length(opts) <= overlay.OPTIONS_LIMIT
        lowers = opts[0].removeprefix("lowerdir=").split(":")
        assert len(lowers) < n and "/flat/" in lowers[-1]  # the bottom layers were flattened
    root = mount_at(snap, specs, tmp_path / "rootfs", mounts)
    want = sorted([f"f{i:03}" for i in range(n)] + [f"gone{n - 1:03}"])
    assert sorted(os.listdir(root / "layers")) == want
    assert (root / "top").read_text() == str(n - 1)
    assert (root / "layers/f000").read_text() == "0"
    (root / "layers/f000").write_text("changed")  # copy-up from a flattened lower
    assert (snap.layer_path(chain[0]) / "layers/f000").read_text() == "0"
    if driver == "overlay":
        view = mount_at(snap, snap.view("deep-view", chain), tmp_path / "view", mounts)
        assert sorted(os.listdir(view / "layers")) == want


def _racer(root: str, data: bytes, go: object) -> None:
    snap = Snapshotter(Path(root), driver="overlay")
    with snap.new_layer("sha256:raced") as d:
        go.wait(10)  # type: ignore[attr-defined]
        apply_layer(OneWay(data), d)


def test_concurrent_pulls_in_processes(tmp_path: Path) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    data = tar_bytes([E("d", "dir")] + [E(f"d/f{i}", data=os.urandom(100)) for i in range(300)])
    go = ctx.Event()
    procs = [ctx.Process(target=_racer, args=(str(tmp_path / "s"), data, go)) for _ in range(3)]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    snap = Snapshotter(tmp_path / "s", driver="overlay")
    assert len(os.listdir(snap.layer_path("sha256:raced") / "d")) == 300
    assert os.listdir(tmp_path / "s/tmp") == []
    assert len(os.listdir(tmp_path / "s/l")) == 1
