"""The default image, ``minimal``: the host's own shell and tools, with their libraries.

It needs no network and no root, and builds in well under a second or two.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..cell import DEFAULT_PATH
from .errors import ImageError
from .hostfiles import HostInstaller
from .skeleton import finish, make_skeleton
from .store import BuildContext, BuildOutput

# What the seed's commands use, then what exploring a container needs.
REQUIRED = ["sh"]
PROGRAMS = [
    "ls", "cat", "echo", "mkdir", "touch", "rm", "mount", "umount", "ps", "grep",
    "readlink", "stat", "id", "env", "sleep", "findmnt",
    "uname", "hostname", "head", "tail", "wc", "sed", "cp", "mv", "ln", "chmod", "true",
    "false", "test", "printf", "pwd", "basename", "dirname", "sort", "tr", "cut", "date",
    "tee", "find", "xargs", "du", "df", "whoami", "chroot", "pivot_root", "unshare",
    "nsenter", "mountpoint", "lsns",
]
ENV = [f"PATH={DEFAULT_PATH}", "HOME=/root"]


def populate_minimal(root: Path, programs: list[str] = PROGRAMS) -> list[str]:
    """Fill ``root`` with the minimal image; returns the programs the host lacked."""
    make_skeleton(root, "rootfs-kernel minimal", "rootfs-kernel-minimal")
    installer = HostInstaller(root)
    for name in REQUIRED:
        if installer.install_program(name) is None:
            raise ImageError(
                f"the host has no `{name}` on {os.environ.get('PATH', '')}; the minimal "
                "image is made of the host's programs (install dash or bash)"
            )
    missing = [p for p in programs if installer.install_program(p) is None]
    finish(root, installer.copied)
    return missing


def build_minimal(ctx: BuildContext) -> BuildOutput:
    ctx.progress(0.05, "copying the host's programs and libraries")
    root = ctx.new_layer_dir()
    missing = populate_minimal(root)
    ctx.progress(0.7, "computing the layer digest")
    layer = ctx.add_layer(root)
    return BuildOutput(
        layers=[layer],
        config={"Env": list(ENV), "Cmd": ["/bin/sh"]},
        source="host programs (minimal)",
        extra={"missing_programs": missing} if missing else {},
    )
