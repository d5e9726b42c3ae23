#!/usr/bin/env python3
"""Render the kernelspec's logo PNGs from its SVG with Debian's chromium (Playwright).

    python scripts/logo.py      # writes kernel/rootfs_kernel/resources/logo-{32x32,64x64}.png

The SVG (kernel/rootfs_kernel/resources/logo-svg.svg) is the source; the PNGs are committed so that
installing needs no browser. Jupyter's launcher shows logo-64x64.png, or the SVG.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "kernel" / "rootfs_kernel" / "resources"
CHROMIUM = "/usr/bin/chromium"


def main() -> int:
    from playwright.sync_api import sync_playwright

    svg = (SPEC / "logo-svg.svg").read_text().replace('width="64" height="64"', "")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            for size in (32, 64):
                page = browser.new_page(viewport={"width": size, "height": size})
                page.set_content("<html><body style='margin:0;background:transparent'>"
                                 f"<div style='width:{size}px;height:{size}px'>"
                                 f"{svg}</div>"
                                 "</body></html>")
                page.locator("svg").evaluate(
                    "(s, n) => { s.setAttribute('width', n); s.setAttribute('height', n); }",
                    size)
                out = SPEC / f"logo-{size}x{size}.png"
                page.locator("div").screenshot(path=str(out), omit_background=True)
                print(f"logo: {out.relative_to(REPO)}")
                page.close()
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
