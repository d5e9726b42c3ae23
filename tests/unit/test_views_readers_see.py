"""What a reader must see in each golden view, written by hand from its inputs.

test_views_golden.py pins the drawn views to the files both renderers are tested with
(make.py writes them); these expectations are not taken from that output: each says, row
by row, what the input (tests/fixtures/payloads/make.py) means to a reader, so that a
file regenerated after a wrong change of the views fails here. Every golden payload is
also checked against its JSON Schema.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from fixtures.payloads import make

from rootfs_kernel.views.model import State
from rootfs_kernel.views.payload import VERSION, schema

GOLDEN = Path(make.__file__).parent


def golden(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


def view(name: str, state: State | None = None) -> dict:
    """The view the file holds for `state`, checked to be what the kernel draws now."""
    state = state or State()
    data = golden(name)
    drawn = make.expected(make.cases()[make.SOURCES.get(name, name)][0], state)
    stored = next(v for v in data["views"] if v["state"] == drawn["state"])
    assert stored == drawn, f"{name}: the golden file is stale"
    return stored


def rows(v: dict) -> list[list[str]]:
    """Each drawn line's cells: mark, key, side, values..., note ("" where blank); the
    second line of a row that differs (the other side's) takes its row's key."""
    out: list[list[str]] = []
    for line in v["lines"]:
        cells = [c.strip() for c in line.split(" | ")]
        if out and cells[:2] == ["", ""] and len(cells) > 2:
            cells[1] = out[-1][1]
        out.append(cells)
    return out


def row(v: dict, key: str, side: str | None = None, mark: str | None = None) -> list[str]:
    found = [r for r in rows(v) if len(r) > 2 and r[1] == key and side in (None, r[2])
             and mark in (None, r[0])]
    assert len(found) == 1, (key, side, v["lines"])
    return found[0]


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_every_golden_payload_is_valid_against_the_schema(path: Path) -> None:
    payload = json.loads(path.read_text())["payload"]
    if payload["version"] == 1:   # an older kernel's: the renderer upgrades it
        assert path.stem.endswith("version-1")
        return
    assert payload["version"] == VERSION
    jsonschema.validate(payload, schema())


def test_ns_the_cells_own_namespaces_differ_and_the_rest_are_shared() -> None:
    v = view("ns")
    assert v["headline"] == ("the cell's own mnt, pid, user namespaces; "
                             "the host's uts, ipc, net, cgroup")
    for ns in ("mnt", "pid", "user"):   # both ids, each highlighted
        mark, _, side, value, _ = row(v, ns, "cell")
        assert (mark, side) == ("~", "cell") and value.startswith(f"«{ns}:[")
    assert [r[1] for r in rows(v) if r[2] == "host"] == ["mnt", "pid", "user"]
    for ns in ("uts", "ipc", "net", "cgroup"):   # one line, the same id
        assert row(v, ns)[:3] == ["", ns, "both"]
    assert v["summary"] == "0 only in cell, 0 only on host, 3 differs, 4 same"
    only = view("ns", State(differences_only=True))
    assert {r[1] for r in rows(only)} == {"mnt", "pid", "user"}
    # An older kernel's payload of the same comparison reads the same.
    assert view("ns-version-1")["lines"] == v["lines"]


def test_changes_each_kind_of_change_and_the_cut() -> None:
    v = view("changes")
    assert row(v, "/etc/app")[:4] == ["+", "/etc/app", "A", "dir"]
    assert row(v, "/etc/hosts")[:5] == ["~", "/etc/hosts", "C", "file", "49"]
    assert row(v, "/etc/hostname")[:3] == ["-", "/etc/hostname", "D"]
    assert row(v, "/opt")[0] == "+" and "opaque" in row(v, "/opt")
    assert "stopped after 4 changes" in v["note"]


def test_mounts_the_new_root_and_the_hosts_covered_mount() -> None:
    v = view("mounts-pivot-stacked-host")
    assert v["headline"].startswith("/ is an overlay of image minimal; /proc, /dev, /sys "
                                    "are the cell's own")
    assert row(v, "/", "cell")[:5] == ["~", "/", "cell", "«overlay»", "«overlay»"]
    assert row(v, "/", "host")[3] == "«ext4»"
    # The host's /dev/pts under its stacked one: not gone from the host, only hidden.
    covered = row(v, "/dev/pts", "host", mark="-")
    assert covered[-1] == "covered by the mount above it (hidden, still mounted)"
    assert row(v, "/dev/pts", "cell")[0] == "~"
    assert "«nosuid»" in row(v, "/dev/pts", "cell")[5]   # the cell's devpts is its own
    pts = view("mounts-pivot-stacked-host", State(query="pts"))
    assert {r[1] for r in rows(pts)} <= {"/dev/pts", ""}


def test_mounts_a_namespace_alone_adds_only_its_own_tmpfs() -> None:
    v = view("mounts-root-none")
    assert rows(v) == [["+", "/tmp", "cell", "tmpfs", "none", "rw,relatime", "private", ""]]
    assert v["headline"] == "/ is the host's /; added /tmp (tmpfs)"
    assert v["footer"]["text"] == "20 same rows hidden"
    vs = view("mounts-vs")
    assert rows(vs)[0][:4] == ["+", "/tmp", "this cell", "tmpfs"]
    assert vs["title"] == "Mounts: this cell vs cell alone"


def test_listing_what_the_cell_changed_in_etc() -> None:
    v = view("listing-vs-image")
    assert row(v, "hosts", "cell")[6] == "«49»" and row(v, "hosts", "image")[6] == "«34»"
    assert "group: - | 4 entries | gone1, gone2, gone3, hostname" in v["lines"]
    assert "group: + | 3 entries | new1, new2, new3" in v["lines"]
    assert row(v, "app/", "cell")[-1] == "inside: 2 only in cell, 1 only in image, 1 differs"
    app = view("listing-vs-image", State(path=("app",)))
    assert row(app, "a.conf", "cell")[4] == "«-rw-------»"
    assert row(app, "b.conf")[:3] == ["-", "b.conf", "image"]
    assert row(app, "c.conf")[:3] == ["+", "c.conf", "cell"]
    budget = view("listing-budget")
    assert budget["title"].endswith("(first 40 rows)") and "keeps 40 rows" in budget["note"]


def test_layers_the_stack_and_the_cells_own_layer() -> None:
    v = view("layers")
    assert [r[1] for r in rows(v)] == ["layer 1", "layer 2", "kept", "cell", "overlay"]
    assert row(v, "cell")[5:7] == ["+1 ~1 -1", "upperdir"]
    assert row(v, "layer 1")[6] == "lowerdir 3/3"
    cell = view("layers", State(path=("cell",)))
    assert row(cell, ".hostname")[0] == "-" and row(cell, ".new")[0] == "+"
    base = view("layers", State(path=("layer 1",)))
    assert row(base, ".hostname")[5] == "removed by cell"   # what later layers did to it


def test_steps_the_story_of_the_setup() -> None:
    v = view("steps")
    sections = [line for line in v["lines"] if line.startswith("section: ")]
    assert [s.split(": ")[1] for s in sections] == [
        "the init, still on the host", "the cell's PID 1, in its new namespaces",
        "the script's process"]
    assert v["headline"].startswith("14 steps in ")
    pivot = next(r for r in rows(v) if len(r) > 2 and 'pivot_root(".", ".")' in r[2])
    assert pivot[1] == "step 11"
    # What pivot_root did: the host's mounts gone, the new root's moved to /.
    opened = view("steps", State(path=("step 11",)))
    gone = [r for r in rows(opened) if r[0] == "-"]
    moved = [r for r in rows(opened) if r[0] == "~"]
    assert {r[1] for r in gone} >= {"/", "/home", "$CELL"}
    assert ["/", "overlay"] == moved[0][1:3] and moved[0][-1] == "moved from $CELL/root"


def test_steps_vs_the_two_setups_part_at_the_root_switch() -> None:
    v = view("steps-vs")
    odd = [r for r in rows(v) if r[0] in "+-~" and r[0]]
    assert [(r[0], r[1]) for r in odd] == [("-", "pivot: step 11"), ("+", "step 12")]
    assert 'pivot_root(".", ".")' in odd[0][3] and 'chroot(".")' in odd[1][3]
    assert v["headline"].startswith("2 steps differ from cell pivot's")
