"""Images: references, the registry client, the content store, metadata, pull/push/save/load.

The Python API (``hako.images.pull(ref, root=...)``, ``push``, ``get``, ``list_images``,
``remove``, ``tag``, ``inspect``, ``import_tarball``, ``save``, ``load``, ``prune``) lives in
``hako.images.api`` and is loaded on first use, so importing a submodule stays cheap.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing imports re: too slow for ``hako run``, which loads this package
if TYPE_CHECKING:
    from typing import Any

_API = ("pull", "push", "get", "list_images", "remove", "tag", "inspect", "import_tarball", "save", "load",
        "prune", "open_store")


def __getattr__(name: str) -> Any:
    if name in _API:
        from hako.images import api

        return getattr(api, name)
    if name in ("Image", "ImageStore"):
        from hako.images import store

        return getattr(store, name)
    raise AttributeError(f"module 'hako.images' has no attribute {name!r}")
