"""hako-runtime's lifecycle driven through the console script, checked against the kernel."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.fixtures_runtime import (
    Runtime,
    alive,
    cg_path,
    cgroup_dirs,
    edit_config,
    ns_inode,
    proc_status,
    set_config,
)


def wait_for(cond, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_run_foreground_prints_and_exits_with_code(rt: Runtime, bundle: Path) -> None:
    set_config(bundle, "r1", ["sh", "-c", "echo host=$(hostname) pid=$$; exit 7"])
    p = rt("run", "--bundle", str(bundle), "r1", check=False)
    assert p.returncode == 7, p.stderr
    assert p.stdout.decode().strip() == "host=hako pid=1"
    assert rt.ids() == []
    assert cgroup_dirs(cg_path("r1")) == []


def test_create_start_state_kill_delete(rt: Runtime, rbundle: Path) -> None:
    pidfile = rt.tmp / "init.pid"
    rt.create("c1", rbundle, "--pid-file", str(pidfile))
    assert rt.output("c1") == ""  # create prints nothing on stdout
    st = rt.state("c1")
    assert st["status"] == "created"
    assert st["id"] == "c1" and st["bundle"] == str(rbundle)
    assert st["rootfs"] == str(rbundle / "rootfs")
    assert st["created"].endswith("Z") and st["ociVersion"].startswith("1.")
    pid = st["pid"]
    assert pidfile.read_text() == str(pid)  # no newline
    # namespaces: new ones for every type in the config, none for user
    for name in ("pid", "net", "ipc", "uts", "mnt", "cgroup"):
        assert ns_inode(pid, name) != ns_inode("self", name), name
    assert ns_inode(pid, "user") == ns_inode("self", "user")
    # init is blocked before exec: still our interpreter, and not dumpable by the container
    assert "python" in Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    # cgroup: init sits in the configured cgroup of every v1 hierarchy
    assert any(str(pid) in (d / "cgroup.procs").read_text().split() for d in cgroup_dirs(cg_path("c1")))
    rt("start", "c1")
    assert wait_for(lambda: Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep"))
    assert rt.state("c1")["status"] == "running"
    status = proc_status(pid)
    # runc's default: CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE = bits 29, 5, 10
    want = hex((1 << 29) | (1 << 5) | (1 << 10))[2:].rjust(16, "0")
    assert status["CapEff"] == want and status["CapPrm"] == want and status["CapBnd"] == want
    assert status["CapInh"] == "0" * 16
    assert status["NoNewPrivs"] == "1"
    assert status["SigIgn"] == "0" * 16 and status["SigBlk"] == "0" * 16
    mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    points = [line.split()[4] for line in mounts]
    assert points[0] == "/" and "/proc" in points and "/dev" in points and "/dev/pts" in points
    assert " ro," in f" {mounts[0].split()[5]}," or mounts[0].split()[5].startswith("ro")
    p = rt("delete", "c1", check=False)
    assert p.returncode == 1 and b"not stopped" in p.stderr
    assert rt.state("c1")["status"] == "running"  # no effect
    rt("kill", "c1", "KILL")
    assert wait_for(lambda: not alive(pid))
    assert rt.state("c1")["status"] == "stopped"
    assert rt.state("c1")["pid"] == 0
    p = rt("kill", "c1", check=False)
    assert p.returncode == 1 and b"container not running" in p.stderr
    rt("delete", "c1")
    assert rt.ids() == []
    assert cgroup_dirs(cg_path("c1")) == []
    p = rt("state", "c1", check=False)
    assert p.returncode == 1 and b"container c1 does not exist" in p.stderr


def test_kill_signal_forms(rt: Runtime, bundle: Path) -> None:
    set_config(bundle, "k1", ["sh", "-c", "trap 'echo got-usr1' USR1; trap 'echo got-term; exit 0' TERM; "
                                        "while true; do sleep 0.05; done"])
    rt.create("k1", bundle)
    rt("start", "k1")
    pid = rt.state("k1")["pid"]
    assert wait_for(lambda: proc_status(pid)["SigCgt"] != "0" * 16)
    rt("kill", "k1", "SIGUSR1")
    # one at a time: a second standard signal sent while the first is pending would merge with it
    assert wait_for(lambda: rt.output("k1").count("got-usr1") == 1)
    rt("kill", "k1", str(int(signal.SIGUSR1)))
    assert wait_for(lambda: rt.output("k1").count("got-usr1") == 2)
    rt("kill", "k1")  # default TERM
    assert wait_for(lambda: not alive(pid))
    assert "got-term" in rt.output("k1")
    p = rt("kill", "k1", "NOPE", check=False)
    assert p.returncode == 1
    rt("delete", "k1")


def test_delete_force_running_and_unknown(rt: Runtime, rbundle: Path) -> None:
    rt.create("c1", rbundle)
    rt("start", "c1")
    pid = rt.state("c1")["pid"]
    rt("delete", "--force", "c1")
    assert not alive(pid)
    assert rt.ids() == [] and cgroup_dirs(cg_path("c1")) == []
    assert rt("delete", "--force", "nope").returncode == 0
    p = rt("delete", "nope", check=False)
    assert p.returncode == 1 and b"does not exist" in p.stderr


def test_delete_created_container_kills_init(rt: Runtime, rbundle: Path) -> None:
    rt.create("c1", rbundle)
    pid = rt.state("c1")["pid"]
    rt("delete", "c1")
    assert not alive(pid) and rt.ids() == []


def test_start_twice_is_an_error(rt: Runtime, rbundle: Path) -> None:
    rt.create("c1", rbundle)
    rt("start", "c1")
    p = rt("start", "c1", check=False)
    assert p.returncode == 1 and b"running" in p.stderr


def test_run_detach_and_list_ps(rt: Runtime, rbundle: Path) -> None:
    rt.detached("run", "-d", "-b", str(rbundle), "c1", cid="c1")
    st = rt.state("c1")
    assert st["status"] == "running"
    import json

    listed = json.loads(rt("list", "--format", "json").stdout)
    assert [(c["id"], c["status"], c["pid"]) for c in listed] == [("c1", "running", st["pid"])]
    assert b"c1" in rt("list").stdout
    assert json.loads(rt("ps", "--format", "json", "c1").stdout) == [st["pid"]]
    assert str(st["pid"]).encode() in rt("ps", "c1").stdout


def test_flags_in_any_order_and_equals_form(rt: Runtime, rbundle: Path) -> None:
    pidfile = rt.tmp / "p"
    rt.detached("create", "c1", f"--bundle={rbundle}", f"--pid-file={pidfile}", cid="c1")
    assert pidfile.read_text() == str(rt.state("c1")["pid"])
    rt("delete", "-f", "c1")


def test_preserve_fds_passes_exactly_n(rt: Runtime, bundle: Path) -> None:
    import subprocess

    from tests.fixtures_runtime import RUNTIME

    set_config(bundle, "p1", ["sh", "-c", "echo via-fd3 >&3; ls /proc/$$/fd; true"])
    r, w = os.pipe()
    r2, w2 = os.pipe()
    try:
        # fd 3 and 4 are pipes in the runtime; only fd 3 may reach the container
        with open(rt.tmp / "p1.out", "wb") as out:
            p = subprocess.run(
                ["/bin/bash", "-c", f'exec "$0" "$@" 3>&{w} 4>&{w2}', RUNTIME, "--root", str(rt.root), "run",
                 "--preserve-fds", "1", "-b", str(bundle), "p1"],
                stdout=out, stderr=subprocess.PIPE, pass_fds=(w, w2), timeout=30,
            )
        assert p.returncode == 0, p.stderr
        os.close(w)
        w = -1
        assert os.read(r, 100) == b"via-fd3\n"
        assert rt.output("p1").split() == ["0", "1", "2", "3"]  # the shell's fds: fd 4 did not get through
    finally:
        for fd in (r, w, r2, w2):
            if fd >= 0:
                os.close(fd)


def test_hostname_domainname_and_env(rt: Runtime, bundle: Path) -> None:
    set_config(bundle, "h1", ["sh", "-c", "hostname; cat /proc/sys/kernel/domainname; echo $FOO; echo $HOME; pwd"],
               hostname="box", domainname="example.org")
    edit_config(bundle, lambda c: (c["process"]["env"].append("FOO=bar"), c["process"].__setitem__("cwd", "/tmp")))
    p = rt("run", "-b", str(bundle), "h1")
    assert p.stdout.decode().split() == ["box", "example.org", "bar", "/root", "/tmp"]


def test_user_and_groups(rt: Runtime, bundle: Path) -> None:
    set_config(bundle, "u1", ["sh", "-c", "id -u; id -g; id -G; umask"])
    edit_config(bundle, lambda c: c["process"].__setitem__(
        "user", {"uid": 1000, "gid": 1001, "additionalGids": [2000, 2001], "umask": 63}))
    p = rt("run", "-b", str(bundle), "u1")
    assert p.stdout.decode().split() == ["1000", "1001", "1001", "2000", "2001", "0077"]


def test_user_namespace_with_mappings(rt: Runtime, bundle: Path) -> None:
    set_config(bundle, "n1", ["sh", "-c", "cat /proc/self/uid_map; id -u"])

    def userns(c: dict) -> None:  # type: ignore[type-arg]
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        c["root"]["readonly"] = False
        c["mounts"] = [m for m in c["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup")]

    edit_config(bundle, userns)
    # The mapped root (host uid 100000) must be able to reach the rootfs to bind it.
    for d in (bundle, *bundle.parents):
        if str(d).startswith("/tmp/"):
            d.chmod(d.stat().st_mode | 0o711)
    p = rt("run", "-b", str(bundle), "n1", check=False)
    assert p.returncode == 0, p.stderr
    words = p.stdout.decode().split()
    assert words == ["0", "100000", "65536", "0"]


def test_join_existing_namespace_by_path(rt: Runtime, bundle: Path, tmp_path: Path) -> None:
    set_config(bundle, "j1")
    rt.create("j1", bundle)
    rt("start", "j1")
    pid1 = rt.state("j1")["pid"]
    b2 = tmp_path / "b2"
    import shutil

    shutil.copytree(bundle, b2, symlinks=True)
    set_config(b2, "j2")
    edit_config(b2, lambda c: c["linux"].__setitem__("namespaces", [
        {"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "cgroup"},
        {"type": "network", "path": f"/proc/{pid1}/ns/net"}]))
    rt.create("j2", b2)
    pid2 = rt.state("j2")["pid"]
    assert ns_inode(pid2, "net") == ns_inode(pid1, "net")
    assert ns_inode(pid2, "uts") != ns_inode(pid1, "uts")


def test_time_namespace_offsets(rt: Runtime, bundle: Path) -> None:
    set_config(bundle, "t1", ["cat", "/proc/uptime"])

    def timens(c: dict) -> None:  # type: ignore[type-arg]
        c["linux"]["namespaces"].append({"type": "time"})
        c["linux"]["timeOffsets"] = {"boottime": {"secs": 86400 * 365, "nanosecs": 0}}

    edit_config(bundle, timens)
    p = rt("run", "-b", str(bundle), "t1")
    assert float(p.stdout.split()[0]) > 86400 * 365


def test_log_json_one_line_per_failure(rt: Runtime, rbundle: Path) -> None:
    import json

    logf = rt.tmp / "log.json"
    p = rt("--log", str(logf), "--log-format", "json", "start", "nope", check=False)
    assert p.returncode == 1
    assert p.stderr.decode() == "hako-runtime: container nope does not exist\n"
    lines = logf.read_text().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert rec["level"] == "error" and "nope does not exist" in rec["msg"]
    assert rec["time"].endswith("Z") and "T" in rec["time"]


def test_root_created_if_missing(rt: Runtime) -> None:
    assert not rt.root.exists()
    assert rt("list").returncode == 0


def test_hooks_get_state_on_stdin(rt: Runtime, rbundle: Path) -> None:
    import json

    out = rt.tmp / "hooks"
    script = rt.tmp / "hook.sh"
    script.write_text(f"#!/bin/sh\necho \"$1 $(cat)\" >> {out}\n")
    script.chmod(0o755)
    noread = rt.tmp / "noread.sh"
    noread.write_text("#!/bin/sh\nexit 0\n")
    noread.chmod(0o755)

    # startContainer runs in the container after pivot_root: its path is in the rootfs
    (rbundle / "rootfs/bin/start-hook").write_text("#!/bin/sh\necho \"$1 $(cat)\" > /tmp/start-hook.out\n")
    (rbundle / "rootfs/bin/start-hook").chmod(0o755)

    def hooks(c: dict) -> None:  # type: ignore[type-arg]
        c["hooks"] = {
            stage: [{"path": str(script), "args": ["hook.sh", stage]}, {"path": str(noread)}]
            for stage in ("prestart", "createRuntime", "createContainer", "poststart", "poststop")
        }
        c["hooks"]["startContainer"] = [{"path": "/bin/start-hook", "args": ["start-hook", "startContainer"]}]
        c["root"]["readonly"] = False

    edit_config(rbundle, hooks)
    rt.create("c1", rbundle)
    pid = rt.state("c1")["pid"]
    rt("start", "c1")
    rt("delete", "--force", "c1")
    lines = out.read_text().splitlines()
    stages = [line.split(" ", 1)[0] for line in lines]
    assert stages == ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]
    states = [json.loads(line.split(" ", 1)[1]) for line in lines]
    assert all(s["id"] == "c1" and s["bundle"] == str(rbundle) for s in states)
    assert [s["status"] for s in states] == ["creating", "creating", "creating", "running", "stopped"]
    assert states[0]["pid"] == pid and states[3]["pid"] == pid
    start_line = (rbundle / "rootfs/tmp/start-hook.out").read_text().split(" ", 1)
    assert start_line[0] == "startContainer" and json.loads(start_line[1])["status"] == "created"


def test_failing_hook_fails_create_and_cleans_up(rt: Runtime, rbundle: Path) -> None:
    edit_config(rbundle, lambda c: c.__setitem__("hooks", {"createRuntime": [{"path": "/bin/false"}]}))
    p = rt.create("c1", rbundle, check=False)
    assert p.returncode == 1 and b"createRuntime" in p.stderr
    assert rt.ids() == [] and cgroup_dirs(cg_path("c1")) == []


def test_failing_poststart_and_poststop_hooks_warn_and_the_next_ones_run(rt: Runtime, rbundle: Path) -> None:
    import json

    out = rt.tmp / "after-fail.out"
    script = rt.tmp / "record.sh"
    script.write_text(f"#!/bin/sh\necho \"$1 $(cat)\" >> {out}\n")
    script.chmod(0o755)

    def hooks(c: dict) -> None:  # type: ignore[type-arg]
        c["process"]["args"] = ["true"]
        c["hooks"] = {
            stage: [{"path": "/bin/false"}, {"path": str(script), "args": ["record.sh", stage]}]
            for stage in ("poststart", "poststop")
        }

    edit_config(rbundle, hooks)
    rt.create("c1", rbundle)
    pid = rt.state("c1")["pid"]
    assert rt("start", "c1").returncode == 0
    assert rt("delete", "--force", "c1").returncode == 0
    lines = out.read_text().splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["poststart", "poststop"]
    # poststart sees the state as at start, even when "true" has exited already
    poststart = json.loads(lines[0].split(" ", 1)[1])
    assert poststart["status"] == "running" and poststart["pid"] == pid


def test_cgroup_namespace_is_rooted_at_the_container_cgroup(rt: Runtime, bundle: Path) -> None:
    set_config(bundle, "g1", ["cat", "/proc/self/cgroup"])
    p = rt("run", "-b", str(bundle), "g1")
    lines = p.stdout.decode().split()
    # every hierarchy's path is "/" inside: the namespace was created after joining the cgroup
    assert lines and all(line.rsplit(":", 1)[1] == "/" for line in lines), lines


def test_run_forwards_signals_and_exits_with_container_status(rt: Runtime, bundle: Path) -> None:
    import subprocess

    from tests.fixtures_runtime import RUNTIME

    set_config(bundle, "f1", ["sh", "-c", "trap 'echo got-term; exit 42' TERM; echo ready; "
                                        "while true; do sleep 0.05; done"])
    out = open(rt.tmp / "f1.out", "wb")  # noqa: SIM115
    p = subprocess.Popen([RUNTIME, "--root", str(rt.root), "run", "-b", str(bundle), "f1"],
                         stdout=out, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: "ready" in rt.output("f1"))
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 42
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        out.close()
    assert "got-term" in rt.output("f1")
    assert rt.ids() == [] and cgroup_dirs(cg_path("f1")) == []


def test_join_user_and_network_namespaces_of_another_container(rt: Runtime, bundle: Path, tmp_path: Path) -> None:
    import shutil

    def userns(c: dict) -> None:  # type: ignore[type-arg]
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        c["root"]["readonly"] = False
        c["mounts"] = [m for m in c["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup")]

    set_config(bundle, "ua")
    edit_config(bundle, userns)
    for d in (bundle, *bundle.parents):
        if str(d).startswith("/tmp/"):
            d.chmod(d.stat().st_mode | 0o711)
    rt.create("ua", bundle)
    pa = rt.state("ua")["pid"]
    b2 = tmp_path / "b2"
    shutil.copytree(bundle, b2, symlinks=True)
    b2.chmod(0o755)
    set_config(b2, "ub")

    def join(c: dict) -> None:  # type: ignore[type-arg]
        userns(c)
        c["linux"].pop("uidMappings")
        c["linux"].pop("gidMappings")
        c["linux"]["namespaces"] = [
            {"type": "user", "path": f"/proc/{pa}/ns/user"}, {"type": "network", "path": f"/proc/{pa}/ns/net"},
            {"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}]

    edit_config(b2, join)
    rt.create("ub", b2)
    pb = rt.state("ub")["pid"]
    assert ns_inode(pb, "user") == ns_inode(pa, "user") != ns_inode("self", "user")
    assert ns_inode(pb, "net") == ns_inode(pa, "net")
    assert ns_inode(pb, "mnt") != ns_inode(pa, "mnt")
    assert proc_status(pb)["Uid"].split()[0] == "100000"  # container root, mapped


def test_personality_linux32(rt: Runtime, bundle: Path) -> None:
    set_config(bundle, "x32", ["uname", "-m"])
    edit_config(bundle, lambda c: c["linux"].__setitem__("personality", {"domain": "LINUX32"}))
    p = rt("run", "-b", str(bundle), "x32")
    assert p.stdout.decode().strip() in ("i686", "armv8l", "armv7l")
