"""A real Debian build (network, about 40 s): `pytest -m slow tests/images`."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from rootfs_kernel.images import ImageStore
from rootfs_kernel.images.debian import apt_mirror, debian_builder


@pytest.mark.slow
def test_debian_minbase(tmp_path: Path) -> None:
    tool = "debootstrap" if os.geteuid() == 0 else "mmdebstrap"
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (apt-get install {tool})")
    store = ImageStore(root=tmp_path)
    img = store.build("debian", debian_builder("bookworm", "minbase"))
    root = img.layers[0]
    assert "bookworm" in (root / "etc/os-release").read_text()
    assert (root / "usr/bin/apt-get").exists() and (root / "usr/bin/bash").exists()
    devices = [p for p in (root / "dev").iterdir() if stat.S_ISCHR(os.lstat(p).st_mode)]
    assert devices == []
    if os.geteuid() == 0:
        r = subprocess.run(["chroot", str(root), "/bin/sh", "-c", "ls / && echo ok"],
                           capture_output=True, text=True, timeout=60)
        assert r.stdout.rstrip().endswith("ok"), r.stderr


def test_apt_mirror_reads_both_source_formats(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: x\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n")
    assert apt_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://other.example/debian bookworm main\n")
    assert apt_mirror(tmp_path) == "http://other.example/debian"
    assert apt_mirror(tmp_path / "none") == "http://deb.debian.org/debian"
