"""hako-runtime's command line (runc's). Placeholder until the runtime core lands."""

import sys


def main() -> int:
    print("hako-runtime: not implemented yet", file=sys.stderr)
    return 1
