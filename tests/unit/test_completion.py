"""Completion reads the image's layers as overlayfs merges them, never the host's names."""

from __future__ import annotations

import os
import uuid

import pytest

from rootfs_kernel import completion
from rootfs_kernel.inspect import changes


def _opaque(path) -> None:
    name = "trusted.overlay.opaque" if os.geteuid() == 0 else "user.overlay.opaque"
    os.setxattr(path, name, b"y")


@pytest.fixture
def image(tmp_path):
    """Two layers (top first) next to a host directory the image must never show."""
    marker = f"host-only-{uuid.uuid4().hex[:8]}"
    (tmp_path / marker).mkdir()
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in ("etc", "usr/bin", "data/a", "old/gone-dir"):
        (lower / d).mkdir(parents=True)
    for f in ("etc/passwd", "etc/group", "usr/bin/mount", "usr/bin/mountpoint", "old/kept"):
        (lower / f).write_text("x")
    os.symlink("usr/bin", lower / "bin")
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/profile").write_text("x")
    (upper / "old").mkdir()
    _opaque(upper / "old")
    (upper / "old/new").write_text("x")
    os.symlink("../../../../../../../../..", upper / "up")   # relative, climbing out
    os.symlink("/", upper / "abs")                           # absolute
    os.symlink("/etc", upper / "etc-link")
    os.symlink("loop2", upper / "loop1")
    os.symlink("loop1", upper / "loop2")
    try:
        os.mknod(upper / "etc/group", 0o020000, os.makedev(0, 0))   # a whiteout
        whiteouts = True
    except PermissionError:
        whiteouts = False
    return {"layers": [str(upper), str(lower)], "marker": marker, "whiteouts": whiteouts}


def matches(image, code, cwd="/"):
    return completion.complete(code, len(code), image["layers"], cwd)["matches"]


def test_paths_and_commands_come_from_the_merged_layers(image):
    assert matches(image, "mou") == ["mount", "mountpoint"]      # through /bin -> usr/bin
    assert matches(image, "ls /et") == ["/etc-link/", "/etc/"]
    assert matches(image, "cat /etc/p") == ["/etc/passwd", "/etc/profile"]
    assert matches(image, "ls /etc-link/pa") == ["/etc-link/passwd"]
    assert matches(image, "ls /b") == ["/bin/"]


def test_a_whiteout_deletes_and_an_opaque_directory_hides_the_lower_layer(image):
    if image["whiteouts"]:
        assert matches(image, "cat /etc/g") == []
    assert matches(image, "ls /old/") == ["/old/new"]


@pytest.mark.parametrize("code", [
    "ls /../", "ls /../../../", "ls ../../", "ls /up/", "ls /up/../", "ls /abs/", "ls /abs/../",
    "ls /data/a/../../../", "ls /etc/../../",
])
def test_no_walk_leaves_the_image(image, code):
    found = matches(image, code)
    assert found, code   # each lands on the image's root
    assert not any(image["marker"] in m or "lower" in m or "upper" in m for m in found), found
    assert {m.rstrip("/").rsplit("/", 1)[-1] for m in found} >= {"etc", "usr", "data"}


def test_relative_words_start_at_the_cells_directory_not_the_kernels(image, tmp_path,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)   # the kernel's working directory holds the marker
    assert matches(image, "ls ho") == []
    assert matches(image, "cat pa", cwd="/etc") == ["passwd"]


def test_symlink_loops_end(image):
    assert matches(image, "ls /loop1/") == []


def test_the_host_is_completed_only_when_asked_for(image, tmp_path):
    found = matches({"layers": ["/"]}, f"ls {tmp_path}/host-")
    assert found == [f"{tmp_path}/{image['marker']}/"]


# -- %show changes: "in a lower layer" never follows a link out ---------------------------------
def test_a_change_under_a_symlinked_lower_path_is_not_looked_up_on_the_host(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    (tmp_path / "host-file").write_text("secret")
    os.symlink("/", lower / "abs")
    os.symlink("..", lower / "rel")
    (lower / "etc").mkdir()
    (lower / "etc/passwd").write_text("x")
    for d in ("abs", "rel", "etc"):
        (upper / d).mkdir(parents=True)
    (upper / f"abs{tmp_path}").mkdir(parents=True)
    (upper / f"abs{tmp_path}/host-file").write_text("mine")
    (upper / "rel/host-file").write_text("mine")
    (upper / "etc/passwd").write_text("changed")
    up = os.open(upper, os.O_RDONLY | os.O_DIRECTORY)
    low = os.open(lower, os.O_RDONLY | os.O_DIRECTORY)
    try:
        kinds = {c["path"]: c["kind"] for c in changes.scan_upper(up, [low])["changes"]}
    finally:
        os.close(up)
        os.close(low)
    assert kinds[f"/abs{tmp_path}/host-file"] == "A"   # the host's file does not make it C
    assert kinds["/rel/host-file"] == "A"
    assert kinds["/etc/passwd"] == "C"
