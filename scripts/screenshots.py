#!/usr/bin/env python3
"""Regenerate the README's pictures (docs/images/*.png) from a real JupyterLab.

    python scripts/screenshots.py [--out docs/images]

Starts `jupyter lab` on loopback with the rootfs kernel and the extension's renderer
(temporary root, token and Jupyter directories: tests/e2e/jupyter_e2e.py), runs cells
in Debian's chromium (Playwright for Python, no browser download) and saves, cropped to
the cell, the views as a reader sees them: JupyterLab at 1280 px with its file browser
open (an 848 px output area, what tests/e2e/test_views_width.py measures), one at 900 px
(466 px): the default (pivot_root) mount table, the `%root none` one, the listing with a
subdirectory opened, `%show steps` as a story and with its pivot_root step opened,
`%show steps vs pivot` of a chroot cell, `%show layers` on the cell's own layer, a
cell's `display` of an SVG it drew, the pivot mount table and `%show tree` in JupyterLab
Dark, and the top of notebooks/02-tmpfs-over-tmp.ipynb as saved. The views of a host's
mounts (mounts, steps, tree) are drawn from recorded tables (tests/fixtures), not from
this machine's.
Needs what the e2e test needs: chromium, playwright, jupyterlab, the built renderer.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "tests"))

import jupyter_e2e as e2e  # noqa: E402

# JupyterLab at 1280 px with its file browser open: an 848 px output area; at 900 px, 466.
PAGE = {"width": 1280, "height": 900}
NARROW = {"width": 900, "height": 900}
# A fixed working directory, so the host path shown in the listing's title is the same
# on every run (the pictures change only when the views do).
WORK = Path(tempfile.gettempdir()) / "rootfs-kernel-pictures"
TALL = {"width": 1280, "height": 1300}
# %show steps vs NAME: the default container (pivot_root) labelled, then a chroot one.
VS = ["%label pivot\ntrue", "%root chroot\n%show steps vs pivot\ntrue"]
# The cell's /etc next to the image's before the cell: what the cell changed.
LISTING = ("%show ls /etc\n"
           "mkdir -p /etc/app/conf.d\n"
           "echo 'port = 8080' > /etc/app/app.conf\n"
           "echo 'debug = true' > /etc/app/conf.d/dev.conf\n"
           "echo '10.0.0.2 db' >> /etc/hosts\n"
           "rm /etc/hostname")
NOTEBOOK = REPO / "notebooks" / "02-tmpfs-over-tmp.ipynb"
STEPS = "%show steps\ntrue"
LAYERS = "%show layers\nrm /etc/hostname; echo hi > /etc/motd"
TREE = "%show tree\ntrue"


def display_cell() -> str:
    """notebooks/09's last cell: the cell draws its own mount table as an SVG and shows
    it with `display`."""
    import nbformat

    nb = nbformat.read(REPO / "notebooks" / "09-how-a-container-is-built.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if "display" in c.metadata.get("tags", [])]
    return cell.source


def saved_view(path: Path, source: str, payload: dict) -> None:
    """One view as a saved output (no machine's own mounts: recorded tables)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from rootfs_kernel.views import view_bundle

    data, _ = view_bundle(payload, widget=False)
    nbformat.write(new_notebook(cells=[new_code_cell(source, execution_count=1, outputs=[
        new_output("display_data", data=data)])], metadata={"kernelspec": {
            "name": "rootfs", "display_name": "Rootfs (sh)", "language": "shell"}}), str(path))


def steps_and_tree(root: Path) -> None:
    """%show steps of the golden payload (a small host, a whole container), and %show
    tree of the recorded default cell on the recorded host with stacked mounts (the
    views tests/e2e/test_views_width.py measures)."""
    from fixtures.payloads import make

    saved_view(root / "steps.ipynb", STEPS, make.build()["steps"]["payload"])
    saved_view(root / "tree.ipynb", TREE, make.recorded_tree())


def mount_views(path: Path) -> None:
    """The mount tables as saved outputs, from recorded mount tables whose machine paths
    are replaced (tests/fixtures/mountinfo): a default cell's (pivot_root) on a host with
    stacked mounts, and a `%root none` cell's with a tmpfs on /tmp on the same host."""
    import nbformat
    from fixtures.payloads import make
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from rootfs_kernel.inspect.mounts import diff_mounts, parse_mountinfo
    from rootfs_kernel.views import mounts_payload, view_bundle

    host = (make.MOUNTINFO / "stacked_host.txt").read_text()
    cell = host + "90 27 0:91 / /tmp rw,relatime - tmpfs none rw\n"
    views = [("%show mounts\ntrue", make.build()["mounts-pivot-stacked-host"]["payload"]),
             ("%root none\n%mount tmpfs /tmp\n%show mounts\ntrue",
              mounts_payload(diff_mounts(parse_mountinfo(cell), parse_mountinfo(host))))]
    cells = []
    for i, (source, payload) in enumerate(views):
        data, _ = view_bundle(payload, widget=False)
        cells.append(new_code_cell(source, execution_count=i + 1,
                                   outputs=[new_output("display_data", data=data)]))
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "rootfs", "display_name": "Rootfs (sh)", "language": "shell"}}), str(path))


def fresh(server, name: str) -> str:
    """The notebook's URL in a workspace of its own (not every notebook opened so far)."""
    return server.url(name) + "&reset"


def shoot_saved(page, server, name: str, index: int, out: Path) -> Path:
    """A saved view as a reader sees it: the file browser open beside the notebook."""
    page.goto(fresh(server, name))
    cell = page.locator(".jp-NotebookPanel:visible .jp-CodeCell").nth(index)
    cell.locator(".rfk-compare").wait_for(timeout=60_000)
    deselect(page)
    time.sleep(0.5)  # let the layout settle
    return e2e.shoot(cell, out)


def deselect(page) -> None:
    """Select the last cell so the pictured cell carries no selection marks."""
    last = page.locator(".jp-Notebook:visible .jp-Cell").last
    last.locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.mouse.move(0, 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = ap.parse_args()
    why = e2e.missing_requirements("lab") or (
        None if e2e.built_renderer() else "the renderer is not built (pip install .)")
    if why:
        print(f"screenshots: cannot run: {why}", file=sys.stderr)
        return 2
    from playwright.sync_api import expect, sync_playwright

    fc_list = shutil.which("fc-list")
    if fc_list and not subprocess.run([fc_list, ":lang=zh"], capture_output=True,
                                      text=True).stdout.strip():
        print("screenshots: warning: no CJK font, the notebooks' Chinese quotes will show as "
              "boxes (apt-get install fonts-noto-cjk)", file=sys.stderr)

    started = time.monotonic()
    saved: list[Path] = []
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    try:
        work = WORK
        root = work / "root"
        root.mkdir()
        # A first cell builds the default image, so its progress bar is not pictured.
        e2e.write_notebook(root / "pictures.ipynb",
                           ["true", LISTING, LAYERS, display_cell(), *VS, ""])
        e2e.copy_notebook(NOTEBOOK, root)
        mount_views(root / "mounts.ipynb")
        steps_and_tree(root)
        with e2e.jupyter_server("lab", root, work, renderer=True) as server, \
                sync_playwright() as pw:
            browser = e2e.launch(pw)
            try:
                page = browser.new_page(viewport=PAGE)
                e2e.open_notebook(page, server, "pictures.ipynb")
                e2e.run_cell(page, 0)
                # The listing: the cell's /etc vs the image's, then app/ opened.
                cell = e2e.run_cell(page, 1)
                view = e2e.View.find(page, cell)
                expect(view.row("app/")).to_be_visible()
                deselect(page)
                saved.append(e2e.shoot(cell, args.out / "listing.png"))
                view.open("app")
                expect(view.heading()).to_contain_text(", in app/")
                deselect(page)
                saved.append(e2e.shoot(cell, args.out / "listing-opened.png"))

                # %show layers: the stack beside the cell's own layer, as dive shows them.
                cell = e2e.run_cell(page, 2)
                view = cell.locator(".rfk-compare").first
                view.wait_for(timeout=30_000)
                expect(view.locator("tr.rfk-row", has_text="hostname")).to_be_visible()
                deselect(page)
                saved.append(e2e.shoot(cell, args.out / "layers.png"))

                # display: an SVG the cell drew of its own mount table.
                cell = e2e.run_cell(page, 3)
                expect(e2e.outputs(cell).locator("img")).to_have_count(1)
                deselect(page)
                saved.append(e2e.shoot(e2e.outputs(cell).last, args.out / "display.png"))

                # The star: a chroot cell's setup next to the default one's.
                e2e.run_cell(page, 4)
                cell = e2e.run_cell(page, 5)
                cell.locator(".rfk-compare").first.wait_for(timeout=30_000)
                deselect(page)
                saved.append(e2e.shoot(cell, args.out / "steps-vs.png"))

                # A notebook from notebooks/, as saved: its top, no cell selected.
                page.goto(fresh(server, NOTEBOOK.name))
                panel = page.locator(".jp-NotebookPanel:visible").first
                panel.locator(".jp-Cell").first.wait_for(timeout=60_000)
                panel.locator(".rfk-compare").first.wait_for(timeout=30_000)
                deselect(page)
                panel.locator(".jp-Cell").first.scroll_into_view_if_needed()
                time.sleep(0.5)  # let the layout settle
                saved.append(e2e.shoot(panel, args.out / "notebook-02.png"))

                # The default cell's mount table: headline, differences, folded runs, the
                # covered mount's note; the %root none one: /tmp marked "+", the rest the
                # host's (collapsed); the first again in a 466 px output area.
                page.set_viewport_size(TALL)
                saved.append(shoot_saved(page, server, "mounts.ipynb", 0,
                                         args.out / "mounts-pivot.png"))
                saved.append(shoot_saved(page, server, "mounts.ipynb", 1,
                                         args.out / "mounts.png"))
                page.set_viewport_size({"width": NARROW["width"], "height": 1300})
                saved.append(shoot_saved(page, server, "mounts.ipynb", 0,
                                         args.out / "mounts-narrow.png"))

                # %show steps: the story (sections, the waterfall), then its pivot_root
                # step opened: the host's mounts gone (-), the new root's moved to / (~).
                page.set_viewport_size(TALL)
                page.goto(fresh(server, "steps.ipynb"))
                cell = page.locator(".jp-NotebookPanel:visible .jp-CodeCell").first
                view = cell.locator(".rfk-compare").first
                view.wait_for(timeout=60_000)
                deselect(page)
                saved.append(e2e.shoot(view, args.out / "steps.png"))
                row = view.locator("tr", has_text='pivot_root(".",').first
                row.locator("button.rfk-open").click()
                expect(view.locator(".rfk-step-next")).to_be_visible()
                deselect(page)
                saved.append(e2e.shoot(view, args.out / "steps-opened.png"))
            finally:
                browser.close()

        # The same default mount table in JupyterLab Dark, and a mount tree there.
        dark = work / "dark"
        theme = dark / "home" / "settings" / "@jupyterlab" / "apputils-extension"
        theme.mkdir(parents=True)
        (theme / "themes.jupyterlab-settings").write_text('{"theme": "JupyterLab Dark"}')
        with e2e.jupyter_server("lab", root, dark, renderer=True,
                                data_home=work / "xdg-data") as server, \
                sync_playwright() as pw:
            browser = e2e.launch(pw)
            try:
                page = browser.new_page(viewport=TALL)
                saved.append(shoot_saved(page, server, "mounts.ipynb", 0,
                                         args.out / "mounts-dark.png"))
                page.goto(fresh(server, "tree.ipynb"))
                cell = page.locator(".jp-NotebookPanel:visible .jp-CodeCell").first
                tree = cell.locator(".rfk-tree")
                tree.wait_for(timeout=60_000)
                deselect(page)
                tree.locator("svg g.node", has_text="/dev/pts").last.click()   # in words
                # ... and the picture from its top again (the click scrolled to the node):
                # the cell's namespace first.
                tree.evaluate("t => t.querySelectorAll('*').forEach(e => { e.scrollTop = 0; })")
                time.sleep(0.5)
                saved.append(e2e.shoot(cell, args.out / "tree-dark.png"))
            finally:
                browser.close()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    for p in saved:
        print(f"screenshots: {p.relative_to(REPO) if p.is_relative_to(REPO) else p}")
    print(f"screenshots: done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
