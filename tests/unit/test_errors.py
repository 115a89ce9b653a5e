import errno

from hako.errors import ConfigError, HakoError, KernelError


def test_config_error_names_the_json_path() -> None:
    err = ConfigError("linux.namespaces[2].type", 'unknown namespace type "foo"')
    assert isinstance(err, HakoError)
    assert str(err) == 'linux.namespaces[2].type: unknown namespace type "foo"'
    assert err.path == "linux.namespaces[2].type"


def test_kernel_error_carries_errno_and_syscall() -> None:
    err = KernelError("mount", errno.EPERM, "proc on /proc")
    assert err.errno == errno.EPERM
    assert str(err) == "mount proc on /proc: Operation not permitted"
