"""A default OCI config.json for tests: what ``hako-runtime spec`` writes, without a terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def default_config(args: list[str] | None = None) -> dict[str, Any]:
    from hako.runtime.report import default_spec

    cfg = default_spec(rootless=False)
    # Tests capture stdio through pipes; runc's spec asks for a terminal.
    cfg["process"]["terminal"] = False
    if args is not None:
        cfg["process"]["args"] = list(args)
    return cfg


def write_config(bundle: Path, cfg: dict[str, Any]) -> Path:
    path = bundle / "config.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path
