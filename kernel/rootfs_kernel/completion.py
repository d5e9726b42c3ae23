"""Completion and is_complete for shell cells, against the files of the cell's image.

The image's layers are ordinary directories on the host, so completing against them
needs no container. They are read the way overlayfs merges them (a name in a higher
layer hides it below, a whiteout deletes it, an opaque directory hides the lower ones),
one name at a time through directory fds: `..` and symlinks, absolute or relative, are
followed inside the image, never out of it to the host. Only cells that reach the host
anyway (%%host, %root none) complete against the host's own names.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import subprocess

from . import cell
from .dirfd import DIR_FLAGS
from .linux import is_opaque, is_whiteout

_WORD = re.compile(r"[^\s;|&<>()`\"']*$")
BIN_DIRS = ("usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin")
MAX_SYMLINKS = 40   # as the kernel's path walk (ELOOP)


def complete(code: str, cursor_pos: int, layers: list[str], cwd: str = "/") -> dict:
    """Matches for the word before cursor_pos. `layers`: the image's layer directories,
    top first (["/"]: the host itself); `cwd`: where relative words start."""
    before = code[:cursor_pos]
    word = _WORD.search(before).group(0)
    start = cursor_pos - len(word)
    line = before[: len(before) - len(word)].rsplit("\n", 1)[-1]
    with _Tree(layers) as tree:
        if word.startswith("%") and not line.strip():
            matches = [f"%{name}" for name in cell.MAGICS if f"%{name}".startswith(word)]
            if "%%host".startswith(word) and before.count("\n") == 0:
                matches.append("%%host")
        elif "/" not in word and _is_command_position(line):
            matches = sorted({name for d in BIN_DIRS for name in tree.names("/" + d)
                              if name.startswith(word)})
        else:
            matches = _paths(tree, word, cwd)
    return {"status": "ok", "matches": matches, "cursor_start": start,
            "cursor_end": cursor_pos, "metadata": {}}


def _is_command_position(line: str) -> bool:
    stripped = line.rstrip()
    return not stripped or stripped.endswith(("|", "&&", "||", ";", "(", "`", "$(", "then",
                                              "do", "else"))


def _paths(tree: _Tree, word: str, cwd: str) -> list[str]:
    head, _, prefix = word.rpartition("/")
    base = head if word.startswith("/") else os.path.join(cwd, head)
    listing = tree.names(base or "/")
    found = set()
    for name, mode in listing.items():
        if name.startswith(prefix):
            is_dir = stat.S_ISDIR(mode) or stat.S_ISLNK(mode) and tree.is_dir(f"{base}/{name}")
            slash = "/" if is_dir else ""
            found.add(f"{head}/{name}{slash}" if head or word.startswith("/") else name + slash)
    return sorted(found)


class _Tree:
    """The merged tree of a stack of layer directories (top first), read through fds."""

    def __init__(self, layers: list[str]) -> None:
        self.layers = layers
        self.roots: list[int] = []
        self.opened: list[int] = []

    def __enter__(self) -> _Tree:
        for layer in self.layers:
            with contextlib.suppress(OSError):
                self.roots.append(self._keep(os.open(layer, DIR_FLAGS)))
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self.opened:
            os.close(fd)
        self.opened.clear()

    def _keep(self, fd: int) -> int:
        self.opened.append(fd)
        return fd

    def names(self, path: str) -> dict[str, int]:
        """The names in directory `path` of the merged tree -> their st_mode (not
        following symlinks; is_dir() does)."""
        out: dict[str, int] = {}
        hidden: set[str] = set()
        for fd in self.resolve(path) or []:
            try:
                entries = os.listdir(fd)
            except OSError:
                continue
            for name in entries:
                if name in out or name in hidden:
                    continue
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    continue
                if is_whiteout(st):
                    hidden.add(name)
                elif not name.startswith(".wh."):
                    out[name] = st.st_mode
        return out

    def is_dir(self, path: str) -> bool:
        return self.resolve(path) is not None

    def resolve(self, path: str) -> list[int] | None:
        """Directory `path` as the fds of each layer's part of it (top first, down to an
        opaque one), or None when it is not a directory of the merged tree."""
        todo = [p for p in path.split("/") if p]
        done: list[str] = []   # the names walked so far, none of them a symlink
        dirs, hops = self.roots, 0
        while todo:
            part = todo.pop(0)
            if part == ".":
                continue
            if part == "..":   # walked again from the root: the root's parent is the root
                todo, done, dirs = done[:-1] + todo, [], self.roots
                continue
            found: list[int] = []
            link = False
            for fd in dirs:
                try:
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    try:
                        sub = self._keep(os.open(part, DIR_FLAGS, dir_fd=fd))
                    except OSError:
                        break
                    found.append(sub)
                    if is_opaque(sub):
                        break
                    continue
                if stat.S_ISLNK(st.st_mode) and not found:
                    hops += 1
                    if hops > MAX_SYMLINKS:
                        return None
                    target = os.readlink(part, dir_fd=fd)
                    todo = [p for p in target.split("/") if p] + todo
                    if target.startswith("/"):
                        done, dirs = [], self.roots
                    link = True
                # A whiteout, a file, or anything under a directory: lower layers hidden.
                break
            if link:   # go on with the link's target, from where the link was
                continue
            if not found:
                return None
            done.append(part)
            dirs = found
        return dirs


def is_complete(code: str, host_access: bool = True) -> dict:
    """Ask the shell's own parser (sh -n) whether the script is complete."""
    try:
        spec = cell.parse(code, host_access=host_access)
    except cell.HeaderError:
        return {"status": "invalid"}
    if code.endswith("\\") or code.endswith("\\\n"):
        return {"status": "incomplete", "indent": ""}
    proc = subprocess.run(["/bin/sh", "-n", "-c", spec.script], capture_output=True,
                          text=True, timeout=5)
    if proc.returncode == 0:
        return {"status": "complete"}
    if "end of file" in proc.stderr or "unterminated" in proc.stderr.lower():
        return {"status": "incomplete", "indent": "  "}
    return {"status": "invalid"}
