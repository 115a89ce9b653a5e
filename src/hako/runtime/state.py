"""A container's runtime state on disk: ``<root>/<id>/{state.json,lock,exec.fifo}``.

state.json is replaced atomically (temp file + rename). Operations on one container hold an
exclusive flock on ``lock`` for their whole duration, so concurrent calls serialise. The
status is derived from the kernel each time, never trusted from the file: the pid plus its
start time (pid reuse), the exec FIFO (created until ``start`` removes it), the freezer.
"""

from __future__ import annotations

import fcntl
import os

from hako.errors import ConfigError, Conflict, NotFound
from hako.runtime import fastjson
from hako.sys.procfs import is_alive

# typing costs start-up time; mypy treats a name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/run/hako-runtime"
OCI_VERSION = "1.0.2"
_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_CHARS = _ID_FIRST | frozenset("_.+-")


def seccomp_cache_dir(root: str) -> str:
    """Compiled seccomp programs, by profile digest, beside the containers' state dirs (a name
    no container id can take: ids start with a letter or digit)."""
    return os.path.join(root, ".seccomp-cache")


def check_id(cid: str) -> str:
    # Checked by hand rather than with a regex: importing re costs start-up time.
    if not cid or len(cid) > 1024 or cid[0] not in _ID_FIRST or not set(cid) <= _ID_CHARS:
        raise ConfigError("", f"invalid container id {cid!r}: use letters, digits and _.+- (not /, not ..)")
    return cid


_STATE_FIELDS: dict[str, Any] = {
    "pid": 0,
    "start_time": None,
    "created": "",
    "owner": "",
    "annotations": dict,
    "cgroup": None,  # hako.cgroups manager.save()
    "systemd_cgroup": False,
    "config": "",  # the config.json used
    "hooks": None,  # stages with hooks, so start/delete parse config.json only when needed
    "seccomp": None,  # whether config.json has linux.seccomp, so exec --process can skip parsing it
    # No mount namespace: the rootfs's mounts are in the caller's and delete removes them, all but
    # these mount ids (there before create). None: the container has a mount namespace.
    "host_mounts": None,
}


class State:
    """What state.json holds (a plain class: dataclasses would cost start-up time for ``state``)."""

    def __init__(self, id: str, bundle: str, rootfs: str, **kw: Any) -> None:  # noqa: A002
        self.id = id
        self.bundle = bundle
        self.rootfs = rootfs
        self.pid: int = 0
        self.start_time: int | None = None
        self.created: str = ""
        self.owner: str = ""
        self.annotations: dict[str, str] = {}
        self.cgroup: dict[str, Any] | None = None
        self.systemd_cgroup: bool = False
        self.config: str = ""
        self.hooks: list[str] | None = None
        self.seccomp: bool | None = None
        self.host_mounts: list[int] | None = None
        for k, v in kw.items():
            if k in _STATE_FIELDS:
                setattr(self, k, v)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> State:
        return cls(d["id"], d["bundle"], d["rootfs"], **{k: v for k, v in d.items() if k in _STATE_FIELDS})


class Container:
    """Handle on one container's state directory."""

    def __init__(self, root: str, cid: str) -> None:
        self.root = root
        self.id = check_id(cid)
        self.dir = os.path.join(root, cid)
        self.state_file = os.path.join(self.dir, "state.json")
        self.fifo = os.path.join(self.dir, "exec.fifo")
        self._lock_fd: int | None = None
        self.state: State | None = None

    # -- locking ------------------------------------------------------------------------------
    def lock(self) -> None:
        path = os.path.join(self.dir, "lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"container {self.id} does not exist") from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._lock_fd = fd
        # Deleted while we waited (and perhaps created again): our lock must be the current file.
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if not current:
            self.unlock()
            raise NotFound(f"container {self.id} does not exist")

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def make_dir(self) -> None:
        """Create the state dir (atomically claims the id) and take the lock."""
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(self.dir, 0o711)
        except FileExistsError:
            raise Conflict(f"container {self.id} already exists") from None
        fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._lock_fd = fd

    # -- state.json ---------------------------------------------------------------------------
    def load(self) -> State:
        try:
            with open(self.state_file, "rb") as f:
                self.state = State.from_json(fastjson.loads(f.read()))
        except FileNotFoundError:
            raise NotFound(f"container {self.id} does not exist") from None
        return self.state

    def save(self, st: State) -> None:
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(fastjson.dumps(st.to_json()))
        os.rename(tmp, self.state_file)
        self.state = st

    def remove_dir(self) -> None:
        # Flat directory of our own files; shutil would cost start-up time.
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return
        for n in names:
            try:
                os.unlink(os.path.join(self.dir, n))
            except IsADirectoryError:
                import shutil

                shutil.rmtree(os.path.join(self.dir, n), ignore_errors=True)
            except FileNotFoundError:
                pass
        try:
            os.rmdir(self.dir)
        except FileNotFoundError:
            pass

    # -- status -------------------------------------------------------------------------------
    def status(self) -> str:
        st = self.state or self.load()
        if not st.pid or not is_alive(st.pid, st.start_time):
            return "stopped"
        if os.path.exists(self.fifo):
            return "created"
        if st.cgroup:
            try:
                if self.cgroup_manager().is_frozen():
                    return "paused"
            except Exception:  # noqa: BLE001 - a cgroup read failure must not hide the status
                pass
        return "running"

    def cgroup_manager(self) -> Any:
        st = self.state or self.load()
        if not st.cgroup:
            return None
        from hako.cgroups import load_manager

        return load_manager(st.cgroup)

    def oci_state(self) -> dict[str, Any]:
        st = self.state or self.load()
        status = self.status()
        return {
            "ociVersion": OCI_VERSION,
            "id": st.id,
            "status": status,
            "pid": st.pid if status != "stopped" else 0,
            "bundle": st.bundle,
            "rootfs": st.rootfs,
            "annotations": st.annotations,
            "created": st.created,
            "owner": st.owner,
        }


    def oci_state_stopped(self) -> dict[str, Any]:
        st = self.state or self.load()
        d = {
            "ociVersion": OCI_VERSION, "id": st.id, "status": "stopped", "pid": 0, "bundle": st.bundle,
            "rootfs": st.rootfs, "annotations": st.annotations, "created": st.created, "owner": st.owner,
        }
        return d


def now_rfc3339() -> str:
    import time

    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"


def list_ids(root: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(root) if os.path.exists(os.path.join(root, n, "state.json")))
    except FileNotFoundError:
        return []
