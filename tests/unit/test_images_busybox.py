"""The busybox image, from the host's static busybox (Debian: busybox-static)."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from rootfs_kernel.images import ImageError, ImageStore
from rootfs_kernel.images import busybox as busybox_mod
from rootfs_kernel.images.busybox import find_busybox

needs_busybox = pytest.mark.skipif(
    find_busybox() is None,
    reason="no busybox on the host: install it with `apt-get install busybox-static`",
)


@needs_busybox
def test_busybox_image(tmp_path) -> None:
    store = ImageStore(root=tmp_path)
    assert "busybox" in store.available()
    img = store.get("busybox")
    root = img.layers[0]
    assert os.readlink(root / "bin") == "usr/bin"
    assert (root / "usr/bin/busybox").is_file()
    assert os.readlink(root / "usr/bin/ls") == "busybox"
    assert os.path.realpath(root / "sbin/mount" if (root / "usr/sbin/mount").exists()
                            else root / "bin/mount") == str((root / "usr/bin/busybox").resolve())
    assert "rootfs-kernel busybox" in (root / "etc/os-release").read_text()
    assert not (root / "usr/bin/busybox").stat().st_mode & (stat.S_ISUID | stat.S_ISGID)
    if os.geteuid() == 0:
        r = subprocess.run(["chroot", str(root), "/bin/sh", "-c", "ls / && echo ok"],
                           capture_output=True, text=True, timeout=30)
        assert r.stdout.rstrip().endswith("ok"), r.stderr


def test_busybox_missing_is_explained(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(busybox_mod, "find_busybox", lambda: None)
    store = ImageStore(root=tmp_path)
    with pytest.raises(ImageError, match="apt-get install busybox-static"):
        store.build("busybox", busybox_mod.build_busybox)
    assert store.names() == []
