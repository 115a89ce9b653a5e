"""hako.records: the run-time stand-in for dataclasses on hako-runtime's start-up path."""

from __future__ import annotations

from typing import Any

import pytest

from hako.records import dataclass, field


@dataclass
class Point:
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)
    note: str | None = field(default=None)


@dataclass(eq=False, repr=False)
class Plain:
    a: int = 1


def test_construction_defaults_and_factories() -> None:
    p, q = Point(1), Point(1)
    assert (p.x, p.y, p.tags, p.note) == (1, 0, [], None)
    p.tags.append("a")
    assert q.tags == []
    assert Point(1, y=2).y == 2


def test_eq_and_repr_like_dataclasses() -> None:
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(1, 3)
    assert Point(1) != (1, 0, [], None)
    assert repr(Point(1)) == "Point(x=1, y=0, tags=[], note=None)"
    with pytest.raises(TypeError):
        hash(Point(1))


def test_eq_false_keeps_identity() -> None:
    assert Plain() != Plain()
    assert "Plain object" in repr(Plain())


def test_wrong_arguments_are_type_errors() -> None:
    point: Any = Point
    with pytest.raises(TypeError):
        point()
    with pytest.raises(TypeError):
        point(1, 2, [], None, 5)
    with pytest.raises(TypeError):
        point(1, x=2)
    with pytest.raises(TypeError):
        point(1, z=2)


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int = 0


def test_frozen_records_are_immutable_and_hashable() -> None:
    v = Version(1, 2)
    with pytest.raises(AttributeError):
        v.major = 3  # type: ignore[misc]
    assert {Version(1, 2), Version(1, 2)} == {v}


def test_order_compares_fields_in_order() -> None:
    assert Version(1, 2) < Version(1, 3) < Version(2)
    assert max(Version(2), Version(1, 9)) == Version(2)
    assert Version(1) <= Version(1) and Version(3) >= Version(2, 5)

