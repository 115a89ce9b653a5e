"""End to end: ``hako`` runs real containers from an imported busybox image, through runc."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fixtures_engine import HAKO, HakoEnv


def wait_for(check, timeout: float = 20.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for whichever subreaper adopted it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def mounts_under(root: Path) -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(str(root))]


def test_run_foreground_streams_and_exit_code(hako_env: HakoEnv) -> None:
    p = hako_env.run("run", "--rm", "--name", "fg", "busybox", "sh", "-c",
                     "echo out; echo err >&2; echo $HOSTNAME; cat /etc/hostname; exit 3")
    assert p.returncode == 3, p.stderr
    lines = p.stdout.split()
    assert lines[0] == "out" and lines[1] == lines[2] and len(lines[1]) == 12
    assert "err" in p.stderr
    assert "fg" not in hako_env.out("ps", "-a")
    # Docker's exit codes for a command that cannot be found or run.
    assert hako_env.run("run", "--rm", "busybox", "/nonexistent").returncode == 127
    assert hako_env.run("run", "--rm", "busybox", "/etc/passwd").returncode == 126
    # stdin reaches the container with -i.
    p = hako_env.run("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z", input="shout\n")
    assert p.returncode == 0 and p.stdout == "SHOUT\n"
    # -t: a pty from the runtime's console socket, held by the monitor (script(1) gives us a terminal).
    import subprocess

    cmd = f"{HAKO} run --rm -t busybox sh -c 'tty; echo $TERM; exit 4'"
    p2 = subprocess.run(["script", "-qec", cmd, "/dev/null"], env=hako_env.env, capture_output=True, text=True,
                        stdin=subprocess.DEVNULL, timeout=60)
    assert p2.returncode == 4 and p2.stdout.split() == ["/dev/pts/0", "xterm"], (p2.stdout, p2.stderr)


def test_detached_lifecycle_monitor_logs_exec_rm(hako_env: HakoEnv) -> None:
    cid = hako_env.out("run", "-d", "--name", "web", "-e", "GREETING=hi", "-w", "/tmp", "-u", "nobody",
                       "--label", "tier=front", "busybox", "sh", "-c",
                       "trap 'echo bye; exit 0' TERM; echo $GREETING from $(pwd) as $(id -u); "
                       "while true; do sleep 0.1; done")
    assert len(cid) == 64
    info = hako_env.inspect("web")
    st = hako_env.state_file("web")
    assert info["State"]["Status"] == "running" and info["State"]["Pid"] > 0
    assert info["Name"] == "/web" and info["Config"]["Labels"] == {"tier": "front"}
    # The monitor outlived the command line and reparented to init (or a subreaper), not us.
    mpid = st["monitor_pid"]
    assert alive(mpid)
    assert int(Path(f"/proc/{mpid}/stat").read_text().rsplit(")", 1)[1].split()[1]) != os.getpid()
    wait_for(lambda: "hi from /tmp as 65534" in hako_env.out("logs", "web"), what="log line")
    assert hako_env.out("ps", "-q") == cid[:12]
    rows = [json.loads(line) for line in hako_env.out("ps", "--format", "json").splitlines()]
    assert rows[0]["Names"] == "web" and rows[0]["State"] == "running"
    p = hako_env.run("exec", "-u", "root", "-e", "X=1", "web", "sh", "-c", "echo $X $(id -u) $(pwd); exit 4")
    assert p.returncode == 4 and p.stdout.split() == ["1", "0", "/tmp"]
    assert hako_env.run("exec", "web", "nosuchcmd").returncode == 127
    assert hako_env.run("rm", "web").returncode != 0  # running: needs -f
    hako_env.run("stop", "-t", "5", "web", check=True)
    info = hako_env.inspect("web")
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 0
    assert not alive(mpid)
    logs = hako_env.out("logs", "web")
    assert "hi from /tmp" in logs and "bye" in logs  # logs survive stop
    assert hako_env.out("wait", "web") == "0"
    hako_env.run("start", "web", check=True)
    st = hako_env.state_file("web")
    assert st["status"] == "running" and st["monitor_pid"] != mpid
    pids = [st["monitor_pid"], st["pid"]]
    hako_env.run("pause", "web", check=True)
    assert hako_env.inspect("web")["State"]["Paused"] is True
    hako_env.run("unpause", "web", check=True)
    hako_env.run("rm", "-f", "web", check=True)
    assert "web" not in hako_env.out("ps", "-a")
    assert not any(alive(p) for p in pids)
    assert not mounts_under(hako_env.root)
    assert not (hako_env.root / "engine" / "containers" / cid).exists()
    assert not list(Path("/sys/fs/cgroup/memory").glob(f"{hako_env.cgroup_parent.lstrip('/')}/{cid}"))


def test_volumes_survive_rm(hako_env: HakoEnv) -> None:
    hako_env.run("run", "--rm", "-v", "data:/etc/vol", "busybox", "sh", "-c",
                 "ls /etc/vol > /dev/null; echo kept > /etc/vol/file", check=True)
    vol = json.loads(hako_env.out("volume", "inspect", "data"))[0]
    data = Path(vol["Mountpoint"])
    assert (data / "file").read_text() == "kept\n"
    p = hako_env.run("run", "--rm", "-v", "data:/x:ro", "busybox", "sh", "-c", "cat /x/file; touch /x/new")
    assert p.stdout == "kept\n" and p.returncode != 0  # read-only
    # A named volume mounted over image content is filled from it on first use.
    hako_env.run("run", "--rm", "-v", "etc:/etc", "busybox", "true", check=True)
    assert "root:x:0:0" in (hako_env.root / "volumes" / "etc" / "_data" / "passwd").read_text()
    # In use: not removable; anonymous volumes go with rm -v.
    hako_env.run("create", "--name", "holder", "-v", "data:/d", "-v", "/anon", "busybox", "true", check=True)
    assert hako_env.run("volume", "rm", "data").returncode != 0
    anon = [m["Name"] for m in hako_env.inspect("holder")["Mounts"] if m["Destination"] == "/anon"][0]
    hako_env.run("rm", "-v", "holder", check=True)
    names = hako_env.out("volume", "ls", "-q").split()
    assert anon not in names and "data" in names
    hako_env.run("volume", "rm", "data", "etc", check=True)
    assert hako_env.out("volume", "ls", "-q") == ""


def test_oom_kill_reports_137(hako_env: HakoEnv) -> None:
    p = hako_env.run("run", "--name", "hog", "--memory", "16m", "busybox",
                     "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
    assert p.returncode == 137
    state = hako_env.inspect("hog")["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    hako_env.run("rm", "hog", check=True)


def test_restart_on_failure_counts_up_to_n(hako_env: HakoEnv) -> None:
    hako_env.run("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c",
                 "echo try; exit 1", check=True)
    wait_for(lambda: hako_env.inspect("flaky")["State"]["Status"] == "exited"
             and hako_env.inspect("flaky")["RestartCount"] == 2, what="two restarts then exit")
    info = hako_env.inspect("flaky")
    assert info["State"]["ExitCode"] == 1
    assert hako_env.out("logs", "flaky").split() == ["try", "try", "try"]
    hako_env.run("rm", "flaky", check=True)


def test_health_check_turns_unhealthy(hako_env: HakoEnv) -> None:
    hako_env.run("run", "-d", "--name", "sick", "--health-cmd", "test -e /tmp/ok", "--health-interval", "200ms",
                 "--health-retries", "2", "busybox", "sh", "-c", "touch /tmp/ok; sleep 1; rm /tmp/ok; sleep 100",
                 check=True)
    wait_for(lambda: (hako_env.inspect("sick")["State"].get("Health") or {}).get("Status") == "healthy",
             what="healthy")
    wait_for(lambda: hako_env.inspect("sick")["State"]["Health"]["Status"] == "unhealthy", what="unhealthy")
    health = hako_env.inspect("sick")["State"]["Health"]
    assert health["FailingStreak"] >= 2 and health["Log"][-1]["ExitCode"] == 1
    assert "(unhealthy)" in hako_env.out("ps")
    hako_env.run("rm", "-f", "sick", check=True)


def test_parallel_runs_and_sigkilled_monitor(hako_env: HakoEnv) -> None:
    def run(i: int) -> tuple[int, str]:
        p = hako_env.run("run", "-d", "--name", f"par{i}", "busybox", "sleep", "1000")
        return p.returncode, p.stderr

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(run, range(20)))
    assert all(code == 0 for code, _ in results), results
    assert not any("database" in err for _, err in results)
    assert len(hako_env.out("ps", "-q").split()) == 20
    # A monitor killed with SIGKILL: the container still runs, and is reported so; stop and start work.
    st = hako_env.state_file("par0")
    os.kill(st["monitor_pid"], signal.SIGKILL)
    wait_for(lambda: not alive(st["monitor_pid"]), what="monitor gone")
    assert hako_env.inspect("par0")["State"]["Status"] == "running"
    hako_env.run("stop", "-t", "1", "par0", check=True)
    assert hako_env.inspect("par0")["State"]["Status"] == "exited"
    assert not alive(st["pid"])
    hako_env.run("start", "par0", check=True)
    assert hako_env.inspect("par0")["State"]["Running"] is True
    # Monitor and container both killed: the next command says exited.
    st = hako_env.state_file("par1")
    os.kill(st["monitor_pid"], signal.SIGKILL)
    os.kill(st["pid"], signal.SIGKILL)
    wait_for(lambda: hako_env.inspect("par1")["State"]["Status"] == "exited", what="truthful exited state")
    hako_env.run("start", "par1", check=True)
    assert hako_env.inspect("par1")["State"]["Running"] is True
    ids = hako_env.out("ps", "-aq").split()
    hako_env.run("rm", "-f", *ids, check=True)
    assert hako_env.out("ps", "-aq") == ""
    assert not mounts_under(hako_env.root)


@pytest.mark.parametrize("runtime", ["/usr/sbin/runc", "crun", "hako-runtime"])
def test_basic_lifecycle_with_each_runtime(hako_env: HakoEnv, runtime: str) -> None:
    import shutil

    if "/" not in runtime and not shutil.which(runtime) and not (Path(HAKO).parent / runtime).exists():
        pytest.skip(f"{runtime} not installed")
    p = hako_env.run("run", "--rm", "--runtime", runtime, "busybox", "sh", "-c", "echo pid $$; exit 5")
    if runtime == "crun" and "hybrid" in p.stderr:
        pytest.skip("crun refuses this host's hybrid cgroup layout")
    assert p.returncode == 5 and p.stdout == "pid 1\n", p.stderr
    name = "rt-" + Path(runtime).name
    hako_env.run("run", "-d", "--name", name, "--runtime", runtime, "busybox", "sh", "-c",
                 "trap 'exit 0' TERM; echo up; while true; do sleep 0.1; done", check=True)
    assert hako_env.out("exec", name, "sh", "-c", "echo $$ $(id -u)").split()[1] == "0"
    hako_env.run("stop", "-t", "5", name, check=True)
    state = hako_env.inspect(name)["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0
    assert hako_env.out("logs", name) == "up"
    hako_env.run("rm", name, check=True)
    assert not mounts_under(hako_env.root)


def test_security_limits_and_process_flags(hako_env: HakoEnv, tmp_path: Path) -> None:
    prof = tmp_path / "seccomp.json"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    script = ("grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; ulimit -n; "
              "touch /ro 2>/dev/null || echo rootfs-ro; touch /scratch/f && echo tmpfs-rw; "
              "mkdir /scratch/d 2>/dev/null || echo mkdir-denied; "
              "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
              "/sys/fs/cgroup/cpu/cpu.cfs_quota_us; id -u; id -g; cat /proc/1/cmdline | tr '\\0' ' '")
    p = hako_env.run("run", "--rm", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                     "--security-opt", f"seccomp={prof}", "--ulimit", "nofile=100:200", "--read-only",
                     "--tmpfs", "/scratch", "--memory", "32m", "--pids-limit", "20", "--cpus", "0.5",
                     "-u", "nobody:root", "--init", "busybox", "sh", "-c", script)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[:3] == ["CapEff:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"]
    assert out[3:7] == ["100", "rootfs-ro", "tmpfs-rw", "mkdir-denied"]
    assert out[7:10] == [str(32 << 20), "20", "50000"]
    assert out[10:12] == ["65534", "0"] and out[12].startswith("/sbin/hako-init -- sh -c")
    # Defaults: Docker's capability set, the default seccomp profile, no new privileges off.
    p = hako_env.run("run", "--rm", "busybox", "grep", "-E", "^(CapEff|NoNewPrivs|Seccomp):", "/proc/self/status")
    assert p.stdout.split() == ["CapEff:", "00000000a80425fb", "NoNewPrivs:", "0", "Seccomp:", "2"]
    # --stop-signal reaches the process; the container's own exit code is kept.
    hako_env.run("run", "-d", "--name", "sig", "--stop-signal", "USR1", "busybox", "sh", "-c",
                 "trap 'echo got usr1; exit 9' USR1; while true; do sleep 0.1; done", check=True)
    hako_env.run("stop", "sig", check=True)
    assert hako_env.inspect("sig")["State"]["ExitCode"] == 9 and hako_env.out("logs", "sig") == "got usr1"
    hako_env.run("rm", "sig", check=True)


def test_monitors_fork_from_a_running_one_and_survive_it(hako_env: HakoEnv) -> None:
    hako_env.run("run", "-d", "--name", "first", "busybox", "sleep", "1000", check=True)
    hako_env.run("run", "-d", "--name", "second", "busybox", "sleep", "1000", check=True)
    first, second = hako_env.state_file("first"), hako_env.state_file("second")
    ppid = int(Path(f"/proc/{second['monitor_pid']}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert ppid == first["monitor_pid"]  # forked by the first monitor, not a new interpreter
    os.kill(first["monitor_pid"], signal.SIGKILL)
    wait_for(lambda: not alive(first["monitor_pid"]), what="first monitor gone")
    # The forked monitor outlives its parent; new containers fall back to a fresh interpreter.
    assert alive(second["monitor_pid"])
    assert hako_env.out("exec", "second", "echo", "ok") == "ok"
    hako_env.run("run", "-d", "--name", "third", "busybox", "sleep", "1000", check=True)
    assert hako_env.inspect("third")["State"]["Running"] is True
    hako_env.run("stop", "-t", "1", "second", check=True)
    assert hako_env.inspect("second")["State"]["ExitCode"] == 137
    hako_env.run("rm", "-f", "first", "second", "third", check=True)
    assert not mounts_under(hako_env.root)


def test_log_rotation_and_restart_always_until_stopped(hako_env: HakoEnv) -> None:
    hako_env.run("run", "--name", "chatty", "--log-opt", "max-size=2k", "--log-opt", "max-file=2", "busybox",
                 "sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done", check=True)
    cdir = hako_env.root / "engine" / "containers" / hako_env.inspect("chatty")["Id"]
    assert (cdir / "ctr.log.1").exists() and not (cdir / "ctr.log.2").exists()
    assert (cdir / "ctr.log").stat().st_size <= 2048
    lines = hako_env.out("logs", "chatty").split()
    assert lines[-1] == "line-199" and len(lines) < 200  # the oldest rotated away
    assert hako_env.out("logs", "--tail", "2", "chatty").split() == ["line-198", "line-199"]
    hako_env.run("rm", "chatty", check=True)
    # --restart always: restarted after every exit, but not after hako stop.
    hako_env.run("run", "-d", "--name", "phoenix", "--restart", "always", "busybox", "sh", "-c",
                 "sleep 0.2; exit 0", check=True)
    wait_for(lambda: hako_env.inspect("phoenix")["RestartCount"] >= 2, what="two restarts")
    hako_env.run("stop", "-t", "1", "phoenix", check=True)
    count = hako_env.inspect("phoenix")["RestartCount"]
    assert hako_env.inspect("phoenix")["State"]["Status"] == "exited"
    assert hako_env.inspect("phoenix")["RestartCount"] == count
    hako_env.run("rm", "phoenix", check=True)


@pytest.mark.parametrize("in_process", ["1", "0"])
def test_hako_runtime_in_process_and_as_a_binary(hako_env: HakoEnv, in_process: str) -> None:
    """hako's own runtime runs in a forked child of the monitor, or (HAKO_RUNTIME_INPROCESS=0) as a
    binary: same results, same errors, and a failed create leaves no monitor waiting behind."""
    import dataclasses

    env = dataclasses.replace(hako_env, env=dict(hako_env.env, HAKO_RUNTIME="hako-runtime",
                                                 HAKO_RUNTIME_INPROCESS=in_process, HAKO_MONITOR_FORK="0"))
    p = env.run("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 4")
    assert (p.returncode, p.stdout, p.stderr) == (4, "out\n", "err\n")
    p = env.run("run", "--rm", "busybox", "/no/such/command")
    assert p.returncode == 127 and "no/such/command" in p.stderr
    before = _monitors(hako_env.root)
    p = env.run("run", "--rm", "--pull", "never", "no-such-image-here")
    assert p.returncode == 125
    # The monitor started ahead of the create exits once the command has failed (it may be importing).
    wait_for(lambda: not (_monitors(hako_env.root) - before), what="the pending monitor to exit")
    name = f"inproc{in_process}"
    env.run("run", "-d", "--name", name, "busybox", "sleep", "60", check=True)
    assert env.out("exec", name, "echo", "hi") == "hi"
    env.run("rm", "-f", name, check=True)
    assert not mounts_under(hako_env.root)


def _monitors(root: Path) -> set[int]:
    """Monitor processes (of any store) still waiting for a container directory, or serving one of ours."""
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if b"hako.engine.monitor" in cmd and (b"fd:" in cmd or str(root).encode() in cmd):
                out.add(int(d.name))
    return out
