"""The Linux system calls the sandbox's Python side needs and Python 3.11 lacks (ctypes).

Runs in: the helper (its process name and parent-death signal), the kernel (openat2 for
the snapshots; plan.py takes the MS_* numbers from here) and the probes'
throwaway processes (probes.py: unshare, mount, idmapped mounts). The container itself
is set up by rootfs-init (init.c), not from here.

Only the sandbox package imports this module. The syscall numbers below are those of
the system calls added since Linux 5.2, the same on every architecture.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

from .ops import NAMESPACES

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

# <sched.h>: every namespace's CLONE_NEW* flag is in ops.NAMESPACES, by its name.
CLONE_NEWNS = NAMESPACES["mnt"]
CLONE_NEWUSER = NAMESPACES["user"]

# <sys/mount.h>
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 2

# mount(8) option words that are flags rather than filesystem data.
FLAG_WORDS = {
    "ro": (MS_RDONLY, True),
    "rw": (MS_RDONLY, False),
    "nosuid": (MS_NOSUID, True),
    "suid": (MS_NOSUID, False),
    "nodev": (MS_NODEV, True),
    "dev": (MS_NODEV, False),
    "noexec": (MS_NOEXEC, True),
    "exec": (MS_NOEXEC, False),
    "sync": (MS_SYNCHRONOUS, True),
    "async": (MS_SYNCHRONOUS, False),
    "dirsync": (MS_DIRSYNC, True),
    "noatime": (MS_NOATIME, True),
    "nodiratime": (MS_NODIRATIME, True),
    "relatime": (MS_RELATIME, True),
    "strictatime": (MS_STRICTATIME, True),
    "lazytime": (MS_LAZYTIME, True),
    "nosymfollow": (MS_NOSYMFOLLOW, True),
}

# <linux/openat2.h>
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_SYS_OPENAT2 = 437

# <linux/prctl.h>

_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
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


def parse_mount_options(options: str) -> tuple[int, str]:
    """Split mount(8)-style "ro,size=1m" into MS_* flags and the filesystem's data string."""
    flags, data = 0, []
    for word in filter(None, options.split(",")):
        if word in FLAG_WORDS:
            bit, on = FLAG_WORDS[word]
            flags = flags | bit if on else flags & ~bit
        else:
            data.append(word)
    return flags, ",".join(data)


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
