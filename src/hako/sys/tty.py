"""Pseudo-terminals for containers: allocate in the container's /dev/pts, hand the master over a socket."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios

TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCSCTTY = 0x540E


def open_pty(ptmx: str = "/dev/ptmx") -> tuple[int, str]:
    """Open a new pty pair's master through ``ptmx``; returns (master fd, slave path)."""
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
    return master, f"/dev/pts/{n}"


def set_winsize(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def make_controlling(slave_path: str) -> None:
    """New session, the slave as controlling terminal and fds 0-2."""
    os.setsid()
    fd = os.open(slave_path, os.O_RDWR)
    fcntl.ioctl(fd, TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    if fd > 2:
        os.close(fd)


def send_master(sock: socket.socket, master: int, name: str) -> None:
    """One sendmsg: non-empty payload (the pty name) and exactly one SCM_RIGHTS fd."""
    socket.send_fds(sock, [name.encode() or b"pty"], [master])


def hand_over_pty(console: socket.socket, size: tuple[int, int] | None = None) -> None:
    """Give the caller a new pty's master over ``console`` and make its slave our terminal.

    Runs in the container (after pivot_root, so the pty lives in the container's /dev/pts); the
    caller (conmon, the shim) sets the window size later unless the process spec gave one.
    """
    master, slave = open_pty("/dev/ptmx")
    if size is not None:
        set_winsize(master, *size)
    send_master(console, master, slave)
    os.close(master)
    console.close()
    make_controlling(slave)


def connect_console(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s
