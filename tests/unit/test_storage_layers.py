"""hako.storage.layers without root: path cleaning, tar parsing, apply-mode whiteouts, hostile layers."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from hako.storage.layers import LayerError, UnsafeLayerError, apply_layer, clean_path, whiteout_target
from tests.fixtures_storage import E, OneWay, tar_bytes


def apply(entries: list[E], dest: Path, **kw: bool) -> object:
    kw.setdefault("overlay_whiteouts", False)
    return apply_layer(OneWay(tar_bytes(entries)), dest, **kw)


@pytest.fixture
def box(tmp_path: Path) -> tuple[Path, Path]:
    """dest, and a sentinel dir next to it that no layer may touch."""
    dest = tmp_path / "dest"
    sentinel = tmp_path / "sentinel"
    dest.mkdir()
    sentinel.mkdir()
    (sentinel / "secret").write_text("keep")
    return dest, sentinel


def untouched(sentinel: Path) -> bool:
    return sorted(os.listdir(sentinel)) == ["secret"] and (sentinel / "secret").read_text() == "keep"


# -- clean_path -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("a/b", "a/b"),
        ("./a/b/", "a/b"),
        ("/etc/passwd", "etc/passwd"),
        ("//a//./b", "a/b"),
        ("a/../b", "b"),
        (".", ""),
        ("./", ""),
    ],
)
def test_clean_path(name: str, want: str) -> None:
    assert clean_path(name) == want


@pytest.mark.parametrize("name", ["..", "../x", "a/../../x", "/../x", "a/b/../../../x"])
def test_clean_path_refuses_escapes(name: str) -> None:
    with pytest.raises(UnsafeLayerError, match="escapes"):
        clean_path(name)


@pytest.mark.parametrize("base", [".wh.", ".wh..", ".wh..."])
def test_whiteout_naming_the_dir_itself_is_refused(base: str) -> None:
    with pytest.raises(UnsafeLayerError):
        whiteout_target(base, "d/" + base)


# -- stream handling ------------------------------------------------------------------------


def test_reads_stream_to_the_end(tmp_path: Path) -> None:
    data = tar_bytes([E("a", data=b"x" * 3000)]) + b"\0" * 8192  # trailing padding past the end blocks
    src = OneWay(data)
    stats = apply_layer(src, tmp_path)
    assert src.consumed == len(data)
    assert stats.files == 1 and stats.bytes == 3000
    assert (tmp_path / "a").read_bytes() == b"x" * 3000


def test_empty_stream_is_an_empty_layer(tmp_path: Path) -> None:
    assert apply_layer(OneWay(b""), tmp_path).entries == 0
    assert apply_layer(OneWay(b"\0" * 1024), tmp_path).entries == 0


def test_truncated_file_data_is_an_error(tmp_path: Path) -> None:
    data = tar_bytes([E("big", data=b"y" * 5000)])
    with pytest.raises(LayerError, match="big"):
        apply_layer(OneWay(data[: 512 + 1000]), tmp_path)


def test_corrupt_header_is_an_error(tmp_path: Path) -> None:
    data = bytearray(tar_bytes([E("a", data=b"1"), E("b", data=b"2")]))
    data[1024 + 10] ^= 0xFF  # second header's name: checksum no longer matches
    with pytest.raises(LayerError, match="corrupt tar header"):
        apply_layer(OneWay(bytes(data)), tmp_path)


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_formats_long_names_and_big_files(tmp_path: Path, fmt: int) -> None:
    long = "d" * 60 + "/" + "f" * 120 if fmt != tarfile.USTAR_FORMAT else "d" * 60 + "/" + "f" * 90
    payload = os.urandom(3 << 20)
    entries = [
        E(long, data=b"long"),
        E("big.bin", data=payload),
        E("link", "symlink", link="x" * 150 if fmt != tarfile.USTAR_FORMAT else "x"),
    ]
    apply_layer(OneWay(tar_bytes(entries, fmt)), tmp_path)
    assert (tmp_path / long).read_bytes() == b"long"
    assert (tmp_path / "big.bin").read_bytes() == payload
    assert os.readlink(tmp_path / "link") == entries[2].link


def test_modes_mtimes_and_xattrs(tmp_path: Path) -> None:
    entries = [
        E("d", "dir", mode=0o750, mtime=1000),
        E("d/f", data=b"f", mode=0o640, mtime=2000, xattrs={"user.hako": "test-value"}),
        E("d/l", "symlink", link="f", mtime=3000),
        E("d/overlay", data=b"", xattrs={"trusted.overlay.redirect": "/etc", "user.overlay.opaque": "y"}),
        E("ünïcödé-名前.txt", data=b"u"),
    ]
    apply_layer(OneWay(tar_bytes(entries)), tmp_path)
    assert (tmp_path / "d").stat().st_mode & 0o7777 == 0o750
    assert (tmp_path / "d").stat().st_mtime == 1000  # set after its children were made
    assert (tmp_path / "d/f").stat().st_mode & 0o7777 == 0o640
    assert (tmp_path / "d/f").stat().st_mtime == 2000
    assert os.lstat(tmp_path / "d/l").st_mtime == 3000
    assert os.getxattr(tmp_path / "d/f", "user.hako") == b"test-value"
    # a layer must not steer overlayfs through its own xattrs
    assert not [n for n in os.listxattr(tmp_path / "d/overlay") if "overlay" in n]
    assert (tmp_path / "ünïcödé-名前.txt").read_bytes() == b"u"


# -- apply mode: whiteouts against the existing tree -----------------------------------------


def test_apply_mode_whiteouts_in_every_order(tmp_path: Path) -> None:
    apply(
        [
            E("keep", data=b"k"),
            E("gone", data=b"g"),
            E("dir", "dir"),
            E("dir/lower", data=b"l"),
            E("dir/sub", "dir"),
            E("dir/sub/lower2", data=b"l"),
            E("re", data=b"old"),
            E("re2", data=b"old"),
            E("redir", "dir"),
            E("redir/lower", data=b"l"),
        ],
        tmp_path,
    )
    stats = apply(
        [
            E(".wh.gone"),
            E(".wh.never-existed"),
            E("dir/new", data=b"n"),
            E("dir/sub/new2", data=b"n"),
            E("dir/.wh..wh..opq"),  # after this layer's own entries
            E("re", data=b"new"),
            E(".wh.re"),  # after the re-created file
            E(".wh.re2"),
            E("re2", data=b"new2"),
            E("redir/upper", data=b"u"),
            E(".wh.redir"),  # after a re-created (implicit) directory
        ],
        tmp_path,
    )
    assert stats.whiteouts == 5 and stats.opaques == 1  # type: ignore[attr-defined]
    assert sorted(os.listdir(tmp_path)) == ["dir", "keep", "re", "re2", "redir"]
    assert sorted(os.listdir(tmp_path / "dir")) == ["new", "sub"]
    assert os.listdir(tmp_path / "dir/sub") == ["new2"]
    assert (tmp_path / "re").read_bytes() == b"new"
    assert (tmp_path / "re2").read_bytes() == b"new2"
    assert os.listdir(tmp_path / "redir") == ["upper"]


def test_apply_mode_type_changes(tmp_path: Path) -> None:
    apply(
        [E("d2f", "dir"), E("d2f/child", data=b"c"), E("f2d", data=b"f"), E("l2d", "symlink", link="/")],
        tmp_path,
    )
    apply([E("d2f", data=b"file"), E("f2d", "dir"), E("f2d/child", data=b"c"), E("l2d", "dir")], tmp_path)
    assert (tmp_path / "d2f").read_bytes() == b"file"
    assert os.listdir(tmp_path / "f2d") == ["child"]
    assert (tmp_path / "l2d").is_dir() and not (tmp_path / "l2d").is_symlink()


def test_hardlinks_within_layer_and_to_lower_tree(tmp_path: Path) -> None:
    apply([E("lower", data=b"l")], tmp_path)
    apply([E("a", data=b"a"), E("b", "hardlink", link="a"), E("c", "hardlink", link="/lower")], tmp_path)
    assert os.stat(tmp_path / "a").st_ino == os.stat(tmp_path / "b").st_ino
    assert os.stat(tmp_path / "c").st_ino == os.stat(tmp_path / "lower").st_ino


def test_missing_parents_are_created(tmp_path: Path) -> None:
    apply([E("x/y/z/file", data=b"z")], tmp_path)
    assert (tmp_path / "x/y/z/file").read_bytes() == b"z"
    assert (tmp_path / "x/y").stat().st_mode & 0o7777 == 0o755


# -- hostile layers ---------------------------------------------------------------------------


HOSTILE = {
    "dotdot": [E("../sentinel/evil", data=b"x")],
    "dotdot-inner": [E("a/../../sentinel/evil", data=b"x")],
    "symlink-then-write": [E("link", "symlink", link="../sentinel"), E("link/evil", data=b"x")],
    "abs-symlink-then-write": [E("link", "symlink", link="SENTINEL"), E("link/evil", data=b"x")],
    "symlink-then-dir": [E("link", "symlink", link="../sentinel"), E("link/sub", "dir")],
    "symlink-then-mkdir-parent": [E("link", "symlink", link="../sentinel"), E("link/a/b/c", data=b"x")],
    "hardlink-escape": [E("h", "hardlink", link="../sentinel/secret")],
    "hardlink-through-symlink": [
        E("link", "symlink", link="../sentinel"),
        E("h", "hardlink", link="link/secret"),
    ],
    "whiteout-through-symlink": [E("link", "symlink", link="../sentinel"), E("link/.wh.secret")],
    "opaque-through-symlink": [E("link", "symlink", link="../sentinel"), E("link/.wh..wh..opq")],
    "whiteout-dotdot": [E("d", "dir"), E("d/.wh..")],
    "root-as-symlink": [E(".", "symlink", link="../sentinel")],
    "hardlink-to-dir": [E("d", "dir"), E("h", "hardlink", link="d")],
    "dir-replaced-by-symlink": [
        E("a", "dir"),
        E("a/f", data=b"1"),
        E("a", "symlink", link="../sentinel"),
        E("a/evil", data=b"x"),
    ],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("overlay", [False, True])
def test_hostile_layers_are_refused(box: tuple[Path, Path], case: str, overlay: bool) -> None:
    dest, sentinel = box
    entries = [
        E(e.name, e.type, e.data, link=e.link.replace("SENTINEL", str(sentinel))) for e in HOSTILE[case]
    ]
    bad = entries[-1].name
    with pytest.raises(UnsafeLayerError) as err:
        apply(entries, dest, overlay_whiteouts=overlay)
    assert repr(bad) in str(err.value)
    assert untouched(sentinel)


def test_planted_symlink_from_earlier_layer(box: tuple[Path, Path]) -> None:
    dest, sentinel = box
    apply([E("etc", "symlink", link=str(sentinel)), E("rel", "symlink", link="../sentinel")], dest)
    for entries in (
        [E("etc/passwd", data=b"pwned")],
        [E("rel/evil", data=b"x")],
        [E("etc/.wh.secret")],
        [E("rel/.wh..wh..opq")],
        [E("etc/sub/deeper", "dir")],
        [E("h", "hardlink", link="etc/secret")],
    ):
        with pytest.raises(UnsafeLayerError, match="symlink"):
            apply(entries, dest)
        assert untouched(sentinel)


def test_a_file_replaces_a_symlink_instead_of_writing_through_it(box: tuple[Path, Path]) -> None:
    dest, sentinel = box
    apply([E("link", "symlink", link="../sentinel/secret")], dest)
    apply([E("link", data=b"mine")], dest)
    assert not (dest / "link").is_symlink() and (dest / "link").read_bytes() == b"mine"
    apply([E("h", "hardlink", link="link2"), E("link2", "symlink", link="../sentinel")][::-1], dest)
    assert os.readlink(dest / "h") == "../sentinel"  # a hardlink to the symlink itself
    assert untouched(sentinel)


def test_absolute_names_land_inside_dest(box: tuple[Path, Path]) -> None:
    dest, sentinel = box
    apply([E(str(sentinel / "evil"), data=b"x"), E("/etc/x", data=b"y")], dest)
    assert (dest / str(sentinel).lstrip("/") / "evil").read_bytes() == b"x"
    assert (dest / "etc/x").read_bytes() == b"y"
    assert untouched(sentinel)


def test_devices_refused_when_not_allowed(box: tuple[Path, Path]) -> None:
    dest, sentinel = box
    with pytest.raises(UnsafeLayerError, match="'dev/sda'.*device"):
        apply([E("dev", "dir"), E("dev/sda", "block", major=8, minor=0)], dest, allow_devices=False)
    with pytest.raises(UnsafeLayerError, match="'null'"):
        apply([E("null", "char", major=1, minor=3)], dest, allow_devices=False)


def test_not_a_tar(tmp_path: Path) -> None:
    with pytest.raises(LayerError):
        apply_layer(io.BytesIO(b"this is not a tar archive" * 40), tmp_path)


def test_deep_paths(tmp_path: Path) -> None:
    deep = "/".join(["d"] * 300)  # deeper than the descriptor cache
    apply([E(deep + "/f", data=b"deep"), E("x/.wh.y")], tmp_path)
    assert (tmp_path / deep / "f").read_bytes() == b"deep"
    with pytest.raises(UnsafeLayerError, match="deeper than"):
        apply([E("/".join(["d"] * 500) + "/f", data=b"")], tmp_path)


@pytest.mark.parametrize("fmt", ["gnu", "posix", "ustar", "v7", "oldgnu"])
def test_archives_made_by_gnu_tar(tmp_path: Path, fmt: str) -> None:
    """Headers as GNU tar writes them (GNU magic, per-file PAX atime/ctime, V7) parse alike."""
    import subprocess

    src = tmp_path / "src"
    (src / "dir/sub").mkdir(parents=True)
    (src / "dir/file").write_bytes(os.urandom(10000))
    (src / "dir/sub/empty").write_bytes(b"")
    os.symlink("../file", src / "dir/sub/link")
    os.link(src / "dir/file", src / "dir/hard")
    long = "n" * 90 if fmt in ("ustar", "v7") else "n" * 150
    (src / "dir" / long).write_text("long")
    (src / "dir/file").chmod(0o751)
    archive = tmp_path / "a.tar"
    subprocess.run(["tar", f"--format={fmt}", "-cf", str(archive), "-C", str(src), "dir"], check=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    with open(archive, "rb") as f:
        stats = apply_layer(f, dest, overlay_whiteouts=False)
    assert stats.hardlinks == 1 and stats.symlinks == 1
    assert (dest / "dir/file").read_bytes() == (src / "dir/file").read_bytes()
    assert (dest / "dir/file").stat().st_mode & 0o7777 == 0o751
    assert (dest / "dir/file").stat().st_mtime_ns // 10**9 == (src / "dir/file").stat().st_mtime_ns // 10**9
    assert os.stat(dest / "dir/hard").st_ino == os.stat(dest / "dir/file").st_ino
    assert os.readlink(dest / "dir/sub/link") == "../file"
    assert (dest / "dir" / long).read_text() == "long"
    assert sorted(os.listdir(dest / "dir")) == sorted(os.listdir(src / "dir"))


def test_destination_must_be_a_directory(tmp_path: Path) -> None:
    from hako.errors import HakoError

    with pytest.raises(HakoError, match="missing"):
        apply_layer(OneWay(tar_bytes([E("a")])), tmp_path / "missing")


def test_opaque_and_hardlinks_across_more_dirs_than_the_descriptor_cache(tmp_path: Path) -> None:
    deep = "/".join(["n"] * 150)
    lower = [E(f"top/{b}/{deep}/old", data=b"old") for b in ("a", "b", "c")] + [E("top/z", data=b"z")]
    apply(lower, tmp_path)
    apply(
        [
            E(f"top/b/{deep}/new", data=b"new"),
            E(f"src/{deep}/file", data=b"shared"),
            E(f"dst/{deep}/link", "hardlink", link=f"src/{deep}/file"),
            E("top/.wh..wh..opq"),
        ],
        tmp_path,
    )
    assert os.listdir(tmp_path / "top") == ["b"]
    assert os.listdir(tmp_path / "top/b" / deep) == ["new"]
    assert (
        os.stat(tmp_path / "dst" / deep / "link").st_ino == os.stat(tmp_path / "src" / deep / "file").st_ino
    )
