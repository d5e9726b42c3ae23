"""%show layers and %show tree without a kernel: layer directories on disk scanned the way
overlayfs reads them, and mount tables drawn as trees with their propagation links."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from fixtures.payloads import make

from rootfs_kernel.inspect.layers import scan_layers
from rootfs_kernel.inspect.mounts import parse_mountinfo
from rootfs_kernel.inspect.mounttree import build
from rootfs_kernel.views import TREE_MIME_TYPE, layers_payload, render_text, view_bundle
from rootfs_kernel.views import tree as tree_view
from rootfs_kernel.views.payload import schema

MOUNTINFO = Path(make.__file__).parent.parent / "mountinfo"
TREE_SCHEMA = json.loads((Path(tree_view.__file__).with_name("tree.schema.json")).read_text())


def _whiteout(path: Path) -> None:
    try:
        os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))
    except PermissionError:
        pytest.skip("mknod of a whiteout needs root (an ordinary user's layers keep "
                    "deletions in layer.json)")


def _opaque(path: Path) -> None:
    for name in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            os.setxattr(path, name, b"y")
            return
        except OSError:
            continue
    pytest.skip("this filesystem takes no overlay xattr")


@pytest.fixture
def stack(tmp_path: Path) -> list[Path]:
    """base: /etc/{hostname,motd}, /opt/old; middle: a new motd, /opt replaced (opaque)
    with /opt/new; upper (the cell): /etc/hostname removed, /etc/motd changed again."""
    base, middle, upper = (tmp_path / n for n in ("base", "middle", "upper"))
    for d in (base / "etc", base / "opt", middle / "etc", middle / "opt", upper / "etc"):
        d.mkdir(parents=True)
    (base / "etc" / "hostname").write_text("box\n")
    (base / "etc" / "motd").write_text("hello\n")
    (base / "opt" / "old").write_text("old\n")
    (middle / "etc" / "motd").write_text("hello again\n")
    (middle / "opt" / "new").write_text("new\n")
    _opaque(middle / "opt")
    _whiteout(upper / "etc" / "hostname")
    (upper / "etc" / "motd").write_text("bye\n")
    return [base, middle, upper]


def _scan(paths: list[Path], **kw) -> list[dict]:
    fds = [os.open(p, os.O_RDONLY | os.O_DIRECTORY) for p in paths]
    try:
        return scan_layers(fds, **kw)
    finally:
        for fd in fds:
            os.close(fd)


def test_each_layer_is_read_against_the_ones_below(stack: list[Path]) -> None:
    base, middle, upper = (
        {e["path"]: e for e in layer["entries"]} for layer in _scan(stack))
    assert base["/etc/motd"]["change"] == "A"
    # What hides a path of the base: the middle layer's file, the cell's whiteout, the
    # middle layer's opaque /opt.
    assert base["/etc/motd"]["above"] == [[1, "shadowed"], [2, "shadowed"]]
    assert base["/etc/hostname"]["above"] == [[2, "removed"]]
    assert base["/opt/old"]["above"] == [[1, "replaced"]]
    assert middle["/etc/motd"]["change"] == "C" and middle["/etc/motd"]["below"] == [0]
    assert middle["/opt"]["opaque"] and middle["/opt/new"]["change"] == "A"
    assert upper["/etc/hostname"]["change"] == "D"
    assert upper["/etc/hostname"]["below"] == [0] and upper["/etc/hostname"]["type"] is None
    assert upper["/etc/motd"]["below"] == [0, 1]


def test_every_entry_is_counted_past_the_kept_ones(stack: list[Path]) -> None:
    base = _scan(stack, keep=2)[0]
    assert [e["path"] for e in base["entries"]] == ["/etc", "/etc/hostname"]
    assert base["total"] == 5 and base["counts"]["A"] == 5
    assert base["bytes"] == len("box\n") + len("hello\n") + len("old\n")


def test_the_payload_says_where_a_path_comes_from_and_what_it_shadows(stack) -> None:
    scan = _scan(stack)
    labels = [{"label": "layer 1", "digest": "sha256:" + "0" * 64, "size": 14,
               "created_by": "test", "role": "lowerdir 2/2"},
              {"label": "layer 2", "digest": "sha256:" + "1" * 64, "size": 16,
               "created_by": "%export", "role": "lowerdir 1/2"},
              {"label": "cell", "digest": None, "size": None, "created_by": "this cell",
               "role": "upperdir"}]
    p = layers_payload({"scan": scan, "stack": labels}, image="t")
    jsonschema.validate(p, schema())
    assert [r["key"] for r in p["rows"]] == ["layer 1", "layer 2", "cell", "overlay"]
    overlay = {r["key"]: r for r in p["rows"][-1]["children"]["rows"]}
    assert overlay["/etc/motd"]["cell"] == {"from": "cell", "shadows": "layer 2, layer 1",
                                            "seen": "yes"}
    assert overlay["/etc/hostname"]["status"] == "only-host"
    assert overlay["/etc/hostname"]["cell"]["seen"] == "removed by cell"
    cell = {r["key"]: r for r in p["rows"][2]["children"]["rows"]}
    assert cell["/etc/hostname"]["cell"]["change"] == "D"
    assert p["headline"].startswith("2 lower layers (lowerdir, top first: layer 2:layer 1)")
    text = render_text(p, path=("layer 2",))
    assert "opaque" in text and "shadows" in text


def test_the_cli_prints_an_image_s_layers(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "rootfs_kernel.cli", "image", "inspect", "minimal",
                          "--layers"], env=env, capture_output=True, text=True, timeout=120)
    if "unknown image" in out.stderr:  # nothing built yet in this store: build it
        subprocess.run([sys.executable, "-m", "rootfs_kernel.cli", "image", "build", "minimal"],
                       env=env, check=True, capture_output=True, timeout=120)
        out = subprocess.run([sys.executable, "-m", "rootfs_kernel.cli", "image", "inspect",
                              "minimal", "--layers"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Layers of image minimal (bottom to top)")
    assert "host programs (minimal)" in out.stdout
    assert "(bottom to top): layer 1" in out.stdout and "usr/" in out.stdout


# --- tree --------------------------------------------------------------------------------------


def _tables() -> tuple[list, list]:
    return (parse_mountinfo((MOUNTINFO / "real_slave_nested.txt").read_text()),
            parse_mountinfo((MOUNTINFO / "real_shared_outer.txt").read_text()))


def test_slaves_are_linked_to_their_masters_across_the_namespaces() -> None:
    cell, host = _tables()
    graph = build(cell, host)
    nodes = {n["id"]: n for s in graph["sides"] for n in s["nodes"]}
    masters = [ln for ln in graph["links"] if ln["kind"] == "master"]
    root = next(n for n in nodes.values() if n["id"].startswith("cell:") and
                n["mount_point"] == "/")
    link = next(ln for ln in masters if ln["to"] == root["id"])
    # The cell's / receives from the host's / (peer group 1), not from a mount of its own.
    assert link["from"].startswith("host:") and nodes[link["from"]]["mount_point"] == "/"
    assert link["group"] == 1 == nodes[link["from"]]["shared"]
    assert {n["depth"] for n in nodes.values()} >= {0, 1, 2}


def test_peers_of_one_group_are_chained_in_both_trees() -> None:
    cell, host = _tables()
    graph = build(host, host)   # the same table twice: every shared mount has a peer
    peers = [ln for ln in graph["links"] if ln["kind"] == "peer"]
    shared = [m for m in host if m.shared is not None]
    assert len(peers) == len(shared)
    assert all(ln["from"].startswith("cell:") and ln["to"].startswith("host:") for ln in peers)


def test_the_tree_payload_holds_a_picture_text_and_words() -> None:
    cell, host = _tables()
    p = tree_view.tree_payload(cell, host)
    jsonschema.validate(p, TREE_SCHEMA)
    assert p["svg"] and "<svg" in p["svg"] and "rfk-master" in p["svg"]
    assert "├─/dev" in p["text"] and "master:1" in p["text"]
    data, _ = view_bundle(p, widget=False)
    assert data["image/svg+xml"] == p["svg"]
    assert data[TREE_MIME_TYPE] is p
    # The HTML copy is drawn in the theme's colours, the SVG's own dark style dropped.
    assert "var(--jp-layout-color0,#ffffff)" in data["text/html"]
    assert "prefers-color-scheme" not in data["text/html"]
    assert 'fill="#fffffe"' not in data["text/html"]


def test_without_graphviz_the_text_alone_says_why(monkeypatch) -> None:
    cell, host = _tables()
    monkeypatch.setenv("PATH", "/nonexistent")
    tree_view.dot_program.cache_clear()
    try:
        p = tree_view.tree_payload(cell, host)
    finally:
        tree_view.dot_program.cache_clear()
    assert p["svg"] is None and "Graphviz is not installed" in p["note"]
    data, _ = view_bundle(p, widget=False)
    assert "image/svg+xml" not in data and "Graphviz is not installed" in data["text/plain"]
    jsonschema.validate(p, TREE_SCHEMA)


def test_the_tree_golden_file_is_what_the_kernel_makes_now() -> None:
    assert json.loads(make.TREE.read_text()) == make.build_tree()
