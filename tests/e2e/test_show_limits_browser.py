"""`%show limits` in a real JupyterLab and chromium: the kernel's widget from a live
kernel (renderer hidden), then the renderer on a saved notebook without a kernel, its
bar of peak against limit in the theme's colours."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from jupyter_e2e import (
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
CELL = "%limit pids=20 memory=64m\n%show limits\nhead -c 8m /dev/zero | tail > /dev/null"


def test_the_widget_shows_a_bar_per_limit(ready, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / "limits.ipynb", [CELL])
    with lab_page(root, tmp_path, renderer=False) as (server, page):
        open_notebook(page, server, "limits.ipynb")
        widget = outputs(run_cell(page, 0)).locator(".rfk-limits").first
        widget.wait_for(timeout=30_000)
        expect(widget).to_contain_text("What bounded this cell")
        expect(widget.locator(".widget-hprogress, .widget-progress")).to_have_count(4)
        expect(widget.locator("code", has_text="pids: 20")).to_have_count(1)
        expect(widget.locator("code", has_text="memory: 64 MiB")).to_contain_text("used at most")
        shoot(widget, artifacts() / "limits-widget.png")


def _payload() -> dict:
    import rootfs_kernel

    res = rootfs_kernel.run("head -c 8m /dev/zero | tail > /dev/null", show=["limits"],
                            limits={"pids": 20, "memory": "64m"})
    assert res.ok, res.stderr
    return res.views[0]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_renderer_draws_the_table_and_bars_in_the_theme(ready, tmp_path: Path,
                                                            theme: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    payload = _payload()
    saved_notebook(root / "saved.ipynb", [payload])
    if theme == "dark":
        dark_theme(tmp_path)
    with lab_page(root, tmp_path) as (server, page):
        open_saved(page, server, "saved.ipynb")
        view = page.locator(".rfk-limits").first
        view.wait_for(timeout=30_000)
        expect(view.locator(".rfk-title")).to_have_text(payload["title"])
        rows = view.locator("tbody tr")
        expect(rows).to_have_count(4)
        memory = view.locator('tr[data-key="memory"]')
        expect(memory).to_contain_text(payload["rows"][0]["used_text"])
        expect(memory).to_contain_text(payload["rows"][0]["by"])
        # a bar for memory (bytes against bytes), none for cpu (a rate, not a total)
        expect(memory.locator(".rfk-limits-fill")).to_have_count(1)
        expect(view.locator('tr[data-key="cpu"] .rfk-limits-bar')).to_have_count(0)
        width = memory.locator(".rfk-limits-fill").evaluate("e => e.style.width")
        # the browser normalises the style's number ("15.0%" reads back "15%")
        assert width.endswith("%"), width
        assert float(width[:-1]) == pytest.approx(payload["rows"][0]["fraction"] * 100,
                                                  abs=0.05), width
        # the track is the theme's layout colour, the table's text the theme's text
        colours = page.evaluate("""() => {
            const bar = document.querySelector('.rfk-limits-bar');
            const cell = document.querySelector('.rfk-limits td');
            const probe = document.createElement('div');
            probe.style.color = 'var(--jp-layout-color3)';
            document.body.append(probe);
            const track = getComputedStyle(probe).color;
            probe.remove();
            return {bar: getComputedStyle(bar).backgroundColor, track,
                    text: getComputedStyle(cell).color};
        }""")
        assert colours["bar"] == colours["track"], colours
        # rgb(...) or rgba(...): the first three numbers
        light_text = sum(float(x) for x in re.findall(r"[\d.]+", colours["text"])[:3]) > 384
        assert light_text == (theme == "dark"), colours
        shoot(view, artifacts() / f"limits-renderer-{theme}.png")
