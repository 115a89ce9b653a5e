"""Entry point of ``hako``: global flags, then subcommands registered by each area.

Each area module exposes ``register(subparsers)`` and sets ``func`` on its parsers;
``func(args) -> int`` returns the exit code. Errors print ``hako: <message>`` and exit 125.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # argparse, pathlib and typing load after ``hako run`` has started its monitor
if TYPE_CHECKING:
    import argparse
    from typing import Any

AREAS = ["hako.cli.images", "hako.cli.containers"]
DEFAULT_ROOT = "/var/lib/hako"


def command_name(argv: list[str]) -> str | None:
    """The subcommand in ``argv`` (after the global flags), or None."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--root":
            i += 2
        elif arg.startswith("--root=") or arg == "--debug":
            i += 1
        else:
            return None if arg.startswith("-") else arg
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; for a container ``command`` only its own subparser is built (start-up time)."""
    import argparse
    import importlib
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="hako", description="Containers, daemonless, in Python.")
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("HAKO_ROOT", DEFAULT_ROOT)),
                        help="store root (default $HAKO_ROOT or /var/lib/hako)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    if command is not None:
        from hako.cli import containers

        if command in containers.COMMANDS:
            containers.register(subparsers, only=command)
            return parser
    for name in AREAS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from hako.engine.trace import phase
    from hako.errors import HakoError

    phase("cli", "main")
    argv = sys.argv[1:] if argv is None else argv
    command = command_name(argv)
    if command == "run":
        # The container's monitor starts before anything else, so its start-up overlaps ours.
        from hako.engine.launch import start_early

        start_early(argv, os.environ.get("HAKO_ROOT", DEFAULT_ROOT))
    args: Any = None
    if command in ("run", "create", "rm", "ps"):
        from hako.cli.run import fast_parse

        args = fast_parse(argv, os.environ.get("HAKO_ROOT", DEFAULT_ROOT))
    if args is None:
        parser = build_parser(command)
        args = parser.parse_args(argv)
    phase("cli", "parsed")
    if not getattr(args, "func", None):
        parser.print_help()
        return 125
    try:
        return int(args.func(args) or 0)
    except HakoError as exc:
        if args.debug:
            raise
        print(f"hako: {exc}", file=sys.stderr)
        return 125
    except KeyboardInterrupt:
        return 130


def run() -> None:
    """The console entry point: main(), then leave without the interpreter's teardown.

    Finalizing the ~200 modules a command loads costs 10-15 ms; every file and database
    transaction is closed by its context manager and the only thread (stdin pump) is a daemon,
    so flushing the standard streams is all that exit still has to do.
    """
    try:
        code = main()
    except BrokenPipeError:
        # The reader went away (`hako ps | head`): quietly, with the status a SIGPIPE death gives,
        # as docker and podman end; what is left in stdout's buffer has nowhere to go.
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        code = 141
    except SystemExit as e:  # argparse errors and --help
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        code = code or 125
    os._exit(code)


if __name__ == "__main__":
    run()
