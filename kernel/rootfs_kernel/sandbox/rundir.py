"""The runtime directory: where each kernel's helper keeps its own directory (plan.Places).

Runs in: the kernel (client.py makes it before it starts the helper); hostfacts.py and
the tests ask where it is.

Another local user who could create it, or rename what is in it, could swap the helper's
directories for their own: the `%%c` sources and programs, the `%keep` layer. So it lives
where only its user can create it: /run/rootfs-kernel for root, and
$XDG_RUNTIME_DIR/rootfs-kernel for anyone else with a login session's runtime directory.
Otherwise (root in a container, whose /run is its overlayfs root; a JupyterHub student
without XDG_RUNTIME_DIR) it is $TMPDIR/rootfs-kernel-UID, made fresh or proved to be the
user's own through an O_NOFOLLOW fd (dirfd.private_dir), else refused with what to do.
"""

from __future__ import annotations

import os
import stat
import tempfile

from .. import dirfd
from .syscalls import fs_magic

ROOT_BASE = "/run/rootfs-kernel"
OVERLAYFS_MAGIC = 0x794C7630   # <linux/magic.h>


class RuntimeDirError(RuntimeError):
    """The runtime directory is not this user's own; the message says what to do."""


def _login_runtime_dir() -> str | None:
    """$XDG_RUNTIME_DIR when it is this user's own 0700 directory, as the XDG spec has it
    (not the one `su` or `sudo -E` carried over from another user)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if not os.path.isabs(xdg):
        return None
    try:
        st = os.stat(xdg)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        return None
    return xdg


def _on_overlayfs(path: str) -> bool:
    """A container's root, where overlayfs takes no upper layer (%keep, %export); its
    /tmp is a volume (deploy/)."""
    return fs_magic(path) == OVERLAYFS_MAGIC


def base() -> str:
    """Where this user's kernels keep their helpers' directories."""
    if os.geteuid() == 0 and os.path.isdir("/run") and os.access("/run", os.W_OK) \
            and not _on_overlayfs("/run"):
        return ROOT_BASE
    xdg = _login_runtime_dir()
    if xdg is not None:
        return os.path.join(xdg, "rootfs-kernel")
    return os.path.join(tempfile.gettempdir(), f"rootfs-kernel-{os.geteuid()}")


def make() -> str:
    """The runtime directory, made or proved to be this user's own; RuntimeDirError if
    it is not. 0711 for root: a cell's root is an unprivileged id that walks to its root
    by path (%root chroot), which needs search, not listing."""
    path = base()
    try:
        os.close(dirfd.private_dir(path, 0o711 if os.geteuid() == 0 else 0o700))
    except dirfd.NotPrivate as err:
        raise RuntimeDirError(
            f"the kernel's runtime directory cannot be used: {err.strerror}. Another local "
            "user could have made it to take the kernel's files over, so it is refused. "
            "Remove it if it is not yours (as root), or point XDG_RUNTIME_DIR at a "
            "directory only you can write (mode 0700, e.g. a login session's "
            f"/run/user/{os.geteuid()}) and restart the kernel") from None
    return path
