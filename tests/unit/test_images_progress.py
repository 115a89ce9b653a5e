"""Progress output and the small formatting helpers of the image commands."""

from __future__ import annotations

import io

import pytest

from hako.cli import images as cli
from hako.images import progress


def test_plain_progress_one_line_per_layer() -> None:
    out = io.StringIO()
    p = progress.make(out=out)
    assert isinstance(p, progress.Plain)
    bar = p.layer("sha256:" + "ab" * 32, 1_500_000)
    bar.advance(1_000_000)
    assert out.getvalue() == ""
    bar.done()
    p.message("Writing manifest")
    assert out.getvalue() == "Copying blob sha256:abababababab (1.5 MB) done\nWriting manifest\n"


def test_quiet_progress_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    p = progress.make(quiet=True)
    p.layer("sha256:x", 1).done()
    p.message("x")
    assert capsys.readouterr() == ("", "")


def test_human_sizes() -> None:
    assert progress.human(999) == "999 B"
    assert progress.human(2_130_000) == "2.1 MB"
    assert progress.human(5e12) == "5000.0 GB"


def test_bool_flag() -> None:
    assert cli._bool("false") is False and cli._bool("TRUE") is True
    with pytest.raises(Exception, match="invalid boolean"):
        cli._bool("maybe")
