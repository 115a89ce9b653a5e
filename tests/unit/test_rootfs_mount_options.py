"""OCI mount option strings into mount(2) flags, propagation, recursive attributes and data."""

from __future__ import annotations

import pytest

from hako.errors import ConfigError
from hako.runtime.mount_options import parse_mount_options, parse_propagation, validate_tmpfs_data
from hako.sys import mount as m


def test_flags_and_data_split() -> None:
    o = parse_mount_options(["nosuid", "noexec", "nodev", "ro", "mode=755", "size=65536k", "newinstance"])
    assert o.flags == m.MS_NOSUID | m.MS_NOEXEC | m.MS_NODEV | m.MS_RDONLY
    assert o.data == "mode=755,size=65536k,newinstance"
    assert o.readonly and not o.bind
    assert o.data_option("size") == "65536k"
    assert o.data_option("newinstance") == ""
    assert o.data_option("gid") is None


def test_later_options_win() -> None:
    assert parse_mount_options(["ro", "rw"]).flags == 0
    assert parse_mount_options(["rw", "ro"]).flags == m.MS_RDONLY
    o = parse_mount_options(["nosuid", "suid", "noexec"])
    assert o.flags == m.MS_NOEXEC
    assert o.cleared == m.MS_NOSUID


@pytest.mark.parametrize(
    ("opt", "flag"),
    [
        ("sync", m.MS_SYNCHRONOUS),
        ("dirsync", m.MS_DIRSYNC),
        ("remount", m.MS_REMOUNT),
        ("mand", m.MS_MANDLOCK),
        ("noatime", m.MS_NOATIME),
        ("nodiratime", m.MS_NODIRATIME),
        ("relatime", m.MS_RELATIME),
        ("strictatime", m.MS_STRICTATIME),
        ("nosymfollow", m.MS_NOSYMFOLLOW),
        ("lazytime", m.MS_LAZYTIME),
    ],
)
def test_each_setting_flag(opt: str, flag: int) -> None:
    assert parse_mount_options([opt]).flags == flag


@pytest.mark.parametrize(
    ("setter", "clearer"),
    [
        ("sync", "async"),
        ("mand", "nomand"),
        ("noatime", "atime"),
        ("nodiratime", "diratime"),
        ("relatime", "norelatime"),
        ("strictatime", "nostrictatime"),
        ("nodev", "dev"),
        ("noexec", "exec"),
    ],
)
def test_clearing_options(setter: str, clearer: str) -> None:
    assert parse_mount_options([setter, clearer]).flags == 0


def test_bind_and_rbind() -> None:
    assert parse_mount_options(["bind"]).flags == m.MS_BIND
    o = parse_mount_options(["rbind", "ro"])
    assert o.bind and o.recursive and o.readonly
    assert o.mnt_flags == m.MS_RDONLY


def test_propagation_kept_in_order_and_apart_from_flags() -> None:
    o = parse_mount_options(["rbind", "rprivate", "shared", "rslave", "unbindable", "runbindable"])
    assert o.propagation == [
        m.MS_PRIVATE | m.MS_REC,
        m.MS_SHARED,
        m.MS_SLAVE | m.MS_REC,
        m.MS_UNBINDABLE,
        m.MS_UNBINDABLE | m.MS_REC,
    ]
    assert o.flags == m.MS_BIND | m.MS_REC


def test_recursive_attributes() -> None:
    o = parse_mount_options(["rbind", "rro", "rnosuid", "rnoexec", "rnoatime"])
    assert (
        o.rec_attr_set
        == m.MOUNT_ATTR_RDONLY | m.MOUNT_ATTR_NOSUID | m.MOUNT_ATTR_NOEXEC | m.MOUNT_ATTR_NOATIME
    )
    assert o.rec_attr_clr == m.MOUNT_ATTR__ATIME
    o = parse_mount_options(["rro", "rrw"])
    assert o.rec_attr_set == 0 and o.rec_attr_clr == m.MOUNT_ATTR_RDONLY


def test_extensions() -> None:
    o = parse_mount_options(["tmpcopyup", "idmap"])
    assert o.tmpcopyup and o.idmap and not o.ridmap and o.data == ""
    assert not parse_mount_options(["tmpcopyup", "notmpcopyup"]).tmpcopyup


def test_unknown_options_go_to_data_like_runc() -> None:
    assert parse_mount_options(["defaults", "lowerdir=/a:/b", "userxattr"]).data == "lowerdir=/a:/b,userxattr"


def test_empty_and_non_string_options_name_their_index() -> None:
    with pytest.raises(ConfigError, match=r"mounts\[2\]\.options\[1\]"):
        parse_mount_options(["ro", ""], "mounts[2].options")
    with pytest.raises(ConfigError, match=r"mounts\[0\]\.options\[0\]"):
        parse_mount_options([3], "mounts[0].options")  # type: ignore[list-item]


def test_propagation_values() -> None:
    assert parse_propagation("rslave") == m.MS_SLAVE | m.MS_REC
    assert parse_propagation("private") == m.MS_PRIVATE
    with pytest.raises(ConfigError, match="linux.rootfsPropagation"):
        parse_propagation("sideways")


@pytest.mark.parametrize(
    "good", [["size=64k"], ["size=10%"], ["size=1G", "mode=1777"], ["nr_inodes=100", "uid=0"]]
)
def test_tmpfs_data_accepted(good: list[str]) -> None:
    validate_tmpfs_data(parse_mount_options(good), "mounts[0].options")


@pytest.mark.parametrize("bad", [["size=lots"], ["size=10x"], ["mode=999"], ["mode=77777"], ["uid=root"]])
def test_tmpfs_data_rejected(bad: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"mounts\[0\]\.options"):
        validate_tmpfs_data(parse_mount_options(bad), "mounts[0].options")
