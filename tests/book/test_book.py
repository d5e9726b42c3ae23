"""The notebooks as a Jupyter Book, built from their saved outputs (scripts/build-book.sh)
and read in chromium with no kernel anywhere: the comparison tables and the mount-tree
picture are there as the notebooks saved them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("ROOTFS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking"]

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    jb = Path(sys.executable).with_name("jupyter-book")
    if not jb.exists():
        pytest.skip('jupyter-book is not installed (pip install ".[book]")')
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no chromium at {CHROMIUM}")
    out = tmp_path_factory.mktemp("book")
    # Sphinx writes its cache beside the sources' config: build from a copy, so a
    # read-only checkout (the ordinary user's run) builds too.
    src = out / "src"
    shutil.copytree(REPO / "notebooks", src / "notebooks")
    shutil.copytree(REPO / "book", src / "book", ignore=shutil.ignore_patterns("_build"))
    shutil.copytree(REPO / "scripts", src / "scripts")
    done = subprocess.run(["bash", str(src / "scripts" / "build-book.sh"), "--quiet"],
                          env={**os.environ, "JUPYTER_BOOK": str(jb)}, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Every cell highlighted by the kernel's own lexer (lexer.py): a %%c cell lexed as
    # shell, or an error output as a Python traceback, is a "Lexing ..." warning.
    assert "Lexing literal_block" not in done.stdout + done.stderr, done.stderr[-3000:]
    html = src / "book" / "_build" / "html"
    assert (html / "index.html").is_file()
    return html


def test_every_notebook_is_a_page(book: Path) -> None:
    pages = {p.stem for p in book.glob("*.html")}
    notebooks = {p.stem for p in (REPO / "notebooks").glob("*.ipynb")}
    assert notebooks <= pages, notebooks - pages


def test_two_pages_show_their_views_without_a_kernel(book: Path) -> None:
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            # A comparison: the saved table with its marked rows, not an empty widget.
            page.goto((book / "02-tmpfs-over-tmp.html").as_uri())
            table = page.locator("table.rfk-table").first
            sync_api.expect(table).to_be_visible()
            assert page.locator('table.rfk-table tr[data-status="only-cell"]').count() >= 1
            sync_api.expect(page.locator(".rfk-headline").first).to_be_visible()
            assert page.get_by_text("Loading widget").count() == 0
            # The propagation notebook: its mount-tree picture, drawn by Graphviz.
            page.goto((book / "03-propagation.html").as_uri())
            picture = page.locator(".rfk-tree svg").first
            sync_api.expect(picture).to_be_visible()
            assert picture.locator("g.node").count() > 5
            assert picture.locator("g.edge.rfk-peer, g.edge.rfk-master").count() >= 1
            # (sphinx-book-theme declares its launch-button script's URL twice: its own.)
            assert not [e for e in errors if "THEBE" not in e], errors
        finally:
            browser.close()


def test_the_steps_page_opens_a_step_and_shows_what_display_drew(book: Path) -> None:
    """Notebook 09 in the book: %show steps as its static table, each step's changes
    folded open in place (no kernel, no renderer), and the SVG a cell showed."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((book / "09-how-a-container-is-built.html").as_uri())
            table = page.locator("table.rfk-table").first
            sync_api.expect(table).to_contain_text('pivot_root(".", ".")')
            pivot = page.locator("details.rfk-step", has_text="pivot_root").first
            pivot.locator("summary").click()
            sync_api.expect(pivot.locator('tr[data-status="only-host"]').first).to_be_visible()
            sync_api.expect(pivot.locator("tr", has_text="moved from").first).to_be_visible()
            # display's SVG: an image of the book, drawn (the cell's / is the overlay)
            picture = page.locator("img[src$='.svg']")
            sync_api.expect(picture).to_have_count(1)
            assert picture.evaluate("i => i.complete && i.naturalWidth") > 100
            svg = (book / picture.get_attribute("src")).read_text()
            assert "overlay" in svg and "/proc" in svg
        finally:
            browser.close()


def test_the_seeds_chinese_quotes_have_a_font(book: Path) -> None:
    """The book's font stack names CJK fonts after the theme's (book/_static/cjk.css), and
    on this machine (setup.sh installs fonts-noto-cjk) the quote's characters are drawn
    with one of them, not as empty boxes."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((book / "01-mount-namespace-alone.html").as_uri())
            quote = page.locator("blockquote", has_text="容器").first
            sync_api.expect(quote).to_be_visible()
            family = quote.evaluate("q => getComputedStyle(q).fontFamily")
            assert "Noto Sans CJK SC" in family, family
            assert page.evaluate("() => document.fonts.check('16px \"Noto Sans CJK SC\"', "
                                 "'容器')")
            # Drawn: each character as wide as a CJK font draws it (an empty box of a
            # font without the glyph is narrower), i.e. about 1em.
            width = page.evaluate(
                "() => { const s = document.createElement('span');"
                " s.style.cssText = 'position: absolute; white-space: nowrap';"
                " s.style.font = '20px \"Noto Sans CJK SC\"'; s.textContent = '容器容器';"
                " document.body.append(s); const w = s.getBoundingClientRect().width;"
                " s.remove(); return w; }")
            assert 76 <= width <= 84, width
        finally:
            browser.close()
