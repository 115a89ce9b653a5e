"""The run-time stand-in for dataclasses that hako.spec.runtime's records use."""

from __future__ import annotations

from typing import Any

import pytest

from hako.spec.runtime import Capabilities, Process, Rlimit, User


def test_defaults_and_fresh_factories() -> None:
    a, b = User(), User()
    assert (a.uid, a.gid, a.umask, a.username) == (0, 0, None, "")
    a.additional_gids.append(5)
    assert b.additional_gids == []
    assert Capabilities().bounding == []


def test_positional_and_keyword_arguments() -> None:
    r = Rlimit("RLIMIT_NOFILE", 10, hard=20)
    assert (r.type, r.soft, r.hard) == ("RLIMIT_NOFILE", 10, 20)
    p = Process(["sh"], cwd="/tmp")
    assert p.args == ["sh"] and p.cwd == "/tmp" and p.env == []


def test_bad_arguments_are_type_errors() -> None:
    rlimit: Any = Rlimit  # untyped on purpose: these calls are wrong
    user: Any = User
    with pytest.raises(TypeError):
        rlimit("RLIMIT_NOFILE", 1)
    with pytest.raises(TypeError):
        user(nope=1)
    with pytest.raises(TypeError):
        rlimit("a", 1, 2, 3)
    with pytest.raises(TypeError):
        rlimit("a", 1, 2, type="b")
