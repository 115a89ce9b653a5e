"""prepare_rootfs / finalize_rootfs on the real kernel, in a forked child with its own namespaces.

Each test forks; the child unshares the namespaces a container gets, forks again (pid 1 of the
new pid namespace), prepares a busybox rootfs, pivots into it and sends back what it sees.
The host's mount table must be the same afterwards.
"""

from __future__ import annotations

import ctypes
import errno
import os
import pickle
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hako.errors import ConfigError, KernelError
from hako.runtime.rootfs import finalize_rootfs, prepare_rootfs
from hako.runtime.validate import validate_mounts
from hako.spec.runtime import Device, IdMapping, Linux, Mount, Namespace, Root, Spec

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CONTAINER = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWCGROUP

_libc = ctypes.CDLL(None, use_errno=True)
FDS_BEFORE: set[str] = set()  # in the container child: its open fds before prepare_rootfs

DEFAULT_MOUNTS = [
    Mount("/proc", "proc", "proc"),
    Mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
    Mount(
        "/dev/pts",
        "devpts",
        "devpts",
        ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    ),
    Mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
    Mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
    Mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
]
MASKED = ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware", "/proc/scsi"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
NAMESPACES = ["pid", "network", "ipc", "uts", "mount", "cgroup"]


def make_spec(
    mounts: list[Mount] | None = None,
    *,
    readonly: bool = False,
    namespaces: list[str] | None = None,
    **linux: Any,
) -> Spec:
    ns = [Namespace(t) for t in (NAMESPACES if namespaces is None else namespaces)]
    return Spec(
        "1.0.2",
        Root("rootfs", readonly),
        mounts=list(DEFAULT_MOUNTS if mounts is None else mounts),
        linux=Linux(namespaces=ns, **linux),
    )


class ContainerFailed(Exception):
    def __init__(self, kind: str, message: str, err: int | None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind, self.message, self.errno = kind, message, err


def _unshare(flags: int) -> None:
    if _libc.unshare(flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"unshare: {os.strerror(e)}")


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _mountinfo(rootfs: Path) -> set[str]:
    """The host mounts a container setup could wrongly touch: the system ones and any under the
    test's directory. (Other tests running in parallel may mount elsewhere meanwhile.)"""
    mine = str(rootfs.parent.parent)
    out = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point.startswith(mine) or not point.startswith(("/tmp/", "/run/", "/var/", "/mnt/", "/work/")):
            out.add(line)
    return out


def run_container(
    spec: Spec,
    rootfs: Path,
    probe: Callable[[], Any],
    *,
    flags: int = CONTAINER,
    userns: bool = False,
    no_pivot: bool = False,
    finalize: bool = True,
    bundle: Path | None = None,
    before_pivot: Callable[[], None] | None = None,
    host_setup: Callable[[], None] | None = None,
    id_map: str = "0 0 4294967295",
) -> Any:
    """Prepare ``rootfs`` per ``spec`` in fresh namespaces and return ``probe()``'s result."""
    before = _mountinfo(rootfs)
    r, w = os.pipe()
    sync_r, sync_w = os.pipe()  # parent -> child: "your id maps are written"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(r)
        os.close(sync_w)
        status = 1
        try:
            if host_setup is not None:
                # Mounts made here, as the host's root in a private mount namespace, are locked
                # once a user namespace's mount namespace copies them.
                _unshare(CLONE_NEWNS)
                host_setup()
            if userns:
                _unshare(CLONE_NEWUSER)
                os.write(w, b"U")
                os.read(sync_r, 1)
                # Become the namespace's root (as the runtime's init does): with a shifted
                # mapping our host uid 0 is unmapped in there and could create nothing.
                os.setgroups([])
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
            _unshare(flags)
            inner = os.fork() if flags & CLONE_NEWPID else 0
            if inner:
                _, st = os.waitpid(inner, 0)
                os._exit(os.waitstatus_to_exitcode(st))
            try:
                global FDS_BEFORE
                FDS_BEFORE = set(os.listdir("/proc/self/fd"))
                prepare_rootfs(
                    spec,
                    rootfs,
                    no_pivot=no_pivot,
                    in_userns=userns,
                    bundle=bundle,
                    before_pivot=before_pivot,
                )
                if finalize:
                    finalize_rootfs(spec)
                result: Any = ("ok", probe())
            except BaseException as e:  # noqa: BLE001 - everything goes back to the test
                result = ("err", type(e).__name__, str(e), getattr(e, "errno", None))
            os.write(w, b"R" + pickle.dumps(result))
            status = 0
        except BaseException as e:  # noqa: BLE001
            os.write(w, b"R" + pickle.dumps(("err", type(e).__name__, str(e), getattr(e, "errno", None))))
        finally:
            os._exit(status)
    os.close(w)
    os.close(sync_r)
    try:
        if userns:
            assert os.read(r, 1) == b"U"
            Path(f"/proc/{pid}/uid_map").write_text(id_map + "\n")
            Path(f"/proc/{pid}/gid_map").write_text(id_map + "\n")
            os.write(sync_w, b"G")
        data = _read_all(r)
    finally:
        os.close(r)
        os.close(sync_w)
        os.waitpid(pid, 0)
    assert _mountinfo(rootfs) == before, "the host's mount table changed"
    assert data[:1] == b"R", "the container child died without an answer"
    result = pickle.loads(data[1:])
    if result[0] == "err":
        raise ContainerFailed(*result[1:])
    return result[1]


def mounts_by_point() -> dict[str, dict[str, str]]:
    """The container's mountinfo: mount point -> {fstype, opts, super, root, source} (last wins)."""
    out = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        f = line.split()
        sep = f.index("-")
        out[f[4]] = {
            "root": f[3],
            "opts": f[5],
            "fstype": f[sep + 1],
            "source": f[sep + 2],
            "super": f[sep + 3],
        }
    return out


def try_write(path: str) -> int:
    """0 when ``path`` could be opened for writing, else the errno."""
    try:
        with open(path, "a"):
            return 0
    except OSError as e:
        return e.errno or -1


@pytest.fixture
def rootfs(tmp_path: Path, busybox_rootfs: Path) -> Path:
    dest = tmp_path / "bundle" / "rootfs"
    dest.parent.mkdir()
    subprocess.run(["cp", "-a", str(busybox_rootfs), str(dest)], check=True)
    return dest


# ---------------------------------------------------------------------------------------------


def test_default_container_rootfs(rootfs: Path) -> None:
    spec = make_spec(
        [
            *DEFAULT_MOUNTS,
            Mount("/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]),
        ],
        readonly=True,
        masked_paths=MASKED,
        readonly_paths=READONLY,
    )

    def probe() -> dict[str, Any]:
        devs = {}
        for name in ("null", "zero", "full", "random", "urandom", "tty"):
            st = os.lstat(f"/dev/{name}")
            devs[name] = (
                stat.S_ISCHR(st.st_mode),
                os.major(st.st_rdev),
                os.minor(st.st_rdev),
                stat.S_IMODE(st.st_mode),
            )
        links = {n: os.readlink(f"/dev/{n}") for n in ("fd", "stdin", "stdout", "stderr", "ptmx")}
        return {
            "mounts": mounts_by_point(),
            "devs": devs,
            "links": links,
            "cwd": os.getcwd(),
            "bin": os.path.exists("/bin/busybox"),
            "root_write": try_write("/newfile"),
            "shm_write": try_write("/dev/shm/x"),
            "proc_sys_write": try_write("/proc/sys/kernel/hostname"),
            "keys": Path("/proc/keys").read_bytes() if os.path.exists("/proc/keys") else b"",
            "acpi": os.listdir("/proc/acpi") if os.path.isdir("/proc/acpi") else [],
            "firmware": os.listdir("/sys/firmware"),
            "pid": os.getpid(),
            "leaked_fds": sorted(set(os.listdir("/proc/self/fd")) - FDS_BEFORE),
        }

    out = run_container(spec, rootfs, probe)
    mnt = out["mounts"]
    assert out["cwd"] == "/" and out["bin"] and out["pid"] == 1
    assert out["leaked_fds"] == []
    assert mnt["/"]["opts"].startswith("ro")
    assert out["root_write"] == errno.EROFS
    assert mnt["/proc"]["fstype"] == "proc"
    dev = mnt["/dev"]
    assert dev["fstype"] == "tmpfs" and "nosuid" in dev["opts"].split(",")
    assert "size=65536k" in dev["super"] and "mode=755" in dev["super"]
    pts = mnt["/dev/pts"]
    assert pts["fstype"] == "devpts" and {"nosuid", "noexec"} <= set(pts["opts"].split(","))
    assert {"gid=5", "mode=620", "ptmxmode=666"} <= set(pts["super"].split(","))
    shm = mnt["/dev/shm"]
    assert {"nosuid", "nodev", "noexec", "rw"} <= set(shm["opts"].split(",")) and out["shm_write"] == 0
    assert mnt["/dev/mqueue"]["fstype"] == "mqueue"
    sys_ = mnt["/sys"]
    assert sys_["fstype"] == "sysfs" and {"ro", "nosuid", "nodev", "noexec"} <= set(sys_["opts"].split(","))
    # Per-mount ro only: the superblock (shared with nobody here, but it could be) stays rw.
    assert sys_["super"].startswith("rw")
    cg = mnt["/sys/fs/cgroup"]
    assert cg["fstype"] == "tmpfs" and cg["opts"].startswith("ro")
    subs = {p: v for p, v in mnt.items() if p.startswith("/sys/fs/cgroup/")}
    assert subs and all(
        v["fstype"] in ("cgroup", "cgroup2") and v["opts"].startswith("ro") for v in subs.values()
    )
    for name, (is_chr, _major, _minor, mode) in out["devs"].items():
        assert is_chr and mode == 0o666, name
    assert out["devs"]["null"][1:3] == (1, 3) and out["devs"]["tty"][1:3] == (5, 0)
    assert out["devs"]["urandom"][1:3] == (1, 9)
    assert out["links"] == {
        "fd": "/proc/self/fd",
        "stdin": "/proc/self/fd/0",
        "stdout": "/proc/self/fd/1",
        "stderr": "/proc/self/fd/2",
        "ptmx": "pts/ptmx",
    }
    assert mnt["/proc/sys"]["opts"].startswith("ro") and out["proc_sys_write"] == errno.EROFS
    assert {"nosuid", "nodev", "noexec"} <= set(mnt["/proc/sys"]["opts"].split(","))
    assert out["keys"] == b""
    assert out["acpi"] == [] and out["firmware"] == []
    assert mnt["/sys/firmware"]["fstype"] == "tmpfs" and mnt["/sys/firmware"]["opts"].startswith("ro")


def test_linux_devices(rootfs: Path) -> None:
    devices = [
        Device("c", "/dev/net/tun", 10, 200, 0o600, 0, 0),
        Device("b", "/dev/loop-test", 7, 99, 0o640, 1000, 1001),
        Device("p", "/dev/myfifo", file_mode=0o620),
        Device("u", "/dev/null", 1, 3, 0o600),  # overrides the default /dev/null mode
    ]
    spec = make_spec(devices=devices)

    def probe() -> dict[str, tuple[int, int, int, int, int, int]]:
        out = {}
        for d in ("/dev/net/tun", "/dev/loop-test", "/dev/myfifo", "/dev/null"):
            st = os.lstat(d)
            out[d] = (
                stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode),
                os.major(st.st_rdev),
                os.minor(st.st_rdev),
                st.st_uid,
                st.st_gid,
            )
        return out

    out = run_container(spec, rootfs, probe)
    assert out["/dev/net/tun"] == (stat.S_IFCHR, 0o600, 10, 200, 0, 0)
    assert out["/dev/loop-test"] == (stat.S_IFBLK, 0o640, 7, 99, 1000, 1001)
    assert out["/dev/myfifo"][:2] == (stat.S_IFIFO, 0o620)
    assert out["/dev/null"][:4] == (stat.S_IFCHR, 0o600, 1, 3)


def test_sysctl_applied_in_the_containers_namespaces(rootfs: Path) -> None:
    spec = make_spec(
        sysctl={"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234", "kernel/domainname": "hako.test"},
        readonly_paths=["/proc/sys"],
    )

    def probe() -> list[str]:
        return [
            Path(p).read_text().strip()
            for p in (
                "/proc/sys/net/ipv4/ip_forward",
                "/proc/sys/kernel/shmmni",
                "/proc/sys/kernel/domainname",
            )
        ]

    host = Path("/proc/sys/kernel/shmmni").read_text()
    assert run_container(spec, rootfs, probe) == ["1", "1234", "hako.test"]
    assert Path("/proc/sys/kernel/shmmni").read_text() == host


def test_sysctl_outside_a_namespace_is_refused(rootfs: Path) -> None:
    spec = make_spec(sysctl={"vm.swappiness": "10"})
    with pytest.raises(ContainerFailed) as e:
        run_container(spec, rootfs, lambda: None)
    assert e.value.kind == ConfigError.__name__ and "linux.sysctl.vm.swappiness" in e.value.message


def test_bind_mounts_tmpfs_and_propagation(rootfs: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "hello").write_text("hi")
    (tmp_path / "bundle" / "hostsfile").write_text("127.0.0.1 hako\n")
    (rootfs / "etc/keep").write_text("kept")
    nested = tmp_path / "nested"
    nested.mkdir()
    mounts = [
        *DEFAULT_MOUNTS,
        Mount("/data", "bind", str(data), ["rbind", "ro", "nosuid", "rprivate"]),
        Mount("/data-rw", "none", str(data), ["bind"]),
        Mount("/etc/hosts2", "bind", "hostsfile", ["bind", "ro"]),  # relative to the bundle
        Mount("/etc", "tmpfs", "tmpfs", ["tmpcopyup", "mode=750", "size=1m"]),
        Mount("/run/small", "tmpfs", "tmpfs", ["size=64k", "mode=1777", "noexec", "ro"]),
        Mount("/deep/er/dir", "tmpfs", "tmpfs", ["shared"]),
    ]
    spec = make_spec(mounts)

    def probe() -> dict[str, Any]:
        return {
            "mounts": mounts_by_point(),
            "hello": Path("/data/hello").read_text(),
            "data_write": try_write("/data/new"),
            "data_rw_write": try_write("/data-rw/new"),
            "hosts2": Path("/etc/hosts2").read_text() if os.path.exists("/etc/hosts2") else None,
            "keep": Path("/etc/keep").read_text(),
            "etc_mode": stat.S_IMODE(os.stat("/etc").st_mode),
            "small_write": try_write("/run/small/x"),
            "small_mode": stat.S_IMODE(os.stat("/run/small").st_mode),
        }

    out = run_container(spec, rootfs, probe, bundle=tmp_path / "bundle")
    mnt = out["mounts"]
    assert out["hello"] == "hi" and out["data_write"] == errno.EROFS
    assert {"ro", "nosuid"} <= set(mnt["/data"]["opts"].split(","))
    assert out["data_rw_write"] == 0 and (data / "new").exists()
    # The tmpfs over /etc came after the /etc/hosts2 bind: it covers the bind, but tmpcopyup
    # copied what /etc showed, the bound file's content included.
    assert out["keep"] == "kept" and out["hosts2"] == "127.0.0.1 hako\n" and out["etc_mode"] == 0o750
    assert mnt["/etc"]["fstype"] == "tmpfs"
    small = mnt["/run/small"]
    assert small["opts"].startswith("ro") and "noexec" in small["opts"] and "size=64k" in small["super"]
    assert out["small_write"] == errno.EROFS and out["small_mode"] == 0o1777
    assert (rootfs / "deep/er/dir").is_dir()


def test_propagation_fields(rootfs: Path) -> None:
    spec = make_spec(
        [
            Mount("/proc", "proc", "proc"),
            Mount("/shared", "tmpfs", "tmpfs", ["rshared"]),
            Mount("/private", "tmpfs", "tmpfs", ["private"]),
        ]
    )

    def probe() -> dict[str, str]:
        out = {}
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            f = line.split()
            out[f[4]] = " ".join(f[6 : f.index("-")])
        return out

    out = run_container(spec, rootfs, probe)
    assert out["/shared"].startswith("shared:")
    assert out["/private"] == ""


def test_no_pivot_moves_the_root(rootfs: Path) -> None:
    spec = make_spec(readonly=True)

    def probe() -> dict[str, Any]:
        return {"ls": sorted(os.listdir("/")), "mounts": mounts_by_point(), "write": try_write("/x")}

    out = run_container(spec, rootfs, probe, no_pivot=True)
    assert "bin" in out["ls"] and "busybox" in os.listdir(rootfs / "bin")
    assert out["mounts"]["/"]["opts"].startswith("ro") and out["write"] == errno.EROFS


def test_user_namespace_binds_devices_and_sysfs(rootfs: Path) -> None:
    # No network namespace: sysfs cannot be mounted from a user namespace, so /sys is bound.
    spec = make_spec(
        namespaces=["user", "pid", "ipc", "uts", "mount"], masked_paths=MASKED, readonly_paths=READONLY
    )
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS

    def probe() -> dict[str, Any]:
        st = os.stat("/dev/null")
        return {
            "mounts": mounts_by_point(),
            "null": (stat.S_ISCHR(st.st_mode), st.st_rdev == os.makedev(1, 3)),
            "sys_write": try_write("/sys/kernel/uevent_helper"),
        }

    out = run_container(spec, rootfs, probe, flags=flags, userns=True)
    mnt = out["mounts"]
    assert out["null"] == (True, True)
    assert mnt["/dev/null"]["fstype"] == "devtmpfs" or mnt["/dev/null"]["root"] == "/null"
    assert mnt["/sys"]["fstype"] == "sysfs" and mnt["/sys"]["opts"].startswith("ro")
    assert out["sys_write"] in (errno.EROFS, errno.EACCES, errno.ENOENT)


def test_errors_name_the_mount(rootfs: Path) -> None:
    spec = make_spec([Mount("/proc", "proc", "proc"), Mount("/x", "no-such-fs", "none")])
    with pytest.raises(ContainerFailed) as e:
        run_container(spec, rootfs, lambda: None)
    assert e.value.kind == KernelError.__name__ and e.value.errno == errno.ENODEV
    assert "no-such-fs on /x (mounts[1])" in e.value.message


def test_readonly_dev_cgroup2_and_root_propagation(rootfs: Path) -> None:
    mounts = [
        Mount("/proc", "proc", "proc"),
        Mount("/dev", "tmpfs", "tmpfs", ["nosuid", "mode=755", "ro"]),
        Mount("/sys/fs/cgroup", "cgroup2", "cgroup", ["nosuid", "nodev", "noexec", "ro"]),
    ]
    spec = make_spec(mounts, rootfs_propagation="rshared")

    def probe() -> dict[str, Any]:
        fields = {}
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            f = line.split()
            fields[f[4]] = " ".join(f[6 : f.index("-")])
        return {
            "mounts": mounts_by_point(),
            "null": os.major(os.stat("/dev/null").st_rdev),
            "dev_write": try_write("/dev/newfile"),
            "root_prop": fields["/"],
        }

    out = run_container(spec, rootfs, probe)
    mnt = out["mounts"]
    assert mnt["/dev"]["opts"].startswith("ro") and out["dev_write"] == errno.EROFS and out["null"] == 1
    assert mnt["/sys/fs/cgroup"]["fstype"] == "cgroup2" and mnt["/sys/fs/cgroup"]["opts"].startswith("ro")
    assert out["root_prop"].startswith("shared:")


def test_before_pivot_console_and_overlay(rootfs: Path, tmp_path: Path) -> None:
    lower, upper, work = (tmp_path / n for n in ("lower", "upper", "work"))
    for d in (lower, upper, work):
        d.mkdir()
    (lower / "from-lower").write_text("low")
    mounts = [
        *DEFAULT_MOUNTS,
        Mount("/ov", "overlay", "overlay", [f"lowerdir={lower}", f"upperdir={upper}", f"workdir={work}"]),
    ]
    spec = make_spec(mounts)
    seen: list[str] = []

    def probe() -> dict[str, Any]:
        from hako.runtime.rootfs import mount_console

        _master, slave = os.openpty()  # through /dev/ptmx -> pts/ptmx: our devpts instance
        n = int(os.ttyname(slave).rsplit("/", 1)[1])
        mount_console(slave)
        st = os.stat("/dev/console")
        Path("/ov/new").write_text("up")
        return {
            "console": (os.major(st.st_rdev), os.minor(st.st_rdev), n),
            "hook": seen,
            "low": Path("/ov/from-lower").read_text(),
        }

    def hook() -> None:
        # Like a createContainer hook: the host's root, the container's mounts in place.
        seen.append(str(os.path.ismount(str(rootfs / "proc"))))

    out = run_container(spec, rootfs, probe, before_pivot=hook)
    assert out["hook"] == ["True"]
    assert out["console"][0] == 136 and out["console"][1] == out["console"][2]
    assert out["low"] == "low" and (upper / "new").read_text() == "up"


def test_user_namespace_remount_keeps_locked_flags(rootfs: Path, tmp_path: Path) -> None:
    src = tmp_path / "locked"
    src.mkdir()

    def host_setup() -> None:
        from hako.sys import mount as m

        m.mount("tmpfs", str(src), "tmpfs", m.MS_NOSUID | m.MS_NODEV | m.MS_NOATIME, "size=1m")
        (src / "f").write_text("x")

    spec = make_spec(
        [*DEFAULT_MOUNTS, Mount("/locked", "bind", str(src), ["bind", "ro"])],
        namespaces=["user", "pid", "ipc", "uts", "mount", "network"],
    )
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET

    def probe() -> dict[str, Any]:
        return {"opts": mounts_by_point()["/locked"]["opts"].split(","), "write": try_write("/locked/f")}

    out = run_container(spec, rootfs, probe, flags=flags, userns=True, host_setup=host_setup)
    assert {"ro", "nosuid", "nodev", "noatime"} <= set(out["opts"])
    assert out["write"] == errno.EROFS


@pytest.fixture
def open_rootfs(busybox_rootfs: Path) -> Iterator[Path]:
    """A rootfs whose parents host uid 100000 may traverse (pytest's tmp dirs are 0700)."""
    top = Path(tempfile.mkdtemp(prefix="hako-rootfs-test-"))
    try:
        top.chmod(0o755)
        (top / "bundle").mkdir(mode=0o755)
        dest = top / "bundle" / "rootfs"
        subprocess.run(["cp", "-a", str(busybox_rootfs), str(dest)], check=True)
        yield dest
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_shifted_user_namespace_full_config(open_rootfs: Path) -> None:
    # A rootless-style mapping (container root = host 100000): the rootfs's host-root files
    # show up as nobody, yet every mount, device bind, masked and read-only path works.
    rootfs = open_rootfs
    mounts = [
        *DEFAULT_MOUNTS,
        Mount("/sys/fs/cgroup", "cgroup", "cgroup", ["ro", "nosuid", "nodev", "noexec"]),
    ]
    spec = make_spec(
        mounts,
        readonly=True,
        namespaces=["user", *NAMESPACES],
        masked_paths=MASKED,
        readonly_paths=READONLY,
        sysctl={"net.ipv4.ip_forward": "1"},
    )

    def probe() -> dict[str, Any]:
        return {
            "mounts": mounts_by_point(),
            "uid": os.getuid(),
            "root_write": try_write("/x"),
            "fwd": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
        }

    out = run_container(spec, rootfs, probe, userns=True, id_map="0 100000 65536")
    mnt = out["mounts"]
    assert out["uid"] == 0 and out["root_write"] == errno.EROFS and out["fwd"] == "1"
    assert mnt["/dev/null"]["fstype"] == "devtmpfs"  # bound from the host: no mknod in a userns
    assert mnt["/sys/fs/cgroup/cpu"]["opts"].startswith("ro")
    assert mnt["/proc/sys"]["opts"].startswith("ro")


def test_remount_entry_changes_an_earlier_mount(rootfs: Path) -> None:
    mounts = [
        Mount("/proc", "proc", "proc"),
        Mount("/scratch", "tmpfs", "tmpfs", ["size=1m"]),
        Mount("/scratch", "", "", ["remount", "bind", "ro", "nodev"]),
    ]
    spec = make_spec(mounts)
    validate_mounts(spec)

    def probe() -> dict[str, Any]:
        return {"opts": mounts_by_point()["/scratch"]["opts"].split(","), "write": try_write("/scratch/x")}

    out = run_container(spec, rootfs, probe)
    assert {"ro", "nodev"} <= set(out["opts"]) and out["write"] == errno.EROFS


def test_old_kernel_fallbacks(rootfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without openat2 (< 5.6) and the new mount API (< 5.2) the same config must come out alike.
    from hako.runtime import paths
    from hako.sys import mount as m

    def enosys(*_a: Any, **_k: Any) -> int:
        raise KernelError("syscall", errno.ENOSYS)

    monkeypatch.setattr(m, "openat2", enosys)
    monkeypatch.setattr(m, "open_tree", enosys)
    monkeypatch.setattr(paths, "_have_openat2", None)
    (rootfs / "rolink").symlink_to("../../../../etc")
    spec = make_spec(
        readonly=True,
        masked_paths=MASKED,
        readonly_paths=[*READONLY, "/rolink"],
        sysctl={"net.ipv4.ip_forward": "1"},
    )

    def probe() -> dict[str, Any]:
        mnt = mounts_by_point()
        return {
            "sys": mnt["/proc/sys"]["opts"].split(","),
            "etc": mnt["/etc"]["opts"].split(","),
            "fwd": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
            "keys": Path("/proc/keys").read_bytes(),
        }

    out = run_container(spec, rootfs, probe)
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(out["sys"]) and "ro" in out["etc"]
    assert out["fwd"] == "1" and out["keys"] == b""


def test_finalize_without_proc(rootfs: Path) -> None:
    # No /proc in the container: no magic links after the pivot, yet root and /dev go ro and
    # a masked path outside /proc is covered.
    (rootfs / "etc/secret").write_text("s")
    mounts = [Mount("/dev", "tmpfs", "tmpfs", ["ro", "nosuid"]), Mount("/sys", "sysfs", "sysfs", ["ro"])]
    spec = make_spec(mounts, readonly=True, masked_paths=["/etc/secret", "/sys/firmware"])

    def probe() -> dict[str, Any]:
        return {
            "root": try_write("/x"),
            "dev": try_write("/dev/x"),
            "secret": Path("/etc/secret").read_text(),
            "firmware": os.listdir("/sys/firmware"),
            "proc": os.listdir("/proc"),
        }

    out = run_container(spec, rootfs, probe)
    assert out == {"root": errno.EROFS, "dev": errno.EROFS, "secret": "", "firmware": [], "proc": []}


def test_recursive_read_only_reaches_submounts(rootfs: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)

    def host_setup() -> None:
        from hako.sys import mount as m

        m.mount("tmpfs", str(src / "sub"), "tmpfs", 0, "size=1m")

    mounts = [
        *DEFAULT_MOUNTS,
        Mount("/rro", "bind", str(src), ["rbind", "rro", "rnosuid"]),
        Mount("/ro", "bind", str(src), ["rbind", "ro"]),
    ]

    def probe() -> dict[str, Any]:
        mnt = mounts_by_point()
        return {
            "rro_sub": mnt["/rro/sub"]["opts"].split(","),
            "ro_sub": mnt["/ro/sub"]["opts"].split(","),
            "writes": [try_write(p) for p in ("/rro/x", "/rro/sub/x", "/ro/x", "/ro/sub/x")],
        }

    out = run_container(make_spec(mounts), rootfs, probe, host_setup=host_setup)
    assert {"ro", "nosuid"} <= set(out["rro_sub"])
    # Plain "ro" is the top mount only, as with runc and mount(8).
    assert "rw" in out["ro_sub"]
    assert out["writes"] == [errno.EROFS, errno.EROFS, errno.EROFS, 0]


def test_idmapped_bind_mount(rootfs: Path, tmp_path: Path) -> None:
    src = tmp_path / "owned"
    src.mkdir()
    (src / "by1000").write_text("x")
    os.chown(src / "by1000", 1000, 1000)
    (src / "byroot").write_text("y")
    # On-disk 1000 shows as 0 and 0 is unmapped (overflow id), like runc's idmap with the
    # mapping written as a user namespace's map.
    maps = [IdMapping(1000, 0, 1)]
    mounts = [
        *DEFAULT_MOUNTS,
        Mount("/idm", "bind", str(src), ["rbind", "idmap", "ro"], uid_mappings=maps, gid_mappings=maps),
    ]
    spec = make_spec(mounts)
    validate_mounts(spec)

    def probe() -> dict[str, Any]:
        a, b = os.stat("/idm/by1000"), os.stat("/idm/byroot")
        return {
            "by1000": (a.st_uid, a.st_gid),
            "byroot": b.st_uid,
            "opts": mounts_by_point()["/idm"]["opts"].split(","),
            "write": try_write("/idm/new"),
        }

    out = run_container(spec, rootfs, probe)
    assert out["by1000"] == (0, 0) and out["byroot"] == 65534
    assert "ro" in out["opts"] and "idmapped" in out["opts"] and out["write"] == errno.EROFS
    assert os.stat(src / "by1000").st_uid == 1000  # the host's view is unchanged
