"""Export to an OCI layout tar (read back identically) and commit of an overlay upper dir."""

from __future__ import annotations

import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
from images.ocifixtures import directory, file, layer_tar, oci_layout, symlink

from rootfs_kernel.ids import IdRange
from rootfs_kernel.images import ImageError, ImageStore
from rootfs_kernel.images.layerfs import make_whiteout, set_opaque
from rootfs_kernel.images.oci_export import commit_layer, export_image
from rootfs_kernel.images.oci_import import import_image
from rootfs_kernel.linux import is_opaque

BASE = layer_tar([directory("etc"), file("etc/a", "a"), file("etc/b", "b"),
                  directory("d"), file("d/old", "old"), symlink("l", "/etc/a")])
TOP = layer_tar([directory("etc"), file("etc/.wh.b"), directory("d"),
                 file("d/.wh..wh..opq"), file("d/new", "new")])


def test_export_then_import_gives_the_same_layers(tmp_path: Path) -> None:
    store = ImageStore(root=tmp_path / "store")
    img = import_image(store, oci_layout(tmp_path / "oci", [BASE, TOP]).path, "orig")
    out = export_image(store, "orig", tmp_path / "orig.tar")
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        index = json.load(tar.extractfile("index.json"))
    assert {"oci-layout", "index.json", "manifest.json"} <= names
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == "orig:latest"
    other = ImageStore(root=tmp_path / "other")
    back = import_image(other, out)
    assert back.name == "orig"
    assert [la["digest"] for la in back.meta["layers"]] == \
        [la["digest"] for la in img.meta["layers"]]
    assert back.env == img.env and back.workdir == img.workdir
    st = os.lstat(back.layers[1] / "etc/b")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert is_opaque(back.layers[1] / "d")
    # re-importing into the same store shares every layer
    again = import_image(store, out, "copy")
    assert again.layers == img.layers
    assert len(list((tmp_path / "store/layers").iterdir())) == 2


def test_export_of_minimal_round_trips(tmp_path: Path) -> None:
    store = ImageStore(root=tmp_path / "store")
    img = store.get("minimal")
    out = export_image(store, "minimal", tmp_path / "m.tar")
    back = import_image(ImageStore(root=tmp_path / "other"), out, "m")
    assert back.meta["layers"][0]["digest"] == img.meta["layers"][0]["digest"]
    assert os.readlink(back.layers[0] / "bin") == "usr/bin"


def test_export_refuses_a_modified_layer(tmp_path: Path) -> None:
    store = ImageStore(root=tmp_path / "store")
    img = import_image(store, oci_layout(tmp_path / "oci", [BASE]).path, "x")
    (img.layers[0] / "etc/a").write_text("changed")
    with pytest.raises(ImageError, match="changed on disk"):
        export_image(store, "x", tmp_path / "x.tar")
    assert not (tmp_path / "x.tar").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".x.tar")] == []


def test_commit_upper_dir(tmp_path: Path) -> None:
    store = ImageStore(root=tmp_path / "store")
    base = import_image(store, oci_layout(tmp_path / "oci", [BASE]).path, "base")
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/new").write_text("from the cell\n")
    assert make_whiteout(upper / "etc/a")
    (upper / "d").mkdir()
    set_opaque(upper / "d")
    (upper / "d/x").write_text("x")
    os.symlink("new", upper / "etc/link")
    img = commit_layer(store, "base", upper, "mine")
    assert img.layers[:1] == base.layers and len(img.layers) == 2
    assert img.env == base.env and img.meta["base"] == "base"
    top = img.layers[1]
    assert (top / "etc/new").read_text() == "from the cell\n"
    assert stat.S_ISCHR(os.lstat(top / "etc/a").st_mode)
    assert is_opaque(top / "d") and os.readlink(top / "etc/link") == "new"
    # it exports and imports back like any image
    out = export_image(store, "mine", tmp_path / "mine.tar")
    back = import_image(ImageStore(root=tmp_path / "other"), out)
    assert [la["digest"] for la in back.meta["layers"]] == \
        [la["digest"] for la in img.meta["layers"]]


def test_commit_refuses_device_nodes_and_leaves_nothing(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    store = ImageStore(root=tmp_path / "store")
    import_image(store, oci_layout(tmp_path / "oci", [BASE]).path, "base")
    upper = tmp_path / "upper"
    upper.mkdir()
    os.mknod(upper / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    with pytest.raises(ImageError, match="device node /null"):
        commit_layer(store, "base", upper, "mine")
    assert store.names() == ["base"]
    assert list((tmp_path / "store/tmp").iterdir()) == []


def test_commit_never_follows_a_symlink_out_of_the_upper_dir(tmp_path: Path) -> None:
    """A cell may leave symlinks to host files in its upper dir: they are stored as
    symlinks, and a directory swapped for one is not walked into."""
    store = ImageStore(root=tmp_path / "store")
    import_image(store, oci_layout(tmp_path / "oci", [BASE]).path, "base")
    secret = tmp_path / "secret"
    secret.write_text("host only\n")
    secret.chmod(0o600)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("host dir\n")
    upper = tmp_path / "upper"
    upper.mkdir()
    os.symlink(secret, upper / "leak")
    os.symlink(outside, upper / "dir")
    img = commit_layer(store, "base", upper, "mine")
    top = img.layers[1]
    assert os.readlink(top / "leak") == str(secret)
    assert os.path.islink(top / "dir") and sorted(os.listdir(top)) == ["dir", "leak"]
    out = export_image(store, "mine", tmp_path / "mine.tar")
    assert b"host only" not in out.read_bytes() and b"host dir" not in out.read_bytes()


def test_commit_maps_a_cells_id_range_back_to_the_images_ids(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another id needs root")
    ids = IdRange(first=200000, count=65536)
    store = ImageStore(root=tmp_path / "store")
    import_image(store, oci_layout(tmp_path / "oci", [BASE]).path, "base")
    upper = tmp_path / "upper"
    (upper / "home").mkdir(parents=True)
    (upper / "home/f").write_text("x")
    os.lchown(upper / "home", 201000, 201000)   # a user of the image (1000) in the cell
    os.lchown(upper / "home/f", 200000, 200005)  # root:tty in the cell
    os.symlink("f", upper / "home/l")
    os.lchown(upper / "home/l", 7, 7)            # not in the range: nobody
    top = commit_layer(store, "base", upper, "mine", ids=ids).layers[1]
    owner = {n: (os.lstat(top / n).st_uid, os.lstat(top / n).st_gid)
             for n in ("home", "home/f", "home/l")}
    assert owner == {"home": (1000, 1000), "home/f": (0, 5), "home/l": (65534, 65534)}
