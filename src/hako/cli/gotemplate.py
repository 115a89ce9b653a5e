"""The part of Go's text/template that ``--format`` needs: ``{{.A.B}}`` and ``{{json .A}}``.

Values print as Go prints them, since scripts written for docker and podman parse that output:
lists as ``[a b]``, maps as ``map[k:v]`` (keys sorted), booleans as ``true``/``false``, nil as
``<nil>``, a missing field as ``<no value>``; ``json`` is compact, as Go's encoder writes it.
``\\t`` and ``\\n`` typed on the command line become a tab and a newline (docker does the same).
"""

from __future__ import annotations

import json
from typing import Any

_MISSING = object()


def render(fmt: str, data: dict[str, Any]) -> str:
    import re

    def field(m: re.Match[str]) -> str:
        expr = m.group(1).strip()
        as_json = expr.startswith("json ")
        value = lookup(data, expr[5:].strip() if as_json else expr)
        if as_json:
            return json.dumps(None if value is _MISSING else value, separators=(",", ":"))
        return "<no value>" if value is _MISSING else go_str(value)

    return re.sub(r"\{\{(.*?)\}\}", field, fmt.replace("\\t", "\t").replace("\\n", "\n"))


def lookup(data: dict[str, Any], path: str) -> Any:
    cur: Any = data
    for part in (p for p in path.split(".") if p):
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def go_str(value: Any) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_str(value[k])}" for k in sorted(value)) + "]"
    return str(value)
