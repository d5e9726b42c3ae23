"""Issue 21, class 7 on the hub: deploy/jupyterhub/jupyterhub_config.py gives each student
a runtime directory of their own, and with ROOTFS_HUB_LOCKED=1 the settings that make the
locked kernel mean something (deploy/jupyterhub/README.md).

The hub's settings are read from the recipe itself and given to a real Jupyter Server
started as the student (the command line and environment the hub's spawner would give
jupyterhub-singleuser, a ServerApp too); JupyterHub itself runs in tests/deploy.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_boundary_runtime import VICTIM, setpriv, uid_of, victim_cells

from rootfs_kernel import kernelspec

RECIPE = Path(__file__).resolve().parents[2] / "deploy" / "jupyterhub" / "jupyterhub_config.py"
pytestmark = [pytest.mark.rootonly,
              pytest.mark.skipif(os.geteuid() != 0, reason="the hub runs as root")]


def hub_config(tmp: Path, **env: str):
    """The recipe's configuration, as JupyterHub's config loader would run it."""
    from traitlets.config import Config

    config = Config()
    saved = dict(os.environ)
    os.environ.update({"ROOTFS_HUB_STATE": str(tmp / "state"), **env})
    try:
        exec(compile(RECIPE.read_text(), str(RECIPE), "exec"), {"get_config": lambda: config})
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return config


@pytest.fixture
def public_tmp():
    """A directory under /tmp that students may walk through (pytest's is root's 0700)."""
    d = Path(tempfile.mkdtemp(prefix="rk-hub-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_each_student_gets_a_runtime_directory_of_their_own(public_tmp, scripts):
    """The hub's spawner passes no XDG_RUNTIME_DIR: the recipe makes one per student
    before the server starts, and the student's kernel keeps its directories there."""
    config = hub_config(public_tmp, ROOTFS_HUB_RUNTIME=str(public_tmp / "run"))
    spawner = SimpleNamespace(user=SimpleNamespace(name=VICTIM), environment={})
    config.Spawner.pre_spawn_hook(spawner)
    xdg = Path(spawner.environment["XDG_RUNTIME_DIR"])
    assert xdg == public_tmp / "run" / str(uid_of(VICTIM))
    st = os.lstat(xdg)
    assert st.st_uid == uid_of(VICTIM) and st.st_mode & 0o7777 == 0o700
    assert os.lstat(xdg.parent).st_uid == 0 and os.lstat(xdg.parent).st_mode & 0o022 == 0
    config.Spawner.pre_spawn_hook(spawner)   # again, at the next start: the same
    (result,) = victim_cells(VICTIM, scripts, [{"code": "echo ok"}], XDG_RUNTIME_DIR=str(xdg))
    assert result["ok"] and result["stdout"] == "ok\n", result
    base = os.lstat(xdg / "rootfs-kernel")
    assert base.st_uid == uid_of(VICTIM) and base.st_mode & 0o7777 == 0o700


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(prefix: Path, home: Path, args: list[str], env: dict[str, str]):
    """Jupyter Server from the environment `prefix`, as the student, with the hub's
    command-line options and environment; (process, url, token)."""
    port, token = free_port(), "t" + os.urandom(8).hex()
    proc = subprocess.Popen(
        [*setpriv(VICTIM), "env", "-i", f"HOME={home}", "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
         f"USER={VICTIM}", *(f"{k}={v}" for k, v in env.items()),
         str(prefix / "bin" / "python"), "-m", "jupyter_server", "--no-browser",
         f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={home}", *args],
        cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            api(url, token, "/api/status")
            return proc, url, token
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"jupyter server did not start: {proc.stderr.read()}") \
                    from None
            time.sleep(0.2)


def api(url: str, token: str, path: str, method: str = "GET") -> tuple[int, dict]:
    req = urllib.request.Request(url + path, method=method,
                                 headers={"Authorization": f"token {token}"},
                                 data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        if e.code in (403, 404):
            return e.code, {}
        raise


@pytest.fixture
def teacher_env(public_tmp):
    """An environment like the teacher's (root's, read-only to students) with the locked
    kernelspec installed as `rootfs-kernel install --locked --sys-prefix` puts it, its
    Python packages those of this one."""
    prefix = public_tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    site = Path(subprocess.run([str(prefix / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "teacher.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # The server extensions it enables (terminals among them), as pip installed them.
    shutil.copytree(Path(sys.prefix) / "etc" / "jupyter", prefix / "etc" / "jupyter")
    dest = prefix / "share" / "jupyter" / "kernels" / kernelspec.LOCKED_NAME
    dest.parent.mkdir(parents=True)
    kernelspec.write(dest, locked=True)
    subprocess.run(["chmod", "-R", "a+rX", str(public_tmp)], check=True)
    return prefix


def student_home(public_tmp: Path) -> Path:
    """A student's home holding an unlocked kernelspec named like the locked one, as a
    student would install it (`rootfs-kernel install --user`, renamed)."""
    home = public_tmp / "home"
    spec = home / ".local" / "share" / "jupyter" / "kernels" / kernelspec.LOCKED_NAME
    spec.parent.mkdir(parents=True)
    kernelspec.write(spec, locked=False)
    subprocess.run(["chown", "-R", VICTIM, str(home)], check=True)
    return home


@pytest.mark.parametrize("locked", [False, True])
def test_a_locked_class_offers_the_locked_kernel_only_and_no_terminal(public_tmp,
                                                                       teacher_env, locked):
    config = hub_config(public_tmp, ROOTFS_HUB_LOCKED="1" if locked else "0")
    args = list(config.Spawner.args) if "args" in config.Spawner else []
    env = dict(config.Spawner.environment) if "environment" in config.Spawner else {}
    home = student_home(public_tmp)
    proc, url, token = serve(teacher_env, home, args, env)
    try:
        _, specs = api(url, token, "/api/kernelspecs")
        listed = specs["kernelspecs"]
        terminal, _ = api(url, token, "/api/terminals", "POST")
        hidden, _ = api(url, token, "/api/contents/.local")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # The student's copy under the locked kernel's name is the one without the lock.
    argv = listed.get(kernelspec.LOCKED_NAME, {}).get("spec", {}).get("argv", [])
    students = "--RootfsKernel.host_access=False" not in argv
    if locked:
        assert sorted(listed) == [kernelspec.LOCKED_NAME] and not students, listed
        assert terminal == 404 and hidden == 404
    else:   # what the settings are for: without them, the student's spec wins
        assert len(listed) > 1 and students and terminal in (200, 201), (listed, terminal)
