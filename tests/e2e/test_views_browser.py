"""The comparison views make their point at a glance, in a real JupyterLab and chromium.

Saved notebooks (no kernel runs in the page): the listing of `%root chroot` + `%show ls /`
at 1280 px with the file browser open, the default pivot `%show mounts` on a host with
stacked mounts, every view in JupyterLab Dark with its colours measured, and a notebook
whose image build showed a progress bar, executed with nbclient, saved and reopened.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from fixtures.payloads import make
from jupyter_e2e import (
    CONTRAST_JS,
    artifacts,
    dark_theme,
    lab_page,
    open_saved,
    saved_notebook,
    write_notebook,
)

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is missing (pip install playwright)")
expect = sync_api.expect

pytestmark = pytest.mark.timeout(300)


def chroot_listing() -> dict:
    """notebooks/04-chroot.ipynb's view as it was: `%root chroot` + the cell's / next to
    the host's (`%show ls / /`), from a real cell: many ~ rows and long notes."""
    import rootfs_kernel
    from rootfs_kernel.cell import Show

    res = rootfs_kernel.run("touch /etc/rk-new", root="chroot", show=[Show("ls", "/", "/")])
    assert res.ok, res.stderr
    return res.views[0]


def test_the_chroot_listing_at_1280px_shows_why_rows_differ(ready, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    payload = chroot_listing()
    saved_notebook(root / "listing.ipynb", [payload])
    with lab_page(root, tmp_path) as (server, page):
        open_saved(page, server, "listing.ipynb")
        # The file browser stays open, as a person has it.
        expect(page.locator("#jp-left-stack")).to_be_visible()
        view = page.locator(".rfk-compare").first
        view.wait_for(timeout=30_000)
        scroller = view.locator(".rfk-scroll")
        changed = view.locator('tr[data-status="differs"]')
        assert changed.count() > 0, "no ~ rows to look at"
        box = scroller.bounding_box()
        firsts = view.locator('tr[data-status="differs"]:not(.rfk-group-row):has(td.rfk-mark)')
        for i in range(firsts.count()):
            cells = firsts.nth(i).locator("td")
            for col in (3, 4, 6):   # type, mode, size (after mark, key, side)
                cell = cells.nth(col).bounding_box()
                assert cell["x"] + cell["width"] <= box["x"] + box["width"] + 1, (i, col)
        # A ~ directory row says why, in words, in its note.
        notes = view.locator('tr[data-status="differs"] td.rfk-row-note').all_inner_texts()
        assert any("inside" in n or "not opened" in n for n in notes), notes
        # The table's note wraps as text: the view is no wider than its output area.
        area = page.locator(".jp-OutputArea-output").first.bounding_box()
        assert view.bounding_box()["width"] <= area["width"] + 1
        page.screenshot(path=str(artifacts() / "views-listing-1280.png"))


def test_the_default_pivot_mount_table_fits_one_screen(ready, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    payload = make.build()["mounts-pivot-stacked-host"]["payload"]
    saved_notebook(root / "mounts.ipynb", [payload])
    with lab_page(root, tmp_path) as (server, page):
        open_saved(page, server, "mounts.ipynb")
        view = page.locator(".rfk-compare").first
        view.wait_for(timeout=30_000)
        headline = view.locator(".rfk-headline")
        expect(headline).to_contain_text("/ is an overlay of image minimal")
        headline.scroll_into_view_if_needed()
        view.evaluate("v => v.scrollIntoView({block: 'start'})")
        top = headline.bounding_box()["y"]
        last = view.locator("tr.rfk-row").last.bounding_box()
        page.screenshot(path=str(artifacts() / "views-mounts-pivot.png"), full_page=True)
        assert last["y"] + last["height"] - top <= 900 - 100, (top, last)
        # Every difference is on screen without scrolling the table itself.
        scroller = view.locator(".rfk-scroll")
        assert scroller.evaluate("s => s.scrollHeight <= s.clientHeight + 1")
        # The stacked host /dev/pts: its covered mount says so, not "removed".
        covered = view.locator('tr[data-status="only-host"]', has_text="/dev/pts")
        expect(covered.locator("td.rfk-row-note")).to_contain_text("covered")
        # Only the differing options are highlighted.
        cgroup = view.locator("tr.rfk-group-row", has_text="/sys/fs/cgroup")
        expect(cgroup).to_contain_text("10 mounts: blkio")
        expect(cgroup).to_contain_text("options ro (host: rw)")
        page.screenshot(path=str(artifacts() / "views-mounts-pivot.png"))


def test_every_view_reads_in_the_dark_theme(ready, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    built = make.build()
    payloads = [built[n]["payload"] for n in
                ("mounts-pivot-stacked-host", "listing-vs-image", "changes", "ns")]
    saved_notebook(root / "renderer.ipynb", payloads)
    saved_notebook(root / "static.ipynb", payloads, html_only=True)
    dark_theme(tmp_path)
    with lab_page(root, tmp_path, width=1400, height=1000) as (server, page):
        # (the renderer draws the static copy's markup, .rfk-static, with its controls)
        for name, selector in (("renderer.ipynb", ".rfk-compare"),
                               ("static.ipynb", ".rfk-static:not(.rfk-compare)")):
            open_saved(page, server, name)
            expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false")
            views = page.locator(selector)
            expect(views).to_have_count(4, timeout=30_000)
            for i in range(4):
                view = views.nth(i)
                view.scroll_into_view_if_needed()
                if name == "renderer.ipynb" and i == 0:
                    view.locator(".rfk-diff-toggle").click()   # the pressed state too
                low = [m for m in view.evaluate(CONTRAST_JS) if m["ratio"] < 4.5]
                assert not low, (name, i, low[:5])
            page.screenshot(path=str(artifacts() / f"views-dark-{name[:-6]}.png"))


def test_a_reopened_notebook_shows_the_image_progress_line(ready, tmp_path: Path) -> None:
    """The progress bar is replaced by its final line: the saved notebook holds text,
    never a widget whose model is gone ("Error displaying widget: model not found")."""
    from nbclient import NotebookClient

    root = tmp_path / "root"
    root.mkdir()
    path = root / "build.ipynb"
    write_notebook(path, ["%image pb --build busybox\ntrue"])
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "images"))
    old = os.environ.copy()
    os.environ.update(env)
    try:
        NotebookClient(nb, kernel_name="rootfs", timeout=120, startup_timeout=60).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["display_data"], outputs
    assert list(outputs[0].data) == ["text/plain"], outputs[0].data
    assert outputs[0].data["text/plain"].startswith("image pb ready: ")
    nbformat.write(nb, str(path))
    with lab_page(root, tmp_path) as (server, page):
        open_saved(page, server, "build.ipynb")
        out = page.locator(".jp-OutputArea-output").first
        expect(out).to_contain_text("image pb ready: ", timeout=30_000)
        assert page.get_by_text("model not found").count() == 0
        assert page.get_by_text("Error displaying widget").count() == 0
