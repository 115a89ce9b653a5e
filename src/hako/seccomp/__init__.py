"""OCI ``linux.seccomp`` through libseccomp (a ctypes binding, no compiled extension).

Entry points for the runtime and the engine; each imports its module on call, so
``import hako.seccomp`` costs nothing on the runtime's start-up path:

- ``validate(seccomp)``: ConfigError(json_path, msg) for an invalid profile; also compiles
  it and remembers the program (call it in ``create``, before forking the init);
- ``warm(seccomp=None, cache_dir=None)``: import/dlopen what ``load`` needs (and compile)
  while the host's files are reachable, e.g. before ``exec`` joins a container;
- ``prepare(seccomp)``: compile now into a ``Prepared`` to ``load`` later;
- ``load(seccomp or prepared)``: install the filter in the calling process (init, last
  step before execve), returning the notify listener fd when SCMP_ACT_NOTIFY is used;
- ``send_to_listener(path, fd, state, metadata)``: hand that fd to a seccomp agent;
- ``default_profile(caps)``: a default profile as strict as Docker's, as OCI JSON;
- ``from_docker(doc, caps)``: a Docker-format profile file resolved for one container;
- ``features()``: the ``linux.seccomp`` object of ``hako-runtime features``.

``python -m hako.seccomp`` validates, compiles and converts profiles from the shell.
Submodules are named so none shadows an entry point (``defaults`` holds the default
profile, not ``default_profile``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    from typing import Any

    from hako.seccomp.filter import Prepared


def validate(seccomp: dict[str, Any], cache_dir: str | None = None) -> None:
    """Raise ConfigError naming the JSON path (``linux.seccomp.syscalls[3].action``) if invalid.

    A valid profile is also compiled here (``warm(seccomp)``): errors libseccomp or the kernel's
    size limit would raise surface now, and a later ``load(seccomp)`` of this same dict in this
    process (or a fork of it) only makes the seccomp(2) call — which works after pivot_root,
    where neither libseccomp nor hako's modules could be opened any more. (hako-runtime's
    create validates with ``hako.seccomp.profile.validate`` and compiles in its C1, with a cache.)
    """
    from hako.seccomp.profile import validate as _validate

    _validate(seccomp)
    warm(seccomp, cache_dir)


def warm(seccomp: dict[str, Any] | None = None, cache_dir: str | None = None) -> None:
    """Import and dlopen everything ``load`` needs while the host's filesystem is visible.

    Given the container's ``seccomp``, also compile it now (reusing ``cache_dir``'s program
    when this profile was compiled before): the init's ``load(seccomp)`` of that same dict
    then only makes the seccomp(2) call, taking libseccomp's ~10 ms off ``start``.
    """
    from hako.seccomp import filter as _filter
    from hako.seccomp import libseccomp as _lib

    _lib.lib()
    _filter.warm()
    if seccomp is not None:
        prepared = _filter.prepare(seccomp, cache_dir=cache_dir)
        _filter.remember(seccomp, prepared)
        if prepared.notify:
            from hako.seccomp import notify as _notify  # noqa: F401 - send_fd for the listener fd


def prepare(seccomp: dict[str, Any], cache_dir: str | None = None) -> Prepared:
    """Validate and compile now (before pivot_root); ``load(prepared)`` later. See filter.prepare."""
    from hako.seccomp.filter import prepare as _prepare

    return _prepare(seccomp, cache_dir=cache_dir)


def load(seccomp: dict[str, Any] | Prepared) -> int | None:
    """Install the filter in this process; the notify fd or None. See filter.load."""
    from hako.seccomp.filter import load as _load

    return _load(seccomp)


def send_to_listener(listener_path: str, notify_fd: int, state: bytes, metadata: str = "", pid: int | None = None) -> None:
    """Send the container process state and the notify fd to the agent's socket."""
    from hako.seccomp.notify import send_to_listener as _send

    _send(listener_path, notify_fd, state, metadata, pid)


def default_profile(caps: list[str] | None = None) -> dict[str, Any]:
    """The OCI seccomp JSON of the default profile for a container with ``caps``."""
    from hako.seccomp.defaults import default_profile as _default

    return _default(caps)


def from_docker(doc: dict[str, Any], caps: list[str] | None = None) -> dict[str, Any]:
    """A Docker/containers-format profile (``--security-opt seccomp=``) resolved to OCI JSON."""
    from hako.seccomp.docker import from_docker as _from_docker

    return _from_docker(doc, caps)


def features() -> dict[str, Any]:
    """The ``linux.seccomp`` object for ``hako-runtime features`` (what this host supports)."""
    from hako.seccomp.features import features as _features

    return _features()


__all__ = ["default_profile", "features", "from_docker", "load", "prepare", "send_to_listener", "validate", "warm"]
