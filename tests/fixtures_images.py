"""Fixtures for the images tests: a real docker-registry on 127.0.0.1 (plain, basic auth),
test images built from busybox-static and pushed to it, and fresh image stores."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hako.testing import images as ti

USER, PASSWORD = "tester", "s3cret"


def _need_registry() -> None:
    if not shutil.which("docker-registry"):
        pytest.skip("docker-registry not installed (scripts/setup installs it)")


@pytest.fixture(scope="session")
def registry(scratch_root: Path) -> Iterator[ti.RegistryProcess]:
    """A plain-HTTP registry for the whole session."""
    _need_registry()
    reg = ti.start_registry(scratch_root / "registry")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def auth_registry(scratch_root: Path) -> Iterator[ti.RegistryProcess]:
    """A registry behind htpasswd (bcrypt) basic auth: tester / s3cret."""
    _need_registry()
    if not shutil.which("htpasswd"):
        pytest.skip("htpasswd not installed (apache2-utils)")
    reg = ti.start_registry(scratch_root / "registry-auth", basic_auth=(USER, PASSWORD))
    yield reg
    reg.stop()


@dataclass
class ImageSet:
    registry: ti.RegistryProcess
    busybox: ti.Built
    busybox_zstd: ti.Built
    busybox_docker: ti.Built
    layered: ti.Built
    multiarch: ti.Built

    def ref(self, name: str) -> str:
        return f"{self.registry.host}/hako-test/{name}"


@pytest.fixture(scope="session")
def test_images(registry: ti.RegistryProcess) -> ImageSet:
    """busybox (gzip, zstd, docker schema 2), layered (whiteouts etc.), multiarch (index)."""
    bb = ti.busybox_tar()
    busybox = ti.build_image([bb])
    zstd = ti.build_image([bb], compression="zstd")
    docker = ti.build_image([bb], flavor="docker")
    layered = ti.build_image([bb, *ti.layered_layers()])
    arm = ti.build_image([bb], architecture="arm64", variant="v8", config={"Labels": {"arch": "arm64"}})
    amd = ti.build_image([bb], config={"Labels": {"arch": "amd64"}})
    multi = ti.build_index([amd, arm])
    h = registry.host
    ti.push(h, "hako-test/busybox", "latest", busybox)
    ti.push(h, "hako-test/busybox", "zstd", zstd)
    ti.push(h, "hako-test/busybox", "docker", docker)
    ti.push(h, "hako-test/layered", "latest", layered)
    ti.push(h, "hako-test/multiarch", "latest", multi)
    return ImageSet(registry, busybox, zstd, docker, layered, multi)


@pytest.fixture
def image_store(tmp_path: Path) -> Iterator[object]:
    """An empty ImageStore with its own root (cleaned with tmp_path)."""
    from hako.images.store import ImageStore

    store = ImageStore(tmp_path / "store")
    yield store
    store.close()
