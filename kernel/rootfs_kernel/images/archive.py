"""Reading files out of an image archive that is either a directory or a tar file.

The outer archive is never unpacked to disk: files are streamed out of it by name,
so its own entries cannot write anywhere.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tarfile
from pathlib import Path
from typing import IO, Any

from .errors import ImageError

MAX_JSON = 16 << 20  # manifests and configs are small; refuse to buffer huge "json"


def _clean(rel: str) -> str:
    norm = posixpath.normpath(rel.lstrip("/")) if rel else ""
    if norm in ("", ".") or norm == ".." or norm.startswith("../"):
        raise ImageError(f"archive path {rel!r} points outside the archive")
    return norm


class ArchiveSource:
    """An image archive: a directory or a (possibly gzip-compressed) tar file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.label = str(path)
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if self.path.is_dir():
            return
        if not self.path.exists():
            raise ImageError(f"{path}: no such file or directory")
        try:
            self._tar = tarfile.open(self.path, "r:*")
            for member in self._tar.getmembers():
                self._members[posixpath.normpath(member.name.lstrip("/"))] = member
        except (tarfile.TarError, EOFError, OSError) as e:
            raise ImageError(
                f"{path} is not a readable tar archive or image directory ({e}); "
                "expected a `docker save` tarball or an OCI image layout"
            ) from e

    def __enter__(self) -> ArchiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def exists(self, rel: str) -> bool:
        rel = _clean(rel)
        if self._tar is None:
            return self._dir_path(rel).is_file()
        member = self._members.get(rel)
        return member is not None and (member.isfile() or member.islnk() or member.issym())

    def _dir_path(self, rel: str) -> Path:
        path = self.path / rel
        root = os.path.realpath(self.path)
        if os.path.commonpath([os.path.realpath(path), root]) != root:
            raise ImageError(f"{self.label}: {rel!r} points outside the image directory")
        return path

    def size(self, rel: str) -> int | None:
        rel = _clean(rel)
        if self._tar is None:
            return self._dir_path(rel).stat().st_size
        member = self._members.get(rel)
        return member.size if member is not None and member.isfile() else None

    def open(self, rel: str) -> IO[bytes]:
        rel = _clean(rel)
        missing = ImageError(
            f"{self.label} has no {rel!r}: the archive is incomplete or truncated; "
            "save or copy the image again"
        )
        if self._tar is None:
            try:
                return open(self._dir_path(rel), "rb")
            except FileNotFoundError:
                raise missing from None
        member = self._members.get(rel)
        if member is None:
            raise missing
        try:
            f = self._tar.extractfile(member)  # follows the archive's own links
        except (KeyError, tarfile.TarError) as e:
            raise missing from e
        if f is None:
            raise missing
        return f

    def read_json(self, rel: str, digest: str | None = None) -> Any:
        """Parse a small JSON file, checking its sha256 when the name promises one."""
        import json

        with self.open(rel) as f:
            try:
                data = f.read(MAX_JSON + 1)
            except (tarfile.TarError, EOFError, OSError) as e:
                raise ImageError(f"{self.label}: {rel} is truncated or unreadable ({e})") from e
        if len(data) > MAX_JSON:
            raise ImageError(f"{self.label}: {rel} is too large to be image metadata")
        if digest is not None:
            actual = "sha256:" + hashlib.sha256(data).hexdigest()
            if actual != digest:
                raise ImageError(
                    f"{self.label}: {rel} is corrupt: its sha256 is {actual}, not {digest}; "
                    "get a fresh copy of the archive"
                )
        try:
            return json.loads(data)
        except ValueError as e:
            raise ImageError(f"{self.label}: {rel} is not valid JSON ({e})") from e
