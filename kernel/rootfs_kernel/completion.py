"""Completion and is_complete for shell cells, against the files of the cell's image.

The image's layers are ordinary directories on the host, so completing against them
needs no container: a name exists if it exists in any layer (whiteouts aside).
"""

from __future__ import annotations

import os
import re
import subprocess

from . import cell

_WORD = re.compile(r"[^\s;|&<>()`\"']*$")
BIN_DIRS = ("usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin")


def complete(code: str, cursor_pos: int, layers: list[str]) -> dict:
    before = code[:cursor_pos]
    word = _WORD.search(before).group(0)
    start = cursor_pos - len(word)
    line = before[: len(before) - len(word)].rsplit("\n", 1)[-1]
    if word.startswith("%") and not line.strip():
        matches = [f"%{name}" for name in cell.MAGICS if f"%{name}".startswith(word)]
        if "%%host".startswith(word) and before.count("\n") == 0:
            matches.append("%%host")
    elif "/" in word:
        matches = _paths(word, layers)
    elif _is_command_position(line):
        matches = sorted({n for d in _bin_dirs(layers) for n in _names(d) if n.startswith(word)})
    else:
        matches = _paths(word, layers)
    return {"status": "ok", "matches": matches, "cursor_start": start,
            "cursor_end": cursor_pos, "metadata": {}}


def _is_command_position(line: str) -> bool:
    stripped = line.rstrip()
    return not stripped or stripped.endswith(("|", "&&", "||", ";", "(", "`", "$(", "then",
                                              "do", "else"))


def _bin_dirs(layers: list[str]) -> list[str]:
    return [os.path.join(layer, d) for layer in layers for d in BIN_DIRS]


def _names(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


def _paths(word: str, layers: list[str]) -> list[str]:
    head, _, prefix = word.rpartition("/")
    found: set[str] = set()
    for layer in layers:
        inside = os.path.join(layer, head.lstrip("/")) if word.startswith("/") else head or "."
        for name in _names(inside):
            if name.startswith(prefix) and not name.startswith(".wh."):
                full = os.path.join(inside, name)
                found.add(f"{head}/{name}" + ("/" if os.path.isdir(full) else "")
                          if head or word.startswith("/") else name)
    return sorted(found)


def is_complete(code: str) -> dict:
    """Ask the shell's own parser (sh -n) whether the script is complete."""
    try:
        spec = cell.parse(code)
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
