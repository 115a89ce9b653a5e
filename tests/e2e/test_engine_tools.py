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
