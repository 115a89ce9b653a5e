"""What ``hako run`` imports before its container's monitor is spawned.

Every module on that path costs start-up time on each ``hako run`` (issue #6): argparse, pathlib,
json and re (with enum), typing, dataclasses (inspect, ast), hashlib (OpenSSL), uuid (platform),
tempfile, shutil, tarfile, socket and the sqlite3 package (datetime) load only for the commands
and options that need them. A behaviour guard, not a timing assert: a fresh ``python -S`` runs the
CLI's steps up to the spawn (parse, engine, options, image lookup, config merge, snapshot, mounts
excepted) and lists the modules it loaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")

FORBIDDEN = {
    "argparse", "pathlib", "json", "re", "enum", "typing", "dataclasses", "inspect", "ast", "hashlib",
    "_hashlib", "uuid", "platform", "tempfile", "random", "shutil", "tarfile", "socket", "selectors",
    "sqlite3", "datetime", "contextlib", "hako.storage.layers", "hako.images.puller", "hako.images.registry",
    "subprocess", "signal", "threading", "base64", "importlib", "locale", "gettext",
}

SCRIPT = r"""
import os, sys
root = sys.argv[1]
from hako.cli.main import command_name
from hako.cli.run import create_options, fast_parse
argv = ["--root", root, "run", "--rm", "-e", "A=1", "busybox", "true"]
assert command_name(argv) == "run"
args = fast_parse(argv, root)
from hako.engine.containers import Engine
from hako.engine.config import host_config, merge_config
from hako.errors import NotFound
eng = Engine(args.root, runtime="/bin/true", cgroup_parent="/hako-importtime")
opts = create_options(args)
opts.pull = "never"
try:
    eng.images.resolve(opts.image, opts.pull)
except NotFound:
    pass
cfg = merge_config(opts, {"Cmd": ["sh"], "Env": ["PATH=/bin"]}, "c" * 64, "busybox")
host = host_config(opts, "/bin/true", "/hako-importtime")
from hako.seccomp import default_profile  # what build_spec gives every container
default_profile(["CAP_CHOWN", "CAP_NET_RAW"])
snap = eng.images.snapshotter
if snap is not None:
    snap.prepare("c" * 64, [])
    snap.remove("c" * 64)
eng.db.delete_container("c" * 64)
print(" ".join(sorted(sys.modules)))
"""


def _loaded(tmp_path: Path) -> set[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, "-S", "-c", SCRIPT, str(tmp_path / "root")], env=env,
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_run_path_imports_nothing_heavy(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    assert "hako.engine.containers" in loaded and "hako.images.store" in loaded  # the path ran
    heavy = sorted(FORBIDDEN & loaded)
    assert heavy == [], f"hako run's path imports {heavy}"


def test_fast_parse_needs_no_argparse(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": SRC}
    code = ("import sys\nfrom hako.cli.run import fast_parse\n"
            "assert fast_parse(['ps', '-a'], '/r') is not None\n"
            "assert fast_parse(['rm', '-f', 'x'], '/r') is not None\n"
            "print('argparse' in sys.modules, 'json' in sys.modules)")
    out = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
