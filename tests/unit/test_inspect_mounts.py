"""parse_mountinfo / diff_mounts against recorded and hand-written mountinfo files."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from fixtures.samples import synthetic_mountinfo
from hypothesis import given
from hypothesis import strategies as st

from rootfs_kernel.inspect.mounts import Mount, diff_mounts, parse_mountinfo, stack_order

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mountinfo"


def load(name: str) -> list[Mount]:
    return parse_mountinfo((FIXTURES / name).read_text())


def by_point(mounts: list[Mount]) -> dict[str, Mount]:
    return {m.mount_point: m for m in mounts}


def test_every_field_of_a_line() -> None:
    [m] = parse_mountinfo(
        "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
    )
    assert (m.mount_id, m.parent_id, m.major, m.minor) == (36, 35, 98, 0)
    assert (m.root, m.mount_point, m.options) == ("/mnt1", "/mnt2", "rw,noatime")
    assert m.optional_fields == ("master:1",)
    assert (m.fstype, m.source, m.super_options) == ("ext3", "/dev/root", "rw,errors=continue")
    assert (m.master, m.shared, m.propagate_from, m.unbindable) == (1, None, None, False)
    assert m.propagation == "master:1"
    assert m.device == "98:0"


def test_recorded_host_has_no_optional_fields() -> None:
    mounts = load("host_root.txt")
    assert len(mounts) == len((FIXTURES / "host_root.txt").read_text().splitlines())
    root = by_point(mounts)["/"]
    assert root.fstype == "ext4" and root.optional_fields == ()
    assert {m.propagation for m in mounts} == {"private"}


def test_systemd_host_shared_everywhere() -> None:
    mounts = load("systemd_host.txt")
    assert all(m.shared is not None for m in mounts)
    pts = by_point(mounts)
    assert pts["/"].propagation == "shared:1"
    assert pts["/run/user/1000"].propagation == "shared:350"
    assert pts["/var/lib/snapd/hostfs"].root == "/var/lib/snapd/hostfs"


def test_nested_container_propagation() -> None:
    pts = by_point(load("nested_container.txt"))
    assert pts["/"].propagation == "master:219"
    assert pts["/work"].propagation == "master:1 propagate_from:1"
    assert pts["/work"].propagate_from == 1
    assert pts["/shared"].propagation == "shared:400 master:32"
    assert pts["/scratch"].propagation == "unbindable" and pts["/scratch"].unbindable
    assert pts["/proc/kcore"].root == "/null"
    assert pts["/proc"].propagation == "private"


def test_real_slave_namespace_propagation() -> None:
    pts = by_point(load("real_slave_nested.txt"))
    assert pts["/"].propagation == "master:1"
    assert pts["/mnt"].propagation == "shared:22 master:21"
    assert pts["/proc"].propagation == "unbindable"
    assert pts["/tmp"].propagation == "private"


def test_escaped_names_decode() -> None:
    pts = by_point(load("escaped_names.txt"))
    assert pts["/mnt/a b"].source == "my disk"
    assert "/mnt/tab\there" in pts
    assert "/mnt/new\nline" in pts
    assert "/mnt/back\\slash" in pts
    assert pts["/mnt/bound"].root == "/srv/dir with spaces"
    assert "/mnt/ünïcode" in pts


def test_real_escaped_recording() -> None:
    points = [m.mount_point for m in load("real_escaped.txt")]
    assert any(p.endswith("/a b") for p in points)
    assert any(p.endswith("/tab\tx") for p in points)
    assert not any("\\" in p for p in points)


def test_malformed_line_names_its_number() -> None:
    text = "27 1 254:0 / / rw - ext4 /dev/vda rw\n\n28 27 0:5 / /dev rw shared:1 devtmpfs\n"
    with pytest.raises(ValueError, match="line 3"):
        parse_mountinfo(text)
    with pytest.raises(ValueError, match="line 1.*numeric"):
        parse_mountinfo("x 1 254:0 / / rw - ext4 /dev/vda rw")
    with pytest.raises(ValueError, match="line 1.*after ' - '"):
        parse_mountinfo("1 1 254:0 / / rw - ext4 /dev/vda")


def test_empty_text() -> None:
    assert parse_mountinfo("") == []


_kernel_escaped = {" ": r"\040", "\t": r"\011", "\n": r"\012", "\\": r"\134"}


def kernel_escape(s: str) -> str:
    return "".join(_kernel_escaped.get(ch, ch) for ch in s)


@given(st.text(alphabet=st.sampled_from("ab/ \t\n\\é-"), min_size=1, max_size=30))
def test_escape_round_trip(name: str) -> None:
    line = f"5 1 0:9 / /{kernel_escape(name)} rw shared:3 - tmpfs {kernel_escape(name)} rw"
    [m] = parse_mountinfo(line)
    assert m.mount_point == "/" + name
    assert m.source == name


# --- diff -----------------------------------------------------------------------------


def test_unshared_tmpfs_is_only_in_cell() -> None:
    rows = diff_mounts(load("unshare_tmpfs_tmp.txt"), load("host_root.txt"))
    tmp = [r for r in rows if r.mount_point == "/tmp"]
    assert len(tmp) == 1 and tmp[0].status == "only-cell"
    assert tmp[0].cell.fstype == "tmpfs" and tmp[0].host is None
    # Everything else was copied into the new namespace: new ids, same mounts.
    others = {r.status for r in rows if r.mount_point != "/tmp"}
    assert others == {"same"}


def test_rootless_tmpfs_differs_from_systemd_tmp() -> None:
    rows = {r.mount_point: r for r in diff_mounts(load("rootless_userns.txt"),
                                                   load("systemd_host.txt"))}
    tmp = rows["/tmp"]
    assert tmp.status == "differs"
    assert "super_options" in tmp.differs and "propagation" in tmp.differs
    assert "fstype" not in tmp.differs  # tmpfs on both
    root = rows["/"]
    assert {"source", "propagation"} <= set(root.differs)


def test_tmpfs_over_ext4_tmp_marks_fstype() -> None:
    root = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
    host = parse_mountinfo(root + "2 1 8:2 / /tmp rw - ext4 /dev/sda2 rw")
    cell = parse_mountinfo(root + "10 1 0:44 / /tmp rw - tmpfs none rw")
    rows = {r.mount_point: r for r in diff_mounts(cell, host)}
    assert rows["/"].status == "same"
    assert rows["/tmp"].status == "differs"
    assert set(rows["/tmp"].differs) == {"fstype", "source"}


def test_ids_and_devices_are_not_differences() -> None:
    host = load("host_root.txt")
    cell = [dataclasses.replace(m, mount_id=m.mount_id + 1000, parent_id=m.parent_id + 1000,
                                major=m.major + 1, minor=m.minor + 7) for m in host]
    assert {r.status for r in diff_mounts(cell, host)} == {"same"}


def test_slave_namespace_against_its_shared_parent() -> None:
    rows = diff_mounts(load("real_slave_nested.txt"), load("real_shared_outer.txt"))
    first = {}
    for r in rows:
        first.setdefault(r.mount_point, r)
    assert first["/"].differs == ("propagation",)
    assert first["/"].cell.propagation == "master:1" and first["/"].host.propagation == "shared:1"
    assert first["/tmp"].status == "only-cell"


def test_stacked_mounts_pair_from_the_top_in_mount_order() -> None:
    host = load("host_root.txt")   # /dev/pts twice: 29 is mounted on 26
    rows = [r for r in diff_mounts(load("unshare_tmpfs_tmp.txt"), host)
            if r.mount_point == "/dev/pts"]
    assert [(r.status, r.covered) for r in rows] == [("same", True), ("same", False)]
    # A mount stacked on top in the cell: the two visible mounts are compared, and the
    # cell's extra one at the bottom is one-sided, covered (hidden, not "added").
    extra = Mount(99, 29, 0, 77, "/", "/dev/pts", "rw", (), "tmpfs", "none", "rw")
    rows = [r for r in diff_mounts(host + [extra], host) if r.mount_point == "/dev/pts"]
    assert [(r.status, r.covered) for r in rows] == [
        ("only-cell", True), ("same", True), ("differs", False)]
    assert rows[-1].cell is extra and rows[-1].host.mount_id == 29
    assert rows[0].cell.mount_id == 26 and rows[0].host is None


def test_a_host_with_stacked_mounts_against_a_cell_with_one() -> None:
    """What a pivoted cell sees on a host with /dev/pts mounted twice (containers,
    systemd): the cell's own devpts next to the host's visible one; the host's lower
    one is covered, not gone."""
    host = load("host_root.txt")
    cell = parse_mountinfo("1 0 0:90 / / rw - overlay overlay rw\n"
                           "2 1 0:91 / /dev/pts rw,nosuid - devpts devpts rw,gid=5\n")
    rows = [r for r in diff_mounts(cell, host) if r.mount_point == "/dev/pts"]
    assert [(r.status, r.covered) for r in rows] == [("only-host", True), ("differs", False)]
    assert rows[0].host.mount_id == 26 and rows[1].host.mount_id == 29


def test_stack_order_follows_parent_ids_not_line_order() -> None:
    top = Mount(30, 20, 0, 2, "/", "/x", "rw", (), "tmpfs", "b", "rw")
    bottom = Mount(20, 1, 0, 1, "/", "/x", "rw", (), "tmpfs", "a", "rw")
    assert stack_order([top, bottom]) == [bottom, top]
    # Ids that do not chain (two mounts of different parents): mountinfo order.
    other = Mount(40, 7, 0, 3, "/", "/x", "rw", (), "tmpfs", "c", "rw")
    assert stack_order([top, other]) == [top, other]


def test_only_host_and_sorted_rows() -> None:
    rows = diff_mounts(load("host_root.txt"), load("unshare_tmpfs_tmp.txt"))
    assert [r.status for r in rows if r.mount_point == "/tmp"] == ["only-host"]
    points = [r.mount_point for r in rows]
    assert points == sorted(points)


def test_parse_and_diff_5000_mounts_is_fast() -> None:
    cell_text, host_text = synthetic_mountinfo(5000, fs="xfs"), synthetic_mountinfo(5000, fs="ext4")
    t0 = time.perf_counter()
    rows = diff_mounts(parse_mountinfo(cell_text), parse_mountinfo(host_text))
    elapsed = time.perf_counter() - t0
    print(f"\nparse x2 + diff of 5000 mounts: {elapsed * 1000:.1f} ms")
    assert len(rows) == 5000
    assert sum(r.status == "differs" for r in rows) == len(range(0, 4999, 7))
    assert elapsed < 3
