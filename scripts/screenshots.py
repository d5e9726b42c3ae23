#!/usr/bin/env python3
"""Regenerate the README's pictures (docs/images/*.png) from a real JupyterLab.

    python scripts/screenshots.py [--out docs/images]

Starts `jupyter lab` on loopback with the rootfs kernel and the extension's renderer
(temporary root, token and Jupyter directories: tests/e2e/jupyter_e2e.py), runs two cells
in Debian's chromium (Playwright for Python, no browser download) and saves, cropped to
the cell: the mount-table comparison, the listing comparison with a subdirectory opened,
and the top of notebooks/02-tmpfs-over-tmp.ipynb as saved (outputs already executed).
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

import jupyter_e2e as e2e  # noqa: E402

# Wide enough for the mount table's columns; the listing and the notebook need less.
WIDE = {"width": 1600, "height": 1000}
NARROW = {"width": 1100, "height": 900}
PAGE = {"width": 1280, "height": 900}
# A fixed working directory, so the host path shown in the listing's title is the same
# on every run (the pictures change only when the views do).
WORK = Path(tempfile.gettempdir()) / "rootfs-kernel-pictures"
MOUNTS = e2e.MOUNTS_CELL
# The cell's /etc next to a host copy of the image's /etc: what the cell changed.
LISTING = ("%show ls /etc {image_etc}\n"
           "mkdir -p /etc/app/conf.d\n"
           "echo 'port = 8080' > /etc/app/app.conf\n"
           "echo 'debug = true' > /etc/app/conf.d/dev.conf\n"
           "echo '10.0.0.2 db' >> /etc/hosts\n"
           "rm /etc/hostname")
NOTEBOOK = REPO / "notebooks" / "02-tmpfs-over-tmp.ipynb"


def copy_image_etc(data_home: Path, dest: Path) -> None:
    """A host copy of the default image's /etc (its single layer, built by the first cell)."""
    layers = sorted((data_home / "rootfs-kernel" / "layers").glob("*/rootfs/etc"))
    if len(layers) != 1:
        raise RuntimeError(f"expected the default image's one layer, found {layers}")
    shutil.copytree(layers[0], dest, symlinks=True)


def collapse_left_sidebar(page) -> None:
    """Give the notebook the whole width: close JupyterLab's file browser panel."""
    current = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if current.count():
        current.first.click()
        page.locator("#jp-left-stack").wait_for(state="hidden", timeout=5000)


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
        image_etc = work / "image-etc"
        listing = LISTING.format(image_etc=image_etc)
        e2e.write_notebook(root / "pictures.ipynb", ["true", MOUNTS, listing, ""])
        e2e.copy_notebook(NOTEBOOK, root)
        with e2e.jupyter_server("lab", root, work, renderer=True) as server, \
                sync_playwright() as pw:
            browser = e2e.launch(pw)
            try:
                page = browser.new_page(viewport=WIDE)
                e2e.open_notebook(page, server, "pictures.ipynb")
                collapse_left_sidebar(page)

                e2e.run_cell(page, 0)
                copy_image_etc(work / "xdg-data", image_etc)
                # The mount table: %root none plus tmpfs on /tmp; /tmp marked "+".
                cell = e2e.run_cell(page, 1)
                view = e2e.View.find(page, cell)
                expect(view.row("/tmp")).to_be_visible()
                deselect(page)
                saved.append(e2e.shoot(cell, args.out / "mounts.png"))

                # The listing: the cell's /etc vs the image's, then app/ opened.
                page.set_viewport_size(NARROW)
                cell = e2e.run_cell(page, 2)
                view = e2e.View.find(page, cell)
                expect(view.row("app/")).to_be_visible()
                deselect(page)
                saved.append(e2e.shoot(cell, args.out / "listing.png"))
                view.open("app")
                expect(view.heading()).to_contain_text(", in app/")
                deselect(page)
                saved.append(e2e.shoot(cell, args.out / "listing-opened.png"))

                # A notebook from notebooks/, as saved: its top, no cell selected.
                page.set_viewport_size(PAGE)
                page.goto(server.url(NOTEBOOK.name))
                panel = page.locator(".jp-NotebookPanel:visible").first
                panel.locator(".jp-Cell").first.wait_for(timeout=60_000)
                panel.locator(".rfk-compare").first.wait_for(timeout=30_000)
                collapse_left_sidebar(page)
                deselect(page)
                panel.locator(".jp-Cell").first.scroll_into_view_if_needed()
                time.sleep(0.5)  # let the layout settle after the sidebar closed
                saved.append(e2e.shoot(panel, args.out / "notebook-02.png"))
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
