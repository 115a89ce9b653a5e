"""hako-runtime's start-up path stays free of heavy modules (DESIGN.md: Speed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("httpx", "rich", "asyncio", "pydantic", "click", "hako.images", "hako.engine", "hako.storage",
         "argparse", "subprocess", "dataclasses", "typing", "signal", "re")
# create/exec legitimately load the spec dataclasses (and with them typing); never the engine layers.
HEAVY_CREATE = ("httpx", "rich", "asyncio", "pydantic", "click", "hako.images", "hako.engine", "hako.storage",
                "argparse")


def _imported(args: list[str], tmp: str) -> set[str]:
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "hako.runtime", "--root", tmp, *args],
        capture_output=True, text=True, timeout=60,
    )
    mods = set()
    for line in p.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            mods.add(line.rsplit("|", 1)[1].strip())
    assert "hako.runtime.cli" in mods, p.stderr
    return mods


@pytest.mark.parametrize("args", [["state", "x"], ["kill", "x", "9"], ["delete", "--force", "x"], ["start", "x"],
                                  ["list"], ["pause", "x"]])
def test_hot_commands_import_nothing_heavy(args: list[str], tmp_path: object) -> None:
    mods = _imported(args, str(tmp_path))
    bad = [m for m in mods for h in HEAVY if m == h or m.startswith(h + ".")]
    assert bad == []


def test_create_imports_no_engine_layers(tmp_path: object) -> None:
    mods = _imported(["create", "--bundle", "/nonexistent", "x"], str(tmp_path))
    bad = [m for m in mods for h in HEAVY_CREATE if m == h or m.startswith(h + ".")]
    assert bad == []
