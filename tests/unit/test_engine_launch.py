"""``hako run`` starts its monitor before parsing: what the scan of argv guesses (no root needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hako.engine import launch


class FakePending:
    def __init__(self, root: str, runtime: str | None, attach: bool, fork_only: bool = False) -> None:
        self.root, self.runtime, self.attach, self.fork_only = root, runtime, attach, fork_only
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[FakePending]:
    made: list[FakePending] = []

    def fake(root: str, runtime: str | None, attach: bool, fork_only: bool = False) -> Any:
        made.append(FakePending(root, runtime, attach, fork_only))
        return made[-1]

    monkeypatch.setattr(launch, "prespawn_monitor", fake)
    monkeypatch.delenv("HAKO_RUNTIME", raising=False)
    return made


def test_scan_finds_root_runtime_and_detach(started: list[FakePending]) -> None:
    launch.start_early(["--root", "/r", "run", "--rm", "-it", "busybox", "sh"], "/default")
    p = launch.take_early(Path("/r"))
    assert p is started[0] and (p.root, p.runtime, p.attach) == ("/r", None, True)
    launch.start_early(["run", "-dit", "--runtime=runc", "busybox"], "/default")
    assert (started[1].root, started[1].runtime, started[1].attach) == ("/default", "runc", False)
    assert launch.take_early(Path("/default")) is started[1]
    assert launch.take_early(Path("/default")) is None  # handed out once


def test_a_monitor_started_for_another_store_is_dropped(started: list[FakePending]) -> None:
    launch.start_early(["--root=/a", "run", "busybox"], "/default")
    assert launch.take_early(Path("/b")) is None
    assert started[0].cancelled


def test_the_early_monitor_is_forked_unless_fresh_interpreters_are_asked_for(
    started: list[FakePending], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HAKO_MONITOR_FORK", raising=False)
    launch.start_early(["run", "busybox"], "/default")
    assert started[-1].fork_only
    launch.take_early(Path("/default"))
    monkeypatch.setenv("HAKO_MONITOR_FORK", "0")
    launch.start_early(["run", "busybox"], "/default")
    assert not started[-1].fork_only
    launch.take_early(Path("/default"))
