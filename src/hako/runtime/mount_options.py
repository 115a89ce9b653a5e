"""OCI mount option strings (``["nosuid", "ro", "mode=755"]``) into mount(2) arguments.

Options are applied in order, so ``ro,rw`` ends read-write, as with mount(8) and runc. Unknown
options are filesystem data (``size=64k``, ``newinstance``) and go to the data string.
"""

from __future__ import annotations

from hako.errors import ConfigError
from hako.records import dataclass, field
from hako.sys import mount_consts as m

# option: (flag, clears) -- a clearing option removes the flag set by an earlier one.
_FLAGS: dict[str, tuple[int, bool]] = {
    "defaults": (0, False),
    "ro": (m.MS_RDONLY, False),
    "rw": (m.MS_RDONLY, True),
    "nosuid": (m.MS_NOSUID, False),
    "suid": (m.MS_NOSUID, True),
    "nodev": (m.MS_NODEV, False),
    "dev": (m.MS_NODEV, True),
    "noexec": (m.MS_NOEXEC, False),
    "exec": (m.MS_NOEXEC, True),
    "sync": (m.MS_SYNCHRONOUS, False),
    "async": (m.MS_SYNCHRONOUS, True),
    "dirsync": (m.MS_DIRSYNC, False),
    "remount": (m.MS_REMOUNT, False),
    "mand": (m.MS_MANDLOCK, False),
    "nomand": (m.MS_MANDLOCK, True),
    "noatime": (m.MS_NOATIME, False),
    "atime": (m.MS_NOATIME, True),
    "nodiratime": (m.MS_NODIRATIME, False),
    "diratime": (m.MS_NODIRATIME, True),
    "relatime": (m.MS_RELATIME, False),
    "norelatime": (m.MS_RELATIME, True),
    "strictatime": (m.MS_STRICTATIME, False),
    "nostrictatime": (m.MS_STRICTATIME, True),
    "lazytime": (m.MS_LAZYTIME, False),
    "nolazytime": (m.MS_LAZYTIME, True),
    "iversion": (m.MS_I_VERSION, False),
    "noiversion": (m.MS_I_VERSION, True),
    "silent": (m.MS_SILENT, False),
    "loud": (m.MS_SILENT, True),
    "nosymfollow": (m.MS_NOSYMFOLLOW, False),
    "symfollow": (m.MS_NOSYMFOLLOW, True),
    "bind": (m.MS_BIND, False),
    "rbind": (m.MS_BIND | m.MS_REC, False),
}

PROPAGATION: dict[str, int] = {
    "private": m.MS_PRIVATE,
    "rprivate": m.MS_PRIVATE | m.MS_REC,
    "shared": m.MS_SHARED,
    "rshared": m.MS_SHARED | m.MS_REC,
    "slave": m.MS_SLAVE,
    "rslave": m.MS_SLAVE | m.MS_REC,
    "unbindable": m.MS_UNBINDABLE,
    "runbindable": m.MS_UNBINDABLE | m.MS_REC,
}

# Recursive mount attributes (mount_setattr with AT_RECURSIVE): option: (attr, clears).
_REC_ATTRS: dict[str, tuple[int, bool]] = {
    "rro": (m.MOUNT_ATTR_RDONLY, False),
    "rrw": (m.MOUNT_ATTR_RDONLY, True),
    "rnosuid": (m.MOUNT_ATTR_NOSUID, False),
    "rsuid": (m.MOUNT_ATTR_NOSUID, True),
    "rnodev": (m.MOUNT_ATTR_NODEV, False),
    "rdev": (m.MOUNT_ATTR_NODEV, True),
    "rnoexec": (m.MOUNT_ATTR_NOEXEC, False),
    "rexec": (m.MOUNT_ATTR_NOEXEC, True),
    "rnodiratime": (m.MOUNT_ATTR_NODIRATIME, False),
    "rdiratime": (m.MOUNT_ATTR_NODIRATIME, True),
    "rnosymfollow": (m.MOUNT_ATTR_NOSYMFOLLOW, False),
    "rsymfollow": (m.MOUNT_ATTR_NOSYMFOLLOW, True),
}
# The atime modes are one field, not bits: setting one means clearing the whole field first.
_REC_ATIME: dict[str, int] = {
    "rrelatime": m.MOUNT_ATTR_RELATIME,
    "rnorelatime": m.MOUNT_ATTR_RELATIME,  # like runc: back to the default (relatime)
    "rnoatime": m.MOUNT_ATTR_NOATIME,
    "ratime": m.MOUNT_ATTR_RELATIME,
    "rstrictatime": m.MOUNT_ATTR_STRICTATIME,
    "rnostrictatime": m.MOUNT_ATTR_RELATIME,
}

_EXTENSIONS = {"tmpcopyup", "idmap", "ridmap"}


@dataclass(eq=False, repr=False)
class MountOptions:
    """One mount's options, split the way the mount calls need them."""

    flags: int = 0  # MS_* for the mount call (includes MS_BIND/MS_REC/MS_REMOUNT)
    cleared: int = 0  # MS_* explicitly cleared (rw, suid, dev...): matters for remounts
    propagation: list[int] = field(default_factory=list)  # MS_SHARED|MS_REC..., applied in order
    rec_attr_set: int = 0  # MOUNT_ATTR_* applied recursively after the mount
    rec_attr_clr: int = 0
    data: str = ""  # filesystem options, comma separated
    tmpcopyup: bool = False
    idmap: bool = False
    ridmap: bool = False

    @property
    def bind(self) -> bool:
        return bool(self.flags & m.MS_BIND)

    @property
    def recursive(self) -> bool:
        return bool(self.flags & m.MS_REC)

    @property
    def readonly(self) -> bool:
        return bool(self.flags & m.MS_RDONLY)

    @property
    def mnt_flags(self) -> int:
        """The per-mount flags a bind remount must apply (bind mounts ignore them in the first call)."""
        return self.flags & m.MS_MNT_FLAGS

    def data_option(self, key: str) -> str | None:
        """The value of ``key=value`` in the data string, ``""`` for a bare ``key``, else None."""
        for item in self.data.split(","):
            name, sep, value = item.partition("=")
            if name == key:
                return value if sep else ""
        return None


def parse_mount_options(options: list[str], where: str = "options") -> MountOptions:
    """Split OCI mount ``options`` into flags, propagation, recursive attributes and data.

    ``where`` is the JSON path used in errors, e.g. ``mounts[3].options``.
    """
    out = MountOptions()
    data: list[str] = []
    for i, opt in enumerate(options):
        if not isinstance(opt, str):
            raise ConfigError(f"{where}[{i}]", "must be a string")
        if opt in _FLAGS:
            flag, clears = _FLAGS[opt]
            if clears:
                out.flags &= ~flag
                out.cleared |= flag
            else:
                out.flags |= flag
                out.cleared &= ~flag
        elif opt in PROPAGATION:
            out.propagation.append(PROPAGATION[opt])
        elif opt in _REC_ATTRS:
            attr, clears = _REC_ATTRS[opt]
            if clears:
                out.rec_attr_clr |= attr
                out.rec_attr_set &= ~attr
            else:
                out.rec_attr_set |= attr
                out.rec_attr_clr &= ~attr
        elif opt in _REC_ATIME:
            out.rec_attr_clr |= m.MOUNT_ATTR__ATIME
            out.rec_attr_set = (out.rec_attr_set & ~m.MOUNT_ATTR__ATIME) | _REC_ATIME[opt]
        elif opt in _EXTENSIONS:
            setattr(out, opt, True)
        elif opt == "notmpcopyup":  # crun's and podman's way to say "no copy-up" explicitly
            out.tmpcopyup = False
        elif opt == "":
            raise ConfigError(f"{where}[{i}]", "empty mount option")
        else:
            data.append(opt)
    out.data = ",".join(data)
    return out


def parse_propagation(value: str, where: str = "linux.rootfsPropagation") -> int:
    """``rslave`` -> MS_SLAVE|MS_REC; ConfigError for anything that is not a propagation type."""
    try:
        return PROPAGATION[value]
    except KeyError:
        raise ConfigError(where, f"unknown propagation {value!r} (one of {', '.join(PROPAGATION)})") from None


_SIZE_SUFFIX = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50, "e": 1 << 60}


def validate_tmpfs_data(opts: MountOptions, where: str) -> None:
    """Check the tmpfs options the kernel would reject with a bare EINVAL, naming the option."""
    for item in filter(None, opts.data.split(",")):
        key, _, value = item.partition("=")
        if key in ("size", "nr_blocks", "nr_inodes"):
            num = value[:-1] if value.endswith("%") and key == "size" else value
            suffix = num[-1:].lower() if num[-1:].isalpha() else ""
            digits = num[: len(num) - len(suffix)]
            if not digits.isdigit() or suffix not in _SIZE_SUFFIX:
                raise ConfigError(where, f"tmpfs {key}={value!r} is not a size")
        elif key == "mode":
            try:
                mode = int(value, 8)
            except ValueError:
                raise ConfigError(where, f"tmpfs mode={value!r} is not an octal mode") from None
            if mode > 0o7777:
                raise ConfigError(where, f"tmpfs mode={value!r} is out of range")
        elif key in ("uid", "gid"):
            if not value.isdigit():
                raise ConfigError(where, f"tmpfs {key}={value!r} is not a number")
