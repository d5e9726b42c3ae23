"""Pure parsing and diffing of what a cell sees: mounts, listings, overlay changes, ns.

listing.py and changes.py also run inside the container after pivot_root; importing
this package (before pivot_root) loads everything they need.
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
