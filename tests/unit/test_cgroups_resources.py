import pytest

from hako.cgroups.resources import (
    DEFAULT_ALLOWED_DEVICES,
    DeviceRule,
    blkio_to_io_weight,
    default_device_rules_json,
    parse,
    shares_to_weight,
    swap_v2,
)
from hako.errors import ConfigError


def test_full_resources_parse() -> None:
    r = parse({
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0", "idle": 0},
        "memory": {"limit": 1 << 20, "swap": 2 << 20, "reservation": 1 << 19, "swappiness": 10,
                   "disableOOMKiller": False, "kernel": 5},
        "pids": {"limit": 10},
        "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1024}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
        "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3,
                                                       "access": "wr"}],
        "unified": {"memory.high": "1000000"},
        "rdma": {"mlx5_1": {"hcaHandles": 3}},
    })
    assert r.cpu and r.cpu.shares == 1024 and r.cpu.cpus == "0-1"
    assert r.memory and r.memory.swap == 2 << 20 and r.memory.kernel == 5
    assert r.pids_limit == 10
    assert r.block_io and r.block_io.throttle_read_bps and r.block_io.throttle_read_bps[0].rate == 1024
    assert r.hugepage_limits and r.hugepage_limits[0].page_size == "2MB"
    assert r.network and r.network.priorities == [("eth0", 5)]
    assert r.devices == [DeviceRule(False, "a", -1, -1, "rwm"), DeviceRule(True, "c", 1, 3, "rw")]
    assert r.unified == {"memory.high": "1000000"}
    assert r.rdma and r.rdma["mlx5_1"].hca_handles == 3 and r.rdma["mlx5_1"].hca_objects is None


def test_missing_sections_stay_none_for_update() -> None:
    r = parse({"memory": {"limit": 5}})
    assert r.cpu is None and r.pids_limit is None and r.devices is None
    assert r.memory and r.memory.swap is None
    assert parse(None).memory is None


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"memory": {"limit": "1g"}}, "linux.resources.memory.limit"),
        ({"memory": {"limit": 1.5}}, "linux.resources.memory.limit"),
        ({"memory": {"limit": True}}, "linux.resources.memory.limit"),
        ({"memory": {"limit": -2}}, "linux.resources.memory.limit"),
        ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness"),
        ({"memory": {"limit": 100, "swap": 50}}, "linux.resources.memory.swap"),
        ({"memory": []}, "linux.resources.memory"),
        ({"cpu": {"shares": -1}}, "linux.resources.cpu.shares"),
        ({"cpu": {"cpus": "0-1;3"}}, "linux.resources.cpu.cpus"),
        ({"cpu": {"quota": -5}}, "linux.resources.cpu.quota"),
        ({"pids": {"limit": "x"}}, "linux.resources.pids.limit"),
        ({"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight"),
        ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "rate": 1}]}},
         "linux.resources.blockIO.throttleReadBpsDevice[0].minor"),
        ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "linux.resources.hugepageLimits[0].pageSize"),
        ({"devices": [{"access": "rwm"}]}, "linux.resources.devices[0].allow"),
        ({"devices": [{"allow": True, "type": "x"}]}, "linux.resources.devices[0].type"),
        ({"devices": [{"allow": True, "access": "rwx"}]}, "linux.resources.devices[0].access"),
        ({"unified": {"memory.max": 5}}, "linux.resources.unified.memory.max"),
        ({"unified": {"../etc": "1"}}, "linux.resources.unified.../etc"),
        ({"unified": {"cgroup.procs": "1"}}, "linux.resources.unified.cgroup.procs"),
        ({"network": {"classID": -1}}, "linux.resources.network.classID"),
        ({"rdma": {"mlx": {}}}, "linux.resources.rdma.mlx"),
        ("nope", "linux.resources"),
    ],
)
def test_invalid_values_name_the_json_path(raw: object, path: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(raw)
    assert e.value.path == path


def test_update_prefix_is_used_in_paths() -> None:
    with pytest.raises(ConfigError) as e:
        parse({"memory": {"limit": "x"}}, "resources")
    assert e.value.path == "resources.memory.limit"


def test_conversions_match_the_v1_v2_mappings() -> None:
    assert shares_to_weight(2) == 1
    assert shares_to_weight(1024) == 39
    assert shares_to_weight(262144) == 10000
    assert blkio_to_io_weight(10) == 1
    assert blkio_to_io_weight(1000) == 10000
    assert swap_v2(100, 300) == 200
    assert swap_v2(-1, None) == -1
    assert swap_v2(100, None) is None
    assert swap_v2(100, -1) == -1
    with pytest.raises(ConfigError):
        swap_v2(None, 300)


def test_device_rule_lines_and_defaults() -> None:
    assert DeviceRule(True, "c", 1, 3, "rwm").v1_line() == "c 1:3 rwm"
    assert DeviceRule(True, "c", 136, -1, "rw").v1_line() == "c 136:* rw"
    assert DeviceRule(False, "a").v1_line() == "a"
    rules = default_device_rules_json()
    assert len(rules) == len(DEFAULT_ALLOWED_DEVICES)
    assert parse({"devices": rules}).devices == list(DEFAULT_ALLOWED_DEVICES)


def test_with_default_devices_appends_node_rules_then_defaults() -> None:
    from hako.cgroups.resources import with_default_devices

    spec = {"memory": {"limit": 5}, "devices": [{"allow": False, "access": "rwm"}]}
    out = with_default_devices(spec, [("c", 10, 229), ("p", 0, 0), ("b", 8, 0)])
    assert spec["devices"] == [{"allow": False, "access": "rwm"}]  # the input is not changed
    assert out["memory"] == {"limit": 5}
    rules = parse(out).devices
    assert rules is not None
    assert rules[0] == DeviceRule(False, "a")
    assert rules[1] == DeviceRule(True, "c", 10, 229, "rwm")
    assert rules[2] == DeviceRule(True, "b", 8, 0, "rwm")
    assert rules[3:] == list(DEFAULT_ALLOWED_DEVICES)
    assert with_default_devices(None)["devices"] == default_device_rules_json()
