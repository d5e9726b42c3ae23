"""The wheel carries the prebuilt JupyterLab renderer and the compiled container init,
built from a clean copy of the sources (no node_modules, no earlier build) as on a fresh
machine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PREFIX = "share/jupyter/labextensions/rootfs-kernel-renderer/"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing: the wheel build needs Node.js >= 18 and npm")
    src = tmp_path_factory.mktemp("src")
    skip = shutil.ignore_patterns("node_modules", "labextension", "lib", "*.tsbuildinfo",
                                  "__pycache__", "rootfs-init")
    for name in ("kernel", "extension"):
        shutil.copytree(REPO / name, src / name, ignore=skip)
    for name in ("pyproject.toml", "README.md", "hatch_build.py"):
        shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "-w", str(out),
                          "--no-deps", "-q"], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    [whl] = out.glob("rootfs_kernel-*.whl")
    return zipfile.ZipFile(whl)


def _ext_files(whl: zipfile.ZipFile) -> dict[str, str]:
    """Labextension files, by their path below the labextension directory."""
    out = {}
    for name in whl.namelist():
        _, sep, rest = name.partition(".data/data/" + PREFIX)
        if sep:
            out[rest] = name
    return out


def test_wheel_ships_the_labextension(wheel: zipfile.ZipFile) -> None:
    files = _ext_files(wheel)
    assert {"package.json", "install.json", "static/style.js"} <= files.keys(), sorted(files)
    assert any(f.startswith("static/remoteEntry.") for f in files)
    meta = json.loads(wheel.read(files["package.json"]))
    assert meta["name"] == "rootfs-kernel-renderer"
    build = meta["jupyterlab"]["_build"]
    assert build["load"].startswith("static/remoteEntry.") and build["mimeExtension"]
    install = json.loads(wheel.read(files["install.json"]))
    assert install["packageName"] == "rootfs-kernel"


def test_wheel_has_no_sources_or_node_modules(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert not [n for n in names if "node_modules" in n or n.endswith((".ts", ".tsx"))]
    assert "rootfs_kernel/__init__.py" in names


def test_wheel_ships_the_compiled_container_init(wheel: zipfile.ZipFile) -> None:
    """rootfs-init (sandbox/init.c) is in the wheel, executable, for this platform."""
    info = wheel.getinfo("rootfs_kernel/sandbox/rootfs-init")
    assert (info.external_attr >> 16) & 0o111 == 0o111
    assert wheel.read(info)[:4] == b"\x7fELF"
    tags = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/WHEEL")))
    assert b"Root-Is-Purelib: false" in tags and b"-none-any" not in tags
