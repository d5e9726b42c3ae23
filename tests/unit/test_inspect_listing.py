"""snapshot() and diff_listings() on real directory trees made in tmp_path."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rootfs_kernel.inspect.listing import diff_listings, snapshot


def in_child(fn: Callable[[], object]) -> object:
    """Run fn in a forked child (to chroot or drop privileges) and return its JSON result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        os.close(r)
        try:
            data = json.dumps({"ok": fn()})
        except BaseException as err:  # report anything, including ImportError
            data = json.dumps({"error": f"{type(err).__name__}: {err}"})
        os.write(w, data.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = json.loads(f.read())
    os.waitpid(pid, 0)
    if "error" in out:
        raise AssertionError(out["error"])
    return out["ok"]


def make_tree(root: Path) -> Path:
    (root / "etc" / "ssl" / "certs").mkdir(parents=True)
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (root / "etc" / "ssl" / "certs" / "ca.pem").write_text("x" * 10)
    (root / "bin").mkdir()
    (root / "bin" / "sh").write_bytes(b"\x7fELF")
    (root / "bin" / "sh").chmod(0o755)
    (root / "lib").symlink_to("usr/lib")
    (root / "dangling").symlink_to("/nowhere")
    os.mkfifo(root / "fifo")
    return root


def names(entries: list[dict]) -> list[str]:
    return [e["name"] for e in entries]


def test_snapshot_fields(tmp_path: Path) -> None:
    # Four levels of entries: etc / ssl / certs / ca.pem.
    snap = snapshot(str(make_tree(tmp_path)), max_depth=4)
    assert snap["type"] == "dir" and not snap["truncated"] and snap["note"] is None
    top = {e["name"]: e for e in snap["children"]}
    assert names(snap["children"]) == ["bin", "dangling", "etc", "fifo", "lib"]
    assert top["lib"]["type"] == "symlink" and top["lib"]["target"] == "usr/lib"
    assert "children" not in top["lib"]  # never followed
    assert top["dangling"]["target"] == "/nowhere"
    assert top["fifo"]["type"] == "fifo" and top["fifo"]["perms"].startswith("p")
    sh = {e["name"]: e for e in top["bin"]["children"]}["sh"]
    assert (sh["type"], sh["mode"], sh["perms"], sh["size"]) == ("file", "0755", "-rwxr-xr-x", 4)
    assert sh["uid"] == os.getuid()
    certs = top["etc"]["children"][1]["children"][0]
    assert certs["name"] == "certs" and names(certs["children"]) == ["ca.pem"]
    json.dumps(snap)  # JSON-able


def test_depth_cut_is_noted(tmp_path: Path) -> None:
    snap = snapshot(str(make_tree(tmp_path)), max_depth=3)  # the default
    ssl = snap["children"][2]["children"][1]
    assert ssl["name"] == "ssl" and "children" in ssl
    certs = ssl["children"][0]
    assert "children" not in certs and certs["truncated"] is True
    assert snap["truncated"] is True
    assert "max_depth" in snap["note"] and "certs" in snap["note"]


def test_empty_dirs_at_depth_limit_do_not_truncate(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").touch()
    snap = snapshot(str(tmp_path), max_depth=1)
    assert snap["truncated"] is False


def test_ten_thousand_entries_are_cut_with_a_note(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    for i in range(10_000):
        (big / f"f{i:05d}").touch()
    (tmp_path / "small").mkdir()
    t0 = time.perf_counter()
    snap = snapshot(str(tmp_path), max_entries=2000)
    elapsed = time.perf_counter() - t0
    print(f"\nsnapshot of a 10,000-entry directory: {elapsed * 1000:.1f} ms, {snap['count']} kept")
    assert snap["count"] == 2000 and snap["truncated"] is True
    assert "2000" in snap["note"] and str(big) in snap["note"]
    bigentry = {e["name"]: e for e in snap["children"]}["big"]
    assert bigentry["truncated"] is True and len(bigentry["children"]) == 1998
    assert elapsed < 3


def test_missing_path() -> None:
    assert snapshot("/no/such/dir") == {"path": "/no/such/dir",
                                        "error": "No such file or directory"}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another uid")
def test_unreadable_dir_is_recorded_not_raised() -> None:
    # pytest's tmp_path sits below a 0700 directory: nobody could not even reach it.
    tmp_path = Path(tempfile.mkdtemp(prefix="rootfs-kernel-test-"))
    os.chmod(tmp_path, 0o755)
    make_tree(tmp_path)
    secret = tmp_path / "secret"
    secret.mkdir(mode=0o700)
    (secret / "x").touch()

    def as_nobody() -> object:
        os.setgid(65534)
        os.setuid(65534)
        return snapshot(str(tmp_path))

    try:
        snap = in_child(as_nobody)
    finally:
        shutil.rmtree(tmp_path)
    entry = {e["name"]: e for e in snap["children"]}["secret"]
    assert entry["error"] == "Permission denied" and "children" not in entry
    assert {e["name"]: e for e in snap["children"]}["etc"]["children"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chroot")
def test_snapshot_works_where_the_python_library_is_unreachable(tmp_path: Path) -> None:
    make_tree(tmp_path)

    def chrooted() -> object:
        os.chroot(tmp_path)
        os.chdir("/")
        # Any import not already done now fails, as after pivot_root.
        sys.meta_path.clear()
        sys.path_hooks.clear()
        sys.path_importer_cache.clear()
        return [snapshot("/"), snapshot("/etc", max_depth=1, max_entries=1),
                snapshot("/missing")]

    full, cut, missing = in_child(chrooted)
    assert names(full["children"]) == ["bin", "dangling", "etc", "fifo", "lib"]
    assert cut["truncated"] and cut["count"] == 1
    assert missing["error"] == "No such file or directory"


# --- diff -----------------------------------------------------------------------------


def rows_by_name(rows: list[dict]) -> dict[str, dict]:
    return {r["name"]: r for r in rows}


def test_diff_marks(tmp_path: Path) -> None:
    host = make_tree(tmp_path / "host")
    cell = make_tree(tmp_path / "cell")
    (cell / "new").write_text("added")
    (cell / "fifo").unlink()
    (cell / "bin" / "sh").chmod(0o700)
    (cell / "etc" / "hosts").write_text("changed and longer\n")
    (cell / "lib").unlink()
    (cell / "lib").symlink_to("usr/lib64")
    os.chown(cell / "dangling", 1000, 1000, follow_symlinks=False)

    d = diff_listings(snapshot(str(cell), max_depth=4), snapshot(str(host), max_depth=4))
    top = rows_by_name(d["rows"])
    assert top["new"]["status"] == "only-cell" and top["new"]["host"] is None
    assert top["fifo"]["status"] == "only-host" and top["fifo"]["cell"] is None
    assert top["lib"]["differs"] == ["size", "target"]  # a link's size is its length
    assert top["dangling"]["differs"] == ["owner"]
    assert top["bin"]["status"] == "differs" and top["bin"]["differs"] == ["contents"]
    assert rows_by_name(top["bin"]["children"])["sh"]["differs"] == ["mode"]
    etc = rows_by_name(top["etc"]["children"])
    assert etc["hosts"]["differs"] == ["size"]
    assert etc["ssl"]["status"] == "same"  # recursion saw identical children
    assert d["truncated"] is False and d["notes"] == {}


def test_diff_type_change_and_one_sided_directories(tmp_path: Path) -> None:
    (tmp_path / "c" / "opt" / "app").mkdir(parents=True)
    (tmp_path / "c" / "x").mkdir()
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "x").write_text("file on host")
    d = diff_listings(snapshot(str(tmp_path / "c")), snapshot(str(tmp_path / "h")))
    top = rows_by_name(d["rows"])
    assert "type" in top["x"]["differs"]
    assert top["opt"]["status"] == "only-cell"
    assert [k["status"] for k in top["opt"]["children"]] == ["only-cell"]


def test_diff_with_missing_side_notes_it(tmp_path: Path) -> None:
    d = diff_listings(snapshot(str(make_tree(tmp_path))), snapshot("/no/such"))
    assert {r["status"] for r in d["rows"]} == {"only-cell"}
    assert "No such file or directory" in d["notes"]["host"]
