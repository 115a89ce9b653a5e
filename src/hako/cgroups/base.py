"""The driver interface and what both drivers share: file I/O that names the file and the
value in its errors, recursive removal, signalling every process."""

from __future__ import annotations

import errno
import os
import time
from abc import ABC, abstractmethod

from hako.errors import HakoError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from hako.cgroups.resources import Resources

SIGKILL = 9  # signal.SIGKILL without importing signal (and enum) on the start-up path

# How long destroy() waits for exiting processes to leave a cgroup (rmdir answers EBUSY).
RMDIR_WAIT = 5.0
# How long freeze()/thaw() wait for the kernel to report the new state.
FREEZE_WAIT = 10.0


def read(path: str) -> str:
    """Read a cgroup file in one go; os.open/os.read skip the io stack (stats reads many)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode()
    finally:
        os.close(fd)


def read_opt(path: str) -> str | None:
    try:
        return read(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        # Some files exist but cannot be read in this kernel configuration.
        if e.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENODEV):
            return None
        raise


def read_int(path: str, default: int = 0) -> int:
    """An integer file; "max" (v2's no-limit) reads as 0 like runc reports it."""
    s = read_opt(path)
    if s is None:
        return default
    s = s.strip()
    if s == "max" or not s:
        return 0
    return int(s)


def read_keyed(path: str) -> dict[str, int]:
    """Files of "key value" lines (memory.stat, cpu.stat, memory.events, oom_control)."""
    s = read_opt(path)
    out: dict[str, int] = {}
    if s is None:
        return out
    for line in s.splitlines():
        k, _, v = line.partition(" ")
        if v:
            try:
                out[k] = int(v)
            except ValueError:
                continue
    return out


def write(path: str, value: str, what: str = "") -> None:
    """Write one value; a missing file means the controller (or feature) is not there."""
    hint = f" (for {what})" if what else ""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        ctrl = os.path.basename(path).split(".", 1)[0]
        raise HakoError(
            f"cannot write {value!r} to {path}{hint}: the file does not exist; the {ctrl} "
            "controller or this feature is not available on this host"
        ) from None
    except OSError as e:
        raise HakoError(f"cannot open {path}{hint} to write {value!r}: {e.strerror}") from None
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise HakoError(f"cannot write {value!r} to {path}{hint}: {e.strerror}") from None
    finally:
        os.close(fd)


def read_procs(path: str) -> list[int]:
    s = read_opt(path)
    return [int(x) for x in s.split()] if s else []


def walk_procs(top: str) -> list[int]:
    """Every pid in ``top`` and the cgroups below it."""
    out: list[int] = []
    for dirpath, _, _ in os.walk(top):
        out.extend(read_procs(os.path.join(dirpath, "cgroup.procs")))
    return out


def rmdir_tree(top: str, deadline: float) -> None:
    """Remove a cgroup and its children, deepest first; wait out EBUSY from exiting tasks."""
    if not os.path.isdir(top):
        return
    dirs = [dirpath for dirpath, _, _ in os.walk(top, topdown=False)]
    for d in dirs:
        delay = 0.001
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    pids = read_procs(os.path.join(d, "cgroup.procs"))
                    more = f" (processes still inside: {pids[:10]})" if pids else ""
                    raise HakoError(f"cannot remove cgroup {d}: {e.strerror}{more}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)


def wait_for(check: Callable[[], bool], what: str, timeout: float = FREEZE_WAIT) -> None:
    """Poll ``check()`` with a growing pause until it is true; the kernel gives no better
    signal for v1 freezer state changes."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not check():
        if time.monotonic() > deadline:
            raise HakoError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


class CgroupManager(ABC):
    """One cgroup (per hierarchy on v1, one directory on v2) and everything done to it."""

    version: int

    @abstractmethod
    def dirs(self) -> list[str]:
        """Every host directory this manager owns."""

    @abstractmethod
    def procs_dir(self) -> str:
        """The directory whose subtree lists the member processes."""

    @abstractmethod
    def create(self) -> None: ...

    @abstractmethod
    def apply(self, pid: int) -> None: ...

    def set(self, resources: dict[str, Any], *, path: str = "linux.resources") -> None:
        """Validate ``resources`` (errors name ``path``) and write them."""
        # Imported here: validation (re, dataclasses) is only needed by create and update.
        from hako.cgroups.resources import parse

        self.set_parsed(parse(resources, path), path)

    @abstractmethod
    def set_parsed(self, r: Resources, path: str = "linux.resources") -> None: ...

    def update(self, resources: dict[str, Any], *, path: str = "resources") -> None:
        """Change a live cgroup: only the fields given are written."""
        self.set(resources, path=path)

    @abstractmethod
    def freeze(self) -> None: ...

    @abstractmethod
    def thaw(self) -> None: ...

    @abstractmethod
    def is_frozen(self) -> bool: ...

    @abstractmethod
    def stats(self) -> dict[str, Any]: ...

    @abstractmethod
    def oom_kill_count(self) -> int: ...

    @abstractmethod
    def save(self) -> dict[str, Any]: ...

    def events(self, interval: float = 5.0) -> Iterator[dict[str, Any]]:
        """OOM notifications as {"type": "oom"}, until the cgroup is removed; drivers override
        with a kernel notification. The fallback polls the oom_kill counter every ``interval``
        seconds."""
        return self._poll_oom(self.oom_kill_count(), interval)

    def _poll_oom(self, last: int, interval: float) -> Iterator[dict[str, Any]]:
        while self.exists():
            time.sleep(interval)
            now = self.oom_kill_count()
            if now > last:
                last = now
                yield {"type": "oom"}

    def pids(self) -> list[int]:
        return walk_procs(self.procs_dir())

    def exists(self) -> bool:
        return os.path.isdir(self.procs_dir())

    def kill_all(self, sig: int = SIGKILL) -> None:
        """Signal every process. Frozen first so nothing forks between listing and signalling;
        a cgroup that was frozen (a paused container) stays frozen, unless the signal is
        SIGKILL, which frozen v1 tasks only act on once thawed."""
        if not self.exists():
            return
        if not self.pids():
            # Nothing to signal and nobody to fork (delete of a stopped container): skip the
            # freeze/thaw round trip, keeping only SIGKILL's promise to leave it thawed.
            if sig == SIGKILL and self.is_frozen():
                self.thaw()
            return
        was_frozen = self.is_frozen()
        try:
            self.freeze()
        except HakoError:
            # A task stuck in the kernel can keep the freezer from settling (freeze() undoes
            # itself then); signalling without it beats not signalling at all.
            pass
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if not was_frozen or sig == SIGKILL:
                self.thaw()

    def destroy(self) -> None:
        deadline = time.monotonic() + RMDIR_WAIT
        for d in self.dirs():
            rmdir_tree(d, deadline)
