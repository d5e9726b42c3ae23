"""A cell's overlay upper layer, read once every process of the cell is gone: measured,
copied into a new layer (%export), or merged onto the layer %keep keeps for later cells.

Runs in: the kernel, in a worker thread (session.py, oci_export.py).

The upper lives on the cell's own tmpfs (its size is the cell's `disk=`); the kernel holds
a descriptor of it (init.c hands it over with the overlay's layers), which keeps that
tmpfs after the cell's namespace is gone. It is read through directory fds only: each
name is opened under its directory's fd with O_NOFOLLOW and checked against the inode the
walk saw, so a directory swapped for a link (by whoever else might hold a descriptor of
the tmpfs) never leads out of it. What is written on the host is counted as it is
written and never passes the bound it was measured against.

A tree's size on the host (`cost`) is what `du` says of it, within a little: a file's
allocated blocks (holes stay holes) and ENTRY bytes for its name and inode, DIRECTORY
bytes for a directory.

The kept layer (`merge`) is an overlay lower layer on host disk in the helper's
directory, which nobody but the kernel writes: a cell sees it read-only through its
overlay. Merging an upper onto it is what overlayfs would show: a whiteout deletes, an
opaque directory replaces, another directory merges, anything else replaces. The size
it would have is worked out before anything changes, so a merge past the bound changes
nothing; the old entries go before the new ones come, so the host never holds more than
the larger of the two.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .. import dirfd
from ..linux import is_opaque, is_whiteout
from .errors import ImageError
from .layerfs import opaque_xattr

ENTRY = 512
DIRECTORY = 4096
# Deeper trees are refused before anything is written: the walks recurse, one frame and
# one open directory per level.
MAX_DEPTH = 256
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")
_ROOT = os.geteuid() == 0


class TooLarge(Exception):
    """The layer would be larger than its bound; nothing was changed."""

    def __init__(self, size: int, bound: int) -> None:
        super().__init__(f"{size} bytes, more than {bound}")
        self.size, self.bound = size, bound


class NotKept(ImageError):
    """The kept layer cannot take this upper (the message says why); nothing changed."""


class Changed(ImageError):
    """The upper changed while it was copied (only another holder of the tmpfs can)."""


def cost(st: os.stat_result) -> int:
    """What one entry takes on the host: see the module's doc."""
    return DIRECTORY if stat.S_ISDIR(st.st_mode) else ENTRY + st.st_blocks * 512


@dataclass
class Size:
    """A tree measured: its cost on the host, and the size of its canonical tar (the
    image store counts layers by that, layerfs.py)."""

    cost: int = 0
    tar: int = 0
    whiteouts: int = 0
    _seen: set[tuple[int, int]] = field(default_factory=set, repr=False)

    def add(self, st: os.stat_result) -> None:
        self.tar += ENTRY
        self.whiteouts += is_whiteout(st)
        if stat.S_ISREG(st.st_mode):
            first = st.st_nlink < 2 or (st.st_dev, st.st_ino) not in self._seen
            self._seen.add((st.st_dev, st.st_ino))
            self.cost += ENTRY + (st.st_blocks * 512 if first else 0)
            self.tar += -(-st.st_size // 512) * 512 if first else 0
        else:
            self.cost += cost(st)


def measure(fd: int) -> Size:
    """The size of the tree under the directory `fd` (hard links counted once)."""
    size = Size()
    for _dfd, _name, st, _depth in _walk(fd):
        size.add(st)
    return size


# -- walking through fds ----------------------------------------------------------------------
def _names(dfd: int) -> list[str]:
    return sorted(os.listdir(dfd))


def _lstat(dfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def _entered(dfd: int, name: str, seen: os.stat_result, flags: int = _DIR) -> Iterator[int]:
    """`name` under `dfd`, opened without following a link, if it is still the inode the
    walk saw. The kernel's own user may lack the permission its mode gives (a cell's
    `chmod 000`, as an ordinary user): it owns the file, so it lends itself u+rwx while
    the fd is in use and gives the mode back after."""
    lent = None
    try:
        fd = os.open(name, flags, dir_fd=dfd)
    except PermissionError:
        if _ROOT:
            raise
        lent = stat.S_IMODE(seen.st_mode)
        _chmod_at(dfd, name, seen, lent | stat.S_IRWXU)
        try:
            fd = os.open(name, flags, dir_fd=dfd)
        except BaseException:
            _chmod_at(dfd, name, seen, lent)
            raise
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (seen.st_dev, seen.st_ino):
            raise Changed(f"{name} changed while it was being read; run the cell again")
        yield fd
    finally:
        if lent is not None:
            os.chmod(fd, lent)
        os.close(fd)


def _chmod_at(dfd: int, name: str, seen: os.stat_result, mode: int) -> None:
    """chmod `name` under `dfd`, the inode the walk saw and not a link (through an O_PATH
    fd of it: its /proc/self/fd link names that very inode)."""
    path = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    try:
        st = os.fstat(path)
        if (st.st_dev, st.st_ino) != (seen.st_dev, seen.st_ino) or stat.S_ISLNK(st.st_mode):
            raise Changed(f"{name} changed while it was being read; run the cell again")
        os.chmod(f"/proc/self/fd/{path}", mode)
    finally:
        os.close(path)


@contextlib.contextmanager
def _writable(fd: int) -> Iterator[None]:
    """An ordinary user writes into a directory of its own whatever its mode says."""
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    lend = not _ROOT and mode & stat.S_IRWXU != stat.S_IRWXU
    if lend:
        os.chmod(fd, mode | stat.S_IRWXU)
    try:
        yield
    finally:
        if lend:
            os.chmod(fd, mode)


def _walk(fd: int, depth: int = 1) -> Iterator[tuple[int, str, os.stat_result, int]]:
    """(directory fd, name, lstat, depth) of every entry below `fd`, a directory before
    its contents."""
    if depth > MAX_DEPTH:
        raise ImageError(f"the changes are nested deeper than {MAX_DEPTH} directories; "
                         "keep or export a flatter tree")
    for name in _names(fd):
        st = _lstat(fd, name)
        if st is None:
            continue
        yield fd, name, st, depth
        if stat.S_ISDIR(st.st_mode):
            with _entered(fd, name, st) as sub:
                yield from _walk(sub, depth + 1)


def _tree_cost(dfd: int, name: str, st: os.stat_result) -> int:
    if not stat.S_ISDIR(st.st_mode):
        return cost(st)
    with _entered(dfd, name, st) as sub:
        return DIRECTORY + measure(sub).cost


def _remove(dfd: int, name: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        with _entered(dfd, name, st) as sub, _writable(sub):
            for child in _names(sub):
                seen = _lstat(sub, child)
                if seen is not None:
                    _remove(sub, child, seen)
        os.rmdir(name, dir_fd=dfd)
    else:
        os.unlink(name, dir_fd=dfd)


# -- copying one entry ---------------------------------------------------------------------------
class Copier:
    """Writes the entries of an upper layer into a directory on the host.

    For %export (`image=True`): owners mapped to the image's own ids (`owner`), setuid and
    setgid bits dropped, deletions mknod refuses recorded instead (`unrecorded`), device
    nodes refused. For %keep: everything as the cell left it, extended attributes too.
    `budget`: what the written entries may cost at most (`cost`), else Changed."""

    def __init__(self, *, image: bool, budget: int | None,
                 owner: Callable[[int, int], tuple[int, int]] | None = None) -> None:
        self.image, self.budget, self.owner = image, budget, owner
        self.written = 0
        self.unrecorded: list[str] = []
        self._links: dict[tuple[int, int], list[str]] = {}
        self._top = -1

    def count(self, n: int) -> None:
        self.written += n
        if self.budget is not None and self.written > self.budget:
            raise Changed("the cell's changes grew while they were copied (only a process "
                          "that holds its tmpfs can do that); nothing more was written")

    def apply(self, src: int, dst: int) -> None:
        """Copy the tree under `src` into `dst`; a directory there already is merged
        into (merge() has cleared what the upper replaces)."""
        self._top = dst
        self._apply(src, dst, [], 1)

    def _apply(self, src: int, dst: int, rel: list[str], depth: int) -> None:
        if depth > MAX_DEPTH:
            raise ImageError(f"the changes are nested deeper than {MAX_DEPTH} directories")
        with _writable(dst):
            for name in _names(src):
                st = _lstat(src, name)
                if st is None:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    self._directory(src, dst, name, st, [*rel, name], depth)
                else:
                    self._file(src, dst, name, st, [*rel, name])

    def _directory(self, src: int, dst: int, name: str, st: os.stat_result,
                   rel: list[str], depth: int) -> None:
        with _entered(src, name, st) as sub:
            if _lstat(dst, name) is None:
                os.mkdir(name, 0o700, dir_fd=dst)
                self.count(DIRECTORY)
                if is_opaque(sub, strict=True):
                    with _entered(dst, name, os.stat(name, dir_fd=dst,
                                                     follow_symlinks=False)) as made:
                        os.setxattr(made, opaque_xattr(), b"y")
            here = os.stat(name, dir_fd=dst, follow_symlinks=False)
            with _entered(dst, name, here) as out:
                self._apply(sub, out, rel, depth + 1)
                if not self.image:
                    _copy_xattrs(sub, out)
        # Its attributes once it is closed: an ordinary user's fd may lend it u+rwx
        # until then, and its contents changed its times.
        self._owner(name, dst, st)
        os.chmod(name, self._mode(st), dir_fd=dst, follow_symlinks=False)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)

    def _file(self, src: int, dst: int, name: str, st: os.stat_result,
              rel: list[str]) -> None:
        mode = st.st_mode
        if is_whiteout(st):
            try:
                os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=dst)
            except PermissionError:
                if not self.image:
                    raise
                self.unrecorded.append("/".join(rel))
                return
            self.count(ENTRY)
            os.utime(name, (0, 0), dir_fd=dst, follow_symlinks=False)
            return
        if stat.S_ISSOCK(mode):
            return   # a socket means nothing once its process is gone
        if stat.S_ISREG(mode):
            self._regular(src, dst, name, st, rel)
            return
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(name, 0o600, dir_fd=dst)
        elif self.image:
            raise ImageError(f"the changes include the device node /{'/'.join(rel)}; device "
                             "nodes cannot be stored in an image: remove it before exporting")
        else:
            os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dst)
        self.count(cost(st))
        self._owner(name, dst, st)
        if not stat.S_ISLNK(mode):
            os.chmod(name, self._mode(st), dir_fd=dst, follow_symlinks=False)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)

    def _regular(self, src: int, dst: int, name: str, st: os.stat_result,
                 rel: list[str]) -> None:
        key = (st.st_dev, st.st_ino)
        first = self._links.get(key) if st.st_nlink > 1 else None
        if first is not None:
            with _beneath(self._top, first[:-1]) as where:
                os.link(first[-1], name, src_dir_fd=where, dst_dir_fd=dst,
                        follow_symlinks=False)
            self.count(ENTRY)
            return
        with _entered(src, name, st, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                      | os.O_CLOEXEC) as fi:
            fo = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=dst)
            try:
                self.count(ENTRY)
                _copy_data(fi, fo, st.st_size, self.count)
                if not self.image:
                    _copy_xattrs(fi, fo)
                self._attributes(fo, st)
            finally:
                os.close(fo)
        if st.st_nlink > 1:
            self._links[key] = rel

    def _mode(self, st: os.stat_result) -> int:
        mode = stat.S_IMODE(st.st_mode)
        return mode & ~(stat.S_ISUID | stat.S_ISGID) if self.image else mode

    def _owner(self, name: str, dst: int, st: os.stat_result) -> None:
        if _ROOT:   # an ordinary user's cell writes as that user only
            uid, gid = self.owner(st.st_uid, st.st_gid) if self.owner else (st.st_uid,
                                                                            st.st_gid)
            os.chown(name, uid, gid, dir_fd=dst, follow_symlinks=False)

    def _attributes(self, fd: int, st: os.stat_result) -> None:
        """Owner, then mode (a chown drops setuid bits), then times."""
        if _ROOT:
            os.chown(fd, *(self.owner(st.st_uid, st.st_gid) if self.owner else
                           (st.st_uid, st.st_gid)))
        os.chmod(fd, self._mode(st))
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_data(src: int, dst: int, size: int, count: Callable[[int], None]) -> None:
    """The file's data, its holes left holes (a sparse file stays as small as on tmpfs)."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(src, offset, os.SEEK_DATA)
        except OSError as err:
            if err.errno != errno.ENXIO:   # no data after offset
                raise
            break
        end = min(os.lseek(src, start, os.SEEK_HOLE), size)
        if end <= start:
            break
        os.lseek(dst, start, os.SEEK_SET)
        while start < end:
            chunk = min(end - start, 1 << 20)
            count(chunk)   # before it is written: a copy never passes its budget
            n = os.sendfile(dst, src, start, chunk)
            if n == 0:
                break   # it shrank meanwhile
            start += n
        offset = end
    os.ftruncate(dst, size)


def _copy_xattrs(src: int, dst: int) -> None:
    """A file's extended attributes but overlayfs' own (which %keep's merge sets)."""
    for name in os.listxattr(src):
        if not name.startswith(_OVERLAY_XATTRS):
            os.setxattr(dst, name, os.getxattr(src, name))


@contextlib.contextmanager
def _beneath(top: int, parts: list[str]) -> Iterator[int]:
    """The directory at `parts` under `top`, each step opened without following a link."""
    fds: list[int] = []
    try:
        at = top
        for part in parts:
            at = os.open(part, _DIR, dir_fd=at)
            fds.append(at)
        yield at
    finally:
        for fd in fds:
            os.close(fd)


# -- %%c, %export and %keep ----------------------------------------------------------------------
def copy_file(dfd: int, name: str, dest: str, mode: int) -> None:
    """%%c: the regular file `name` under `dfd` (a compile's work directory on its tmpfs),
    never through a link, into `dest`, made new through its directory's fd (what was
    there is removed first, a link not followed). FileNotFoundError when there is no such
    regular file."""
    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode):
        raise FileNotFoundError(errno.ENOENT, "not a regular file", name)
    with _entered(dfd, name, st, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                  | os.O_CLOEXEC) as fi:
        out = os.open(os.path.dirname(dest), dirfd.DIR_FLAGS)
        try:
            fo = dirfd.replace_file(out, os.path.basename(dest), 0o600)
            try:
                _copy_data(fi, fo, st.st_size, lambda _n: None)   # at most what it held
                os.fchmod(fo, mode)
            except BaseException:
                os.unlink(os.path.basename(dest), dir_fd=out)
                raise
            finally:
                os.close(fo)
        finally:
            os.close(out)


# -- %export and %keep -------------------------------------------------------------------------
def copy_tree(upper: int, dest: Path, *, owner: Callable[[int, int], tuple[int, int]] | None,
              budget: int | None) -> list[str]:
    """%export: copy the upper under `upper` into the empty directory `dest`; returns the
    deletions that could not be stored as whiteouts (mknod refused)."""
    copier = Copier(image=True, budget=budget, owner=owner)
    out = os.open(dest, _DIR)
    try:
        copier.apply(upper, out)
    finally:
        os.close(out)
    return copier.unrecorded


def merge(upper: int, kept: str, kept_size: int, bound: int | None) -> int:
    """%keep: merge the upper under `upper` onto the kept layer at `kept` (made if
    missing), whose cost is `kept_size`; returns its new cost. TooLarge (it would pass
    `bound`) or NotKept, with nothing changed; Changed or OSError when the merge failed
    part way (the kept layer is then to be dropped)."""
    os.makedirs(os.path.dirname(kept), mode=0o700, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(kept, 0o700)
    out = os.open(kept, _DIR)
    try:
        fresh = Size()
        size = kept_size + _delta(upper, out, fresh, 1)
        if bound is not None and size > bound:
            raise TooLarge(size, bound)
        if fresh.whiteouts:
            _take_whiteouts(out, kept)
        removed = _clear(upper, out, 1)
        Copier(image=False, budget=None if bound is None else bound - (kept_size - removed)
               ).apply(upper, out)
    finally:
        os.close(out)
    return size


def _take_whiteouts(fd: int, where: str) -> None:
    """NotKept when the kept layer's filesystem refuses whiteouts (overlayfs does)."""
    probe = ".rootfs-kernel-whiteout"
    try:
        os.mknod(probe, stat.S_IFCHR, os.makedev(0, 0), dir_fd=fd)
    except PermissionError:
        raise NotKept(
            f"{where} takes no whiteouts (is it on overlayfs, a container's root?), and "
            "this cell deletes what is kept: give the kernel's runtime directory a "
            "filesystem of its own (podman/docker run --tmpfs /tmp; Kubernetes: an emptyDir "
            "at /tmp; `rootfs-kernel doctor` says where it is)") from None
    os.unlink(probe, dir_fd=fd)


def _merges(sub: int, old: os.stat_result | None) -> bool:
    """Does the upper's directory `sub` merge into the kept layer's entry `old`?"""
    return old is not None and stat.S_ISDIR(old.st_mode) and not is_opaque(sub)


def _delta(src: int, dst: int | None, fresh: Size, depth: int) -> int:
    """How much merging `src` onto `dst` (None: not there) changes its cost; `fresh`
    counts what is added (hard links once)."""
    if depth > MAX_DEPTH:
        raise ImageError(f"the changes are nested deeper than {MAX_DEPTH} directories; "
                         "keep a flatter tree")
    total = 0
    for name in _names(src):
        st = _lstat(src, name)
        if st is None:
            continue
        old = None if dst is None else _lstat(dst, name)
        if stat.S_ISDIR(st.st_mode):
            with _entered(src, name, st) as sub:
                if _merges(sub, old):
                    with _entered(dst, name, old) as into:
                        total += _delta(sub, into, fresh, depth + 1)
                    continue
                total -= 0 if old is None else _tree_cost(dst, name, old)
                before = fresh.cost
                fresh.add(st)
                _delta(sub, None, fresh, depth + 1)
                total += fresh.cost - before
            continue
        total -= 0 if old is None else _tree_cost(dst, name, old)
        before = fresh.cost
        fresh.add(st)
        total += fresh.cost - before
    return total


def _clear(src: int, dst: int, depth: int) -> int:
    """Remove from `dst` what the upper replaces, before anything is added; a directory
    that replaces something is made here, empty (opaque where overlayfs shows it so).
    Returns the cost removed."""
    removed = 0
    with _writable(dst):
        for name in _names(src):
            st = _lstat(src, name)
            old = _lstat(dst, name)
            if st is None or old is None and not stat.S_ISDIR(st.st_mode):
                continue
            if stat.S_ISDIR(st.st_mode):
                with _entered(src, name, st) as sub:
                    if _merges(sub, old):
                        with _entered(dst, name, old) as into:
                            removed += _clear(sub, into, depth + 1)
                        continue
                    opaque = old is not None or is_opaque(sub)
                if old is not None:
                    removed += _tree_cost(dst, name, old)
                    _remove(dst, name, old)
                os.mkdir(name, 0o700, dir_fd=dst)
                if opaque:   # it hides what the image has there, as in the cell
                    made = os.open(name, _DIR, dir_fd=dst)
                    try:
                        os.setxattr(made, opaque_xattr(), b"y")
                    finally:
                        os.close(made)
                continue
            removed += _tree_cost(dst, name, old)
            _remove(dst, name, old)
    return removed
