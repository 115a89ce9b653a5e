"""hako.storage.overlay without root: what needs no mount."""

from __future__ import annotations

from hako.storage.overlay import mountinfo_path


def test_mountinfo_path_undoes_the_kernels_octal_escapes() -> None:
    assert mountinfo_path("/var/lib/hako") == "/var/lib/hako"
    assert mountinfo_path(r"/tmp/with\040space/and\011tab\134back") == "/tmp/with space/and\ttab\\back"
