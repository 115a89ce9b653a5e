"""hako.cpulist: the kernel's CPU list format, shared by cpusets and exec CPU affinity."""

from __future__ import annotations

import pytest

from hako import cpulist


def test_ranges_and_singles() -> None:
    assert cpulist.parse("0-2,7") == {0, 1, 2, 7}
    assert cpulist.parse(" 3 ") == {3}


@pytest.mark.parametrize("bad", ["", "a", "0-", "0,,1", "2-1", "1, 2", "0-1-2", "٣"])
def test_malformed_lists_are_value_errors(bad: str) -> None:
    with pytest.raises(ValueError):
        cpulist.parse(bad)
