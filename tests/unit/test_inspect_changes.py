"""scan_upper() on upper layers written by a real overlay mount, and hand-made ones."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_inspect_listing import in_child

from rootfs_kernel.inspect.changes import scan_upper

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts and overlay need root")


def make_lower(lower: Path) -> None:
    (lower / "etc" / "app").mkdir(parents=True)
    (lower / "etc" / "app" / "a.conf").write_text("a")
    (lower / "etc" / "app" / "b.conf").write_text("b")
    (lower / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (lower / "etc" / "motd").write_text("hello\n")
    (lower / "var" / "cache").mkdir(parents=True)
    (lower / "var" / "cache" / "old").write_text("old")


@pytest.fixture
def layers(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    make_lower(lower)
    yield lower, upper


def scan(lower: Path, upper: Path, **kw: int) -> dict:
    ufd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY)
    lfd = os.open(lower, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return scan_upper(ufd, [lfd], **kw)
    finally:
        os.close(ufd)
        os.close(lfd)


def by_path(result: dict) -> dict[str, dict]:
    return {c["path"]: c for c in result["changes"]}


# What a cell would do to its root; M is the overlay mount point.
CELL_SCRIPT = """
set -e
mount -t overlay overlay -o lowerdir="$L",upperdir="$U",workdir="$W" "$M"
echo changed >> "$M/etc/hosts"
rm "$M/etc/motd"
echo new > "$M/etc/new.conf"
rm -rf "$M/var/cache"
mkdir "$M/var/cache"
echo fresh > "$M/var/cache/fresh"
mkdir -p "$M/opt/tool"
head -c 1234 /dev/zero > "$M/opt/tool/blob"
"""


def test_real_overlay_whiteouts_and_opaque_dir(layers: tuple[Path, Path], tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) missing")
    lower, upper = layers
    work, merged = tmp_path / "work", tmp_path / "M"
    work.mkdir()
    merged.mkdir()
    env = dict(os.environ, L=str(lower), U=str(upper), W=str(work), M=str(merged))
    # A private mount namespace: the overlay vanishes with it, the upper dir stays.
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", CELL_SCRIPT],
                          capture_output=True, text=True, env=env, timeout=60)
    if proc.returncode != 0 and "overlay" in proc.stderr:
        pytest.skip(f"overlay mount refused here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr

    result = scan(lower, upper)
    ch = by_path(result)
    assert ch["/etc/hosts"]["kind"] == "C"
    assert ch["/etc/hosts"]["size"] == len("127.0.0.1 localhost\nchanged\n")
    assert ch["/etc/motd"]["kind"] == "D" and ch["/etc/motd"]["size"] is None
    assert ch["/etc/new.conf"]["kind"] == "A"
    assert ch["/etc"]["kind"] == "C" and not ch["/etc"]["opaque"]
    assert ch["/var/cache"]["kind"] == "C" and ch["/var/cache"]["opaque"] is True
    assert ch["/var/cache/fresh"]["kind"] == "A"
    assert "/var/cache/old" not in ch  # its deletion is implied by the opaque dir
    assert ch["/opt"]["kind"] == "A" and ch["/opt/tool/blob"]["size"] == 1234
    assert result["counts"] == {"A": 5, "C": 4, "D": 1}, sorted(ch)
    assert [c["path"] for c in result["changes"]] == sorted(ch)


def test_hand_made_whiteout_and_opaque_xattrs(layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    (upper / "etc").mkdir()
    os.mknod(upper / "etc" / "motd", stat.S_IFCHR | 0o000, 0)
    (upper / "etc" / "app").mkdir()
    os.setxattr(upper / "etc" / "app", "trusted.overlay.opaque", b"y")
    (upper / "etc" / "app" / "c.conf").write_text("c")
    (upper / "var").mkdir()
    (upper / "var" / "cache").mkdir()
    try:
        os.setxattr(upper / "var" / "cache", "user.overlay.opaque", b"y")
    except OSError:
        pytest.skip("user.* xattrs unsupported on this filesystem")
    # A real character device (1:3, like /dev/null) is a change, not a whiteout.
    os.mknod(upper / "etc" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))

    ch = by_path(scan(lower, upper))
    assert ch["/etc/motd"]["kind"] == "D"
    assert ch["/etc/app"] == {"path": "/etc/app", "kind": "C", "type": "dir",
                              "size": ch["/etc/app"]["size"], "opaque": True}
    assert ch["/etc/app/c.conf"]["kind"] == "A"
    assert ch["/var/cache"]["opaque"] is True  # rootless (userxattr) flavour
    assert ch["/etc/null"]["kind"] == "A" and ch["/etc/null"]["type"] == "char"


def test_budget_cuts_with_note(layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    for i in range(50):
        (upper / f"f{i}").touch()
    result = scan(lower, upper, max_entries=10)
    assert len(result["changes"]) == 10 and result["truncated"]
    assert "10" in result["note"]


def test_several_lower_layers(layers: tuple[Path, Path], tmp_path: Path) -> None:
    lower, upper = layers
    lower2 = tmp_path / "lower2"
    lower2.mkdir()
    (lower2 / "only-in-second").touch()
    (upper / "only-in-second").write_text("edited")
    fds = [os.open(p, os.O_RDONLY | os.O_DIRECTORY) for p in (upper, lower, lower2)]
    try:
        ch = by_path(scan_upper(fds[0], fds[1:]))
    finally:
        for fd in fds:
            os.close(fd)
    assert ch["/only-in-second"]["kind"] == "C"


def test_scan_works_where_the_python_library_is_unreachable(
    layers: tuple[Path, Path], tmp_path: Path
) -> None:
    lower, upper = layers
    (upper / "etc").mkdir()
    os.mknod(upper / "etc" / "motd", stat.S_IFCHR, 0)
    (upper / "etc" / "new").touch()
    empty = tmp_path / "empty-root"
    empty.mkdir()
    ufd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY)
    lfd = os.open(lower, os.O_RDONLY | os.O_DIRECTORY)

    def chrooted() -> object:
        os.chroot(empty)
        os.chdir("/")
        sys.meta_path.clear()
        sys.path_hooks.clear()
        sys.path_importer_cache.clear()
        return scan_upper(ufd, [lfd])

    try:
        result = in_child(chrooted)
    finally:
        os.close(ufd)
        os.close(lfd)
    assert result["counts"] == {"A": 1, "C": 1, "D": 1}
