"""The state directory: atomic state.json, lock, status derived from the kernel (no root needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hako.errors import Conflict, NotFound
from hako.runtime.state import Container, State, list_ids, now_rfc3339
from hako.sys.procfs import start_time


def _container(root: Path, cid: str = "c1", pid: int = 0) -> Container:
    c = Container(str(root), cid)
    c.make_dir()
    c.save(State(id=cid, bundle="/b", rootfs="/b/rootfs", pid=pid, start_time=start_time(pid) if pid else None,
                 created=now_rfc3339()))
    c.unlock()
    return c


def test_save_load_round_trip_and_no_temp_left(tmp_path: Path) -> None:
    c = _container(tmp_path)
    st = Container(str(tmp_path), "c1").load()
    assert (st.id, st.bundle, st.rootfs) == ("c1", "/b", "/b/rootfs")
    assert sorted(os.listdir(c.dir)) == ["lock", "state.json"]
    assert list_ids(str(tmp_path)) == ["c1"]


def test_duplicate_and_missing(tmp_path: Path) -> None:
    _container(tmp_path)
    with pytest.raises(Conflict, match="container c1 already exists"):
        Container(str(tmp_path), "c1").make_dir()
    with pytest.raises(NotFound, match="container nope does not exist"):
        Container(str(tmp_path), "nope").lock()
    with pytest.raises(NotFound):
        Container(str(tmp_path), "nope").load()


def test_status_from_pid_start_time_and_fifo(tmp_path: Path) -> None:
    c = _container(tmp_path, pid=os.getpid())
    assert Container(str(tmp_path), "c1").status() == "running"
    os.mkfifo(c.fifo)
    assert Container(str(tmp_path), "c1").status() == "created"
    os.unlink(c.fifo)
    # same pid, another start time: a reused pid is not our container
    st = c.load()
    st.start_time = (st.start_time or 0) + 1
    c.save(st)
    assert Container(str(tmp_path), "c1").status() == "stopped"
    oci = Container(str(tmp_path), "c1").oci_state()
    assert oci["status"] == "stopped" and oci["pid"] == 0 and oci["created"].endswith("Z")


def test_lock_on_removed_dir_is_not_found(tmp_path: Path) -> None:
    c = _container(tmp_path)
    other = Container(str(tmp_path), "c1")
    c.remove_dir()
    with pytest.raises(NotFound):
        other.lock()
    assert not Path(c.dir).exists()
