"""Named and anonymous volumes: directories under ``<root>/volumes/<name>/_data`` that outlive containers.

A volume is filled from the image's content at its mount point the first time it is used
(Docker's copy-up), marked by a ``.populated`` file beside ``_data`` so it happens once.
"""

from __future__ import annotations

from hako.errors import ConfigError, Conflict, NotFound

TYPE_CHECKING = False  # pathlib and typing load only when a volume is used (``hako run`` start-up)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from hako.engine.db import EngineDB

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def valid_name(name: str) -> bool:
    return bool(name) and name[0].isalnum() and name.isascii() and set(name) <= _NAME_CHARS


def _now() -> str:
    from hako.engine.monitor import now_rfc3339

    return now_rfc3339()


class VolumeStore:
    def __init__(self, root: str | Path, db: EngineDB) -> None:
        self._root = root
        self.db = db
        self._dir: Path | None = None

    @property
    def root(self) -> Path:
        from pathlib import Path

        return Path(self._root)

    @property
    def dir(self) -> Path:
        if self._dir is None:
            from pathlib import Path

            self._dir = Path(self._root) / "volumes"
        return self._dir

    def path(self, name: str) -> Path:
        return self.dir / name / "_data"

    def create(self, name: str | None = None, labels: dict[str, str] | None = None,
               anonymous: bool = False) -> str:
        """Create (or reuse) a volume; returns its name."""
        if name is None:
            import os

            name = os.urandom(32).hex()
            anonymous = True
        if not valid_name(name):
            raise ConfigError("volume", f"invalid volume name {name!r}")
        self.path(name).mkdir(parents=True, exist_ok=True)
        self.db.insert_volume(name, _now(), labels or {}, anonymous)
        return name

    def inspect(self, name: str) -> dict[str, Any]:
        import json

        row = self.db.get_volume(name)
        return {"Name": row["name"], "Driver": "local", "Mountpoint": str(self.path(name)),
                "CreatedAt": row["created"], "Labels": json.loads(row["labels"]), "Scope": "local",
                "Options": None, "Anonymous": bool(row["anonymous"])}

    def list_volumes(self) -> list[dict[str, Any]]:
        return [self.inspect(r["name"]) for r in self.db.all_volumes()]

    def users(self, name: str) -> list[str]:
        return [c["Name"] for c in self.db.all_containers()
                if any(m.get("Type") == "volume" and m.get("Name") == name for m in c.get("Mounts", []))]

    def remove(self, name: str, force: bool = False) -> None:
        self.db.get_volume(name)
        users = self.users(name)
        if users:
            raise Conflict(f"volume {name} is in use by container(s) {', '.join(users)}")
        import shutil

        self.db.delete_volume(name)
        shutil.rmtree(self.dir / name, ignore_errors=True)

    def prune(self, all_volumes: bool = False) -> list[str]:
        removed = []
        for row in self.db.all_volumes():
            if not (all_volumes or row["anonymous"]):
                continue
            try:
                self.remove(row["name"])
            except (Conflict, NotFound):
                continue
            removed.append(row["name"])
        return removed

    def populate(self, name: str, rootfs: Path, target: str) -> None:
        """Copy the image's content at ``target`` into a fresh, empty volume (once)."""
        marker = self.dir / name / ".populated"
        if marker.exists():
            return
        data = self.path(name)
        src = rootfs / target.lstrip("/")
        if src.is_dir() and not src.is_symlink() and not any(data.iterdir()):
            import subprocess

            subprocess.run(["cp", "-a", f"{src}/.", str(data)], check=False, capture_output=True)
        marker.touch()

    def size(self, name: str) -> int:
        from hako.engine.images import dir_size

        return dir_size(self.path(name))

