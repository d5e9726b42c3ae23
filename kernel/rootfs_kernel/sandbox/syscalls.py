"""The Linux system calls the sandbox's Python side needs and Python 3.11 lacks (ctypes).

Runs in: the kernel (openat2 for the snapshots, statfs for the runtime directory) and
the probes' throwaway processes (probes.py: unshare, mount, idmapped mounts). The
container itself is set up by rootfs-init (init.c), not from here; the flags these calls
take are linux.py's.

Only the sandbox package imports this module. The syscall numbers below are those of
the system calls added since Linux 5.2, the same on every architecture.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

# <linux/openat2.h>
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_SYS_OPENAT2 = 437

_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _check(result: int, what: str, path: str | None = None) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return result


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", target)


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), "umount2", target)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): used with RESOLVE_IN_ROOT so symlinks in an image never lead outside it."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return _check(
        _libc.syscall(_SYS_OPENAT2, dirfd, _b(path), ctypes.byref(how), ctypes.sizeof(how)),
        "openat2",
        path,
    )


def fs_magic(path: str) -> int | None:
    """statfs(2)'s f_type (the struct's first field, a long) of the filesystem holding
    path; None if it cannot be read."""
    buf = ctypes.create_string_buffer(256)   # struct statfs, large enough
    if _libc.statfs(_b(path), buf) != 0:
        return None
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


# <linux/mount.h>: the new mount API, for the idmap probe (probes.py).
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
OPEN_TREE_CLONE = 0x1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_IDMAP = 0x00100000


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def open_tree(path: str) -> int:
    """A detached copy of the mount at path (OPEN_TREE_CLONE), as an fd."""
    return _check(_libc.syscall(_SYS_OPEN_TREE, AT_FDCWD, _b(path),
                                OPEN_TREE_CLONE | os.O_CLOEXEC), "open_tree", path)


def idmap_tree(tree: int, userns_fd: int) -> None:
    """Show the detached mount's owners through the user namespace's id mapping."""
    attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    _check(_libc.syscall(_SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH, ctypes.byref(attr),
                         ctypes.sizeof(attr)), "mount_setattr(MOUNT_ATTR_IDMAP)")


def move_mount(tree: int, target: str) -> None:
    """Attach a detached mount at target."""
    _check(_libc.syscall(_SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, _b(target),
                         MOVE_MOUNT_F_EMPTY_PATH), "move_mount", target)
