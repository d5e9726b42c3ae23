"""read_namespaces() and diff_ns()."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rootfs_kernel.inspect.ns import NAMESPACES, diff_ns, read_namespaces


def test_read_own_namespaces() -> None:
    ids = read_namespaces()
    assert list(ids) == list(NAMESPACES)
    assert ids["mnt"].startswith("mnt:[") and ids["mnt"] == os.readlink("/proc/self/ns/mnt")


def test_missing_proc_gives_none(tmp_path: Path) -> None:
    assert set(read_namespaces(str(tmp_path)).values()) == {None}


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs unshare")
def test_new_mount_namespace_differs_only_in_mnt() -> None:
    out = subprocess.run(["unshare", "-m", "readlink", "/proc/self/ns/mnt"],
                         capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    host = read_namespaces()
    cell = dict(host, mnt=out)
    rows = {r.name: r for r in diff_ns(cell, host)}
    assert rows["mnt"].status == "differs"
    assert {r.status for n, r in rows.items() if n != "mnt"} == {"same"}


def test_one_sided_and_absent() -> None:
    rows = diff_ns({"mnt": "mnt:[1]", "time": "time:[9]"},
                   {"mnt": "mnt:[1]", "pid": "pid:[2]"})
    assert [(r.name, r.status) for r in rows] == [
        ("mnt", "same"), ("pid", "only-host"), ("time", "only-cell")]
