"""python -m hako.seccomp: validate, default, from-docker, bpf, features (no root)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hako.seccomp.__main__ import main


def test_validate_ok_and_error_with_json_path(tmp_path: Path, capsys: object) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW"}))
    assert main(["validate", str(good)]) == 0
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"ociVersion": "1.0.2", "linux": {"seccomp": {"defaultAction": "SCMP_ACT_NOPE"}}}))
    assert main(["validate", str(config)]) == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "linux.seccomp.defaultAction" in err


def test_default_and_bpf_round_trip(tmp_path: Path, capsys: object) -> None:
    assert main(["default", "--cap", "CAP_SYS_ADMIN"]) == 0
    profile = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert "mount" in profile["syscalls"][0]["names"]
    src = tmp_path / "p.json"
    src.write_text(json.dumps(profile))
    out = tmp_path / "p.bpf"
    assert main(["bpf", str(src), "-o", str(out)]) == 0
    assert out.stat().st_size % 8 == 0 and out.stat().st_size > 800


def test_from_docker_and_features_via_the_module() -> None:
    doc = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_X"]}}]}
    out = subprocess.run([sys.executable, "-m", "hako.seccomp", "from-docker", "-"], input=json.dumps(doc), capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["syscalls"] == []
    feats = subprocess.run([sys.executable, "-m", "hako.seccomp", "features"], capture_output=True, text=True, check=True)
    assert json.loads(feats.stdout)["enabled"] is True
