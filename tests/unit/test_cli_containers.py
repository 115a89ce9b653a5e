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
    ["run", "img", "--", "echo"],       # argparse's image positional swallows that "--"
    ["create", "img", "--"],
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


def test_fast_parse_agrees_with_argparse_on_random_command_lines() -> None:
    """Whatever the fast parser accepts, argparse parses to the same namespace (seeded, reproducible)."""
    import contextlib
    import io
    import random

    root = os.environ.get("HAKO_ROOT", DEFAULT_ROOT)
    parser = build_parser()
    tokens = ["-d", "-i", "-t", "-it", "-dit", "--rm", "--name", "--name=x", "-e", "A=1", "-eA=1", "-v", "/a:/b",
              "--cpus", "1.5", "x", "-c", "5", "-5", "--pull", "never", "sometimes", "--", "-", "", "img", "-h",
              "--help", "--det", "--net", "--network=host", "-u", "0", "-f", "-a", "-q", "-n", "3", "-aq",
              "--no-trunc", "--filter", "--format", "-fv", "--from-monitor", "--root", "--rm=1", "a b", "-x y"]
    rng = random.Random(6)
    accepted = 0
    for _ in range(3000):
        argv = rng.choice([[], ["--debug"], ["--root", "/r"], ["--root=/q"]]) + [rng.choice(["run", "create", "rm", "ps"])]
        argv += [rng.choice(tokens) for _ in range(rng.randint(0, 6))]
        fast = fast_parse(argv, root)
        if fast is None:
            continue
        accepted += 1
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            try:
                want = vars(parser.parse_args(argv))
            except SystemExit:
                raise AssertionError(f"argparse refuses {argv}, the fast parser did not") from None
        want["root"] = str(want["root"])
        got = vars(fast)
        got["root"] = str(got["root"])
        assert got == want, argv
    assert accepted > 300  # the fast path is taken often enough for this to mean something
