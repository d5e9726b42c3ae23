"""`%show layers` and `%show tree` in a real JupyterLab and chromium: the kernel's widgets
from a live kernel (renderer hidden), then the renderer on a saved notebook without a
kernel, in JupyterLab Light and Dark (colours measured, not assumed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from jupyter_e2e import (
    artifacts,
    code_cell,
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
LAYERS_CELL = "%show layers\nrm /etc/hostname; echo hi > /etc/motd"
TREE_CELL = "%mount tmpfs /scratch\n%show tree\ntrue"


def test_the_widgets_open_a_layer_and_name_a_mounts_peers(ready, graphviz, tmp_path: Path
                                                         ) -> None:
    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / "see.ipynb", [LAYERS_CELL, TREE_CELL])
    with lab_page(root, tmp_path, renderer=False) as (server, page):
        open_notebook(page, server, "see.ipynb")
        layers = run_cell(page, 0)
        widget = outputs(layers).locator(".widget-vbox").first
        widget.wait_for(timeout=30_000)
        # It opens on the cell's own layer, beside the stack (as dive shows them): the
        # whiteout and the new file, marked, under their directory.
        expect(widget.locator(".rfk-title")).to_contain_text("Layers of image minimal")
        expect(widget.locator(".rfk-title")).to_contain_text(": cell")
        expect(widget.locator("li.rfk-current")).to_contain_text("cell")
        gone = widget.locator('tr[data-status="only-host"]', has_text="hostname")
        expect(gone).to_have_count(1)
        expect(gone.locator("td.rfk-mark")).to_have_text("-")
        expect(widget.locator('tr[data-status="only-cell"]', has_text="motd")).to_have_count(1)
        shoot(widget, artifacts() / "layers-widget.png")
        # Another layer from the picker: the overlay, who shadows /etc/hostname.
        widget.locator(".widget-dropdown select").select_option(label="overlay")
        expect(widget.locator(".rfk-title")).to_contain_text(": overlay")
        expect(widget.locator("tr", has_text="hostname")).to_contain_text("removed by cell")

        tree = run_cell(page, 1)
        widget = outputs(tree).locator(".widget-vbox").first
        widget.wait_for(timeout=30_000)
        expect(widget.locator("svg").first).to_be_visible()
        expect(widget.locator("svg g.node", has_text="/scratch")).to_have_count(1)
        picker = widget.locator(".widget-dropdown select")
        options = picker.evaluate("s => [...s.options].map(o => o.text)")
        # ipywidgets shows the labels with no-break spaces.
        index = next(i for i, o in enumerate(options)
                     if o.replace("\xa0", " ").startswith("cell /scratch"))
        picker.select_option(index=index)
        expect(widget.locator("code")).to_contain_text("cell /scratch: tmpfs from none")
        shoot(widget, artifacts() / "tree-widget.png")
        assert code_cell(page, 1).locator(".jp-OutputArea-output").count() >= 1


def _payloads() -> list[dict]:
    import rootfs_kernel
    from rootfs_kernel.cell import Show

    res = rootfs_kernel.run("rm /etc/hostname; echo hi > /etc/motd",
                            mounts=["tmpfs:/scratch"], show=[Show("layers"), Show("tree")])
    assert res.ok, res.stderr
    return res.views


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_renderer_draws_layers_and_trees_in_the_theme(ready, graphviz, tmp_path: Path,
                                                           theme: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    payloads = _payloads()
    saved_notebook(root / "saved.ipynb", payloads)
    if theme == "dark":
        dark_theme(tmp_path)
    with lab_page(root, tmp_path) as (server, page):
        open_saved(page, server, "saved.ipynb")
        layers = page.locator(".rfk-compare:not(.rfk-tree)").first
        layers.wait_for(timeout=30_000)
        expect(layers.locator(".rfk-headline")).to_contain_text("upperdir")
        # Opened on the cell's own layer; the stack beside it opens another.
        expect(layers.locator(".rfk-choices button[aria-current='true']")).to_have_text("cell")
        layers.locator(".rfk-choices button.rfk-open", has_text="overlay").click()
        row = layers.locator("tr.rfk-row", has_text="hostname")
        expect(row).to_contain_text("removed by cell")
        expect(layers.locator(".rfk-crumbs button")).to_have_count(2)
        shoot(layers, artifacts() / f"layers-renderer-{theme}.png")

        tree = page.locator(".rfk-tree").first
        tree.scroll_into_view_if_needed()
        node = tree.locator("svg g.node", has_text="/scratch").first
        expect(node).to_have_count(1)
        # Nothing from the notebook's SVG runs or links: drawing elements only.
        assert tree.locator("svg script, svg a, svg style, svg foreignObject").count() == 0
        node.click()
        expect(tree.locator(".rfk-tree-details")).to_contain_text("cell /scratch")
        # The node's box is the page's background and its text the page's text colour,
        # in either theme: JupyterLab's variables, not the SVG's own white.
        colours = page.evaluate("""() => {
            const g = document.querySelector('.rfk-tree svg g.node');
            const shape = g.querySelector('path, polygon');
            const text = g.querySelector('text');
            const probe = document.createElement('div');
            probe.style.color = 'var(--jp-layout-color0)';
            document.body.append(probe);
            const bg = getComputedStyle(probe).color;
            probe.remove();
            return {fill: getComputedStyle(shape).fill, text: getComputedStyle(text).fill,
                    bg};
        }""")
        assert _rgb(colours["fill"]) == _rgb(colours["bg"]), colours
        dark = sum(_rgb(colours["fill"])) < 3 * 128
        assert dark == (theme == "dark"), colours
        assert abs(sum(_rgb(colours["text"])) - sum(_rgb(colours["fill"]))) > 300, colours
        shoot(tree, artifacts() / f"tree-renderer-{theme}.png")


def _rgb(css: str) -> tuple[int, ...]:
    """'rgb(1, 2, 3)', '#0a0b0c' or '#abc' -> (r, g, b)."""
    css = css.strip()
    if css.startswith("rgb"):
        return tuple(int(float(x)) for x in css[css.index("(") + 1:-1].split(",")[:3])
    h = css.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))
