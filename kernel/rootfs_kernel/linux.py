"""Linux's own numbers and names, for every layer of the package (pure).

The namespace kinds and their clone(2) flags, mount(2)'s MS_* flags and mount(8)'s words
for them, the exit statuses rootfs-init shares with the shell, and overlayfs' on-disk
form, each with the words the system's own headers and tools use for it (a `%show steps`
call, a message). Nothing here touches the system but is_opaque's getxattr.
"""

from __future__ import annotations

import errno
import os
import stat

# The namespace kinds, in the order /proc/PID/ns and `%show ns` list them, with their
# clone(2) flags: a plan carries its namespaces as these flags, and rootfs-init reads the
# ids of these names for `%show ns` (sandbox/ops.py hands both to init.c, whose header
# checks the flags against <sched.h>).
NAMESPACES = {"mnt": 0x00020000, "pid": 0x20000000, "user": 0x10000000,
              "uts": 0x04000000, "ipc": 0x08000000, "net": 0x40000000,
              "cgroup": 0x02000000}
CLONE_NEWNS = NAMESPACES["mnt"]
CLONE_NEWUSER = NAMESPACES["user"]

# Exit statuses rootfs-init shares with the shell and Docker (its header carries them as
# RK_EXIT_*): the container could not be set up (docker run's 125), or the script could
# not be executed (a shell's 127 for a command it cannot run).
EXIT_SETUP_FAILED = 125
EXIT_CANNOT_RUN = 127

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


# -- the flags in the headers' words ---------------------------------------------------------

def clone_flag_name(namespace: str) -> str:
    """<sched.h>'s name of a namespace's flag (mnt's is CLONE_NEWNS)."""
    return "CLONE_NEWNS" if namespace == "mnt" else f"CLONE_NEW{namespace.upper()}"


# In the order clone(2)'s page lists them.
_CLONE_NAMES = [(NAMESPACES[ns], clone_flag_name(ns))
                for ns in ("user", "mnt", "pid", "uts", "ipc", "net", "cgroup")]
_MOUNT_NAMES = [(MS_RDONLY, "MS_RDONLY"), (MS_NOSUID, "MS_NOSUID"), (MS_NODEV, "MS_NODEV"),
                (MS_NOEXEC, "MS_NOEXEC"), (MS_SYNCHRONOUS, "MS_SYNCHRONOUS"),
                (MS_DIRSYNC, "MS_DIRSYNC"), (MS_NOSYMFOLLOW, "MS_NOSYMFOLLOW"),
                (MS_NOATIME, "MS_NOATIME"), (MS_NODIRATIME, "MS_NODIRATIME"),
                (MS_BIND, "MS_BIND"), (MS_MOVE, "MS_MOVE"), (MS_REC, "MS_REC"),
                (MS_UNBINDABLE, "MS_UNBINDABLE"), (MS_PRIVATE, "MS_PRIVATE"),
                (MS_SLAVE, "MS_SLAVE"), (MS_SHARED, "MS_SHARED"),
                (MS_RELATIME, "MS_RELATIME"), (MS_STRICTATIME, "MS_STRICTATIME"),
                (MS_LAZYTIME, "MS_LAZYTIME")]


def _words(value: int, names: list[tuple[int, str]]) -> str:
    parts = [name for bit, name in names if value & bit]
    rest = value & ~sum(bit for bit, _ in names)
    if rest:
        parts.append(hex(rest))
    return "|".join(parts) or "0"


def namespace_flags(value: int) -> str:
    """CLONE_NEW* bits as unshare(2) and setns(2) are written: "CLONE_NEWUSER|CLONE_NEWNET"."""
    return _words(value, _CLONE_NAMES)


def clone_flags(value: int) -> str:
    """The flags of a clone(2) that makes these namespaces, as strace writes them."""
    return namespace_flags(value) + "|SIGCHLD"


def mount_flags(value: int) -> str:
    """MS_* bits as strace writes them: "MS_REC|MS_PRIVATE"."""
    return _words(value, _MOUNT_NAMES)


# -- overlayfs on disk -----------------------------------------------------------------------

# A directory that replaces the one below it carries this xattr, "y": trusted.* where real
# root mounted the overlay, user.* in a user namespace (userxattr, Linux 5.11+).
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
# What an owner with no id in a user namespace shows as (/proc/sys/kernel/overflowuid).
OVERFLOW_ID = 65534
# What getxattr answers for an xattr that is not there, or not this user's to read.
_NO_XATTR = (errno.ENODATA, errno.EOPNOTSUPP, errno.EPERM)


def is_whiteout(st: os.stat_result) -> bool:
    """A deleted path: a 0/0 character device."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(where: int | str | os.PathLike, *, dir_fd: int | None = None,
              strict: bool = False) -> bool:
    """Has the directory (an open fd, or a path, never followed; with `dir_fd`, a name in
    that directory) the opaque xattr? An error reading it is no xattr; `strict` (a layer
    being copied, which must not guess): only an xattr that is not there, or not this
    user's to read, is none, any other error is raised."""
    if dir_fd is not None:
        try:
            fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=dir_fd)
        except OSError:
            if strict:
                raise
            return False
        try:
            return is_opaque(fd, strict=strict)
        finally:
            os.close(fd)
    for name in OPAQUE_XATTRS:
        try:
            value = (os.getxattr(where, name) if isinstance(where, int)
                     else os.getxattr(where, name, follow_symlinks=False))
        except OSError as err:
            if strict and err.errno not in _NO_XATTR:
                raise
            continue
        if value == b"y":
            return True
    return False
