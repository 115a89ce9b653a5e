"""Pull/push progress: a rich bar per layer on a TTY, one plain line per layer otherwise."""

from __future__ import annotations

import sys
import threading
from typing import Any, Protocol, TextIO


class LayerProgress(Protocol):
    def advance(self, n: int) -> None: ...

    def done(self, note: str = "done") -> None: ...


class Progress(Protocol):
    def layer(self, digest: str, total: int, verb: str = "Copying blob") -> LayerProgress: ...

    def message(self, text: str) -> None: ...

    def close(self) -> None: ...


def human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"


class _NullLayer:
    def advance(self, n: int) -> None:
        pass

    def done(self, note: str = "done") -> None:
        pass


class Quiet:
    def layer(self, digest: str, total: int, verb: str = "Copying blob") -> LayerProgress:
        return _NullLayer()

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class _PlainLayer:
    def __init__(self, out: TextIO, lock: threading.Lock, digest: str, total: int, verb: str) -> None:
        self.out, self.lock, self.digest, self.total, self.verb = out, lock, digest, total, verb

    def advance(self, n: int) -> None:
        pass

    def done(self, note: str = "done") -> None:
        with self.lock:
            print(f"{self.verb} {self.digest[:19]} ({human(self.total)}) {note}", file=self.out, flush=True)


class Plain:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()

    def layer(self, digest: str, total: int, verb: str = "Copying blob") -> LayerProgress:
        return _PlainLayer(self.out, self.lock, digest, total, verb)

    def message(self, text: str) -> None:
        with self.lock:
            print(text, file=self.out, flush=True)

    def close(self) -> None:
        pass


class _RichLayer:
    def __init__(self, prog: Any, task: Any) -> None:
        self.prog, self.task = prog, task

    def advance(self, n: int) -> None:
        self.prog.update(self.task, advance=n)

    def done(self, note: str = "done") -> None:
        self.prog.update(self.task, completed=self.prog.tasks[self.task].total or 0)


class Rich:
    def __init__(self, out: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self.prog = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                             TransferSpeedColumn(), console=Console(file=out), transient=False)
        self.prog.start()

    def layer(self, digest: str, total: int, verb: str = "Copying blob") -> LayerProgress:
        return _RichLayer(self.prog, self.prog.add_task(f"{verb} {digest[7:19]}", total=total))

    def message(self, text: str) -> None:
        self.prog.console.print(text)

    def close(self) -> None:
        self.prog.stop()


def make(quiet: bool = False, out: TextIO | None = None) -> Progress:
    if quiet:
        return Quiet()
    out = out or sys.stderr
    if out.isatty():
        return Rich(out)
    return Plain(out)
