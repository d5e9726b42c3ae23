"""A cell's upper layer read through directory fds (images/upper.py): what %keep's merge
makes of the kept layer, what it costs on the host, and that nothing past a bound, nothing
through a link and nothing half-done is written."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from rootfs_kernel.images import ImageError, upper
from rootfs_kernel.images.layerfs import make_whiteout, set_opaque
from rootfs_kernel.linux import is_opaque, is_whiteout

ROOT = os.geteuid() == 0


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry below root: kind, mode, content or target, opaque."""
    out = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(top) / name
            st = os.lstat(path)
            rel = str(path.relative_to(root))
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), is_opaque(path))
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif is_whiteout(st):
                out[rel] = ("whiteout",)
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes()[:64],
                            st.st_size)
    return out


def merge(up: Path, kept: Path, size: int = 0, bound: int | None = None) -> int:
    fd = os.open(up, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return upper.merge(fd, str(kept), size, bound)
    finally:
        os.close(fd)


def measure(path: Path) -> upper.Size:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return upper.measure(fd)
    finally:
        os.close(fd)


@pytest.fixture
def outside(tmp_path):
    """A host directory a symlink in the upper points at: nothing may be written there."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "keep-me").write_text("host\n")
    return d


def first_upper(tmp_path: Path, outside: Path) -> Path:
    u = tmp_path / "u1"
    for d in ("etc", "d", "x"):
        (u / d).mkdir(parents=True)
    (u / "etc/a").write_text("a")
    (u / "etc/b").write_text("b")
    (u / "d/old").write_text("old")
    (u / "f").write_text("file")
    (u / "x/y").write_text("y")
    os.symlink(outside, u / "link")
    (u / "hl1").write_text("linked")
    os.link(u / "hl1", u / "hl2")
    with open(u / "sparse", "wb") as f:
        f.truncate(100 << 20)
        f.write(b"head")
    return u


@pytest.mark.skipif(not ROOT, reason="whiteouts and trusted.overlay.opaque as overlayfs "
                    "makes them in root mode")
def test_a_merge_is_what_the_cell_saw_through_its_overlay(tmp_path, outside):
    kept = tmp_path / "helper/keep/layer"
    size = merge(first_upper(tmp_path, outside), kept)
    u = tmp_path / "u2"
    (u / "etc").mkdir(parents=True)
    (u / "etc/a").write_text("A")              # changed (copied up)
    assert make_whiteout(u / "etc/b")          # deleted
    (u / "d").mkdir()
    set_opaque(u / "d")                        # rm -r /d; mkdir /d
    (u / "d/new").write_text("new")
    (u / "f").mkdir()                          # rm /f; mkdir /f (not opaque in the upper)
    (u / "f/g").write_text("g")
    (u / "x").write_text("now a file")         # rm -r /x; echo > /x
    (u / "link").mkdir()                       # rm /link; mkdir /link
    (u / "link/z").write_text("z")
    (u / "suid").write_text("#!/bin/sh\n")
    os.chmod(u / "suid", 0o4755)
    size = merge(u, kept, size)
    got = snapshot(kept)
    assert got["etc/a"][2] == b"A" and got["etc/b"] == ("whiteout",)
    assert got["d"] == ("dir", 0o755, True) and "d/old" not in got and got["d/new"][2] == b"new"
    assert got["f"][0] == "dir" and got["f"][2] is True    # it hides the image's /f
    assert got["f/g"][2] == b"g"
    assert got["x"][:3] == ("file", 0o644, b"now a file") and "x/y" not in got
    assert got["link"][0] == "dir" and got["link/z"][2] == b"z"
    assert got["suid"][1] == 0o4755              # %keep keeps what the cell made
    assert os.stat(kept / "hl1").st_ino == os.stat(kept / "hl2").st_ino
    assert got["sparse"][3] == 100 << 20 and os.stat(kept / "sparse").st_blocks * 512 < 1 << 20
    assert sorted(os.listdir(outside)) == ["keep-me"]   # the link was never followed
    # What the merge says the layer costs is what it costs.
    assert abs(size - measure(kept).cost) <= 16 << 10, (size, measure(kept).cost)


def test_a_merge_past_the_bound_changes_nothing(tmp_path, outside):
    kept = tmp_path / "helper/keep/layer"
    size = merge(first_upper(tmp_path, outside), kept, bound=1 << 20)
    before = snapshot(kept)
    u = tmp_path / "u2"
    (u / "etc").mkdir(parents=True)
    (u / "etc/a").write_text("A")
    (u / "big").write_bytes(os.urandom(1 << 20))
    with pytest.raises(upper.TooLarge) as info:
        merge(u, kept, size, bound=1 << 20)
    assert info.value.size > 1 << 20 and info.value.bound == 1 << 20
    assert snapshot(kept) == before
    # Deleting what was kept makes room, as a cell's `rm` would.
    (u / "big").unlink()
    (u / "etc/a").unlink()
    (u / "small").write_bytes(b"s" * 4096)
    for name in ("f", "x", "hl1", "hl2"):
        assert make_whiteout(u / name) or not ROOT
    if ROOT:
        smaller = merge(u, kept, size, bound=1 << 20)
        assert smaller <= size and "small" in snapshot(kept)


def test_the_cost_of_a_tree_counts_data_entries_and_directories(tmp_path):
    d = tmp_path / "t"
    (d / "sub").mkdir(parents=True)
    (d / "sub/data").write_bytes(b"z" * 10_000)
    os.link(d / "sub/data", d / "again")
    os.symlink("sub", d / "link")
    with open(d / "holes", "wb") as f:
        f.truncate(1 << 30)
    size = measure(d)
    blocks = os.stat(d / "sub/data").st_blocks * 512
    assert size.cost == upper.DIRECTORY + (upper.ENTRY + blocks) + upper.ENTRY + \
        upper.cost(os.lstat(d / "link")) + upper.ENTRY + os.stat(d / "holes").st_blocks * 512
    # the tar the store counts: every header, the data once, holes as data
    assert size.tar == 5 * 512 + 10_240 + (1 << 30)


def test_a_tree_deeper_than_the_walk_goes_is_refused_before_anything_is_written(tmp_path):
    u = tmp_path / "u"
    deep = u
    for _ in range(upper.MAX_DEPTH + 2):
        deep = deep / "d"
    os.makedirs(deep)
    kept = tmp_path / "helper/keep/layer"
    with pytest.raises(ImageError, match="nested deeper than 256"):
        merge(u, kept)
    assert os.listdir(kept) == []


def test_a_copy_never_writes_past_its_budget(tmp_path):
    """What the upper held when it was measured bounds the copy: a file grown since (only
    a holder of the cell's tmpfs could) stops it."""
    u = an = tmp_path / "u"
    an.mkdir()
    (u / "f").write_bytes(b"x" * 100_000)
    dest = tmp_path / "dest"
    dest.mkdir()
    fd = os.open(u, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(upper.Changed, match="grew while they were copied"):
            upper.copy_tree(fd, dest, owner=None, budget=50_000)
    finally:
        os.close(fd)
    assert os.stat(dest / "f").st_size <= 50_000


@pytest.mark.skipif(not ROOT, reason="mounts an overlayfs to keep on")
def test_a_kept_layer_on_overlayfs_refuses_deletions_before_anything_changes(tmp_path):
    """Inside a container whose root is overlayfs the kept layer cannot hold a whiteout
    (mknod is refused there): the merge says so and changes nothing."""
    for d in ("l", "u", "w", "m"):
        (tmp_path / d).mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={tmp_path}/l,upperdir={tmp_path}/u,workdir={tmp_path}/w",
                    str(tmp_path / "m")], check=True)
    try:
        kept = tmp_path / "m/keep/layer"
        first = tmp_path / "u1"
        first.mkdir()
        (first / "a").write_text("a")
        size = merge(first, kept)
        before = snapshot(kept)
        second = tmp_path / "u2"
        second.mkdir()
        (second / "b").write_text("b")
        assert make_whiteout(second / "a")
        with pytest.raises(upper.NotKept, match="takes no whiteouts .* overlayfs"):
            merge(second, kept, size)
        assert snapshot(kept) == before
    finally:
        subprocess.run(["umount", str(tmp_path / "m")], check=True)
