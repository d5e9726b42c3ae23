"""OCI layout and `docker save` import: layers, whiteouts, sharing, digests, safety."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from images.ocifixtures import (
    Entry,
    directory,
    docker_save,
    file,
    hardlink,
    layer_tar,
    oci_layout,
    symlink,
)

from rootfs_kernel.images import ImageError, ImageStore
from rootfs_kernel.images.oci_import import import_image, name_from_ref
from rootfs_kernel.linux import is_opaque

BASE = layer_tar([
    directory("etc"), file("etc/hostname", "tiny\n"), file("etc/keep", "keep\n"),
    directory("data"), file("data/a", "a"), file("data/b", "b"),
    directory("tmp", 0o1777), symlink("etc/localtime", "/usr/share/zoneinfo/UTC"),
    file("usr/bin/tool", "#!/bin/sh\n", 0o4755),  # parent dirs only implied
    hardlink("usr/bin/tool2", "usr/bin/tool", 0o4755),
])
TOP = layer_tar([
    directory("etc"), file("etc/.wh.keep"), file("etc/new", "new\n"),
    directory("data"), file("data/.wh..wh..opq"), file("data/c", "c"),
])


def store_is_empty(root: Path) -> bool:
    names = ImageStore(root=root).names()
    layers = list((root / "layers").iterdir()) if (root / "layers").exists() else []
    tmp = list((root / "tmp").iterdir()) if (root / "tmp").exists() else []
    return names == [] and layers == [] and tmp == []


@pytest.mark.parametrize("gz", [False, True])
def test_oci_layout_directory(tmp_path: Path, gz: bool) -> None:
    built = oci_layout(tmp_path / "oci", [BASE, TOP], gzipped=[gz, gz])
    store = ImageStore(root=tmp_path / "store")
    img = import_image(store, built.path)
    assert img.name == "tiny-1.0"
    assert img.env[:2] == ["PATH=/usr/bin:/bin", "FOO=bar"]
    assert img.workdir == "/work"
    assert img.config["Cmd"] == ["/bin/sh"]
    assert [la["diff_id"] for la in img.meta["layers"]] == built.diff_ids
    base, top = img.layers
    assert (base / "etc/hostname").read_text() == "tiny\n"
    assert os.readlink(base / "etc/localtime") == "/usr/share/zoneinfo/UTC"
    assert stat.S_IMODE((base / "tmp").stat().st_mode) == 0o1777
    tool = (base / "usr/bin/tool").stat()
    assert stat.S_IMODE(tool.st_mode) == 0o755  # setuid dropped
    assert tool.st_ino == (base / "usr/bin/tool2").stat().st_ino
    assert (base / "usr/bin/tool").stat().st_mtime == 1_700_000_000


def test_whiteouts_become_overlay_whiteouts(tmp_path: Path) -> None:
    built = oci_layout(tmp_path / "oci", [BASE, TOP])
    img = import_image(ImageStore(root=tmp_path / "store"), built.path, "wh")
    top = img.layers[1]
    st = os.lstat(top / "etc/keep")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not os.path.lexists(top / "etc/.wh.keep")
    assert is_opaque(top / "data") and not is_opaque(top / "etc")
    assert sorted(os.listdir(top / "data")) == ["c"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting overlayfs here needs root")
def test_whiteouts_hide_lower_files_in_an_overlay(tmp_path: Path) -> None:
    built = oci_layout(tmp_path / "oci", [BASE, TOP])
    img = import_image(ImageStore(root=tmp_path / "store"), built.path, "wh")
    merged = tmp_path / "merged"
    merged.mkdir()
    lower = ":".join(str(p) for p in reversed(img.layers))
    r = subprocess.run(["unshare", "-m", "sh", "-c",
                        f"mount -t overlay overlay -o lowerdir={lower} {merged} && "
                        f"ls {merged}/etc {merged}/data"], capture_output=True, text=True)
    if r.returncode != 0 and "overlay" in r.stderr:
        pytest.skip(f"overlayfs unavailable: {r.stderr}")
    assert r.returncode == 0, r.stderr
    listed = r.stdout.split()
    assert "keep" not in listed and "new" in listed and "hostname" in listed
    assert "c" in listed and "a" not in listed and "b" not in listed


def test_oci_layout_tar_with_mixed_compression(tmp_path: Path) -> None:
    built = oci_layout(tmp_path / "img.tar", [BASE, TOP], gzipped=[True, False], as_tar=True)
    img = import_image(ImageStore(root=tmp_path / "store"), built.path, "mixed")
    assert (img.layers[1] / "etc/new").read_text() == "new\n"


@pytest.mark.parametrize("new_format", [False, True])
def test_docker_save(tmp_path: Path, new_format: bool) -> None:
    built = docker_save(tmp_path / "save.tar", [BASE, TOP], new_format=new_format,
                        tag="library/tiny:3")
    img = import_image(ImageStore(root=tmp_path / "store"), built.path)
    assert img.name == "tiny-3"
    assert img.meta["ref"] == "library/tiny:3"
    assert (img.layers[0] / "data/a").read_text() == "a"
    assert img.workdir == "/work"


def test_images_sharing_a_layer_store_it_once(tmp_path: Path) -> None:
    store = ImageStore(root=tmp_path / "store")
    one = import_image(store, oci_layout(tmp_path / "one", [BASE]).path, "one")
    two = import_image(store, docker_save(tmp_path / "two.tar", [BASE, TOP]).path, "two")
    assert one.layers[0] == two.layers[0]
    assert len(list((tmp_path / "store/layers").iterdir())) == 2
    # and the same content reached through a gzip blob is recognised too
    three = import_image(store, oci_layout(tmp_path / "three", [BASE], gzipped=[True]).path,
                         "three")
    assert three.layers[0] == one.layers[0]
    assert len(list((tmp_path / "store/layers").iterdir())) == 2
    store.remove("one")
    store.remove("two")
    assert three.layers[0].is_dir()


def test_corrupt_blob_is_refused(tmp_path: Path) -> None:
    built = oci_layout(tmp_path / "oci", [BASE, TOP])
    blob = built.path / "blobs/sha256" / built.blob_digests[1][7:]
    data = bytearray(blob.read_bytes())
    data[600] ^= 0xFF  # inside the first file's content
    blob.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="corrupt.*fresh copy"):
        import_image(ImageStore(root=tmp_path / "store"), built.path, "bad")
    assert store_is_empty(tmp_path / "store")


def test_diff_id_mismatch_is_refused(tmp_path: Path) -> None:
    wrong = "sha256:" + "0" * 64
    built = docker_save(tmp_path / "save.tar", [BASE], diff_ids=[wrong])
    with pytest.raises(ImageError, match="does not match the image config"):
        import_image(ImageStore(root=tmp_path / "store"), built.path, "bad")
    assert store_is_empty(tmp_path / "store")


def test_corrupt_config_is_refused(tmp_path: Path) -> None:
    built = oci_layout(tmp_path / "oci", [BASE])
    manifest_blobs = sorted((built.path / "blobs/sha256").iterdir(), key=lambda p: p.stat().st_size)
    cfg = next(p for p in manifest_blobs if b'"rootfs"' in p.read_bytes())
    cfg.write_bytes(cfg.read_bytes().replace(b"FOO=bar", b"FOO=baz"))
    with pytest.raises(ImageError, match="is corrupt: its sha256"):
        import_image(ImageStore(root=tmp_path / "store"), built.path, "bad")
    assert store_is_empty(tmp_path / "store")


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_truncated_archive_is_refused(tmp_path: Path, fraction: float) -> None:
    big = layer_tar([file(f"f{i}", os.urandom(4000)) for i in range(20)])
    built = oci_layout(tmp_path / "img.tar", [big], as_tar=True)
    data = built.path.read_bytes()
    built.path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ImageError) as e:
        import_image(ImageStore(root=tmp_path / "store"), built.path, "cut")
    assert any(w in str(e.value) for w in ("truncated", "incomplete", "corrupt"))
    assert store_is_empty(tmp_path / "store")


def test_truncated_gzip_layer_is_refused(tmp_path: Path) -> None:
    big = layer_tar([file(f"f{i}", os.urandom(4000)) for i in range(20)])
    built = oci_layout(tmp_path / "oci", [big], gzipped=[True])
    blob = built.path / "blobs/sha256" / built.blob_digests[0][7:]
    blob.write_bytes(blob.read_bytes()[:-5000])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        import_image(ImageStore(root=tmp_path / "store"), built.path, "cut")
    assert store_is_empty(tmp_path / "store")


MALICIOUS = {
    "dotdot": [file("ok", "fine"), file("../evil", "x")],
    "absolute": [file("/etc/evil-rootfs-kernel-test", "x")],
    "symlink-escape": [symlink("x", "/"), file("x/etc/passwd-rootfs-kernel-test", "x")],
    "relative-symlink-escape": [symlink("up", "../../.."), file("up/evil", "x")],
    "hardlink-outside": [hardlink("shadow", "/etc/shadow")],
    "hardlink-dotdot": [hardlink("passwd", "../../../../etc/passwd")],
    "device": [Entry("dev/mem", None, "chardev")],
    "whiteout-escape": [symlink("d", "/etc"), file("d/.wh.passwd")],
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_archives_are_refused(tmp_path: Path, case: str) -> None:
    layer = layer_tar(MALICIOUS[case])
    built = oci_layout(tmp_path / "oci", [layer])
    before = set(os.listdir(tmp_path))
    with pytest.raises(ImageError, match="refusing entry"):
        import_image(ImageStore(root=tmp_path / "store"), built.path, "evil")
    assert store_is_empty(tmp_path / "store")
    assert set(os.listdir(tmp_path)) - before <= {"store"}
    assert not os.path.exists("/etc/evil-rootfs-kernel-test")
    assert not os.path.exists("/etc/passwd-rootfs-kernel-test")


def test_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "junk.tar").write_bytes(b"this is not a tar file at all" * 100)
    with pytest.raises(ImageError, match="not a readable tar archive"):
        import_image(ImageStore(root=tmp_path / "store"), tmp_path / "junk.tar", "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="neither an OCI image layout"):
        import_image(ImageStore(root=tmp_path / "store"), tmp_path / "empty", "x")
    assert ImageStore(root=tmp_path / "store").names() == []


def test_name_from_ref() -> None:
    assert name_from_ref("docker.io/library/alpine:3.19", "f") == "alpine-3.19"
    assert name_from_ref("busybox:latest", "f") == "busybox"
    assert name_from_ref(None, "My Image.tar") == "my-image"
