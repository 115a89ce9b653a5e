"""The cgroup v2 driver: one directory in the unified hierarchy."""

from __future__ import annotations

import os

from hako.cgroups import stats as st
from hako.cgroups.base import (
    CgroupManager,
    read_int,
    read_keyed,
    read_opt,
    wait_for,
    write,
)
from hako.errors import ConfigError, HakoError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from hako.cgroups.resources import BlockIO, Cpu, Memory, Resources


class V2Manager(CgroupManager):
    version = 2

    def __init__(self, mountpoint: str, path: str) -> None:
        """``path``: the host directory of the cgroup, below ``mountpoint``."""
        self.mountpoint = mountpoint.rstrip("/") or "/"
        self.path = path

    def dirs(self) -> list[str]:
        return [self.path]

    def procs_dir(self) -> str:
        return self.path

    def save(self) -> dict[str, Any]:
        return {"version": 2, "mountpoint": self.mountpoint, "path": self.path}

    # -- lifecycle ----------------------------------------------------------------------------

    def _levels(self) -> list[str]:
        rel = os.path.relpath(self.path, self.mountpoint)
        if rel == "." or rel.startswith(".."):
            raise HakoError(f"cgroup {self.path} is not below the cgroup2 mount {self.mountpoint}")
        out, cur = [], self.mountpoint
        for part in rel.split("/"):
            cur = os.path.join(cur, part)
            out.append(cur)
        return out

    def create(self) -> None:
        """mkdir down to the cgroup, enabling on the way every controller the host delegates.

        "Delegated" means enabled in the hierarchy root's cgroup.subtree_control: the root
        itself is never written (it belongs to the host's init), and a controller it does not
        hand down stays off. Enabling can fail where a level has processes of its own (the
        no-internal-processes rule); that is only an error once set() needs the controller,
        and then it names the missing file.
        """
        root_enabled = set((read_opt(f"{self.mountpoint}/cgroup.subtree_control") or "").split())
        levels = self._levels()
        for i, lvl in enumerate(levels):
            try:
                os.mkdir(lvl, 0o755)
            except FileExistsError:
                pass
            except OSError as e:
                raise HakoError(f"cannot create cgroup {lvl}: {e.strerror}") from None
            if i == len(levels) - 1:
                break
            available = set((read_opt(f"{lvl}/cgroup.controllers") or "").split())
            enabled = set((read_opt(f"{lvl}/cgroup.subtree_control") or "").split())
            want = (available & root_enabled) - enabled
            for c in sorted(want):
                try:
                    write(f"{lvl}/cgroup.subtree_control", f"+{c}")
                except HakoError:
                    pass

    def apply(self, pid: int) -> None:
        write(f"{self.path}/cgroup.procs", str(pid), f"moving pid {pid} into the cgroup")

    # -- limits -------------------------------------------------------------------------------

    def set_parsed(self, r: Resources, path: str = "linux.resources") -> None:
        d = self.path
        if r.cpu:
            self._set_cpu(r.cpu, path)
        if r.memory:
            self._set_memory(r.memory, path)
        if r.pids_limit is not None and r.pids_limit != 0:
            write(f"{d}/pids.max", str(r.pids_limit) if r.pids_limit > 0 else "max", f"{path}.pids.limit")
        if r.block_io:
            self._set_io(r.block_io, path)
        for h in r.hugepage_limits or []:
            write(f"{d}/hugetlb.{h.page_size}.max", str(h.limit), f"{path}.hugepageLimits")
        if r.network and (r.network.class_id is not None or r.network.priorities):
            raise HakoError(
                f"{path}.network: classID and priorities need the v1 net_cls/net_prio controllers, "
                "which cgroup v2 does not have"
            )
        if r.rdma:
            for dev, lim in r.rdma.items():
                hh = "max" if lim.hca_handles is None else str(lim.hca_handles)
                o = "max" if lim.hca_objects is None else str(lim.hca_objects)
                write(f"{d}/rdma.max", f"{dev} hca_handle={hh} hca_object={o}", f"{path}.rdma.{dev}")
        if r.unified:
            for key, val in r.unified.items():
                if not os.path.exists(f"{d}/{key}"):
                    ctrl = key.split(".", 1)[0]
                    raise HakoError(
                        f"{path}.unified.{key}: {d}/{key} does not exist (is the {ctrl} controller "
                        f"enabled? {d}/cgroup.controllers: {(read_opt(f'{d}/cgroup.controllers') or '').strip()!r})"
                    )
                write(f"{d}/{key}", val, f"{path}.unified.{key}")
        if r.devices is not None:
            from hako.cgroups import bpf_devices  # ctypes: only when devices are set

            bpf_devices.attach(d, r.devices)

    def _set_cpu(self, c: Cpu, path: str) -> None:
        p, d = f"{path}.cpu", self.path
        if c.realtime_runtime or c.realtime_period:
            raise HakoError(f"{p}.realtimeRuntime/realtimePeriod: cgroup v2 has no realtime CPU limits")
        if c.shares:
            from hako.cgroups.resources import shares_to_weight

            write(f"{d}/cpu.weight", str(shares_to_weight(c.shares)), f"{p}.shares")
        if c.quota or c.period:
            if c.quota:
                quota = str(c.quota) if c.quota > 0 else "max"
            else:
                # Only the period changes (an update): cpu.max takes both, keep the quota.
                quota = (read_opt(f"{d}/cpu.max") or "max").split()[0]
            value = quota if not c.period else f"{quota} {c.period}"
            write(f"{d}/cpu.max", value, f"{p}.quota/period")
        if c.burst is not None:
            write(f"{d}/cpu.max.burst", str(c.burst), f"{p}.burst")
        if c.idle is not None:
            write(f"{d}/cpu.idle", str(c.idle), f"{p}.idle")
        if c.mems:
            write(f"{d}/cpuset.mems", c.mems, f"{p}.mems")
        if c.cpus:
            write(f"{d}/cpuset.cpus", c.cpus, f"{p}.cpus")

    def _set_memory(self, m: Memory, path: str) -> None:
        p, d = f"{path}.memory", self.path
        if m.kernel_tcp:
            raise HakoError(f"{p}.kernelTCP: cgroup v2 has no separate TCP memory limit")
        if m.disable_oom_killer:
            raise HakoError(f"{p}.disableOOMKiller: cgroup v2 cannot disable the OOM killer")
        if m.swappiness is not None:
            raise HakoError(f"{p}.swappiness: cgroup v2 has no per-cgroup swappiness")
        if m.use_hierarchy is False:
            raise HakoError(f"{p}.useHierarchy: cgroup v2 is always hierarchical")
        from hako.cgroups.resources import swap_v2

        limit = m.limit
        if limit is None and m.swap not in (None, 0, -1):
            # Only swap changes (an update): it is memory+swap, measured against the
            # current memory.max.
            cur = (read_opt(f"{d}/memory.max") or "max").strip()
            limit = -1 if cur == "max" else int(cur)
        try:
            swap = swap_v2(limit, m.swap)
        except ConfigError as e:
            raise ConfigError(f"{p}.swap", str(e).split(": ", 1)[-1]) from None
        if m.limit and m.limit > 0 and m.check_before_update:
            usage = read_int(f"{d}/memory.current")
            if usage > m.limit:
                raise HakoError(f"{p}.limit: {m.limit} is below the current usage {usage} of {d}")
        if swap is not None:
            if os.path.exists(f"{d}/memory.swap.max"):
                write(f"{d}/memory.swap.max", "max" if swap == -1 else str(swap), f"{p}.swap")
            elif swap != -1:
                raise HakoError(f"{p}.swap: {d}/memory.swap.max is missing; swap accounting is off")
        if m.limit:
            write(f"{d}/memory.max", "max" if m.limit == -1 else str(m.limit), f"{p}.limit")
        if m.reservation:
            write(f"{d}/memory.low", "max" if m.reservation == -1 else str(m.reservation), f"{p}.reservation")

    def _set_io(self, b: BlockIO, path: str) -> None:
        p, d = f"{path}.blockIO", self.path
        from hako.cgroups.resources import blkio_to_io_weight

        bfq = os.path.exists(f"{d}/io.bfq.weight")
        if b.leaf_weight or any(wd.leaf_weight for wd in b.weight_device or []):
            raise HakoError(f"{p}.leafWeight: cgroup v2 has no leaf weights")
        if b.weight:
            if bfq:
                write(f"{d}/io.bfq.weight", str(b.weight), f"{p}.weight")
            else:
                write(f"{d}/io.weight", f"default {blkio_to_io_weight(b.weight)}", f"{p}.weight")
        for i, wd in enumerate(b.weight_device or []):
            if wd.weight:
                if bfq:
                    write(f"{d}/io.bfq.weight", f"{wd.major}:{wd.minor} {wd.weight}", f"{p}.weightDevice[{i}]")
                else:
                    write(f"{d}/io.weight", f"{wd.major}:{wd.minor} {blkio_to_io_weight(wd.weight)}",
                          f"{p}.weightDevice[{i}]")
        for key, _, name, devs in b.throttles():
            for i, t in enumerate(devs):
                write(f"{d}/io.max", f"{t.major}:{t.minor} {name}={t.rate or 'max'}", f"{p}.{key}[{i}]")

    # -- freezer ------------------------------------------------------------------------------

    def _frozen_event(self) -> bool:
        return read_keyed(f"{self.path}/cgroup.events").get("frozen", 0) == 1

    def freeze(self) -> None:
        write(f"{self.path}/cgroup.freeze", "1", "pause")
        try:
            wait_for(self._frozen_event, f"{self.path}/cgroup.events to report frozen 1")
        except HakoError:
            write(f"{self.path}/cgroup.freeze", "0", "pause (undo)")
            raise

    def thaw(self) -> None:
        write(f"{self.path}/cgroup.freeze", "0", "resume")
        wait_for(lambda: not self._frozen_event(), f"{self.path}/cgroup.events to report frozen 0")

    def is_frozen(self) -> bool:
        s = read_opt(f"{self.path}/cgroup.freeze")
        return s is not None and s.strip() == "1"

    def kill_all(self, sig: int = 9) -> None:
        # cgroup.kill (5.14+) kills the whole subtree atomically, forks included.
        if sig == 9 and os.path.exists(f"{self.path}/cgroup.kill"):
            write(f"{self.path}/cgroup.kill", "1", "kill")
            return
        super().kill_all(sig)

    # -- reading ------------------------------------------------------------------------------

    def oom_kill_count(self) -> int:
        return read_keyed(f"{self.path}/memory.events").get("oom_kill", 0)

    def stats(self) -> dict[str, Any]:
        return st.stats_v2(self.path)

    def events(self, interval: float = 5.0) -> Iterator[dict[str, Any]]:
        """OOM kills, woken by the kernel's file-modified notification on memory.events.

        The file is opened and the counter read before this returns, so a kill right after
        the call is counted."""
        path = f"{self.path}/memory.events"
        if not os.path.exists(path):
            return super().events(interval)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        return self._oom_poll(fd, self._oom_kills(fd), interval)

    @staticmethod
    def _oom_kills(fd: int) -> int:
        # Reading through the polled fd re-arms its notification.
        for line in os.pread(fd, 4096, 0).decode().splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
        return 0

    def _oom_poll(self, fd: int, last: int, interval: float) -> Iterator[dict[str, Any]]:
        import select

        try:
            poller = select.poll()
            poller.register(fd, select.POLLPRI)
            while self.exists():
                poller.poll(int(interval * 1000))
                try:
                    now = self._oom_kills(fd)
                except OSError:
                    return
                for _ in range(now - last):
                    yield {"type": "oom"}
                last = max(last, now)
        finally:
            os.close(fd)
