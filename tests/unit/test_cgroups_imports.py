"""hako.cgroups is on the runtime's start-up path and the engine's stats loop: keep it lean."""

import subprocess
import sys

HEAVY = {"re", "dataclasses", "ctypes", "typing", "inspect", "enum", "signal", "select", "json", "collections"}


def new_modules(imports: str) -> set[str]:
    code = (
        "import sys\nbefore = set(sys.modules)\n"
        f"import {imports}\n"
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    return set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split())


def test_stats_path_loads_no_heavy_module() -> None:
    new = new_modules("hako.cgroups, hako.cgroups.v1, hako.cgroups.v2, hako.cgroups.stats")
    assert "hako.cgroups.v1" in new
    assert not new & HEAVY, sorted(new & HEAVY)


def test_create_path_loads_no_heavy_module() -> None:
    # hako-runtime create validates linux.resources: its records are hako.records, not dataclasses.
    new = new_modules("hako.cgroups.resources, hako.records")
    assert "hako.cgroups.resources" in new
    assert not new & HEAVY, sorted(new & HEAVY)


def test_the_probe_sees_heavy_modules() -> None:
    assert "inspect" in new_modules("dataclasses")
