"""The rootfs through the real command line: ``hako-runtime run`` on hostile and plain bundles."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.fixtures_runtime import Runtime, edit_config, set_config

SCRIPT = r"""
for f in / /proc/sys /data; do touch $f/probe 2>/dev/null && echo "write $f ok" || echo "write $f denied"; done
echo "keys=[$(cat /proc/keys 2>&1)]"
ls -l /dev/null /dev/zero | while read mode _ _ _ maj min _; do echo "dev $mode $maj$min"; done
readlink /dev/ptmx; readlink /dev/fd
grep -E ' /(tmp/escape-[0-9a-f]+|data|proc/sys|sys) ' /proc/self/mountinfo | cut -d' ' -f5,6
"""


def test_hostile_bundle_through_the_cli(rt: Runtime, bundle: Path, tmp_path: Path) -> None:
    name = f"escape-{uuid.uuid4().hex[:8]}"
    host_target = Path("/tmp") / name
    data = tmp_path / "data"
    data.mkdir()
    rootfs = bundle / "rootfs"
    (rootfs / "evil").symlink_to("/")
    (rootfs / "up").symlink_to("../../../../../../..")
    set_config(bundle, cid="rootfs1", args=["sh", "-c", SCRIPT])

    def change(cfg: dict[str, Any]) -> None:
        cfg["mounts"] += [
            {"destination": f"/evil/tmp/{name}", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
            {"destination": "/up/data", "type": "bind", "source": str(data), "options": ["rbind", "ro"]},
        ]

    edit_config(bundle, change)
    out = rt("run", "--bundle", str(bundle), "rootfs1").stdout.decode()
    lines = out.splitlines()
    assert "write / denied" in lines and "write /proc/sys denied" in lines and "write /data denied" in lines
    assert "keys=[]" in lines
    assert "dev crw-rw-rw- 1,3" in lines and "dev crw-rw-rw- 1,5" in lines
    assert "pts/ptmx" in lines and "/proc/self/fd" in lines
    points = dict(line.split() for line in lines if line.startswith("/") and len(line.split()) == 2)
    assert f"/tmp/{name}" in points  # the tmpfs is there, inside the container
    assert points["/data"].startswith("ro") and points["/proc/sys"].startswith("ro")
    assert points["/sys"].startswith("ro")
    assert not host_target.exists(), "a mount destination escaped the rootfs"
    assert (rootfs / "tmp" / name).is_dir() and list(data.iterdir()) == []
