"""The Python API: the same engine the ``hako`` command line uses, as objects.

    import hako
    print(hako.run("busybox", ["echo", "hi"]).output)          # "hi\\n"
    with hako.container("busybox", ["sleep", "60"]) as c:      # removed on exit
        print(c.exec(["hostname"]).output)
    for c in hako.containers.list(all=True):
        print(c.name, c.status)
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hako.engine.config import CreateOptions, parse_bytes, parse_mount, parse_volume


@dataclass
class Result:
    """A finished container or exec: its exit code and what it wrote."""

    exit_code: int
    output: str
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def _root(root: str | Path | None) -> Path:
    return Path(root or os.environ.get("HAKO_ROOT") or "/var/lib/hako")


def _options(image: str, command: Sequence[str] | str | None, kw: dict[str, Any]) -> CreateOptions:
    """Keyword arguments (CreateOptions fields, plus Docker SDK-style conveniences) to CreateOptions."""
    if isinstance(command, str):
        command = ["/bin/sh", "-c", command]
    opts = CreateOptions(image=image, command=list(command or []))
    env = kw.pop("env", None) or kw.pop("environment", None)
    if isinstance(env, Mapping):
        opts.env = [f"{k}={v}" for k, v in env.items()]
    elif env:
        opts.env = list(env)
    vols = kw.pop("volumes", None)
    if isinstance(vols, Mapping):
        # docker-py shape: {"src": {"bind": "/dst", "mode": "ro"}} or {"src": "/dst"}
        for src, dst in vols.items():
            if isinstance(dst, Mapping):
                spec = f"{src}:{dst['bind']}" + (":ro" if dst.get("mode") == "ro" else "")
            else:
                spec = f"{src}:{dst}"
            opts.mounts.append(parse_volume(spec))
    elif vols:
        opts.mounts += [parse_volume(v) for v in vols]
    for m in kw.pop("mounts", None) or []:
        opts.mounts.append(parse_mount(m) if isinstance(m, str) else m)
    labels = kw.pop("labels", None)
    if isinstance(labels, Mapping):
        opts.labels = [f"{k}={v}" for k, v in labels.items()]
    elif labels:
        opts.labels = list(labels)
    for key in ("memory", "memory_swap"):
        if isinstance(kw.get(key), str):
            kw[key] = parse_bytes(kw[key], key)
    if "remove" in kw:
        kw["rm"] = kw.pop("remove")
    names = set(CreateOptions.__annotations__)  # a hako.records class: no dataclasses.fields()
    for key, value in kw.items():
        if key not in names:
            raise TypeError(f"unknown option {key!r}")
        setattr(opts, key, value)
    return opts


class Container:
    """A handle on one container (by id); every property reads the current state."""

    def __init__(self, client: Client, cid: str) -> None:
        self.client = client
        self.id = cid

    def __repr__(self) -> str:
        return f"<Container {self.id[:12]} {self.name}>"

    def inspect(self) -> dict[str, Any]:
        return dict(self.client.engine.inspect(self.id))

    @property
    def name(self) -> str:
        return str(self.inspect()["Name"]).lstrip("/")

    @property
    def status(self) -> str:
        return str(self.inspect()["State"]["Status"])

    @property
    def exit_code(self) -> int:
        return int(self.inspect()["State"]["ExitCode"])

    def start(self) -> Container:
        self.client.engine.start(self.id)
        return self

    def stop(self, timeout: float = 10) -> None:
        self.client.engine.stop(self.id, timeout)

    def kill(self, signal: str = "KILL") -> None:
        self.client.engine.kill(self.id, signal)

    def restart(self, timeout: float = 10) -> None:
        self.client.engine.restart(self.id, timeout)

    def pause(self) -> None:
        self.client.engine.pause(self.id)

    def unpause(self) -> None:
        self.client.engine.unpause(self.id)

    def wait(self) -> int:
        return int(self.client.engine.wait(self.id))

    def remove(self, force: bool = False, volumes: bool = False) -> None:
        self.client.engine.remove(self.id, force=force, volumes=volumes)

    def exec(self, cmd: Sequence[str] | str, *, user: str | None = None, env: Mapping[str, str] | None = None,
             workdir: str | None = None) -> Result:
        """Run ``cmd`` inside; stdout and stderr together in ``output``."""
        if isinstance(cmd, str):
            cmd = ["/bin/sh", "-c", cmd]
        code, out = self.client.engine.exec(self.id, list(cmd), user=user, workdir=workdir,
                                            env=[f"{k}={v}" for k, v in (env or {}).items()])
        return Result(code, out.decode(errors="replace"))

    def logs(self, tail: int | None = None, stream: str | None = None) -> str:
        from hako.engine.logs import read_logs

        lines = read_logs(self.client.engine.cdir(self.id), tail)
        return "".join(line.text for line in lines if stream is None or line.stream == stream)

    def top(self) -> list[int]:
        return list(self.client.engine.top(self.id))

    def stats(self) -> dict[str, Any]:
        from hako.engine.stats import container_stats

        return container_stats(self.client.engine, self.id)


class Volumes:
    def __init__(self, client: Client) -> None:
        self.client = client

    def create(self, name: str | None = None, labels: Mapping[str, str] | None = None) -> str:
        return str(self.client.engine.volumes.create(name, labels=dict(labels or {})))

    def list(self) -> builtins.list[dict[str, Any]]:
        return list(self.client.engine.volumes.list_volumes())

    def get(self, name: str) -> dict[str, Any]:
        return dict(self.client.engine.volumes.inspect(name))

    def remove(self, name: str) -> None:
        self.client.engine.volumes.remove(name)

    def prune(self) -> builtins.list[str]:
        return list(self.client.engine.volumes.prune())


class Containers:
    def __init__(self, client: Client) -> None:
        self.client = client

    def list(self, all: bool = False) -> builtins.list[Container]:  # noqa: A002 - Docker SDK's name
        return [Container(self.client, i["Id"]) for i in self.client.engine.list_containers(all_containers=all)]

    def get(self, ref: str) -> Container:
        return Container(self.client, self.client.engine.get(ref)["Id"])

    def create(self, image: str, command: Sequence[str] | str | None = None, **kw: Any) -> Container:
        rec = self.client.engine.create(_options(image, command, kw))
        return Container(self.client, rec["Id"])

    def run(self, image: str, command: Sequence[str] | str | None = None, *, detach: bool = False,
            **kw: Any) -> Result | Container:
        """Like ``hako run``: with ``detach`` a started Container, else the finished Result."""
        return self.client.run(image, command, detach=detach, **kw)

    def prune(self) -> builtins.list[str]:
        return list(self.client.engine.prune())


class Client:
    """One store root. ``runtime`` is any runc-compatible binary (default $HAKO_RUNTIME or runc)."""

    def __init__(self, root: str | Path | None = None, runtime: str | None = None,
                 cgroup_parent: str | None = None) -> None:
        from hako.engine.containers import Engine

        self.engine = Engine(_root(root), runtime=runtime, cgroup_parent=cgroup_parent)
        self.containers = Containers(self)
        self.volumes = Volumes(self)

    def close(self) -> None:
        self.engine.close()

    def run(self, image: str, command: Sequence[str] | str | None = None, *, detach: bool = False,
            **kw: Any) -> Any:
        from hako.engine import monitor as mon
        from hako.engine.containers import ContainerError, read_frames

        rm = kw.pop("rm", kw.pop("remove", not detach))
        opts = _options(image, command, kw)
        opts.detach = detach
        opts.rm = rm and detach
        self.engine.prespawn(opts, attach=not detach)
        try:
            rec = self.engine.create(opts)
        except BaseException:
            self.engine.cancel_prespawn()
            raise
        cid = rec["Id"]
        if detach:
            self.engine.start(cid)
            return Container(self, cid)
        out: list[bytes] = []
        err: list[bytes] = []
        code = 125
        try:
            sock = self.engine.start(cid, attach=True)
            assert sock is not None
            with sock:
                for kind, payload in read_frames(sock):
                    if kind == mon.OUT:
                        out.append(payload)
                    elif kind in (mon.ERR, mon.FAIL):
                        err.append(payload)
                    elif kind == mon.EXIT:
                        code = int(payload)
        except ContainerError as exc:
            code = exc.code
            err.append(str(exc).encode())
        finally:
            if rm:
                self.engine.remove(cid, force=True, volumes=True)
        return Result(code, b"".join(out).decode(errors="replace"), b"".join(err).decode(errors="replace"))

    @contextmanager
    def container(self, image: str, command: Sequence[str] | str | None = None, **kw: Any) -> Iterator[Container]:
        """A started container, removed (with its anonymous volumes) when the block ends."""
        kw.pop("detach", None)
        kw.pop("rm", None)
        c = self.run(image, command, detach=True, **kw)
        try:
            yield c
        finally:
            c.remove(force=True, volumes=True)


_default: Client | None = None


def default_client() -> Client:
    global _default
    if _default is None:
        _default = Client()
    return _default


def run(image: str, command: Sequence[str] | str | None = None, **kw: Any) -> Any:
    """``hako.run("busybox", ["echo", "hi"]) -> Result(exit_code=0, output="hi\\n")``."""
    return default_client().run(image, command, **kw)


def container(image: str, command: Sequence[str] | str | None = None, **kw: Any) -> Any:
    return default_client().container(image, command, **kw)


class _Lazy:
    """``hako.containers`` / ``hako.volumes``: the default client's collections, made on first use."""

    def __init__(self, attr: str) -> None:
        self._attr = attr

    def __getattr__(self, name: str) -> Any:
        return getattr(getattr(default_client(), self._attr), name)


containers = _Lazy("containers")
volumes = _Lazy("volumes")
