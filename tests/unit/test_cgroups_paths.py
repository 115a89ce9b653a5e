import os

import pytest

from hako.cgroups import paths
from hako.errors import ConfigError, HakoError


def test_absolute_path_ignores_own_cgroup() -> None:
    assert paths.in_hierarchy("/a/b/", "id", "/own") == "/a/b"


def test_relative_and_default_paths_nest_under_own_cgroup() -> None:
    assert paths.in_hierarchy("a/b", "id", "/own") == "/own/a/b"
    assert paths.in_hierarchy("", "c1", "/own") == "/own/hako-c1"
    assert paths.in_hierarchy("", "c1", "/") == "/hako-c1"


def test_dotdot_is_rejected_with_the_spec_path() -> None:
    with pytest.raises(ConfigError) as e:
        paths.in_hierarchy("/a/../../etc", "id", "/")
    assert e.value.path == "linux.cgroupsPath"


def test_host_dir_strips_the_mount_root() -> None:
    assert paths.host_dir("/sys/fs/cgroup/memory", "/", "/a/b") == "/sys/fs/cgroup/memory/a/b"
    assert paths.host_dir("/sys/fs/cgroup", "/ctr", "/ctr/a") == "/sys/fs/cgroup/a"
    assert paths.host_dir("/sys/fs/cgroup/", "/", "/") == "/sys/fs/cgroup"


def test_protected_prefixes_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.PROTECT_ENV, "/process_api:/other")
    with pytest.raises(HakoError, match="protected"):
        paths.check_not_protected("/process_api/x/hako-c1")
    paths.check_not_protected("/process_apix/y")
    paths.check_not_protected("/hako-test-1/c")


def test_systemd_driver_without_systemd_is_a_clear_error() -> None:
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd runs here")
    with pytest.raises(HakoError, match="systemd is not running"):
        paths.check_systemd("system.slice:hako:c1")
    assert paths.is_systemd_path("system.slice:hako:c1")
    assert not paths.is_systemd_path("/a:b:c")
