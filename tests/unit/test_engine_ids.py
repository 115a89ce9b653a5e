"""Identifiers, names, signals and volume names (no root needed)."""

from __future__ import annotations

import pytest

from hako.engine.ids import check_name, new_id, random_name
from hako.engine.signals import parse_signal
from hako.engine.volumes import valid_name
from hako.errors import ConfigError


def test_ids_and_names() -> None:
    cid = new_id()
    assert len(cid) == 64 and int(cid, 16) >= 0 and new_id() != cid
    assert check_name(random_name()) and check_name("/web-1.a_b") == "web-1.a_b"
    for bad in ("a", "-x", "sp ace", "x/y"):
        with pytest.raises(ConfigError):
            check_name(bad)


def test_name_check_is_dockers_pattern() -> None:
    import re

    pattern = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+")
    from hako.engine.ids import valid_name as valid_container_name

    for name in ("ab", "/ab", "//ab", "a", "/a", "_ab", "a_", "a..b", "ab\n", "é1", "A-9", "a b", "", "/", "0.-_"):
        assert valid_container_name(name) == bool(pattern.fullmatch(name)), name


def test_signals() -> None:
    assert [parse_signal(s) for s in ("SIGTERM", "kill", "9", "USR1", "RTMIN+1")] == [15, 9, 9, 10, 35]
    with pytest.raises(ConfigError):
        parse_signal("SIGNOPE")


def test_volume_names() -> None:
    assert valid_name("data") and valid_name("a.b_c-1")
    assert not valid_name("") and not valid_name(".hidden") and not valid_name("a/b") and not valid_name("ü")
