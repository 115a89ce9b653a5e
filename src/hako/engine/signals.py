"""Signal names and numbers (Linux x86-64/arm64), without importing the signal module's enums."""

from __future__ import annotations

from hako.errors import ConfigError

SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
           "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16,
           "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23,
           "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "PWR": 30, "SYS": 31}


def parse_signal(sig: str | int) -> int:
    if isinstance(sig, int) or str(sig).isdigit():
        return int(sig)
    name = str(sig).upper().removeprefix("SIG")
    if name.startswith("RTMIN+"):
        return 34 + int(name[6:])
    if name not in SIGNALS:
        raise ConfigError("signal", f"unknown signal {sig!r}")
    return SIGNALS[name]
