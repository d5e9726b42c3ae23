"""The plain Python API: `rootfs_kernel.run(script, ...) -> Result`, and `Sandbox`.

The keyword arguments become header lines of the cell language (cell.py) put above the
script, so the kernel's own parser validates them; a Session (session.py) then runs the
cell exactly as the rootfs kernel would. Header lines at the top of `script` are read
too (after the generated ones, so they win where a later line overrides).

Each Sandbox owns one Session living on a private event loop in a background thread,
so the caller may be plain Python or sit inside a running event loop (IPython,
ipykernel).
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterable, Mapping

from ..cell import HeaderError
from ..images import ImageError
from ..sandbox.client import SandboxError
from ..settings import SettingError
from .headers import header_lines
from .result import CellTimeout, Comparison, ContainerError, Result
from .sandbox import Sandbox

# -- the module-level default sandbox ------------------------------------------------------------

_default: Sandbox | None = None
_default_lock = threading.Lock()


def default_sandbox() -> Sandbox:
    """The Sandbox behind rootfs_kernel.run(), started on first use, closed at exit."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            if _default is None:
                atexit.register(close)
            _default = Sandbox()
        return _default


def close() -> None:
    """Close the default sandbox (its helper and any %keep layer)."""
    global _default
    with _default_lock:
        sandbox, _default = _default, None
    if sandbox is not None:
        sandbox.close()


def run(script: str, image: str = "minimal", root: str = "pivot", mounts: Iterable = (),
        binds: Iterable = (), show: Iterable = (), keep: bool = False,
        timeout: float | None = None, env: Mapping[str, str] | None = None,
        limits: Mapping[str, object] | str | None = None, propagation: str | None = None,
        unshare: str | Iterable[str] | None = None, net: str | None = None, *,
        check: bool = False, echo: bool = False) -> Result:
    """Run the shell `script` in a fresh container, as a rootfs kernel cell.

    mounts: "tmpfs:/tmp[:size=10m]" or ("tmpfs", "/tmp", "size=10m") -> %mount
    binds:  "/host/dir:/in/cell[:ro]" or (src, target[, "ro"])        -> %bind
    show:   "mounts", "ns", "changes", "ls:/etc[:/host/etc]"           -> %show
    keep:   carry this run's filesystem changes into the next run      -> %keep
    timeout (s), env {NAME: VALUE} (this run only), limits {"pids": 64, "memory": "64m"},
    propagation "private|slave|shared", unshare "cgroup,user" or a list, net
    "none|user|host" (%net: the cell's own network by default).

    Raises HeaderError (a bad option), ImageError, CellTimeout, SandboxError, and
    ContainerError when the container could not be set up, or with check=True when
    the script exits non-zero or hits a limit. KeyboardInterrupt stops the container.
    """
    options = dict(image=image, root=root, mounts=mounts, binds=binds, show=show, keep=keep,
                   timeout=timeout, env=env, limits=limits, propagation=propagation,
                   unshare=unshare, net=net)
    return default_sandbox().run(script, check=check, echo=echo, **options)


async def arun(script: str, *, check: bool = False, **options) -> Result:
    """`await rootfs_kernel.arun(...)`: run() for coroutines, on the default sandbox."""
    return await default_sandbox().arun(script, check=check, **options)


__all__ = [
    "CellTimeout",
    "Comparison",
    "ContainerError",
    "HeaderError",
    "ImageError",
    "Result",
    "Sandbox",
    "SandboxError",
    "SettingError",
    "arun",
    "close",
    "default_sandbox",
    "header_lines",
    "run",
]
