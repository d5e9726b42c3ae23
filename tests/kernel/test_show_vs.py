"""`%label NAME` and `%show KIND vs NAME` through jupyter_client: this cell's view next to
an earlier cell's container instead of the host's (the seed's experiments compared by
eye: pivot_root against chroot, a mount namespace alone against one with a tmpfs).
Also the error messages a reader meets on the way (`%image`, a typo, `%help`)."""

from __future__ import annotations

import os

import jsonschema
import pytest

from rootfs_kernel.inspect.mounts import diff_mounts, parse_mountinfo
from rootfs_kernel.views import MIME_TYPE, TREE_MIME_TYPE, WIDGET_MIME_TYPE
from rootfs_kernel.views.payload import schema

ROOT = os.geteuid() == 0


def _views(res) -> list[dict]:
    """Every view's bundle: each carries the widget, HTML, text and its payload."""
    out = []
    for d in res.displays:
        data = d["data"]
        assert {"text/plain", "text/html", WIDGET_MIME_TYPE} <= data.keys(), list(data)
        if MIME_TYPE in data:
            jsonschema.validate(data[MIME_TYPE], schema())
            out.append(data[MIME_TYPE])
        else:
            out.append(data[TREE_MIME_TYPE])
    return out


def _odd(p: dict) -> list[dict]:
    return [r for r in p["rows"] if r["status"] != "same"]


def _host() -> list:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return parse_mountinfo(f.read())


def test_pivot_against_chroot_differ_exactly_at_the_root_switch(kernel):
    kernel.ok("%label pivot\ntrue")
    res = kernel.ok("%root chroot\n%show steps vs pivot\n%show mounts vs pivot\ntrue")
    steps, mounts = _views(res)
    assert steps["kind"] == "steps-vs"
    assert [s["label"] for s in steps["sides"]] == ["this cell", "pivot"]
    # The two setups are the same calls but for the root switch: pivot_root (and the old
    # root's detach) in the labelled cell, chroot in this one; and, in root mode, where
    # the clone copies its mount table from: the pivot_root cell's from the helper's
    # template (it keeps nothing of the host's), the chroot cell's from the host's (it
    # keeps every mount, out of sight).
    odd = _odd(steps)
    if ROOT:
        template, *odd = odd
        assert template["status"] == "only-host" and "setns(" in template["host"]["calls"]
    assert [r["status"] for r in odd] == ["only-host", "only-cell"], odd
    assert 'pivot_root(".", ".")' in odd[0]["host"]["calls"]
    assert 'umount2(".", MNT_DETACH)' in odd[0]["host"]["calls"]
    assert 'chroot(".")' in odd[1]["cell"]["calls"] and odd[1]["cell"]["process"] == "script"
    assert len(steps["rows"]) - 2 >= 40
    assert "pivot_root" in steps["headline"] and "chroot" in steps["headline"]
    # Both containers' directories are written $CELL: no row differs by where it was built.
    where = steps["names"]["$CELL"]
    assert where.endswith("/cell")
    assert not [r for r in steps["rows"] if where in ((r.get("cell") or r["host"])["calls"]
                                                      or "")]
    # The script's mount table is the same: chroot hides what pivot_root detached.
    assert _odd(mounts) == []
    # (a stacked mount the one above covers is a row, not one of the mounts a reader sees)
    seen = [r for r in mounts["rows"] if not r.get("note", "").startswith("covered by")]
    assert mounts["headline"].startswith(f"the same {len(seen)} mounts as cell "
                                         "pivot's, though its root was switched by chroot")


def test_a_namespace_alone_against_one_with_a_tmpfs(kernel):
    before = _host()
    kernel.ok("%root none\n%label alone\ntrue")
    res = kernel.ok("%root none\n%mount tmpfs /tmp\n%show mounts vs alone\n"
                    "%show tree vs alone\ntrue")
    after = _host()
    mounts, tree = _views(res)
    # What differs is the tmpfs, and whatever the host itself changed meanwhile (other
    # programs on this machine mount too).
    moved = {r.mount_point for r in diff_mounts(after, before) if r.status != "same"}
    odd = {r["key"]: r for r in _odd(mounts)}
    # The labelled cell saw the host's /tmp: none of its own (only-cell), or the host's
    # own mount there (a container whose /tmp is a volume), which the tmpfs covers.
    host_tmp = any(m.mount_point == "/tmp" for m in before)
    assert odd["/tmp"]["status"] == ("differs" if host_tmp else "only-cell"), odd["/tmp"]
    assert odd["/tmp"]["cell"]["fstype"] == "tmpfs"
    assert set(odd) - {"/tmp"} <= moved, set(odd) - moved
    assert ("/tmp" if host_tmp else "only here: /tmp") in mounts["headline"]
    assert mounts["legend"][0]["text"] == "only in this cell"
    # The tree: this cell's and the labelled cell's, no propagation drawn between two
    # namespaces of different moments.
    assert [s["label"] for s in tree["sides"]] == ["this cell", "alone"]
    assert any(n["mount_point"] == "/tmp" and n["fstype"] == "tmpfs"
               for n in tree["sides"][0]["nodes"])
    assert all(link["from"].split(":")[0] == link["to"].split(":")[0]
               for link in tree["links"] if link["kind"] == "peer")
    assert "this cell's and cell alone's" in tree["title"]


def test_a_listing_against_an_earlier_cells_and_which_label_a_cell_means(kernel):
    kernel.ok("%label before\n%show ls /etc\ntrue")
    res = kernel.ok("%show ls /etc vs before\necho hi > /etc/rk-vs")
    (listing,) = _views(res)
    odd = {r["key"]: r["status"] for r in _odd(listing)}
    assert odd == {"rk-vs": "only-cell"}
    assert listing["title"] == "Listing of /etc: this cell vs cell before"
    # A cell that labels itself NAME and compares with NAME compares with the cell that
    # had the label before it; the next one compares with it.
    first = _views(kernel.ok("%label a\ntrue"))
    assert first == []   # a label shows nothing of its own
    (mine,) = _views(kernel.ok("%label a\n%mount tmpfs /mnt\n%show mounts vs a\ntrue"))
    assert [(r["key"], r["status"]) for r in _odd(mine)] == [("/mnt", "only-cell")]
    (again,) = _views(kernel.ok("%mount tmpfs /mnt\n%show mounts vs a\ntrue"))
    assert _odd(again) == []


@pytest.mark.parametrize("code, expected", [
    ("%show mounts vs nowhere", "no cell is labelled nowhere: run a cell with "
                                "`%label nowhere` first"),
    ("%show ls /opt vs listed", "the cell labelled listed listed no /opt: add "
                                "`%show ls /opt` to it"),
])
def test_a_vs_that_names_nothing_kept_is_refused_before_the_cell_runs(kernel, code, expected):
    kernel.ok("%label listed\n%show ls /etc\ntrue")
    res = kernel.run(f"{code}\necho ran")
    assert res.reply["status"] == "error" and res.reply["ename"] == "HeaderError"
    assert res.reply["evalue"].startswith(f"line 1: `{code}`: {expected}"), res.reply
    assert "ran" not in res.stdout


def test_an_unknown_image_says_how_to_make_it_and_prepares_nothing(kernel):
    res = kernel.run("%image rk-no-such\ntrue")
    assert res.reply["ename"] == "HeaderError"
    assert "`%image rk-no-such --build`" in res.reply["evalue"], res.reply["evalue"]
    assert "unknown image 'rk-no-such'" in res.reply["evalue"]
    # Not "preparing image ..." first, as if it were being made.
    assert not res.displays and not res.updates, (res.displays, res.updates)


def test_a_typo_gets_a_guess_and_help_names_display(kernel):
    res = kernel.run("%shwo mounts\ntrue")
    assert "did you mean `%show`?" in res.reply["evalue"]
    (shown,) = kernel.ok("%help").displays
    assert "`display FILE`" in shown["data"]["text/markdown"]
    assert "%label NAME" in shown["data"]["text/plain"]
