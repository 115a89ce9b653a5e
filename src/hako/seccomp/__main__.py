"""``python -m hako.seccomp``: check and inspect seccomp profiles without running a container.

  validate FILE            check an OCI linux.seccomp (or a whole config.json); exit 1 + message
  default [--cap CAP]...   print the default profile (Docker's capability set unless --cap)
  from-docker FILE [--cap CAP]...
                           resolve a Docker/containers-format profile for this host to OCI
  bpf FILE [-o OUT]        compile to the raw BPF hako installs (sock_filter array)
  features                 print what this host supports (the features command's object)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hako.errors import HakoError


def _read(path: str) -> dict[str, Any]:
    with open(path) if path != "-" else sys.stdin as f:
        doc = json.load(f)
    # A whole config.json is accepted too: take its linux.seccomp.
    if isinstance(doc, dict) and "ociVersion" in doc and isinstance(doc.get("linux"), dict):
        seccomp = doc["linux"].get("seccomp")
        if seccomp is None:
            raise HakoError(f"{path}: config has no linux.seccomp")
        return dict(seccomp)
    if not isinstance(doc, dict):
        raise HakoError(f"{path}: not a JSON object")
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hako.seccomp", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("validate")
    p.add_argument("file")
    p = sub.add_parser("default")
    p.add_argument("--cap", action="append")
    p = sub.add_parser("from-docker")
    p.add_argument("file")
    p.add_argument("--cap", action="append")
    p = sub.add_parser("bpf")
    p.add_argument("file")
    p.add_argument("-o", "--output")
    sub.add_parser("features")
    args = ap.parse_args(argv)

    from hako import seccomp

    try:
        if args.cmd == "validate":
            seccomp.validate(_read(args.file))
            print(f"{args.file}: valid")
        elif args.cmd == "default":
            print(json.dumps(seccomp.default_profile(args.cap), indent=2))
        elif args.cmd == "from-docker":
            print(json.dumps(seccomp.from_docker(_read(args.file), args.cap), indent=2))
        elif args.cmd == "bpf":
            from hako.seccomp.filter import compile_program
            from hako.seccomp.profile import parse

            program = compile_program(parse(_read(args.file)))
            if args.output:
                with open(args.output, "wb") as f:
                    f.write(program)
            else:
                sys.stdout.buffer.write(program)
            print(f"{len(program) // 8} instructions", file=sys.stderr)
        elif args.cmd == "features":
            print(json.dumps(seccomp.features(), indent=2))
    except (HakoError, OSError, ValueError) as exc:
        print(f"hako: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
