"""Unpacking one OCI/docker layer tar into a layer directory, safely and verified.

The tar is read once, as a stream: the compressed blob and the uncompressed tar are
hashed on the way through, then checked against the digests the manifest and config
promise.

No entry can reach outside the layer, whatever the entries before it made: every
entry's directory is opened from the layer's root fd with openat2(RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS) (dirfd.py), and the entry is made in it with mkdirat, openat
(O_CREAT | O_EXCL | O_NOFOLLOW), symlinkat, linkat or mknodat, its attributes set
through its fd. A symlink is never followed while unpacking: its target, absolute or
not, means something only inside the container's root. A name with `..`, an absolute
one or one through a symlink is refused; a later entry replaces an earlier one at the
same path (the tar rule), never what it links to. Whiteouts and opaque markers are
applied once every entry is in, the same way.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import lzma
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .. import dirfd
from .errors import ImageError
from .layerfs import OPAQUE_MARKER, WHITEOUT_PREFIX, make_whiteout, set_opaque

if not hasattr(tarfile, "data_filter"):
    # Python before 3.11.4 (Debian bookworm ships 3.11.2): read archives with CPython
    # 3.12's tarfile and its fixes (a dependency on those versions).
    from backports import tarfile  # type: ignore[no-redef]  # noqa: E402

# What a damaged archive raises while being read (OSError without errno: zlib, gzip).
_CORRUPT = (tarfile.ReadError, tarfile.CompressionError, EOFError, zlib.error,
            gzip.BadGzipFile, lzma.LZMAError, OSError)


class HashingReader:
    """A read-only stream that hashes what passes through and can be peeked at."""

    def __init__(self, raw: BinaryIO, on_read: Callable[[int], None] | None = None) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.count = 0
        self._peeked = b""
        self.on_read = on_read

    def peek(self, n: int) -> bytes:
        if len(self._peeked) < n:
            self._peeked += self.raw.read(n - len(self._peeked))
        return self._peeked[:n]

    def read(self, n: int | None = -1) -> bytes:
        head, self._peeked = self._peeked, b""
        if n is None or n < 0:
            data = head + self.raw.read()
        else:
            data = head[:n]
            self._peeked = head[n:]
            if len(data) < n:
                data += self.raw.read(n - len(data))
        self.hash.update(data)
        self.count += len(data)
        if self.on_read and data:
            self.on_read(len(data))
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def decompressed(stream: HashingReader, label: str) -> BinaryIO:
    magic = stream.peek(6)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[arg-type]
    if magic[:4] == b"\x28\xb5\x2f\xfd":
        raise ImageError(
            f"{label} is zstd-compressed, which this importer does not read; convert the "
            "image first, e.g. `skopeo copy --dest-compress-format gzip ...`"
        )
    if magic[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(stream)  # type: ignore[arg-type]
    if magic[:3] == b"BZh":
        return bz2.BZ2File(stream)  # type: ignore[arg-type]
    return stream  # type: ignore[return-value]


@dataclass
class ExtractResult:
    blob_digest: str
    diff_id: str
    unrecorded_whiteouts: list[str] = field(default_factory=list)  # mknod was refused


class _Refused(Exception):
    """An entry that must not be unpacked: why, in words (ImageError names the entry)."""


def _parts(name: str, what: str = "its path") -> list[str]:
    """The components of an entry's name; the layer's root is []."""
    if "\0" in name:
        raise _Refused(f"NUL in {what}")
    if name.startswith("/"):
        raise _Refused(f"{what} is absolute")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _Refused(f"'..' in {what}")
    return parts


def _where(parts: list[str], err: OSError) -> str:
    """Why the directory `parts` could not be opened below the root, in words."""
    rel = "/".join(parts) or "."
    if err.errno == errno.ELOOP:
        return f"{rel!r} is a symbolic link, and nothing is unpacked through one"
    if err.errno == errno.ENOTDIR:
        return f"{rel!r} is not a directory"
    if err.errno == errno.EXDEV:
        return f"{rel!r} is outside the layer"
    if err.errno == errno.ENOENT:
        return f"{rel!r} is not in the layer"
    raise err


class _Layer:
    """One layer being unpacked below the directory fd `root`."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.chown = os.geteuid() == 0   # numeric owners, as root only (tarfile's rule)
        self.dirs: dict[str, tarfile.TarInfo] = {}     # explicit directories: attributes last
        self.explicit: set[str] = set()                # every path an entry made
        # Whiteouts and opaque markers, applied last: (path, entry name, opaque?).
        self.marks: list[tuple[list[str], str, bool]] = []

    def directory(self, parts: list[str], make: bool = True) -> int:
        """An fd of the directory `parts`, made (0700 until finish) where missing."""
        try:
            return dirfd.open_beneath(self.root, "/".join(parts))
        except OSError as err:
            if err.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EXDEV):
                raise
        # One part at a time: to make what is missing, and to name the part at fault.
        fd = os.dup(self.root)
        try:
            for i, part in enumerate(parts):
                if make:
                    try:
                        os.mkdir(part, 0o700, dir_fd=fd)
                    except FileExistsError:
                        pass
                try:
                    sub = dirfd.open_beneath(fd, part)
                except OSError as err:
                    raise _Refused(_where(parts[:i + 1], err)) from None
                os.close(fd)
                fd = sub
            return fd
        except BaseException:
            os.close(fd)
            raise

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = _parts(member.name)
        base = parts[-1] if parts else ""
        if base.startswith(WHITEOUT_PREFIX):
            if base == OPAQUE_MARKER:
                self.marks.append((parts[:-1], member.name, True))
            elif not base.startswith(WHITEOUT_PREFIX * 2):   # aufs metadata: ignored
                gone = base[len(WHITEOUT_PREFIX):]
                if gone not in ("", ".", ".."):
                    self.marks.append((parts[:-1] + [gone], member.name, False))
            return
        if member.isdev():
            raise _Refused("device nodes and fifos are not allowed in layers")
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise _Refused(f"unsupported entry type {member.type!r}")
        if not parts:
            if not member.isdir():
                raise _Refused("it would replace the layer's root directory")
            self.dirs[""] = member
            return
        rel = "/".join(parts)
        parent = self.directory(parts[:-1])
        try:
            self._make(tar, member, parent, parts[-1], rel)
        finally:
            os.close(parent)
        self.explicit.add(rel)

    def _make(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parent: int, name: str,
              rel: str) -> None:
        there = dirfd.lstat_at(parent, name)
        if member.isdir():
            if there is not None and not stat.S_ISDIR(there.st_mode):
                os.unlink(name, dir_fd=parent)
                there = None
            if there is None:
                os.mkdir(name, 0o700, dir_fd=parent)
            self.dirs[rel] = member   # its attributes once it is filled (a 0555 one)
            return
        if there is not None:   # the tar rule: a later entry replaces an earlier one
            self._remove(parent, name, rel, there)
        # Our own attribute policy: the image's modes (a 1777 /tmp stays 1777) minus
        # setuid and setgid, numeric owners.
        mode = member.mode & ~(stat.S_ISUID | stat.S_ISGID) & 0o7777
        if member.isreg():
            fd = dirfd.create(parent, name, 0o600)
            with os.fdopen(fd, "wb") as out:
                source = tar.extractfile(member)
                if source is not None:
                    shutil.copyfileobj(source, out, 1 << 20)
                out.flush()   # before the times: a later write would change them
                if self.chown:
                    os.fchown(fd, member.uid, member.gid)
                os.fchmod(fd, mode)
                os.utime(fd, (member.mtime, member.mtime))
            return
        if member.issym():
            if "\0" in member.linkname:
                raise _Refused("NUL in the symlink's target")
            os.symlink(member.linkname, name, dir_fd=parent)
        elif self._link(member, parent, name):
            # A file (not a symlink): the shared inode takes this entry's attributes, as
            # tar gives them. chmod by name: lstat said it is no link.
            if self.chown:
                os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
            os.chmod(name, mode, dir_fd=parent)
        elif self.chown:
            os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        os.utime(name, (member.mtime, member.mtime), dir_fd=parent, follow_symlinks=False)

    def _link(self, member: tarfile.TarInfo, parent: int, name: str) -> bool:
        """A hard link to an entry the layer holds already; False if that is a symlink."""
        target = _parts(member.linkname, "the hard link's target")
        if not target:
            raise _Refused("a hard link to the layer's root directory")
        tparent = self.directory(target[:-1], make=False)
        try:
            st = dirfd.lstat_at(tparent, target[-1])
            if st is None:
                raise _Refused(f"a hard link to {member.linkname!r}, which no entry before "
                               "it made")
            if stat.S_ISDIR(st.st_mode):
                raise _Refused(f"a hard link to the directory {member.linkname!r}")
            # linkat without AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
            os.link(target[-1], name, src_dir_fd=tparent, dst_dir_fd=parent,
                    follow_symlinks=False)
        finally:
            os.close(tparent)
        return not stat.S_ISLNK(st.st_mode)

    def _remove(self, parent: int, name: str, rel: str, there: os.stat_result) -> None:
        if stat.S_ISDIR(there.st_mode):
            shutil.rmtree(name, dir_fd=parent)   # through fds, links not followed
            inside = rel + "/"
            self.dirs = {k: v for k, v in self.dirs.items() if not k.startswith(inside)}
            self.explicit = {k for k in self.explicit if not k.startswith(inside)}
        else:
            os.unlink(name, dir_fd=parent)
        self.dirs.pop(rel, None)

    def finish(self) -> list[str]:
        """Whiteouts and opaque markers, then the directories' attributes; returns the
        deletions mknod was refused for (the store records them in layer.json)."""
        unrecorded = []
        for parts, entry, opaque in self.marks:
            rel = "/".join(parts)
            with _entry(entry):
                fd = self.directory(parts if opaque else parts[:-1])
                try:
                    if opaque:
                        set_opaque(fd)
                    # A path the layer also adds: the whiteout only hides lower ones.
                    elif rel not in self.explicit and dirfd.lstat_at(fd, parts[-1]) is None:
                        if not make_whiteout(parts[-1], dir_fd=fd):
                            unrecorded.append(rel)
                finally:
                    os.close(fd)
        # Directories the tar only implies get fixed attributes, so the layer digest does
        # not depend on when or by whom it was unpacked.
        for top, subdirs, _files, topfd in os.fwalk(".", dir_fd=self.root):
            for d in subdirs:
                if os.path.normpath(os.path.join(top, d)) not in self.explicit:
                    fd = os.open(d, dirfd.DIR_FLAGS, dir_fd=topfd)
                    try:
                        os.fchmod(fd, 0o755)
                        os.utime(fd, (0, 0))
                    finally:
                        os.close(fd)
        # Deepest first, the layer's root ("") last: a 0555 directory is filled by then.
        depth = {rel: rel.count("/") + bool(rel) for rel in self.dirs}
        for rel, member in sorted(self.dirs.items(), key=lambda d: -depth[d[0]]):
            with _entry(member.name):
                fd = dirfd.open_beneath(self.root, rel)
                try:
                    if self.chown:
                        os.fchown(fd, member.uid, member.gid)
                    os.fchmod(fd, member.mode & ~(stat.S_ISUID | stat.S_ISGID) & 0o7777)
                    os.utime(fd, (member.mtime, member.mtime))
                finally:
                    os.close(fd)
        return unrecorded


class _entry:
    """Names the entry in what goes wrong while it is unpacked."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, err, _tb) -> bool:  # noqa: ANN001
        if isinstance(err, _Refused):
            raise _Unsafe(self.name, str(err)) from None
        if isinstance(err, OSError) and err.errno is not None:
            # The archive's doing (a name too long, too many links) or the disk's.
            full = err.errno in (errno.ENOSPC, errno.EDQUOT)
            raise _Unsafe(self.name, f"{err.strerror}" + (
                ": the disk is full; free space and import again" if full else ""),
                unsafe=False) from None
        return False


class _Unsafe(Exception):
    def __init__(self, name: str, why: str, unsafe: bool = True) -> None:
        super().__init__(name, why)
        self.name, self.why, self.unsafe = name, why, unsafe

    def error(self, label: str) -> ImageError:
        if self.unsafe:
            return ImageError(f"{label}: refusing entry {self.name!r}: {self.why}; the "
                              "archive is not safe to import (nothing was stored)")
        return ImageError(f"{label}: cannot unpack entry {self.name!r} ({self.why}); "
                          "nothing was stored")


def extract_layer(
    blob: BinaryIO,
    dest: Path,
    label: str,
    on_read: Callable[[int], None] | None = None,
    on_unpacked: Callable[[int], None] | None = None,
) -> ExtractResult:
    """Unpack a layer blob into the empty directory ``dest`` (overlay form).

    Returns the blob's and the uncompressed tar's digests; the caller compares them
    with what the manifest and config say. Raises ImageError for corrupt, truncated or
    unsafe archives; the caller removes ``dest`` then. ``on_read`` counts the blob's
    bytes as they are read, ``on_unpacked`` the uncompressed tar's (the image store's
    bound stops a layer that unpacks to more than it may take while it is written).
    """
    raw = HashingReader(blob, on_read)
    plain = HashingReader(decompressed(raw, label), on_unpacked)
    root = os.open(dest, dirfd.DIR_FLAGS)
    layer = _Layer(root)
    try:
        with tarfile.open(fileobj=plain, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                with _entry(member.name):
                    layer.add(tar, member)
        plain.drain()
        raw.drain()
        unrecorded = layer.finish()
    except _Unsafe as err:
        raise err.error(label) from None
    except _CORRUPT as e:
        if type(e) is OSError or (isinstance(e, OSError) and e.errno is not None):
            raise  # a real I/O problem on our side, not the archive's
        raise ImageError(
            f"{label} is truncated or corrupt ({e}); get a fresh copy of the archive "
            "(e.g. run `docker save` again) and import it again"
        ) from e
    finally:
        os.close(root)
    return ExtractResult(raw.digest(), plain.digest(), unrecorded)
