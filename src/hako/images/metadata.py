"""Image metadata in the store's SQLite database: images, tags, digests, layers, users.

Blobs (manifests, configs, compressed layers) are in the content store; this holds what
points at them. Every multi-step change runs in one ``BEGIN IMMEDIATE`` transaction, so
concurrent ``hako`` processes see either all of a pull or none of it.
"""

from __future__ import annotations

import time

from hako.records import dataclass
from hako.storage.db import connect, ensure_schema, transaction

TYPE_CHECKING = False  # the image lookup is on ``hako run``'s path: no sqlite3 package, pathlib, dataclasses
if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,               -- sha256:<config digest>
    manifest_digest TEXT NOT NULL,     -- the platform manifest whose blobs we hold
    created TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL DEFAULT 0,   -- unpacked bytes (sum of layer tar sizes)
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS image_tags (
    name TEXT PRIMARY KEY,             -- registry/repository:tag, fully qualified
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS image_digests (
    name TEXT PRIMARY KEY,             -- registry/repository@digest (index digest if pulled from one)
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    manifest_digest TEXT NOT NULL      -- the manifest (or index) blob in the content store
);
CREATE TABLE IF NOT EXISTS layers (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    size INTEGER NOT NULL              -- uncompressed tar size
);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    chain_id TEXT NOT NULL REFERENCES layers(chain_id),
    PRIMARY KEY (image_id, position)
);
CREATE INDEX IF NOT EXISTS image_layers_chain ON image_layers(chain_id);
CREATE TABLE IF NOT EXISTS image_users (
    container_id TEXT PRIMARY KEY,     -- recorded by the engine: which container uses which image
    image_id TEXT NOT NULL
);
"""


@dataclass
class ImageRow:
    id: str
    manifest_digest: str
    created: str
    size: int
    added: float
    tags: list[str]
    digests: list[str]
    chain_ids: list[str]


@dataclass
class LayerRow:
    chain_id: str
    diff_id: str
    size: int


class ImageDB:
    def __init__(self, root: str | Path, conn: sqlite3.Connection | None = None) -> None:
        """``conn``: an open connection to the same database to use (and leave open on ``close``)."""
        self._own = conn is None
        self.conn: sqlite3.Connection = connect(root) if conn is None else conn
        ensure_schema(self.conn, SCHEMA)

    def close(self) -> None:
        if self._own:
            self.conn.close()

    # -- reads -------------------------------------------------------------------------
    def _row(self, r: sqlite3.Row) -> ImageRow:
        iid = r["id"]
        tags = [x[0] for x in self.conn.execute("SELECT name FROM image_tags WHERE image_id=? ORDER BY name",
                                                (iid,))]
        digests = [x[0] for x in self.conn.execute(
            "SELECT name FROM image_digests WHERE image_id=? ORDER BY name", (iid,))]
        chains = [x[0] for x in self.conn.execute(
            "SELECT chain_id FROM image_layers WHERE image_id=? ORDER BY position", (iid,))]
        return ImageRow(iid, r["manifest_digest"], r["created"], r["size"], r["added"], tags, digests, chains)

    def image(self, image_id: str) -> ImageRow | None:
        r = self.conn.execute("SELECT * FROM images WHERE id=?", (image_id,)).fetchone()
        return self._row(r) if r else None

    def images(self) -> list[ImageRow]:
        return [self._row(r) for r in self.conn.execute("SELECT * FROM images ORDER BY added DESC")]

    def ids_with_prefix(self, prefix: str) -> list[str]:
        like = prefix.replace("%", "").replace("_", "") + "%"
        return [r[0] for r in self.conn.execute("SELECT id FROM images WHERE id LIKE ?", (like,))]

    def by_tag(self, name: str) -> str | None:
        r = self.conn.execute("SELECT image_id FROM image_tags WHERE name=?", (name,)).fetchone()
        return r[0] if r else None

    def by_digest(self, name: str) -> str | None:
        r = self.conn.execute("SELECT image_id FROM image_digests WHERE name=?", (name,)).fetchone()
        return r[0] if r else None

    def digest_manifests(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self.conn.execute("SELECT name, manifest_digest FROM image_digests")}

    def layer(self, chain_id: str) -> LayerRow | None:
        r = self.conn.execute("SELECT * FROM layers WHERE chain_id=?", (chain_id,)).fetchone()
        return LayerRow(r["chain_id"], r["diff_id"], r["size"]) if r else None

    def layers(self) -> list[LayerRow]:
        return [LayerRow(r["chain_id"], r["diff_id"], r["size"]) for r in self.conn.execute("SELECT * FROM layers")]

    def users(self, image_id: str) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT container_id FROM image_users WHERE image_id=?",
                                                (image_id,))]

    # -- writes ------------------------------------------------------------------------
    def add_image(self, image_id: str, manifest_digest: str, created: str, size: int,
                  layers: list[LayerRow], tags: list[str], digests: dict[str, str]) -> None:
        """Record an image, its layers and names in one transaction; names move to it."""
        with transaction(self.conn) as c:
            c.execute("INSERT INTO images(id, manifest_digest, created, size, added) VALUES (?,?,?,?,?) "
                      "ON CONFLICT(id) DO UPDATE SET manifest_digest=excluded.manifest_digest",
                      (image_id, manifest_digest, created, size, time.time()))
            for lay in layers:
                c.execute("INSERT OR IGNORE INTO layers(chain_id, diff_id, size) VALUES (?,?,?)",
                          (lay.chain_id, lay.diff_id, lay.size))
            c.execute("DELETE FROM image_layers WHERE image_id=?", (image_id,))
            c.executemany("INSERT INTO image_layers(image_id, position, chain_id) VALUES (?,?,?)",
                          [(image_id, i, lay.chain_id) for i, lay in enumerate(layers)])
            for t in tags:
                c.execute("INSERT OR REPLACE INTO image_tags(name, image_id) VALUES (?,?)", (t, image_id))
            for name, mdigest in digests.items():
                c.execute("INSERT OR REPLACE INTO image_digests(name, image_id, manifest_digest) VALUES (?,?,?)",
                          (name, image_id, mdigest))

    def tag(self, image_id: str, name: str) -> None:
        with transaction(self.conn) as c:
            c.execute("INSERT OR REPLACE INTO image_tags(name, image_id) VALUES (?,?)", (name, image_id))

    def add_digest(self, name: str, image_id: str, manifest_digest: str) -> None:
        with transaction(self.conn) as c:
            c.execute("INSERT OR REPLACE INTO image_digests(name, image_id, manifest_digest) VALUES (?,?,?)",
                      (name, image_id, manifest_digest))

    def untag(self, name: str) -> None:
        with transaction(self.conn) as c:
            c.execute("DELETE FROM image_tags WHERE name=?", (name,))

    def delete_image(self, image_id: str) -> None:
        with transaction(self.conn) as c:
            c.execute("DELETE FROM images WHERE id=?", (image_id,))

    def unused_layers(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT chain_id FROM layers WHERE chain_id NOT IN (SELECT chain_id FROM image_layers)")]

    def delete_layers(self, chain_ids: list[str]) -> None:
        with transaction(self.conn) as c:
            c.executemany("DELETE FROM layers WHERE chain_id=? AND chain_id NOT IN "
                          "(SELECT chain_id FROM image_layers)", [(x,) for x in chain_ids])

    def add_container_ref(self, container_id: str, image_id: str) -> None:
        with transaction(self.conn) as c:
            c.execute("INSERT OR REPLACE INTO image_users(container_id, image_id) VALUES (?,?)",
                      (container_id, image_id))

    def remove_container_ref(self, container_id: str) -> None:
        with transaction(self.conn) as c:
            c.execute("DELETE FROM image_users WHERE container_id=?", (container_id,))


def add_container_ref(root: str | Path, container_id: str, image_id: str) -> None:
    """For the engine: container ``container_id`` uses image ``image_id`` (blocks ``rmi``)."""
    db = ImageDB(root)
    try:
        db.add_container_ref(container_id, image_id)
    finally:
        db.close()


def remove_container_ref(root: str | Path, container_id: str) -> None:
    db = ImageDB(root)
    try:
        db.remove_container_ref(container_id)
    finally:
        db.close()
