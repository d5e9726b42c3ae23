"""Parsing and diffing of what a cell sees: mounts, listings, overlay changes, layers,
namespaces and mount trees.

Runs in: the kernel. The cell's side is read through its init's /proc/PID (and the layer
fds it handed over) by sandbox/snapshots.py, the host's side directly; the diffs are pure.
"""

from .changes import scan_upper
from .listing import diff_listings, snapshot
from .mounts import Mount, MountRow, diff_mounts, parse_mountinfo
from .ns import NsRow, diff_ns, read_namespaces

__all__ = [
    "Mount",
    "MountRow",
    "NsRow",
    "diff_listings",
    "diff_mounts",
    "diff_ns",
    "parse_mountinfo",
    "read_namespaces",
    "scan_upper",
    "snapshot",
]
