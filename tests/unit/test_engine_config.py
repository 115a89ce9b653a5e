"""Docker flags and image config merged into Config and the OCI spec (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hako.engine.config import (
    DEFAULT_CAPS,
    CreateOptions,
    build_spec,
    capabilities,
    host_config,
    merge_config,
    parse_bytes,
    parse_duration,
    parse_mount,
    parse_restart,
    parse_signal,
    parse_volume,
    resolve_user,
)
from hako.errors import ConfigError

IMAGE = {"Entrypoint": ["/entry"], "Cmd": ["serve"], "Env": ["PATH=/bin", "A=image"], "WorkingDir": "/app",
         "User": "app", "StopSignal": "SIGQUIT", "Labels": {"from": "image"},
         "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5_000_000_000}}


def test_parsers() -> None:
    assert parse_bytes("16m") == 16 << 20 and parse_bytes("1g") == 1 << 30 and parse_bytes("512") == 512
    assert parse_duration("1m30s") == 90 and parse_duration("200ms") == pytest.approx(0.2)
    assert parse_signal("SIGKILL") == 9 and parse_signal("term") == 15 and parse_signal("10") == 10
    assert parse_restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    for bad in ("sometimes", "always:2"):
        with pytest.raises(ConfigError):
            parse_restart(bad)
    with pytest.raises(ConfigError):
        parse_bytes("lots")


def test_volume_and_mount_specs() -> None:
    v = parse_volume("/host:/ctr:ro")
    assert (v.type, v.source, v.target, v.readonly) == ("bind", "/host", "/ctr", True)
    v = parse_volume("data:/d")
    assert (v.type, v.source) == ("volume", "data")
    v = parse_volume("/anon")
    assert (v.type, v.source) == ("volume", "")
    m = parse_mount("type=tmpfs,target=/t,tmpfs-size=1m")
    assert m.type == "tmpfs" and m.options == ["size=1048576"]
    with pytest.raises(ConfigError):
        parse_volume("data:relative")


def test_merge_follows_docker_rules() -> None:
    cfg = merge_config(CreateOptions("img"), IMAGE, "a" * 64, "img")
    assert cfg["Entrypoint"] == ["/entry"] and cfg["Cmd"] == ["serve"] and cfg["User"] == "app"
    assert cfg["StopSignal"] == "SIGQUIT" and cfg["WorkingDir"] == "/app" and cfg["Hostname"] == "a" * 12
    assert "A=image" in cfg["Env"] and f"HOSTNAME={'a' * 12}" in cfg["Env"]
    cfg = merge_config(CreateOptions("img", ["x"], env=["A=user"], labels=["l=1"]), IMAGE, "b" * 64, "img")
    assert cfg["Cmd"] == ["x"] and "A=user" in cfg["Env"] and "A=image" not in cfg["Env"]
    assert cfg["Labels"] == {"from": "image", "l": "1"}
    cfg = merge_config(CreateOptions("img", ["-c", "y"], entrypoint="sh"), IMAGE, "c" * 64, "img")
    assert cfg["Entrypoint"] == ["sh"] and cfg["Cmd"] == ["-c", "y"]
    cfg = merge_config(CreateOptions("img", health_cmd="curl x", health_retries=2), IMAGE, "d" * 64, "img")
    assert cfg["Healthcheck"]["Test"] == ["CMD-SHELL", "curl x"] and cfg["Healthcheck"]["Retries"] == 2
    with pytest.raises(ConfigError):
        merge_config(CreateOptions("img"), {}, "e" * 64, "img")


def test_capabilities() -> None:
    assert capabilities(False, [], []) == DEFAULT_CAPS
    caps = capabilities(False, ["sys_admin"], ["NET_RAW"])
    assert "CAP_SYS_ADMIN" in caps and "CAP_NET_RAW" not in caps
    assert capabilities(False, [], ["ALL"]) == []
    assert len(capabilities(True, [], [])) > 38


def test_resolve_user_reads_the_images_passwd(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\napp:x:1001:\nwheel:x:10:app\n")
    assert resolve_user(tmp_path, "") == {"uid": 0, "gid": 0}
    assert resolve_user(tmp_path, "app") == {"uid": 1000, "gid": 1001, "additionalGids": [10]}
    assert resolve_user(tmp_path, "app:wheel") == {"uid": 1000, "gid": 10}
    assert resolve_user(tmp_path, "42:7") == {"uid": 42, "gid": 7}
    with pytest.raises(ConfigError):
        resolve_user(tmp_path, "nobody-here")


def test_build_spec_applies_limits_and_security(tmp_path: Path) -> None:
    opts = CreateOptions("img", ["sh"], memory=16 << 20, cpus=1.5, pids_limit=20, read_only=True,
                         ulimits=["nofile=100:200"], security_opt=["no-new-privileges", "seccomp=unconfined"],
                         network="host", init=True)
    cid = "f" * 64
    rec = {"Id": cid, "Config": merge_config(opts, {}, cid, "img"), "HostConfig": host_config(opts, "runc", "/p"),
           "Mounts": [{"Type": "volume", "Name": "v", "Source": "", "Destination": "/v", "RW": False}],
           "Hako": {"CgroupsPath": f"/p/{cid}"}}
    spec = build_spec(rec, tmp_path, tmp_path, lambda n: Path("/vols") / n / "_data")
    res = spec["linux"]["resources"]
    assert res["memory"] == {"limit": 16 << 20, "swap": 32 << 20}
    assert res["cpu"] == {"period": 100000, "quota": 150000} and res["pids"] == {"limit": 20}
    assert spec["root"]["readonly"] is True and spec["process"]["noNewPrivileges"] is True
    assert "seccomp" not in spec["linux"]
    assert {"type": "network"} not in spec["linux"]["namespaces"]
    assert spec["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]
    assert spec["process"]["args"][:2] == ["/sbin/hako-init", "--"]
    vol = [m for m in spec["mounts"] if m["destination"] == "/v"][0]
    assert vol["source"] == "/vols/v/_data" and "ro" in vol["options"]
    assert spec["linux"]["cgroupsPath"] == f"/p/{cid}"


def test_docker_seccomp_profile_resolves_includes_and_excludes(tmp_path: Path) -> None:
    import json
    import os

    arch = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}.get(os.uname().machine, "SCMP_ARCH_X86_64")
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [{"architecture": arch, "subArchitectures": []}],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["reboot"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_BOOT"]}},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["nosucharch"]}},
        ],
    }
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))

    def allowed(cap_add: list[str]) -> set[str]:
        opts = CreateOptions("img", ["sh"], security_opt=[f"seccomp={path}"], cap_add=cap_add)
        cid = "e" * 64
        rec = {"Id": cid, "Config": merge_config(opts, {}, cid, "img"), "HostConfig": host_config(opts, "runc", "/p"),
               "Mounts": [], "Hako": {"CgroupsPath": f"/p/{cid}"}}
        sec = build_spec(rec, tmp_path, tmp_path, lambda n: Path("/vols") / n)["linux"]["seccomp"]
        assert sec["defaultAction"] == "SCMP_ACT_ERRNO" and arch in sec["architectures"]
        assert all("includes" not in r and "excludes" not in r for r in sec["syscalls"])
        return {n for r in sec["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}

    # Docker's default caps: no SYS_ADMIN, no SYS_BOOT; the arch filter never matches.
    assert allowed([]) == {"read", "write", "reboot"}
    assert allowed(["SYS_ADMIN", "SYS_BOOT"]) == {"read", "write", "mount"}
