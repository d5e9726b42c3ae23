"""Drive a real JupyterLab 4 / Notebook 7 with a live rootfs kernel from Debian's chromium.

Shared by tests/e2e/test_jupyterlab.py and scripts/screenshots.py: a server on loopback
with a temporary root, token and JUPYTER_* directories (the machine's `rootfs` kernelspec
linked in), helpers that run cells the way a person does (click, Shift+Enter, the stop
button), and one view API over the two ways a `%show` comparison can appear: the
extension's renderer (`.rfk-compare`) or, without it, the kernel's ipywidget.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("ROOTFS_TEST_CHROMIUM", "/usr/bin/chromium")
# Headless, and nothing that phones home: no background networking, sync, component or
# safe-browsing updates, metrics, translation or default-apps downloads.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-default-apps",
                 "--disable-client-side-phishing-detection", "--disable-domain-reliability",
                 "--disable-features=Translate,OptimizationHints,MediaRouter",
                 "--metrics-recording-only", "--no-first-run", "--no-default-browser-check",
                 "--safebrowsing-disable-auto-update", "--hide-scrollbars", "--mute-audio"]
VIEWPORT = {"width": 1280, "height": 900}
EXT_NAME = "rootfs-kernel-renderer"
TOKEN = "rootfs-e2e-token"
KERNEL = "rootfs"
APPS = {"lab": ("jupyterlab", "/lab/tree/{}"), "notebook": ("notebook", "/notebooks/{}")}
PROMPT_DONE = re.compile(r"^\s*\[\d+\]:?\s*$")
PROMPT_BUSY = re.compile(r"^\s*\[\*\]:?\s*$")


# --- what is installed -----------------------------------------------------------------------

def missing_requirements(app: str = "lab") -> str | None:
    """Why this machine cannot run the browser tests, or None."""
    if not Path(CHROMIUM).is_file():
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    import importlib.util

    for module, hint in (("playwright", "pip install playwright"),
                         (APPS[app][0], "pip install jupyterlab notebook")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is missing ({hint}; no browser download is needed)"
    if kernelspec_dir() is None:
        return "the rootfs kernelspec is not installed (pip install ., or rootfs-kernel install)"
    return None


def kernelspec_dir() -> Path | None:
    from jupyter_client.kernelspec import KernelSpecManager

    found = KernelSpecManager().find_kernel_specs().get(KERNEL)
    return Path(found) if found else None


def built_renderer() -> Path | None:
    """The JupyterLab renderer: this checkout's build, else an installed one."""
    built = REPO / "extension" / "labextension"
    if (built / "package.json").is_file():
        return built
    from jupyter_core.paths import jupyter_path

    for base in jupyter_path("labextensions"):
        if (Path(base) / EXT_NAME / "package.json").is_file():
            return Path(base) / EXT_NAME
    return None


# --- the server -------------------------------------------------------------------------------

@dataclass
class Server:
    app: str
    port: int
    root: Path
    log: Path
    proc: subprocess.Popen

    def url(self, notebook: str) -> str:
        path = APPS[self.app][1].format(notebook)
        return f"http://127.0.0.1:{self.port}{path}?token={TOKEN}"

    def api(self, path: str, method: str = "GET") -> object:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     headers={"Authorization": f"token {TOKEN}"})
        with urllib.request.urlopen(req, timeout=5) as r:
            body = r.read()
        return json.loads(body) if body else None

    def kernel_state(self) -> str | None:
        try:
            kernels = self.api("/api/kernels")
        except OSError:  # jupyter_server answers 500 while a kernel is half started
            return None
        return kernels[0]["execution_state"] if kernels else None

    def wait_kernel(self, state: str = "idle", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (seen := self.kernel_state()) != state:
            if time.monotonic() > deadline:
                raise AssertionError(f"kernel state {seen!r}, not {state!r}, after {timeout} s")
            time.sleep(0.2)

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@contextmanager
def jupyter_server(app: str, root: Path, work: Path, *, renderer: bool = True,
                   data_home: Path | None = None) -> Iterator[Server]:
    """`jupyter lab` or `jupyter notebook` on 127.0.0.1 serving ROOT, everything else of
    Jupyter's under WORK. renderer=False hides the extension (even an installed one), so
    the kernel's widget is what a person sees. DATA_HOME (XDG_DATA_HOME) holds the kernel's
    images; by default a fresh one under WORK."""
    module = APPS[app][0]
    spec = kernelspec_dir()
    if spec is None:
        raise RuntimeError("the rootfs kernelspec is not installed")
    home = work / "home"
    jpath = work / "jupyter-path"
    # Only the machine's rootfs kernelspec and (optionally) this build of the renderer,
    # ahead of whatever the environment has installed.
    (jpath / "kernels").mkdir(parents=True, exist_ok=True)
    (jpath / "kernels" / KERNEL).symlink_to(spec, target_is_directory=True)
    env = dict(os.environ, HOME=str(home), JUPYTER_PATH=str(jpath),
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               JUPYTER_PLATFORM_DIRS="1", XDG_DATA_HOME=str(data_home or work / "xdg-data"))
    env.pop("JUPYTER_TOKEN", None)
    if renderer:
        ext = built_renderer()
        if ext is None:
            raise RuntimeError("the renderer is not built (pip install ., or npm run build "
                               "in extension/)")
        (jpath / "labextensions").mkdir(exist_ok=True)
        (jpath / "labextensions" / EXT_NAME).symlink_to(ext, target_is_directory=True)
    else:
        _write_json(home / "config" / "labconfig" / "page_config.json",
                    {"disabledExtensions": {EXT_NAME: True}})
    # No news or update pop-ups over the notebook.
    _write_json(home / "settings" / "@jupyterlab" / "apputils-extension"
                / "notification.jupyterlab-settings",
                {"fetchNews": "false", "checkForUpdates": False})
    port = free_port()
    log = work / f"{app}-server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "--no-browser", "--ip=127.0.0.1", f"--port={port}",
             f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={TOKEN}",
             "--ServerApp.open_browser=False", "--ServerApp.allow_root=True",
             f"--KernelSpecManager.allowed_kernelspecs={KERNEL}",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    server = Server(app, port, root, log, proc)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                server.api("/api/status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{module} did not start:\n{server.tail()}") from None
                time.sleep(0.3)
        yield server
    finally:
        # Shut kernels down through the server (the kernel tears its cells down), then stop.
        try:
            for k in server.api("/api/kernels") or []:
                server.api(f"/api/kernels/{k['id']}", method="DELETE")
        except OSError:
            pass
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the notebook -----------------------------------------------------------------------------

STREAM_CELL = "echo first line; sleep 3; echo second line"
FAIL_CELL = "echo before the failure\nexit 3"
MOUNTS_CELL = "%root none\n%mount tmpfs /tmp\n%show mounts\nmount | grep ' /tmp '"
LISTING_CELL = ("%show ls /etc\n"
                "mkdir -p /etc/rfk-demo/inner\n"
                "echo hello > /etc/rfk-demo/hello\n"
                "rm /etc/hostname")
SLEEP_CELL = "sleep 600"


def write_notebook(path: Path, cells: list[str], intro: str | None = None) -> None:
    nb = new_notebook(metadata={
        "kernelspec": {"name": KERNEL, "display_name": "Rootfs (sh)", "language": "shell"},
        "language_info": {"name": "shell"}})
    if intro:
        nb.cells.append(new_markdown_cell(intro))
    nb.cells.extend(new_code_cell(c) for c in cells)
    nbformat.write(nb, str(path))


def copy_notebook(src: Path, root: Path) -> str:
    shutil.copy(src, root / src.name)
    return src.name


# --- the page ---------------------------------------------------------------------------------

def launch(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@contextmanager
def lab_page(root: Path, work: Path, *, renderer: bool = True, width: int = 1280,
             height: int = 900):
    """JupyterLab serving root (jupyter_server) and a chromium page of width x height:
    yields (server, page); both are gone after."""
    from playwright.sync_api import sync_playwright

    with jupyter_server("lab", root, work, renderer=renderer) as server, \
            sync_playwright() as pw:
        browser = launch(pw)
        try:
            yield server, browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def artifacts() -> Path:
    """test-artifacts/: the screenshots (and logs) the browser tests leave."""
    out = REPO / "test-artifacts"
    out.mkdir(exist_ok=True)
    return out


def open_notebook(page, server: Server, name: str, *, kernel: bool = True) -> None:
    page.goto(server.url(name))
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    if kernel:
        server.wait_kernel("idle", timeout=60)
        # The front-end's own status must say idle too before keys go to the notebook.
        page.wait_for_function(
            "() => { const n = document.querySelector('.jp-Notebook-ExecutionIndicator');"
            " return !n || n.getAttribute('data-status') === 'idle'; }", timeout=30_000)


def code_cell(page, index: int):
    return page.locator(".jp-Notebook .jp-CodeCell").nth(index)


def prompt(cell):
    return cell.locator(".jp-InputArea-prompt").first


def run_cell(page, index: int, *, wait: bool = True, timeout: float = 60_000):
    """Click into code cell INDEX and press Shift+Enter, as a person does."""
    from playwright.sync_api import expect

    cell = code_cell(page, index)
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    if wait:
        expect(prompt(cell)).to_have_text(PROMPT_DONE, timeout=timeout)
    return cell


def outputs(cell):
    return cell.locator(".jp-OutputArea-output")


def interrupt(page) -> None:
    """The toolbar's stop button (JupyterLab and Notebook 7 share the notebook toolbar)."""
    page.locator('.jp-NotebookPanel-toolbar [data-command="notebook:interrupt-kernel"]'
                 ).first.click()


# --- the comparison, whichever front-end shows it ---------------------------------------------

class View:
    """One `%show` comparison as displayed: the renderer's or the widget's table."""

    kind = ""

    def __init__(self, page, root) -> None:
        self.page, self.root = page, root

    @staticmethod
    def find(page, cell, timeout: float = 30_000) -> View:
        """The comparison shown in CELL's output: renderer or widget, whichever appears."""
        renderer = cell.locator(".rfk-compare")
        widget = cell.locator(".jp-OutputArea-output .widget-vbox")
        either = renderer.or_(widget).first
        either.wait_for(timeout=timeout)
        if renderer.count():
            return RendererView(page, renderer.first)
        return WidgetView(page, widget.first)

    # Each subclass: heading, rows, key cells, mark of a row, toggle, open a directory.
    def rows(self, status: str | None = None):
        sel = f'tr[data-status="{status}"]' if status else "tr[data-status]"
        return self.root.locator(sel)

    def row(self, key: str):
        cell = self.page.locator(self.key_selector, has_text=re.compile(rf"^{re.escape(key)}$"))
        return self.rows().filter(has=cell).first


class RendererView(View):
    kind = "renderer"
    key_selector = "td.rfk-key"

    def heading(self):
        return self.root.locator(".rfk-heading")

    def mark(self, row) -> str:
        return row.locator("td.rfk-mark").inner_text().strip()

    def toggle_differences(self) -> None:
        self.root.locator(".rfk-diff-toggle").click()

    def show_all(self) -> None:
        self.root.locator(".rfk-show-all").click()

    def open(self, name: str) -> None:
        self.root.locator("button.rfk-open", has_text=re.compile(rf"^{re.escape(name)}/?$")
                          ).first.click()


class WidgetView(View):
    kind = "widget"
    # The kernel's HTML table: mark, key, [side], values, note (html.py).
    key_selector = "td.rfk-key"

    def heading(self):
        return self.root.locator(".rfk-title")

    def mark(self, row) -> str:
        return row.locator("td.rfk-mark").inner_text().strip()

    def toggle_differences(self) -> None:
        self.root.locator("button", has_text="differences only").click()

    def show_all(self) -> None:
        self.root.locator("button", has_text=re.compile("show all|collapse")).click()

    def open(self, name: str) -> None:
        self.root.locator(".widget-dropdown select").select_option(label=f"{name}/")


# --- screenshots ------------------------------------------------------------------------------

def shoot(locator, path: Path) -> Path:
    """An element screenshot (cropped to LOCATOR), without the text cursor."""
    path.parent.mkdir(parents=True, exist_ok=True)
    locator.scroll_into_view_if_needed()
    locator.page.mouse.move(0, 0)
    locator.screenshot(path=str(path), animations="disabled", caret="hide")
    return path


# --- saved notebooks: the views as the kernel saves them, opened without a kernel --------

def saved_notebook(path: Path, payloads: list[dict], *, html_only: bool = False) -> None:
    """Outputs as the kernel saves them (compare JSON, HTML, text, a widget view whose
    model is gone); html_only keeps the static HTML alone, as GitHub or nbconvert show."""
    cells = []
    from rootfs_kernel.views import view_bundle

    for i, p in enumerate(payloads):
        data, _ = view_bundle(p, widget=False)
        if html_only:
            data = {"text/html": data["text/html"], "text/plain": data["text/plain"]}
        else:
            data["application/vnd.jupyter.widget-view+json"] = {
                "model_id": f"{i:032d}", "version_major": 2, "version_minor": 0}
        cells.append(new_code_cell("%show ...", execution_count=i + 1,
                                   outputs=[new_output("display_data", data=data)]))
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "rootfs", "display_name": "Rootfs (sh)", "language": "shell"}})
    nbformat.write(nb, str(path))


def dark_theme(work: Path) -> None:
    settings = work / "home" / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "themes.jupyterlab-settings").write_text('{"theme": "JupyterLab Dark"}')


def open_saved(page, server, name: str) -> None:
    """Open a saved notebook with no kernel (the dialog that offers one is dismissed)."""
    from playwright.sync_api import TimeoutError as Timeout

    page.goto(server.url(name))
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    dialog = page.locator(".jp-Dialog")
    try:
        dialog.first.wait_for(timeout=4000)
        no_kernel = dialog.get_by_role("button", name="No Kernel")
        (no_kernel.first if no_kernel.count() else dialog.get_by_role("button").first).click()
    except Timeout:
        pass



# Contrast of every text element against the background it is drawn on, from the
# computed colours (canvas turns any CSS colour into sRGB bytes; translucent layers are
# composited from the page background up).
CONTRAST_JS = """
root => {
  const ctx = document.createElement('canvas').getContext('2d', {willReadFrequently: true});
  const rgba = css => { ctx.clearRect(0, 0, 1, 1); ctx.fillStyle = '#000';
    ctx.fillStyle = css; ctx.fillRect(0, 0, 1, 1);
    const d = ctx.getImageData(0, 0, 1, 1).data; return [d[0], d[1], d[2], d[3] / 255]; };
  const over = (top, base) => [0, 1, 2].map(i => top[i] * top[3] + base[i] * (1 - top[3]));
  const lum = c => { const f = v => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const background = el => { const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor); if (c[3] > 0) layers.push(c);
      if (c[3] >= 1) break; }
    let base = [255, 255, 255];
    for (const c of layers.reverse()) base = over(c, base);
    return base; };
  const out = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement; if (!n.textContent.trim() || !el.offsetParent) continue;
    const bg = background(el); const fg = over(rgba(getComputedStyle(el).color), bg);
    const [a, b] = [lum(fg), lum(bg)];
    out.push({text: n.textContent.trim().slice(0, 40),
              ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)}); }
  return out;
}
"""
