"""Build busybox root filesystems and OCI bundles from Debian's busybox-static.

Used by the test suite, the benchmarks and the README's demo: everything hako runs in
tests comes from this one static binary, so no network is ever needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BUSYBOX = Path("/bin/busybox")

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnobody:x:65534:\n"


def busybox_applets(busybox: Path = BUSYBOX) -> list[str]:
    out = subprocess.run([str(busybox), "--list-full"], check=True, capture_output=True, text=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def make_rootfs(dest: Path, busybox: Path = BUSYBOX) -> Path:
    """Lay out a minimal rootfs: /bin/busybox, an applet symlink each, /etc/passwd and group."""
    if not busybox.exists():
        raise FileNotFoundError(f"{busybox}: install Debian's busybox-static")
    dest.mkdir(parents=True, exist_ok=True)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "var", "run"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    os.chmod(dest / "root", 0o700)
    shutil.copy2(busybox, dest / "bin/busybox")
    for applet in busybox_applets(busybox):
        link = dest / applet.lstrip("/")
        if link.name == "busybox" or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    (dest / "etc/passwd").write_text(PASSWD)
    (dest / "etc/group").write_text(GROUP)
    return dest


def make_bundle(dest: Path, args: list[str] | None = None, rootfs_template: Path | None = None) -> Path:
    """An OCI bundle: ``rootfs/`` (copied from a template when given, for speed) and config.json."""
    from hako.testing.config import default_config, write_config

    dest.mkdir(parents=True, exist_ok=True)
    rootfs = dest / "rootfs"
    if rootfs_template is not None:
        subprocess.run(["cp", "-a", str(rootfs_template), str(rootfs)], check=True)
    else:
        make_rootfs(rootfs)
    write_config(dest, default_config(args or ["sh"]))
    return dest
