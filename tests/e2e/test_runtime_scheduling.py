"""OCI 1.2 process.scheduler and process.ioPriority, checked on the container process in the kernel."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from tests.fixtures_runtime import Runtime, edit_config, set_config

_IOPRIO_GET = {"x86_64": 252, "aarch64": 31}


def ioprio_of(pid: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.syscall(ctypes.c_long(_IOPRIO_GET[os.uname().machine]), 1, pid))


def sched_of(pid: int) -> tuple[int, int]:
    """(policy, nice) of ``pid``, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[38]), int(fields[16])  # stat fields 41 (policy) and 19 (nice)


def test_io_priority_and_batch_policy_reach_the_container_process(rt: Runtime, bundle: Path) -> None:
    set_config(bundle, "sch1")

    def sched(c: dict) -> None:  # type: ignore[type-arg]
        c["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
        c["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}

    edit_config(bundle, sched)
    rt.create("sch1", bundle)
    rt("start", "sch1")
    pid = rt.state("sch1")["pid"]
    assert ioprio_of(pid) == (2 << 13) | 6
    assert sched_of(pid) == (3, 7)  # SCHED_BATCH
    # exec'd processes get what their own process.json asks for
    proc = rt.tmp / "proc.json"
    proc.write_text('{"args": ["sleep", "100"], "cwd": "/", "scheduler": {"policy": "SCHED_IDLE"},'
                    ' "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0}}')
    pidfile = rt.tmp / "exec.pid"
    rt.detached("exec", "--detach", "--pid-file", str(pidfile), "--process", str(proc), "sch1", cid="sch1")
    epid = int(pidfile.read_text())
    assert ioprio_of(epid) == 3 << 13
    assert sched_of(epid)[0] == 5  # SCHED_IDLE


def test_bad_scheduler_settings_are_refused_naming_the_field(rt: Runtime, bundle: Path) -> None:
    for field, value, where in (
        ("scheduler", {"policy": "SCHED_NOPE"}, b"process.scheduler.policy"),
        ("scheduler", {"policy": "SCHED_FIFO", "priority": 0}, b"process.scheduler.priority"),
        ("ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 9}, b"process.ioPriority.priority"),
    ):
        set_config(bundle, "sch2")
        edit_config(bundle, lambda c, f=field, v=value: c["process"].__setitem__(f, v))
        p = rt.create("sch2", bundle, check=False)
        assert p.returncode == 1 and where in p.stderr, p.stderr
        assert rt.ids() == []


def test_a_policy_the_kernel_refuses_fails_create_and_leaves_nothing(rt: Runtime, bundle: Path) -> None:
    # A new cgroup gets no real-time runtime (cpu.rt_runtime_us = 0): SCHED_FIFO is refused there.
    set_config(bundle, "sch3")
    edit_config(bundle, lambda c: c["process"].__setitem__("scheduler", {"policy": "SCHED_FIFO", "priority": 10}))
    p = rt.create("sch3", bundle, check=False)
    assert p.returncode == 1 and b"process.scheduler SCHED_FIFO" in p.stderr, p.stderr
    assert rt.ids() == []


def test_exec_cpu_affinity_final_pins_the_exec_process(rt: Runtime, bundle: Path) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        import pytest

        pytest.skip("needs two CPUs")
    set_config(bundle, "aff1")
    rt.create("aff1", bundle)
    rt("start", "aff1")
    proc = rt.tmp / "aff.json"
    pidfile = rt.tmp / "aff.pid"
    proc.write_text('{"args": ["sleep", "100"], "cwd": "/", "execCPUAffinity": {"initial": "1", "final": "0"}}')
    rt.detached("exec", "--detach", "--pid-file", str(pidfile), "--process", str(proc), "aff1", cid="aff1")
    status = Path(f"/proc/{int(pidfile.read_text())}/status").read_text()
    assert "Cpus_allowed_list:\t0\n" in status
    proc.write_text('{"args": ["true"], "cwd": "/", "execCPUAffinity": {"final": "0-x"}}')
    p = rt("exec", "--process", str(proc), "aff1", check=False)
    assert p.returncode == 1 and b"process.execCPUAffinity.final" in p.stderr, p.stderr
