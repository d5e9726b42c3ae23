"""End to end in a real browser: a person runs rootfs cells in JupyterLab 4 and Notebook 7.

A real `jupyter lab` / `jupyter notebook` on loopback (temporary root, token and Jupyter
directories, the machine's `rootfs` kernelspec), Debian's chromium driven by Playwright
for Python (no browser download), a notebook created with nbformat whose cells are run
with Shift+Enter and the stop button. Checked on the page: streamed output, the error of
a failing script, the mount-table comparison with the /tmp row marked, "differences only",
the listing opening a subdirectory, and interrupting `sleep 600`.

Variants: JupyterLab with the extension's renderer (what `pip install .` gives), JupyterLab
without it (the kernel's ipywidget over comms), Notebook 7 with the renderer.
A failing test saves a screenshot, the page's console log and the server log to
test-artifacts/; passing runs leave screenshots of the comparisons there too.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from jupyter_e2e import (
    FAIL_CELL,
    LISTING_CELL,
    MOUNTS_CELL,
    PROMPT_BUSY,
    PROMPT_DONE,
    REPO,
    SLEEP_CELL,
    STREAM_CELL,
    VIEWPORT,
    View,
    built_renderer,
    code_cell,
    interrupt,
    jupyter_server,
    launch,
    missing_requirements,
    open_notebook,
    outputs,
    prompt,
    run_cell,
    shoot,
    write_notebook,
)

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is missing (pip install playwright)")
expect = sync_api.expect

pytestmark = pytest.mark.timeout(180)

NOTEBOOK = "e2e.ipynb"
CELLS = [STREAM_CELL, FAIL_CELL, MOUNTS_CELL, LISTING_CELL, SLEEP_CELL]
STREAM, FAIL, MOUNTS, LISTING, SLEEP = range(len(CELLS))
STDERR = '[data-mime-type="application/vnd.jupyter.stderr"]'

# (id, app, renderer): the renderer is what JupyterLab shows once the package is installed;
# without it the kernel's widget is shown, which exercises the comms end to end.
VARIANTS = [("lab", "lab", True), ("lab-widget", "lab", False), ("notebook", "notebook", True)]


def _artifacts(tmp: Path) -> Path:
    out = REPO / "test-artifacts"
    try:
        out.mkdir(exist_ok=True)
        return out
    except OSError:  # a read-only checkout: keep them with the temporary files
        return tmp


class Session:
    """One server, one browser page, one opened notebook, shared by a variant's tests."""

    def __init__(self, name: str, server, page, out: Path, console: list[str]) -> None:
        self.name, self.server, self.page, self.out, self.console = (
            name, server, page, out, console)
        self.expected_view = "renderer"

    def save_failure(self, test: str) -> None:
        stem = self.out / f"e2e-{self.name}-{test}"
        try:
            self.page.screenshot(path=f"{stem}-failure.png", full_page=True)
        except Exception as e:  # the page may be gone; the logs still help
            self.console.append(f"(no screenshot: {e})")
        Path(f"{stem}-console.log").write_text("\n".join(self.console) + "\n")
        Path(f"{stem}-server.log").write_text(self.server.tail(20_000))


@pytest.fixture(scope="module", params=VARIANTS, ids=[v[0] for v in VARIANTS])
def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    name, app, renderer = request.param
    why = missing_requirements(app)
    if why:
        pytest.skip(why)
    if renderer and built_renderer() is None:
        pytest.skip("the renderer is not built: `pip install .`, or `npm install && npm run "
                    "build` in extension/")
    work = tmp_path_factory.mktemp(f"e2e-{name}")
    root = work / "root"
    root.mkdir()
    write_notebook(root / NOTEBOOK, CELLS)
    out = _artifacts(work)
    console: list[str] = []
    # One image store for the variants: the first cell builds the default image once.
    images = tmp_path_factory.getbasetemp() / "e2e-images"
    with jupyter_server(app, root, work, renderer=renderer, data_home=images) as server, \
            sync_api.sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            s = Session(name, server, page, out, console)
            s.expected_view = "renderer" if renderer else "widget"
            try:
                open_notebook(page, server, NOTEBOOK)
            except BaseException:
                s.save_failure("open")
                raise
            yield s
        finally:
            browser.close()


@pytest.fixture
def nb(session: Session, request: pytest.FixtureRequest):
    yield session
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        session.save_failure(request.node.originalname)


def _text(locator) -> str:
    return "\n".join(locator.all_inner_texts())


def test_echo_output_streams(nb: Session) -> None:
    cell = run_cell(nb.page, STREAM, wait=False)
    # (The first cell of a fresh image store also shows the default image being built.)
    expect(cell.locator(".jp-OutputArea")).to_contain_text("first line", timeout=30_000)
    # The first line is on the page while the cell still runs: it was streamed.
    assert PROMPT_BUSY.match(prompt(cell).inner_text()), prompt(cell).inner_text()
    assert "second line" not in _text(outputs(cell))
    expect(prompt(cell)).to_have_text(PROMPT_DONE, timeout=30_000)
    expect(cell.locator(".jp-OutputArea")).to_contain_text("second line")
    # No error, and no information dressed as one: nothing on stderr (preparing the
    # image is said on the progress line).
    assert _text(cell.locator(STDERR)).strip() == ""


def test_failing_script_shows_an_error(nb: Session) -> None:
    cell = run_cell(nb.page, FAIL)
    expect(cell.locator(".jp-OutputArea")).to_contain_text("before the failure")
    error = cell.locator(f".jp-OutputArea-output{STDERR}").last
    expect(error).to_contain_text("ExitStatus")
    expect(error).to_contain_text("status 3")


def test_mount_table_marks_tmpfs_on_tmp(nb: Session) -> None:
    cell = run_cell(nb.page, MOUNTS)
    expect(cell.locator(".jp-OutputArea")).to_contain_text("none on /tmp type tmpfs")
    view = View.find(nb.page, cell)
    assert view.kind == nb.expected_view
    expect(view.heading()).to_contain_text("Mounts: cell vs host")
    tmp = view.row("/tmp")
    expect(tmp).to_be_visible()
    # Only in the cell ("+"), or differing ("~") where the host has its own /tmp mount.
    assert (tmp.get_attribute("data-status"), view.mark(tmp)) in {("only-cell", "+"),
                                                                    ("differs", "~")}
    assert "tmpfs" in tmp.inner_text()
    # Collapsed to its differences under a headline; "show all" gives the whole table:
    # %root none, the rest is the host's mount table, copied into the new namespace.
    expect(cell.locator(".rfk-headline")).to_contain_text("/ is the host's /")
    view.show_all()
    expect(view.rows("same").first).to_be_visible()
    assert view.rows("same").count() > 5
    assert nb.page.get_by_text("model not found").count() == 0
    shoot(cell, nb.out / f"e2e-{nb.name}-mounts.png")


def test_differences_only_hides_same_rows(nb: Session) -> None:
    view = View.find(nb.page, code_cell(nb.page, MOUNTS))
    total, same = view.rows().count(), view.rows("same").count()
    assert same > 0
    view.toggle_differences()
    expect(view.rows("same")).to_have_count(0)
    expect(view.rows()).to_have_count(total - same)
    expect(view.row("/tmp")).to_be_visible()
    shoot(code_cell(nb.page, MOUNTS), nb.out / f"e2e-{nb.name}-mounts-differences.png")
    view.toggle_differences()
    expect(view.rows("same")).to_have_count(same)


def test_listing_opens_a_subdirectory(nb: Session) -> None:
    cell = run_cell(nb.page, LISTING)
    view = View.find(nb.page, cell)
    assert view.kind == nb.expected_view
    expect(view.heading()).to_contain_text(
        "Listing of /etc: the cell vs image minimal before the cell")
    demo = view.row("rfk-demo/")
    expect(demo).to_be_visible()
    assert view.mark(demo) == "+"
    view.open("rfk-demo")
    expect(view.heading()).to_contain_text(", in rfk-demo/")
    hello = view.row("hello")
    expect(hello).to_be_visible()
    assert view.mark(hello) == "+"
    expect(view.row("inner/")).to_be_visible()
    expect(view.rows()).to_have_count(2)
    shoot(cell, nb.out / f"e2e-{nb.name}-listing.png")


def test_stop_button_ends_a_sleep(nb: Session) -> None:
    kernel_id = nb.server.api("/api/kernels")[0]["id"]
    cell = run_cell(nb.page, SLEEP, wait=False)
    expect(prompt(cell)).to_have_text(PROMPT_BUSY, timeout=10_000)
    nb.server.wait_kernel("busy", timeout=10)
    time.sleep(1)  # the container is up and `sleep` runs
    started = time.monotonic()
    interrupt(nb.page)
    expect(prompt(cell)).to_have_text(PROMPT_DONE, timeout=20_000)
    elapsed = time.monotonic() - started
    print(f"\n{nb.name}: the stop button ended `sleep 600` in {elapsed:.2f} s")
    assert elapsed < 5, f"interrupt took {elapsed:.1f} s"
    nb.server.wait_kernel("idle", timeout=10)
    assert [k["id"] for k in nb.server.api("/api/kernels")] == [kernel_id], "kernel restarted"
