"""The v1 driver's file writes, over a fake tree laid out like cgroupfs (no root needed)."""

from pathlib import Path

import pytest

from hako.cgroups import load_manager
from hako.cgroups.v1 import V1Manager
from hako.errors import ConfigError, HakoError

FILES = {
    "cpu": ["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.cfs_burst_us", "cpu.rt_period_us",
            "cpu.rt_runtime_us", "cpu.idle", "cpu.stat"],
    "cpuacct": ["cpuacct.usage", "cpuacct.usage_percpu", "cpuacct.stat"],
    "cpuset": ["cpuset.cpus", "cpuset.mems"],
    "memory": ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes",
               "memory.swappiness", "memory.oom_control", "memory.use_hierarchy", "memory.usage_in_bytes",
               "memory.kmem.tcp.limit_in_bytes", "memory.stat"],
    "devices": ["devices.allow", "devices.deny"],
    "freezer": ["freezer.state"],
    "blkio": ["blkio.bfq.weight", "blkio.throttle.read_bps_device", "blkio.throttle.write_iops_device"],
    "pids": ["pids.max", "pids.current"],
}


class Recorder:
    def __init__(self) -> None:
        self.writes: list[tuple[str, str]] = []


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[V1Manager, Path, Recorder]:
    rec = Recorder()
    paths = {}
    for ctrl, files in FILES.items():
        mnt = tmp_path / ctrl
        for d in (mnt, mnt / "parent", mnt / "parent/c"):
            d.mkdir(parents=True, exist_ok=True)
            for f in files + ["cgroup.procs"]:
                (d / f).write_text("")
        paths[ctrl] = (str(mnt), str(mnt / "parent/c"))
    (tmp_path / "cpuset/cpuset.cpus").write_text("0-3\n")
    (tmp_path / "cpuset/cpuset.mems").write_text("0\n")
    (tmp_path / "memory/parent/c/memory.limit_in_bytes").write_text("9223372036854771712\n")
    import hako.cgroups.base as base
    import hako.cgroups.v1 as v1

    real = base.write

    def recording_write(path: str, value: str, what: str = "") -> None:
        rec.writes.append((str(Path(path).relative_to(tmp_path)), value))
        real(path, value, what)
        if path.endswith("cpu.shares"):
            Path(path).write_text(value)

    monkeypatch.setattr(v1, "write", recording_write)
    return V1Manager(paths), tmp_path, rec


def test_create_copies_cpuset_from_the_parent_level_by_level(fake: tuple[V1Manager, Path, Recorder]) -> None:
    m, root, _ = fake
    m.create()
    assert (root / "cpuset/parent/cpuset.cpus").read_text() == "0-3"
    assert (root / "cpuset/parent/c/cpuset.mems").read_text() == "0"


def test_memory_grows_memsw_first_and_shrinks_limit_first(fake: tuple[V1Manager, Path, Recorder]) -> None:
    m, root, rec = fake
    (root / "memory/parent/c/memory.limit_in_bytes").write_text("1000\n")
    m.set({"memory": {"limit": 2000, "swap": 4000}})
    assert [w[0].rsplit("/", 1)[1] for w in rec.writes] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    rec.writes.clear()
    (root / "memory/parent/c/memory.limit_in_bytes").write_text("8000\n")
    m.set({"memory": {"limit": 500, "swap": 600}})
    assert [w[0].rsplit("/", 1)[1] for w in rec.writes] == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]


def test_every_field_lands_in_its_file(fake: tuple[V1Manager, Path, Recorder]) -> None:
    m, _, rec = fake
    m.set({
        "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "1", "mems": "0", "idle": 1,
                "realtimePeriod": 1000000, "realtimeRuntime": 1000},
        "memory": {"reservation": 100, "swappiness": 5, "disableOOMKiller": True, "kernelTCP": 4096,
                   "kernel": 123},
        "pids": {"limit": -1},
        "blockIO": {"weight": 300, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 100}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 7}]},
        "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3,
                                                       "access": "rw"}],
    })
    w = dict(rec.writes)
    assert w["cpu/parent/c/cpu.shares"] == "512"
    assert w["cpu/parent/c/cpu.cfs_quota_us"] == "20000"
    assert w["cpu/parent/c/cpu.cfs_period_us"] == "100000"
    assert w["cpu/parent/c/cpu.rt_runtime_us"] == "1000"
    assert w["cpu/parent/c/cpu.idle"] == "1"
    assert w["cpuset/parent/c/cpuset.cpus"] == "1"
    assert w["memory/parent/c/memory.soft_limit_in_bytes"] == "100"
    assert w["memory/parent/c/memory.swappiness"] == "5"
    assert w["memory/parent/c/memory.oom_control"] == "1"
    assert w["memory/parent/c/memory.kmem.tcp.limit_in_bytes"] == "4096"
    assert not any("kmem.limit" in k for k, _ in rec.writes)  # deprecated "kernel" is never written
    assert w["pids/parent/c/pids.max"] == "max"
    assert w["blkio/parent/c/blkio.bfq.weight"] == "300"
    assert w["blkio/parent/c/blkio.throttle.read_bps_device"] == "8:0 100"
    assert w["blkio/parent/c/blkio.throttle.write_iops_device"] == "8:16 7"
    devs = [(k.rsplit("/", 1)[1], v) for k, v in rec.writes if "devices" in k]
    assert devs == [("devices.deny", "a"), ("devices.allow", "c 1:3 rw")]


def test_missing_controllers_and_v2_only_fields_are_clear_errors(fake: tuple[V1Manager, Path, Recorder]) -> None:
    m, _, _ = fake
    with pytest.raises(HakoError, match="net_cls cgroup controller, which is not mounted"):
        m.set({"network": {"classID": 5}})
    with pytest.raises(HakoError, match="hugetlb"):
        m.set({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]})
    with pytest.raises(ConfigError, match="needs cgroup v2"):
        m.set({"unified": {"memory.high": "5"}})
    with pytest.raises(HakoError, match="blkio.leaf_weight.*does not exist"):
        m.set({"blockIO": {"leafWeight": 100}})


def test_kernel_clamped_shares_are_reported(fake: tuple[V1Manager, Path, Recorder], monkeypatch: pytest.MonkeyPatch) -> None:
    m, root, _ = fake
    import hako.cgroups.v1 as v1

    monkeypatch.setattr(v1, "read_int", lambda path, default=0: 262144)
    with pytest.raises(HakoError, match="clamped"):
        m.set({"cpu": {"shares": 999999}})


def test_save_and_load_round_trip(fake: tuple[V1Manager, Path, Recorder]) -> None:
    m, _, _ = fake
    m2 = load_manager(m.save())
    assert isinstance(m2, V1Manager)
    assert m2.dirs() == m.dirs() and m2.version == 1
    with pytest.raises(HakoError):
        load_manager({"version": 7})


def test_pids_are_listed_recursively(fake: tuple[V1Manager, Path, Recorder]) -> None:
    m, root, _ = fake
    (root / "pids/parent/c/cgroup.procs").write_text("10\n11\n")
    (root / "pids/parent/c/sub").mkdir()
    (root / "pids/parent/c/sub/cgroup.procs").write_text("12\n")
    assert sorted(m.pids()) == [10, 11, 12]
