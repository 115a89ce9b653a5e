"""A small runc-style argv parser: ``--flag value``, ``--flag=value``, short aliases, any order.

argparse would do, but importing and building it costs more than the rest of ``state``; the
runtime is started for every call a container manager makes.
"""

from __future__ import annotations

from hako.errors import HakoError


class FlagSpec:
    """One flag: canonical long name without dashes; plain class, as dataclasses cost start-up time."""

    __slots__ = ("name", "takes_value", "multi", "aliases", "optional_value")

    def __init__(
        self,
        name: str,
        takes_value: bool = False,
        multi: bool = False,
        aliases: tuple[str, ...] = (),
        optional_value: bool = False,  # --rootless or --rootless=true
    ) -> None:
        self.name = name
        self.takes_value = takes_value
        self.multi = multi
        self.aliases = aliases
        self.optional_value = optional_value


class Parsed:
    def __init__(self) -> None:
        self.flags: dict[str, object] = {}
        self.args: list[str] = []

    def get(self, name: str, default: object = None) -> object:
        return self.flags.get(name, default)

    def opt(self, name: str, default: str | None = None) -> str | None:
        v = self.flags.get(name, default)
        return v if isinstance(v, str) or v is None else str(v)

    def flag(self, name: str) -> bool:
        v = self.flags.get(name, False)
        if isinstance(v, str):
            return v.lower() not in ("false", "0", "no")
        return bool(v)

    def many(self, name: str) -> list[str]:
        v = self.flags.get(name)
        return list(v) if isinstance(v, list) else []


def parse(
    argv: list[str],
    specs: list[FlagSpec],
    *,
    stop_at_positional: int | None = None,
    stop_at_first_positional: bool = False,
) -> Parsed:
    """Parse ``argv``. After ``stop_at_positional`` positionals, the rest is positional verbatim."""
    table: dict[str, FlagSpec] = {}
    for s in specs:
        table["--" + s.name] = s
        for a in s.aliases:
            table[a] = s
    out = Parsed()
    i = 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        if stop_at_positional is not None and len(out.args) >= stop_at_positional:
            out.args.append(tok)
            out.args.extend(argv[i:])
            break
        if tok == "--":
            out.args.extend(argv[i:])
            break
        if not tok.startswith("-") or tok == "-":
            out.args.append(tok)
            if stop_at_first_positional:
                out.args.extend(argv[i:])
                break
            continue
        name, eq, value = tok.partition("=")
        if not name.startswith("--") and name in table and len(name) == 2:
            pass
        elif not name.startswith("--") and name not in table:
            # single-dash long flags (-root, -bundle) are accepted by runc's flag package
            if "--" + name.lstrip("-") in table:
                name = "--" + name.lstrip("-")
        spec = table.get(name)
        if spec is None:
            raise HakoError(f"flag provided but not defined: {name}")
        if spec.takes_value:
            if not eq:
                if i >= len(argv):
                    raise HakoError(f"flag needs an argument: {name}")
                value = argv[i]
                i += 1
            if spec.multi:
                cur = out.flags.setdefault(spec.name, [])
                assert isinstance(cur, list)
                cur.append(value)
            else:
                out.flags[spec.name] = value
        else:
            if eq and not spec.optional_value:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise HakoError(f"invalid boolean value {value!r} for {name}")
            out.flags[spec.name] = value if eq else True
    return out
