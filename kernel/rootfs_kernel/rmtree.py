"""Removing a directory tree that a cell or an image made hard to remove.

Runs in: the helper (a cell's directory, kept and exported layers) and the kernel or the
CLI (the image store's layers and temporary builds). Standard library only, so that
neither process pays for the other's imports.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time


def remove_tree(path: os.PathLike | str) -> None:
    """rmtree that also removes what its owner may not write or enter: an image's 0555
    directories, an overlayfs work dir (mode 000) a cell made in a user namespace. A
    mount a dying cell's namespace still holds (EBUSY) is waited for, up to 2 s. A path
    that is not there is already removed."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return

    def fix(func, p, exc):  # noqa: ANN001
        if isinstance(exc[1], OSError) and exc[1].errno == errno.EBUSY:
            # A dying cell's namespace may still hold a mount on it for a moment.
            for _ in range(40):
                time.sleep(0.05)
                try:
                    return func(p)
                except OSError as again:
                    if again.errno != errno.EBUSY:
                        break
        parent = os.path.dirname(p)
        os.chmod(parent, os.stat(parent).st_mode | stat.S_IRWXU)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, stat.S_IRWXU)
        if func is os.open:   # a directory rmtree could not enter: now it can
            shutil.rmtree(p, onerror=fix)
            return
        func(p)

    shutil.rmtree(path, onerror=fix)
