"""The one SQLite database per store root (images, containers, volumes, networks).

WAL mode lets readers run beside a writer; ``busy_timeout`` makes concurrent ``hako``
processes wait for each other instead of failing with "database is locked". Each area
creates its own tables with ``CREATE TABLE IF NOT EXISTS`` through ``ensure_schema``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DB_NAME = "hako.db"


def connect(root: Path) -> sqlite3.Connection:
    root.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: we open transactions ourselves with BEGIN IMMEDIATE in ``transaction``.
    conn = sqlite3.connect(root / DB_NAME, timeout=30.0, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One multi-step change, all or nothing; IMMEDIATE takes the write lock up front."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def ensure_schema(conn: sqlite3.Connection, ddl: str) -> None:
    conn.executescript(ddl)
