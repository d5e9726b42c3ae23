"""remove_tree (rmtree.py): the one remover of cell directories and image layers."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from rootfs_kernel.rmtree import remove_tree

NOBODY = 65534


def _hard_tree(top: Path) -> None:
    """What images and cells leave: 0555 directories, an overlayfs work dir of mode 000."""
    (top / "image" / "proc").mkdir(parents=True)
    (top / "image" / "etc").mkdir()
    (top / "image" / "etc" / "hostname").write_text("x\n")
    (top / "image" / "bin").symlink_to("usr/bin")
    (top / "upper" / "work" / "work").mkdir(parents=True)
    (top / "upper" / "work" / "work" / "left").write_text("")
    for path, mode in [(top / "upper" / "work" / "work", 0), (top / "image" / "proc", 0o555),
                       (top / "image" / "etc", 0o555), (top / "image", 0o555)]:
        os.chmod(path, mode)


def _as_owner(fn) -> None:
    """Run fn as the tree's ordinary owner: root would pass every permission check."""
    if os.geteuid() != 0:
        fn()
        return
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            fn()
            code = 0
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def test_a_tree_its_owner_may_not_write_or_enter_is_removed():
    base = Path(tempfile.mkdtemp(prefix="rk-rmtree-"))
    try:
        if os.geteuid() == 0:
            os.chown(base, NOBODY, NOBODY)
        top = base / "cell"

        def make_then_remove() -> None:
            top.mkdir()
            _hard_tree(top)
            with pytest.raises(PermissionError):
                shutil.rmtree(top)     # what the plain one does with it
            remove_tree(top)
            assert not top.exists()

        _as_owner(make_then_remove)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_file_a_link_and_a_missing_path(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "d")
    (tmp_path / "d").mkdir()
    remove_tree(tmp_path / "f")
    remove_tree(tmp_path / "link")          # the link, not what it points to
    remove_tree(tmp_path / "missing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
