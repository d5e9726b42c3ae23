"""Wheel build hook: the kernelspec and the container init.

The kernelspec (share/jupyter/kernels/rootfs) is written by the package's own
kernelspec.py, as `rootfs-kernel install` writes it, so the two cannot differ; the
wheel's says `python3`, which jupyter_client runs as its own interpreter.

The container init (kernel/rootfs_kernel/sandbox/init.c): initbin.py generates its header
from sandbox/ops.py and compiles it with -Werror. The wheel then carries rootfs-init next
to the module that finds it (initbin.py). It is tagged py3-none-<platform>: the binary is
a program, not a Python extension, so one wheel serves every Python 3; `auditwheel
repair` then gives it the manylinux tag PyPI takes (scripts/build-dist.sh). Editable
installs skip this: initbin.py compiles on first use.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE = Path(__file__).parent / "kernel" / "rootfs_kernel"


def _package() -> None:
    """The package from this source tree, for the modules the build uses, which need only
    the standard library (kernelspec.py; sandbox/initbin.py, ops.py and linux.py): the
    build's environment has none of its dependencies."""
    if str(PACKAGE.parent) not in sys.path:
        sys.path.insert(0, str(PACKAGE.parent))


class InitBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        self._tmp = Path(tempfile.mkdtemp(prefix="rootfs-kernel-build-"))
        _package()
        from rootfs_kernel import kernelspec

        spec = kernelspec.write(self._tmp / kernelspec.NAME, python="python3")
        build_data["shared_data"][str(spec)] = f"share/jupyter/kernels/{kernelspec.NAME}"
        if version == "editable":
            return
        from rootfs_kernel.sandbox import initbin

        out = self._tmp / "rootfs-init"
        initbin.compile_to(out)
        build_data["force_include"][str(out)] = "rootfs_kernel/sandbox/rootfs-init"
        display = self._tmp / "display"   # every cell's `display` command (display.c)
        initbin.compile_to(display, initbin.DISPLAY_SOURCE)
        build_data["force_include"][str(display)] = "rootfs_kernel/sandbox/bin/display"
        build_data["pure_python"] = False
        platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        build_data["tag"] = f"py3-none-{platform}"

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        if getattr(self, "_tmp", None):
            shutil.rmtree(self._tmp, ignore_errors=True)
