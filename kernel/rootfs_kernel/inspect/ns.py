"""Namespace identities of a process, and their comparison."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..linux import NAMESPACES


def read_namespaces(proc: str = "/proc/self") -> dict[str, str | None]:
    """readlink of PROC/ns/X for each namespace, e.g. {"mnt": "mnt:[4026531841]", ...}.

    A namespace whose link is missing or unreadable (no /proc, old kernel) maps to None.
    """
    ids: dict[str, str | None] = {}
    for name in NAMESPACES:
        try:
            ids[name] = os.readlink(f"{proc}/ns/{name}")
        except OSError:
            ids[name] = None
    return ids


@dataclass(frozen=True, slots=True)
class NsRow:
    name: str
    cell: str | None
    host: str | None
    status: str  # "same" | "differs" | "only-cell" | "only-host"


def diff_ns(cell: dict[str, str | None], host: dict[str, str | None]) -> list[NsRow]:
    """One row per namespace kind: "differs" means the cell has its own namespace."""
    names = list(NAMESPACES) + sorted((cell.keys() | host.keys()) - set(NAMESPACES))
    rows = []
    for name in names:
        c, h = cell.get(name), host.get(name)
        if c is None and h is None:
            continue
        if h is None:
            status = "only-cell"
        elif c is None:
            status = "only-host"
        else:
            status = "same" if c == h else "differs"
        rows.append(NsRow(name, c, h, status))
    return rows
