"""The image commands of the ``hako`` console script, and interchange with skopeo and podman."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hako.testing import images as ti
from tests.fixtures_images import PASSWORD, USER, ImageSet

HAKO = str(Path(sys.executable).parent / "hako")


def hako(root: Path, *args: str, ok: bool = True, input: str | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([HAKO, "--root", str(root), *args], capture_output=True, text=True, timeout=120,
                       input=input, env=env)
    if ok and p.returncode != 0:
        raise AssertionError(f"hako {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


def test_pull_images_inspect_tag_rmi(tmp_path: Path, test_images: ImageSet) -> None:
    root = tmp_path / "root"
    ref = test_images.ref("busybox:latest")
    p = hako(root, "pull", ref)
    image_id = test_images.busybox.config_digest
    assert p.stdout.strip() == image_id[7:]
    assert "Copying blob" in p.stderr  # not a TTY: one plain line per layer
    rows = json.loads(hako(root, "images", "--format", "json").stdout)
    assert [(r["Repository"], r["Tag"], r["Id"]) for r in rows] == [
        (f"{test_images.registry.host}/hako-test/busybox", "latest", image_id)]
    assert hako(root, "images", "-q").stdout.split() == [image_id[7:19]]
    out = hako(root, "images", "--format", "{{.ID}}\t{{.Tag}}").stdout
    assert out == f"{image_id[7:19]}\tlatest\n"
    table = hako(root, "images").stdout.splitlines()
    assert table[0].split()[:3] == ["REPOSITORY", "TAG", "IMAGE"] and image_id[7:19] in table[1]
    [d] = json.loads(hako(root, "image", "inspect", ref).stdout)
    assert d["Id"] == image_id and d["RepoTags"] == [ref] and d["Architecture"] == "amd64"
    assert d["Config"]["Cmd"] == ["sh"] and d["RootFS"]["Layers"] == test_images.busybox.diff_ids
    assert d["RepoDigests"] == [f"{test_images.registry.host}/hako-test/busybox@{test_images.busybox.digest}"]
    assert hako(root, "image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", image_id[7:19]).stdout == "linux/amd64\n"
    hako(root, "tag", ref, "mine:v1")
    assert hako(root, "image", "inspect", "-f", "{{json .RepoTags}}", "mine:v1").stdout.strip() == \
        json.dumps(sorted([ref, "mine:v1"]), separators=(",", ":"))
    assert hako(root, "rmi", "mine:v1").stdout.strip() == "Untagged: docker.io/library/mine:v1"
    p = hako(root, "rmi", "nope:1", ok=False)
    assert p.returncode == 125 and "hako: image nope:1 not found" in p.stderr
    assert "Deleted: " + image_id in hako(root, "image", "rm", ref).stdout
    assert hako(root, "images", "-q").stdout == ""


def test_import_mount_prune(tmp_path: Path) -> None:
    root = tmp_path / "root"
    tar = tmp_path / "rootfs.tar"
    tar.write_bytes(ti.tar_entries([ti.Entry("etc", "dir"), ti.Entry("etc/hello", data=b"hi\n")]))
    image_id = hako(root, "import", "-c", "CMD [\"cat\", \"/etc/hello\"]", str(tar), "imp:1").stdout.strip()
    [d] = json.loads(hako(root, "image", "inspect", "imp:1").stdout)
    assert d["Id"] == image_id and d["Config"]["Cmd"] == ["cat", "/etc/hello"]
    path = Path(hako(root, "image", "mount", "imp:1").stdout.strip())
    try:
        assert (path / "etc/hello").read_text() == "hi\n"
    finally:
        hako(root, "image", "unmount", "imp:1")
    assert hako(root, "images", "-q", "-f", "reference=imp*").stdout.strip() == image_id[7:19]
    assert hako(root, "images", "-q", "-f", "dangling=true").stdout == ""
    hako(root, "image", "untag", "imp:1")
    assert hako(root, "images", "-q", "-f", "dangling=true").stdout.strip() == image_id[7:19]
    out = hako(root, "image", "prune").stdout
    assert f"Deleted: {image_id}" in out
    assert not list((root / "blobs/sha256").iterdir())


def _kill_mid_layer(root: Path, ref: str, tmp_dir: Path) -> None:
    proc = subprocess.Popen([HAKO, "--root", str(root), "pull", "-q", ref], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            sizes = []
            for p in tmp_dir.glob("blob-*") if tmp_dir.exists() else []:
                try:
                    sizes.append(p.stat().st_size)
                except FileNotFoundError:
                    pass  # a finished blob renamed into the store between glob and stat
            if any(s > 1 << 20 for s in sizes):
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"pull ended before it could be killed: {proc.stderr.read() if proc.stderr else ''}"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()


def test_pull_killed_mid_layer_leaves_consistent_store(tmp_path: Path, registry: ti.RegistryProcess) -> None:
    big = ti.tar_entries([ti.Entry("big.bin", data=os.urandom(8 << 20))])
    built = ti.build_image([ti.busybox_tar(), big])
    ti.push(registry.host, "hako-test/killme", "latest", built)
    proxy = ti.SlowProxy(registry.host, rate=3 << 20)
    root = tmp_path / "root"
    ref = f"{proxy.host}/hako-test/killme:latest"
    try:
        _kill_mid_layer(root, ref, root / "blobs/tmp")
    finally:
        proxy.close()
    big_blob = next(d for d in built.blobs if d not in (built.config_digest,)
                    and len(built.blobs[d]) > 1 << 20)
    assert not (root / "blobs/sha256" / big_blob[7:]).exists()
    assert hako(root, "images", "-q").stdout == ""
    assert list((root / "blobs/tmp").iterdir())  # the partial blob, under a temp name only
    hako(root, "image", "prune")
    assert not list((root / "blobs/tmp").iterdir())
    # A re-pull (straight from the registry) completes and the big file is whole.
    direct = f"{registry.host}/hako-test/killme:latest"
    image_id = hako(root, "pull", "-q", direct).stdout.strip()
    assert image_id == built.config_digest[7:]
    path = Path(hako(root, "image", "mount", direct).stdout.strip())
    try:
        assert (path / "big.bin").stat().st_size == 8 << 20
    finally:
        hako(root, "image", "unmount", direct)


def test_login_logout(tmp_path: Path, auth_registry: ti.RegistryProcess) -> None:
    root = tmp_path / "root"
    env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR")}
    env["HOME"] = str(tmp_path)
    built = ti.build_image([ti.tar_entries([ti.Entry("x", data=b"x")])])
    ti.push(auth_registry.host, "hako-test/login", "latest", built, auth=(USER, PASSWORD))
    ref = f"{auth_registry.host}/hako-test/login"
    p = hako(root, "login", "-u", USER, "--password-stdin", auth_registry.host, input="wrong\n", ok=False, env=env)
    assert p.returncode == 125
    assert "Login Succeeded" in hako(root, "login", "-u", USER, "--password-stdin", auth_registry.host,
                                     input=PASSWORD + "\n", env=env).stdout
    assert (root / "auth.json").stat().st_mode & 0o777 == 0o600
    hako(root, "pull", "-q", ref, env=env)
    hako(root, "push", "-q", ref, f"{auth_registry.host}/hako-test/login2:x", env=env)
    hako(root, "logout", auth_registry.host, env=env)
    p = hako(root, "pull", "-q", f"{auth_registry.host}/hako-test/login2:x", ok=False, env=env)
    assert p.returncode == 125 and "authentication required" in p.stderr


@pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo not installed")
def test_save_load_with_skopeo(tmp_path: Path, test_images: ImageSet) -> None:
    root = tmp_path / "root"
    ref = test_images.ref("layered:latest")
    hako(root, "pull", "-q", ref)
    oci = tmp_path / "l.oci.tar"
    hako(root, "save", "-o", str(oci), ref)
    # skopeo reads our oci-archive, byte for byte the same manifest.
    out = subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{oci}"], capture_output=True, check=True)
    assert ti.sha256(out.stdout) == test_images.layered.digest
    # skopeo writes a docker-archive; we load it with the same image id.
    darc = tmp_path / "l.docker.tar"
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}",
                    f"docker-archive:{darc}:example.com/from-skopeo:1"], check=True, capture_output=True)
    other = tmp_path / "other"
    assert "Loaded image: example.com/from-skopeo:1" in hako(other, "load", "-i", str(darc)).stdout
    [d] = json.loads(hako(other, "image", "inspect", "example.com/from-skopeo:1").stdout)
    assert d["Id"] == test_images.layered.config_digest
    # hako.testing.images writes OCI layouts skopeo reads.
    layout = ti.write_layout(tmp_path / "layout", test_images.multiarch, "v1")
    out = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{layout}:v1"], capture_output=True, check=True)
    assert ti.sha256(out.stdout) == test_images.multiarch.digest


@pytest.mark.skipif(not shutil.which("podman"), reason="podman not installed")
def test_podman_loads_our_docker_archive(tmp_path: Path, test_images: ImageSet) -> None:
    root = tmp_path / "root"
    ref = test_images.ref("busybox:latest")
    hako(root, "pull", "-q", ref)
    arc = tmp_path / "bb.tar"
    hako(root, "save", "--format", "docker-archive", "-o", str(arc), ref)
    import tempfile

    # podman refuses a runroot path longer than 50 characters.
    proot, prun = tmp_path / "podman-root", Path(tempfile.mkdtemp(prefix="hako-prun-"))
    base = ["podman", "--root", str(proot), "--runroot", str(prun), "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
    try:
        p = subprocess.run([*base, "load", "-q", "-i", str(arc)], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        out = subprocess.run([*base, "images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"], check=True,
                             capture_output=True, text=True).stdout
        assert f"{test_images.busybox.config_digest[7:19]} {ref}" in out
    finally:
        subprocess.run([*base, "system", "reset", "-f"], capture_output=True, timeout=120)
        shutil.rmtree(proot, ignore_errors=True)
        shutil.rmtree(prun, ignore_errors=True)


def test_save_to_pipe_load_from_stdin_and_history(tmp_path: Path, test_images: ImageSet) -> None:
    root, other = tmp_path / "root", tmp_path / "other"
    ref = test_images.ref("layered:latest")
    hako(root, "pull", "-q", ref)
    save = subprocess.Popen([HAKO, "--root", str(root), "save", ref], stdout=subprocess.PIPE)
    load = subprocess.run([HAKO, "--root", str(other), "load"], stdin=save.stdout, capture_output=True, text=True,
                          timeout=120)
    assert save.stdout is not None
    save.stdout.close()
    assert save.wait(timeout=60) == 0 and load.returncode == 0, load.stderr
    assert load.stdout.strip() == f"Loaded image: {ref}"
    hist = hako(other, "history", ref).stdout.splitlines()
    assert hist[0].split()[:2] == ["IMAGE", "CREATED"] and len(hist) == 1 + 4
    assert hako(other, "image", "exists", ref).returncode == 0
    assert hako(other, "image", "exists", "nope:1", ok=False).returncode == 1


def test_sigint_stops_a_pull_quickly(tmp_path: Path, registry: ti.RegistryProcess) -> None:
    big = ti.tar_entries([ti.Entry("big.bin", data=os.urandom(8 << 20))])
    built = ti.build_image([big])
    ti.push(registry.host, "hako-test/interrupt", "latest", built)
    proxy = ti.SlowProxy(registry.host, rate=1 << 20)
    root = tmp_path / "root"
    try:
        proc = subprocess.Popen([HAKO, "--root", str(root), "pull", "-q", f"{proxy.host}/hako-test/interrupt"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(p.stat().st_size for p in (root / "blobs/tmp").glob("blob-*")):
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=5)
        assert proc.returncode == 130  # not after the remaining ~7 s of download
    finally:
        proxy.close()
    assert not list((root / "blobs/tmp").iterdir())  # rolled back, temp blob gone
    assert not list((root / "blobs/sha256").iterdir())
