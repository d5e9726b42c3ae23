"""`%show steps` and `display` in a real JupyterLab and chromium: the kernel's widget from
a live kernel (open the pivot_root step, step to the next and back), the renderer on a
saved notebook without a kernel in JupyterLab Light and Dark (colours measured), and what
`display` sends, shown without running anything the cell put in it."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from jupyter_e2e import (
    CONTRAST_JS,
    artifacts,
    dark_theme,
    lab_page,
    open_notebook,
    open_saved,
    outputs,
    run_cell,
    saved_notebook,
    shoot,
    write_notebook,
)

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is missing (pip install playwright)")
expect = sync_api.expect

pytestmark = pytest.mark.timeout(300)
STEPS_CELL = "%show steps\ntrue"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
                       "DwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
DISPLAY_CELL = "\n".join([
    "printf '" + "".join(f"\\{b:03o}" for b in PNG) + "' > /tmp/dot.png",
    "display /tmp/dot.png",
    "printf '<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"30\" height=\"10\">"
    "<rect width=\"30\" height=\"10\" fill=\"#0969da\"/></svg>' > /tmp/bar.svg",
    "display /tmp/bar.svg",
    "echo '<h2 id=\"made\">made in a cell</h2><script>window.parent.rfkPwned = 1</script>' "
    "> /tmp/r.html",
    "display /tmp/r.html",
    "printf '# Markdown from a cell\\n\\n<img src=x onerror=\"window.rfkMd = 1\"> ok\\n' "
    "> /tmp/r.md",
    "display /tmp/r.md",
])


def _pivot_key(table) -> str:  # noqa: ANN001 - a Playwright locator
    """The key of the pivot_root step, as the table shows it ("step 42")."""
    row = table.locator("tr", has_text='pivot_root(".", ".")').first
    return row.locator("td.rfk-key").inner_text().strip()


def test_the_widget_opens_a_step_and_steps_through(ready, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / "steps.ipynb", [STEPS_CELL])
    with lab_page(root, tmp_path, renderer=False, width=1400) as (server, page):
        open_notebook(page, server, "steps.ipynb")
        cell = run_cell(page, 0)
        widget = outputs(cell).locator(".widget-vbox").first
        widget.wait_for(timeout=30_000)
        expect(widget.locator(".rfk-title")).to_contain_text("Steps")
        key = _pivot_key(widget)
        n = int(key.split()[1])
        widget.locator(".widget-dropdown select").select_option(label=key)
        expect(widget.locator(".rfk-title")).to_contain_text(f": {key}")
        # The opened step repeats its calls above what it did.
        expect(widget.locator(".rfk-detail")).to_contain_text('pivot_root(".", ".")')
        # The host's mounts are gone (-), the new root's moved to / (~).
        expect(widget.locator('tr[data-status="only-host"]').first).to_be_visible()
        moved = widget.locator('tr[data-status="differs"]', has_text="moved from")
        expect(moved.first).to_be_visible()
        shoot(widget, artifacts() / "steps-widget.png")
        widget.locator("button", has_text="next step").click()
        expect(widget.locator(".rfk-title")).to_contain_text(f": step {n + 1}")
        widget.locator("button", has_text="previous step").click()
        expect(widget.locator(".rfk-title")).to_contain_text(f": {key}")
        widget.locator("button", has_text="steps").first.click()
        expect(widget.locator(".rfk-title")).not_to_contain_text(": step")
        expect(widget.locator("button", has_text="next step")).to_be_hidden()


def _payload() -> dict:
    import rootfs_kernel

    res = rootfs_kernel.run("true", show=["steps"])
    assert res.ok, res.stderr
    return res.views[0]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_renderer_steps_through_a_saved_notebook_in_the_theme(ready, tmp_path: Path,
                                                                  theme: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    payload = _payload()
    saved_notebook(root / "saved.ipynb", [payload])
    saved_notebook(root / "static.ipynb", [payload], html_only=True)
    if theme == "dark":
        dark_theme(tmp_path)
    with lab_page(root, tmp_path, width=1400) as (server, page):
        open_saved(page, server, "saved.ipynb")
        view = page.locator(".rfk-compare").first
        view.wait_for(timeout=30_000)
        expect(view.locator(".rfk-headline")).to_contain_text("steps in")
        key = _pivot_key(view)
        n = int(key.split()[1])
        view.locator("button.rfk-open", has_text=re.compile(rf"^{key}$")).first.click()
        expect(view.locator(".rfk-title")).to_contain_text(f": {key}")
        expect(view.locator(".rfk-crumbs button.rfk-crumb")).to_have_count(2)
        gone = view.locator("tr.rfk-row.rfk-only-host")
        expect(gone.first).to_be_visible()
        expect(gone.first.locator("td.rfk-mark")).to_have_text("-")
        # A removed mount's row is tinted with the theme's error colour, and every text
        # of the view reads on what it is drawn on, in either theme.
        # (the tint is the row's cells', translucent over the page)
        tint = gone.first.locator("td.rfk-value").first.evaluate("""cell => {
            const ctx = document.createElement('canvas').getContext('2d');
            ctx.fillStyle = getComputedStyle(cell).backgroundColor;
            ctx.fillRect(0, 0, 1, 1);
            return Array.from(ctx.getImageData(0, 0, 1, 1).data);
        }""")
        assert tint[0] > tint[1] and tint[3] > 0, tint
        expect(page.locator("body")).to_have_attribute(
            "data-jp-theme-light", "false" if theme == "dark" else "true")
        low = [m for m in view.evaluate(CONTRAST_JS) if m["ratio"] < 4.5]
        assert not low, low[:5]
        shoot(view, artifacts() / f"steps-renderer-{theme}.png")
        view.locator("button.rfk-step-next").click()
        expect(view.locator(".rfk-title")).to_contain_text(f": step {n + 1}")
        view.locator("button.rfk-step-prev").click()
        expect(view.locator(".rfk-title")).to_contain_text(f": {key}")

        # The static HTML (GitHub, nbconvert, the book): the pivot step folded open.
        open_saved(page, server, "static.ipynb")
        static = page.locator(".rfk-static:not(.rfk-compare)").first
        static.wait_for(timeout=30_000)
        step = static.locator("details.rfk-step", has_text=f"{key}:")
        step.locator("summary").click()
        # (an untrusted notebook's HTML loses its data- attributes: read the marks)
        expect(step.locator("tr", has_text="moved from").first).to_be_visible()
        marks = step.locator("tr td:first-child").all_inner_texts()
        assert "-" in marks and "~" in marks, marks
        low = [m for m in static.evaluate(CONTRAST_JS) if m["ratio"] < 4.5]
        assert not low, low[:5]
        shoot(static, artifacts() / f"steps-static-{theme}.png")


def test_display_shows_images_and_runs_nothing_the_cell_sent(ready, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / "display.ipynb", [DISPLAY_CELL])
    with lab_page(root, tmp_path, width=1200) as (server, page):
        open_notebook(page, server, "display.ipynb")
        cell = run_cell(page, 0)
        out = outputs(cell)   # (the first cell of a new image store says it built one)
        images = out.locator("img")
        expect(images).to_have_count(2)   # the PNG and the SVG; none from the Markdown
        sizes = images.evaluate_all("a => a.map(i => i.complete && i.naturalWidth)")
        assert sizes == [1, 30], sizes
        assert images.nth(1).get_attribute("src").startswith("data:image/svg+xml")
        frame = out.locator("iframe")
        expect(frame).to_have_count(1)
        expect(frame).to_have_attribute("sandbox", "")
        expect(page.frame_locator("iframe[sandbox]").first.locator("#made")).to_have_text(
            "made in a cell")
        expect(out.locator("h1")).to_have_text("Markdown from a cell")
        page.wait_for_timeout(500)   # time for anything that would run to have run
        assert page.evaluate("() => [window.rfkPwned, window.rfkMd]") == [None, None]
        shoot(cell, artifacts() / "display-cell.png")
