"""Finding and making files through directory fds, never through a link someone planted.

Runs in: the kernel and the CLI (image import, the runtime directory, `%%c` sources, image
export) and the test scripts (the root marker). Standard library only (ctypes for
openat2, which Python 3.11 lacks), so the sandbox helper may import it too.

A path checked first and used later goes stale once someone else changes what it names
(a symlink swapped in, an archive's earlier entry): so every walk here holds an fd of
the directory it stands in, resolves the next name relative to it with O_NOFOLLOW or
openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), and makes files with O_CREAT | O_EXCL.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import stat

# <linux/openat2.h>
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
# Beneath the fd, on its filesystem, crossing no link of any kind: what an archive's
# entries and the kernel's own directories are resolved with.
STRICTLY_BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | \
    RESOLVE_NO_XDEV
_SYS_OPENAT2 = 437   # the same on every architecture (added in Linux 5.6)

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_FILE = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@functools.cache
def _libc() -> ctypes.CDLL:
    """Loaded when first needed: the kernel's start-up does not pay for it."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2); OSError as os.open raises it."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fd = _libc().syscall(_SYS_OPENAT2, dirfd, os.fsencode(path), ctypes.byref(how),
                         ctypes.sizeof(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


def open_beneath(root: int, rel: str, flags: int = os.O_RDONLY | os.O_DIRECTORY) -> int:
    """Open `rel` below the directory fd `root`: ELOOP if any part of it is a symlink,
    EXDEV if it would climb out (`..`, an absolute path)."""
    return openat2(root, rel or ".", flags, STRICTLY_BENEATH)


def lstat_at(dirfd: int, name: str) -> os.stat_result | None:
    """The entry `name` of the directory, not followed; None when there is none."""
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def create(dirfd: int, name: str, mode: int, flags: int = os.O_WRONLY) -> int:
    """A new file `name` in the directory: never an existing one, never through a link."""
    return os.open(name, flags | NEW_FILE, mode, dir_fd=dirfd)


def replace_file(dirfd: int, name: str, mode: int, flags: int = os.O_WRONLY) -> int:
    """`create`, after removing what `name` was (a file or link, not followed) first."""
    try:
        os.unlink(name, dir_fd=dirfd)
    except FileNotFoundError:
        pass
    return create(dirfd, name, mode, flags)


# -- directories only their owner may write ----------------------------------------------
class NotPrivate(OSError):
    """A directory someone else could have planted or can still change; its strerror
    says which and why, for a message that goes on with what to do."""


@functools.cache
def _unmapped_owner() -> int | None:
    """The owner files show when this user namespace does not map theirs (overflowuid),
    if that id is no user of its own: Jupyter in a namespace of its user's alone sees
    root's / and /tmp so. None in a namespace that maps every id (the host's)."""
    try:
        with open("/proc/sys/kernel/overflowuid") as f:
            overflow = int(f.read())
        with open("/proc/self/uid_map") as f:
            ranges = [line.split() for line in f]
    except (OSError, ValueError):
        return None
    if any(int(first) <= overflow < int(first) + int(count) for first, _, count in ranges):
        return None   # a user of this namespace, e.g. the host's nobody
    return overflow


def _trusted(st: os.stat_result, euid: int) -> str | None:
    """Why a directory on the way is not safe to build in, or None. Root's or ours (or
    an owner this namespace cannot tell from root's), and nobody else may rename its
    entries: not writable by others, or sticky like /tmp."""
    if st.st_uid not in (0, euid, _unmapped_owner()):
        return f"is owned by uid {st.st_uid}"
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        return "is writable by others and not sticky"
    return None


def open_trusted(path: str) -> int:
    """An fd of the directory `path` (its links resolved first), walked down from / one
    component at a time without following links, each one root's or ours and renamed by
    no one else. NotPrivate otherwise."""
    real = os.path.realpath(path)
    euid = os.geteuid()
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    walked = ""
    try:
        for part in [p for p in real.split("/") if p]:
            why = _trusted(os.fstat(fd), euid)
            if why:
                raise NotPrivate(errno.EPERM, f"{walked or '/'} {why}")
            walked += "/" + part
            try:
                sub = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=fd)
            except OSError as err:
                raise NotPrivate(err.errno, f"{walked}: {err.strerror}") from None
            os.close(fd)
            fd = sub
        why = _trusted(os.fstat(fd), euid)
        if why:
            raise NotPrivate(errno.EPERM, f"{walked or '/'} {why}")
        return fd
    except BaseException:
        os.close(fd)
        raise


def private_dir(path: str, mode: int) -> int:
    """The directory `path`, made with `mode` or found, and proved to be this user's own:
    a directory (not a link) it owns that no one else may write, in directories no one
    else may rename it in. Its mode is set to `mode` through the fd, which is returned
    (O_RDONLY). NotPrivate, naming the path and the reason, when it is not."""
    parent, name = os.path.split(os.path.abspath(path))
    pfd = open_trusted(parent)
    try:
        try:
            os.mkdir(name, mode, dir_fd=pfd)
        except FileExistsError:
            pass
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
        except OSError as err:
            st = lstat_at(pfd, name)
            why = ("is a symbolic link" if st is not None and stat.S_ISLNK(st.st_mode) else
                   "is not a directory" if err.errno == errno.ENOTDIR else err.strerror)
            raise NotPrivate(err.errno, f"{path} {why}") from None
    finally:
        os.close(pfd)
    st = os.fstat(fd)
    why = None
    if st.st_uid != os.geteuid():
        why = f"is owned by uid {st.st_uid}, not by you (uid {os.geteuid()})"
    elif st.st_mode & 0o022:
        why = f"is writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
    if why:
        os.close(fd)
        raise NotPrivate(errno.EPERM, f"{path} {why}")
    os.fchmod(fd, mode)
    return fd
