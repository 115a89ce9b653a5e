"""The runc command-line contract podman/conmon and containerd's shim rely on (RUNTIME-CLI.md).

Each test drives a runtime binary exactly as a client does (argv shapes, scrubbed environment,
files as stdio, console socket, leaked fds, signal state) and checks what the kernel shows.
Parametrized over runc (the reference, so the tests themselves are checked) and hako-runtime,
which is skipped with a reason while it cannot run or lacks the subcommand.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hako.testing.busybox import make_bundle
from hako.testing.config import default_config, write_config
from hako.testing.console import ConsoleSocket, pty_number, read_until
from hako.testing.runtimes import (
    ENV_CREATE,
    RFC3339,
    Result,
    RuntimeBinary,
    cgroup_path,
    hako_runtime_path,
    pid_alive,
    proc_status,
    remove_test_cgroups,
    wait_until,
)

RUNC = Path("/usr/sbin/runc")
CG_PARENT = f"hako-test-clients-{os.getpid()}"
# Capabilities podman gives an exec'd process (samples/podman-exec-process.json).
PODMAN_CAPS = [
    "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
    "CAP_SETUID", "CAP_SYS_CHROOT",
]  # fmt: skip
# Gaps of hako-runtime against the client contract, known and reported; xfail (not strict) so
# a fix shows up as XPASS. Keyed by test name, or "name[param]" for one parametrization.
KNOWN_HAKO_GAPS: dict[str, str] = {}
_MISSING = re.compile(r"not implemented|invalid choice|unknown command|no such command", re.I)


def _binary(name: str) -> Path:
    if name == "runc":
        if not RUNC.exists():
            pytest.skip(f"{RUNC} not installed")
        return RUNC
    path = hako_runtime_path()
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} missing: run scripts/setup")
    probe = subprocess.run([str(path), "--version"], capture_output=True, text=True, env={}, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"hako-runtime --version fails (rc={probe.returncode}): {probe.stderr.strip()[:200]}")
    return path


def _probe_lifecycle(path: Path, tmp: Path, rootfs_template: Path) -> str | None:
    """Why ``path`` cannot yet run a container that stays up (None when it can)."""
    cid = f"probe{secrets.token_hex(3)}"
    bundle = make_bundle(tmp / cid, rootfs_template=rootfs_template)
    cfg = default_config(["sleep", "1000"])
    cfg["linux"]["cgroupsPath"] = f"/{CG_PARENT}/{cid}"
    write_config(bundle, cfg)
    rt = RuntimeBinary(path.name, path, tmp / "probe-root")
    pid_file = tmp / "probe.pid"
    try:
        for args in (["create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid], ["start", cid]):
            res = rt.run(*args, env=ENV_CREATE, timeout=20)
            if res.returncode != 0:
                return f"`{args[0]}` fails: {res.stderr.strip()[:300]}"
        pid = int(pid_file.read_text())
        if not wait_until(lambda: _cmdline(pid).startswith(b"sleep"), timeout=5):
            return f"`sleep 1000` is not running after start (init {pid}: {_cmdline(pid)!r})"
        return None
    finally:
        rt.run("delete", "--force", cid)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b"<gone>"


@pytest.fixture(scope="module", params=["runc", "hako"])
def runtime_path(request: pytest.FixtureRequest) -> Path:
    return _binary(request.param)


@pytest.fixture(scope="module")
def container_runtime(
    runtime_path: Path, tmp_path_factory: pytest.TempPathFactory, busybox_rootfs: Path
) -> Path:
    """The runtime, once it has shown it can keep a container running (hako-runtime is young)."""
    if runtime_path != RUNC:
        why = _probe_lifecycle(runtime_path, tmp_path_factory.mktemp("probe"), busybox_rootfs)
        if why is not None:
            pytest.skip(f"hako-runtime cannot run a container yet: {why}")
    return runtime_path


@pytest.fixture(scope="module", autouse=True)
def _cgroup_parent() -> Iterator[None]:
    yield
    remove_test_cgroups(CG_PARENT)


class Lab:
    """One test's runtime (private --root), bundles and containers; tears everything down."""

    def __init__(self, runtime_path: Path, tmp: Path, first_bundle: Path, rootfs_template: Path) -> None:
        self.tmp = tmp
        self.rt = RuntimeBinary(runtime_path.name, runtime_path, tmp / "state-root")
        self._first_bundle: Path | None = first_bundle
        self._template = rootfs_template
        self.ids: list[str] = []

    @property
    def is_hako(self) -> bool:
        return self.rt.path != RUNC

    def call(self, *args: str, **kw: Any) -> Result:
        """Run the runtime; skip (hako only) when it reports the subcommand as not there yet."""
        res = self.rt.run(*args, **kw)
        if self.is_hako and res.returncode != 0 and _MISSING.search(res.stderr):
            pytest.skip(f"hako-runtime lacks `{args[0]}`: {res.stderr.strip()[:200]}")
        return res

    def bundle(
        self, args: list[str], *, terminal: bool = False, **linux: Any
    ) -> tuple[str, Path, dict[str, Any]]:
        """A new container id and bundle: writable rootfs (podman's default), own cgroup."""
        cid = f"hk{secrets.token_hex(4)}"
        if self._first_bundle is not None:
            path, self._first_bundle = self._first_bundle, None
        else:
            path = make_bundle(self.tmp / f"bundle-{cid}", rootfs_template=self._template)
        cfg = default_config(args)
        cfg["root"]["readonly"] = False
        cfg["process"]["terminal"] = terminal
        cfg["linux"]["cgroupsPath"] = f"/{CG_PARENT}/{cid}"
        cfg["linux"].update(linux)
        write_config(path, cfg)
        return cid, path, cfg

    def create(
        self,
        cid: str,
        bundle: Path,
        *flags: str,
        log: Path | None = None,
        out: Path | None = None,
        check: bool = True,
        **kw: Any,
    ) -> Result:
        """conmon's create: --log-format=json --log L create --bundle B --pid-file F [flags] ID."""
        self.ids.append(cid)
        log = log or self.tmp / f"{cid}.log"
        pid_file = self.tmp / f"{cid}.pid"
        res = self.call(
            "--log-format=json", "--log", str(log), "create", "--bundle", str(bundle),
            "--pid-file", str(pid_file), *flags, cid,
            env=kw.pop("env", ENV_CREATE), out=out, **kw,
        )  # fmt: skip
        if check:
            assert res.returncode == 0, f"{res}\nlog: {_read(log)}"
        return res

    def pid(self, cid: str) -> int:
        return int((self.tmp / f"{cid}.pid").read_text())

    def start(self, cid: str) -> None:
        res = self.call("start", cid, env=ENV_CREATE)
        assert res.returncode == 0, str(res)

    def run_detached(self, args: list[str], **linux: Any) -> tuple[str, Path, int]:
        cid, bundle, _ = self.bundle(args, **linux)
        self.create(cid, bundle, out=self.tmp / f"{cid}.out")
        self.start(cid)
        return cid, bundle, self.pid(cid)

    def state(self, cid: str) -> dict[str, Any]:
        res = self.call("state", cid)
        assert res.returncode == 0, str(res)
        data: dict[str, Any] = res.json()
        return data

    def wait_stopped(self, cid: str) -> None:
        pid = self.pid(cid)
        assert wait_until(lambda: not pid_alive(pid)), f"{cid}: init {pid} still alive"

    def teardown(self) -> None:
        for cid in self.ids:
            # Cgroups a runtime leaves behind go with the parent at module teardown.
            self.rt.run("delete", "--force", cid)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return "<no file>"


def _mark_known_gap(request: pytest.FixtureRequest, runtime: Path) -> None:
    if runtime == RUNC:
        return
    node = request.node
    name = getattr(node, "originalname", node.name)
    # node.name is e.g. "test_x[hako-not-executable]": the id without the runtime part
    param_id = node.name[len(name) :].strip("[]").split("-", 1)[1:] if "[" in node.name else []
    for key in (name, *(f"{name}[{p}]" for p in param_id)):
        if key in KNOWN_HAKO_GAPS:
            node.add_marker(pytest.mark.xfail(reason=KNOWN_HAKO_GAPS[key], strict=False))


@pytest.fixture
def lab(
    request: pytest.FixtureRequest,
    container_runtime: Path,
    tmp_path: Path,
    bundle: Path,
    busybox_rootfs: Path,
) -> Iterator[Lab]:
    _mark_known_gap(request, container_runtime)
    lab = Lab(container_runtime, tmp_path, bundle, busybox_rootfs)
    try:
        yield lab
    finally:
        lab.teardown()


@pytest.fixture
def bare_lab(runtime_path: Path, tmp_path: Path, bundle: Path, busybox_rootfs: Path) -> Iterator[Lab]:
    """For calls that need no running container (unknown ids, features)."""
    lab = Lab(runtime_path, tmp_path, bundle, busybox_rootfs)
    try:
        yield lab
    finally:
        lab.teardown()


def _exec_process(args: list[str], *, terminal: bool = False, uid: int = 0, cwd: str = "/") -> dict[str, Any]:
    """A process.json shaped like podman's (samples/podman-exec-process.json)."""
    return {
        "terminal": terminal,
        "user": {"uid": uid, "gid": uid},
        "args": args,
        "env": ["container=podman", "PATH=/bin:/usr/bin:/sbin:/usr/sbin", "TERM=xterm", "FOO=bar"],
        "cwd": cwd,
        "capabilities": {k: PODMAN_CAPS for k in ("bounding", "effective", "permitted")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    }


def _error_line(log: Path) -> dict[str, Any]:
    lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
    assert len(lines) == 1, f"podman reads the whole --log as ONE JSON object; got {lines}"
    entry: dict[str, Any] = json.loads(lines[0])
    assert entry.get("level") == "error", entry
    assert isinstance(entry.get("msg"), str) and entry["msg"], entry
    assert RFC3339.match(entry.get("time", "")), f"time not RFC 3339 (the shim rejects it): {entry}"
    return entry


# ---------------------------------------------------------------- global flags, version


def test_version(runtime_path: Path) -> None:
    res = RuntimeBinary(runtime_path.name, runtime_path).run("--version")
    assert res.returncode == 0, str(res)
    assert "version" in res.stdout.splitlines()[0].lower(), res.stdout
    assert re.search(r"^spec: 1\.\d", res.stdout, re.M), f"no 'spec: 1.x' line: {res.stdout!r}"


def test_features_json(bare_lab: Lab) -> None:
    res = bare_lab.call("features")
    if res.returncode != 0:
        pytest.skip(f"{bare_lab.rt.name} has no `features`: {res.stderr.strip()[:120]}")
    data = res.json()
    for key in ("ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux"):
        assert key in data, f"features lacks {key}: {sorted(data)}"
    assert "namespaces" in data["linux"] and "capabilities" in data["linux"], data["linux"]


# ---------------------------------------------------------------- create / start / state


def test_create_conmon_style_blocks_before_exec(lab: Lab) -> None:
    cid, bundle, _ = lab.bundle(["sh", "-c", "touch /ran; exec sleep 1000"])
    out = lab.tmp / "ctr.out"
    log = lab.tmp / "oci-log"
    pid_file = lab.tmp / "pidfile"
    lab.ids.append(cid)
    res = lab.call(
        "--log-format=json", "--log", str(log), "create", f"--bundle={bundle}", f"--pid-file={pid_file}",
        "--no-pivot", "--no-new-keyring", cid, env=ENV_CREATE, out=out, ignore_sigpipe=True,
    )  # fmt: skip
    assert res.returncode == 0, f"{res}\nlog: {_read(log)}"
    assert res.stdout == "", "create must print nothing on stdout: it is the container's log pipe"
    raw = pid_file.read_text()
    assert raw.strip().isdigit(), f"pid file must hold a decimal pid: {raw!r}"
    pid = int(raw)
    assert pid_alive(pid), f"init {pid} not alive after create"
    assert not (bundle / "rootfs/ran").exists(), "user process ran before start"
    state = lab.state(cid)
    assert state["status"] == "created" and state["pid"] == pid, state
    assert not log.exists() or log.read_text().strip() == "", f"no log lines on success: {_read(log)}"

    lab.start(cid)
    assert wait_until(lambda: (bundle / "rootfs/ran").exists()), "user process never ran after start"
    assert lab.state(cid)["status"] == "running"
    again = lab.call("start", cid, env=ENV_CREATE)
    assert again.returncode == 1, f"start of a running container must fail: {again}"


def test_create_bundle_defaults_to_cwd(lab: Lab) -> None:
    cid, bundle, _ = lab.bundle(["sleep", "1000"])
    lab.ids.append(cid)
    res = lab.call("create", "--pid-file", str(lab.tmp / f"{cid}.pid"), cid, env=ENV_CREATE, cwd=bundle)
    assert res.returncode == 0, str(res)
    assert lab.state(cid)["bundle"] == str(bundle)


def test_start_returns_while_container_runs(lab: Lab) -> None:
    cid, bundle, pid = lab.run_detached(["sleep", "1000"])
    assert pid_alive(pid)
    assert _cmdline(pid).split(b"\0")[0] in (b"sleep", b"/bin/sleep")


def test_state_fields(lab: Lab) -> None:
    cid, bundle, _ = lab.bundle(["sleep", "1000"])
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["annotations"] = {"org.hako.test": "clients"}
    write_config(bundle, cfg)
    lab.create(cid, bundle)
    state = lab.state(cid)
    assert state["ociVersion"].startswith("1."), state
    assert state["id"] == cid
    assert state["pid"] == lab.pid(cid)
    assert state["status"] == "created"
    assert state["bundle"] == str(bundle)
    assert Path(state["rootfs"]) == bundle / "rootfs", state
    assert RFC3339.match(state["created"]), state["created"]
    assert state.get("annotations") == {"org.hako.test": "clients"}, state
    lab.start(cid)
    assert lab.state(cid)["status"] == "running"
    assert lab.call("kill", cid, "9").returncode == 0
    lab.wait_stopped(cid)
    stopped = lab.state(cid)
    assert stopped["status"] == "stopped", stopped
    assert stopped["pid"] == 0, f"pid must be 0 once stopped: {stopped}"


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["/no/such/binary"], ("no such file or directory",)),
        (["notacommand"], ("executable file not found in $PATH", "no such file or directory")),
        (["/etc/passwd"], ("permission denied",)),
    ],
    ids=["absolute", "path-lookup", "not-executable"],
)
def test_create_failure_one_json_error_line(lab: Lab, args: list[str], expect: tuple[str, ...]) -> None:
    cid, bundle, _ = lab.bundle(args)
    log = lab.tmp / "oci-log"
    # Clients learn of a bad executable from create (runc and crun look it up before returning):
    # podman turns that create failure into exit 127/126, the shim into "OCI runtime create failed".
    res = lab.create(cid, bundle, log=log, check=False)
    assert res.returncode == 1, str(res)
    entry = _error_line(log)
    assert any(e.lower() in entry["msg"].lower() for e in expect), (
        f"podman maps these texts to 127/126: {entry}"
    )
    assert res.stderr.strip(), "the bare message also goes to stderr"
    assert lab.call("delete", "--force", cid).returncode == 0


def test_failure_without_log_goes_to_stderr(bare_lab: Lab) -> None:
    res = bare_lab.call("state", "no-such-ctr")
    assert res.returncode == 1 and "does not exist" in res.stderr, str(res)


# ---------------------------------------------------------------- console socket


def test_create_terminal_console_socket(lab: Lab) -> None:
    cid, bundle, _ = lab.bundle(["sh", "-c", "tty; echo ready; read l; echo got-$l; exit 4"], terminal=True)
    with ConsoleSocket(lab.tmp) as console:
        res = lab.create(cid, bundle, "--console-socket", str(console.path), out=Path(os.devnull))
        assert res.returncode == 0
        msg = console.receive(timeout=5)
        assert not msg.ctrunc and len(msg.fds) == 1, f"exactly one fd (conmon checks cmsg_len): {msg}"
        assert msg.payload, "conmon expects a non-empty payload"
        assert not console.pending(), "runtime connected to the console socket twice"
        master = msg.master
        pty_number(master)  # raises unless this is a pty master
        lab.start(cid)
        got = read_until(master, b"ready")
        assert re.search(rb"/dev/pts/\d+", got), f"the process's stdin is not the pty: {got!r}"
        os.write(master, b"42\n")
        got = read_until(master, b"got-42")
        assert b"got-42" in got, f"input typed into the master did not reach the process: {got!r}"
        lab.wait_stopped(cid)


def test_exec_tty_console_socket(lab: Lab) -> None:
    cid, _, _ = lab.run_detached(["sleep", "1000"])
    proc = lab.tmp / "exec-tty.json"
    script = "tty; test -t 0 && echo stdin-is-tty; read l; echo got-$l"
    proc.write_text(json.dumps(_exec_process(["sh", "-c", script], terminal=True)))
    pid_file = lab.tmp / "exec.pid"
    with ConsoleSocket(lab.tmp) as console:
        # podman/conmon's flag order
        res = lab.call(
            "--log-format=json", "--log", str(lab.tmp / "exec-log"), "exec", "--pid-file", str(pid_file),
            "--process", str(proc), "--detach", "--tty", "--console-socket", str(console.path), cid,
            env=ENV_CREATE, out=Path(os.devnull), timeout=15,
        )  # fmt: skip
        assert res.returncode == 0, str(res)
        msg = console.receive(timeout=5)
        assert not msg.ctrunc and len(msg.fds) == 1, msg
        master = msg.master
        pty_number(master)
        got = read_until(master, b"stdin-is-tty")
        assert b"stdin-is-tty" in got and b"/dev/pts/" in got, got
        exec_pid = int(pid_file.read_text())
        os.write(master, b"42\n")
        assert b"got-42" in read_until(master, b"got-42")
        assert wait_until(lambda: not pid_alive(exec_pid))


# ---------------------------------------------------------------- exec


def test_exec_detach_pid_file_and_process_spec(lab: Lab) -> None:
    cid, _, init_pid = lab.run_detached(["sleep", "1000"])
    proc = lab.tmp / "process.json"
    proc.write_text(json.dumps(_exec_process(["sh", "-c", "exec sleep 999"], uid=1000, cwd="/tmp")))
    pid_file = lab.tmp / "exec.pid"
    # containerd shim's flag order
    res = lab.call(
        "--log", str(lab.tmp / "log.json"), "--log-format", "json", "exec", "--process", str(proc),
        "--detach", "--pid-file", str(pid_file), cid, env=ENV_CREATE, out=lab.tmp / "exec.out", timeout=15,
    )  # fmt: skip
    assert res.returncode == 0, str(res)
    pid = int(pid_file.read_text())
    assert pid_alive(pid), "exec --detach must return while the process runs"
    assert wait_until(lambda: _cmdline(pid) == b"sleep\x00999\x00")
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{init_pid}/ns/pid")
    assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink(f"/proc/{init_pid}/ns/mnt")
    status = proc_status(pid)
    assert status["Uid"].split()[:2] == ["1000", "1000"], status["Uid"]
    assert os.readlink(f"/proc/{pid}/cwd").endswith("/tmp")
    assert b"FOO=bar" in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    ps = lab.call("ps", "--format", "json", cid)
    assert ps.returncode == 0, str(ps)
    assert {init_pid, pid} <= set(ps.json()), ps.stdout


def test_exec_foreground_exit_status(lab: Lab) -> None:
    """CRI-O's ExecSync: exec without --detach waits and exits with the process's status."""
    cid, _, _ = lab.run_detached(["sleep", "1000"])
    proc = lab.tmp / "process.json"
    proc.write_text(json.dumps(_exec_process(["sh", "-c", "echo out-ok; exit 7"])))
    out = lab.tmp / "fg.out"
    res = lab.call("exec", "--process", str(proc), cid, env=ENV_CREATE, out=out, timeout=15)
    assert res.returncode == 7, str(res)
    assert "out-ok" in out.read_text()


# ---------------------------------------------------------------- kill / ps / delete


@pytest.mark.parametrize("sig", ["15", "TERM", "SIGTERM"])
def test_kill_signal_forms(lab: Lab, sig: str) -> None:
    cid, bundle, pid = lab.run_detached(
        ["sh", "-c", "trap 'echo got > /got; exit 0' TERM; touch /ready; while :; do sleep 0.05; done"]
    )
    assert wait_until(lambda: (bundle / "rootfs/ready").exists())
    res = lab.call("kill", cid, sig)
    assert res.returncode == 0, str(res)
    assert wait_until(lambda: (bundle / "rootfs/got").exists()), f"kill {sig} did not reach the trap"
    lab.wait_stopped(cid)


def test_kill_stopped_container_not_running(lab: Lab) -> None:
    cid, _, _ = lab.run_detached(["true"])
    lab.wait_stopped(cid)
    log = lab.tmp / "kill-log"
    res = lab.call("--log-format=json", "--log", str(log), "kill", cid, "9")
    assert res.returncode == 1, str(res)
    assert "container not running" in (res.stderr + _read(log)).lower(), str(res)


@pytest.mark.parametrize("own_pidns", [True, False], ids=["pidns", "host-pidns"])
def test_kill_all(lab: Lab, own_pidns: bool) -> None:
    namespaces = default_config()["linux"]["namespaces"]
    if not own_pidns:
        namespaces = [ns for ns in namespaces if ns["type"] != "pid"]
    cid, bundle, pid = lab.run_detached(
        ["sh", "-c", "sleep 1000 & sleep 1000 & touch /ready; wait"], namespaces=namespaces
    )
    assert wait_until(lambda: (bundle / "rootfs/ready").exists())
    ps = lab.call("ps", "--format", "json", cid)
    pids = ps.json()
    assert pid in pids and len(pids) >= 3, ps.stdout
    res = lab.call("kill", "--all", cid, "9")
    assert res.returncode == 0, str(res)
    assert wait_until(lambda: not any(pid_alive(p) for p in pids)), "kill --all left processes"
    lab.wait_stopped(cid)
    assert lab.state(cid)["status"] == "stopped"


def test_ps_json_when_stopped(lab: Lab) -> None:
    cid, _, _ = lab.run_detached(["true"])
    lab.wait_stopped(cid)
    res = lab.call("ps", "--format", "json", cid)
    assert res.returncode == 0, str(res)
    assert json.loads(res.stdout) in (None, []), f"stopped container: null (runc) or []: {res.stdout!r}"


def test_delete_force_of_shared_pidns_kills_everything(lab: Lab) -> None:
    """podman --pid host + rm -f: delete --force must kill every process in the cgroup."""
    namespaces = [ns for ns in default_config()["linux"]["namespaces"] if ns["type"] != "pid"]
    cid, bundle, pid = lab.run_detached(
        ["sh", "-c", "sleep 1000 & touch /ready; wait"], namespaces=namespaces
    )
    assert wait_until(lambda: (bundle / "rootfs/ready").exists())
    pids = lab.call("ps", "--format", "json", cid).json()
    res = lab.call("delete", "--force", cid)
    assert res.returncode == 0, str(res)
    assert wait_until(lambda: not any(pid_alive(p) for p in pids)), "processes survived delete --force"


@pytest.mark.parametrize("sub", [["state"], ["delete"], ["kill"], ["pause"], ["resume"]])
def test_unknown_id_does_not_exist(bare_lab: Lab, sub: list[str]) -> None:
    args = [*sub, "hk-no-such-container"] + (["9"] if sub == ["kill"] else [])
    res = bare_lab.call(*args)
    assert res.returncode == 1, str(res)
    assert "does not exist" in res.stderr, str(res)


def test_delete_force_unknown_is_success(bare_lab: Lab) -> None:
    res = bare_lab.call("delete", "--force", "hk-no-such-container")
    assert res.returncode == 0, f"containerd runs this after every task delete: {res}"


def test_delete_running_needs_force(lab: Lab) -> None:
    cid, _, pid = lab.run_detached(["sleep", "1000"])
    res = lab.call("delete", cid)
    assert res.returncode == 1, str(res)
    assert pid_alive(pid) and lab.state(cid)["status"] == "running"
    res = lab.call("delete", "--force", cid)
    assert res.returncode == 0, str(res)
    assert wait_until(lambda: not pid_alive(pid))
    gone = lab.call("state", cid)
    assert gone.returncode == 1 and "does not exist" in gone.stderr, str(gone)
    for ctrl in ("memory", "pids", "freezer"):
        assert not cgroup_path(ctrl, f"{CG_PARENT}/{cid}").exists(), f"{ctrl} cgroup left after delete"


def test_delete_stopped_then_recreate_same_id(lab: Lab) -> None:
    """podman restart / the shim's task delete: delete, then create the same ID again."""
    cid, bundle, _ = lab.run_detached(["true"])
    lab.wait_stopped(cid)
    res = lab.call("delete", cid)
    assert res.returncode == 0, str(res)
    lab.create(cid, bundle)
    assert lab.state(cid)["status"] == "created"


# ---------------------------------------------------------------- fds and signal state


def test_preserve_fds_passes_fd3(lab: Lab) -> None:
    cid, bundle, _ = lab.bundle(["sh", "-c", "cat <&3"])
    src = lab.tmp / "fdfile"
    src.write_text("fd-passed-ok\n")
    out = lab.tmp / "ctr.out"
    fd = os.open(src, os.O_RDONLY)
    try:
        lab.create(cid, bundle, "--preserve-fds", "1", out=out, fds={3: fd})
    finally:
        os.close(fd)
    lab.start(cid)
    lab.wait_stopped(cid)
    assert "fd-passed-ok" in out.read_text()


def test_leaked_fds_do_not_reach_container(lab: Lab) -> None:
    script = "for n in 3 4 5 6; do test -e /proc/self/fd/$n && echo leaked-$n; done; echo checked"
    cid, bundle, _ = lab.bundle(["sh", "-c", script])
    out = lab.tmp / "ctr.out"
    r, w = os.pipe()  # like the shim's listening socket on fd 3
    try:
        lab.create(cid, bundle, out=out, fds={3: r, 5: w})
        lab.call("start", cid, env=ENV_CREATE, fds={3: r, 5: w})
    finally:
        os.close(r)
        os.close(w)
    lab.wait_stopped(cid)
    text = out.read_text()
    assert "checked" in text and "leaked" not in text, text


def test_signal_state_is_reset_in_container(lab: Lab) -> None:
    """conmon (create/exec) ignores SIGPIPE; podman (start) also blocks SIGUSR1: none of it may reach
    the container. (A mask blocked at create is not reset by runc, and conmon's is empty.)"""
    import signal

    cid, bundle, _ = lab.bundle(["sleep", "1000"])
    lab.create(cid, bundle, ignore_sigpipe=True)
    lab.call("start", cid, env=ENV_CREATE, ignore_sigpipe=True, block_signals=[signal.SIGUSR1])
    pid = lab.pid(cid)
    assert wait_until(lambda: _cmdline(pid).startswith(b"sleep"))
    st = proc_status(pid)
    assert int(st["SigIgn"], 16) == 0, f"SigIgn={st['SigIgn']}"
    assert int(st["SigBlk"], 16) == 0, f"SigBlk={st['SigBlk']}"

    proc = lab.tmp / "process.json"
    proc.write_text(json.dumps(_exec_process(["sleep", "999"])))
    pid_file = lab.tmp / "exec.pid"
    res = lab.call(
        "exec", "--process", str(proc), "--detach", "--pid-file", str(pid_file), cid,
        env=ENV_CREATE, ignore_sigpipe=True,
    )  # fmt: skip
    assert res.returncode == 0, str(res)
    epid = int(pid_file.read_text())
    assert wait_until(lambda: _cmdline(epid).startswith(b"sleep"))
    st = proc_status(epid)
    assert int(st["SigIgn"], 16) == 0 and int(st["SigBlk"], 16) == 0, st


_SUBREAPER = textwrap.dedent(
    """
    import ctypes, json, os, subprocess, sys
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER, like conmon and the shim
    argv, tmp, cid = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "XDG_RUNTIME_DIR": ""}
    with open(tmp + "/sr.out", "w") as out:
        subprocess.run(argv + ["create", "--bundle", tmp + "/sr-bundle", "--pid-file", tmp + "/sr.pid", cid],
                       check=True, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env)
        subprocess.run(argv + ["start", cid], check=True, stdout=out, stderr=out, env=env)
        pid = int(open(tmp + "/sr.pid").read())
        _, status = os.waitpid(pid, 0)
        init_rc = os.waitstatus_to_exitcode(status)
        subprocess.run(argv + ["delete", cid], stdout=out, stderr=out, env=env)
    print(json.dumps({"init": init_rc}))
    """
)


def test_init_reparented_to_callers_subreaper(lab: Lab) -> None:
    """conmon/the shim are subreapers and learn the exit code by waiting on the re-parented init."""
    cid, bundle, _ = lab.bundle(["sh", "-c", "exit 3"])
    bundle.rename(lab.tmp / "sr-bundle")
    lab.ids.append(cid)
    proc = subprocess.run(
        [sys.executable, "-c", _SUBREAPER, json.dumps(lab.rt.argv([])), str(lab.tmp), cid],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, f"{proc.stderr}\n{_read(lab.tmp / 'sr.out')}"
    assert json.loads(proc.stdout) == {"init": 3}


# ---------------------------------------------------------------- pause / resume / update


def test_pause_resume(lab: Lab) -> None:
    cid, _, pid = lab.run_detached(["sleep", "1000"])
    freezer = cgroup_path("freezer", f"{CG_PARENT}/{cid}") / "freezer.state"
    assert lab.call("pause", cid).returncode == 0
    assert lab.state(cid)["status"] == "paused"
    assert freezer.read_text().strip() == "FROZEN"
    assert lab.call("resume", cid).returncode == 0
    assert lab.state(cid)["status"] == "running"
    assert freezer.read_text().strip() == "THAWED"


def test_update_resources_stdin_and_file(lab: Lab) -> None:
    cid, _, _ = lab.run_detached(["sleep", "1000"])
    mem = cgroup_path("memory", f"{CG_PARENT}/{cid}") / "memory.limit_in_bytes"
    res = lab.call("update", "--resources", "-", cid, stdin=b'{"memory":{"limit":67108864}}', env=ENV_CREATE)
    assert res.returncode == 0, str(res)
    assert mem.read_text().strip() == "67108864"
    spec = lab.tmp / "resources.json"
    spec.write_text(json.dumps({"cpu": {"quota": 50000, "period": 100000}}))
    res = lab.call("update", f"--resources={spec}", cid, env=ENV_CREATE)
    assert res.returncode == 0, str(res)
    quota = cgroup_path("cpu", f"{CG_PARENT}/{cid}") / "cpu.cfs_quota_us"
    assert quota.read_text().strip() == "50000"


# ---------------------------------------------------------------- --debug (go-runc can pass it)


def test_debug_keeps_log_json_and_times_phases(lab: Lab) -> None:
    cid, bundle, _ = lab.bundle(["sleep", "1000"])
    log = lab.tmp / "debug-log.json"
    lab.ids.append(cid)
    res = lab.call(
        "--debug", "--log", str(log), "--log-format", "json", "create", "--bundle", str(bundle),
        "--pid-file", str(lab.tmp / f"{cid}.pid"), cid, env=ENV_CREATE, out=lab.tmp / "ctr.out",
    )  # fmt: skip
    assert res.returncode == 0, str(res)
    assert res.stdout == "", "debug output must not go to stdout (the container's log pipe)"
    for line in filter(str.strip, _read(log).splitlines()):
        entry = json.loads(line)  # the shim decodes every line
        assert {"level", "msg", "time"} <= set(entry) and RFC3339.match(entry["time"]), entry
    if lab.is_hako:
        assert re.search(r"phase \S+: [\d.]+ ms", res.stderr), f"no phase timings: {res.stderr!r}"


# ---------------------------------------------------------------- less common paths clients take


def test_kill_and_delete_of_created_container(lab: Lab) -> None:
    """A failed start, or rm of a never-started container: signal and delete in state `created`."""
    cid, bundle, _ = lab.bundle(["sleep", "1000"])
    lab.create(cid, bundle)
    pid = lab.pid(cid)
    res = lab.call("kill", cid, "KILL")
    assert res.returncode == 0, str(res)
    assert wait_until(lambda: not pid_alive(pid))
    assert lab.state(cid)["status"] == "stopped"
    cid2, bundle2, _ = lab.bundle(["sleep", "1000"])
    lab.create(cid2, bundle2)
    pid2 = lab.pid(cid2)
    res = lab.call("delete", cid2)
    assert res.returncode == 0, f"runc deletes a created container without --force: {res}"
    assert wait_until(lambda: not pid_alive(pid2))


def test_kill_default_signal_is_term(lab: Lab) -> None:
    cid, bundle, _ = lab.run_detached(
        ["sh", "-c", "trap 'touch /got; exit 0' TERM; touch /ready; while :; do sleep 0.05; done"]
    )
    assert wait_until(lambda: (bundle / "rootfs/ready").exists())
    res = lab.call("kill", cid)
    assert res.returncode == 0, str(res)
    assert wait_until(lambda: (bundle / "rootfs/got").exists()), "kill without a signal must send SIGTERM"


def test_exec_detach_of_a_process_that_exits_at_once(lab: Lab) -> None:
    """`podman exec d1 hostname`: the process may be gone before the runtime writes the pid file."""
    cid, _, _ = lab.run_detached(["sleep", "1000"])
    proc = lab.tmp / "process.json"
    proc.write_text(json.dumps(_exec_process(["true"])))
    pid_file = lab.tmp / "exec.pid"
    res = lab.call(
        "exec", "--process", str(proc), "--detach", "--pid-file", str(pid_file), cid, env=ENV_CREATE
    )
    assert res.returncode == 0, str(res)
    assert pid_file.read_text().strip().isdigit()


def test_parallel_creates_share_one_root(lab: Lab) -> None:
    """podman starts containers in parallel, all in the runtime's one default root."""
    from concurrent.futures import ThreadPoolExecutor

    bundles = [lab.bundle(["sleep", "1000"])[:2] for _ in range(3)]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda cb: lab.create(cb[0], cb[1], check=False), bundles))
    assert all(r.returncode == 0 for r in results), "\n".join(map(str, results))
    listed = lab.call("list", "--format", "json")
    if listed.returncode == 0 and listed.stdout.strip():
        ids = {c["id"] for c in listed.json() or []}
        assert {cid for cid, _ in bundles} <= ids, listed.stdout


# ---------------------------------------------------------------- Kubernetes pod shape (CRI)


@pytest.mark.parametrize("share_pid", [False, True], ids=["own-pidns", "shareProcessNamespace"])
def test_cri_pod_sandbox_and_app_container(lab: Lab, share_pid: bool) -> None:
    """What containerd's CRI plugin asks for a pod: a sandbox holding net/ipc/uts, an app container
    joining them by path under the pod's cgroup, per-container oomScoreAdj, a pod-level sysctl
    and kubelet's bind-mounted /etc/hosts."""
    pod = f"pod{secrets.token_hex(3)}"
    sid, sbundle, scfg = lab.bundle(["sleep", "1000"], sysctl={"net.ipv4.ip_unprivileged_port_start": "0"})
    scfg["linux"]["cgroupsPath"] = f"/{CG_PARENT}/{pod}/{sid}"
    scfg["process"]["oomScoreAdj"] = 100  # kubelet uses -998; lowering needs CAP_SYS_RESOURCE, absent here
    scfg["hostname"] = "pod-host"
    scfg["annotations"] = {"io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": sid}
    write_config(sbundle, scfg)
    lab.create(sid, sbundle, out=lab.tmp / "sandbox.out")
    lab.start(sid)
    spid = lab.pid(sid)

    hosts = lab.tmp / "etc-hosts"
    hosts.write_text("127.0.0.1 localhost\n10.0.0.7 pod-host # kubelet\n")
    script = "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /etc/hosts > /report; hostname >> /report; exec sleep 1000"
    shared = [("network", "net"), ("ipc", "ipc"), ("uts", "uts")] + ([("pid", "pid")] if share_pid else [])
    joined = [{"type": t, "path": f"/proc/{spid}/ns/{f}"} for t, f in shared]
    own = [{"type": "mount"}, {"type": "cgroup"}] + ([] if share_pid else [{"type": "pid"}])
    aid, abundle, acfg = lab.bundle(["sh", "-c", script], namespaces=own + joined)
    acfg["linux"]["cgroupsPath"] = f"/{CG_PARENT}/{pod}/{aid}"
    del acfg["hostname"]  # CRI names only the sandbox; the app shares its uts namespace
    acfg["linux"]["resources"]["memory"] = {"limit": 67108864}
    acfg["process"]["oomScoreAdj"] = 1000
    acfg["mounts"].append(
        {
            "destination": "/etc/hosts",
            "type": "bind",
            "source": str(hosts),
            "options": ["rbind", "rprivate", "rw"],
        }
    )
    acfg["annotations"] = {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": sid,
    }
    write_config(abundle, acfg)
    lab.create(aid, abundle, out=lab.tmp / "app.out")
    lab.start(aid)
    apid = lab.pid(aid)
    assert wait_until(lambda: _cmdline(apid).startswith(b"sleep")), _read(lab.tmp / "app.out")
    for _, ns in shared:
        assert os.readlink(f"/proc/{apid}/ns/{ns}") == os.readlink(f"/proc/{spid}/ns/{ns}"), ns
    if share_pid:
        # the sandbox is pid 1 of the shared namespace; the app sees it
        assert proc_status(apid)["NSpid"].split()[-1] != "1"
    else:
        assert os.readlink(f"/proc/{apid}/ns/pid") != os.readlink(f"/proc/{spid}/ns/pid")
        assert proc_status(apid)["NSpid"].split()[-1] == "1"
    assert Path(f"/proc/{apid}/oom_score_adj").read_text().strip() == "1000"
    assert Path(f"/proc/{spid}/oom_score_adj").read_text().strip() == "100"
    report = (abundle / "rootfs/report").read_text().split("\n")
    assert report[0] == "0", f"pod sysctl not visible in the joined netns: {report}"
    assert "10.0.0.7 pod-host # kubelet" in report and "pod-host" in report, report
    mem = cgroup_path("memory", f"{CG_PARENT}/{pod}/{aid}") / "memory.limit_in_bytes"
    assert mem.read_text().strip() == "67108864"
    # CRI stops the app, then the sandbox; both deletes must leave the pod cgroup removable.
    for cid in (aid, sid):
        assert lab.call("kill", cid, "9").returncode == 0
        lab.wait_stopped(cid)
        assert lab.call("delete", cid).returncode == 0
    assert wait_until(lambda: _rmdir_ok(cgroup_path("memory", f"{CG_PARENT}/{pod}")))


def _rmdir_ok(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _unraisable_rlimit() -> dict[str, Any]:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {"rlimits": [{"type": "RLIMIT_NOFILE", "hard": hard + 1, "soft": hard + 1}]}


@pytest.mark.parametrize(
    "process",
    [_unraisable_rlimit(), {"oomScoreAdj": -999}],
    ids=["rlimit-above-hard", "oom-score-adj-lowered"],
)
def test_process_settings_that_cannot_apply_fail_create(lab: Lab, process: dict[str, Any]) -> None:
    """Without CAP_SYS_RESOURCE (this machine, many CI hosts) these cannot be applied: runc fails
    `create` (podman: "OCI permission denied", exit 126). Failing only at `start` instead makes
    `podman run -d` and the shim report a started container that died with 127."""
    if os.geteuid() == 0 and _has_sys_resource():
        pytest.skip("root has CAP_SYS_RESOURCE here: these settings apply")
    cid, bundle, cfg = lab.bundle(["sh", "-c", "touch /ran"])
    cfg["process"].update(process)
    write_config(bundle, cfg)
    log = lab.tmp / "oci-log"
    res = lab.create(cid, bundle, log=log, check=False)
    assert res.returncode == 1, f"create must fail: {res}"
    entries = [json.loads(ln) for ln in log.read_text().splitlines() if ln.strip()]
    assert any(e.get("level") == "error" for e in entries), entries  # runc adds a "fatal" line first
    assert not (bundle / "rootfs/ran").exists()


def _has_sys_resource() -> bool:
    cap_eff = int(proc_status(os.getpid())["CapEff"], 16)
    return bool(cap_eff & (1 << 24))  # CAP_SYS_RESOURCE


def test_delete_force_of_paused_container(lab: Lab) -> None:
    """podman rm -f / ctr task rm -f on a paused container: a frozen task cannot die until thawed."""
    cid, _, pid = lab.run_detached(["sleep", "1000"])
    assert lab.call("pause", cid).returncode == 0
    res = lab.call("delete", "--force", cid)
    assert res.returncode == 0, str(res)
    assert wait_until(lambda: not pid_alive(pid)), "init still alive (frozen?) after delete --force"
    for ctrl in ("freezer", "memory"):
        assert not cgroup_path(ctrl, f"{CG_PARENT}/{cid}").exists(), f"{ctrl} cgroup left"


def test_exec_with_settings_that_cannot_apply_fails(lab: Lab) -> None:
    """conmon reports an exec failure from the runtime's exit status and --log, not the process's."""
    if _has_sys_resource():
        pytest.skip("root has CAP_SYS_RESOURCE here: the rlimit applies")
    cid, _, _ = lab.run_detached(["sleep", "1000"])
    proc = lab.tmp / "process.json"
    spec = _exec_process(["true"])
    spec.update(_unraisable_rlimit())
    proc.write_text(json.dumps(spec))
    log = lab.tmp / "exec-log"
    res = lab.call(
        "--log-format=json", "--log", str(log), "exec", "--pid-file", str(lab.tmp / "exec.pid"),
        "--process", str(proc), "--detach", cid, env=ENV_CREATE,
    )  # fmt: skip
    assert res.returncode != 0, str(res)  # runc exits 255 here; clients only test for non-zero
    entries = [json.loads(ln) for ln in log.read_text().splitlines() if ln.strip()]
    assert any(e.get("level") == "error" for e in entries), entries
    assert lab.state(cid)["status"] == "running", "a failed exec must not hurt the container"
