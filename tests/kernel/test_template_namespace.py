"""The helper's template mount namespace (sandbox/template.py) with a real host's mounts:
a container is cloned from it, and it is made again when the host's mount table changes."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from kerneldriver import ROOT, KernelDriver, host_mounts

from rootfs_kernel.images import ImageStore

pytestmark = [pytest.mark.rootonly,
              pytest.mark.skipif(not ROOT, reason="the template is root mode's; mounting on "
                                                  "the host needs root")]


def test_a_mount_made_on_the_way_to_the_image_since_the_template_is_what_cells_read(tmp_path):
    """The template holds each mount on the way to the image's layers as it was when it
    was made: a layer directory mounted over since (a new disk, a bind) is read through
    the new mount once the kernel has the template made again."""
    data = tmp_path / "data"
    k = KernelDriver(env={**os.environ, "XDG_DATA_HOME": str(data)})
    try:
        k.ok("true")   # the store's minimal image, built now; the template holds its path
        (layer,) = ImageStore(data / "rootfs-kernel").load("minimal").layers
        copy = tmp_path / "copy"
        shutil.copytree(layer, copy, symlinks=True)
        (copy / "etc" / "marker").write_text("on the mount\n")
        subprocess.run(["mount", "--bind", str(copy), str(layer)], check=True)
        try:
            assert k.ok("cat /etc/marker").stdout == "on the mount\n"
        finally:
            subprocess.run(["umount", str(layer)], check=True)
        assert "No such file" in k.run("cat /etc/marker").stderr
    finally:
        k.shutdown()


def test_a_cell_that_keeps_the_hosts_tree_gets_every_host_mount(kernel, tmp_path):
    """`%root none` (like %bind, an unlocked %root chroot, slave and shared propagation)
    is cloned from the host's namespace, not the template, after one was made: every
    mount of the host's is in its table, one made since included."""
    kernel.ok("true")   # cloned from the template, made for it
    added = tmp_path / "added"
    added.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "rk-test", str(added)], check=True)
    try:
        res = kernel.ok("%root none\ncut -d' ' -f5 /proc/self/mountinfo")
        points = set(res.stdout.split())
        assert str(added) in points and set(host_mounts()) <= points
    finally:
        subprocess.run(["umount", str(added)], check=True)
