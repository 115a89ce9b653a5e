"""The one SQLite database per store root (images, containers, volumes, networks).

WAL mode lets readers run beside a writer; ``busy_timeout`` makes concurrent ``hako``
processes wait for each other instead of failing with "database is locked". Each area
creates its own tables with ``CREATE TABLE IF NOT EXISTS`` through ``ensure_schema``.

``_sqlite3`` is the module ``sqlite3`` re-exports (same connection, row and error classes);
``sqlite3`` itself also imports datetime and collections to register date adapters hako never
uses, which ``hako run`` would pay for on every call.
"""

from __future__ import annotations

import _sqlite3
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path

DB_NAME = "hako.db"
Row = _sqlite3.Row
IntegrityError = _sqlite3.IntegrityError


def connect(root: str | Path) -> sqlite3.Connection:
    os.makedirs(root, exist_ok=True)
    # isolation_level=None: we open transactions ourselves with BEGIN IMMEDIATE in ``transaction``.
    conn = _sqlite3.connect(os.path.join(root, DB_NAME), timeout=30.0, isolation_level=None)
    conn.row_factory = _sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class transaction:  # noqa: N801 - used like the function it was (contextlib would cost start-up time)
    """One multi-step change, all or nothing; IMMEDIATE takes the write lock up front."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: object, *_: object) -> None:
        self.conn.execute("ROLLBACK" if kind is not None else "COMMIT")


def ensure_schema(conn: sqlite3.Connection, ddl: str) -> None:
    conn.executescript(ddl)
