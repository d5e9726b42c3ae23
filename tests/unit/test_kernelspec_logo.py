"""The kernelspec carries its logos (the launcher shows them; without, an "R" tile)."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path

SPEC = Path(__file__).resolve().parents[2] / "kernel" / "kernelspec"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_the_kernelspec_has_its_three_logo_files() -> None:
    # The names Jupyter looks for beside kernel.json (kernelspec resources).
    assert png_size(SPEC / "logo-32x32.png") == (32, 32)
    assert png_size(SPEC / "logo-64x64.png") == (64, 64)
    svg = ET.parse(SPEC / "logo-svg.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg" and svg.get("viewBox") == "0 0 64 64"
