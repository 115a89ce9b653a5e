"""Device rules for the v1 devices controller: devices.allow / devices.deny lines.

The kernel applies each line to the cgroup's exception list in order, so writing the spec's
rules in order gives the spec's meaning: a leading wildcard deny resets to "deny all",
each later allow opens one hole.
"""

from __future__ import annotations

from hako.cgroups.resources import DeviceRule


def writes(rules: list[DeviceRule]) -> list[tuple[str, str]]:
    """(file name, line) pairs for ``rules``, in the order they must be written."""
    out: list[tuple[str, str]] = []
    for r in rules:
        out.append(("devices.allow" if r.allow else "devices.deny", r.v1_line()))
    return out
