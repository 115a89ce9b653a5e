"""The engine's tables in the shared SQLite database: containers and volumes.

Static facts (name, image, the merged configuration) live here; a running container's dynamic
state (pid, status, exit code, health) is written by its monitor to ``state.json`` so the monitor
never needs SQLite.
"""

from __future__ import annotations

from hako.errors import Conflict, NotFound
from hako.runtime import fastjson as json  # json's decoder imports re (and enum, functools, ...)
from hako.storage.db import IntegrityError, connect, ensure_schema, transaction

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path
    from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    image TEXT NOT NULL,
    image_id TEXT NOT NULL,
    created TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    anonymous INTEGER NOT NULL DEFAULT 0
);
"""


class EngineDB:
    def __init__(self, root: str | Path) -> None:
        self.conn = connect(root)
        ensure_schema(self.conn, SCHEMA)

    def close(self) -> None:
        self.conn.close()

    # containers
    def insert_container(self, rec: dict[str, Any]) -> None:
        try:
            with transaction(self.conn):
                self.conn.execute(
                    "INSERT INTO containers (id, name, image, image_id, created, record) VALUES (?,?,?,?,?,?)",
                    (rec["Id"], rec["Name"], rec["Image"], rec["ImageID"], rec["Created"], json.dumps(rec)))
        except IntegrityError as exc:
            raise Conflict(f"container name {rec['Name']!r} is already in use") from exc

    def update_container(self, rec: dict[str, Any]) -> None:
        try:
            with transaction(self.conn):
                self.conn.execute("UPDATE containers SET name=?, record=? WHERE id=?",
                                  (rec["Name"], json.dumps(rec), rec["Id"]))
        except IntegrityError as exc:
            raise Conflict(f"container name {rec['Name']!r} is already in use") from exc

    def delete_container(self, cid: str) -> None:
        with transaction(self.conn):
            self.conn.execute("DELETE FROM containers WHERE id=?", (cid,))

    def all_containers(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT record FROM containers ORDER BY created DESC").fetchall()
        return [json.loads(r["record"]) for r in rows]

    def find_container(self, ref: str) -> dict[str, Any]:
        ref = ref.lstrip("/")
        row = self.conn.execute("SELECT record FROM containers WHERE id=? OR name=?", (ref, ref)).fetchone()
        if row is None and len(ref) >= 3 and all(c in "0123456789abcdef" for c in ref):
            rows = self.conn.execute("SELECT record FROM containers WHERE id LIKE ?", (ref + "%",)).fetchall()
            if len(rows) > 1:
                raise Conflict(f"container id prefix {ref!r} is ambiguous")
            row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"no such container: {ref}")
        return dict(json.loads(row["record"]))

    # volumes
    def insert_volume(self, name: str, created: str, labels: dict[str, str], anonymous: bool) -> bool:
        with transaction(self.conn):
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO volumes (name, created, labels, anonymous) VALUES (?,?,?,?)",
                (name, created, json.dumps(labels), int(anonymous)))
            return cur.rowcount > 0

    def get_volume(self, name: str) -> sqlite3.Row:
        row = self.conn.execute("SELECT * FROM volumes WHERE name=?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no such volume: {name}")
        return row

    def all_volumes(self) -> list[sqlite3.Row]:
        return list(self.conn.execute("SELECT * FROM volumes ORDER BY name").fetchall())

    def delete_volume(self, name: str) -> None:
        with transaction(self.conn):
            self.conn.execute("DELETE FROM volumes WHERE name=?", (name,))
