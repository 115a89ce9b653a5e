"""Container and volume identifiers: 64 hex digits like Docker's, and Docker-style random names."""

from __future__ import annotations

import os
import re

from hako.errors import ConfigError

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

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


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ConfigError("name", f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")
