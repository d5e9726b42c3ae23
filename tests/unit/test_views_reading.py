"""What the views say first (issue 23): the columns a reader needs, the notes where they
fit, %show steps as a story, %show layers as dive shows them, the tree on the cell's
namespace. The widths themselves are measured in chromium (tests/e2e/test_views_width.py);
these are the model and the markup the renderers share."""

from __future__ import annotations

import json
import re

import pytest
from fixtures.payloads import make

from rootfs_kernel.inspect import mounttree
from rootfs_kernel.inspect.mounts import parse_mountinfo
from rootfs_kernel.views import render_html, render_text, view_bundle
from rootfs_kernel.views.html import pieces, stylesheet
from rootfs_kernel.views.model import State, draw, initial_state
from rootfs_kernel.views.tree import dot_program, fit_width, mount_details, tree_payload


@pytest.fixture(scope="module")
def built() -> dict:
    return {name: case["payload"] for name, case in make.build().items()}


def plain(html: str) -> str:
    """The text of markup (the break opportunities and tags gone)."""
    return re.sub(r"<[^>]+>", "", html.replace("<wbr>", ""))


# --- columns and notes ------------------------------------------------------------------------


def test_the_columns_a_reader_needs_first_and_the_rest_behind_a_switch(built) -> None:
    p = built["mounts-pivot-stacked-host"]
    first = draw(p)
    assert [c["name"] for c in first["columns"]] == ["fstype", "source", "options",
                                                     "propagation"]
    assert first["more"] == ["super options", "root"]
    more = draw(p, State(more_columns=True))
    assert [c["name"] for c in more["columns"]][-2:] == ["super_options", "root"]
    # The static copy draws every column; the stylesheet shows the "more" ones when its
    # switch (a checkbox, no script) is on.
    html = render_html(p)
    assert '<input type="checkbox" class="rfk-more-switch"> more columns: super options, root' \
        in html
    assert html.count('<th class="rfk-more">') == 2
    assert ".rfk-static .rfk-more{display:none}" in stylesheet()
    assert ":has(.rfk-more-switch:checked) .rfk-more{display:table-cell}" in stylesheet()


def test_a_note_is_also_a_line_under_its_row_for_where_its_column_would_not_fit(built):
    html = render_html(built["mounts-pivot-stacked-host"], expanded=True)
    rows = html.split("<tr")
    covered = [i for i, r in enumerate(rows) if "rfk-row-note" in r and "covered by" in r
               and 'data-status="only-host"' in r]
    assert covered
    for i in covered:   # the next row is the same note, as a line of its own
        assert rows[i + 1].startswith(' class="rfk-noteline rfk-only-host"')
        assert "covered by the mount above it" in plain(rows[i + 1])
    sheet = stylesheet()   # (the column where the output area is wide, else the line)
    assert "@container (max-width:900px){.rfk-static .rfk-table{--rfk-pad:4px}" in sheet
    assert ".rfk-static .rfk-row-note{display:none}.rfk-static .rfk-noteline{display:table-row}" \
        in sheet


def test_long_values_break_after_slashes_and_dashes(built):
    html = render_html(built["steps"])
    assert "$CELL/<wbr>root" in html and "MS_REC|<wbr>MS_PRIVATE" in html
    assert "rootfs-<wbr>kernel" in html
    # A digest breaks too (every 10 characters), a word does not; the renderer cuts
    # alike (tests/fixtures/pieces.json, extension/test/golden.test.ts).
    digest = "f55abc145b8ba253176dafe6436fc2319df1add7378317a1c4652f4fbc299358"
    assert max(len(p) for p in pieces(digest)) <= 14 and pieces("relatime") == ["relatime"]
    assert json.loads(make.PIECES.read_text()) == make.build_pieces()


# --- %show steps as a story -------------------------------------------------------------------


def test_steps_name_the_containers_directory_once(built):
    p = built["steps"]
    assert p["names"] == {"$CELL": make.STEPS_ROOT}
    html, text = render_html(p), render_text(p)
    assert plain(html).count(make.STEPS_ROOT) == 1, plain(html).count(make.STEPS_ROOT)
    assert text.count(make.STEPS_ROOT) == 1
    assert f"$CELL = {make.STEPS_ROOT}" in plain(html)
    assert plain(html).count("$CELL/root") > 5


def test_steps_come_in_sections_by_process_and_the_legend_counts_steps(built):
    p = built["steps"]
    view = draw(p)
    sections = [ln["text"] for ln in view["lines"] if ln["kind"] == "section"]
    assert [s.split(":")[0] for s in sections] == [
        "the init, still on the host", "the cell's PID 1, in its new namespaces",
        "the script's process"]
    assert sections[0].startswith("the init, still on the host: 1 step, 0.20 ms")
    assert sections[-1].endswith(", then the script")
    assert view["summary"] == "14 steps" and view["legend"] == ""
    assert not view["marks"]   # no column of blank marks
    # A filter keeps the heading of the section a matching step is in.
    found = draw(p, State(query="umount2"))["lines"]
    assert [ln["kind"] for ln in found] == ["section", "row"]


def test_each_steps_time_is_a_bar_on_the_setups_timeline(built):
    p = built["steps"]
    bars = {r["key"]: r.get("bar") for r in p["rows"]}
    assert bars["step 14"] is None                     # the exec lasts as long as the script
    setup = [b for k, b in bars.items() if b is not None]
    assert len(setup) == 13 and all(0 <= a and a + w <= 1000 and w >= 1 for a, w in setup)
    starts = [a for a, _ in setup]
    assert starts == sorted(starts)
    took = {r["key"]: float(r["cell"]["took"].split()[0]) for r in p["rows"][:-1]}
    slowest = max(took, key=took.get)
    assert bars[slowest][1] == max(w for _, w in setup)
    assert '<span class="rfk-bar"><i style="left:' in render_html(p)


def test_an_opened_step_repeats_its_call_and_its_note(built):
    p = built["steps"]
    view = draw(p, State(path=("step 11",)))
    assert view["title"].endswith(": step 11")
    fields = dict(view["detail"]["fields"])
    assert 'pivot_root(".", ".")' in fields["system calls"] and fields["took"] == "0.280 ms"
    assert view["detail"]["note"].startswith("the new root's")
    assert view["summary"] == "0 added, 3 changed, 7 removed"
    assert view["legend"].startswith("legend: + added")


# --- %show layers as dive shows them ----------------------------------------------------------


def test_layers_open_on_the_cells_own_layer_beside_the_stack(built):
    p = built["layers"]
    assert initial_state(p).path == ("cell",)
    view = draw(p, initial_state(p))
    # The summary is the selected layer's, not the sum of all of them.
    assert view["summary"] == "1 added, 1 changed, 1 removed"
    assert draw(p)["summary"] == "5 layers"
    choices = {c["key"]: c for c in view["choices"]}
    assert [k for k, c in choices.items() if c["current"]] == ["cell"]
    assert choices["layer 1"]["lines"] == ["+30 ~0 -0 · 120.6 KiB · abababababab",
                                          "host programs (minimal) · lowerdir 3/3"]
    # Its entries as a file tree: names under their directory, with sizes.
    rows = [(ln["depth"], ln["key"], ln["values"][0][0][0]) for ln in view["lines"]]
    assert rows == [(0, "/etc/", ""), (1, "hostname", ""), (1, "new", "3 B")]
    html = render_html(p)
    assert '<li class="rfk-current"><span class="rfk-choice-key">cell</span>' in html
    assert "padding-left:calc(var(--rfk-pad) + 2ch)" in html


# --- the tree ---------------------------------------------------------------------------------


def _tables() -> tuple[list, list]:
    return (parse_mountinfo((make.MOUNTINFO / "pivot_cell.txt").read_text()),
            parse_mountinfo((make.MOUNTINFO / "stacked_host.txt").read_text()))


def test_runs_of_alike_sibling_mounts_are_one_node_as_the_tables_fold_them():
    cell, host = _tables()
    graph = mounttree.build(cell, host)
    folds = {(f["side"], f["label"]): f for f in graph["folds"]}
    cgroups = folds[("host", "/sys/fs/cgroup/*")]
    assert len(cgroups["members"]) == 9 and cgroups["text"].startswith("9 mounts: blkio, cpu")
    assert cgroups["text"].endswith("— cgroup rw,relatime")
    # No end of a propagation link is folded away.
    ends = {e for link in graph["links"] for e in (link["from"], link["to"])}
    assert not ends & {m for f in graph["folds"] for m in f["members"]}
    p = tree_payload(cell, host, draw=False)
    assert mount_details(p, cgroups["id"]) == f"host /sys/fs/cgroup/*: {cgroups['text']}"


@pytest.mark.skipif(dot_program() is None, reason="Graphviz is not installed")
def test_the_picture_opens_on_the_cells_tree_and_fits_the_width():
    cell, host = _tables()
    svg = tree_payload(cell, host)["svg"]
    tops = {m.group(2): float(m.group(1)) for m in re.finditer(
        r'<text[^>]*y="([-\d.]+)"[^>]*>(cell|host) mount namespace</text>', svg)}
    assert tops["cell"] < tops["host"], tops            # the cell's cluster is drawn first
    assert svg.count('class="node rfk-mount rfk-fold"') == 4
    fitted, width = fit_width(svg)
    assert re.search(r'<svg width="100%"\s+viewBox=', fitted) and width.endswith("px")
    html = view_bundle(tree_payload(cell, host), widget=False)[0]["text/html"]
    assert 'type="radio"' in html and "fit width" in html and "--rfk-w:" in html


def test_vs_trees_draw_no_propagation_between_two_moments():
    cell, host = _tables()
    p = tree_payload(host, host, draw=False, other="before")
    assert [s["label"] for s in p["sides"]] == ["this cell", "before"]
    assert all(link["from"].split(":")[0] == link["to"].split(":")[0]
               for link in p["links"] if link["kind"] == "peer")


# --- small items ------------------------------------------------------------------------------


def test_ns_has_a_headline(built):
    assert built["ns"]["headline"] == ("the cell's own mnt, pid, user namespaces; the host's "
                                       "uts, ipc, net, cgroup")


def test_the_static_copy_is_small_styled_by_class_from_one_sheet(built):
    p = built["mounts-pivot-stacked-host"]
    html = render_html(p)
    assert html.count("<style>") == 1 and ' style="' not in html
    # A row costs its text and a few class names (the sheet once per view).
    body = html.replace(stylesheet("mounts"), "")
    assert len(body) < len(html) - 4000
    assert len(body) < 14_000, len(body)
