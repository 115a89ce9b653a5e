"""Foreground ``run``/``exec`` with a terminal and no console socket: proxy our stdio to the pty master."""

from __future__ import annotations

import os
import select


def proxy(master: int) -> None:
    tty_state = None
    try:
        if os.isatty(0):
            import termios
            import tty

            tty_state = termios.tcgetattr(0)
            tty.setraw(0)
    except OSError:
        tty_state = None
    try:
        fds = [master, 0]
        while True:
            r, _, _ = select.select(fds, [], [])
            if master in r:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    return
                os.write(1, data)
            if 0 in r:
                data = os.read(0, 65536)
                if not data:
                    fds = [master]
                    continue
                os.write(master, data)
    finally:
        if tty_state is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, tty_state)
