"""A hostile rootfs: symlinks that point out of it must never redirect mounts, devices, masked
or read-only paths onto the host (CVE-2021-30465 and relatives)."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from hako.spec.runtime import Device, Mount
from tests.kernel.test_rootfs_rootfs import (
    DEFAULT_MOUNTS,
    ContainerFailed,
    make_spec,
    mounts_by_point,
    run_container,
    try_write,
)


@pytest.fixture
def rootfs(tmp_path: Path, busybox_rootfs: Path) -> Path:
    dest = tmp_path / "bundle" / "rootfs"
    dest.parent.mkdir()
    subprocess.run(["cp", "-a", str(busybox_rootfs), str(dest)], check=True)
    return dest


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    """A host directory with a file the container must never cover, create in or write to."""
    d = tmp_path / f"host-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    (d / "secret").write_text("host secret")
    return d


def up(n: int = 12) -> str:
    return "/".join([".."] * n)


def test_mount_destinations_through_escaping_symlinks_land_inside(rootfs: Path, host_dir: Path) -> None:
    (rootfs / "evil").symlink_to("/")
    (rootfs / "dotdot").symlink_to(up())
    inside = str(host_dir)  # the same path, but it must be created inside the rootfs
    mounts = [
        *DEFAULT_MOUNTS,
        Mount(f"/evil{inside}/a", "tmpfs", "tmpfs"),
        Mount(f"/dotdot{inside}/b", "tmpfs", "tmpfs"),
        Mount(f"/../../..{inside}/c", "tmpfs", "tmpfs"),
        Mount(f"/evil{inside}/secret", "bind", "/dev/null", ["bind"]),
    ]

    def probe() -> dict[str, Any]:
        mnt = mounts_by_point()
        return {p: mnt.get(f"{inside}/{p}", {}).get("fstype") for p in ("a", "b", "c", "secret")}

    out = run_container(make_spec(mounts), rootfs, probe)
    assert out == {"a": "tmpfs", "b": "tmpfs", "c": "tmpfs", "secret": "devtmpfs"}
    assert sorted(os.listdir(host_dir)) == ["secret"]  # nothing created on the host
    assert (host_dir / "secret").read_text() == "host secret"
    assert (rootfs / inside.lstrip("/") / "a").is_dir()
    assert (rootfs / inside.lstrip("/") / "secret").is_file()


def test_dangling_symlink_destination_is_created_inside(rootfs: Path, tmp_path: Path) -> None:
    (rootfs / "etc/resolv.conf").symlink_to("../run/resolv.conf")
    (tmp_path / "resolv").write_text("nameserver 127.0.0.1\n")
    mounts = [*DEFAULT_MOUNTS, Mount("/etc/resolv.conf", "bind", str(tmp_path / "resolv"), ["bind", "ro"])]

    out = run_container(make_spec(mounts), rootfs, lambda: Path("/etc/resolv.conf").read_text())
    assert out == "nameserver 127.0.0.1\n"
    assert (rootfs / "run/resolv.conf").is_file()


def test_devices_through_an_escaping_symlink(rootfs: Path, host_dir: Path) -> None:
    # No /dev tmpfs: devices go into the rootfs's own /dev, which the owner made a symlink.
    (rootfs / "dev").rmdir()
    (rootfs / "dev").symlink_to(up() + str(host_dir))
    mounts = [Mount("/proc", "proc", "proc")]
    spec = make_spec(mounts, devices=[Device("c", "/dev/escape", 1, 7, 0o666)])

    def probe() -> tuple[bool, int, int]:
        st = os.lstat(f"{host_dir}/escape")
        return stat.S_ISCHR(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev)

    assert run_container(spec, rootfs, probe) == (True, 1, 7)
    assert sorted(os.listdir(host_dir)) == ["secret"]
    assert (rootfs / str(host_dir).lstrip("/") / "escape").exists()
    assert (rootfs / str(host_dir).lstrip("/") / "null").exists()


def test_masked_path_symlinked_to_a_host_file(rootfs: Path, host_dir: Path) -> None:
    (rootfs / "mask-abs").symlink_to(str(host_dir / "secret"))
    (rootfs / "mask-rel").symlink_to(up() + str(host_dir / "secret"))
    (rootfs / "etc/shadow-ish").write_text("container secret")
    (rootfs / "mask-in").symlink_to("/etc/shadow-ish")
    spec = make_spec(masked_paths=["/mask-abs", "/mask-rel", "/mask-in"])

    def probe() -> dict[str, Any]:
        return {"in": Path("/etc/shadow-ish").read_text(), "mounts": sorted(mounts_by_point())}

    out = run_container(spec, rootfs, probe)
    # The host file does not exist inside the rootfs: nothing to mask, nothing mounted for it.
    assert out["in"] == ""
    assert not any(p.startswith(str(host_dir)) for p in out["mounts"])
    assert (host_dir / "secret").read_text() == "host secret"


def test_readonly_path_symlinked_out(rootfs: Path, host_dir: Path) -> None:
    inside = rootfs / str(host_dir).lstrip("/")
    inside.mkdir(parents=True)
    (rootfs / "ro-link").symlink_to(up() + str(host_dir))
    spec = make_spec(readonly_paths=["/ro-link"])

    def probe() -> dict[str, Any]:
        return {"write": try_write(f"{host_dir}/new"), "ro": mounts_by_point()[str(host_dir)]["opts"]}

    out = run_container(spec, rootfs, probe)
    assert out["write"] == errno.EROFS and out["ro"].startswith("ro")
    assert sorted(os.listdir(host_dir)) == ["secret"]


def test_fake_dev_null_is_not_used_for_masking(rootfs: Path) -> None:
    # A rootfs without a /dev mount brings a regular file as /dev/null: masking with it would
    # show its content in place of the masked file.
    (rootfs / "dev/null").write_text("fake")
    spec = make_spec([Mount("/proc", "proc", "proc")], masked_paths=["/proc/keys"])
    with pytest.raises(ContainerFailed) as e:
        run_container(spec, rootfs, lambda: None)
    assert "not the null device" in e.value.message and "linux.maskedPaths[0]" in e.value.message


def test_mount_into_proc_through_a_symlink_is_refused(rootfs: Path) -> None:
    (rootfs / "myproc").symlink_to("proc")
    spec = make_spec(
        [Mount("/proc", "proc", "proc"), Mount("/myproc/sys/kernel/core_pattern", "bind", "/dev/null")]
    )
    with pytest.raises(ContainerFailed) as e:
        run_container(spec, rootfs, lambda: None)
    assert "inside /proc" in e.value.message and "mounts[1]" in e.value.message


def test_lxcfs_style_proc_file_is_allowed(rootfs: Path, tmp_path: Path) -> None:
    (tmp_path / "uptime").write_text("1.00 2.00\n")
    spec = make_spec(
        [*DEFAULT_MOUNTS, Mount("/proc/uptime", "bind", str(tmp_path / "uptime"), ["bind", "ro"])]
    )
    assert run_container(spec, rootfs, lambda: Path("/proc/uptime").read_text()) == "1.00 2.00\n"
