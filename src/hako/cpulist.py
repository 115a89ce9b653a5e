"""CPU lists as the kernel writes them ("0-2,7"), for cpusets and CPU affinity alike."""

from __future__ import annotations


def parse(text: str) -> set[int]:
    """The CPU numbers in ``text``; ValueError (naming the text) when it is not such a list.

    Surrounding whitespace is allowed, nothing inside; ranges must not run backwards.
    """
    cpus: set[int] = set()
    for part in text.strip().split(","):
        lo, dash, hi = part.partition("-")
        if not (lo.isascii() and lo.isdigit()) or (dash and not (hi.isascii() and hi.isdigit())):
            raise ValueError(f"{text!r} is not a CPU list like '0-2,7'")
        first = int(lo)
        last = int(hi) if dash else first
        if last < first:
            raise ValueError(f"{text!r}: range {part!r} runs backwards")
        cpus.update(range(first, last + 1))
    return cpus
