"""hako.storage.snapshots without mounting: layout, commits, mount descriptions, lowerdir limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hako.errors import Conflict, HakoError, NotFound
from hako.storage import overlay
from hako.storage.snapshots import MountSpec, Snapshotter, remove_tree


def layer(snap: Snapshotter, chain_id: str, files: dict[str, bytes]) -> str:
    with snap.new_layer(chain_id) as d:
        for name, data in files.items():
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            (d / name).write_bytes(data)
    return chain_id


def test_commit_and_lookup(tmp_path: Path) -> None:
    snap = Snapshotter(tmp_path, driver="overlay")
    assert not snap.has_layer("sha256:aa")
    with pytest.raises(NotFound, match="sha256:aa"):
        snap.layer_path("sha256:aa")
    layer(snap, "sha256:aa", {"f": b"1"})
    assert snap.has_layer("sha256:aa")
    assert (snap.layer_path("sha256:aa") / "f").read_bytes() == b"1"
    link = tmp_path / "l" / os.listdir(tmp_path / "l")[0]
    assert link.resolve() == snap.layer_path("sha256:aa").resolve()
    # a second commit of the same chain id is dropped quietly
    layer(snap, "sha256:aa", {"other": b"2"})
    assert os.listdir(snap.layer_path("sha256:aa")) == ["f"]
    assert os.listdir(tmp_path / "tmp") == []


@pytest.mark.parametrize("bad", ["", "a/b", "..", ".", "x" * 200, "sha256:a b"])
def test_bad_ids(tmp_path: Path, bad: str) -> None:
    snap = Snapshotter(tmp_path, driver="overlay")
    with pytest.raises(HakoError):
        snap.has_layer(bad)
    with pytest.raises(HakoError):
        snap.prepare(bad, [])


def test_overlay_root_path_must_be_mountable(tmp_path: Path) -> None:
    with pytest.raises(HakoError, match="overlay paths"):
        Snapshotter(tmp_path / "a:b", driver="overlay")
    with pytest.raises(HakoError, match="driver"):
        Snapshotter(tmp_path, driver="zfs")


def test_prepare_describes_an_overlay(tmp_path: Path) -> None:
    snap = Snapshotter(tmp_path, driver="overlay")
    chain = [layer(snap, f"sha256:{i}", {f"f{i}": b"x"}) for i in range(3)]
    (spec,) = snap.prepare("c1", chain)
    assert (spec.type, spec.source) == ("overlay", "overlay")
    lower, upper, work = spec.options
    lowers = lower.removeprefix("lowerdir=").split(":")
    # top first, through the short links
    assert [Path(p).resolve() for p in lowers] == [snap.layer_path(c).resolve() for c in reversed(chain)]
    assert upper == f"upperdir={tmp_path}/containers/c1/upper"
    assert work == f"workdir={tmp_path}/containers/c1/work"
    assert spec.to_oci("/") == {
        "destination": "/",
        "type": "overlay",
        "source": "overlay",
        "options": spec.options,
    }
    with pytest.raises(Conflict):
        snap.prepare("c1", chain)
    snap.remove("c1")
    assert os.listdir(tmp_path / "containers") == []


def test_view_descriptions(tmp_path: Path) -> None:
    snap = Snapshotter(tmp_path, driver="overlay")
    a = layer(snap, "sha256:a", {"a": b""})
    b = layer(snap, "sha256:b", {"b": b""})
    (one,) = snap.view("v", [a])
    assert isinstance(one, MountSpec) and (one.type, one.options) == ("bind", ["rbind", "ro"])
    assert Path(one.source).resolve() == snap.layer_path(a).resolve()
    two = snap.view("v", [a, b])[0]
    assert (
        two.type == "overlay"
        and "ro" in two.options
        and not any(o.startswith("upperdir") for o in two.options)
    )
    assert snap.view("v", [])[0].type == "bind"


def test_deep_stacks_are_flattened_to_fit(tmp_path: Path) -> None:
    root = tmp_path / ("long-store-path-" * 4)
    snap = Snapshotter(root, driver="overlay")
    chain = [layer(snap, f"sha256:{i:04d}", {f"d/f{i}": str(i).encode()}) for i in range(200)]
    (spec,) = snap.prepare("deep", chain)
    assert overlay.options_length(spec.options) <= overlay.OPTIONS_LIMIT
    lowers = spec.options[0].removeprefix("lowerdir=").split(":")
    flat = Path(lowers[-1])
    assert flat.parent.name == "flat"
    kept = len(lowers) - 1
    # the flattened tree holds exactly the layers that did not fit, hardlinked
    assert sorted(os.listdir(flat / "d")) == sorted(f"f{i}" for i in range(200 - kept))
    assert os.stat(flat / "d/f0").st_ino == os.stat(snap.layer_path(chain[0]) / "d/f0").st_ino
    # a second container of the same image reuses the flattened tree
    (spec2,) = snap.prepare("deep2", chain)
    assert spec2.options[0] == spec.options[0]


def test_fits() -> None:
    assert overlay.fits(["/x"] * 10)
    assert not overlay.fits(["/x"] * (overlay.MAX_LOWERS + 1))
    assert not overlay.fits(["/" + "x" * 100] * 50)
    assert overlay.fits(["/" + "x" * 100] * 30, reserve=200)
    with pytest.raises(HakoError):
        overlay.check_path("/a,b")


def test_usage_counts_upper_bytes_once_per_inode(tmp_path: Path) -> None:
    snap = Snapshotter(tmp_path, driver="overlay")
    snap.prepare("c", [])
    upper = tmp_path / "containers/c/upper"
    (upper / "a").write_bytes(b"x" * 100)
    os.link(upper / "a", upper / "b")
    (upper / "d").mkdir()
    (upper / "d/e").write_bytes(b"y" * 10)
    assert snap.usage("c") == 110
    with pytest.raises(NotFound):
        snap.usage("nope")


def test_clean_tmp_removes_only_stale_entries(tmp_path: Path) -> None:
    snap = Snapshotter(tmp_path, driver="overlay")
    stale, fresh = tmp_path / "tmp/stale", tmp_path / "tmp/fresh"
    stale.mkdir()
    (stale / "f").write_text("x")
    fresh.mkdir()
    os.utime(stale, (1, 1))
    stale_file = tmp_path / "tmp/stale-file"
    stale_file.write_text("x")
    os.utime(stale_file, (1, 1))
    assert snap.clean_tmp() == 2
    assert os.listdir(tmp_path / "tmp") == ["fresh"]


def test_layer_ids_lists_what_is_on_disk(tmp_path: Path) -> None:
    snap = Snapshotter(tmp_path, driver="overlay")
    chain = "sha256:" + "a" * 64
    with snap.new_layer(chain):
        pass
    with snap.new_layer("plain"):
        pass
    assert snap.layer_ids() == [chain]


def test_short_names_and_keys_without_hashlib_or_re() -> None:
    """The lowerdir link names and key checks, computed without hashlib/base64/re (``hako run``)."""
    import base64
    import hashlib
    import re

    from hako.storage.snapshots import _short, valid_key

    for chain in ("sha256:" + "ab" * 32, "x", "sha256:0"):
        assert _short(chain) == base64.b32encode(hashlib.sha256(chain.encode()).digest()).decode()[:12].lower()
    pattern = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}")
    for key in ("a", "A9_.:+-", "_a", ".", "-x", "a b", "a/b", "é", "a" * 128, "a" * 129, "", "k\n"):
        assert valid_key(key) == bool(pattern.fullmatch(key)), key


def test_removed_snapshot_never_follows_symlinks(tmp_path: Path) -> None:
    """A container's snapshot goes with what it holds; a symlink in it is removed, not followed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    snap = Snapshotter(tmp_path / "store", driver="overlay")
    snap.prepare("c1", [])
    upper = tmp_path / "store" / "containers" / "c1" / "upper"
    (upper / "d" / "e").mkdir(parents=True)
    (upper / "d" / "e" / "f").write_text("y")
    (upper / "link").symlink_to(outside)
    if os.geteuid() == 0:
        os.mknod(upper / "wh", 0o600 | 0o020000, 0)  # a whiteout (0/0 character device)
    snap.remove("c1")
    assert not (tmp_path / "store" / "containers" / "c1").exists()
    assert (outside / "keep").read_text() == "x"
    assert os.listdir(tmp_path / "store" / "tmp") == []


def test_remove_tree_does_not_follow_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f").write_text("y")
    (tree / "link").symlink_to(outside)
    (tree / "a" / "dangling").symlink_to(tmp_path / "nowhere")
    remove_tree(str(tree))
    assert not tree.exists() and (outside / "keep").read_text() == "x"
    remove_tree(str(tree))  # gone already: nothing to do, no error
