"""The container lifecycle: create, start (through a monitor), stop, kill, rm, wait, pause, exec.

Static facts live in SQLite (``EngineDB``); dynamic state in ``<root>/containers/<id>/state.json``,
written by the container's monitor. Whenever state is read, a dead monitor is detected (pid plus
start time) and the runtime is asked for the truth, so a SIGKILLed monitor or a reboot never leaves a
container reported as running when it is not.
"""

from __future__ import annotations

import _socket
import fcntl
import os
import sys
import time

from hako.engine import monitor as mon
from hako.engine.db import EngineDB
from hako.engine.ids import check_name, new_id, random_name
from hako.engine.launch import (  # noqa: F401 - connect_attach, spawn_monitor: re-exported
    PendingMonitor,
    connect_attach,
    prespawn_monitor,
    spawn_monitor,
)
from hako.engine.runtime_client import RuntimeClient, default_runtime, resolve_runtime, runtime_in_process
from hako.engine.signals import parse_signal
from hako.engine.trace import path as trace_path
from hako.engine.trace import phase
from hako.engine.volumes import VolumeStore
from hako.errors import Conflict, HakoError, NotFound
from hako.runtime import fastjson as json  # json's decoder imports re (and enum, functools, ...)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

    from hako.engine.config import CreateOptions

# The config module and socket load only for the commands that need them, and pathlib, typing,
# json, re and contextlib not at all on the way to a container's monitor (``hako run`` start-up):
# paths here are strings; ``root`` and ``cdir()`` give pathlib objects to the other callers.

RUNNING_STATES = ("running", "starting", "restarting", "paused")
ZERO_TIME = "0001-01-01T00:00:00Z"


class ContainerError(HakoError):
    """The container could not be started; ``code`` is Docker's exit code (125, 126 or 127)."""

    def __init__(self, message: str, code: int = 125) -> None:
        super().__init__(message)
        self.code = code


def write_atomic(path: str | Path, data: dict[str, Any]) -> None:
    mon.write_atomic(str(path), data)


def _norm(path: str) -> str:
    """``str(Path(path))`` without pathlib: slashes collapsed, ``.`` parts and a final slash dropped."""
    lead = "//" if path.startswith("//") and not path.startswith("///") else "/" if path.startswith("/") else ""
    return lead + "/".join(c for c in path.split("/") if c and c != ".") or "."


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _touch(path: str) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666))
    os.utime(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _raw_attach_socket(pending: PendingMonitor) -> Any:
    """The pending monitor's attach socket as a bare ``_socket.socket`` (see take_raw_socket)."""
    return pending.take_raw_socket()


class _Locked:
    """``Engine.locked``: flock on the container's lock file for the ``with`` block."""

    def __init__(self, path: str, cid: str) -> None:
        self.path, self.cid, self.fd = path, cid, -1

    def __enter__(self) -> None:
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise NotFound(f"no such container: {self.cid}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *_: object) -> None:
        os.close(self.fd)


class Engine:
    def __init__(self, root: str | Path, runtime: str | None = None, cgroup_parent: str | None = None) -> None:
        self._root = _norm(os.fspath(root))
        self._cdirs = os.path.join(self._root, "engine", "containers")
        self.db = EngineDB(self._root)
        self.volumes = VolumeStore(self._root, self.db)
        self.default_runtime = runtime or default_runtime()
        self.cgroup_parent = cgroup_parent or os.environ.get("HAKO_CGROUP_PARENT") or "/hako"
        self._images: Any = None
        self._pending: PendingMonitor | None = None

    @property
    def root(self) -> Path:
        from pathlib import Path

        return Path(self._root)

    @property
    def images(self) -> Any:
        if self._images is None:
            from hako.engine.images import ImageProvider

            # The engine's database connection serves the image store too (one open, not two).
            self._images = ImageProvider(self._root, conn=self.db.conn)
        return self._images

    def close(self) -> None:
        self.db.close()

    # --- paths and helpers ---------------------------------------------------------------------
    def cdir(self, cid: str) -> Path:
        from pathlib import Path

        return Path(self._cdirs, cid)

    def _dir(self, cid: str, *names: str) -> str:
        """``cdir(cid) / names`` as a string."""
        return os.path.join(self._cdirs, cid, *names)

    def runtime(self, rec: dict[str, Any]) -> RuntimeClient:
        from pathlib import Path

        return RuntimeClient(rec["HostConfig"]["Runtime"], Path(self._runtime_root(rec)))

    def _runtime_root(self, rec: dict[str, Any]) -> str:
        path = rec["HostConfig"]["Runtime"]
        return os.path.join(self._root, "engine", "runtime", os.path.basename(path.rstrip("/")))

    def get(self, ref: str) -> dict[str, Any]:
        return self.db.find_container(ref)

    def locked(self, cid: str) -> _Locked:
        return _Locked(self._dir(cid, "lock"), cid)

    # --- state -----------------------------------------------------------------------------------
    def raw_state(self, cid: str) -> dict[str, Any]:
        try:
            return mon.read_marshal(self._dir(cid, mon.STATE))
        except (OSError, ValueError, EOFError):
            return {"status": "created"}

    def monitor_alive(self, st: dict[str, Any]) -> bool:
        pid = int(st.get("monitor_pid") or 0)
        return pid > 0 and mon.proc_start_time(pid) == st.get("monitor_start")

    def state(self, rec: dict[str, Any]) -> dict[str, Any]:
        """The container's state, corrected when its monitor died."""
        cid = rec["Id"]
        st = self.raw_state(cid)
        if st.get("status") == "running" and os.path.exists(self._dir(cid, "paused")):
            st["status"] = "paused"
        if st.get("status") not in RUNNING_STATES or self.monitor_alive(st):
            return st
        rs = self.runtime(rec).state(cid)
        if rs is not None and rs.get("status") in ("running", "paused", "created"):
            # Still alive, but nobody holds its stdio or will record its exit: say so.
            st["status"] = "paused" if rs["status"] == "paused" else "running"
            st["pid"] = rs.get("pid", st.get("pid", 0))
            st["monitor_lost"] = True
            return st
        with self.locked(cid):
            st = self.raw_state(cid)
            if st.get("status") in RUNNING_STATES and not self.monitor_alive(st):
                self.runtime(rec).delete(cid)
                st.update(status="exited", pid=0, exit_code=st.get("exit_code") or 255, monitor_pid=0,
                          finished_at=mon.now_rfc3339(), error="the container's monitor died")
                write_atomic(self._dir(cid, mon.STATE), st)
        _unlink(self._dir(cid, "paused"))
        return st

    def is_running(self, rec: dict[str, Any]) -> bool:
        return self.state(rec).get("status") in RUNNING_STATES

    # --- create ----------------------------------------------------------------------------------
    def prespawn(self, opts: CreateOptions, attach: bool) -> None:
        """Start the monitor of the container about to be created now, so that its interpreter's
        start-up overlaps ``create``; the next ``start`` uses it, ``cancel_prespawn`` drops it."""
        self.adopt(prespawn_monitor(self.root, opts.runtime or self.default_runtime, attach))

    def adopt(self, pending: PendingMonitor | None) -> None:
        """Use ``pending`` (from ``prespawn_monitor``) for the next ``start``."""
        self.cancel_prespawn()
        self._pending = pending

    def cancel_prespawn(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def create(self, opts: CreateOptions, join_pid: int | None = None) -> dict[str, Any]:
        """Create a container; ``join_pid``: share that process's pid/net/ipc/uts namespaces (debug)."""
        from hako.engine.config import build_spec, host_config, merge_config

        phase("cli", "create")
        image = self.images.resolve(opts.image, opts.pull)
        phase("cli", "image resolved")
        cid = new_id()
        name = check_name(opts.name) if opts.name else random_name()
        runtime = resolve_runtime(opts.runtime or self.default_runtime)
        parent = (opts.cgroup_parent or self.cgroup_parent).rstrip("/") or ""
        if "process_api" in parent:
            raise HakoError(f"cgroup parent {parent}: refusing a cgroup under process_api")
        cfg = merge_config(opts, image.container_config, cid, image.name)
        host = host_config(opts, runtime, parent)
        rec: dict[str, Any] = {
            "Id": cid, "Name": name, "Image": image.name, "ImageID": image.id, "Created": mon.now_rfc3339(),
            "Path": (cfg["Entrypoint"] or cfg["Cmd"])[0],
            "Args": ((cfg["Entrypoint"] or []) + cfg["Cmd"])[1:],
            "Config": cfg, "HostConfig": host, "Mounts": [],
            "Hako": {"CgroupsPath": f"{parent}/{cid}", "Rootfs": {}, "JoinPid": join_pid},
        }
        # Claim the name first: concurrent creates with the same name fail fast with Conflict.
        try:
            self.db.insert_container(rec)
        except Conflict:
            if opts.name:
                raise
            rec["Name"] = name = random_name() + "_" + cid[:4]
            self.db.insert_container(rec)
        phase("cli", "record inserted")
        cdir = self._dir(cid)
        try:
            os.makedirs(cdir)
            _touch(os.path.join(cdir, "lock"))
            rootfs = os.path.join(cdir, "bundle", "rootfs")
            saved = self.images.prepare_rootfs(cid, image, cdir, volatile=opts.rm)
            rec["Hako"]["Rootfs"] = saved
            phase("cli", "snapshot prepared")
            self.images.mount_rootfs(saved, rootfs)
            phase("cli", "rootfs mounted")
            rec["Mounts"] = self._mounts(opts, cfg, rootfs)
            self._etc_files(rec, cdir)
            spec = build_spec(rec, rootfs, cdir, self.volumes.path)
            _write(os.path.join(cdir, "bundle", "config.json"), json.dumps(spec))
            write_atomic(os.path.join(cdir, mon.STATE), {"status": "created", "exit_code": 0, "restart_count": 0,
                                               "started_at": ZERO_TIME, "finished_at": ZERO_TIME})
            phase("cli", "config.json written")
            self.db.update_container(rec)
            self.images.add_ref(image.id, cid)
            phase("cli", "record updated")
        except BaseException:
            self._cleanup(rec, remove_volumes=True)
            raise
        return rec

    def _mounts(self, opts: CreateOptions, cfg: dict[str, Any], rootfs: str) -> list[dict[str, Any]]:
        from hako.engine.config import MountRequest

        requests: list[MountRequest] = list(opts.mounts)
        targets = {m.target.rstrip("/") for m in requests}
        for vol in cfg.get("Volumes") or {}:
            if vol.rstrip("/") not in targets:
                requests.append(MountRequest("volume", vol))
        out: list[dict[str, Any]] = []
        if not requests:
            return out
        from pathlib import Path

        for m in requests:
            if m.type == "tmpfs":
                out.append({"Type": "tmpfs", "Source": "", "Destination": m.target, "Mode": "", "RW": True,
                            "Options": m.options})
            elif m.type == "bind":
                src = Path(m.source)
                if not src.exists():
                    src.mkdir(parents=True)
                out.append({"Type": "bind", "Source": str(src), "Destination": m.target,
                            "Mode": "ro" if m.readonly else "", "RW": not m.readonly, "Propagation": "rprivate"})
            else:
                name = self.volumes.create(m.source or None)
                self.volumes.populate(name, Path(rootfs), m.target)
                out.append({"Type": "volume", "Name": name, "Source": str(self.volumes.path(name)),
                            "Destination": m.target, "Driver": "local", "Mode": "ro" if m.readonly else "",
                            "RW": not m.readonly, "Anonymous": not m.source})
        return out

    def _etc_files(self, rec: dict[str, Any], cdir: str) -> None:
        hostname = rec["Config"]["Hostname"]
        _write(os.path.join(cdir, "hostname"), hostname + "\n")
        if rec["HostConfig"]["NetworkMode"] == "host":
            hosts = _read("/etc/hosts")
            resolv = _read("/etc/resolv.conf") if os.path.exists("/etc/resolv.conf") else ""
        else:
            hosts = f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
            resolv = ""
        _write(os.path.join(cdir, "hosts"), hosts)
        _write(os.path.join(cdir, "resolv.conf"), resolv)

    # --- start -----------------------------------------------------------------------------------
    def start(self, ref: str, attach: bool = False) -> socket.socket | None:
        """Start through a new monitor; with ``attach`` returns a socket already receiving the output."""
        sock = self.start_raw(ref, attach)
        if sock is None:
            return None
        import socket

        return socket.socket(fileno=sock.detach())

    def start_raw(self, ref: str, attach: bool = False, rec: dict[str, Any] | None = None) -> Any:
        """``start``, but the attach socket is a bare ``_socket.socket`` (recv, sendall, close: all
        ``hako run`` needs): the socket module would import enum on the way to the container.
        ``rec``: the record ``create`` just returned (not read and parsed again)."""
        if rec is None or rec.get("Id") != ref:
            rec = self.get(ref)
        cid = rec["Id"]
        if self.is_running(rec):
            if attach:
                raise Conflict(f"container {rec['Name']} is already running")
            return None
        cdir = self._dir(cid)
        with self.locked(cid):
            st = self.raw_state(cid)
            if st.get("status") in RUNNING_STATES and self.monitor_alive(st):
                return None
            self.images.mount_rootfs(rec["Hako"]["Rootfs"], os.path.join(cdir, "bundle", "rootfs"))
            if not os.path.exists(os.path.join(cdir, "bundle", "config.json")):
                from hako.engine.config import build_spec

                spec = build_spec(rec, os.path.join(cdir, "bundle", "rootfs"), cdir, self.volumes.path)
                _write(os.path.join(cdir, "bundle", "config.json"), json.dumps(spec))
            _unlink(os.path.join(cdir, "stopping"))
            _unlink(os.path.join(cdir, "paused"))
            self._write_monitor_spec(rec, autoremove=rec["HostConfig"]["AutoRemove"])
            ours: Any = None
            theirs: Any = None
            pending, self._pending = self._pending, None
            if pending is not None and pending.attach != attach:
                pending.cancel()
                pending = None
            if pending is not None:
                ours = _raw_attach_socket(pending)
            elif attach:
                ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                phase("cli", "monitor spawn")
                report = spawn_monitor(cdir, theirs, runtime_in_process(rec["HostConfig"]["Runtime"]), pending)
                phase("cli", "monitor reported")
            finally:
                if theirs is not None:
                    theirs.close()
        if not report.get("ok"):
            if ours is not None:
                ours.close()
            raise ContainerError(str(report.get("error") or "start failed"), int(report.get("code") or 125))
        return ours

    def _write_monitor_spec(self, rec: dict[str, Any], autoremove: bool) -> None:
        cfg, host = rec["Config"], rec["HostConfig"]
        hc = cfg.get("Healthcheck") or {}
        health = None
        if hc.get("Test") and hc["Test"][0] in ("CMD", "CMD-SHELL"):
            health = {"test": hc["Test"], "interval": (hc.get("Interval") or 30e9) / 1e9,
                      "timeout": (hc.get("Timeout") or 30e9) / 1e9, "retries": hc.get("Retries") or 3,
                      "start_period": (hc.get("StartPeriod") or 0) / 1e9}
        rt_path, rt_root = host["Runtime"], self._runtime_root(rec)
        os.makedirs(rt_root, exist_ok=True)
        logcfg = host.get("LogConfig", {}).get("Config", {})
        spec = {
            "id": rec["Id"], "root": self._root, "runtime": rt_path, "runtime_root": rt_root,
            "bundle": self._dir(rec["Id"], "bundle"), "tty": bool(cfg.get("Tty")),
            "open_stdin": bool(cfg.get("OpenStdin")), "log_path": self._dir(rec["Id"], "ctr.log"),
            "log_max_size": int(logcfg.get("max-size", 10 << 20)), "log_max_files": int(logcfg.get("max-file", 3)),
            "restart": {"name": host["RestartPolicy"]["Name"], "max": host["RestartPolicy"]["MaximumRetryCount"]},
            "health": health, "cgroups_path": rec["Hako"]["CgroupsPath"], "autoremove": autoremove,
            "python": sys.executable, "trace": trace_path(), "inprocess": runtime_in_process(rt_path),
        }
        write_atomic(self._dir(rec["Id"], mon.SPEC), spec)

    # --- stop, kill, wait ------------------------------------------------------------------------
    def stop(self, ref: str, timeout: float | None = None, sig: str | None = None) -> dict[str, Any]:
        rec = self.get(ref)
        cid = rec["Id"]
        st = self.state(rec)
        if st.get("status") not in RUNNING_STATES:
            (self.cdir(cid) / "stopping").touch()
            return rec
        if timeout is None:
            t = rec["Config"].get("StopTimeout")
            timeout = 10 if t is None else t
        (self.cdir(cid) / "stopping").touch()
        rt = self.runtime(rec)
        if st.get("status") == "paused":
            self._try(lambda: rt.resume(cid))
            (self.cdir(cid) / "paused").unlink(missing_ok=True)
        signame = str(parse_signal(sig or rec["Config"].get("StopSignal") or "SIGTERM"))
        if st.get("status") == "restarting":
            self._wait_stopped(rec, 5)
            return rec
        self._try(lambda: rt.kill(cid, signame))
        if not self._wait_stopped(rec, timeout):
            self._try(lambda: rt.kill(cid, "9"))
            self._wait_stopped(rec, 30)
        return rec

    @staticmethod
    def _try(fn: Any) -> None:
        try:
            fn()
        except HakoError:
            pass

    def _wait_stopped(self, rec: dict[str, Any], timeout: float) -> bool:
        """Wait for the monitor to exit (it records the exit first); without one, poll the runtime."""
        cid = rec["Id"]
        end = time.monotonic() + timeout
        st = self.raw_state(cid)
        if self.monitor_alive(st):
            try:
                pidfd = os.pidfd_open(int(st["monitor_pid"]))
            except ProcessLookupError:
                pidfd = -1
            if pidfd >= 0:
                import select

                try:
                    ready, _, _ = select.select([pidfd], [], [], max(0.0, timeout))
                finally:
                    os.close(pidfd)
                return bool(ready)
        while time.monotonic() < end:
            if not self.is_running(rec):
                return True
            time.sleep(0.05)
        return not self.is_running(rec)

    def kill(self, ref: str, sig: str = "KILL") -> dict[str, Any]:
        rec = self.get(ref)
        if not self.is_running(rec):
            raise Conflict(f"container {rec['Name']} is not running")
        num = parse_signal(sig)
        if num in (2, 9, 15):
            (self.cdir(rec["Id"]) / "stopping").touch()
        self.runtime(rec).kill(rec["Id"], str(num))
        return rec

    def wait(self, ref: str) -> int:
        """Block until the container is not running; its exit code."""
        rec = self.get(ref)
        cid = rec["Id"]
        while True:
            st = self.state(rec)
            if st.get("status") not in RUNNING_STATES:
                return int(st.get("exit_code") or 0)
            if st.get("monitor_lost"):
                time.sleep(0.1)
                continue
            try:
                sock = connect_attach(self.cdir(cid))
            except OSError:
                time.sleep(0.05)
                continue
            with sock:
                for kind, payload in read_frames(sock):
                    if kind == mon.EXIT:
                        return int(payload)
            # The monitor went away without an exit frame (restarted, or removed): look again.
            try:
                rec = self.get(cid)
            except NotFound:
                return int(st.get("exit_code") or 0)

    def restart(self, ref: str, timeout: float | None = None) -> None:
        rec = self.get(ref)
        self.stop(rec["Id"], timeout)
        self.start(rec["Id"])

    def pause(self, ref: str) -> None:
        rec = self.get(ref)
        if self.state(rec).get("status") != "running":
            raise Conflict(f"container {rec['Name']} is not running")
        self.runtime(rec).pause(rec["Id"])
        (self.cdir(rec["Id"]) / "paused").touch()

    def unpause(self, ref: str) -> None:
        rec = self.get(ref)
        if self.state(rec).get("status") != "paused":
            raise Conflict(f"container {rec['Name']} is not paused")
        self.runtime(rec).resume(rec["Id"])
        (self.cdir(rec["Id"]) / "paused").unlink(missing_ok=True)

    def rename(self, ref: str, new: str) -> None:
        rec = self.get(ref)
        rec["Name"] = check_name(new)
        self.db.update_container(rec)

    # --- rm --------------------------------------------------------------------------------------
    def remove(self, ref: str, force: bool = False, volumes: bool = False, from_monitor: bool = False) -> str:
        rec = self.get(ref)
        cid = rec["Id"]
        if not from_monitor:
            st = self.state(rec)
            if st.get("status") in RUNNING_STATES:
                if not force:
                    raise Conflict(f"container {rec['Name']} is running: stop it first or use rm -f")
                self.stop(cid, timeout=0, sig="KILL")
        self._cleanup(rec, remove_volumes=volumes)
        phase("cli", "removed")
        return cid

    def _cleanup(self, rec: dict[str, Any], remove_volumes: bool) -> None:
        cid = rec["Id"]
        cdir = self._dir(cid)
        if os.path.exists(os.path.join(self._runtime_root(rec), cid)):  # what RuntimeClient.delete checks
            self.runtime(rec).delete(cid)
        saved = rec.get("Hako", {}).get("Rootfs") or {}
        if saved:
            self.images.unmount_rootfs(saved, os.path.join(cdir, "bundle", "rootfs"))
            self.images.remove_rootfs(saved, cid)
        from hako.storage.snapshots import remove_tree

        remove_tree(cdir)
        self.db.delete_container(cid)
        self.images.remove_ref(rec.get("ImageID", ""), cid)
        for m in rec.get("Mounts", []):
            if m.get("Type") == "volume" and (m.get("Anonymous") and (remove_volumes or rec["HostConfig"]["AutoRemove"])):
                try:
                    self.volumes.remove(m["Name"])
                except (Conflict, NotFound):
                    pass

    # --- listing and inspecting -------------------------------------------------------------------
    def list_containers(self, all_containers: bool = False) -> list[dict[str, Any]]:
        out = []
        for rec in self.db.all_containers():
            st = self.state(rec)
            if all_containers or st.get("status") in RUNNING_STATES:
                out.append(self.inspect_record(rec, st))
        return out

    def inspect(self, ref: str) -> dict[str, Any]:
        rec = self.get(ref)
        return self.inspect_record(rec, self.state(rec))

    def inspect_record(self, rec: dict[str, Any], st: dict[str, Any]) -> dict[str, Any]:
        status = st.get("status", "created")
        shown = {"starting": "running"}.get(status, status)
        state: dict[str, Any] = {
            "Status": shown, "Running": status in RUNNING_STATES, "Paused": status == "paused",
            "Restarting": status == "restarting", "OOMKilled": bool(st.get("oom_killed")), "Dead": False,
            "Pid": int(st.get("pid") or 0), "ExitCode": int(st.get("exit_code") or 0), "Error": st.get("error", ""),
            "StartedAt": st.get("started_at", ZERO_TIME), "FinishedAt": st.get("finished_at", ZERO_TIME),
        }
        if st.get("health"):
            state["Health"] = st["health"]
        out = {k: v for k, v in rec.items() if k != "Hako"}
        out["Name"] = "/" + rec["Name"]
        out["Image"] = rec["ImageID"]  # Docker: the id here, the name in Config.Image
        out["Platform"] = "linux"
        out["NetworkSettings"] = {"Networks": {rec["HostConfig"]["NetworkMode"]: {}}, "Ports": {}}
        out["State"] = state
        out["RestartCount"] = int(st.get("restart_count") or 0)
        out["Driver"] = "overlay"
        out["LogPath"] = self._dir(rec["Id"], "ctr.log")
        out["HostConfig"] = dict(rec["HostConfig"], CgroupParent=rec["HostConfig"].get("CgroupParent"))
        out["Mounts"] = [{k: v for k, v in m.items() if k not in ("Anonymous", "Options")} for m in rec["Mounts"]]
        return out

    # --- exec ------------------------------------------------------------------------------------
    def exec_argv(self, ref: str, cmd: list[str], *, tty: bool = False, detach: bool = False,
                  user: str | None = None, env: list[str] | None = None, workdir: str | None = None,
                  privileged: bool = False) -> tuple[list[str], Path]:
        """The runtime command line for ``exec`` and the process.json it reads (caller removes it)."""
        from hako.engine.config import ALL_CAPS, merge_env, resolve_user

        rec = self.get(ref)
        cid = rec["Id"]
        st = self.state(rec)
        if st.get("status") == "paused":
            raise Conflict(f"container {rec['Name']} is paused, unpause it first")
        if st.get("status") not in RUNNING_STATES:
            raise Conflict(f"container {rec['Name']} is not running")
        cdir = self.cdir(cid)
        spec = json.loads((cdir / "bundle" / "config.json").read_text())
        proc = dict(spec["process"])
        proc["args"] = list(cmd)
        proc["terminal"] = tty
        proc.pop("consoleSize", None)
        if user is not None:
            proc["user"] = resolve_user(cdir / "bundle" / "rootfs", user)
        if env:
            proc["env"] = merge_env(proc.get("env", []), env)
        if tty and not any(e.startswith("TERM=") for e in proc.get("env", [])):
            proc["env"] = [*proc.get("env", []), "TERM=xterm"]
        if workdir:
            proc["cwd"] = workdir
        if privileged:
            proc["capabilities"] = {k: list(ALL_CAPS) for k in ("bounding", "effective", "permitted")}
        pj = cdir / f"exec-{os.getpid()}-{os.urandom(4).hex()}.json"
        pj.write_text(json.dumps(proc))
        rt = self.runtime(rec)
        return rt.exec_argv(cid, pj, tty=tty, detach=detach), pj

    def exec(self, ref: str, cmd: list[str], **kw: Any) -> tuple[int, bytes]:
        """Run ``cmd`` in the container, capturing its output (stdout and stderr together)."""
        import subprocess

        argv, pj = self.exec_argv(ref, cmd, **kw)
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        finally:
            pj.unlink(missing_ok=True)
        return proc.returncode, proc.stdout

    def top(self, ref: str) -> list[int]:
        rec = self.get(ref)
        if not self.is_running(rec):
            raise Conflict(f"container {rec['Name']} is not running")
        return self.runtime(rec).ps_pids(rec["Id"])

    # --- pruning ---------------------------------------------------------------------------------
    def prune(self) -> list[str]:
        removed = []
        for rec in self.db.all_containers():
            if not self.is_running(rec):
                try:
                    removed.append(self.remove(rec["Id"]))
                except (Conflict, NotFound):
                    continue
        return removed


# --- attach frames -------------------------------------------------------------------------------
def read_frames(sock: socket.socket) -> Iterator[tuple[int, bytes]]:
    buf = b""
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        buf += data
        while len(buf) >= mon.HEADER.size:
            kind, n = mon.HEADER.unpack_from(buf)
            if len(buf) < mon.HEADER.size + n:
                break
            yield kind, buf[mon.HEADER.size:mon.HEADER.size + n]
            buf = buf[mon.HEADER.size + n:]


def send_frame(sock: socket.socket, kind: int, payload: bytes = b"") -> None:
    sock.sendall(mon.HEADER.pack(kind, len(payload)) + payload)


def resize_payload(rows: int, cols: int) -> bytes:
    return mon.HEADER.__class__(">HH").pack(rows, cols)
