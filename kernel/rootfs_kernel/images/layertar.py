"""Unpacking one OCI/docker layer tar into a layer directory, safely and verified.

The tar is read once, as a stream: the compressed blob and the uncompressed tar are
hashed on the way through, then checked against the digests the manifest and config
promise. Entries are checked with the standard library's extraction filters
(``tarfile.data_filter``); the one thing an image needs that the ``data`` filter
forbids, an absolute symlink target (``/etc/localtime -> /usr/share/zoneinfo/UTC``),
is allowed because it is only ever resolved inside the container's root: the filters'
realpath check still refuses any later entry that would be written through it.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import stat
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .errors import ImageError
from .layerfs import OPAQUE_MARKER, WHITEOUT_PREFIX, make_whiteout, set_opaque

if not hasattr(tarfile, "data_filter"):
    # The extraction filters came in Python 3.11.4; Debian bookworm ships 3.11.2. The
    # backport is the same module from CPython 3.12 (a dependency on those versions).
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


def _unsafe(label: str, name: str, why: str) -> ImageError:
    return ImageError(
        f"{label}: refusing entry {name!r}: {why}. The archive tries to write outside its "
        "layer or to create a device; it is not safe to import (nothing was stored)"
    )


def _checked(member: tarfile.TarInfo, dest: str, label: str) -> tarfile.TarInfo:
    """The member as we will extract it, or ImageError if it is unsafe."""
    if member.islnk() and member.linkname.startswith("/"):
        raise _unsafe(label, member.name, f"hard link to absolute path {member.linkname!r}")
    if member.isdev():
        raise _unsafe(label, member.name, "device nodes and fifos are not allowed in layers")
    try:
        if member.issym() and os.path.isabs(member.linkname):
            tarfile.tar_filter(member, dest)  # path checks; the target stays in the image
        else:
            tarfile.data_filter(member, dest)
    except tarfile.FilterError as e:
        raise _unsafe(label, member.name, str(e)) from None
    # Our own attribute policy instead of the data filter's: keep the image's modes
    # (a 1777 /tmp must stay 1777) minus setuid/setgid, and keep numeric owners.
    mode = member.mode & ~(stat.S_ISUID | stat.S_ISGID)
    return member.replace(mode=mode, uname="", gname="", deep=False)


def _normalized(member: tarfile.TarInfo, label: str) -> str:
    if member.name.startswith("/"):
        raise _unsafe(label, member.name, "absolute path")
    name = os.path.normpath(member.name)
    if name == ".." or name.startswith("../"):
        raise _unsafe(label, member.name, "path outside the layer")
    return name


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
    dest_s = os.path.realpath(dest)
    whiteouts: list[str] = []
    opaque: list[str] = []
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    explicit: set[str] = set()
    try:
        with tarfile.open(fileobj=plain, mode="r|") as tar:  # type: ignore[call-overload]
            tar.errorlevel = 2  # an unresolvable hard link must fail, not be skipped
            for member in tar:
                name = _normalized(member, label)
                parent, base = os.path.split(name)
                if base.startswith(WHITEOUT_PREFIX):
                    _check_parent(parent, dest_s, label, member.name)
                    if base == OPAQUE_MARKER:
                        opaque.append(parent)
                    elif not base.startswith(WHITEOUT_PREFIX * 2):  # aufs metadata: ignore
                        whiteouts.append(os.path.join(parent, base[len(WHITEOUT_PREFIX):]))
                    continue
                member = member.replace(name=name, deep=False)
                if member.islnk():
                    link = os.path.normpath(member.linkname)
                    member = member.replace(linkname=link, deep=False)
                safe = _checked(member, dest_s, label)
                explicit.add(name)
                if safe.isdir():
                    # Attributes last: a 0555 directory must stay writable while filling.
                    os.makedirs(os.path.join(dest_s, name), 0o700, exist_ok=True)
                    dirs.append((name, safe))
                    continue
                tar.extract(safe, dest_s, set_attrs=True, numeric_owner=True,
                            filter="fully_trusted")
                if safe.issym():
                    os.utime(os.path.join(dest_s, name), (safe.mtime, safe.mtime),
                             follow_symlinks=False)
        plain.drain()
        raw.drain()
    except ImageError:
        raise
    except tarfile.ExtractError as e:
        raise ImageError(f"{label}: {e}; the layer is inconsistent, nothing was stored") from e
    except _CORRUPT as e:
        if type(e) is OSError or (isinstance(e, OSError) and e.errno is not None):
            raise  # a real I/O problem on our side (e.g. disk full), not the archive's
        raise ImageError(
            f"{label} is truncated or corrupt ({e}); get a fresh copy of the archive "
            "(e.g. run `docker save` again) and import it again"
        ) from e
    unrecorded = _apply_whiteouts(dest_s, whiteouts, opaque, explicit)
    _finish_dirs(dest_s, dirs, explicit)
    return ExtractResult(raw.digest(), plain.digest(), unrecorded)


def _check_parent(parent: str, dest: str, label: str, name: str) -> None:
    real = os.path.realpath(os.path.join(dest, parent))
    if os.path.commonpath([real, dest]) != dest:
        raise _unsafe(label, name, "whiteout outside the layer")


def _apply_whiteouts(
    dest: str, whiteouts: list[str], opaque: list[str], explicit: set[str]
) -> list[str]:
    unrecorded = []
    for rel in opaque:
        path = Path(dest, rel)
        path.mkdir(parents=True, exist_ok=True)
        set_opaque(path)
    for rel in whiteouts:
        if os.path.basename(rel) in ("", ".", ".."):
            continue
        path = Path(dest, rel)
        if rel in explicit or os.path.lexists(path):
            continue  # the layer also adds this path: the whiteout only hides lower ones
        path.parent.mkdir(parents=True, exist_ok=True)
        if not make_whiteout(path):
            unrecorded.append(rel)
    return unrecorded


def _finish_dirs(dest: str, dirs: list[tuple[str, tarfile.TarInfo]], explicit: set[str]) -> None:
    # Directories the tar only implies get fixed attributes, so the layer digest does
    # not depend on when or by whom it was unpacked.
    for top, subdirs, _files in os.walk(dest):
        for d in subdirs:
            path = os.path.join(top, d)
            if os.path.relpath(path, dest) not in explicit and not os.path.islink(path):
                os.chmod(path, 0o755)
                os.utime(path, (0, 0))
    for name, member in sorted(dirs, key=lambda d: d[0].count("/"), reverse=True):
        path = os.path.join(dest, name)
        if os.geteuid() == 0 and member.uid is not None and member.gid is not None:
            os.lchown(path, member.uid, member.gid)
        os.chmod(path, member.mode)
        os.utime(path, (member.mtime, member.mtime))
