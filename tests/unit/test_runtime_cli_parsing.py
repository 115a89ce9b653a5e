"""The argv parser, signal names, container ids, update flags: pure functions, no root."""

from __future__ import annotations

import signal

import pytest

from hako.errors import ConfigError, HakoError
from hako.runtime.argv import FlagSpec, parse
from hako.runtime.ops import parse_signal
from hako.runtime.state import check_id

SPECS = [FlagSpec("bundle", True, aliases=("-b",)), FlagSpec("detach", aliases=("-d",)),
         FlagSpec("env", True, multi=True, aliases=("-e",))]


def test_flags_any_order_and_forms() -> None:
    p = parse(["id1", "--bundle=/b", "-d", "-e", "A=1", "--env", "B=2"], SPECS)
    assert p.args == ["id1"] and p.opt("bundle") == "/b" and p.flag("detach")
    assert p.many("env") == ["A=1", "B=2"]
    p = parse(["-b", "/x", "id"], SPECS)
    assert p.opt("bundle") == "/x" and p.args == ["id"]
    assert parse(["-bundle", "/y", "id"], SPECS).opt("bundle") == "/y"  # Go-style single dash


def test_stop_at_positional_keeps_command_flags() -> None:
    p = parse(["-d", "id", "sh", "-c", "echo -d"], SPECS, stop_at_positional=1)
    assert p.flag("detach") and p.args == ["id", "sh", "-c", "echo -d"]


def test_errors() -> None:
    with pytest.raises(HakoError, match="not defined: --nope"):
        parse(["--nope"], SPECS)
    with pytest.raises(HakoError, match="needs an argument"):
        parse(["--bundle"], SPECS)


@pytest.mark.parametrize(("text", "num"), [("KILL", 9), ("SIGKILL", 9), ("kill", 9), ("15", 15), ("TERM", 15),
                                           ("SIGUSR1", int(signal.SIGUSR1)), ("RTMIN+1", int(signal.SIGRTMIN) + 1)])
def test_parse_signal(text: str, num: int) -> None:
    assert parse_signal(text) == num


@pytest.mark.parametrize("bad", ["NOPE", "0", "99", "SIG"])
def test_parse_signal_invalid(bad: str) -> None:
    with pytest.raises(HakoError):
        parse_signal(bad)


@pytest.mark.parametrize("cid", ["abc", "a.b_c-d+e", "0" * 64])
def test_valid_ids(cid: str) -> None:
    assert check_id(cid) == cid


@pytest.mark.parametrize("cid", ["", ".", "..", "a/b", "../x", "-a", "a b", "x\n"])
def test_unsafe_ids(cid: str) -> None:
    with pytest.raises(ConfigError, match="invalid container id"):
        check_id(cid)


def test_update_flags_to_resources() -> None:
    from hako.runtime.update import FLAGS, resources_from

    specs = [FlagSpec("resources", True), *[FlagSpec(n, True) for n in FLAGS]]
    p = parse(["--memory", "64m", "--cpu-quota=50000", "--cpuset-cpus", "0-1", "--pids-limit", "10"], specs)
    assert resources_from(p) == {"memory": {"limit": 64 << 20}, "cpu": {"quota": 50000, "cpus": "0-1"},
                                 "pids": {"limit": 10}}
    with pytest.raises(ConfigError, match="--cpu-shares"):
        resources_from(parse(["--cpu-shares", "lots"], specs))


def test_fastjson_round_trip_matches_json() -> None:
    import json

    from hako.runtime import fastjson

    doc = {"id": "c1", "pid": 12, "ok": True, "none": None, "f": 1.5, "s": 'é"\n', "l": [1, {"a": []}]}
    text = fastjson.dumps(doc)
    assert json.loads(text) == doc and fastjson.loads(text) == doc
    assert fastjson.loads(json.dumps(doc, indent=2) + "\n") == doc
    for bad in ("{", "{}x", "", "[1,]"):
        with pytest.raises(ValueError):
            fastjson.loads(bad)
