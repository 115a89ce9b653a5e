"""pause/resume, update, events, ps, spec, features, --version: the cgroup-backed and output commands."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.fixtures_runtime import Runtime, cg_path, cgroup_dirs


def _running(rt: Runtime, bundle: Path, cid: str = "c1") -> int:
    rt.create(cid, bundle)
    rt("start", cid)
    pid: int = rt.state(cid)["pid"]
    return pid


def _cg_file(cid: str, controller: str, name: str) -> Path:
    for d in cgroup_dirs(cg_path(cid)):
        if d.parent.parent.name == controller or str(d).startswith(f"/sys/fs/cgroup/{controller}/"):
            return d / name
    raise AssertionError(f"no {controller} cgroup for {cid}")


def test_pause_resume_freezes_in_kernel(rt: Runtime, rbundle: Path) -> None:
    pid = _running(rt, rbundle)
    rt("pause", "c1")
    assert rt.state("c1")["status"] == "paused"
    assert _cg_file("c1", "freezer", "freezer.state").read_text().strip() == "FROZEN"
    assert str(pid) in _cg_file("c1", "freezer", "tasks").read_text().split()
    p = rt("pause", "c1", check=False)
    assert p.returncode == 1
    rt("resume", "c1")
    assert rt.state("c1")["status"] == "running"
    assert _cg_file("c1", "freezer", "freezer.state").read_text().strip() == "THAWED"
    rt("pause", "c1")
    rt("delete", "--force", "c1")  # a paused container can be force-deleted
    assert rt.ids() == [] and cgroup_dirs(cg_path("c1")) == []


def test_update_flags_and_resources_json(rt: Runtime, rbundle: Path) -> None:
    _running(rt, rbundle)
    rt("update", "--memory", "64m", "--cpu-quota", "50000", "--cpu-period", "100000", "--pids-limit", "77", "c1")
    assert _cg_file("c1", "memory", "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
    assert _cg_file("c1", "cpu", "cpu.cfs_quota_us").read_text().strip() == "50000"
    assert _cg_file("c1", "pids", "pids.max").read_text().strip() == "77"
    res = rt.tmp / "res.json"
    res.write_text(json.dumps({"pids": {"limit": 99}}))
    rt("update", "--resources", str(res), "c1")
    assert _cg_file("c1", "pids", "pids.max").read_text().strip() == "99"
    rt("update", "--resources", "-", "c1", input=b'{"cpu": {"shares": 512}}')
    assert _cg_file("c1", "cpu", "cpu.shares").read_text().strip() == "512"


def test_events_stats_and_ps(rt: Runtime, rbundle: Path) -> None:
    pid = _running(rt, rbundle)
    ev = json.loads(rt("events", "--stats", "c1").stdout)
    assert ev["type"] == "stats" and ev["id"] == "c1"
    assert "memory" in ev["data"] and "pids" in ev["data"]
    assert json.loads(rt("ps", "--format", "json", "c1").stdout) == [pid]
    rt("kill", "c1", "KILL")
    deadline = time.monotonic() + 10
    while rt.state("c1")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rt("ps", "--format", "json", "c1").stdout.strip() == b"null"


def test_spec_writes_runc_like_config(rt: Runtime, tmp_path: Path) -> None:
    d = tmp_path / "s"
    d.mkdir()
    rt("spec", "--bundle", str(d))
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["process"]["args"] == ["sh"] and cfg["root"]["path"] == "rootfs"
    assert {n["type"] for n in cfg["linux"]["namespaces"]} == {"pid", "network", "ipc", "uts", "mount", "cgroup"}
    assert rt("spec", "--bundle", str(d), check=False).returncode == 1  # exists already
    r = tmp_path / "r"
    r.mkdir()
    rt("spec", "--rootless", "-b", str(r))
    cfg = json.loads((r / "config.json").read_text())
    assert any(n["type"] == "user" for n in cfg["linux"]["namespaces"]) and cfg["linux"]["uidMappings"]


def test_features_and_version(rt: Runtime) -> None:
    f = json.loads(rt("features").stdout)
    assert f["ociVersionMin"].startswith("1.") and "poststop" in f["hooks"]
    assert "time" in f["linux"]["namespaces"] and "CAP_SYS_ADMIN" in f["linux"]["capabilities"]
    sc = f["linux"]["seccomp"]  # probed on this host, as runc reports it
    assert sc["enabled"] and "SCMP_ARCH_X86_64" in sc["archs"] and "SCMP_ACT_NOTIFY" in sc["actions"]
    assert "SECCOMP_FILTER_FLAG_LOG" in sc["supportedFlags"] and set(sc["supportedFlags"]) <= set(sc["knownFlags"])
    for flag in ("--version", "-v"):
        out = rt(flag).stdout.decode()
        assert out.startswith("hako-runtime version") and "spec: 1." in out


def test_debug_prints_phase_trace(rt: Runtime, bundle: Path) -> None:
    from tests.fixtures_runtime import set_config

    set_config(bundle, "d1", ["true"])
    p = rt("--debug", "run", "-b", str(bundle), "d1")
    err = p.stderr.decode()
    for phase in ("parse", "cgroups", "namespaces", "mounts", "exec"):
        assert f"phase {phase}:" in err, err


def test_concurrent_operations_serialise(rt: Runtime, rbundle: Path) -> None:
    import subprocess

    from tests.fixtures_runtime import RUNTIME

    _running(rt, rbundle)
    procs = [subprocess.Popen([RUNTIME, "--root", str(rt.root), "delete", "--force", "c1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    codes = [p.wait(30) for p in procs]
    assert codes == [0, 0, 0, 0]
    assert rt.ids() == [] and cgroup_dirs(cg_path("c1")) == []


def test_systemd_cgroup_without_systemd_is_clear_error(rt: Runtime, rbundle: Path) -> None:
    if Path("/run/systemd/system").exists():
        import pytest

        pytest.skip("systemd runs here")
    p = rt.detached("--systemd-cgroup", "create", "-b", str(rbundle), "c1", cid="c1", check=False)
    assert p.returncode == 1 and b"systemd" in p.stderr
    assert rt.ids() == []


def test_events_stream_ends_when_container_stops(rt: Runtime, rbundle: Path) -> None:
    import subprocess

    from tests.fixtures_runtime import RUNTIME

    _running(rt, rbundle)
    ev = subprocess.Popen([RUNTIME, "--root", str(rt.root), "events", "--interval", "100ms", "c1"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert ev.stdout is not None
        first = json.loads(ev.stdout.readline())
        assert first["type"] == "stats" and first["id"] == "c1"
        rt("kill", "c1", "KILL")
        assert ev.wait(20) == 0
    finally:
        if ev.poll() is None:
            ev.kill()
            ev.wait()
