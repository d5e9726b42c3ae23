"""Layer directories on disk: the canonical tar form, digests, whiteouts.

A layer is a rootfs directory in overlayfs' on-disk form: a deleted path is a 0/0
character device and a replaced directory carries the ``overlay.opaque`` xattr. Its
*canonical tar* is the same tree in OCI form (``.wh.NAME`` and ``.wh..wh..opq``
entries), sorted, with numeric owners only. The layer's digest is the sha256 of that
tar, so building the same tree twice, or exporting and re-importing a layer, yields
the same digest; export writes exactly this tar.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..linux import OPAQUE_XATTRS, is_opaque, is_whiteout
from .errors import ImageError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


def opaque_xattr() -> str:
    """The opaque xattr the store's owner will mount its layers with (linux.OPAQUE_XATTRS):
    trusted.* for real root, user.* (userxattr) in a user namespace."""
    return OPAQUE_XATTRS[0] if os.geteuid() == 0 else OPAQUE_XATTRS[1]


def make_whiteout(path: Path | str, dir_fd: int | None = None) -> bool:
    """Record the deletion of ``path`` (in the directory ``dir_fd`` when given) as an
    overlay whiteout; False if mknod is refused."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=dir_fd)
    except PermissionError:
        return False
    os.utime(path, (0, 0), dir_fd=dir_fd, follow_symlinks=False)
    return True


def set_opaque(path: Path | int) -> None:
    """Mark the directory (a path, never followed, or an open fd) opaque."""
    try:
        if isinstance(path, int):
            os.setxattr(path, opaque_xattr(), b"y")
        else:
            os.setxattr(path, opaque_xattr(), b"y", follow_symlinks=False)
    except OSError as e:
        where = "a directory" if isinstance(path, int) else str(path)
        raise ImageError(
            f"cannot mark {where} as an opaque directory ({e.strerror}): the image store "
            "needs a filesystem with extended attributes (ext4, xfs, btrfs, tmpfs)"
        ) from e


@dataclass
class LayerSummary:
    digest: str  # "sha256:<hex>" of the canonical tar
    size: int  # bytes of file content, hard links counted once
    tar_size: int


class _HashWriter:
    """A write-only file object that hashes (and optionally copies) what it is given."""

    def __init__(self, copy_to: BinaryIO | None = None) -> None:
        self.hash = hashlib.sha256()
        self.count = 0
        self.copy_to = copy_to

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.count += len(data)
        if self.copy_to is not None:
            self.copy_to.write(data)
        return len(data)

    def tell(self) -> int:
        return self.count


def _walk(root: Path, rel: str = "") -> Iterator[tuple[str, Path, os.stat_result]]:
    """Depth-first, names sorted bytewise, each directory before its contents."""
    base = root / rel if rel else root
    with os.scandir(base) as it:
        names = sorted(e.name for e in it)
    for name in names:
        child_rel = f"{rel}/{name}" if rel else name
        path = root / child_rel
        st = os.lstat(path)
        yield child_rel, path, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(root, child_rel)


def _owner(uid: int, gid: int) -> tuple[int, int]:
    # Files of the store's owner are the image's root's files: a rootless build or
    # import can only own them itself, and a user namespace maps the owner to root.
    euid, egid = os.geteuid(), os.getegid()
    return (0 if uid == euid else uid), (0 if gid == egid else gid)


def _marker(name: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mode, ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0, 0, 0, "", ""
    return ti


def write_canonical_tar(
    rootfs: Path,
    out: BinaryIO | None = None,
    extra_whiteouts: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> LayerSummary:
    """Hash (and write to ``out`` if given) the canonical OCI tar of a layer directory.

    ``extra_whiteouts`` are deletions recorded in the layer's json because the store
    could not mknod them; they appear in the tar like on-disk whiteouts.
    """
    writer = _HashWriter(out)
    size = 0
    seen: dict[tuple[int, int], str] = {}
    pending = sorted(extra_whiteouts or [])
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:

        def flush_pending(upto: str | None) -> None:
            while pending and (upto is None or pending[0] < upto):
                rel = pending.pop(0)
                parent, _, name = rel.rpartition("/")
                tar.addfile(_marker(f"{parent}/{WHITEOUT_PREFIX}{name}".lstrip("/")))

        for rel, path, st in _walk(rootfs):
            flush_pending(rel)
            if is_whiteout(st):
                parent, _, name = rel.rpartition("/")
                tar.addfile(_marker(f"{parent}/{WHITEOUT_PREFIX}{name}".lstrip("/")))
                continue
            ti = tarfile.TarInfo(rel)
            ti.mode = stat.S_IMODE(st.st_mode)
            ti.mtime = int(st.st_mtime)
            ti.uid, ti.gid = _owner(st.st_uid, st.st_gid)
            ti.uname = ti.gname = ""
            mode = st.st_mode
            if stat.S_ISREG(mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in seen:
                    ti.type, ti.linkname = tarfile.LNKTYPE, seen[key]
                    tar.addfile(ti)
                    continue
                seen[key] = rel
                ti.size = st.st_size
                size += st.st_size
                with open(path, "rb") as f:
                    tar.addfile(ti, f)
                if progress:
                    progress(st.st_size)
                continue
            if stat.S_ISDIR(mode):
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
                if is_opaque(path, strict=True):
                    tar.addfile(_marker(f"{rel}/{OPAQUE_MARKER}"))
            elif stat.S_ISLNK(mode):
                ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(path)
                tar.addfile(ti)
            elif stat.S_ISFIFO(mode):
                ti.type = tarfile.FIFOTYPE
                tar.addfile(ti)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
                ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                tar.addfile(ti)
            # sockets cannot be stored in a tar; they mean nothing in an image anyway
        flush_pending(None)
    return LayerSummary(f"sha256:{writer.hash.hexdigest()}", size, writer.count)
