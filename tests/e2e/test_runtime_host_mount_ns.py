"""A config without a mount namespace (runc accepts it; runtime-tools' linux_ns_itype asks for it):
the container shares ours, its mounts are made under its rootfs only, and delete removes them all,
leaving what was mounted there before (an engine's overlay on the rootfs) and our propagation alone."""

from __future__ import annotations

import os
from pathlib import Path

from tests.fixtures_runtime import Runtime, edit_config, set_config


def _mounts_under(root: Path) -> list[tuple[int, str]]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = fields[4]
            if mp == str(root) or mp.startswith(f"{root}/"):
                out.append((int(fields[0]), mp))
    return out


def _propagation_of(path: str) -> str:
    best, opt = "", ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = fields[4]
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
                best, opt = mp, " ".join(fields[6:fields.index("-")])
    return opt


def _without_mount_ns(c: dict) -> None:  # type: ignore[type-arg]
    c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "mount"]


def test_container_shares_our_mount_namespace_and_delete_unmounts(rt: Runtime, bundle: Path) -> None:
    rootfs = (bundle / "rootfs").resolve()
    # What an engine does first: its own mount on the rootfs, which must survive delete.
    os.system(f"mount --bind {rootfs} {rootfs}")
    try:
        before = _mounts_under(rootfs)
        prop_before = _propagation_of(str(rootfs.parent))
        set_config(bundle, "hm1")
        edit_config(bundle, _without_mount_ns)
        rt.create("hm1", bundle)
        pid = rt.state("hm1")["pid"]
        assert os.stat(f"/proc/{pid}/ns/mnt").st_ino == os.stat("/proc/self/ns/mnt").st_ino
        assert os.readlink(f"/proc/{pid}/root") == str(rootfs)
        points = {mp for _, mp in _mounts_under(rootfs)}
        assert {f"{rootfs}/proc", f"{rootfs}/dev", f"{rootfs}/sys"} <= points
        rt("start", "hm1")
        # exec lands in the container's root, not ours
        out = rt("exec", "hm1", "sh", "-c", "test -e /linuxrc && echo inside").stdout.decode()
        assert out.strip() == "inside"
        rt("delete", "--force", "hm1")
        assert _mounts_under(rootfs) == before
        assert _propagation_of(str(rootfs.parent)) == prop_before
        assert rt.ids() == []
    finally:
        os.system(f"umount {rootfs}")


def test_rootfs_propagation_needs_a_mount_namespace(rt: Runtime, bundle: Path) -> None:
    set_config(bundle, "hm2")

    def edit(c: dict) -> None:  # type: ignore[type-arg]
        _without_mount_ns(c)
        c["linux"]["rootfsPropagation"] = "shared"

    edit_config(bundle, edit)
    p = rt.create("hm2", bundle, check=False)
    assert p.returncode == 1 and b"linux.rootfsPropagation" in p.stderr, p.stderr
    assert rt.ids() == []


def test_a_failed_create_unmounts_what_it_mounted(rt: Runtime, bundle: Path) -> None:
    rootfs = (bundle / "rootfs").resolve()
    set_config(bundle, "hm3", ["/no/such/program"])
    edit_config(bundle, _without_mount_ns)
    # fails after the mounts: the program is looked up once the rootfs is ready
    p = rt.create("hm3", bundle, check=False)
    assert p.returncode == 1, p.stderr
    assert _mounts_under(rootfs) == []
    assert rt.ids() == []
