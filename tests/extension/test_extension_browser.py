"""A real browser opens a saved notebook in JupyterLab 4 and Notebook 7, with its kernel
never started and no widget state, and the prebuilt renderer shows the comparisons.

Debian's chromium driven by Playwright for Python (no browser download). Screenshots go
to test-artifacts/, and the page's console log too when a check fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from e2e.jupyter_e2e import CHROMIUM, EXT_NAME, REPO, built_renderer, free_port
from notebook_fixture import write_notebook

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking"]
TOKEN = "rootfs-test-token"

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Playwright for Python is missing (pip install playwright)")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


def _api(port: int, path: str) -> object:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


APPS = {"lab": ("jupyterlab", "/lab/tree/compare.ipynb"),
        "notebook": ("notebook", "/notebooks/compare.ipynb")}


# A notebook reopened by its author is trusted (signed when saved): then the ipywidgets
# renderer competes too, and shows "model not found" if it wins. Untrusted, only safe
# renderers (ours, text/html) are candidates.
@pytest.fixture(params=[("lab", False), ("lab", True), ("notebook", True)],
                ids=["lab-untrusted", "lab-trusted", "notebook-trusted"])
def server(request: pytest.FixtureRequest, tmp_path: Path):
    app, trusted = request.param
    module, url_path = APPS[app]
    pytest.importorskip(module, reason=f"{module} is missing (pip install jupyterlab notebook)")
    ext = built_renderer()
    if ext is None:
        pytest.skip("the renderer is not built: `pip install .`, or `npm install && npm run "
                    "build` in extension/")
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    payloads = write_notebook(root / "compare.ipynb", tmp_path / "listing")
    # Only this build of the renderer: a JUPYTER_PATH entry ahead of any installed one.
    jpath = tmp_path / "jupyter-path"
    (jpath / "labextensions").mkdir(parents=True)
    (jpath / "labextensions" / EXT_NAME).symlink_to(ext, target_is_directory=True)
    env = dict(os.environ, HOME=str(home), JUPYTER_PATH=str(jpath),
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    if trusted:
        from nbformat.sign import NotebookNotary

        Path(env["JUPYTER_DATA_DIR"]).mkdir(parents=True)
        nb = nbformat.read(str(root / "compare.ipynb"), as_version=4)
        NotebookNotary(data_dir=env["JUPYTER_DATA_DIR"]).sign(nb)
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={TOKEN}",
         "--ServerApp.open_browser=False", "--ServerApp.allow_root=True",
         # No kernel can be started: the notebook's kernelspec is not offered.
         "--KernelSpecManager.allowed_kernelspecs=no-kernel-in-this-test",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _api(port, "/api/status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{module} did not start:\n"
                                + (tmp_path / "server.log").read_text()[-3000:])
                time.sleep(0.3)
        cells = _api(port, "/api/contents/compare.ipynb")["content"]["cells"]
        assert cells[0]["metadata"].get("trusted", False) is trusted
        yield {"app": f"{app}-{'trusted' if trusted else 'untrusted'}", "port": port, "url": f"http://127.0.0.1:{port}{url_path}"
               f"?token={TOKEN}", "payloads": payloads}
        assert _api(port, "/api/kernels") == [], "a kernel was started"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _dismiss_kernel_dialog(page) -> None:
    """The front-end asks for a kernel it cannot find; answer "no kernel"."""
    dialog = page.locator(".jp-Dialog")
    try:
        dialog.first.wait_for(timeout=5000)
    except sync_api.TimeoutError:
        return
    no_kernel = dialog.get_by_role("button", name="No Kernel")
    if no_kernel.count():
        no_kernel.first.click()
    else:
        page.keyboard.press("Escape")
    dialog.first.wait_for(state="detached", timeout=5000)


def _artifacts(tmp_path: Path) -> Path:
    try:
        ARTIFACTS.mkdir(exist_ok=True)
        return ARTIFACTS
    except OSError:  # a read-only checkout: keep them with the test's temporary files
        return tmp_path


def test_saved_notebook_renders_without_kernel(server: dict, tmp_path: Path) -> None:
    app, payloads = server["app"], server["payloads"]
    out = _artifacts(tmp_path)
    console: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
        try:
            _check_page(page, server["url"], payloads, app, out)
        except BaseException:
            page.screenshot(path=str(out / f"extension-{app}-failure.png"), full_page=True)
            (out / f"extension-{app}-console.log").write_text("\n".join(console) + "\n")
            raise
        finally:
            browser.close()


def _check_page(page, url: str, payloads: dict, app: str, out: Path) -> None:
    page.goto(url)
    views = page.locator(".rfk-compare")
    views.first.wait_for(timeout=60_000)
    _dismiss_kernel_dialog(page)
    # One view per output: the three comparisons and the future-version message.
    sync_api.expect(views).to_have_count(4, timeout=20_000)
    mounts_view, listing_view, changes_view, future_view = (views.nth(i) for i in range(4))
    assert page.get_by_text("model not found").count() == 0

    # Mounts: a long table starts collapsed to its differences, under its headline.
    rows = payloads["mounts"]["rows"]
    n_lines = sum(2 if r["status"] == "differs" else 1 for r in rows)
    n_same = sum(r["status"] == "same" for r in rows)
    mounts_view.scroll_into_view_if_needed()
    sync_api.expect(mounts_view.locator(".rfk-headline")).to_have_text(
        payloads["mounts"]["headline"])
    sync_api.expect(mounts_view.locator("tr.rfk-row")).to_have_count(n_lines - n_same)
    show_all = mounts_view.locator(".rfk-show-all")
    sync_api.expect(show_all).to_have_text(f"show all {len(rows)} rows")
    show_all.click()
    # Then one line per row, two for each "differs" row; the marks of each status.
    sync_api.expect(mounts_view.locator("tr.rfk-row")).to_have_count(n_lines)
    marks = {m.strip() for m in mounts_view.locator("td.rfk-mark").all_inner_texts()}
    assert {"+", "-", "~", ""} <= marks
    assert n_same and mounts_view.locator('tr[data-status="same"]').count() == n_same
    sync_api.expect(mounts_view.locator(".rfk-heading")).to_contain_text(payloads["mounts"]["title"])
    sync_api.expect(mounts_view.locator("td.rfk-differs-value").first).to_be_visible()
    page.screenshot(path=str(out / f"extension-{app}.png"), full_page=False)

    # Differences only: the "same" rows go, every other line stays.
    mounts_view.locator(".rfk-diff-toggle").click()
    sync_api.expect(mounts_view.locator('tr[data-status="same"]')).to_have_count(0)
    sync_api.expect(mounts_view.locator("tr.rfk-row")).to_have_count(n_lines - n_same)
    mounts_view.scroll_into_view_if_needed()
    page.screenshot(path=str(out / f"extension-{app}-differences-only.png"))

    # Filter box.
    mounts_view.locator(".rfk-filter").fill("/tmp")
    sync_api.expect(mounts_view.locator("td.rfk-key", has_text="/tmp").first).to_be_visible()
    keys = mounts_view.locator("td.rfk-key").all_inner_texts()
    assert keys and all("tmp" in k for k in keys)

    # Sorting by the key column, both ways.
    mounts_view.locator(".rfk-filter").fill("")
    mounts_view.locator(".rfk-diff-toggle").click()
    mounts_view.locator("th button.rfk-sort", has_text="mount point").click()
    keys = mounts_view.locator("td.rfk-key").all_inner_texts()
    assert len(keys) == len(rows)
    mounts_view.locator("th button.rfk-sort", has_text="mount point").click()
    assert mounts_view.locator("td.rfk-key").all_inner_texts() == keys[::-1]

    # Listing: open etc/, then etc/ssl/, then back to the top through the breadcrumb.
    listing_view.scroll_into_view_if_needed()
    listing_view.locator("button.rfk-open", has_text="etc/").click()
    sync_api.expect(listing_view.locator(".rfk-heading")).to_contain_text(", in etc/")
    for name, mark in (("added", "+"), ("gone", "-"), ("hosts", "~")):
        row = listing_view.locator("tr.rfk-row", has=page.locator("td.rfk-key", has_text=name))
        assert row.first.locator("td.rfk-mark").inner_text().strip() == mark
    listing_view.locator("button.rfk-open", has_text="ssl/").click()
    sync_api.expect(listing_view.locator("td.rfk-key", has_text="extra.pem")).to_have_count(1)
    listing_view.locator("button.rfk-crumb").first.click()
    sync_api.expect(listing_view.locator("button.rfk-open", has_text="etc/")).to_have_count(1)

    # One-sided changes: no side column, the summary and the truncation note.
    sync_api.expect(changes_view.locator(".rfk-heading")).to_contain_text("2 added, 1 changed, "
                                                                     "1 deleted")
    assert changes_view.locator(".rfk-diff-toggle").count() == 0  # nothing to hide there
    sync_api.expect(changes_view.locator(".rfk-truncated")).to_contain_text("cut at 4 entries")
    assert changes_view.locator("td.rfk-side").count() == 0

    # A payload from an unknown major version: a clear message and the plain text.
    sync_api.expect(future_view.locator(".rfk-error-message")).to_contain_text(
        "payload version 3")
    sync_api.expect(future_view.locator("pre.rfk-fallback")).to_contain_text(
        "From a future kernel")

