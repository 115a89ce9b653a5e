"""validate_mounts: config errors in mounts, devices, paths and sysctl name their JSON path."""

from __future__ import annotations

import pytest

from hako.errors import ConfigError
from hako.runtime.validate import validate_mounts, validate_sysctl
from hako.spec.runtime import Device, IdMapping, Linux, Mount, Namespace, Root, Spec


def spec(mounts: list[Mount] | None = None, **linux: object) -> Spec:
    return Spec("1.0.2", Root("rootfs"), mounts=mounts or [], linux=Linux(**linux))  # type: ignore[arg-type]


OK = [
    Mount("/proc", "proc", "proc"),
    Mount("/dev", "tmpfs", "tmpfs", ["nosuid", "mode=755", "size=65536k"]),
    Mount("/data", "", "/srv", ["rbind", "ro", "rprivate"]),
    Mount("/etc/hosts", "bind", "hosts", ["ro"]),
    Mount("/proc/cpuinfo", "bind", "/var/lib/lxcfs/proc/cpuinfo", ["bind"]),
]


def test_a_good_config_passes() -> None:
    validate_mounts(
        spec(OK, rootfs_propagation="rslave", masked_paths=["/proc/kcore"], readonly_paths=["/proc/sys"])
    )


@pytest.mark.parametrize(
    ("mount", "path"),
    [
        (Mount("proc", "proc", "proc"), r"mounts\[5\]\.destination"),
        (Mount("", "tmpfs", "tmpfs"), r"mounts\[5\]\.destination"),
        (Mount("/x", "tmpfs", "tmpfs", ["size=big"]), r"mounts\[5\]\.options"),
        (Mount("/x", "tmpfs", "tmpfs", ["mode=8"]), r"mounts\[5\]\.options"),
        (Mount("/x", "", "", ["bind"]), r"mounts\[5\]\.source"),
        (Mount("/x", "", "src"), r"mounts\[5\]\.type"),
        (Mount("/x", "none", "/src", ["rbind", "idmap"]), r"mounts\[5\]\.uidMappings"),
        (Mount("/x", "tmpfs", "tmpfs", ["idmap"]), r"mounts\[5\]\.options"),
        (Mount("/x", "proc", "proc", ["tmpcopyup"]), r"mounts\[5\]\.options"),
        (Mount("/proc", "tmpfs", "tmpfs"), r"mounts\[5\]\.destination"),
        (Mount("/proc/self/root", "bind", "/", ["rbind"]), r"mounts\[5\]\.destination"),
        (Mount("/proc/sys/../kcore", "bind", "/dev/zero"), r"mounts\[5\]\.destination"),
        (Mount("/x", "tmpfs", "tmpfs", ["ro", ""]), r"mounts\[5\]\.options\[1\]"),
    ],
)
def test_bad_mounts(mount: Mount, path: str) -> None:
    with pytest.raises(ConfigError, match=path):
        validate_mounts(spec([*OK, mount]))


def test_rootfs_propagation() -> None:
    with pytest.raises(ConfigError, match="linux.rootfsPropagation"):
        validate_mounts(spec(rootfs_propagation="rshared-ish"))


@pytest.mark.parametrize(
    ("dev", "path"),
    [
        (Device("x", "/dev/foo", 1, 3), r"linux\.devices\[0\]\.type"),
        (Device("c", "dev/foo", 1, 3), r"linux\.devices\[0\]\.path"),
        (Device("b", "/dev/foo", -1, 3), r"linux\.devices\[0\]"),
    ],
)
def test_bad_devices(dev: Device, path: str) -> None:
    with pytest.raises(ConfigError, match=path):
        validate_mounts(spec(devices=[dev]))


def test_relative_masked_and_readonly_paths() -> None:
    with pytest.raises(ConfigError, match=r"linux\.maskedPaths\[1\]"):
        validate_mounts(spec(masked_paths=["/ok", "proc/kcore"]))
    with pytest.raises(ConfigError, match=r"linux\.readonlyPaths\[0\]"):
        validate_mounts(spec(readonly_paths=["proc/sys"]))


def ns(*types: str) -> list[Namespace]:
    return [Namespace(t) for t in types]


@pytest.mark.parametrize(
    ("key", "needs"),
    [
        ("net.ipv4.ip_forward", "network"),
        ("net/ipv4/conf/eth0.100/forwarding", "network"),
        ("kernel.shmmax", "ipc"),
        ("fs.mqueue.msg_max", "ipc"),
        ("kernel.hostname", "uts"),
    ],
)
def test_sysctl_needs_its_namespace(key: str, needs: str) -> None:
    validate_sysctl(spec(sysctl={key: "1"}, namespaces=ns(needs)))
    others = [t for t in ("network", "ipc", "uts", "mount", "pid") if t != needs]
    with pytest.raises(ConfigError, match=f"linux.sysctl.{key}: .*host's {needs} namespace"):
        validate_mounts(spec(sysctl={key: "1"}, namespaces=ns(*others)))


@pytest.mark.parametrize("key", ["vm.swappiness", "kernel.panic", "net..x", "net.ipv4/../x", ""])
def test_sysctl_not_namespaced_or_malformed(key: str) -> None:
    with pytest.raises(ConfigError, match=r"linux\.sysctl\."):
        validate_sysctl(spec(sysctl={key: "1"}, namespaces=ns("network", "ipc", "uts")))


def test_sysctl_in_a_joined_host_namespace_is_refused() -> None:
    with pytest.raises(ConfigError, match="linux.sysctl.net.ipv4.ip_forward"):
        validate_sysctl(
            spec(sysctl={"net.ipv4.ip_forward": "1"}, namespaces=[Namespace("network", "/proc/self/ns/net")])
        )


def test_idmapped_mounts() -> None:
    maps = [IdMapping(0, 1000, 10)]
    ok = Mount("/x", "bind", "/src", ["rbind", "ridmap"], uid_mappings=maps, gid_mappings=maps)
    validate_mounts(spec([ok]))
    with pytest.raises(ConfigError, match=r"mounts\[0\]\.options: idmapped mounts in a user namespace"):
        validate_mounts(spec([ok], namespaces=[Namespace("user")]))
    no_opt = Mount("/x", "bind", "/src", ["rbind"], uid_mappings=maps, gid_mappings=maps)
    with pytest.raises(ConfigError, match="need the idmap or ridmap option"):
        validate_mounts(spec([no_opt]))
    bad = Mount("/x", "bind", "/src", ["idmap"], uid_mappings=[IdMapping(0, 0, 0)], gid_mappings=maps)
    with pytest.raises(ConfigError, match=r"mounts\[0\]\.uidMappings\[0\]"):
        validate_mounts(spec([bad]))
