"""hako.cli.gotemplate: ``--format`` prints values as docker's Go templates do."""

from __future__ import annotations

from hako.cli.gotemplate import go_str, render


def test_fields_and_nested_fields() -> None:
    obj = {"Os": "linux", "Config": {"Cmd": ["sh"], "Env": None}, "RepoTags": ["a:1", "b:2"]}
    assert render("{{.Os}}/{{ .Config.Cmd }}", obj) == "linux/[sh]"
    assert render("{{.Missing.Deep}}|{{.RepoTags}}", obj) == "<no value>|[a:1 b:2]"
    assert render("{{.Config.Env}}", obj) == "<nil>"


def test_json_is_compact_like_gos_encoder() -> None:
    obj = {"Config": {"Cmd": ["sh"], "Env": None}}
    assert render("{{json .Config}}", obj) == '{"Cmd":["sh"],"Env":null}'
    assert render("{{json .Nope}}", obj) == "null"


def test_go_value_formatting() -> None:
    assert go_str(True) == "true" and go_str(False) == "false"
    assert go_str(["PATH=/bin", "FOO=bar"]) == "[PATH=/bin FOO=bar]"
    assert go_str({"b": 1, "a": [True]}) == "map[a:[true] b:1]"
    assert go_str(0) == "0"


def test_escapes_typed_on_the_command_line() -> None:
    assert render("{{.Repository}}\\t{{.Tag}}\\n", {"Repository": "r", "Tag": "t"}) == "r\tt\n"
