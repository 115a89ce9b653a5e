"""A real Docker-format profile (containers-common's) resolved, loaded and run under."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hako import seccomp
from tests.fixtures_seccomp import LIBC, PR_SET_NO_NEW_PRIVS

PROFILE = Path("/usr/share/containers/seccomp.json")
pytestmark = pytest.mark.skipif(not PROFILE.exists() or not Path("/bin/busybox").exists(), reason="needs containers-common and busybox-static")


def test_busybox_runs_under_the_resolved_containers_profile(tmp_path: Path) -> None:
    profile = seccomp.from_docker(json.loads(PROFILE.read_text()), caps=["CAP_CHOWN", "CAP_KILL"])
    seccomp.validate(profile)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            os.dup2(w, 1)
            os.dup2(w, 2)
            LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            seccomp.load(profile)
            os.execv("/bin/busybox", ["sh", "-c", f"mkdir {tmp_path}/d && echo made; /bin/busybox chroot / true; echo chroot=$?"])
        finally:
            os._exit(127)
    os.close(w)
    with os.fdopen(r, "rb") as out:
        output = out.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, output
    # chroot needs CAP_SYS_CHROOT in this profile: excluded rule -> EPERM.
    assert "made" in output and "chroot=1" in output, output
