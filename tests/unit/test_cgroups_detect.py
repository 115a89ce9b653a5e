from hako.cgroups.detect import parse_mountinfo, parse_proc_cgroup

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""

V1_COMBINED = """\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
33 31 0:30 / /sys/fs/cgroup/net_cls,net_prio rw,relatime shared:10 - cgroup cgroup rw,net_cls,net_prio
90 80 0:29 / /mnt/again rw,relatime - cgroup cgroup rw,cpu,cpuacct
"""

V2 = "28 22 0:25 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"


def test_hybrid_layout_lists_each_controller_and_the_unified_mount() -> None:
    lay = parse_mountinfo(HYBRID)
    assert lay.kind == "hybrid"
    assert lay.v1["cpu"].mountpoint == "/sys/fs/cgroup/cpu"
    assert lay.v1["cpuacct"].mountpoint == "/sys/fs/cgroup/cpuacct"
    assert lay.v1["name=systemd"].controllers == ("name=systemd",)
    assert lay.unified is not None and lay.unified.mountpoint == "/sys/fs/cgroup/unified"
    assert len(lay.v1_hierarchies()) == 4


def test_combined_v1_mounts_count_once_and_first_mount_wins() -> None:
    lay = parse_mountinfo(V1_COMBINED)
    assert lay.kind == "v1"
    assert lay.v1["cpu"] is lay.v1["cpuacct"]
    assert lay.v1["cpu"].mountpoint == "/sys/fs/cgroup/cpu,cpuacct"
    assert [h.controllers for h in lay.v1_hierarchies()] == [("cpu", "cpuacct"), ("net_cls", "net_prio")]


def test_pure_unified_layout() -> None:
    lay = parse_mountinfo(V2)
    assert lay.kind == "v2" and not lay.v1
    assert parse_mountinfo("").kind == "none"


def test_proc_cgroup_maps_controllers_and_unified() -> None:
    text = "9:name=systemd:/\n4:memory:/process_api/x\n2:cpu,cpuacct:/a\n0::/u\n"
    got = parse_proc_cgroup(text)
    assert got == {"name=systemd": "/", "memory": "/process_api/x", "cpu": "/a", "cpuacct": "/a", "": "/u"}
