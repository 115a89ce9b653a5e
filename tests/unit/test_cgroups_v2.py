"""The v2 driver's file writes, over a fake tree laid out like cgroupfs (no root needed)."""

from pathlib import Path

import pytest

from hako.cgroups import load_manager
from hako.cgroups.v2 import V2Manager
from hako.errors import ConfigError, HakoError

FILES = ["cgroup.procs", "cgroup.controllers", "cgroup.subtree_control", "cgroup.freeze", "cgroup.events",
         "cpu.weight", "cpu.max", "cpu.max.burst", "cpu.idle", "cpuset.cpus", "cpuset.mems", "memory.max",
         "memory.low", "memory.swap.max", "memory.current", "pids.max", "io.weight", "io.max",
         "hugetlb.2MB.max", "memory.events"]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[V2Manager, Path, list[tuple[str, str]]]:
    writes: list[tuple[str, str]] = []
    for d in (tmp_path, tmp_path / "parent", tmp_path / "parent/c"):
        d.mkdir(exist_ok=True)
        for f in FILES:
            (d / f).write_text("")
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids\n")
    (tmp_path / "parent/cgroup.controllers").write_text("cpu memory pids io\n")
    import hako.cgroups.base as base
    import hako.cgroups.v2 as v2

    real = base.write

    def recording_write(path: str, value: str, what: str = "") -> None:
        writes.append((str(Path(path).relative_to(tmp_path)), value))
        real(path, value, what)

    monkeypatch.setattr(v2, "write", recording_write)
    return V2Manager(str(tmp_path), str(tmp_path / "parent/c")), tmp_path, writes


def test_create_enables_only_what_the_root_delegates_and_never_writes_the_root(fake) -> None:  # type: ignore[no-untyped-def]
    m, root, writes = fake
    m.create()
    assert writes == [("parent/cgroup.subtree_control", "+cpu"), ("parent/cgroup.subtree_control", "+memory"),
                      ("parent/cgroup.subtree_control", "+pids")]


def test_resources_map_to_v2_files(fake) -> None:  # type: ignore[no-untyped-def]
    m, _, writes = fake
    m.set({
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000, "cpus": "0", "mems": "0"},
        "memory": {"limit": 1000, "swap": 3000, "reservation": 10},
        "pids": {"limit": 5},
        "blockIO": {"weight": 1000, "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 5}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}],
        "unified": {"memory.events": "x"},
    })
    w = dict(writes)
    assert w["parent/c/cpu.weight"] == "39"
    assert w["parent/c/cpu.max"] == "50000 100000"
    assert w["parent/c/cpu.max.burst"] == "1000"
    assert w["parent/c/memory.max"] == "1000"
    assert w["parent/c/memory.swap.max"] == "2000"
    assert w["parent/c/memory.low"] == "10"
    assert w["parent/c/pids.max"] == "5"
    assert w["parent/c/io.weight"] == "default 10000"
    assert w["parent/c/io.max"] == "8:0 wbps=5"
    assert w["parent/c/hugetlb.2MB.max"] == "2097152"
    assert w["parent/c/memory.events"] == "x"


def test_unlimited_memory_means_unlimited_swap_and_quota_minus_one_is_max(fake) -> None:  # type: ignore[no-untyped-def]
    m, root, writes = fake
    m.set({"memory": {"limit": -1}, "cpu": {"quota": -1, "period": 50000}})
    w = dict(writes)
    assert w["parent/c/memory.max"] == "max"
    assert w["parent/c/memory.swap.max"] == "max"
    assert w["parent/c/cpu.max"] == "max 50000"
    (root / "parent/c/cpu.max").write_text("20000 100000\n")
    m.update({"cpu": {"period": 200000}})
    assert writes[-1] == ("parent/c/cpu.max", "20000 200000")
    m.update({"cpu": {"quota": 30000}})
    assert writes[-1] == ("parent/c/cpu.max", "30000")


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"memory": {"swappiness": 10}}, "swappiness"),
        ({"memory": {"kernelTCP": 10}}, "kernelTCP"),
        ({"memory": {"disableOOMKiller": True}}, "disableOOMKiller"),
        ({"cpu": {"realtimeRuntime": 10}}, "realtime"),
        ({"network": {"classID": 1}}, "net_cls"),
        ({"blockIO": {"leafWeight": 100}}, "leaf"),
        ({"unified": {"memory.nope": "1"}}, r"memory.nope does not exist"),
        ({"rdma": {"mlx": {"hcaHandles": 1}}}, "rdma.max"),
    ],
)
def test_what_v2_cannot_do_is_an_error(fake, raw, match) -> None:  # type: ignore[no-untyped-def]
    m, _, _ = fake
    with pytest.raises(HakoError, match=match):
        m.set(raw)


def test_swap_without_limit_is_measured_against_memory_max(fake) -> None:  # type: ignore[no-untyped-def]
    m, root, writes = fake
    (root / "parent/c/memory.max").write_text("max\n")
    with pytest.raises(ConfigError) as e:
        m.set({"memory": {"swap": 5000}})
    assert e.value.path == "linux.resources.memory.swap"
    (root / "parent/c/memory.max").write_text("1000\n")
    m.update({"memory": {"swap": 5000}})
    assert writes[-1] == ("parent/c/memory.swap.max", "4000")


def test_check_before_update_refuses_a_limit_below_usage(fake) -> None:  # type: ignore[no-untyped-def]
    m, root, _ = fake
    (root / "parent/c/memory.current").write_text("5000\n")
    with pytest.raises(HakoError, match="below the current usage"):
        m.update({"memory": {"limit": 1000, "checkBeforeUpdate": True}})


def test_state_files_and_round_trip(fake) -> None:  # type: ignore[no-untyped-def]
    m, root, _ = fake
    (root / "parent/c/memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    assert m.oom_kill_count() == 2
    (root / "parent/c/cgroup.freeze").write_text("1\n")
    assert m.is_frozen()
    m2 = load_manager(m.save())
    assert isinstance(m2, V2Manager) and m2.path == m.path and m2.version == 2


def test_events_counts_oom_kills_after_the_call(fake) -> None:  # type: ignore[no-untyped-def]
    m, root, _ = fake
    (root / "parent/c/memory.events").write_text("oom 0\noom_kill 1\n")
    stream = m.events(interval=0.01)
    (root / "parent/c/memory.events").write_text("oom 2\noom_kill 3\n")
    assert [next(stream), next(stream)] == [{"type": "oom"}, {"type": "oom"}]
    stream.close()  # type: ignore[attr-defined]


def test_a_freeze_that_never_settles_is_undone(fake, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import hako.cgroups.base as base
    import hako.cgroups.v2 as v2

    m, root, _ = fake
    (root / "parent/c/cgroup.events").write_text("populated 1\nfrozen 0\n")
    monkeypatch.setattr(v2, "wait_for", lambda check, what: base.wait_for(check, what, timeout=0.05))
    with pytest.raises(HakoError, match="timed out"):
        m.freeze()
    assert (root / "parent/c/cgroup.freeze").read_text() == "0"


def test_kill_all_signals_even_when_freezing_fails(fake, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess

    import hako.cgroups.base as base
    import hako.cgroups.v2 as v2

    m, root, _ = fake
    p = subprocess.Popen(["sleep", "60"])
    try:
        (root / "parent/c/cgroup.procs").write_text(f"{p.pid}\n")
        (root / "parent/c/cgroup.events").write_text("populated 1\nfrozen 0\n")
        monkeypatch.setattr(v2, "wait_for", lambda check, what: base.wait_for(check, what, timeout=0.02))
        m.kill_all(15)
        assert p.wait(10) == -15
    finally:
        if p.poll() is None:
            os.kill(p.pid, 9)
            p.wait()
