"""JupyterHub for a class, on this machine, started as deploy/jupyterhub/README.md says.

Two students (real system accounts) log in from chromium, each runs cells and a `%show`
view in JupyterLab; each one's server, kernel and cells run as that student (rootless
mode); one student's cells cannot read what Unix permissions deny them of the other's,
neither through `%bind` nor in a `%%host` cell, while the owner can. When the hub stops,
nothing of the students' is left running.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from e2e.jupyter_e2e import (
    CHROMIUM,
    VIEWPORT,
    View,
    free_port,
    launch,
    outputs,
    run_cell,
    write_notebook,
)

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "jupyterhub" / "jupyterhub_config.py"
GROUP = "rkstudents"
STUDENTS = ("rkstudent1", "rkstudent2")
SECRET = "homework of rkstudent1: 42"
CACHE = Path(os.environ.get("ROOTFS_DEPLOY_CACHE", "/var/cache/rootfs-kernel/deploy"))


def proxy() -> str | None:
    found = os.environ.get("ROOTFS_HUB_PROXY") or shutil.which("configurable-http-proxy")
    cached = CACHE / "chp/node_modules/.bin/configurable-http-proxy"
    return found or (str(cached) if cached.exists() else None)


def missing() -> str | None:
    if os.geteuid() != 0:
        return "a hub that starts servers as other users runs as root"
    if shutil.which("jupyterhub", path=str(Path(sys.executable).parent)) is None:
        return "jupyterhub is not installed here: run scripts/test-deploy.sh"
    if proxy() is None:
        return "configurable-http-proxy is missing: run scripts/test-deploy.sh"
    if not Path(CHROMIUM).is_file():
        return f"no chromium at {CHROMIUM}"
    return None


pytestmark = [pytest.mark.deploy, pytest.mark.rootonly,
              pytest.mark.skipif(bool(missing()), reason=missing() or ""),
              pytest.mark.timeout(900)]

CELLS = {
    "whoami": "echo cell root is uid $(id -u); cat /etc/hostname 2>/dev/null; true",
    "host": "%%host\necho on the host as $(id -un)",
    "view": "%root none\n%mount tmpfs /tmp\n%show mounts\nmount | grep ' /tmp '",
    "bind": "%bind /home/rkstudent1 /data\ncat /data/homework.txt",
    "host-read": "%%host\ncat /home/rkstudent1/homework.txt",
}


def _run(*cmd: str, input: str | None = None) -> None:
    subprocess.run(cmd, check=True, input=input, text=True, capture_output=True)


@pytest.fixture(scope="module")
def students() -> dict[str, str]:
    """The class: a group and two accounts with fresh passwords, each with a notebook;
    rkstudent1 has a file only its owner may read."""
    if subprocess.run(["getent", "group", GROUP], capture_output=True).returncode:
        _run("groupadd", GROUP)
    passwords = {}
    for name in STUDENTS:
        if subprocess.run(["id", "-u", name], capture_output=True).returncode:
            _run("useradd", "--create-home", "--shell", "/bin/bash", "-G", GROUP, name)
        passwords[name] = secrets.token_urlsafe(12)
        _run("chpasswd", input=f"{name}:{passwords[name]}\n")
        user = pwd.getpwnam(name)
        home = Path(user.pw_dir)
        nb = home / "class.ipynb"
        write_notebook(nb, list(CELLS.values()))
        settings = (home / ".jupyter/lab/user-settings/@jupyterlab/apputils-extension"
                    / "notification.jupyterlab-settings")
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text('{"fetchNews": "false", "checkForUpdates": false}')
        for p in [nb, *(home / ".jupyter").rglob("*"), home / ".jupyter"]:
            os.chown(p, user.pw_uid, user.pw_gid)
    owner = pwd.getpwnam("rkstudent1")
    secret = Path(owner.pw_dir) / "homework.txt"
    secret.write_text(SECRET + "\n")
    os.chown(secret, owner.pw_uid, owner.pw_gid)
    os.chmod(secret, 0o600)
    os.chmod(owner.pw_dir, 0o755)     # the home may be entered, the file not read
    return passwords


@pytest.fixture(scope="module")
def hub(students, tmp_path_factory):
    """`jupyterhub -f deploy/jupyterhub/jupyterhub_config.py`, as the README starts it, on
    free ports (the proxy's and the hub's own API ports too)."""
    work = tmp_path_factory.mktemp("hub")
    port = free_port()
    env = {**os.environ, "ROOTFS_HUB_URL": f"http://127.0.0.1:{port}",
           "ROOTFS_HUB_GROUP": GROUP, "ROOTFS_HUB_STATE": str(work / "state"),
           "ROOTFS_HUB_PROXY": proxy(),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    log = work / "jupyterhub.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(CONFIG),
             f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{free_port()}",
             f"--JupyterHub.hub_bind_url=http://127.0.0.1:{free_port()}"],
            cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/hub/api", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("the hub did not start:\n"
                                         + log.read_text()[-4000:]) from None
                time.sleep(0.3)
        yield url, proc, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _processes_of(uids: set[int]) -> list[tuple[int, int, str]]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            st = os.stat(f"/proc/{pid}")
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if st.st_uid in uids:
            out.append((int(pid), st.st_uid, comm))
    return out


def _login(browser, url: str, name: str, password: str):
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    page.goto(f"{url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(re.compile(rf"/user/{name}/lab"), timeout=120_000)
    page.goto(f"{url}/user/{name}/lab/tree/class.ipynb")
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=60_000)
    page.wait_for_function(
        "() => { const n = document.querySelector('.jp-Notebook-ExecutionIndicator');"
        " return n && n.getAttribute('data-status') === 'idle'; }", timeout=90_000)
    return ctx, page


def _text(page, index: int) -> str:
    return outputs(run_cell(page, index, timeout=90_000)).all_inner_texts()


def test_two_students_log_in_run_cells_and_views_and_stay_apart(hub, students):
    from playwright.sync_api import sync_playwright

    url, proc, log = hub
    uids = {name: pwd.getpwnam(name).pw_uid for name in STUDENTS}
    index = {key: i for i, key in enumerate(CELLS)}
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            pages = {name: _login(browser, url, name, students[name]) for name in STUDENTS}
            for name, (_, page) in pages.items():
                # a cell: root inside, in the image (not the host's /etc/hostname)
                text = " ".join(_text(page, index["whoami"]))
                assert "cell root is uid 0" in text, (name, text)
                # a %%host cell runs as the student
                assert f"on the host as {name}" in " ".join(_text(page, index["host"]))
                # a %show view
                cell = run_cell(page, index["view"], timeout=90_000)
                view = View.find(page, cell, timeout=60_000)
                assert view.mark(view.row("/tmp")) == "+", (name, view.kind)
                assert "none on /tmp type tmpfs" in " ".join(outputs(cell).all_inner_texts())
            # Unix permissions between students hold in cells as outside
            owner, other = pages["rkstudent1"][1], pages["rkstudent2"][1]
            assert SECRET in " ".join(_text(owner, index["bind"]))
            assert SECRET in " ".join(_text(owner, index["host-read"]))
            for key in ("bind", "host-read"):
                text = " ".join(_text(other, index[key]))
                assert SECRET not in text and "Permission denied" in text, (key, text)
            # every kernel's helper runs as its student, none as root
            helpers = [(p, uid) for p, uid, comm in _processes_of(set(uids.values()))
                       if comm == "rootfs-helper"]
            assert {uid for _, uid in helpers} == set(uids.values()), helpers
        finally:
            browser.close()
    # the hub stops each student's server, kernels and cells with it
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while _processes_of(set(uids.values())) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_of(set(uids.values())) == [], log.read_text()[-3000:]
