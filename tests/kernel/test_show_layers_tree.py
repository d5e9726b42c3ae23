"""`%show layers` and `%show tree` end to end, through jupyter_client: what each bundle
says about the real image, the real cell and the real host."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jsonschema
import pytest

from rootfs_kernel.images import ImageStore
from rootfs_kernel.views import MIME_TYPE, TREE_MIME_TYPE, WIDGET_MIME_TYPE
from rootfs_kernel.views import tree as tree_view
from rootfs_kernel.views.payload import schema

ROOT = os.geteuid() == 0
TREE_SCHEMA = json.loads(Path(tree_view.__file__).with_name("tree.schema.json").read_text())


def _bundle(res, mime: str) -> dict:
    found = [d["data"] for d in res.displays if mime in d["data"]]
    assert len(found) == 1, (res.stderr, [list(d["data"]) for d in res.displays])
    return found[0]


def _level(payload: dict, key: str) -> dict[str, dict]:
    row = next(r for r in payload["rows"] if r["key"] == key)
    return {r["key"]: r for r in row["children"]["rows"]}


def test_layers_show_the_image_then_what_the_cell_did(kernel):
    res = kernel.ok("%show layers\nrm /etc/hostname; echo hi > /etc/motd; mkdir /opt/app")
    data = _bundle(res, MIME_TYPE)
    assert WIDGET_MIME_TYPE in data
    p = data[MIME_TYPE]
    jsonschema.validate(p, schema())
    image = ImageStore().load("minimal")
    digests = [la["digest"] for la in image.meta["layers"]]
    keys = [r["key"] for r in p["rows"]]
    assert keys == [*(f"layer {i + 1}" for i in range(len(digests))), "cell", "overlay"]
    assert p["rows"][0]["cell"]["digest"] == digests[0].split(":")[1][:12]
    assert p["rows"][0]["cell"]["created_by"] == image.meta["source"]
    cell = _level(p, "cell")
    assert cell["/etc/hostname"]["cell"]["change"] == "D"
    assert cell["/etc/hostname"]["cell"]["shadows"] == "layer 1"
    assert cell["/etc/motd"]["cell"]["change"] == "A"
    assert cell["/opt/app"]["cell"]["type"] == "dir"
    base = _level(p, "layer 1")
    assert base["/etc/hostname"]["cell"]["hidden_by"] == "removed by cell"
    overlay = _level(p, "overlay")
    assert overlay["/etc/hostname"]["status"] == "only-host"
    assert overlay["/etc"]["cell"] == {"from": "cell", "shadows": "layer 1", "seen": "yes"}
    assert "+2 ~2 -1" in p["headline"] and "upperdir" in p["headline"]
    # Opened on the cell's own layer, the stack beside it (as dive shows them).
    assert "removed" in data["text/plain"] and ">layer 1<" in data["text/html"]
    assert '<li class="rfk-current"><span class="rfk-choice-key">cell<' in data["text/html"]


def test_an_exported_layer_and_a_kept_one_are_layers_of_their_own(kernel):
    kernel.ok("%export inside-motd\necho exported > /etc/hostname")
    try:
        kernel.ok("%image inside-motd\n%keep\necho kept > /etc/kept")
        res = kernel.ok("%image inside-motd\n%show layers\ncat /etc/hostname /etc/kept")
        assert res.stdout == "exported\nkept\n"
        p = _bundle(res, MIME_TYPE)[MIME_TYPE]
        rows = {r["key"]: r for r in p["rows"]}
        assert list(rows) == ["layer 1", "layer 2", "kept", "cell", "overlay"]
        assert rows["layer 2"]["cell"]["created_by"].startswith("%export inside-motd")
        assert rows["kept"]["cell"]["role"] == "lowerdir 1/3"
        assert _level(p, "layer 2")["/etc/hostname"]["cell"]["change"] == "C"
        assert _level(p, "kept")["/etc/kept"]["cell"]["change"] == "A"
        assert _level(p, "overlay")["/etc/hostname"]["cell"] == {
            "from": "layer 2", "shadows": "layer 1", "seen": "yes"}
    finally:
        kernel.ok("true")  # ends the %keep chain
        ImageStore().remove("inside-motd")


def test_layers_need_a_root_filesystem(kernel):
    res = kernel.run("%root none\n%show layers\ntrue")
    assert not res.ok and res.errors[0]["ename"] == "HeaderError"
    assert "%root pivot or chroot" in res.errors[0]["evalue"]


def test_the_tree_draws_the_cells_mounts_under_their_parents(kernel):
    res = kernel.ok("%mount tmpfs /scratch\n%show tree\ntrue")
    data = _bundle(res, TREE_MIME_TYPE)
    p = data[TREE_MIME_TYPE]
    jsonschema.validate(p, TREE_SCHEMA)
    assert WIDGET_MIME_TYPE in data
    # Graphviz draws the picture; without it (a host that lacks it), the text tree alone.
    assert ("image/svg+xml" in data) is (shutil.which("dot") is not None)
    cell = {n["mount_point"]: n for n in p["sides"][0]["nodes"]}
    root = cell["/"]
    assert root["fstype"] == "overlay" and root["parent"] is None
    assert cell["/scratch"]["parent"] == root["mount_id"]
    assert cell["/dev/pts"]["parent"] == cell["/dev"]["mount_id"]
    with open("/proc/self/mountinfo") as f:
        host_points = {line.split()[4] for line in f}
    assert {n["mount_point"] for n in p["sides"][1]["nodes"]} <= host_points | {"/"}
    assert "└─" in data["text/plain"] or "├─" in data["text/plain"]
    assert "/scratch" in data.get("image/svg+xml", data["text/plain"])


def test_a_tree_at_a_path_draws_the_mounts_below_it_and_those_they_sit_on(kernel):
    res = kernel.ok("%mount tmpfs /scratch\n%mount tmpfs /scratch/inner\n"
                    "%show tree /scratch\ntrue")
    p = _bundle(res, TREE_MIME_TYPE)[TREE_MIME_TYPE]
    jsonschema.validate(p, TREE_SCHEMA)
    assert p["title"].endswith("at and below /scratch")
    cell = {n["mount_point"]: n for n in p["sides"][0]["nodes"]}
    # the two tmpfs and the root they sit on: not /proc, /dev, /sys and the rest
    assert sorted(cell) == ["/", "/scratch", "/scratch/inner"], sorted(cell)
    assert cell["/scratch/inner"]["parent"] == cell["/scratch"]["mount_id"]
    assert cell["/scratch"]["parent"] == cell["/"]["mount_id"]
    # the host has no /scratch: its side keeps no more than the chain to its root
    with open("/proc/self/mountinfo") as f:
        host = [line.split() for line in f]
    assert len(p["sides"][1]["nodes"]) <= 1 < len(host)
    # the whole tree of the same cell has every mount of the cell
    whole = _bundle(kernel.ok("%mount tmpfs /scratch\n%show tree\ntrue"),
                    TREE_MIME_TYPE)[TREE_MIME_TYPE]
    assert {"/proc", "/dev"} <= {n["mount_point"] for n in whole["sides"][0]["nodes"]}


@pytest.mark.rootonly
def test_the_tree_links_shared_mounts_across_the_two_namespaces(kernel, shared_peer):
    peer = shared_peer
    res = kernel.ok(f"%root none\n%propagation shared\n%show tree\n"
                    f"mount -t tmpfs none {peer}")
    p = _bundle(res, TREE_MIME_TYPE)[TREE_MIME_TYPE]
    nodes = {n["id"]: n for s in p["sides"] for n in s["nodes"]}
    peers = [ln for ln in p["links"] if ln["kind"] == "peer"
             and nodes[ln["from"]]["mount_point"] == str(peer)
             and {ln["from"][:4], ln["to"][:4]} == {"cell", "host"}]
    # The host's bind and the cell's copy of it are one peer group: that is why the
    # tmpfs the cell mounted there shows up on the host too.
    assert peers, p["text"]
    assert f"shared:{peers[0]['group']}" in p["text"]
    cell_tmpfs = [n for n in nodes.values() if n["id"].startswith("cell:")
                  and n["mount_point"] == str(peer) and n["fstype"] == "tmpfs"]
    host_tmpfs = [n for n in nodes.values() if n["id"].startswith("host:")
                  and n["mount_point"] == str(peer) and n["fstype"] == "tmpfs"]
    assert cell_tmpfs and host_tmpfs
