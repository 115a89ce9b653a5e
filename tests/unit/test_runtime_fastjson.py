"""hako.runtime.fastjson: the C accelerator's scanner/encoder used without the json package."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import hako
from hako.runtime import fastjson

SRC = os.path.dirname(os.path.dirname(hako.__file__))


def test_round_trip_compact() -> None:
    obj = {"a": [1, 2.5, None, True], "b": "é\n", "c": {}}
    text = fastjson.dumps(obj)
    assert text == '{"a":[1,2.5,null,true],"b":"\\u00e9\\n","c":{}}'
    assert fastjson.loads(text) == obj
    assert fastjson.loads(b" [1] \n") == [1]


@pytest.mark.parametrize("text", ["{bad", "", "[1,", "[1] x"])
def test_invalid_json_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        fastjson.loads(text)


def test_invalid_json_without_json_imported() -> None:
    # The C scanner looks its error class up in json.decoder only if that is already imported.
    code = ("import sys; sys.path.append(sys.argv[1]); from hako.runtime import fastjson\n"
            "try:\n    fastjson.loads('{bad')\nexcept ValueError as e:\n    print('ValueError', e)\n")
    p = subprocess.run([sys.executable, "-IS", "-c", code, SRC], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ValueError"), p.stdout


def test_sorted_dumps_match_json_byte_for_byte() -> None:
    # The seccomp cache is keyed by these bytes: they must stay json.dumps' own.
    import json

    obj = {"z": {"b": [3, {"y": 1, "x": "é"}], "a": None}, "a": 1.5, "m": True}
    assert fastjson.dumps(obj, sort_keys=True) == json.dumps(obj, sort_keys=True, separators=(",", ":"))
