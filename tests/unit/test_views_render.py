"""Payloads, text and HTML renderings, widget behaviour and the display bundle."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import ipywidgets
import pytest
from fixtures import samples
from fixtures.samples import synthetic_mountinfo
from test_views_golden import validate

from rootfs_kernel.inspect.listing import diff_listings, snapshot
from rootfs_kernel.inspect.mounts import diff_mounts, parse_mountinfo
from rootfs_kernel.inspect.ns import diff_ns
from rootfs_kernel.views import (
    MIME_TYPE,
    WIDGET_MIME_TYPE,
    changes_payload,
    listing_payload,
    mounts_payload,
    ns_payload,
    render_html,
    render_text,
    view_bundle,
)
from rootfs_kernel.views.html import MAX_STATIC_LINES, stylesheet
from rootfs_kernel.views.model import segments
from rootfs_kernel.views.payload import level, side_values
from rootfs_kernel.views.widget import build_widget


@pytest.fixture
def mounts() -> dict:
    return samples.mounts()


@pytest.fixture
def listing(tmp_path: Path) -> dict:
    return samples.listing(tmp_path)


def test_payload_rows_store_what_differs(mounts: dict) -> None:
    json.dumps(mounts)
    validate(mounts)
    assert mounts["version"] == 2 and mounts["kind"] == "mounts"
    assert [c["name"] for c in mounts["columns"]] == [
        "fstype", "source", "options", "super_options", "propagation", "root"]
    rows = {r["key"]: r for r in mounts["rows"]}
    assert rows["/tmp"]["status"] == "only-cell" and "host" not in rows["/tmp"]
    assert rows["/tmp"]["cell"]["fstype"] == "tmpfs"
    assert rows["/boot/efi"]["status"] == "only-host" and "cell" not in rows["/boot/efi"]
    proc = rows["/proc"]
    assert proc["status"] == "differs" and proc["cell"]["options"] == "rw,nosuid,relatime"
    assert proc["differs"] == ["options"]
    same = rows["/sys"]
    assert same["status"] == "same" and "host" not in same and "differs" not in same
    assert side_values(same, "host") == same["cell"]
    s = mounts["summary"]
    assert s["total"] == len(mounts["rows"]) == sum(s[k] for k in
                                                   ("same", "only-cell", "only-host", "differs"))


def test_only_the_differing_options_are_highlighted(mounts: dict) -> None:
    proc = next(r for r in mounts["rows"] if r["key"] == "/proc")
    options = next(c for c in mounts["columns"] if c["name"] == "options")
    parts = segments(proc, options, "cell")
    assert [t for t, hl in parts if hl] == ["nosuid"]
    assert "".join(t for t, _ in parts) == "rw,nosuid,relatime"
    assert segments(proc, options, "host") == [["rw", False], [",", False],
                                               ["relatime", False]]
    html = render_html(mounts, expanded=True)
    assert ">nosuid</span>" in html and ">rw,<wbr>" in html


def test_listing_payload_nests_children(listing: dict) -> None:
    validate(listing)
    [etc] = listing["rows"]
    assert etc["key"] == "etc" and etc["status"] == "differs" and etc["contents_differ"]
    assert etc["note"] == "inside: 1 only in cell, 1 only on host, 2 differs"
    rows = {r["key"]: r for r in level(listing, ["etc"])["rows"]}
    assert rows["added"]["status"] == "only-cell" and rows["gone"]["status"] == "only-host"
    assert rows["hosts"]["differs"] == ["mode"]
    ssl = {r["key"]: r for r in level(listing, ["etc", "ssl"])["rows"]}
    assert ssl["extra.pem"]["status"] == "only-cell" and ssl["cert.pem"]["status"] == "same"
    with pytest.raises(KeyError):
        level(listing, ["etc", "hosts"])


def test_a_listing_keeps_a_budget_of_rows_and_says_so(tmp_path: Path) -> None:
    for side in ("cell", "host"):
        for d in range(5):
            (tmp_path / side / f"d{d}").mkdir(parents=True)
            for f in range(20):
                (tmp_path / side / f"d{d}" / f"f{f}").write_text(side)
    p = listing_payload(diff_listings(snapshot(str(tmp_path / "cell")),
                                      snapshot(str(tmp_path / "host"))), budget=50)
    validate(p)
    kept = [r for r in p["rows"] if "children" in r]
    assert len(kept) == 2 and p["truncated"]          # 5 + 2 x 20 rows <= 50
    assert "(first 50 rows)" in p["title"] and "60 deeper rows" in p["note"]
    dropped = [r for r in p["rows"] if "children" not in r]
    assert all("budget of 50 rows" in r["note"] for r in dropped)


def test_changes_and_ns_payloads() -> None:
    scan = {"changes": [{"path": "/etc/a", "kind": "A", "type": "file", "size": 3,
                         "opaque": False},
                        {"path": "/etc/b", "kind": "D", "type": None, "size": None,
                         "opaque": False},
                        {"path": "/var", "kind": "C", "type": "dir", "size": 4096,
                         "opaque": True}],
            "counts": {"A": 1, "C": 1, "D": 1}, "truncated": False, "note": None}
    p = changes_payload(scan)
    validate(p)
    assert [s["name"] for s in p["sides"]] == ["cell"]
    assert [r["status"] for r in p["rows"]] == ["only-cell", "only-host", "differs"]
    text = render_text(p)
    assert "1 added, 1 changed, 1 deleted" in text and "opaque" in text
    assert "side" not in text.splitlines()[1]
    n = ns_payload(diff_ns({"mnt": "mnt:[2]", "pid": "pid:[1]"},
                           {"mnt": "mnt:[1]", "pid": "pid:[1]"}))
    assert [(r["key"], r["status"]) for r in n["rows"]] == [("mnt", "differs"), ("pid", "same")]
    validate(n)


def test_text_columns_align(mounts: dict) -> None:
    text = render_text(mounts, expanded=True)
    lines = text.splitlines()
    assert lines[1] == mounts["headline"]
    header = lines[2]
    table = [ln for ln in lines[3:] if ln[:1] in "+-~ " and not ln.startswith("legend")]
    # Every column starts at the offset of its header label.
    for label in ("mount point", "side", "fs type", "source", "propagation"):
        col = header.index(label)
        for ln in table:
            if len(ln) > col:
                assert ln[col - 2:col] == "  ", (label, ln)
    assert any(ln.startswith("+  /tmp ") for ln in table)
    proc = next(i for i, ln in enumerate(table) if ln.startswith("~  /proc "))
    assert [ln.split()[-7] for ln in table[proc:proc + 2]] == ["cell", "host"]
    assert any(ln.startswith("-  /boot/efi ") for ln in table)
    assert lines[-1].startswith("legend: + only in cell")


def test_html_is_self_contained_and_escaped(mounts: dict) -> None:
    evil = mounts_payload(diff_mounts(
        parse_mountinfo(r"1 0 0:1 / /<script>alert(1)</script> rw - tmpfs a&b rw"), []))
    html = render_html(evil)
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html and "a&amp;b" in html
    full = render_html(mounts)
    assert full.startswith('<div class="rfk-static"') and full.endswith("</div>")
    assert "<script" not in full.lower() and "<link" not in full
    s = mounts["summary"]
    assert f"{s['only-cell']} only in cell" in full and f"{s['differs']} differs" in full
    # One stylesheet, once; the markup is styled by class (no style on any row or cell).
    assert full.count("<style>") == 1 and full.startswith('<div class="rfk-static"><style>')
    assert " style=" not in full
    sheet = stylesheet()
    # JupyterLab's theme colours, with light fallbacks for nbconvert; left-aligned cells.
    for var in ("--jp-content-font-color1", "--jp-layout-color0", "--jp-success-color1",
                "--jp-error-color1", "--jp-warn-color1"):
        assert var in sheet, var
    assert "#1f2328" in sheet and "text-align:left" in sheet
    assert "position:sticky" in sheet and "max-height" in sheet and "@container" in sheet


def keys(html: str) -> list[str]:
    return [k.replace("<wbr>", "") for k in
            re.findall(r'<td class="rfk-key"[^>]*>((?:[^<]|<wbr>)*)<', html)]


def test_html_filter_and_differences_only(mounts: dict) -> None:
    full = render_html(mounts, expanded=True)
    only_diff = render_html(mounts, differences_only=True, expanded=True)
    assert 'data-status="same"' in full and 'data-status="same"' not in only_diff
    assert keys(render_html(mounts, query="/TMP")) == ["/tmp"]
    assert "no matching rows" in render_html(mounts, query="nothing-matches-this")
    # The side column's words match too.
    assert "/boot/efi" in keys(render_html(mounts, query="host"))
    assert "/boot/efi" not in keys(render_html(mounts, query="cell"))


def test_widget_controls_change_the_table(mounts: dict) -> None:
    w = build_widget(mounts)
    assert isinstance(w, ipywidgets.VBox)
    w.all_toggle.value = True   # the whole table, as "show all N rows" gives it
    before = w.table.value
    w.filter_box.value = "cgroup"
    filtered = w.table.value.replace("<wbr>", "")
    assert filtered != before and "/sys/fs/cgroup" in filtered and "/dev/pts" not in filtered
    w.filter_box.value = ""
    w.diff_toggle.value = True
    assert 'data-status="same"' not in w.table.value and w.table.value != before
    w.diff_toggle.value = False
    assert w.table.value == before  # a pure function of payload + state
    w.all_toggle.value = False
    assert 'data-status="same"' not in w.table.value  # collapsed to the differences
    assert w.all_toggle.description == f"show all {len(mounts['rows'])} rows"
    # More columns: the same table, shown with the columns the stylesheet hides until then.
    assert w.more_toggle.tooltip == "super options, root"
    assert '<div class="rfk-static">' in w.table.value and '<th class="rfk-more">' in before
    w.more_toggle.value = True
    assert w.table.value.startswith('<div class="rfk-static rfk-more-on">')


def test_the_changes_widget_has_no_differences_toggle() -> None:
    p = changes_payload({"changes": [{"path": "/a", "kind": "A", "type": "file", "size": 1}],
                         "truncated": False, "note": None})
    controls = build_widget(p).controls.children
    # (nor "show all rows" while nothing is folded: it is made when a table first is)
    assert [c.description for c in controls[1:]] == []


def test_widget_opens_subdirectories(listing: dict) -> None:
    w = build_widget(listing)
    assert [v for _, v in w.subdir.options] == ["", "etc"]
    w.subdir.value = "etc"
    assert w.path == ["etc"] and "added" in w.table.value and "cert.pem" not in w.table.value
    assert [v for _, v in w.subdir.options] == ["", "ssl"]
    w.subdir.value = "ssl"
    assert "extra.pem" in w.table.value
    assert [b.description for b in w.crumb_buttons][1:] == ["etc/", "ssl/"]
    w.crumb_buttons[0].click()  # back to the top
    assert w.path == [] and "etc/" in w.table.value and "added" not in w.table.value


def test_views_share_layouts_and_styles_and_close_only_their_own(mounts: dict,
                                                                 listing: dict) -> None:
    """Each model is a message to the front-end with every %show cell: the views' layouts
    and styles, which none of them changes, are made once and outlive the views."""
    a, b = build_widget(mounts), build_widget(listing)
    assert a.layout is b.layout and a.filter_box.style is b.filter_box.style
    assert a.filter_box.layout is b.filter_box.layout
    assert a.subdir is None and b.subdir.layout is a.diff_toggle.layout  # (listings only)
    own = [a, a.heading, a.filter_box, a.diff_toggle, a.more_toggle, a.all_toggle, a.table,
           a.controls]
    a.close_all()
    assert all(x.comm is None for x in own)
    assert b.layout.comm is not None and b.filter_box.style.comm is not None
    b.layout.close()   # a shared part that was closed is made again for the next view
    c = build_widget(listing)
    assert c.layout is not b.layout and c.layout.comm is not None
    for x in (b, c):
        x.close_all()


def test_view_bundle(mounts: dict) -> None:
    data, metadata = view_bundle(mounts)
    assert set(data) == {"text/plain", "text/html", MIME_TYPE, WIDGET_MIME_TYPE}
    model_id = data[WIDGET_MIME_TYPE]["model_id"]
    assert data[WIDGET_MIME_TYPE] == {"model_id": model_id, "version_major": 2,
                                      "version_minor": 0}
    # The model stays registered (alive) so the front-end can fetch its state.
    assert isinstance(ipywidgets.widgets.widget._instances[model_id], ipywidgets.VBox)
    assert data[MIME_TYPE] is mounts and metadata == {}
    json.dumps(data)
    no_widget, _ = view_bundle(mounts, widget=False)
    assert WIDGET_MIME_TYPE not in no_widget


def test_5000_mounts_end_to_end_budget() -> None:
    cell_text, host_text = synthetic_mountinfo(5000, fs="xfs"), synthetic_mountinfo(5000, fs="ext4")
    t0 = time.perf_counter()
    payload = mounts_payload(diff_mounts(parse_mountinfo(cell_text), parse_mountinfo(host_text)))
    t1 = time.perf_counter()
    html = render_html(payload)
    t2 = time.perf_counter()
    data, _ = view_bundle(payload)
    t3 = time.perf_counter()
    print(f"\n5000 mounts: parse+diff+payload {1000 * (t1 - t0):.0f} ms, "
          f"html {1000 * (t2 - t1):.0f} ms, full bundle with widget {1000 * (t3 - t2):.0f} ms, "
          f"total {1000 * (t3 - t0):.0f} ms")
    assert payload["summary"]["total"] == 5000
    assert f"the first {MAX_STATIC_LINES} of " in html and html.count("<tr") > MAX_STATIC_LINES
    assert t3 - t0 < 3
