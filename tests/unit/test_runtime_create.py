"""hako.runtime.create's pure helpers (the lifecycle itself is tested end to end)."""

from __future__ import annotations

from hako.runtime.create import effective_resources
from hako.spec.runtime import parse_config
from hako.testing.config import default_config


def test_config_devices_are_allowed_in_the_device_cgroup() -> None:
    cfg = default_config(["true"])
    cfg["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
        {"path": "/dev/loop9", "type": "b", "major": 7, "minor": 9},
        {"path": "/dev/unbuf", "type": "u", "major": 240, "minor": 1},
        {"path": "/dev/fifo", "type": "p"},
    ]
    cfg["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    rules = effective_resources(parse_config(cfg))["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}  # the spec's own rules come first
    tail = [(r["type"], r["major"], r["minor"]) for r in rules[-3:]]
    assert tail == [("c", 10, 229), ("b", 7, 9), ("c", 240, 1)]  # "u" is a char device; no rule for "p"
