"""JSON for the hot commands through the C accelerator ``_json`` directly.

``import json`` pulls in ``re`` (and with it enum, functools, collections): about 8 ms, as
much as the rest of ``hako-runtime state``. The C scanner and encoder that ``json`` itself
uses need none of that. Falls back to ``json`` if the accelerator is missing.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None  # type: ignore[assignment]


class _Ctx:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, Any] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_WS = " \t\n\r"


def loads(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        text = text.decode()
    if _json is None:
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(_WS))
    try:
        obj, end = _json.make_scanner(_Ctx)(text, start)  # type: ignore[arg-type]
    except (StopIteration, SystemError):
        # The C scanner builds its error from json.decoder, found only if already imported
        # (otherwise SystemError): on bad input, json itself reports it (JSONDecodeError).
        import json

        return json.loads(text)
    finally:
        _Ctx.memo.clear()
    if text[end:].strip(_WS):
        raise ValueError(f"extra data at offset {end}")
    return obj


def dumps(obj: Any, sort_keys: bool = False) -> str:
    """Compact JSON (separators "," and ":"), non-ASCII escaped, like json.dumps(separators=...)."""
    if _json is None:
        import json

        return json.dumps(obj, separators=(",", ":"), sort_keys=sort_keys)
    enc = _json.make_encoder(
        {}, _default, _json.encode_basestring_ascii, None, ":", ",", sort_keys, False, True
    )
    return "".join(enc(obj, 0))


def _default(o: Any) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")
