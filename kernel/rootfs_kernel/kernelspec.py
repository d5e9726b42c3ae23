"""The kernelspecs `rootfs` and `rootfs-locked`: their one definition.

Runs in: the CLI (`rootfs-kernel install [--locked]`) and the wheel build (hatch_build.py
imports it from the source tree, where none of the package's dependencies is installed,
and ships what write() makes as the wheel's share/jupyter/kernels/rootfs). Standard
library only, for that reason.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

NAME = "rootfs"
LOCKED_NAME = "rootfs-locked"
# The logos Jupyter's launcher shows (kernelspec resources, beside kernel.json). The SVG
# is their source: scripts/logo.py renders the PNGs.
RESOURCES = Path(__file__).with_name("resources")
LOGOS = ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg")


def kernel_json(locked: bool = False, python: str | None = None) -> dict:
    """kernel.json. python: the interpreter to run, this one by default; the wheel's spec
    says `python3`, which jupyter_client replaces by its own interpreter (the wheel's).

    locked: a kernel for shared machines, whose cells reach the host through no line
    (`--RootfsKernel.host_access=False`; the command line wins over any config file).
    """
    argv = [python or sys.executable, "-m", "rootfs_kernel", "-f", "{connection_file}"]
    if locked:
        return {"argv": [*argv, "--RootfsKernel.host_access=False"],
                "display_name": "Rootfs (sh, locked: no host access)", "language": "shell",
                "interrupt_mode": "signal", "env": {"ROOTFS_KERNEL_HOST_ACCESS": "0"},
                "metadata": {"debugger": False, "rootfs_kernel": {"host_access": False}}}
    return {"argv": argv, "display_name": "Rootfs (sh)", "language": "shell",
            "interrupt_mode": "signal", "metadata": {"debugger": False}}


def write(directory: Path, locked: bool = False, python: str | None = None) -> Path:
    """A kernelspec directory: kernel.json and the logos."""
    directory.mkdir(parents=True, exist_ok=True)
    for logo in LOGOS:
        shutil.copyfile(RESOURCES / logo, directory / logo)
    (directory / "kernel.json").write_text(json.dumps(kernel_json(locked, python), indent=2)
                                           + "\n")
    return directory
