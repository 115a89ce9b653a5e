"""The error hierarchy shared by every layer.

Each error carries the offending thing (JSON path, container id, digest, syscall) in its
message, so the command lines can print one line: ``hako: <message>``.
"""

from __future__ import annotations


class HakoError(Exception):
    """Base of every error hako raises on purpose."""


class ConfigError(HakoError):
    """A config.json, process.json or other spec document is invalid.

    ``path`` is the JSON path of the offending field, e.g. ``linux.namespaces[2].type``.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class NotFound(HakoError):
    """A container, image, volume, blob or file does not exist."""


class Conflict(HakoError):
    """The thing exists already, or is in a state that forbids the operation."""


class RegistryError(HakoError):
    """A registry answered badly, or content did not match its digest."""


class KernelError(HakoError):
    """A syscall failed; carries errno and the syscall's name."""

    def __init__(self, syscall: str, errno: int, detail: str = "") -> None:
        import os

        self.syscall = syscall
        self.errno = errno
        self.detail = detail
        what = f"{syscall} {detail}".strip()
        super().__init__(f"{what}: {os.strerror(errno)}")
