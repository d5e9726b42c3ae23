"""An image's layers, one by one, the way `dive` reads them, plus what only a running cell
knows: the overlay as mounted and the cell's own upper layer on top.

Each layer directory is in overlayfs' on-disk form (images/layerfs.py): a 0/0 character
device is a whiteout (the path is removed from the layers below), a directory with the
`overlay.opaque` xattr replaces the directory of the layers below wholesale, any other
entry was added (no layer below has the path) or changed (one has: this one shadows it).

The layers are given as directory file descriptors, bottom first: the cell's init opened
them before its root switch (sandbox/snapshots.py reopens them through /proc/PID/fd), or
`rootfs-kernel image inspect NAME --layers` opens the store's directories.
"""

from __future__ import annotations

import os
import posixpath
import stat

from ..linux import is_opaque, is_whiteout
from .listing import file_type

# Entries kept per layer (the first in path order); every entry is counted.
LAYER_ENTRIES = 400


def _walk(fd: int) -> list[dict]:
    """Every entry of one layer directory: path, whiteout, type, size, opaque."""
    out = []
    walker = os.fwalk(".", dir_fd=fd, follow_symlinks=False)
    for dirpath, dirnames, filenames, dfd in walker:
        rel_dir = "/" if dirpath == "." else dirpath[1:] + "/"
        for name in dirnames + filenames:
            try:
                st = os.lstat(name, dir_fd=dfd)
            except FileNotFoundError:
                continue
            whiteout = is_whiteout(st)
            out.append({"path": rel_dir + name, "whiteout": whiteout,
                        "type": None if whiteout else file_type(st.st_mode),
                        "size": None if whiteout else st.st_size,
                        "opaque": stat.S_ISDIR(st.st_mode) and is_opaque(name, dir_fd=dfd)})
    walker.close()
    out.sort(key=lambda e: e["path"])
    return out


class _Probe:
    """What one layer holds at a path, cached: None (nothing), "whiteout", "opaque",
    "dir", or "other" (a non-directory)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.cache: dict[str, str | None] = {}

    def at(self, path: str) -> str | None:
        if path not in self.cache:
            try:
                st = os.lstat(path.lstrip("/") or ".", dir_fd=self.fd)
            except (FileNotFoundError, NotADirectoryError):
                self.cache[path] = None
            else:
                if is_whiteout(st):
                    self.cache[path] = "whiteout"
                elif stat.S_ISDIR(st.st_mode):
                    parent, name = posixpath.split(path)
                    pfd = os.open(parent.lstrip("/") or ".", os.O_RDONLY | os.O_DIRECTORY,
                                  dir_fd=self.fd)
                    try:
                        self.cache[path] = "opaque" if is_opaque(name, dir_fd=pfd) else "dir"
                    finally:
                        os.close(pfd)
                else:
                    self.cache[path] = "other"
        return self.cache[path]

    def hides(self, path: str) -> str | None:
        """How this layer, put above another, hides `path` of it: "shadowed" (it has the
        path itself), "removed" (a whiteout at the path or above it, or a file where a
        directory would be), "replaced" (an opaque directory above it), else None."""
        here = self.at(path)
        if here == "whiteout":
            return "removed"
        if here is not None:
            return "shadowed"
        parent = posixpath.dirname(path)
        while parent != "/":
            above = self.at(parent)
            if above in ("whiteout", "other"):
                return "removed"
            if above == "opaque":
                return "replaced"
            if above is None:
                return None
            parent = posixpath.dirname(parent)
        return None


def scan_layers(fds: list[int], *, keep: int = LAYER_ENTRIES) -> list[dict]:
    """Every layer's entries classified against the layers below it (fds bottom first).

    Returns one dict per layer: {"entries": [{"path", "change" (A|C|D), "type", "size",
    "opaque", "below": [indexes of lower layers that have the path], "above": [[index,
    how], ...] (upper layers that hide it: shadowed|removed|replaced)}, ...] (the first
    `keep` in path order), "counts": {"A", "C", "D", "opaque"}, "total": entries in all,
    "bytes": the size of its regular files}.
    """
    probes = [_Probe(fd) for fd in fds]
    out = []
    for i, fd in enumerate(fds):
        entries = _walk(fd)
        counts = {"A": 0, "C": 0, "D": 0, "opaque": 0}
        size = sum(e["size"] for e in entries if e["type"] == "file")
        kept = []
        for n, e in enumerate(entries):
            if i == 0:
                below = []
            elif n < keep:
                below = [j for j in range(i) if probes[j].at(e["path"]) not in
                         (None, "whiteout")]
            else:  # past the budget only the kind is needed: is it in any layer below
                below = [0] if any(probes[j].at(e["path"]) not in (None, "whiteout")
                                   for j in range(i)) else []
            change = "D" if e["whiteout"] else ("C" if below else "A")
            counts[change] += 1
            counts["opaque"] += int(e["opaque"])
            if n < keep:
                above = [[k, how] for k in range(i + 1, len(fds))
                         if (how := probes[k].hides(e["path"]))]
                kept.append({"path": e["path"], "change": change, "type": e["type"],
                             "size": e["size"], "opaque": e["opaque"], "below": below,
                             "above": above})
        out.append({"entries": kept, "counts": counts, "total": len(entries), "bytes": size})
    return out
