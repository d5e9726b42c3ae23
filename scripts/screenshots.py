#!/usr/bin/env python3
"""Regenerate the README's pictures (docs/images/*.png) from a real JupyterLab.

    python scripts/screenshots.py [--out docs/images]

Starts `jupyter lab` on loopback with the rootfs kernel and the extension's renderer
(temporary root, token and Jupyter directories: tests/e2e/jupyter_e2e.py), runs cells
in Debian's chromium (Playwright for Python, no browser download) and saves, cropped to
the cell: the default (pivot_root) mount table, the `%root none` one, the listing
comparison with a subdirectory opened, the pivot mount table again in JupyterLab Dark,
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
sys.path.insert(0, str(REPO / "tests"))

import jupyter_e2e as e2e  # noqa: E402

# Wide enough for the mount table's columns; the listing and the notebook need less.
WIDE = {"width": 1600, "height": 1000}
NARROW = {"width": 1100, "height": 900}
PAGE = {"width": 1280, "height": 900}
# A fixed working directory, so the host path shown in the listing's title is the same
# on every run (the pictures change only when the views do).
WORK = Path(tempfile.gettempdir()) / "rootfs-kernel-pictures"
TALL = {"width": 1280, "height": 1300}
# The cell's /etc next to the image's before the cell: what the cell changed.
LISTING = ("%show ls /etc\n"
           "mkdir -p /etc/app/conf.d\n"
           "echo 'port = 8080' > /etc/app/app.conf\n"
           "echo 'debug = true' > /etc/app/conf.d/dev.conf\n"
           "echo '10.0.0.2 db' >> /etc/hosts\n"
           "rm /etc/hostname")
NOTEBOOK = REPO / "notebooks" / "02-tmpfs-over-tmp.ipynb"


def mount_views(path: Path) -> None:
    """The mount tables as saved outputs, from recorded mount tables whose machine paths
    are replaced (tests/fixtures/mountinfo): a default cell's (pivot_root) on a host with
    stacked mounts, and a `%root none` cell's with a tmpfs on /tmp on the same host."""
    import nbformat
    from fixtures.payloads import make
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from rootfs_kernel.inspect.mounts import diff_mounts, parse_mountinfo
    from rootfs_kernel.views import display_bundle, mounts_payload

    host = (make.MOUNTINFO / "stacked_host.txt").read_text()
    cell = host + "90 27 0:91 / /tmp rw,relatime - tmpfs none rw\n"
    views = [("%show mounts\ntrue", make.build()["mounts-pivot-stacked-host"]["payload"]),
             ("%root none\n%mount tmpfs /tmp\n%show mounts\ntrue",
              mounts_payload(diff_mounts(parse_mountinfo(cell), parse_mountinfo(host))))]
    cells = []
    for i, (source, payload) in enumerate(views):
        data, _ = display_bundle(payload, widget=False)
        cells.append(new_code_cell(source, execution_count=i + 1,
                                   outputs=[new_output("display_data", data=data)]))
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "rootfs", "display_name": "Rootfs (sh)", "language": "shell"}}), str(path))


def shoot_saved(page, server, name: str, index: int, out: Path) -> Path:
    page.goto(server.url(name))
    cell = page.locator(".jp-NotebookPanel:visible .jp-CodeCell").nth(index)
    cell.locator(".rfk-compare").wait_for(timeout=60_000)
    collapse_left_sidebar(page)
    deselect(page)
    time.sleep(0.5)  # let the layout settle after the sidebar closed
    return e2e.shoot(cell, out)


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
        e2e.write_notebook(root / "pictures.ipynb", ["true", LISTING, ""])
        e2e.copy_notebook(NOTEBOOK, root)
        mount_views(root / "mounts.ipynb")
        with e2e.jupyter_server("lab", root, work, renderer=True) as server, \
                sync_playwright() as pw:
            browser = e2e.launch(pw)
            try:
                page = browser.new_page(viewport=WIDE)
                e2e.open_notebook(page, server, "pictures.ipynb")
                collapse_left_sidebar(page)
                e2e.run_cell(page, 0)
                # The listing: the cell's /etc vs the image's, then app/ opened.
                page.set_viewport_size(NARROW)
                cell = e2e.run_cell(page, 1)
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

                # The default cell's mount table: headline, differences, folded runs; and
                # the %root none one: /tmp marked "+", the rest the host's (collapsed).
                page.set_viewport_size(TALL)
                saved.append(shoot_saved(page, server, "mounts.ipynb", 0,
                                         args.out / "mounts-pivot.png"))
                saved.append(shoot_saved(page, server, "mounts.ipynb", 1,
                                         args.out / "mounts.png"))
            finally:
                browser.close()

        # The same default mount table in JupyterLab Dark.
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
