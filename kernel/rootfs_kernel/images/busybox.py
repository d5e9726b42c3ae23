"""The ``busybox`` image: the host's static busybox and one symlink per applet.

Debian ships a static build as the ``busybox-static`` package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..cell import DEFAULT_PATH
from .errors import ImageError
from .hostfiles import HostInstaller, elf_interpreter, image_path
from .minimal import ENV
from .skeleton import finish, make_skeleton
from .store import BuildContext, BuildOutput

INSTALL_HINT = "install a static busybox (Debian/Ubuntu: `apt-get install busybox-static`)"


def find_busybox() -> str | None:
    """The host's busybox, preferring a static one (it needs no libraries)."""
    found = [p for p in ("/bin/busybox", "/usr/bin/busybox", shutil.which("busybox",
             path=DEFAULT_PATH)) if p and os.access(p, os.X_OK)]
    for path in found:
        if elf_interpreter(os.path.realpath(path)) is None:
            return path
    return found[0] if found else None


def applets(busybox: str) -> list[str]:
    """Applet paths relative to / (e.g. ``bin/ls``), as busybox itself installs them."""
    result = subprocess.run([busybox, "--list-full"], capture_output=True, text=True)
    if result.returncode == 0 and result.stdout.strip():
        return result.stdout.split()
    result = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    return ["usr/bin/" + name for name in result.stdout.split()]


def populate_busybox(root: Path, busybox: str) -> None:
    make_skeleton(root, "rootfs-kernel busybox", "rootfs-kernel-busybox")
    installer = HostInstaller(root)
    if installer.install_program(busybox) is None:
        raise ImageError(f"cannot read {busybox}; {INSTALL_HINT}")
    binary = root / "usr/bin/busybox"
    if not binary.exists():  # e.g. /usr/bin/busybox -> /usr/lib/.../busybox
        real = installer.install_file(busybox)
        os.symlink(os.path.relpath(real, binary.parent), binary)
    for applet in applets(busybox):
        link = root / image_path("/" + applet).lstrip("/")
        if os.path.lexists(link) or applet.endswith("/busybox"):
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(root / "usr/bin/busybox", link.parent), link)
    finish(root, installer.copied)


def build_busybox(ctx: BuildContext) -> BuildOutput:
    busybox = find_busybox()
    if busybox is None:
        raise ImageError(f"the host has no busybox; {INSTALL_HINT}")
    ctx.progress(0.1, f"installing {busybox} and its applets")
    root = ctx.new_layer_dir()
    populate_busybox(root, busybox)
    ctx.progress(0.7, "computing the layer digest")
    layer = ctx.add_layer(root)
    static = elf_interpreter(os.path.realpath(busybox)) is None
    return BuildOutput(
        layers=[layer],
        config={"Env": list(ENV), "Cmd": ["/bin/sh"]},
        source=f"host busybox {busybox}" + ("" if static else " (dynamic, with libraries)"),
    )

