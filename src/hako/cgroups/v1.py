"""The cgroup v1 driver: one directory per mounted hierarchy (plus the unified directory on a
hybrid host, which runc also joins so that tools reading cgroup2 find the container)."""

from __future__ import annotations

import errno
import os

from hako.cgroups import stats as st
from hako.cgroups.base import (
    CgroupManager,
    read,
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

# Where the member processes are listed; any hierarchy would do, these are always mounted.
_PROCS_PREFERENCE = ("pids", "freezer", "memory", "cpu", "devices", "name=systemd")


def _mkdir_levels(mountpoint: str, target: str) -> list[str]:
    """mkdir each missing level from ``mountpoint`` down to ``target``; returns all levels
    below the mountpoint (existing ones too), top first."""
    rel = os.path.relpath(target, mountpoint)
    levels: list[str] = []
    cur = mountpoint
    if rel == ".":
        return levels
    for part in rel.split("/"):
        cur = os.path.join(cur, part)
        levels.append(cur)
        try:
            os.mkdir(cur, 0o755)
        except FileExistsError:
            pass
        except OSError as e:
            raise HakoError(f"cannot create cgroup {cur}: {e.strerror}") from None
    return levels


class V1Manager(CgroupManager):
    version = 1

    def __init__(self, paths: dict[str, tuple[str, str]], unified: tuple[str, str] | None = None) -> None:
        """``paths``: hierarchy key ("cpu", "cpu,cpuacct", "name=systemd") -> (mountpoint, dir);
        ``unified``: (mountpoint, dir) of the cgroup2 directory on a hybrid host."""
        self.paths = dict(paths)
        self.unified = unified
        self._by_ctrl: dict[str, str] = {}
        for key, (_, d) in self.paths.items():
            for c in key.split(","):
                self._by_ctrl[c] = d

    # -- where things are ---------------------------------------------------------------------

    def dirs(self) -> list[str]:
        out = [d for _, d in self.paths.values()]
        if self.unified:
            out.append(self.unified[1])
        return out

    def procs_dir(self) -> str:
        for c in _PROCS_PREFERENCE:
            if c in self._by_ctrl:
                return self._by_ctrl[c]
        return next(iter(self._by_ctrl.values()))

    def dir(self, controller: str, what: str = "") -> str:
        """The directory of ``controller``, or a clear error when it is not mounted."""
        d = self._by_ctrl.get(controller)
        if d is None:
            need = f"{what} needs" if what else "needs"
            raise HakoError(f"{need} the {controller} cgroup controller, which is not mounted on this host")
        return d

    def has(self, controller: str) -> bool:
        return controller in self._by_ctrl

    def save(self) -> dict[str, Any]:
        return {
            "version": 1,
            "paths": {k: list(v) for k, v in self.paths.items()},
            "unified": list(self.unified) if self.unified else None,
        }

    # -- lifecycle ----------------------------------------------------------------------------

    def create(self) -> None:
        for key, (mnt, d) in self.paths.items():
            levels = _mkdir_levels(mnt, d)
            if "cpuset" in key.split(","):
                self._fill_cpuset(mnt, levels)
        if self.unified:
            _mkdir_levels(*self.unified)

    @staticmethod
    def _fill_cpuset(mountpoint: str, levels: list[str]) -> None:
        # A new cpuset cgroup starts with empty cpus/mems and refuses tasks until both are set;
        # copy the parent's, level by level, unless someone already chose values.
        parent = mountpoint
        for lvl in levels:
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not read(os.path.join(lvl, f)).strip():
                    write(os.path.join(lvl, f), read(os.path.join(parent, f)).strip() or "\n")
            parent = lvl

    def apply(self, pid: int) -> None:
        for d in self.dirs():
            write(os.path.join(d, "cgroup.procs"), str(pid), f"moving pid {pid} into the cgroup")

    # -- limits -------------------------------------------------------------------------------

    def set_parsed(self, r: Resources, path: str = "linux.resources") -> None:
        if r.unified:
            raise ConfigError(f"{path}.unified", "needs cgroup v2; this host's containers use cgroup v1")
        if r.cpu:
            self._set_cpu(r.cpu, path)
        if r.memory:
            self._set_memory(r.memory, path)
        if r.pids_limit is not None and r.pids_limit != 0:
            d = self.dir("pids", f"{path}.pids.limit")
            write(f"{d}/pids.max", str(r.pids_limit) if r.pids_limit > 0 else "max", f"{path}.pids.limit")
        if r.block_io:
            self._set_blkio(r.block_io, path)
        if r.hugepage_limits:
            for h in r.hugepage_limits:
                what = f"{path}.hugepageLimits"
                if self.has("hugetlb"):
                    write(f"{self.dir('hugetlb')}/hugetlb.{h.page_size}.limit_in_bytes", str(h.limit), what)
                elif self.unified:
                    # Hybrid hosts may carry hugetlb on the unified hierarchy only.
                    write(f"{self.unified[1]}/hugetlb.{h.page_size}.max", str(h.limit), what)
                else:
                    self.dir("hugetlb", what)
        if r.network:
            if r.network.class_id is not None:
                d = self.dir("net_cls", f"{path}.network.classID")
                write(f"{d}/net_cls.classid", str(r.network.class_id), f"{path}.network.classID")
            if r.network.priorities:
                d = self.dir("net_prio", f"{path}.network.priorities")
                for name, prio in r.network.priorities:
                    write(f"{d}/net_prio.ifpriomap", f"{name} {prio}", f"{path}.network.priorities")
        if r.rdma:
            d = self.dir("rdma", f"{path}.rdma")
            for dev, lim in r.rdma.items():
                hh = "max" if lim.hca_handles is None else str(lim.hca_handles)
                o = "max" if lim.hca_objects is None else str(lim.hca_objects)
                write(f"{d}/rdma.max", f"{dev} hca_handle={hh} hca_object={o}", f"{path}.rdma.{dev}")
        if r.devices is not None:
            from hako.cgroups import devices_v1

            d = self.dir("devices", f"{path}.devices")
            for fname, line in devices_v1.writes(r.devices):
                write(f"{d}/{fname}", line, f"{path}.devices")

    def _set_cpu(self, c: Cpu, path: str) -> None:
        p = f"{path}.cpu"
        if c.cpus or c.mems:
            d = self.dir("cpuset", p)
            # mems first: a task must always have somewhere to allocate memory.
            if c.mems:
                write(f"{d}/cpuset.mems", c.mems, f"{p}.mems")
            if c.cpus:
                write(f"{d}/cpuset.cpus", c.cpus, f"{p}.cpus")
        needs_cpu = any(
            v for v in (c.shares, c.quota, c.period, c.burst, c.realtime_period, c.realtime_runtime)
        ) or c.idle is not None
        if not needs_cpu:
            return
        d = self.dir("cpu", p)
        if c.shares:
            write(f"{d}/cpu.shares", str(c.shares), f"{p}.shares")
            got = read_int(f"{d}/cpu.shares")
            if got != c.shares:
                raise HakoError(
                    f"{p}.shares: the kernel clamped cpu.shares {c.shares} to {got} "
                    "(allowed range is 2-262144)"
                )
        if c.period:
            try:
                write(f"{d}/cpu.cfs_period_us", str(c.period), f"{p}.period")
            except HakoError:
                # A period shorter than the current quota allows can only be set after the
                # quota; retry in that order.
                if not c.quota:
                    raise
                write(f"{d}/cpu.cfs_quota_us", str(c.quota), f"{p}.quota")
                write(f"{d}/cpu.cfs_period_us", str(c.period), f"{p}.period")
        if c.quota:
            write(f"{d}/cpu.cfs_quota_us", str(c.quota), f"{p}.quota")
        if c.burst is not None:
            write(f"{d}/cpu.cfs_burst_us", str(c.burst), f"{p}.burst")
        if c.realtime_period:
            write(f"{d}/cpu.rt_period_us", str(c.realtime_period), f"{p}.realtimePeriod")
        if c.realtime_runtime:
            write(f"{d}/cpu.rt_runtime_us", str(c.realtime_runtime), f"{p}.realtimeRuntime")
        if c.idle is not None:
            write(f"{d}/cpu.idle", str(c.idle), f"{p}.idle")

    def _set_memory(self, m: Memory, path: str) -> None:
        p = f"{path}.memory"
        needed = any(
            v is not None
            for v in (m.limit, m.reservation, m.swap, m.kernel_tcp, m.swappiness, m.disable_oom_killer,
                      m.use_hierarchy)
        )
        if not needed:
            return
        d = self.dir("memory", p)
        limit, swap = m.limit, m.swap
        # Unlimited memory without a swap setting means unlimited swap too.
        if limit == -1 and swap is None:
            swap = -1
        elif limit and limit > 0 and swap is None:
            # A cgroup without swap (memsw == limit) keeps none when only the limit changes;
            # raising the limit alone would otherwise hit memsw and fail with EINVAL.
            lim_now = read_int(f"{d}/memory.limit_in_bytes")
            sw_now = read_int(f"{d}/memory.memsw.limit_in_bytes", default=-2)
            if sw_now == lim_now and lim_now < 1 << 62:  # both "unlimited" is not "no swap"
                swap = limit
        if limit and m.check_before_update and limit > 0:
            usage = read_int(f"{d}/memory.usage_in_bytes")
            if usage > limit:
                raise HakoError(
                    f"{p}.limit: {limit} is below the current usage {usage} of {d} (checkBeforeUpdate)"
                )
        has_memsw = os.path.exists(f"{d}/memory.memsw.limit_in_bytes")
        if swap and not has_memsw and swap != -1:
            raise HakoError(
                f"{p}.swap: {d}/memory.memsw.limit_in_bytes is missing; swap accounting is off "
                "in this kernel (swapaccount=0)"
            )
        if limit and swap and has_memsw:
            # memory.limit must stay <= memsw.limit at every moment: raise memsw first when
            # growing, lower the limit first when shrinking.
            cur = read_int(f"{d}/memory.limit_in_bytes")
            if swap == -1 or cur < swap:
                write(f"{d}/memory.memsw.limit_in_bytes", str(swap), f"{p}.swap")
                write(f"{d}/memory.limit_in_bytes", str(limit), f"{p}.limit")
            else:
                write(f"{d}/memory.limit_in_bytes", str(limit), f"{p}.limit")
                write(f"{d}/memory.memsw.limit_in_bytes", str(swap), f"{p}.swap")
        else:
            if limit:
                write(f"{d}/memory.limit_in_bytes", str(limit), f"{p}.limit")
            if swap and has_memsw:
                write(f"{d}/memory.memsw.limit_in_bytes", str(swap), f"{p}.swap")
        if m.reservation:
            write(f"{d}/memory.soft_limit_in_bytes", str(m.reservation), f"{p}.reservation")
        if m.kernel_tcp:
            write(f"{d}/memory.kmem.tcp.limit_in_bytes", str(m.kernel_tcp), f"{p}.kernelTCP")
        if m.swappiness is not None:
            write(f"{d}/memory.swappiness", str(m.swappiness), f"{p}.swappiness")
        if m.disable_oom_killer is not None:
            write(f"{d}/memory.oom_control", "1" if m.disable_oom_killer else "0", f"{p}.disableOOMKiller")
        if m.use_hierarchy is not None:
            cur = read_int(f"{d}/memory.use_hierarchy")
            want = 1 if m.use_hierarchy else 0
            if cur != want:
                write(f"{d}/memory.use_hierarchy", str(want), f"{p}.useHierarchy")

    def _set_blkio(self, b: BlockIO, path: str) -> None:
        p = f"{path}.blockIO"
        d = self.dir("blkio", p)

        def pick(*names: str) -> str:
            # CFQ's blkio.weight is gone from current kernels; BFQ offers blkio.bfq.weight.
            for n in names:
                if os.path.exists(f"{d}/{n}"):
                    return f"{d}/{n}"
            return f"{d}/{names[0]}"

        if b.weight:
            write(pick("blkio.weight", "blkio.bfq.weight"), str(b.weight), f"{p}.weight")
        if b.leaf_weight:
            write(f"{d}/blkio.leaf_weight", str(b.leaf_weight), f"{p}.leafWeight")
        for i, wd in enumerate(b.weight_device or []):
            if wd.weight:
                write(pick("blkio.weight_device", "blkio.bfq.weight_device"),
                      f"{wd.major}:{wd.minor} {wd.weight}", f"{p}.weightDevice[{i}].weight")
            if wd.leaf_weight:
                write(f"{d}/blkio.leaf_weight_device", f"{wd.major}:{wd.minor} {wd.leaf_weight}",
                      f"{p}.weightDevice[{i}].leafWeight")
        for key, fname, _, devs in b.throttles():
            for i, t in enumerate(devs):
                write(f"{d}/{fname}", f"{t.major}:{t.minor} {t.rate}", f"{p}.{key}[{i}]")

    # -- freezer ------------------------------------------------------------------------------

    def _freezer_state(self) -> str:
        return read(f"{self.dir('freezer', 'pause')}/freezer.state").strip()

    def freeze(self) -> None:
        d = self.dir("freezer", "pause")

        def frozen() -> bool:
            state = read(f"{d}/freezer.state").strip()
            if state == "FROZEN":
                return True
            # A task stuck in an uninterruptible sleep can leave FREEZING for a while; asking
            # again nudges the freezer to retry the stragglers.
            write(f"{d}/freezer.state", "FROZEN", "pause")
            return False

        write(f"{d}/freezer.state", "FROZEN", "pause")
        try:
            wait_for(frozen, f"{d}/freezer.state to become FROZEN")
        except HakoError:
            # Half-frozen is the worst state to leave a container in: undo.
            write(f"{d}/freezer.state", "THAWED", "pause (undo)")
            raise

    def thaw(self) -> None:
        d = self.dir("freezer", "resume")
        write(f"{d}/freezer.state", "THAWED", "resume")
        wait_for(lambda: read(f"{d}/freezer.state").strip() == "THAWED", f"{d}/freezer.state to become THAWED")

    def is_frozen(self) -> bool:
        if not self.has("freezer"):
            return False
        s = read_opt(f"{self.dir('freezer')}/freezer.state")
        return s is not None and s.strip() == "FROZEN"

    def kill_all(self, sig: int = 9) -> None:
        if self.has("freezer"):
            super().kill_all(sig)
            return
        # Without a freezer a fork can race the listing: for SIGKILL, repeat until empty.
        for _ in range(10 if sig == 9 else 1):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass

    # -- reading ------------------------------------------------------------------------------

    def oom_kill_count(self) -> int:
        if not self.has("memory"):
            return 0
        return read_keyed(f"{self.dir('memory')}/memory.oom_control").get("oom_kill", 0)

    def stats(self) -> dict[str, Any]:
        return st.stats_v1(self._by_ctrl, self.unified[1] if self.unified else None)

    def events(self, interval: float = 5.0) -> Iterator[dict[str, Any]]:
        """OOM notifications through an eventfd registered on memory.oom_control.

        Registered before this returns (not at the first next()), so an OOM that happens
        right after the call is not missed."""
        if not self.has("memory") or not hasattr(os, "eventfd"):
            return super().events(interval)
        d = self.dir("memory")
        efd = os.eventfd(0, os.EFD_CLOEXEC)
        ofd = os.open(f"{d}/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        try:
            write(f"{d}/cgroup.event_control", f"{efd} {ofd}", "OOM notifications")
        except BaseException:
            os.close(ofd)
            os.close(efd)
            raise
        return self._oom_eventfd(efd, ofd, interval)

    def _oom_eventfd(self, efd: int, ofd: int, interval: float) -> Iterator[dict[str, Any]]:
        import select

        try:
            poller = select.poll()
            poller.register(efd, select.POLLIN)
            while True:
                if not poller.poll(int(interval * 1000)):
                    if not self.exists():
                        return
                    continue
                try:
                    os.eventfd_read(efd)
                except OSError as e:
                    if e.errno != errno.EAGAIN:
                        raise
                if not self.exists():
                    # The eventfd also fires when the cgroup is removed.
                    return
                yield {"type": "oom"}
        finally:
            os.close(ofd)
            os.close(efd)
