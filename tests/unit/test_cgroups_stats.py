"""stats() parsing over fake cgroupfs files."""

from pathlib import Path

from hako.cgroups.stats import UNLIMITED, stats_v1, stats_v2


def test_v1_stats_shape(tmp_path: Path) -> None:
    files = {
        "cpuacct/cpuacct.usage": "3000\n",
        "cpuacct/cpuacct.usage_all": "cpu user system\n0 600 400\n1 2000 0\n",
        "cpuacct/cpuacct.usage_percpu": "1000 2000 \n",
        "cpuacct/cpuacct.stat": "user 3\nsystem 1\n",
        "cpu/cpu.stat": "nr_periods 10\nnr_throttled 4\nthrottled_time 999\n",
        "memory/memory.usage_in_bytes": "4096\n",
        "memory/memory.max_usage_in_bytes": "8192\n",
        "memory/memory.limit_in_bytes": "16777216\n",
        "memory/memory.failcnt": "2\n",
        "memory/memory.stat": "cache 12\nrss 34\ntotal_cache 12\n",
        "pids/pids.current": "3\n",
        "pids/pids.max": "max\n",
        "blkio/blkio.throttle.io_service_bytes_recursive": "8:0 Read 100\n8:0 Write 50\nTotal 150\n",
    }
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    dirs = {c: str(tmp_path / c) for c in ("cpu", "cpuacct", "memory", "pids", "blkio")}
    s = stats_v1(dirs)
    assert s["cpu"]["usage"]["total"] == 3000
    assert s["cpu"]["usage"]["percpu"] == [1000, 2000]
    assert s["cpu"]["usage"]["percpu_user"] == [600, 2000]
    assert s["cpu"]["usage"]["percpu_kernel"] == [400, 0]
    assert s["cpu"]["usage"]["user"] > s["cpu"]["usage"]["kernel"] > 0
    assert s["cpu"]["throttling"] == {"periods": 10, "throttledPeriods": 4, "throttledTime": 999}
    assert s["memory"]["usage"] == {"limit": 16777216, "usage": 4096, "max": 8192, "failcnt": 2}
    assert s["memory"]["raw"]["rss"] == 34 and s["memory"]["cache"] == 12
    assert s["memory"]["swap"] == {"limit": 0, "usage": 0, "max": 0, "failcnt": 0}
    assert s["pids"] == {"current": 3, "limit": 0}
    assert s["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 100},
        {"major": 8, "minor": 0, "op": "Write", "value": 50},
    ]
    assert s["hugetlb"] == {}


def test_v2_stats_shape(tmp_path: Path) -> None:
    files = {
        "cpu.stat": "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 3\nnr_throttled 1\nthrottled_usec 7\n",
        "memory.current": "1000\n",
        "memory.max": "max\n",
        "memory.swap.current": "10\n",
        "memory.swap.max": "max\n",
        "memory.stat": "anon 5\nfile 7\n",
        "memory.events": "max 2\noom_kill 1\n",
        "pids.current": "4\n",
        "pids.max": "100\n",
        "io.stat": "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    s = stats_v2(str(tmp_path))
    assert s["cpu"]["usage"] == {"total": 10000, "percpu": [], "kernel": 4000, "user": 6000}
    assert s["cpu"]["throttling"] == {"periods": 3, "throttledPeriods": 1, "throttledTime": 7000}
    assert s["memory"]["usage"]["limit"] == UNLIMITED and s["memory"]["usage"]["failcnt"] == 2
    assert s["memory"]["swap"]["usage"] == 1010 and s["memory"]["cache"] == 7
    assert s["pids"] == {"current": 4, "limit": 100}
    assert {"major": 8, "minor": 0, "op": "Write", "value": 20} in s["blkio"]["ioServiceBytesRecursive"]
    assert {"major": 8, "minor": 0, "op": "Read", "value": 1} in s["blkio"]["ioServicedRecursive"]
