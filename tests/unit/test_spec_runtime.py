"""parse_config / parse_process: dataclasses out, ConfigError naming the JSON path of the first bad field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from hako.errors import ConfigError
from hako.spec.runtime import parse_config, parse_process
from hako.testing.config import default_config

SAMPLES = Path("/work/shared/clients/samples")


def test_default_config_parses() -> None:
    spec = parse_config(default_config(["sh", "-c", "true"]))
    assert spec.process is not None and spec.process.args == ["sh", "-c", "true"]
    assert spec.root.path == "rootfs" and spec.root.readonly
    assert [n.type for n in spec.linux.namespaces] == ["pid", "network", "ipc", "uts", "mount", "cgroup"]
    assert spec.mounts[0].destination == "/proc" and spec.hostname == "hako"
    assert spec.process.capabilities is not None and "CAP_KILL" in spec.process.capabilities.bounding
    assert spec.process.rlimits[0].type == "RLIMIT_NOFILE" and spec.process.no_new_privileges
    assert spec.linux.resources == {"devices": [{"allow": False, "access": "rwm"}]}


@pytest.mark.parametrize("name", ["podman-create-config.json", "podman-create-tty-config.json",
                                  "containerd-create-config.json"])
def test_client_samples_parse(name: str) -> None:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    spec = parse_config(json.loads(path.read_text()))
    assert spec.process is not None and spec.process.args


@pytest.mark.parametrize("name", ["podman-exec-process.json", "containerd-exec-tty-process.json"])
def test_client_process_samples_parse(name: str) -> None:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    assert parse_process(json.loads(path.read_text())).args


def _bad(mutate: Any) -> str:
    cfg = default_config()
    mutate(cfg)
    with pytest.raises(ConfigError) as ei:
        parse_config(cfg)
    return ei.value.path


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda c: c.pop("ociVersion"), "ociVersion"),
        (lambda c: c.__setitem__("ociVersion", "2.0.0"), "ociVersion"),
        (lambda c: c.pop("root"), "root"),
        (lambda c: c["root"].pop("path"), "root.path"),
        (lambda c: c["root"].__setitem__("readonly", "yes"), "root.readonly"),
        (lambda c: c["process"].__setitem__("args", []), "process.args"),
        (lambda c: c["process"].__setitem__("args", ["sh", 1]), "process.args[1]"),
        (lambda c: c["process"].__setitem__("cwd", "tmp"), "process.cwd"),
        (lambda c: c["process"].__setitem__("env", ["NOEQUALS"]), "process.env[0]"),
        (lambda c: c["process"]["user"].__setitem__("gid", "0"), "process.user.gid"),
        (lambda c: c["process"]["capabilities"].__setitem__("effective", ["CAP_KILL", "CAP_NOPE"]),
         "process.capabilities.effective[1]"),
        (lambda c: c["process"]["rlimits"][0].__setitem__("soft", 2048), "process.rlimits[0]"),
        (lambda c: c["process"].__setitem__("oomScoreAdj", 5000), "process.oomScoreAdj"),
        (lambda c: c["mounts"][1].__setitem__("destination", "dev"), "mounts[1].destination"),
        (lambda c: c["mounts"][1].__setitem__("options", "ro"), "mounts[1].options"),
        (lambda c: c["linux"]["namespaces"].append({"type": "pid"}), "linux.namespaces[6].type"),
        (lambda c: c["linux"]["namespaces"].append({"type": "net"}), "linux.namespaces[6].type"),
        (lambda c: c["linux"]["namespaces"].append({"type": "user"}), "linux.uidMappings"),
        (lambda c: c["linux"].__setitem__("uidMappings", [{"containerID": 0, "hostID": 1}]), "linux.uidMappings[0].size"),
        (lambda c: c["linux"].__setitem__("timeOffsets", {"monotonic": {"secs": 1}}), "linux.timeOffsets"),
        (lambda c: c["linux"].__setitem__("devices", [{"type": "x", "path": "/dev/x"}]), "linux.devices[0].type"),
        (lambda c: c["linux"].__setitem__("rootfsPropagation", "weird"), "linux.rootfsPropagation"),
        (lambda c: c["linux"]["maskedPaths"].append("proc/x"), "linux.maskedPaths[10]"),
        (lambda c: c["linux"].__setitem__("sysctl", {"net.x": 1}), "linux.sysctl.net.x"),
        (lambda c: c.__setitem__("hooks", {"prestart": [{"path": "relative"}]}), "hooks.prestart[0].path"),
        (lambda c: c.__setitem__("hooks", {"poststop": [{"path": "/x", "timeout": 0}]}), "hooks.poststop[0].timeout"),
        (lambda c: c.__setitem__("annotations", {"a": 1}), "annotations.a"),
        (lambda c: c["linux"].__setitem__("namespaces", [{"type": "mount"}]), "hostname"),
    ],
)
def test_errors_name_the_json_path(mutate: Any, path: str) -> None:
    assert _bad(mutate) == path


def test_not_an_object() -> None:
    with pytest.raises(ConfigError, match="JSON object"):
        parse_config([])  # type: ignore[arg-type]


def test_process_is_optional_for_parse_but_kept() -> None:
    cfg = default_config()
    cfg.pop("process")
    assert parse_config(cfg).process is None


def test_user_namespace_and_time_offsets() -> None:
    cfg = copy.deepcopy(default_config())
    cfg["linux"]["namespaces"] += [{"type": "user"}, {"type": "time"}]
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 10}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 10}]
    cfg["linux"]["timeOffsets"] = {"boottime": {"secs": 5, "nanosecs": 1}}
    spec = parse_config(cfg)
    assert spec.linux.uid_mappings[0].host_id == 1000
    assert spec.linux.time_offsets["boottime"].secs == 5
    ns = spec.linux.namespace("user")
    assert ns is not None and ns.path == ""


def test_joined_namespace_path_must_be_absolute() -> None:
    cfg = default_config()
    cfg["linux"]["namespaces"][1] = {"type": "network", "path": "proc/1/ns/net"}
    with pytest.raises(ConfigError) as ei:
        parse_config(cfg)
    assert ei.value.path == "linux.namespaces[1].path"
