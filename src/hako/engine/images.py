"""The engine's view of images and container root filesystems.

Images come from ``hako.images.store.ImageStore``; a container's writable root comes from
``hako.storage.snapshots.Snapshotter`` (an overlay over the image's layers). The engine mounts
the root at ``<bundle>/rootfs`` before it calls the runtime, so any runc-compatible runtime only
sees ``root.path``. When the snapshotter is not importable, the engine stacks the image's layer
directories with overlayfs itself.
"""

from __future__ import annotations

import os

from hako.errors import HakoError, NotFound
from hako.records import dataclass, field

TYPE_CHECKING = False  # typing, pathlib and json stay off ``hako run``'s way to its monitor
if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path
    from typing import Any


@dataclass
class EngineImage:
    id: str
    name: str
    config: dict[str, Any]
    chain_ids: list[str] = field(default_factory=list)
    layer_dirs: list[Path] = field(default_factory=list)

    @property
    def container_config(self) -> dict[str, Any]:
        return dict(self.config.get("config") or {})


def _image_store(root: str | Path, conn: sqlite3.Connection | None = None) -> Any:
    try:
        from hako.images.store import ImageStore  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return ImageStore(root, conn=conn)


def _snapshotter(root: str | Path) -> Any:
    try:
        from hako.storage.snapshots import Snapshotter  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return Snapshotter(root)


# --- a directory image store, used only until hako.images.store exists ---------------------------
def _dir_images(root: str | Path) -> Path:
    from pathlib import Path

    return Path(root, "engine-images")


def register_dir_image(root: Path, name: str, rootfs: Path, config: dict[str, Any] | None = None) -> EngineImage:
    """Register a plain rootfs directory as image ``name`` (fallback when there is no image store)."""
    import hashlib
    import json
    import shutil

    name = normalize(name)
    d = _dir_images(root) / name.replace("/", "_").replace(":", "_")
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    shutil.copytree(rootfs, d / "rootfs", symlinks=True)
    cfg = config or {"config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}}
    cfg_text = json.dumps(cfg, sort_keys=True)
    image_id = "sha256:" + hashlib.sha256(cfg_text.encode()).hexdigest()
    (d / "image.json").write_text(json.dumps({"id": image_id, "name": name, "config": cfg}))
    return EngineImage(image_id, name, cfg, [], [d / "rootfs"])


def normalize(ref: str) -> str:
    last = ref.rsplit("/", 1)[-1]
    if "@" not in ref and ":" not in last:
        ref += ":latest"
    return ref


class ImageProvider:
    def __init__(self, root: str | Path, conn: sqlite3.Connection | None = None) -> None:
        """``conn``: an open connection to the store's database to share (the engine's)."""
        self.root = root
        self.store = _image_store(root, conn)
        self.snapshotter = self.store.snapshotter if self.store is not None else _snapshotter(root)

    def resolve(self, ref: str, pull: str = "missing") -> EngineImage:
        if self.store is None:
            return self._resolve_dir(ref)
        if os.path.exists(os.path.join(self.root, "engine-images")):
            try:
                return self._resolve_dir(ref)
            except NotFound:
                pass
        img = None
        if pull != "always":
            try:
                img = self.store.get(ref)
            except NotFound:
                if pull == "never":
                    raise
        if img is None:
            img = self.store.pull(ref, quiet=True)
        dirs: list[Path] = []
        if self.snapshotter is None:  # pragma: no cover - the store always has one
            dirs = list(self.store.layer_dirs(img))
        return EngineImage(img.id, (img.repo_tags or [ref])[0], img.config, list(img.chain_ids), dirs)

    def _resolve_dir(self, ref: str) -> EngineImage:
        import json

        for d in sorted(_dir_images(self.root).glob("*/image.json")):
            meta = json.loads(d.read_text())
            if meta["name"] == normalize(ref) or meta["id"] == ref or meta["id"].startswith("sha256:" + ref):
                return EngineImage(meta["id"], meta["name"], meta["config"], [], [d.parent / "rootfs"])
        raise NotFound(f"no such image: {ref}")

    def add_ref(self, image_id: str, cid: str) -> None:
        """Tell the image store that ``cid`` uses ``image_id`` (``rmi`` refuses it until remove_ref)."""
        self._ref("add_container_ref", cid, image_id)

    def remove_ref(self, image_id: str, cid: str) -> None:
        self._ref("remove_container_ref", cid)

    def _ref(self, name: str, *args: str) -> None:
        # Through the store's open database when there is one; the module functions open their own.
        db = getattr(self.store, "db", None)
        fn = getattr(db, name, None)
        if fn is None:
            try:
                from hako.images import metadata
            except ImportError:
                return
            mod_fn = getattr(metadata, name, None)
            if mod_fn is None:
                return

            def fn(*a: str) -> None:
                mod_fn(self.root, *a)
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - the image store's bookkeeping must not block a container
            pass

    # --- root filesystems ------------------------------------------------------------------
    def prepare_rootfs(self, cid: str, image: EngineImage, cdir: str | Path, volatile: bool = False) -> dict[str, Any]:
        """Make the container's writable root; returns what ``mount_rootfs`` needs later.

        ``volatile`` (for --rm containers, as podman does): overlayfs skips every sync of the upper
        filesystem, so unmounting does not wait for all of the host filesystem's dirty data."""
        extra = ["volatile"] if volatile else []
        if self.snapshotter is not None and image.chain_ids:
            mounts = self.snapshotter.prepare(cid, image.chain_ids)
            return {"kind": "snapshot", "key": cid,
                    "mounts": [{"type": m.type, "source": m.source,
                                "options": list(m.options) + (extra if m.type == "overlay" else [])}
                               for m in mounts]}
        upper, work = os.path.join(cdir, "diff"), os.path.join(cdir, "work")
        os.makedirs(upper, exist_ok=True)
        os.makedirs(work, exist_ok=True)
        lowers = [str(p) for p in reversed(image.layer_dirs)]
        return {"kind": "overlay", "lower": lowers, "upper": upper, "work": work, "extra": extra}

    def mount_rootfs(self, saved: dict[str, Any], target: str | Path) -> None:
        os.makedirs(target, exist_ok=True)
        if is_mountpoint(target):
            return
        if saved["kind"] == "snapshot":
            from hako.storage.snapshots import MountSpec  # type: ignore[import-not-found,unused-ignore]

            mounts = [MountSpec(m["type"], m["source"], list(m["options"])) for m in saved["mounts"]]
            self.snapshotter.mount(mounts, target)
            return
        lower = ":".join(saved["lower"])
        opts = ",".join([f"lowerdir={lower},upperdir={saved['upper']},workdir={saved['work']}",
                         *saved.get("extra", [])])
        import subprocess

        proc = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(target)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise HakoError(f"mount overlay at {target}: {proc.stderr.strip()}")

    def unmount_rootfs(self, saved: dict[str, Any], target: str | Path) -> None:
        if not is_mountpoint(target):
            return
        if saved.get("kind") == "snapshot" and self.snapshotter is not None:
            self.snapshotter.unmount(target)
            return
        import subprocess

        subprocess.run(["umount", "-l", str(target)], capture_output=True)

    def remove_rootfs(self, saved: dict[str, Any], cid: str) -> None:
        if saved.get("kind") == "snapshot" and self.snapshotter is not None:
            try:
                self.snapshotter.remove(saved["key"])
            except NotFound:
                pass

    def usage(self, saved: dict[str, Any], cdir: str | Path) -> int:
        if saved.get("kind") == "snapshot" and self.snapshotter is not None:
            try:
                u = self.snapshotter.usage(saved["key"])
                return int(getattr(u, "size", u) or 0)
            except Exception:  # noqa: BLE001
                return 0
        from pathlib import Path

        return dir_size(Path(saved.get("upper") or os.path.join(cdir, "diff")))


def dir_size(path: Path) -> int:
    total = 0
    if not path.exists():
        return 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.lstat().st_size
        except OSError:
            pass
    return total


def is_mountpoint(path: str | Path) -> bool:
    target = os.path.realpath(path) if os.path.exists(path) else str(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4].replace("\\040", " ") == target:
                return True
    return False
