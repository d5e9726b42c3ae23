"""Every view at the width a reader has (issue 23), measured in chromium: JupyterLab 4 at
1280 px with its file browser open (an 848 px output area) and at 900 px (466 px), in
Light and Dark, with the renderer (a saved notebook) and with the kernel's widget (a live
kernel, the renderer hidden); the static HTML in an 848 px and a 686 px column, as the
book draws it. Measured: no view scrolls sideways with its default columns; the note of
the first covered mount is in view without scrolling; the tree's first screen shows the
cell's namespace; the steps view names the container's directory once. Each run leaves
its screenshots in test-artifacts/ (scripts/screenshots.py makes the README's pictures
from the same views).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.payloads import make
from jupyter_e2e import (
    CONTRAST_JS,
    artifacts,
    dark_theme,
    lab_page,
    launch,
    open_notebook,
    open_saved,
    outputs,
    run_cell,
    saved_notebook,
    write_notebook,
)

from rootfs_kernel.views import view_bundle

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is missing (pip install playwright)")
expect = sync_api.expect

pytestmark = pytest.mark.timeout(420)

# Page width -> the output area JupyterLab gives a notebook (the file browser open).
AREAS = {1280: 848, 900: 466}
VS_CELLS = ["%label pivot\ntrue",
            "%root chroot\n%show steps vs pivot\n%show mounts vs pivot\ntrue"]


def real_views() -> list[dict]:
    """This machine's views of real cells: steps, layers, a listing, namespaces, changes,
    and pivot_root against chroot (`vs`)."""
    from rootfs_kernel.api.sandbox import Sandbox

    sandbox = Sandbox()
    try:
        res = sandbox.run("%show steps\n%show layers\n%show ls /etc\n%show ns\n%show changes\n"
                          "mkdir -p /etc/app/conf.d; echo 'port = 8080' > /etc/app/app.conf\n"
                          "rm /etc/hostname")
        assert res.ok, res.stderr
        views = list(res.views)
        sandbox.run(VS_CELLS[0], check=True)
        vs = sandbox.run(VS_CELLS[1], check=True)
        return views + list(vs.views)
    finally:
        sandbox.close()


@pytest.fixture(scope="module")
def views(ready, graphviz) -> list[dict]:
    """Every kind of view: the recorded default mount table (covered mounts on any host),
    the recorded tree, and this machine's real cells."""
    limits = json.loads((make.HERE.parent / "limits" / "limits.json").read_text())
    return [make.build()["mounts-pivot-stacked-host"]["payload"], make.recorded_tree(),
            limits["v2-memory-hog"]["payload"], *real_views()]


# --- what is measured, whichever rendering draws the view ---------------------------------

MEASURE_JS = """
v => {
  const box = v.getBoundingClientRect();
  const scrolls = [...v.querySelectorAll('.rfk-scroll')].filter(s => s.offsetParent)
    .map(s => [s.scrollWidth, s.clientWidth]);
  // (and nothing in the view sticks out past its edge)
  scrolls.push([v.scrollWidth, v.clientWidth]);
  return {width: Math.round(box.width), scrolls};
}
"""

# The first covered mount's note, wherever the width put it (its column or its own line),
# and the box of the table it is in.
NOTE_JS = """
v => {
  const visible = e => e && e.offsetParent && getComputedStyle(e).display !== 'none';
  const notes = [...v.querySelectorAll('td.rfk-row-note, tr.rfk-noteline td')]
    .filter(td => visible(td) && td.textContent.includes('covered by the mount above it'));
  if (!notes.length) return null;
  const note = notes[0], scroll = note.closest('.rfk-scroll');
  const r = note.getBoundingClientRect(), s = scroll.getBoundingClientRect();
  return {note: [r.left, r.right, r.top, r.bottom], box: [s.left, s.left + scroll.clientWidth,
          s.top, s.top + scroll.clientHeight], text: note.textContent};
}
"""

# The picture's box and its two namespaces' clusters (Graphviz titles them cluster_SIDE).
TREE_JS = """
v => {
  const box = v.querySelector('.rfk-picture');
  const b = box.getBoundingClientRect();
  const out = {box: [b.left, b.left + box.clientWidth, b.top, b.top + box.clientHeight],
               scroll: [box.scrollWidth, box.clientWidth]};
  for (const g of box.querySelectorAll('g.cluster')) {
    const r = g.getBoundingClientRect();
    out[g.querySelector('title').textContent] = [r.left, r.right, r.top, r.bottom];
  }
  return out;
}
"""


def check_view(view, label: str, area: int) -> dict:  # noqa: ANN001 - a Playwright locator
    """No view wider than its output area, no table that scrolls sideways."""
    view.scroll_into_view_if_needed()
    m = view.evaluate(MEASURE_JS)
    assert m["width"] <= area + 2, (label, m)
    wide = [s for s in m["scrolls"] if s[0] > s[1] + 1]
    assert not wide, (label, m)
    return m


def check_note(view, label: str) -> None:  # noqa: ANN001
    """The first covered mount says so, in view in its table: no scrolling needed."""
    found = view.evaluate(NOTE_JS)
    assert found is not None, f"{label}: no note of a covered mount is shown"
    (left, right, top, bottom), (b_left, b_right, b_top, b_bottom) = found["note"], found["box"]
    assert b_left - 1 <= left and right <= b_right + 1, (label, found)
    assert b_top - 1 <= top and bottom <= b_bottom + 1, (label, found)


def check_tree(view, label: str) -> None:  # noqa: ANN001
    """The picture fits the width and its first screen is the cell's namespace."""
    t = view.evaluate(TREE_JS)
    (left, right, top, bottom) = t["box"]
    cell, host = t["cluster_cell"], t["cluster_host"]
    assert t["scroll"][0] <= t["scroll"][1] + 1, (label, t)
    assert left - 1 <= cell[0] and cell[1] <= right + 1, (label, t)
    assert top - 1 <= cell[2] < min(bottom, top + 300), (label, t)   # on the first screen
    assert cell[3] <= host[2] + 1, (label, t)                        # and above the host's


def check_steps(view, label: str, where: str) -> None:  # noqa: ANN001
    """The container's directory is named once, in the heading; the rows say $CELL."""
    text = view.evaluate("v => v.textContent")
    assert text.count(where) == 1, (label, text.count(where))
    assert f"$CELL = {where}" in view.evaluate("v => v.innerText").replace("\u200b", "")
    assert text.count("$CELL/root") >= 5, label


def zoom_and_pan(page, view, label: str) -> None:  # noqa: ANN001
    """The renderer's picture at its own size scrolls; a drag pans it; fit comes back."""
    box = view.locator(".rfk-picture")
    view.locator("button.rfk-zoom", has_text="100%").click()
    expect(view.locator(".rfk-zoom-scale")).to_have_text("100%")
    assert box.evaluate("b => b.scrollWidth > b.clientWidth + 50"), label
    r = box.bounding_box()
    page.mouse.move(r["x"] + r["width"] / 2, r["y"] + 40)
    page.mouse.down()
    page.mouse.move(r["x"] + r["width"] / 2 - 150, r["y"] + 40, steps=5)
    page.mouse.up()
    assert box.evaluate("b => b.scrollLeft") > 100, label
    view.locator("button.rfk-zoom", has_text="fit width").click()
    assert box.evaluate("b => b.scrollWidth <= b.clientWidth + 1"), label


def check_payloads_view(view, payload: dict, label: str, area: int, first: bool) -> None:  # noqa: ANN001
    """What every rendering of a saved view is measured for: its width, and where the
    view has them, the covered mount's note, the tree's first screen, the steps' $CELL."""
    check_view(view, label, area)
    if first:   # the recorded default cell: covered mounts on any host
        check_note(view, label)
    if payload["kind"] == "tree":
        check_tree(view, label)
    if payload["kind"] == "steps":
        check_steps(view, label, payload["names"]["$CELL"])


# --- the renderer, in JupyterLab ------------------------------------------------------------


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("width", [1280, 900])
def test_the_renderer_fits_the_output_area(views, tmp_path: Path, width: int,
                                           theme: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    saved_notebook(root / "views.ipynb", views)
    if theme == "dark":
        dark_theme(tmp_path)
    area = AREAS[width]
    with lab_page(root, tmp_path, width=width, height=900) as (server, page):
        open_saved(page, server, "views.ipynb")
        expect(page.locator("#jp-left-stack")).to_be_visible()   # the file browser is open
        rendered = page.locator(".jp-OutputArea-output .rfk-compare")
        expect(rendered).to_have_count(len(views), timeout=60_000)
        out_area = page.locator(".jp-OutputArea-output").first.bounding_box()["width"]
        assert abs(out_area - area) <= 4, out_area
        expect(page.locator("body")).to_have_attribute(
            "data-jp-theme-light", "false" if theme == "dark" else "true")
        for i, payload in enumerate(views):
            view = rendered.nth(i)
            kind = payload["kind"]
            label = f"renderer {theme} {width} #{i} {kind}"
            check_payloads_view(view, payload, label, area, i == 0)
            low = [c for c in view.evaluate(CONTRAST_JS) if c["ratio"] < 4.5]
            assert not low, (label, low[:5])
            if kind == "tree":
                zoom_and_pan(page, view, label)
            view.screenshot(path=str(artifacts() / f"width-renderer-{theme}-{width}-{i}-"
                                                    f"{kind}.png"))


# --- the kernel's widget, in JupyterLab with a live kernel ---------------------------------


@pytest.mark.parametrize("width", [1280, 900])
def test_the_widget_fits_the_output_area(ready, graphviz, tmp_path: Path,
                                        width: int) -> None:
    root = tmp_path / "root"
    root.mkdir()
    cells = ["%show mounts\ntrue", "%show steps\ntrue", "%show tree\ntrue",
             "%show layers\nrm /etc/hostname; echo hi > /etc/motd",
             "%show ls /etc\nmkdir /etc/app; echo x > /etc/app/a.conf", "%show limits\ntrue",
             *VS_CELLS]
    write_notebook(root / "live.ipynb", cells)
    area = AREAS[width]
    with lab_page(root, tmp_path, renderer=False, width=width, height=900) as (server, page):
        open_notebook(page, server, "live.ipynb")
        expect(page.locator("#jp-left-stack")).to_be_visible()
        for i, code in enumerate(cells):
            cell = run_cell(page, i)
            if "%show" not in code:   # (the cell that only labels itself)
                continue
            widgets = outputs(cell).locator(".widget-vbox:not(.widget-vbox .widget-vbox)")
            widgets.first.wait_for(timeout=30_000)
            for j in range(widgets.count()):
                view = widgets.nth(j)
                label = f"widget {width} cell {i}.{j}"
                check_view(view, label, area)
                # The heading first, then the controls (the tree's: its picker), one line
                # (%show limits has neither: a title over its bars).
                if view.locator(".rfk-heading").count():
                    heading = view.locator(".rfk-heading").first.bounding_box()
                    controls = view.locator(":scope > *").nth(1).bounding_box()
                    assert heading["y"] < controls["y"], label
                    assert controls["height"] < 40, (label, controls)
                view.screenshot(path=str(artifacts() / f"width-widget-{width}-{i}-{j}.png"))
            if i == 0:
                view = widgets.first
                # This host may have no stacked mount; where it has one, its note shows.
                if view.evaluate(NOTE_JS) is not None:
                    check_note(view, "widget mounts")
            elif i == 1:
                names = widgets.first.locator(".rfk-names").inner_text()
                check_steps(widgets.first, "widget steps", names.split(" = ", 1)[1].strip())
            elif i == 2:
                check_tree(widgets.first, "widget tree")


# --- the static HTML, as the book draws it ------------------------------------------------

BOOK_PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; font: 16px/1.6 sans-serif; background: #fff; color: #222; }}
article {{ width: {width}px; margin: 0 auto; }}
div.cell_output {{ margin: 1em 0; }}
</style></head><body><article>{outputs}</article></body></html>"""


@pytest.mark.parametrize("width", [848, 686])
def test_the_static_html_fits_a_book_column(views, tmp_path: Path, width: int) -> None:
    """The notebook's saved text/html in a column of the book's width (Jupyter Book puts
    each output in a div.cell_output of its article column)."""
    from playwright.sync_api import sync_playwright

    blocks = [view_bundle(p, widget=False)[0]["text/html"] for p in views]
    page_html = BOOK_PAGE.format(width=width, outputs="".join(
        f'<div class="cell_output"><div class="output text_html">{b}</div></div>'
        for b in blocks))
    path = tmp_path / "book.html"
    path.write_text(page_html)
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": width + 200, "height": 900})
            page.goto(path.as_uri())
            statics = page.locator("div.output > .rfk-static")
            expect(statics).to_have_count(len(views))
            for i, payload in enumerate(views):
                view = statics.nth(i)
                kind = payload["kind"]
                check_payloads_view(view, payload, f"static {width} #{i} {kind}", width, i == 0)
                view.screenshot(path=str(artifacts() / f"width-static-{width}-{i}-{kind}.png"))
            # More columns (a checkbox the stylesheet reads): where the table then
            # scrolls, a shadow on its edge says so.
            mounts = statics.first
            mounts.locator(".rfk-more-switch").check()
            expect(mounts.locator("th", has_text="super options")).to_be_visible()
            scroll = mounts.locator(".rfk-scroll")
            if scroll.evaluate("s => s.scrollWidth > s.clientWidth + 1"):
                shadow = scroll.evaluate("s => getComputedStyle(s).boxShadow")
                assert "-10px 0px 8px -8px" in shadow, shadow
        finally:
            browser.close()
