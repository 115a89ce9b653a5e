"""The lifecycle operations on an existing container: start, state, kill, delete, pause, resume, ps."""

from __future__ import annotations

import os

from hako.errors import Conflict, HakoError, NotFound
from hako.runtime import fastjson
from hako.runtime.state import Container

# typing costs start-up time; mypy treats a name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def parse_signal(s: str) -> int:
    if s.isdigit():  # what podman and containerd send: no need for the signal module
        n = int(s)
        if not 0 < n < 65:
            raise HakoError(f"invalid signal {s!r}")
        return n
    import signal

    name = s.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name.startswith("SIGRTMIN+") or name.startswith("SIGRTMAX-"):
        base = signal.SIGRTMIN if name.startswith("SIGRTMIN") else signal.SIGRTMAX
        off = name[9:]
        if off.isdigit():
            return int(base) + int(off) if "+" in name else int(base) - int(off)
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise HakoError(f"invalid signal {s!r}") from None


def locked(root: str, cid: str) -> Container:
    c = Container(root, cid)
    c.lock()
    c.load()
    return c


def start(root: str, cid: str) -> None:
    import select

    c = locked(root, cid)
    try:
        status = c.status()
        if status != "created":
            raise Conflict(f"cannot start a container that is {status} (container {cid})")
        fd = os.open(c.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            # init is blocked opening the FIFO for writing; our open releases it and it writes one byte.
            p = select.poll()
            p.register(fd, select.POLLIN)
            st0 = c.state
            assert st0 is not None
            from hako.sys.procfs import is_alive

            # Poll in slices: an init that died before opening its end would never answer.
            for _ in range(300):
                if p.poll(100) or not is_alive(st0.pid, st0.start_time):
                    break
            else:
                raise HakoError(f"container {cid}: init did not answer on the exec FIFO")
            try:
                data = os.read(fd, 1)
            except BlockingIOError:
                data = b""
        finally:
            os.close(fd)
        if data != b"0":
            raise HakoError(f"container {cid}: init exited before start")
        # The FIFO's absence is what "started" means (status()): no state.json rewrite.
        os.unlink(c.fifo)
        from hako.runtime import log

        log.phase("exec")
        _poststart(c)
    finally:
        c.unlock()


def _spec_hooks(c: Container, stage: str) -> Any:
    st = c.state
    assert st is not None
    if st.hooks is not None and stage not in st.hooks:
        return None  # recorded at create: no need to parse config.json
    try:
        from hako.runtime.create import load_bundle

        spec, _ = load_bundle(st.bundle)
        return spec.hooks
    except Exception:  # noqa: BLE001 - the bundle may be gone by delete time
        return None


def _poststart(c: Container) -> None:
    hooks = _spec_hooks(c, "poststart")
    if hooks is not None and hooks.poststart:
        from hako.runtime.hooks import run_hooks

        # The state as it was at start: a short-lived process may already be gone by now.
        st = c.state
        assert st is not None
        state = c.oci_state()
        state.update(status="running", pid=st.pid)
        run_hooks("poststart", hooks.poststart, fastjson.dumps(state).encode(), keep_going=True)


def state(root: str, cid: str) -> dict[str, Any]:
    c = Container(root, cid)
    c.load()
    return c.oci_state()


# SIGKILL by number: the signal module pulls in enum (several ms on every kill/delete).
SIGKILL = 9


def kill(root: str, cid: str, sig: int, all_procs: bool = False) -> None:
    c = locked(root, cid)
    try:
        st = c.state
        assert st is not None
        status = c.status()
        if status == "stopped":
            raise Conflict(f"container {cid}: container not running")
        cgm = c.cgroup_manager() if all_procs else None
        if cgm is not None:
            cgm.kill_all(sig)
            if status == "paused" and sig == SIGKILL:
                cgm.thaw()
        else:
            try:
                os.kill(st.pid, sig)
            except ProcessLookupError:
                raise Conflict(f"container {cid}: container not running") from None
    finally:
        c.unlock()


def delete(root: str, cid: str, force: bool = False) -> None:
    c = Container(root, cid)
    try:
        c.lock()
    except NotFound:
        if force:
            return
        raise
    try:
        try:
            c.load()
        except NotFound:
            # a create that died between mkdir and state.json: nothing else can exist
            c.remove_dir()
            return
        st = c.state
        assert st is not None
        status = c.status()
        if status in ("running", "paused") and not force:
            raise Conflict(f"cannot delete container {cid} that is not stopped: {status}")
        cgm = None
        try:
            cgm = c.cgroup_manager()
        except Exception:  # noqa: BLE001 - a broken cgroup record must not block delete
            cgm = None
        if status != "stopped":
            try:
                os.kill(st.pid, SIGKILL)
            except ProcessLookupError:
                pass
        if cgm is not None:
            try:
                cgm.kill_all(SIGKILL)
                if status == "paused":
                    cgm.thaw()
            except Exception:  # noqa: BLE001
                pass
        wait_gone(st.pid, st.start_time)
        hooks = _spec_hooks(c, "poststop")
        if st.host_mounts is not None:
            from hako.runtime.rootfs import unmount_host_mounts

            unmount_host_mounts(st.rootfs, st.host_mounts)
        if cgm is not None:
            cgm.destroy()
        c.remove_dir()
        if hooks is not None and hooks.poststop:
            from hako.runtime.hooks import run_hooks

            s = c.oci_state_stopped()
            # The container is gone already: a failing hook is a warning and the others still run.
            run_hooks("poststop", hooks.poststop, fastjson.dumps(s).encode(), keep_going=True)
    finally:
        c.unlock()


def pause(root: str, cid: str) -> None:
    c = locked(root, cid)
    try:
        status = c.status()
        if status != "running":
            raise Conflict(f"container {cid} is not running ({status})")
        cgm = c.cgroup_manager()
        if cgm is None:
            raise HakoError(f"container {cid}: no cgroup to freeze")
        cgm.freeze()
    finally:
        c.unlock()


def resume(root: str, cid: str) -> None:
    c = locked(root, cid)
    try:
        status = c.status()
        if status != "paused":
            raise Conflict(f"container {cid} is not paused ({status})")
        c.cgroup_manager().thaw()
    finally:
        c.unlock()


def pids(root: str, cid: str) -> list[int]:
    c = Container(root, cid)
    c.load()
    if c.status() == "stopped":
        return []
    cgm = c.cgroup_manager()
    st = c.state
    assert st is not None
    if cgm is None:
        return [st.pid]
    return sorted(cgm.pids())


def wait_gone(pid: int, started: int | None, timeout: float = 5.0) -> None:
    import time

    from hako.sys.procfs import is_alive

    deadline = time.monotonic() + timeout
    delay = 0.0005
    while is_alive(pid, started) and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
