"""hako.storage.layers as root: a four-layer image merged by overlayfs, by the copying
driver and by apply mode must give the same tree, entry by entry."""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hako.storage.layers import apply_layer
from hako.storage.snapshots import Snapshotter
from tests.fixtures_storage import LONG_FILE, OneWay, describe, layered_scenario, tar_bytes

TESTIMAGES = Path("/work/shared/testimages")



def build(snap: Snapshotter, layers: list[bytes], prefix: str, with_lowers: bool = True) -> list[str]:
    chain: list[str] = []
    for i, data in enumerate(layers):
        cid = f"{prefix}-{i}"
        with snap.new_layer(cid) as d:
            apply_layer(OneWay(data), d, lowers=snap.lower_dirs(chain) if with_lowers else ())
        chain.append(cid)
    return chain


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, tuple[object, ...]]]]:
    """The scenario's merged tree three ways: overlay mount, vfs copy, apply mode."""
    base = tmp_path_factory.mktemp("layers")
    layers = [tar_bytes(entries) for entries in layered_scenario()]
    out: dict[str, dict[str, tuple[object, ...]]] = {}
    ovl = Snapshotter(base / "ovl", driver="overlay")
    # with the lowers at hand while unpacking, and without (parallel pulls): fixed at prepare
    for name, with_lowers in (("overlay", True), ("overlay-deferred", False)):
        chain = build(ovl, layers, name, with_lowers)
        target = base / name
        target.mkdir()
        ovl.mount(ovl.prepare(name, chain), target)
        try:
            out[name] = describe(target)
        finally:
            ovl.unmount(target)
    vfs = Snapshotter(base / "vfs", driver="vfs")
    spec = vfs.prepare("c1", build(vfs, layers, "sc", with_lowers=False))
    out["vfs"] = describe(Path(spec[0].source))
    applied = base / "applied"
    applied.mkdir()
    for data in layers:
        apply_layer(OneWay(data), applied, overlay_whiteouts=False)
    out["apply"] = describe(applied)
    yield out


def test_three_ways_agree(trees: dict[str, dict[str, tuple[object, ...]]]) -> None:
    ovl = trees["overlay"]
    for other in ("overlay-deferred", "vfs", "apply"):
        diff = {
            p: (ovl.get(p), trees[other].get(p))
            for p in set(ovl) | set(trees[other])
            if ovl.get(p) != trees[other].get(p)
        }
        assert not diff, f"overlay vs {other}: {diff}"


@pytest.mark.parametrize("how", ["overlay", "overlay-deferred", "vfs", "apply"])
def test_merged_tree(trees: dict[str, dict[str, tuple[object, ...]]], how: str) -> None:
    t = trees[how]

    def kind(p: str) -> int:
        return t[p][0]  # type: ignore[return-value]

    def mode(p: str) -> str:
        return t[p][1]  # type: ignore[return-value]

    def listing(d: str) -> list[str]:
        prefix = d.rstrip("/") + "/"
        return sorted({p[len(prefix) :].split("/")[0] for p in t if p.startswith(prefix)})

    assert not [p for p in t if "/.wh." in p]
    for gone in (
        "/opt/remove-me.txt",
        "/opt/never-existed",
        "/opt/app/data/sub",
        "/usr/bin/wget",
        "/opt/rel-link",
    ):
        assert gone not in t
    assert listing("/opt/replace-dir") == ["new.txt", "sub"]
    assert listing("/opt/replace-dir/sub") == ["new-sub.txt"]
    assert listing("/opt/opq-first") == ["new"]
    assert listing("/opt/redir") == ["upper-only"]
    assert listing("/opt/redir2") == ["upper-only"] and mode("/opt/redir2") == "0o750"
    assert listing("/opt/app/data") == ["a", "b"]
    assert listing("/opt/implicit") == ["upper-only"] and mode("/opt/implicit") == "0o755"
    assert listing("/opt/dir-to-file") == [] and kind("/opt/dir-to-file") == stat.S_IFREG
    assert listing("/opt/file-to-dir") == ["child.txt"] and kind("/opt/file-to-dir") == stat.S_IFDIR
    assert listing("/usr/bin") == []
    assert listing("/no/parent/entry") == ["file.txt"] and mode("/no/parent") == "0o755"
    for f, content in (("/opt/recreated.txt", b"new\n"), ("/opt/recreated2.txt", b"new2\n")):
        assert t[f][4] == len(content)
    assert (
        mode("/opt/app") == "0o700"
        and mode("/opt/app/config.txt") == "0o600"
        and t["/opt/app/config.txt"][4] == 10
    )
    assert t["/opt/hardlink.txt"][7] == t["/opt/original.txt"][7] == "/opt/hardlink.txt"
    assert t["/opt/abs-link"][6] == "/opt/original.txt"
    assert t["/opt/dangling"][6] == "/does/not/exist"
    assert t["/opt/dir-link"][6] == "app"
    assert t["/bin/sh"][6] == "/bin/busybox"
    assert mode("/opt/setuid-bin") == "0o4755"
    assert mode("/opt/setgid-dir") == "0o2775"
    assert t["/opt/setgid-dir/inherit.txt"][2:4] == (0, 50)
    assert t["/opt/setgid-dir/root-owned.txt"][2:4] == (0, 0)  # not the setgid dir's group
    assert t["/opt/setgid-dir"][3] == 50
    assert t["/opt/owned-by-1000.txt"][1:4] == ("0o640", 1000, 1000)
    assert t["/home/user"][1:4] == ("0o750", 1000, 1000)
    assert t["/opt/xattr.txt"][8] == (("user.hako", b"test-value"),)
    assert t["/opt/empty"][4] == 0 and kind("/opt/empty") == stat.S_IFREG
    assert "/opt/ünïcödé-名前.txt" in t
    assert t[LONG_FILE][4] == 5
    assert kind("/opt/fifo") == stat.S_IFIFO
    assert kind("/opt/null") == stat.S_IFCHR and t["/opt/null"][6] == "1,3"
    assert t["/bin/busybox"][4] == Path("/bin/busybox").stat().st_size and mode("/bin/busybox") == "0o755"
    assert t["/opt/original.txt"][9] == 1704067200 * 10**9


def test_overlay_layer_dir_format(tmp_path: Path) -> None:
    """What overlayfs reads: 0/0 devices for whiteouts, the opaque xattr, and nothing named .wh.*"""
    apply_layer(OneWay(tar_bytes(layered_scenario()[1])), tmp_path)
    st = os.lstat(tmp_path / "opt/remove-me.txt")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(tmp_path / "opt/replace-dir", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(tmp_path / "opt/redir", "trusted.overlay.opaque") == b"y"  # whiteout after re-create
    assert os.getxattr(tmp_path / "opt/redir2", "trusted.overlay.opaque") == b"y"  # whiteout before re-create
    assert os.getxattr(tmp_path / "opt/implicit", "trusted.overlay.opaque") == b"y"  # whiteout, then a child
    assert (tmp_path / "opt/recreated.txt").read_bytes() == b"new\n"  # not replaced by its whiteout
    assert not list(tmp_path.rglob(".wh.*"))


def _reference_layers(out: Path) -> dict[str, list[Path]]:
    subprocess.run(
        [sys.executable, str(TESTIMAGES / "make-test-images"), "--only", "layered", str(out)],
        check=True,
        capture_output=True,
    )
    lay = out / "layered"
    images = {}
    for m in json.loads((lay / "index.json").read_text())["manifests"]:
        tag = m["annotations"]["org.opencontainers.image.ref.name"]
        manifest = json.loads((lay / "blobs/sha256" / m["digest"].split(":")[1]).read_text())
        images[tag] = [lay / "blobs/sha256" / layer["digest"].split(":")[1] for layer in manifest["layers"]]
    return images


@pytest.mark.skipif(not (TESTIMAGES / "make-test-images").exists(), reason="shared test images not available")
def test_reference_images_pass_check_rootfs(tmp_path: Path, mounts: list[Path]) -> None:
    images = _reference_layers(tmp_path / "images")
    expected = tmp_path / "images/expected-layered.txt"
    snap = Snapshotter(tmp_path / "snap", driver="overlay")
    for tag, blobs in images.items():
        chain = []
        applied = tmp_path / f"applied-{tag}"
        applied.mkdir()
        for i, blob in enumerate(blobs):
            # edge as a parallel pull unpacks: without its lowers, fixed up at view()
            lowers = snap.lower_dirs(chain) if tag == "latest" else []
            with snap.new_layer(f"{tag}-{i}") as d, gzip.open(blob) as f:
                apply_layer(f, d, lowers=lowers)
            with gzip.open(blob) as f:
                apply_layer(f, applied, overlay_whiteouts=False)
            chain.append(f"{tag}-{i}")
        target = tmp_path / f"merged-{tag}"
        target.mkdir()
        snap.mount(snap.view(f"view-{tag}", chain), target)
        mounts.append(target)
        for tree in (target, applied):
            r = subprocess.run(
                [sys.executable, str(TESTIMAGES / "check-rootfs"), str(tree), str(expected)],
                capture_output=True,
                text=True,
            )
            assert r.returncode == 0, f"{tag} {tree}: {r.stdout}{r.stderr}"


@pytest.mark.parametrize("overlay_mode", [True, False])
def test_binary_and_privileged_xattrs(tmp_path: Path, overlay_mode: bool) -> None:
    import struct

    from tests.fixtures_storage import E

    # VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_BIND_SERVICE: not valid UTF-8 as text
    cap = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)
    entries = [
        E("bin", "dir", xattrs={"trusted.dir-note": "d"}),
        E(
            "bin/ping",
            data=b"\x7fELF",
            mode=0o755,
            xattrs={"security.capability": cap.decode("utf-8", "surrogateescape")},
        ),
        E("bin/noted", data=b"", xattrs={"trusted.note": "t", "user.bin": "\udcff\udcfe"}),
    ]
    apply_layer(OneWay(tar_bytes(entries)), tmp_path, overlay_whiteouts=overlay_mode)
    assert os.getxattr(tmp_path / "bin/ping", "security.capability") == cap
    assert os.getxattr(tmp_path / "bin/noted", "trusted.note") == b"t"
    assert os.getxattr(tmp_path / "bin/noted", "user.bin") == b"\xff\xfe"
    assert os.getxattr(tmp_path / "bin", "trusted.dir-note") == b"d"
