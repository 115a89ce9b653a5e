"""The ``hako`` launcher scripts/setup writes: no site import, the venv's packages still found."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _launcher() -> str:
    path = os.path.join(os.path.dirname(sys.executable), "hako")
    if not os.path.exists(path):
        pytest.skip("no hako in this venv (scripts/setup writes it)")
    return path


def test_launcher_skips_site_and_leaves_through_run() -> None:
    with open(_launcher()) as f:
        text = f.read()
    first = text.splitlines()[0]
    assert first.startswith("#!") and first.split()[1:] == ["-S"], first
    assert "from hako.cli.main import run" in text


def test_launcher_finds_third_party_packages_and_reports_errors_with_125(tmp_path: object) -> None:
    # rich and httpx live in the venv's site-packages, which -S leaves off sys.path.
    env = dict(os.environ, HAKO_ROOT=str(tmp_path))
    p = subprocess.run([_launcher(), "images"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([_launcher(), "inspect", "no-such-thing"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode != 0 and "no-such-thing" in p.stderr


def test_closed_pipe_ends_quietly(tmp_path: object) -> None:
    # `hako ... | head`: the reader leaves early; no traceback, the status of a SIGPIPE death.
    env = dict(os.environ, HAKO_ROOT=str(tmp_path))
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run([_launcher(), "--help"], stdout=w, stderr=subprocess.PIPE, text=True, env=env,
                           timeout=60)
    finally:
        os.close(w)
    assert p.stderr == "" and p.returncode == 141, (p.returncode, p.stderr)
