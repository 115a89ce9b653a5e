"""``hako run``/``create``/``rm``/``ps`` parse their command line without argparse when they can: the result must be
argparse's, and anything unusual must be left to argparse (None)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from hako.cli.containers import fast_parse
from hako.cli.main import DEFAULT_ROOT, build_parser

SAME = [
    ["run", "busybox"],
    ["run", "--rm", "busybox", "true"],
    ["run", "-it", "--rm", "busybox", "sh", "-c", "echo hi"],
    ["--root", "/tmp/r", "--debug", "create", "--name", "web", "-e", "A=1", "--env", "B=2", "busybox"],
    ["--root=/tmp/r", "run", "-dit", "busybox", "top", "-d", "--rm", "--", "x"],
    ["run", "--name=x", "--cpus", "1.5", "-c", "512", "--pids-limit=20", "--pull", "never", "img"],
    ["run", "-v", "/a:/b:ro", "--mount", "type=tmpfs,target=/t", "--tmpfs", "/run", "-l", "a=b", "img", "--rm"],
    ["run", "-h", "host", "--net", "host", "--network", "none", "--restart", "on-failure:3", "img", ""],
    ["create", "--health-cmd", "true", "--health-retries", "3", "--stop-timeout", "5", "--init", "img", "a"],
    ["run", "-u", "1000:1000", "-w", "/tmp", "--entrypoint", "", "--read-only", "--privileged", "img"],
    ["run", "--log-opt", "max-size=1m", "--log-opt", "max-file=2", "--cgroup-parent", "/p", "img"],
    ["ps"],
    ["ps", "-aq", "--no-trunc", "-n", "3", "-f", "status=exited", "--filter", "name=x", "--format", "json"],
    ["--root", "/r", "rm", "-f", "-v", "--from-monitor", "abc"],
    ["rm", "-fv", "a", "b", ""],
]
FALLBACK = [
    ["run"],
    ["run", "--help"],
    ["run", "--det", "img"],            # abbreviation
    ["run", "-eA=1", "img"],            # attached short value
    ["run", "-m512m", "img"],
    ["run", "--rm=1", "img"],
    ["run", "--name", "--rm", "img"],   # a value that looks like an option
    ["run", "--cpus", "x", "img"],      # bad number
    ["run", "--pull", "sometimes", "img"],
    ["run", "--", "img"],
    ["run", "-", "img"],
    ["run", "--nosuch", "img"],
    ["--root=", "run", "img"],
    ["--debug", "exec", "x", "true"],
    ["ps", "-h"],
    ["ps", "extra"],
    ["ps", "-n", "x"],
    ["ps", "-qn", "3"],
    ["rm"],
    ["rm", "a", "-f"],                  # options after the containers: argparse decides
    ["rm", "--help"],
]


def _argparse(argv: list[str]) -> dict[str, Any]:
    args = vars(build_parser().parse_args(argv))
    args["root"] = str(args["root"])
    return args


@pytest.mark.parametrize("argv", SAME, ids=lambda a: " ".join(a))
def test_fast_parse_matches_argparse(argv: list[str]) -> None:
    fast = fast_parse(argv, os.environ.get("HAKO_ROOT", DEFAULT_ROOT))
    assert fast is not None
    want = _argparse(argv)
    got = vars(fast)
    got["root"] = str(got["root"])
    assert got == want


@pytest.mark.parametrize("argv", FALLBACK, ids=lambda a: " ".join(a))
def test_fast_parse_leaves_the_unusual_to_argparse(argv: list[str]) -> None:
    assert fast_parse(argv, "/var/lib/hako") is None


def test_default_root() -> None:
    fast = fast_parse(["run", "img"], "/somewhere")
    assert fast is not None and fast.root == "/somewhere" and fast.debug is False
