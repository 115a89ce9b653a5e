"""Resolving paths inside a container's rootfs that the container's owner controls.

Every path a config names (mount destinations, devices, masked paths) is looked up as if the
rootfs were ``/``: symlinks and ``..`` can never leave it, and what we mount onto is an fd we
opened, not a path string that can be swapped between check and use (CVE-2021-30465).

The kernel does it for us with openat2(RESOLVE_IN_ROOT). The manual walker below (one component
at a time with O_NOFOLLOW, symlinks read and re-rooted by hand) serves kernels without openat2
and computes where a path *would* be when its tail does not exist yet, so that a dangling symlink
such as ``/etc/resolv.conf -> ../run/resolv.conf`` gets its target created inside the root.
"""

from __future__ import annotations

import errno
import os
import stat

from hako.errors import KernelError
from hako.sys import mount as m

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true

if TYPE_CHECKING:
    from pathlib import Path

MAX_SYMLINKS = 40
_RESOLVE = m.RESOLVE_IN_ROOT | m.RESOLVE_NO_MAGICLINKS
_have_openat2: bool | None = None


def components(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def _open_root(root: Path | str | int) -> tuple[int, bool]:
    """An fd for ``root`` and whether we own it."""
    if isinstance(root, int):
        return root, False
    return os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), True


def open_in_root(root_fd: int, path: str, flags: int = os.O_PATH, *, follow: bool = True) -> int:
    """Open ``path`` as seen with ``root_fd`` as ``/``; symlinks stay inside, magic links fail.

    ``follow=False`` opens a final symlink itself. Raises KernelError (ENOENT when missing).
    """
    global _have_openat2
    flags |= os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    if _have_openat2 is not False:
        try:
            return m.openat2(root_fd, path, flags, _RESOLVE)
        except KernelError as e:
            if e.errno not in (errno.ENOSYS, errno.EPERM) or _have_openat2:
                raise
            _have_openat2 = False  # no openat2 (or a seccomp filter denies it): walk by hand
    walk = _walk(root_fd, path, follow_last=follow)
    try:
        if walk.missing:
            raise KernelError("open", errno.ENOENT, path)
        if flags & os.O_DIRECTORY and not stat.S_ISDIR(os.fstat(walk.fd).st_mode):
            raise KernelError("open", errno.ENOTDIR, path)
        if flags & os.O_PATH:
            return os.dup(walk.fd)
        # Reopen through the magic link: the walked fd is the very inode, no new lookup by name.
        return os.open(m.fd_path(walk.fd), flags & ~os.O_NOFOLLOW)
    finally:
        walk.close()


def resolve_in_root(root: Path | str | int, path: str, flags: int = os.O_PATH) -> int:
    """An fd for ``path`` inside ``root`` (a directory or an fd of one); see open_in_root."""
    root_fd, owned = _open_root(root)
    try:
        return open_in_root(root_fd, path, flags)
    finally:
        if owned:
            os.close(root_fd)


class _Walk:
    __slots__ = ("fd", "resolved", "missing")

    def __init__(self, fd: int, resolved: list[str], missing: list[str]) -> None:
        self.fd = fd  # O_PATH fd of the deepest existing component
        self.resolved = resolved  # its path below the root, no symlinks in it
        self.missing = missing  # components below it that do not exist (lexically cleaned)

    def close(self) -> None:
        os.close(self.fd)


def _walk(root_fd: int, path: str, *, follow_last: bool = True) -> _Walk:
    """Resolve ``path`` component by component with ``root_fd`` as ``/``."""
    todo = components(path)
    stack = [os.dup(root_fd)]  # fds of the resolved directories, so ".." needs no lookup
    names: list[str] = []
    links = 0
    try:
        while todo:
            name = todo.pop(0)
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                    names.pop()
                continue
            try:
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
            except FileNotFoundError:
                missing = _clean([name, *todo])
                return _Walk(stack.pop(), names, missing)
            except OSError as e:
                raise KernelError("open", e.errno or 0, path) from None
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode) and (todo or follow_last):
                # Read by name: a swap after the open only changes which in-root path we take.
                target = os.readlink(name, dir_fd=stack[-1])
                os.close(fd)
                links += 1
                if links > MAX_SYMLINKS:
                    raise KernelError("open", errno.ELOOP, path)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                    names.clear()
                todo = components(target) + todo
                continue
            if todo and not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise KernelError("open", errno.ENOTDIR, path)
            stack.append(fd)
            names.append(name)
        return _Walk(stack.pop(), names, [])
    finally:
        for fd in stack:
            os.close(fd)


def _clean(parts: list[str]) -> list[str]:
    out: list[str] = []
    for p in parts:
        if p == "..":
            if out:
                out.pop()
        else:
            out.append(p)
    return out


def secure_join(root: Path | str | int, path: str) -> str:
    """Where ``path`` lands inside ``root`` once its existing symlinks are followed there: an
    absolute path relative to the root, with no symlink among its existing components."""
    root_fd, owned = _open_root(root)
    try:
        walk = _walk(root_fd, path)
        walk.close()
        return "/" + "/".join(walk.resolved + walk.missing)
    finally:
        if owned:
            os.close(root_fd)


def _open_dir_nofollow(dir_fd: int, name: str, path: str) -> int:
    try:
        return os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as e:
        # ELOOP/ENOTDIR: a symlink or file appeared where we just made or found a directory.
        raise KernelError("mkdir", e.errno or 0, path) from None


def mkdir_all_in_root(root_fd: int, path: str, mode: int = 0o755) -> int:
    """Create the missing directories of ``path`` inside the root; return an O_PATH fd of it.

    Existing symlinks are followed inside the root; the missing tail is created one
    component at a time and opened with O_NOFOLLOW, so a symlink raced in fails the call
    instead of redirecting it.
    """
    walk = _walk(root_fd, path)
    fd = walk.fd
    try:
        if not walk.missing and not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise KernelError("mkdir", errno.ENOTDIR, path)
        for name in walk.missing:
            try:
                os.mkdir(name, mode, dir_fd=fd)
            except FileExistsError:
                pass
            except OSError as e:
                raise KernelError("mkdir", e.errno or 0, path) from None
            nxt = _open_dir_nofollow(fd, name, path)
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


class Target:
    """A path inside the root, opened: its parent directory, its name there, and itself.

    mount(2) onto ``fd_path(fd)`` mounts exactly what we opened; ``reopen()`` then reaches the
    mount just placed on top (the old fd still names the covered directory).
    """

    __slots__ = ("parent_fd", "name", "fd", "path")

    def __init__(self, parent_fd: int, name: str, fd: int, path: str) -> None:
        self.parent_fd = parent_fd
        self.name = name
        self.fd = fd
        self.path = path  # as the config gave it, for messages

    def reopen(self) -> int:
        return os.open(self.name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.parent_fd)

    def close(self) -> None:
        for fd in (self.fd, self.parent_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_target(root_fd: int, path: str, create: str | None = None, mode: int = 0o755) -> Target:
    """Resolve ``path`` inside the root for mounting onto it.

    ``create`` is ``"dir"`` or ``"file"`` to create what is missing (parents always as
    directories), or None when the path must exist. The final component must not be a symlink
    when opened (it has been resolved first), so a swap in between is an error, never an escape.
    """
    resolved = secure_join(root_fd, path)
    parts = components(resolved)
    if not parts:
        raise KernelError("open", errno.EBUSY, f"{path} (the root itself)")
    parent_path, name = "/".join(parts[:-1]), parts[-1]
    if create is not None:
        parent_fd = mkdir_all_in_root(root_fd, parent_path)
    else:
        parent_fd = open_in_root(root_fd, parent_path, os.O_PATH | os.O_DIRECTORY)
    try:
        try:
            if create == "dir":
                os.mkdir(name, mode, dir_fd=parent_fd)
            elif create == "file":
                flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                os.close(os.open(name, flags, mode, dir_fd=parent_fd))
        except FileExistsError:
            pass
        except OSError as e:
            raise KernelError("mkdir" if create == "dir" else "create", e.errno or 0, path) from None
        try:
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        except OSError as e:
            raise KernelError("open", e.errno or 0, path) from None
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            os.close(fd)
            raise KernelError("open", errno.ELOOP, f"{path} (became a symlink while resolving)")
        return Target(parent_fd, name, fd, path)
    except BaseException:
        os.close(parent_fd)
        raise
