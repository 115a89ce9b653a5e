"""Container and volume identifiers: 64 hex digits like Docker's, and Docker-style random names."""

from __future__ import annotations

import os

from hako.errors import ConfigError

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")

_LEFT = ["admiring", "brave", "calm", "clever", "dazzling", "eager", "festive", "gallant", "happy",
         "jolly", "keen", "lucid", "modest", "nifty", "optimistic", "quirky", "relaxed", "serene",
         "tender", "upbeat", "vibrant", "wizardly", "youthful", "zealous"]
_RIGHT = ["turing", "hopper", "lovelace", "knuth", "ritchie", "thompson", "torvalds", "dijkstra",
          "hamilton", "liskov", "curie", "noether", "kepler", "galois", "euler", "gauss", "shannon",
          "babbage", "boole", "cerf", "hoare", "lamport", "milner", "perlman"]


def new_id() -> str:
    return os.urandom(32).hex()


def random_name() -> str:
    b = os.urandom(3)
    return f"{_LEFT[b[0] % len(_LEFT)]}_{_RIGHT[b[1] % len(_RIGHT)]}{b[2] % 100}"


def valid_name(name: str) -> bool:
    """Docker's ``^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`` (Go's ``$``: no final newline), without re's import."""
    body = name[1:] if name.startswith("/") else name
    return len(body) >= 2 and body[0] in _NAME_CHARS and body[0] not in "_.-" and set(body) <= _NAME_CHARS


def check_name(name: str) -> str:
    if not valid_name(name):
        raise ConfigError("name", f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")
