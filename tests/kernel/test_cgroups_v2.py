"""The v2 driver on the real unified hierarchy (/sys/fs/cgroup/unified on a hybrid host, or
/sys/fs/cgroup on a unified one), as far as the kernel's enabled controllers allow."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from hako.cgroups import bpf_devices, load_manager
from hako.cgroups.detect import layout
from hako.cgroups.v2 import V2Manager
from hako.errors import HakoError
from tests.fixtures_cgroups import Proc, check_freeze_and_thaw, start, wait_until


def _unified_mount() -> str | None:
    u = layout().unified
    return u.mountpoint if u else None


pytestmark = pytest.mark.skipif(_unified_mount() is None, reason="no cgroup2 mount on this host")


@pytest.fixture
def mgr(cgroup_path: str) -> Iterator[V2Manager]:
    mnt = _unified_mount()
    assert mnt
    m = V2Manager(mnt, mnt + cgroup_path)
    m.create()
    yield m
    m.kill_all(signal.SIGKILL)
    m.destroy()


def test_join_list_and_destroy(mgr: V2Manager, procs: list[Proc], cgroup_path: str) -> None:
    p = start(procs, mgr, "import time; time.sleep(60)")
    assert f"0::{cgroup_path}\n" in Path(f"/proc/{p.pid}/cgroup").read_text()
    assert mgr.pids() == [p.pid]
    s = mgr.stats()
    assert set(s) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}
    m2 = load_manager(mgr.save())
    m2.kill_all(signal.SIGKILL)  # cgroup.kill
    assert p.wait(10) == -signal.SIGKILL
    wait_until(lambda: not m2.pids(), "the cgroup to empty")
    m2.destroy()
    assert not m2.exists() and not os.path.exists(mgr.path)


def test_freeze_and_thaw(mgr: V2Manager, procs: list[Proc]) -> None:
    if not os.path.exists(f"{mgr.path}/cgroup.freeze"):
        pytest.skip("no cgroup.freeze in this kernel")
    check_freeze_and_thaw(mgr, procs)


def test_kill_all_with_another_signal_uses_the_freezer(mgr: V2Manager, procs: list[Proc]) -> None:
    p = start(procs, mgr, "import time; time.sleep(60)")
    mgr.kill_all(signal.SIGTERM)
    assert p.wait(10) == -signal.SIGTERM
    assert not mgr.is_frozen()


def test_device_program_denies_what_the_rules_deny(mgr: V2Manager, procs: list[Proc]) -> None:
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
             {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}]
    mgr.set({"devices": rules})
    assert len(bpf_devices.attached(mgr.path)) == 1
    mgr.update({"devices": rules})  # replaced, not stacked
    assert len(bpf_devices.attached(mgr.path)) == 1
    p = start(procs, mgr, """
import os
def try_open(path, flags):
    try:
        os.close(os.open(path, flags))
        return "ok"
    except OSError as e:
        return str(e.errno)
print(try_open("/dev/null", os.O_RDWR), try_open("/dev/zero", os.O_RDONLY),
      try_open("/dev/zero", os.O_WRONLY), try_open("/dev/full", os.O_RDONLY))
""")
    p.go()
    out = p.out()
    assert out.split() == ["ok", "ok", "1", "1"]


def test_unavailable_controllers_are_named(mgr: V2Manager) -> None:
    available = set(Path(mgr.path, "cgroup.controllers").read_text().split())
    if "pids" in available:
        mgr.set({"pids": {"limit": 7}})
        assert Path(mgr.path, "pids.max").read_text().strip() == "7"
    else:
        with pytest.raises(HakoError, match=r"pids.max.*does not exist.*pids controller"):
            mgr.set({"pids": {"limit": 7}})
    if "hugetlb" in available:
        mgr.set({"hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}]})
        assert Path(mgr.path, "hugetlb.2MB.max").read_text().strip() == str(2 << 20)
    else:
        with pytest.raises(HakoError, match="hugetlb.2MB.max"):
            mgr.set({"hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}]})
    if "memory" not in available:
        with pytest.raises(HakoError, match=r"unified.memory.high.*does not exist"):
            mgr.set({"unified": {"memory.high": "1000000"}})


def test_nested_cgroups_are_listed_and_removed(mgr: V2Manager, procs: list[Proc]) -> None:
    sub = V2Manager(mgr.mountpoint, mgr.path + "/sub")
    sub.create()
    p = start(procs, sub, "import time; time.sleep(60)")
    assert mgr.pids() == [p.pid]
    mgr.kill_all(signal.SIGKILL)
    p.wait(10)
    wait_until(lambda: not mgr.pids(), "the cgroup to empty")
    mgr.destroy()
    assert not os.path.exists(sub.path)


def test_device_program_checks_mknod_separately_from_open(
    mgr: V2Manager, procs: list[Proc], tmp_path: Path
) -> None:
    import stat

    probe = tmp_path / "probe"
    os.mknod(probe, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    try:
        os.close(os.open(probe, os.O_RDONLY))
    except PermissionError:
        pytest.skip(f"{tmp_path} is on a nodev filesystem")
    mgr.set({"devices": [{"allow": False, "access": "rwm"},
                         {"allow": True, "type": "c", "access": "m"},
                         {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                         {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]})
    p = start(procs, mgr, f"""
import os, stat
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return str(e.errno)
d = {str(tmp_path)!r}
print(attempt(lambda: os.mknod(d + "/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))),
      attempt(lambda: os.mknod(d + "/blk", stat.S_IFBLK | 0o666, os.makedev(7, 0))),
      attempt(lambda: os.close(os.open(d + "/null", os.O_RDONLY))),
      attempt(lambda: os.close(os.open(d + "/null", os.O_WRONLY))))
""")
    p.go()
    out = p.out()
    # char mknod allowed, block mknod denied; read allowed; write denied by the last rule.
    assert out.split() == ["ok", "1", "ok", "1"]
