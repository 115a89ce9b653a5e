"""hako-runtime drives hako.cgroups correctly: limits from config.json land in the cgroup,
pause/resume/update/events work on it, and delete leaves nothing in any hierarchy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hako.cgroups import cgroup_version
from tests.fixtures_runtime import Runtime, cg_path, cgroup_dirs, edit_config, set_config

pytestmark = pytest.mark.skipif(cgroup_version() != 1, reason="checks v1 cgroup files")

V1 = Path("/sys/fs/cgroup")


def read(ctrl: str, cid: str, name: str) -> str:
    return (V1 / ctrl / cg_path(cid).lstrip("/") / name).read_text().strip()


def with_resources(bundle: Path, cid: str, resources: dict[str, object], args: list[str] | None = None) -> Path:
    set_config(bundle, cid=cid, args=args)
    edit_config(bundle, lambda cfg: cfg["linux"]["resources"].update(resources))
    return bundle


def test_limits_pause_update_events_and_delete(rt: Runtime, bundle: Path) -> None:
    cid = "cgl"
    with_resources(bundle, cid, {"memory": {"limit": 64 << 20}, "pids": {"limit": 30},
                                 "cpu": {"shares": 512, "cpus": "0"}})
    rt.create(cid, bundle)
    rt("start", cid)
    assert read("memory", cid, "memory.limit_in_bytes") == str(64 << 20)
    assert read("pids", cid, "pids.max") == "30"
    assert read("cpu", cid, "cpu.shares") == "512"
    assert read("cpuset", cid, "cpuset.cpus") == "0"

    rt("pause", cid)
    assert rt.state(cid)["status"] == "paused"
    assert read("freezer", cid, "freezer.state") == "FROZEN"
    rt("resume", cid)
    assert rt.state(cid)["status"] == "running"
    assert read("freezer", cid, "freezer.state") == "THAWED"

    rt("update", "--memory", str(96 << 20), "--pids-limit", "40", cid)
    assert read("memory", cid, "memory.limit_in_bytes") == str(96 << 20)
    assert read("pids", cid, "pids.max") == "40"

    ev = json.loads(rt("events", "--stats", cid).stdout)
    assert ev["type"] == "stats" and ev["id"] == cid
    assert ev["data"]["pids"]["current"] >= 1
    assert ev["data"]["memory"]["usage"]["limit"] == 96 << 20

    rt("kill", "--all", cid, "KILL")
    rt("delete", "--force", cid)
    assert cgroup_dirs(cg_path(cid)) == []


def test_default_devices_are_usable_and_others_are_not(rt: Runtime, bundle: Path) -> None:
    cid = "cgdev"
    if not Path("/dev/tty0").exists():
        pytest.skip("no /dev/tty0 to bind into the container")
    script = "echo x > /dev/null && echo null-ok; (: < /mnt/tty0) 2>/dev/null && echo tty0-opened || echo tty0-denied"
    with_resources(bundle, cid, {}, args=["sh", "-c", script])

    def tweak(cfg: dict) -> None:  # type: ignore[type-arg]
        cfg["process"]["terminal"] = False
        # A host device node outside the default allow list, bound in (no mknod capability).
        cfg["mounts"].append({"destination": "/mnt/tty0", "type": "bind", "source": "/dev/tty0",
                              "options": ["bind"]})

    edit_config(bundle, tweak)
    p = rt("run", "--bundle", str(bundle), cid, check=False)
    out = p.stdout.decode()
    assert "null-ok" in out, p.stderr.decode()
    assert "tty0-denied" in out
    assert cgroup_dirs(cg_path(cid)) == []


def test_an_oom_killed_container_leaves_no_cgroup(rt: Runtime, bundle: Path) -> None:
    cid = "cgoom"
    with_resources(bundle, cid, {"memory": {"limit": 16 << 20, "swap": 16 << 20}},
                   args=["sh", "-c", "head -c 256m /dev/zero | tail"])
    edit_config(bundle, lambda cfg: cfg["process"].update(terminal=False))
    p = rt("run", "--bundle", str(bundle), cid, check=False, timeout=60)
    assert p.returncode == 137, p.stderr.decode()
    assert cgroup_dirs(cg_path(cid)) == []


def test_force_delete_of_a_paused_container_leaves_no_cgroup(rt: Runtime, bundle: Path) -> None:
    cid = "cgpaused"
    with_resources(bundle, cid, {"pids": {"limit": 20}}, args=["sh", "-c", "sleep 1000 & sleep 1000"])
    rt.create(cid, bundle)
    rt("start", cid)
    rt("pause", cid)
    rt("kill", "--all", cid, "TERM")  # signals a frozen cgroup; it stays paused
    assert rt.state(cid)["status"] == "paused"
    rt("delete", "--force", cid)
    assert cgroup_dirs(cg_path(cid)) == []
