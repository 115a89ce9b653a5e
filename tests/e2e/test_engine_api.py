"""End to end: the Python API (``hako.run``, ``hako.container``, ``Client``) on real containers."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures_engine import HakoEnv


def test_python_api_runs_and_cleans_up(hako_env: HakoEnv) -> None:
    import hako
    from hako.engine.api import Client

    client = Client(hako_env.root, cgroup_parent=hako_env.cgroup_parent)
    try:
        r = client.run("busybox", ["sh", "-c", "echo hi; echo oops >&2; exit 2"], env={"A": "1"})
        assert (r.exit_code, r.output, r.stderr) == (2, "hi\n", "oops\n")
        assert client.run("busybox", "echo $A", env={"A": "x"}).output == "x\n"
        assert client.containers.list(all=True) == []  # foreground runs remove themselves
        with client.container("busybox", ["sleep", "60"], name="ctx", labels={"k": "v"}) as c:
            assert c.status == "running" and c.name == "ctx"
            res = c.exec(["sh", "-c", "echo $((6*7)); hostname"])
            assert res.ok and res.output.split() == ["42", c.id[:12]]
            assert [x.id for x in client.containers.list()] == [c.id]
            assert c.stats()["PIDs"] >= 1
            cid = c.id
        assert client.containers.list(all=True) == []
        assert not (hako_env.root / "engine" / "containers" / cid).exists()
        c = client.containers.create("busybox", ["sh", "-c", "echo done"], name="later")
        c.start()
        assert c.wait() == 0 and c.logs() == "done\n"
        c.remove()
        vol = client.volumes.create("apivol")
        assert Path(client.volumes.get(vol)["Mountpoint"]).is_dir()
        client.volumes.remove(vol)
    finally:
        client.close()
    assert callable(hako.run) and hasattr(hako, "containers")
