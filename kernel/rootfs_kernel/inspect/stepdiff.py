"""One setup step's effect on the mount table: the table after it against the one before.

Within one mount namespace a mount keeps its id, so the two tables are aligned by id: a
new id was mounted, a gone one unmounted (or detached with the old root), and one whose
mount point, options or propagation differ was moved or changed (pivot_root moves the
new root's mounts to /). A clone that makes a new mount namespace copies every mount
under new ids: those two tables are aligned by mount point instead (diff_mounts).
"""

from __future__ import annotations

from dataclasses import dataclass

from .mounts import COMPARED_FIELDS, Mount, diff_mounts, parse_mountinfo

STATUSES = ("added", "changed", "removed")


@dataclass(frozen=True)
class Change:
    point: str                 # the mount point after the step (before it, when removed)
    status: str                # added | changed | removed
    before: Mount | None
    after: Mount | None
    differs: tuple[str, ...] = ()   # COMPARED_FIELDS, and "mount_point" for a moved mount


class Tables:
    """The tables of one record, parsed: a step changes a line or two of the table
    before it, so each distinct line is parsed once, and an unchanged mount is the same
    object in both tables (compare_tables then has nothing to compare)."""

    def __init__(self) -> None:
        self.lines: dict[str, Mount] = {}

    def parse(self, text: str) -> list[Mount]:
        out = []
        for line in text.split("\n"):
            m = self.lines.get(line)
            if m is None:
                if not line.strip():
                    continue
                m = self.lines[line] = parse_mountinfo(line)[0]
            out.append(m)
        return out


def _fields(m: Mount) -> tuple[str, ...]:
    return (m.fstype, m.source, m.options, m.super_options, m.propagation, m.root)


def compare_tables(before: list[Mount], after: list[Mount], *,
                   copied: bool = False) -> list[Change]:
    """The mounts the step added, removed or changed, by mount point (a stack on one
    point in mount order); the unchanged ones are the rest of `after`."""
    if copied:
        status = {"differs": "changed", "only-cell": "added", "only-host": "removed"}
        return [Change(r.mount_point, status[r.status], r.host, r.cell, r.differs)
                for r in diff_mounts(after, before) if r.status != "same"]
    old = {m.mount_id: m for m in before}
    new_ids = {m.mount_id for m in after}
    out: list[Change] = []
    for m in after:
        was = old.get(m.mount_id)
        if was is m:   # the same line (Tables): nothing to compare
            continue
        if was is None:
            out.append(Change(m.mount_point, "added", None, m))
            continue
        differs = tuple(name for name, a, b in zip(COMPARED_FIELDS, _fields(m), _fields(was),
                                                   strict=True) if a != b)
        if m.mount_point != was.mount_point:
            differs = ("mount_point", *differs)
        if differs:
            out.append(Change(m.mount_point, "changed", was, m, differs))
    out.extend(Change(m.mount_point, "removed", m, None) for m in before
               if m.mount_id not in new_ids)
    # By mount point, as the mounts view sorts (a stack on one point in mount order).
    order = {m.mount_id: i for i, m in enumerate(before)}
    order.update({m.mount_id: len(before) + i for i, m in enumerate(after)
                  if m.mount_id not in order})
    out.sort(key=lambda c: (c.point, order[(c.before or c.after).mount_id]))
    return out


def counts(rows: list[Change]) -> dict[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    for r in rows:
        out[r.status] += 1
    return out
