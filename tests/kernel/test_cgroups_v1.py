"""The host's manager (v1 driver on this hybrid host) against the real kernel, with real
processes moved into cgroups below our own parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hako.cgroups import CgroupManager, cgroup_version, host_layout, load_manager, open_manager
from hako.errors import HakoError
from tests.fixtures_cgroups import Proc, check_freeze_and_thaw, start, wait_until

pytestmark = pytest.mark.skipif(cgroup_version() != 1, reason="the host's containers use cgroup v2")

@pytest.fixture
def mgr(cgroup_path: str) -> Iterator[CgroupManager]:
    m = open_manager(cgroup_path, "t")
    m.create()
    yield m
    m.kill_all(signal.SIGKILL)
    m.destroy()


def test_layout_is_reported() -> None:
    from hako.cgroups import available_controllers

    assert host_layout() in ("v1", "hybrid")
    assert {"memory", "pids", "freezer"} <= set(available_controllers())


def test_create_apply_joins_every_hierarchy(mgr: CgroupManager, procs: list[Proc], cgroup_path: str) -> None:
    p = start(procs, mgr, "import time; time.sleep(60)")
    lines = Path(f"/proc/{p.pid}/cgroup").read_text().splitlines()
    for line in lines:
        assert line.split(":", 2)[2] == cgroup_path, line
    assert mgr.pids() == [p.pid]
    assert mgr.exists()


def test_memory_hog_is_oom_killed_and_counted(mgr: CgroupManager, procs: list[Proc]) -> None:
    mgr.set({"memory": {"limit": 32 << 20, "swap": 32 << 20}})
    before = mgr.oom_kill_count()
    events: list[dict[str, object]] = []
    stream = mgr.events(interval=0.2)  # registered with the kernel before it returns
    watcher = threading.Thread(target=lambda: events.append(next(stream)), daemon=True)
    watcher.start()
    p = start(procs, mgr, "x = bytearray(256 << 20)\nprint('survived')")
    p.go()
    assert "survived" not in p.out()
    assert p.p.returncode == -signal.SIGKILL
    assert mgr.oom_kill_count() == before + 1
    watcher.join(10)
    assert events == [{"type": "oom"}]


def test_fork_stops_at_the_pids_limit(mgr: CgroupManager, procs: list[Proc]) -> None:
    mgr.set({"pids": {"limit": 5}})
    p = start(procs, mgr, """
import os
r, w = os.pipe()
n = 0
try:
    while n < 50:
        if os.fork() == 0:
            os.read(r, 1)
            os._exit(0)
        n += 1
except OSError as e:
    print(n, e.errno, flush=True)
os.read(r, 1)
""")
    p.go()
    assert p.p.stdout
    assert p.p.stdout.readline().decode().split() == ["4", "11"]  # EAGAIN
    s = mgr.stats()
    assert s["pids"] == {"current": 5, "limit": 5}
    mgr.kill_all(signal.SIGKILL)
    wait_until(lambda: not mgr.pids(), "the cgroup to empty")
    assert p.p.wait(10) == -signal.SIGKILL


def test_cpu_quota_throttles(mgr: CgroupManager, procs: list[Proc]) -> None:
    mgr.set({"cpu": {"quota": 5000, "period": 10000, "shares": 256}})
    p = start(procs, mgr, "while True: pass")
    p.go()

    def throttled() -> bool:
        t = mgr.stats()["cpu"]["throttling"]
        return bool(t["throttledPeriods"] > 2 and t["throttledTime"] > 0 and t["periods"] >= t["throttledPeriods"])

    wait_until(throttled, "throttled periods and time")
    s = mgr.stats()["cpu"]
    assert s["usage"]["total"] > 0 and len(s["usage"]["percpu"]) == os.cpu_count()


def test_cpuset_pins_the_process(mgr: CgroupManager, procs: list[Proc]) -> None:
    mgr.set({"cpu": {"cpus": "1", "mems": "0"}})
    p = start(procs, mgr, "import time; time.sleep(60)")
    status = Path(f"/proc/{p.pid}/status").read_text()
    assert "Cpus_allowed_list:\t1\n" in status


def test_a_value_the_kernel_rejects_names_file_and_value(mgr: CgroupManager) -> None:
    with pytest.raises(HakoError, match=r"'7'.*cpuset.cpus.*linux.resources.cpu.cpus"):
        mgr.set({"cpu": {"cpus": "7"}})


def test_devices_deny_list_blocks_opening(mgr: CgroupManager, procs: list[Proc]) -> None:
    mgr.set({"devices": [{"allow": False, "access": "rwm"},
                         {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]})
    p = start(procs, mgr, """
import os
os.close(os.open("/dev/null", os.O_RDWR))
try:
    os.open("/dev/zero", os.O_RDONLY)
    print("opened")
except OSError as e:
    print("errno", e.errno)
""")
    p.go()
    assert p.out().split() == ["errno", "1"]  # EPERM


def test_freeze_stops_a_busy_loop_and_thaw_resumes_it(mgr: CgroupManager, procs: list[Proc]) -> None:
    check_freeze_and_thaw(mgr, procs)


def test_default_devices_keep_dev_null_usable(mgr: CgroupManager, procs: list[Proc]) -> None:
    from hako.cgroups.resources import with_default_devices

    mgr.set(with_default_devices({"devices": [{"allow": False, "access": "rwm"}]}))
    p = start(procs, mgr, """
import os
for path in ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/tty0"):
    try:
        os.close(os.open(path, os.O_RDWR | os.O_NOCTTY))
        print("ok")
    except OSError as e:
        print(e.errno)
""")
    p.go()
    assert p.out().split() == ["ok", "ok", "ok", "1"]


def test_kill_all_keeps_a_paused_cgroup_paused(mgr: CgroupManager, procs: list[Proc]) -> None:
    p = start(procs, mgr, "import time; time.sleep(60)")
    mgr.freeze()
    mgr.kill_all(signal.SIGTERM)
    assert mgr.is_frozen()
    mgr.thaw()
    assert p.p.wait(10) == -signal.SIGTERM


def test_update_changes_the_limit_live(mgr: CgroupManager, procs: list[Proc]) -> None:
    mgr.set({"memory": {"limit": 64 << 20}})
    mem_dir = next(d for d in mgr.dirs() if "/memory/" in d)
    assert int(Path(mem_dir, "memory.memsw.limit_in_bytes").read_text()) > 1 << 62  # swap untouched
    p = start(procs, mgr, "x = bytearray(8 << 20)\nprint('ok', flush=True)\nimport time; time.sleep(60)")
    p.go()
    assert p.p.stdout and p.p.stdout.readline() == b"ok\n"
    mem_dir = next(d for d in mgr.dirs() if "/memory/" in d)
    mgr.update({"memory": {"limit": 48 << 20}})
    assert int(Path(mem_dir, "memory.limit_in_bytes").read_text()) == 48 << 20
    mgr.update({"pids": {"limit": 9}})
    assert int(Path(mem_dir, "memory.limit_in_bytes").read_text()) == 48 << 20
    assert mgr.stats()["pids"]["limit"] == 9
    # No swap before (memsw == limit): raising or lowering the limit alone keeps it that way.
    mgr.update({"memory": {"limit": 64 << 20, "swap": 64 << 20}})
    mgr.update({"memory": {"limit": 96 << 20}})
    assert int(Path(mem_dir, "memory.memsw.limit_in_bytes").read_text()) == 96 << 20
    mgr.update({"memory": {"limit": 40 << 20}})
    assert int(Path(mem_dir, "memory.memsw.limit_in_bytes").read_text()) == 40 << 20
    with pytest.raises(HakoError, match="below the current usage"):
        mgr.update({"memory": {"limit": 4096, "checkBeforeUpdate": True}})


def test_kill_all_reaches_nested_cgroups_and_destroy_removes_everything(cgroup_path: str) -> None:
    parent = open_manager(cgroup_path, "p")
    parent.create()
    child = open_manager(cgroup_path + "/sub", "c")
    child.create()
    a = Proc("import time; time.sleep(60)")
    b = subprocess.Popen(["sh", "-c", "read x; sleep 60 & sleep 60 & wait"], stdin=subprocess.PIPE)
    try:
        parent.apply(a.pid)
        child.apply(b.pid)
        assert b.stdin
        b.stdin.write(b"go\n")
        b.stdin.flush()
        wait_until(lambda: len(parent.pids()) == 4, "four processes")
        saved = load_manager(parent.save())
        saved.kill_all(signal.SIGKILL)
        assert a.p.wait(10) == -signal.SIGKILL
        assert b.wait(10) == -signal.SIGKILL
        saved.destroy()
        for d in parent.dirs() + child.dirs():
            assert not os.path.exists(d), d
        assert not saved.exists()
        saved.destroy()  # already gone: no error
    finally:
        a.kill()
        if b.poll() is None:
            b.kill()
            b.wait()


def test_stats_shape(mgr: CgroupManager, procs: list[Proc]) -> None:
    mgr.set({"memory": {"limit": 64 << 20}, "pids": {"limit": 10}})
    p = start(procs, mgr, "x = bytearray(8 << 20)\nprint('ok', flush=True)\nimport time; time.sleep(60)")
    p.go()
    assert p.p.stdout and p.p.stdout.readline() == b"ok\n"
    s = mgr.stats()
    assert set(s) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}
    assert set(s["cpu"]["usage"]) >= {"total", "percpu", "kernel", "user"}
    assert set(s["cpu"]["throttling"]) == {"periods", "throttledPeriods", "throttledTime"}
    mu = s["memory"]["usage"]
    assert mu["limit"] == 64 << 20 and mu["usage"] >= 8 << 20 and mu["max"] >= mu["usage"]
    assert set(s["memory"]["swap"]) == {"limit", "usage", "max", "failcnt"}
    assert "rss" in s["memory"]["raw"] or "anon" in s["memory"]["raw"]
    assert s["pids"] == {"current": 1, "limit": 10}


def test_relative_paths_into_a_protected_cgroup_are_refused() -> None:
    if not os.environ.get("HAKO_CGROUP_PROTECT"):
        pytest.skip("no protected cgroup in this environment")
    own = Path("/proc/self/cgroup").read_text()
    if all(line.endswith(":/") for line in own.splitlines()):
        pytest.skip("this process sits in every root cgroup")
    with pytest.raises(HakoError, match="protected"):
        open_manager("rel", "x")
    with pytest.raises(HakoError, match="protected"):
        open_manager("", "x")


def test_the_root_cgroup_is_refused() -> None:
    from hako.errors import ConfigError

    with pytest.raises(ConfigError, match="root cgroup"):
        open_manager("/", "x")
    with pytest.raises(ConfigError, match="root cgroup"):
        open_manager("//./", "x")


def test_systemd_driver_is_refused_without_systemd() -> None:
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd runs here")
    with pytest.raises(HakoError, match="systemd is not running"):
        open_manager("system.slice:hako:x", "x", systemd=True)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
