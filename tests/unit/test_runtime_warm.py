"""hako.runtime.warm: which hierarchy the warming child moves into, and that it is reaped."""

from __future__ import annotations

import os

from hako.runtime import warm


def test_picks_a_hierarchy_without_controllers_never_freezer_or_pids() -> None:
    saved = {"version": 1, "paths": {
        "freezer": ["/sys/fs/cgroup/freezer", "/sys/fs/cgroup/freezer/x"],
        "pids": ["/sys/fs/cgroup/pids", "/sys/fs/cgroup/pids/x"],
        "cpu,cpuacct": ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct/x"],
        "name=systemd": ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/systemd/x"],
    }}
    assert warm.pick_dir(saved) == "/sys/fs/cgroup/systemd/x"
    del saved["paths"]["name=systemd"]
    assert warm.pick_dir(saved) == "/sys/fs/cgroup/cpu,cpuacct/x"
    del saved["paths"]["cpu,cpuacct"]
    assert warm.pick_dir(saved) is None
    assert warm.pick_dir({"version": 2, "path": "/sys/fs/cgroup/x"}) is None


def test_a_child_that_cannot_move_still_exits_and_is_reaped(tmp_path: object) -> None:
    pid = warm.start(f"{tmp_path}/not-a-cgroup")
    assert pid > 0
    warm.finish(pid)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] != "Z"
    assert warm.start(None) == 0
    warm.finish(0)
