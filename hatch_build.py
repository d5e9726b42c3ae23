"""Wheel build hook: compile the container init (kernel/rootfs_kernel/sandbox/init.c).

initbin.py generates its header from sandbox/ops.py and compiles it with -Werror. The
wheel then carries rootfs-init next to the module that finds it (initbin.py). It is
tagged py3-none-<platform>: the binary is a program, not a Python extension, so one
wheel serves every Python 3; `auditwheel repair` then gives it the manylinux tag PyPI
takes (scripts/build-dist.sh). Editable installs skip this: initbin.py compiles on first
use.
"""

from __future__ import annotations

import importlib.util
import shutil
import sysconfig
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

HERE = Path(__file__).parent
INITBIN = HERE / "kernel" / "rootfs_kernel" / "sandbox" / "initbin.py"


class InitBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        # initbin.py (and ops.py, which it loads) only need the standard library: load
        # it without the package.
        spec = importlib.util.spec_from_file_location("_rootfs_initbin", INITBIN)
        initbin = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(initbin)
        self._tmp = Path(tempfile.mkdtemp(prefix="rootfs-init-"))
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
