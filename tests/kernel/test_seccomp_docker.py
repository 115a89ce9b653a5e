"""A real Docker-format profile (containers-common's) resolved, loaded and run under."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hako import seccomp
from tests.fixtures_seccomp import exec_filtered

PROFILE = Path("/usr/share/containers/seccomp.json")
pytestmark = pytest.mark.skipif(not PROFILE.exists() or not Path("/bin/busybox").exists(), reason="needs containers-common and busybox-static")


def test_busybox_runs_under_the_resolved_containers_profile(tmp_path: Path) -> None:
    profile = seccomp.from_docker(json.loads(PROFILE.read_text()), caps=["CAP_CHOWN", "CAP_KILL"])
    seccomp.validate(profile)
    status, output = exec_filtered(
        profile, f"mkdir {tmp_path}/d && echo made; /bin/busybox chroot / true; echo chroot=$?"
    )
    assert status == 0, output
    # chroot needs CAP_SYS_CHROOT in this profile: excluded rule -> EPERM.
    assert "made" in output and "chroot=1" in output, output
