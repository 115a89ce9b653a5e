"""hako-runtime's start-up path stays free of heavy modules (DESIGN.md: Speed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("httpx", "rich", "asyncio", "pydantic", "click", "hako.images", "hako.engine", "hako.storage",
         "argparse", "subprocess", "dataclasses", "typing", "signal", "re", "ctypes")
# create/exec legitimately load the spec dataclasses (and with them typing); never the engine layers.
HEAVY_CREATE = ("httpx", "rich", "asyncio", "pydantic", "click", "hako.images", "hako.engine", "hako.storage",
                "argparse", "ctypes")


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


def _launcher() -> tuple[list[str], str]:
    """(interpreter and flags from the shebang, path) of the venv's hako-runtime launcher."""
    import os

    path = os.path.join(os.path.dirname(sys.executable), "hako-runtime")
    if not os.path.exists(path):
        pytest.skip("no hako-runtime in this venv (scripts/setup writes it)")
    with open(path) as f:
        first = f.readline()
    assert first.startswith("#!"), first
    return first[2:].split(), path


def test_launcher_starts_python_isolated_without_site() -> None:
    # -I: PYTHON* variables ignored (CI may set PYTHONDONTWRITEBYTECODE); -S: no site import.
    interp, _ = _launcher()
    assert interp[1:] == ["-IS"], interp


def test_launcher_state_loads_nothing_heavy(tmp_path: object) -> None:
    interp, path = _launcher()
    p = subprocess.run([*interp, "-X", "importtime", path, "--root", str(tmp_path), "state", "x"],
                       capture_output=True, text=True, timeout=60)
    mods = {line.rsplit("|", 1)[1].strip() for line in p.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}
    assert "hako.runtime.cli" in mods, p.stderr
    assert "site" not in mods
    bad = [m for m in mods for h in HEAVY if m == h or m.startswith(h + ".")]
    assert bad == []
    assert p.returncode == 1 and "does not exist" in p.stderr, p.stderr


def test_spec_and_exec_modules_load_no_dataclasses() -> None:
    # exec's whole import set (spec records, process, nsexec) stays off dataclasses/inspect/re/typing.
    import os

    import hako

    src = os.path.dirname(os.path.dirname(hako.__file__))
    code = ("import sys; sys.path.append(sys.argv[1])\n"
            "import hako.spec.runtime, hako.runtime.execute, hako.runtime.exec_process, hako.runtime.process\n"
            "print(' '.join(sorted(sys.modules)))")
    p = subprocess.run([sys.executable, "-IS", "-c", code, src], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    mods = set(p.stdout.split())
    assert mods.isdisjoint({"dataclasses", "inspect", "re", "typing", "json"}), mods


def test_create_parent_loads_no_libc_binding() -> None:
    # Everything create's own process imports before it forks C1: validation and cgroups without
    # syscalls through libc, so its peak RSS (the call's) carries neither _ctypes nor libffi.
    code = (
        "import sys; import hako.runtime.cli, hako.runtime.create, hako.runtime.validate, hako.runtime.nsexec, "
        "hako.runtime.channel, hako.runtime.state, hako.spec.runtime, hako.cgroups.v1, hako.cgroups.v2; "
        "print(sorted(m for m in sys.modules if m in ('ctypes', '_ctypes', 'hako.sys.ffi', 'hako.sys.libc')))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_seccomp_prepare_loads_no_json_or_functools(tmp_path: object) -> None:
    # C1 compiles (or finds in the cache) the filter during the cgroup join; what it imports is
    # create's peak RSS with seccomp, so none of json's re/enum or functools' collections.
    code = (
        "import sys; from hako.seccomp import default_profile, prepare; "
        "doc = default_profile(['CAP_CHOWN']); before = set(sys.modules); "
        f"prepare(doc, cache_dir={str(tmp_path)!r}); prepare(doc, cache_dir={str(tmp_path)!r}); "
        "print(sorted(m for m in set(sys.modules) - before if m in ('json', 're', 'functools', 'collections', 'enum')))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
