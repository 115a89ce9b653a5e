"""End to end: stats, top, cp, export, debug, info, system df/prune, container prune."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

from tests.fixtures_engine import HAKO, HakoEnv


def test_inspection_and_file_tools(hako_env: HakoEnv, tmp_path: Path) -> None:
    hako_env.run("run", "-d", "--name", "tools", "--memory", "64m", "--pids-limit", "50", "busybox",
                 "sh", "-c", "echo data > /tmp/inside; sleep 1000", check=True)
    rows = [json.loads(line) for line in hako_env.out("stats", "--no-stream", "--format", "json").splitlines()]
    assert rows[0]["Name"] == "tools" and rows[0]["MemLimit"] == 64 << 20 and rows[0]["PIDs"] >= 1
    assert "sleep 1000" in hako_env.out("top", "tools") or "sh -c" in hako_env.out("top", "tools")
    # cp both ways, through the container's root (and never out of it through symlinks).
    (tmp_path / "in.txt").write_text("from host\n")
    hako_env.run("cp", str(tmp_path / "in.txt"), "tools:/tmp/in.txt", check=True)
    assert hako_env.out("exec", "tools", "cat", "/tmp/in.txt") == "from host"
    hako_env.run("exec", "tools", "ln", "-s", "/etc", "/tmp/escape", check=True)
    hako_env.run("cp", "tools:/tmp/escape/passwd", str(tmp_path / "pw"), check=True)
    assert (tmp_path / "pw").read_text().startswith("root:x:0:0:root:/root:/bin/sh\nnobody")
    hako_env.run("exec", "tools", "sync", check=True)
    hako_env.run("cp", "tools:/tmp/inside", str(tmp_path / "out.txt"), check=True)
    assert (tmp_path / "out.txt").read_text() == "data\n"
    # export: the container's filesystem as a tar stream.
    tar = subprocess.run([HAKO, "export", "tools"], env=hako_env.env, capture_output=True, check=True).stdout
    names = tarfile.open(fileobj=io.BytesIO(tar)).getnames()
    assert "./bin/busybox" in names and "./tmp/in.txt" in names
    # debug: a shell in the target's pid namespace, its root at /proc/1/root.
    p = hako_env.run("debug", "tools", input="cat /proc/1/root/tmp/inside; cat /proc/1/cmdline | tr '\\0' ' '\n")
    assert p.returncode == 0 and "data" in p.stdout and "sleep 1000" in p.stdout, p.stderr
    info = json.loads(hako_env.out("info", "--format", "json"))
    assert info["ContainersRunning"] == 1 and info["CgroupVersion"] in ("1", "2") and info["Images"] >= 1
    assert "Containers" in hako_env.out("system", "df")
    hako_env.run("stop", "-t", "0", "tools", check=True)
    hako_env.run("create", "--name", "never", "busybox", "true", check=True)
    pruned = hako_env.out("container", "prune", "-f")
    assert len(pruned.splitlines()) == 3
    assert hako_env.out("ps", "-aq") == ""


def test_more_flags_and_commands(hako_env: HakoEnv, tmp_path: Path) -> None:
    envfile = tmp_path / "env"
    envfile.write_text("# comment\nFROM_FILE=yes\n")
    (tmp_path / "bind").mkdir()
    (tmp_path / "bind" / "hello").write_text("bound\n")
    p = hako_env.run("run", "--rm", "--env-file", str(envfile), "--entrypoint", "/bin/sh", "--hostname", "box",
                     "--mount", f"type=bind,source={tmp_path / 'bind'},target=/b,readonly",
                     "--cap-add", "SYS_ADMIN", "--cpuset-cpus", "0", "--network", "host", "busybox",
                     "-c", "echo $FROM_FILE $(hostname) $(cat /b/hello); cat /sys/fs/cgroup/cpuset/cpuset.cpus; "
                           "grep CapEff /proc/self/status; touch /b/x 2>/dev/null || echo ro")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:4] == ["yes box bound", "0", "CapEff:\t00000000a82425fb", "ro"]
    assert hako_env.run("run", "--rm", "--pull", "never", "nosuchimage:1", "true").returncode == 125
    # --privileged: the capabilities we hold, the host's devices, /sys writable, no seccomp.
    p = hako_env.run("run", "--rm", "--privileged", "busybox", "sh", "-c",
                     "test -c /dev/null && test -b /dev/$(ls /sys/block | head -1) && echo devices; "
                     "grep Seccomp: /proc/self/status; grep ' /sys ' /proc/mounts | cut -d' ' -f4")
    assert p.stdout.split("\n")[:2] == ["devices", "Seccomp:\t0"] and p.stdout.split("\n")[2].startswith("rw"), p

    # create + start -a, rename, kill -s, restart, ps filters, logs -t/--since, version.
    hako_env.run("create", "--name", "later", "--label", "team=a", "busybox", "sh", "-c", "echo started", check=True)
    assert hako_env.out("start", "-a", "later") == "started"
    hako_env.run("rename", "later", "renamed", check=True)
    assert hako_env.out("ps", "-a", "--filter", "label=team=a", "--format", "{{.Names}}") == "renamed"
    assert hako_env.out("ps", "-a", "--filter", "status=exited", "-q") != ""
    line = hako_env.out("logs", "-t", "--since", "1h", "renamed")
    assert line.endswith(" started") and line[:4].isdigit()
    hako_env.run("run", "-d", "--name", "sleeper", "busybox", "sh", "-c",
                 "trap 'echo hup' HUP; while true; do sleep 0.1; done", check=True)
    hako_env.run("kill", "-s", "HUP", "sleeper", check=True)
    hako_env.run("restart", "-t", "1", "sleeper", check=True)
    assert hako_env.inspect("sleeper")["State"]["Running"] is True
    assert "hup" in hako_env.out("logs", "sleeper")
    assert "Version" in hako_env.out("version")
    hako_env.run("rm", "-f", "sleeper", "renamed", check=True)
    hako_env.run("volume", "create", "unused", check=True)
    hako_env.run("run", "--name", "anon", "-v", "/scratch", "busybox", "true", check=True)
    assert "Deleted Containers:" in hako_env.out("system", "prune", "-f", "--volumes")
    assert hako_env.out("ps", "-aq") == "" and hako_env.out("volume", "ls", "-q") == "unused"
    hako_env.run("volume", "prune", "-a", "-f", check=True)
    assert hako_env.out("volume", "ls", "-q") == ""
