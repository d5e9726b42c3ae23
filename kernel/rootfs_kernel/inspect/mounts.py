"""Parse /proc/PID/mountinfo and align two mount tables (a cell's and the host's).

Line format (proc(5)):

    36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    (1)(2)(3)   (4)   (5)      (6)      (7)    (8) (9)   (10)         (11)

(7) is zero or more optional fields ended by the lone "-" (8). The kernel escapes space,
tab, newline and backslash in paths as three-digit octal (``\\040`` ...).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, replace

_OCTAL = re.compile(r"\\([0-7]{3})")

# Fields compared by diff_mounts, in display order. Mount ids, parent ids and device
# numbers are per-namespace/per-superblock identities, so they are never compared.
COMPARED_FIELDS: tuple[str, ...] = (
    "fstype",
    "source",
    "options",
    "super_options",
    "propagation",
    "root",
)


def unescape(value: str) -> str:
    """Decode the kernel's octal escapes (``\\040`` -> space, ``\\134`` -> backslash)."""
    if "\\" not in value:
        return value
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), value)


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of mountinfo, every field decoded."""

    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str
    mount_point: str
    options: str
    optional_fields: tuple[str, ...]
    fstype: str
    source: str
    super_options: str
    shared: int | None = None
    master: int | None = None
    propagate_from: int | None = None
    unbindable: bool = False

    @property
    def propagation(self) -> str:
        """Short form: "shared:3", "master:1", "shared:2 master:1", "unbindable", "private"."""
        parts = []
        if self.shared is not None:
            parts.append(f"shared:{self.shared}")
        if self.master is not None:
            parts.append(f"master:{self.master}")
        if self.propagate_from is not None:
            parts.append(f"propagate_from:{self.propagate_from}")
        if self.unbindable:
            parts.append("unbindable")
        return " ".join(parts) if parts else "private"

    @property
    def device(self) -> str:
        return f"{self.major}:{self.minor}"


def _parse_line(line: str, lineno: int) -> Mount:
    def bad(why: str) -> ValueError:
        return ValueError(f"mountinfo line {lineno}: {why}: {line!r}")

    fields = line.split()
    try:
        sep = fields.index("-", 6)
    except ValueError:
        raise bad("no ' - ' separator after the optional fields") from None
    if len(fields) - sep - 1 != 3:
        raise bad(f"expected 3 fields after ' - ', found {len(fields) - sep - 1}")
    try:
        mount_id, parent_id = int(fields[0]), int(fields[1])
        major_s, _, minor_s = fields[2].partition(":")
        major, minor = int(major_s), int(minor_s)
    except ValueError:
        raise bad("mount id, parent id or major:minor is not numeric") from None

    optional = tuple(fields[6:sep])
    peer: dict[str, int] = {}
    unbindable = False
    for tag in optional:
        name, _, value = tag.partition(":")
        if name == "unbindable" and not value:
            unbindable = True
        elif name in ("shared", "master", "propagate_from") and value.isdigit():
            peer[name] = int(value)
        # Unknown tags are kept verbatim in optional_fields (proc(5): "should be ignored").

    return Mount(
        mount_id=mount_id,
        parent_id=parent_id,
        major=major,
        minor=minor,
        root=unescape(fields[3]),
        mount_point=unescape(fields[4]),
        options=unescape(fields[5]),
        optional_fields=optional,
        fstype=unescape(fields[sep + 1]),
        source=unescape(fields[sep + 2]),
        super_options=unescape(fields[sep + 3]),
        shared=peer.get("shared"),
        master=peer.get("master"),
        propagate_from=peer.get("propagate_from"),
        unbindable=unbindable,
    )


def renamed(mounts: list[Mount], path: str | None, name: str) -> list[Mount]:
    """The table with `path` (a cell's own directory) written `name` wherever a field
    holds it, so two cells' tables compare by what they are, not where each was built."""
    if not path:
        return mounts
    fields = ("root", "mount_point", "options", "fstype", "source", "super_options")
    out = []
    for m in mounts:
        changed = {f: getattr(m, f).replace(path, name) for f in fields
                   if path in getattr(m, f)}
        out.append(replace(m, **changed) if changed else m)
    return out


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse the whole text of a mountinfo file; blank lines are skipped.

    Raises ValueError naming the 1-based line number of the first malformed line.
    """
    return [
        _parse_line(line, n)
        for n, line in enumerate(text.split("\n"), start=1)
        if line.strip()
    ]


@dataclass(frozen=True, slots=True)
class MountRow:
    """One aligned row: a mount on a mount point in the cell and/or on the host."""

    mount_point: str
    cell: Mount | None
    host: Mount | None
    status: str  # "same" | "only-cell" | "only-host" | "differs"
    differs: tuple[str, ...] = ()
    # Stacked mounts: this row's mounts are covered by a later mount on the same point
    # (nothing below it is visible there, on either side that has it).
    covered: bool = False


def _fields(m: Mount) -> tuple[str, ...]:
    return (m.fstype, m.source, m.options, m.super_options, m.propagation, m.root)


def stack_order(mounts: list[Mount]) -> list[Mount]:
    """Mounts on one mount point, bottom first: each one above is mounted on the one
    below (its parent id). Falls back to mountinfo order when the ids do not form one
    chain (a table read in pieces, or mounts of different subtrees)."""
    if len(mounts) < 2:
        return mounts
    ids = {m.mount_id for m in mounts}
    above = {m.parent_id: m for m in mounts if m.parent_id in ids and m.parent_id != m.mount_id}
    bottoms = [m for m in mounts if m.parent_id not in ids or m.parent_id == m.mount_id]
    if len(bottoms) != 1 or len(above) != len(mounts) - 1:
        return mounts
    chain = [bottoms[0]]
    while len(chain) < len(mounts) and chain[-1].mount_id in above:
        chain.append(above[chain[-1].mount_id])
    return chain if len(chain) == len(mounts) else mounts


def diff_mounts(cell: list[Mount], host: list[Mount]) -> list[MountRow]:
    """Align two mount tables by mount point, rows sorted by mount point.

    Mounts stacked on one mount point are put in mount order (bottom first) and paired
    from the top: the mounts a process sees there are compared with each other, and a
    side's extra mounts below are one-sided rows marked `covered` (hidden under another
    mount, not removed). Linear apart from the final sort: one dict pass per side.
    """
    by_point: dict[str, tuple[list[Mount], list[Mount]]] = defaultdict(lambda: ([], []))
    for m in cell:
        by_point[m.mount_point][0].append(m)
    for m in host:
        by_point[m.mount_point][1].append(m)

    rows: list[MountRow] = []
    for point in sorted(by_point):
        cs, hs = by_point[point]
        if len(cs) == 1 and len(hs) == 1:  # the common case, without the stack logic
            pairs: list[tuple[Mount | None, Mount | None]] = [(cs[0], hs[0])]
        else:
            cs, hs = stack_order(cs), stack_order(hs)
            n = max(len(cs), len(hs))
            cs = [None] * (n - len(cs)) + cs
            hs = [None] * (n - len(hs)) + hs
            pairs = list(zip(cs, hs, strict=True))
        top = len(pairs) - 1
        for i, (c, h) in enumerate(pairs):
            covered = i < top
            if h is None:
                rows.append(MountRow(point, c, None, "only-cell", covered=covered))
            elif c is None:
                rows.append(MountRow(point, None, h, "only-host", covered=covered))
            else:
                diff = tuple(
                    name
                    for name, a, b in zip(COMPARED_FIELDS, _fields(c), _fields(h), strict=True)
                    if a != b
                )
                rows.append(MountRow(point, c, h, "differs" if diff else "same", diff,
                                     covered=covered))
    return rows
