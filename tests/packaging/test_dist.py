"""What goes to PyPI, built as scripts/build-dist.sh builds it, from a fresh copy of the
tracked sources (no node_modules, no built renderer, no compiled init):

- the wheel's tag is manylinux (auditwheel), for every Python 3, and it needs no external
  shared library;
- the sdist carries the built JupyterLab renderer, and installs into a fresh virtualenv
  with node and npm off the PATH (a C compiler compiles rootfs-init);
- from either install, with a fresh HOME, a cell runs without compiling anything, and the
  kernelspec and the renderer are where Jupyter looks for them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NODE_TOOLS = {"node", "nodejs", "npm", "npx", "corepack"}
pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1500)]


def tracked_sources(dest: Path) -> None:
    """The files a fresh clone has (git ls-files), or, from an sdist, its files minus what
    is built."""
    if (REPO / ".git").exists() and shutil.which("git"):
        names = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached",
                                "--others", "--exclude-standard"], check=True,
                               capture_output=True).stdout.decode().split("\0")
        for name in filter(None, names):
            if (REPO / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, dest / name)
    else:
        shutil.copytree(REPO, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            "node_modules", "labextension", "lib", "*.tsbuildinfo", "__pycache__",
            "rootfs-init", "dist"))


def without_node(tmp: Path) -> str:
    """A PATH with every program of the system's PATH but Node.js and npm."""
    shadow = tmp / "bin-without-node"
    shadow.mkdir()
    for d in ("/usr/local/bin", "/usr/bin", "/bin"):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            if name not in NODE_TOOLS and not (shadow / name).exists():
                (shadow / name).symlink_to(os.path.join(d, name))
    path = str(shadow)
    assert all(shutil.which(t, path=path) is None for t in NODE_TOOLS)
    assert shutil.which("cc", path=path) or shutil.which("gcc", path=path)
    return path


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing: building the sdist builds the renderer")
    src = tmp_path_factory.mktemp("clone")
    tracked_sources(src)
    assert not (src / "extension/labextension").exists()
    out = tmp_path_factory.mktemp("dist")
    run = subprocess.run(["bash", str(src / "scripts/build-dist.sh"), str(out)],
                         capture_output=True, text=True, timeout=1200,
                         env={**os.environ, "PYTHON": sys.executable})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out


def test_the_wheel_has_a_manylinux_tag_for_every_python3(dist: Path) -> None:
    [whl] = dist.glob("rootfs_kernel-*.whl")
    assert "-py3-none-manylinux" in whl.name, whl.name
    [wheel_file] = [n for n in zipfile.ZipFile(whl).namelist()
                    if n.endswith(".dist-info/WHEEL")]
    tags = [line.split(": ", 1)[1] for line in zipfile.ZipFile(whl).read(
        wheel_file).decode().splitlines() if line.startswith("Tag: ")]
    assert tags and all(t.startswith("py3-none-manylinux") for t in tags), tags
    show = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(whl)],
                          capture_output=True, text=True, env={**os.environ, "PATH":
                          f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert "requires no external shared libraries" in show.stdout, show.stdout + show.stderr
    names = zipfile.ZipFile(whl).namelist()
    assert "rootfs_kernel/sandbox/rootfs-init" in names
    assert "rootfs_kernel/sandbox/bin/display" in names   # every cell's `display`
    assert any(n.endswith("labextensions/rootfs-kernel-renderer/static/style.js")
               for n in names)
    for spec_file in ("kernel.json", "logo-64x64.png", "logo-svg.svg"):
        assert any(n.endswith(f"share/jupyter/kernels/rootfs/{spec_file}") for n in names)


def test_the_sdist_carries_the_built_renderer_and_no_build_leftovers(dist: Path) -> None:
    [sdist] = dist.glob("rootfs_kernel-*.tar.gz")
    names = tarfile.open(sdist).getnames()
    top = names[0].split("/")[0]
    for built in ("extension/labextension/package.json",
                  "extension/labextension/static/style.js",
                  "extension/labextension/install.json"):
        assert f"{top}/{built}" in names, built
    assert not any("/node_modules/" in n or n.endswith(("/rootfs-init", "/bin/display"))
                   for n in names)
    for source in ("kernel/rootfs_kernel/sandbox/init.c",
                   "kernel/rootfs_kernel/sandbox/display.c", "hatch_build.py",
                   "extension/package.json", "extension/src/index.ts"):
        assert f"{top}/{source}" in names, source


def _venv(tmp: Path, path: str) -> Path:
    venv = tmp / "venv"
    subprocess.run(["/usr/bin/python3" if os.path.exists("/usr/bin/python3")
                    else sys.executable, "-m", "venv", str(venv)], check=True)
    return venv


def _runs_a_cell(venv: Path, tmp: Path, path: str) -> None:
    home = tmp / "home"
    home.mkdir()
    env = {"PATH": f"{venv / 'bin'}:{path}", "HOME": str(home), "LANG": "C.UTF-8"}
    code = ("import rootfs_kernel\n"
            "r = rootfs_kernel.run('echo from $(cat /etc/hostname 2>/dev/null || echo a) cell')\n"
            "print(r.status, r.stdout.strip())\n")
    run = subprocess.run([str(venv / "bin/python"), "-c", code], capture_output=True,
                         text=True, env=env, timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("0 from"), run.stdout + run.stderr
    # nothing was compiled: the wheel's rootfs-init ran, with its `display`
    assert not list((home / ".cache").glob("rootfs-kernel/rootfs-init-*")), \
        list((home / ".cache").rglob("*"))
    assert not list((home / ".cache").glob("rootfs-kernel/display-*")), \
        list((home / ".cache").rglob("*"))
    specs = subprocess.run([str(venv / "bin/jupyter"), "kernelspec", "list"], env=env,
                           capture_output=True, text=True)
    assert "rootfs" in specs.stdout.split(), specs.stdout + specs.stderr
    assert (venv / "share/jupyter/labextensions/rootfs-kernel-renderer/static/style.js"
            ).is_file()


@pytest.mark.parametrize("pattern", ["rootfs_kernel-*.tar.gz", "rootfs_kernel-*.whl"],
                         ids=["sdist", "manylinux-wheel"])
def test_each_distribution_installs_without_node_and_runs_a_cell(dist: Path, tmp_path: Path,
                                                                 pattern: str) -> None:
    path = without_node(tmp_path)
    venv = _venv(tmp_path, path)
    [built] = dist.glob(pattern)
    run = subprocess.run([str(venv / "bin/pip"), "install", "-q", str(built)],
                         capture_output=True, text=True, timeout=900,
                         env={**os.environ, "PATH": f"{venv / 'bin'}:{path}"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    _runs_a_cell(venv, tmp_path, path)
