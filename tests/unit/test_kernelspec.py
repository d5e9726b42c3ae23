"""The kernelspecs: one definition (kernelspec.py) for the wheel's, `rootfs-kernel install`'s
and `install --locked`'s, each with its logos (the launcher shows them; without, an "R"
tile); one version, extension/package.json's."""

from __future__ import annotations

import json
import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import rootfs_kernel
from rootfs_kernel import cli, kernelspec

REPO = Path(__file__).resolve().parents[2]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", data[16:24])


def assert_logos(spec: Path) -> None:
    # The names Jupyter looks for beside kernel.json (kernelspec resources).
    assert png_size(spec / "logo-32x32.png") == (32, 32)
    assert png_size(spec / "logo-64x64.png") == (64, 64)
    svg = ET.parse(spec / "logo-svg.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg" and svg.get("viewBox") == "0 0 64 64"


def test_the_wheels_kernelspec_runs_the_interpreter_jupyter_runs(tmp_path):
    spec = kernelspec.write(tmp_path / "rootfs", python="python3")   # as hatch_build.py
    assert_logos(spec)
    argv = json.loads((spec / "kernel.json").read_text())["argv"]
    assert argv == ["python3", "-m", "rootfs_kernel", "-f", "{connection_file}"]


@pytest.mark.parametrize(("flags", "name"), [([], "rootfs"), (["--locked"], "rootfs-locked")])
def test_install_writes_the_same_spec_with_this_interpreter(tmp_path, flags, name):
    assert cli.main(["install", *flags, "--prefix", str(tmp_path)]) == 0
    spec = tmp_path / "share/jupyter/kernels" / name
    assert_logos(spec)
    written = json.loads((spec / "kernel.json").read_text())
    assert written == kernelspec.kernel_json(locked=bool(flags))
    assert written["argv"][0] == sys.executable


def test_one_version_the_renderers():
    package = json.loads((REPO / "extension/package.json").read_text())
    assert rootfs_kernel.__version__ == package["version"]
