"""One setup step's effect on the mount table: the table after it against the one before.

Within one mount namespace a mount keeps its id, so the two tables are aligned by id: a
new id was mounted, a gone one unmounted (or detached with the old root), and one whose
mount point, options or propagation differ was moved or changed (pivot_root moves the
new root's mounts to /). A clone that makes a new mount namespace copies every mount
under new ids: those two tables are aligned by mount point instead (diff_mounts).
"""

from __future__ import annotations

from dataclasses import dataclass

from .mounts import COMPARED_FIELDS, Mount, diff_mounts

STATUSES = ("added", "changed", "removed", "same")


@dataclass(frozen=True)
class Change:
    point: str                 # the mount point after the step (before it, when removed)
    status: str                # added | changed | removed | same
    before: Mount | None
    after: Mount | None
    differs: tuple[str, ...] = ()   # COMPARED_FIELDS, and "mount_point" for a moved mount


def _fields(m: Mount) -> tuple[str, ...]:
    return (m.fstype, m.source, m.options, m.super_options, m.propagation, m.root)


def compare_tables(before: list[Mount], after: list[Mount], *,
                   copied: bool = False) -> list[Change]:
    """Every mount of either table once, by mount point, with what happened to it."""
    if copied:
        status = {"same": "same", "differs": "changed", "only-cell": "added",
                  "only-host": "removed"}
        return [Change(r.mount_point, status[r.status], r.host, r.cell, r.differs)
                for r in diff_mounts(after, before)]
    old = {m.mount_id: m for m in before}
    new_ids = {m.mount_id for m in after}
    out: list[Change] = []
    gone = [m for m in before if m.mount_id not in new_ids]
    for m in after:
        was = old.get(m.mount_id)
        if was is None:
            out.append(Change(m.mount_point, "added", None, m))
            continue
        differs = tuple(name for name, a, b in zip(COMPARED_FIELDS, _fields(m), _fields(was),
                                                   strict=True) if a != b)
        if m.mount_point != was.mount_point:
            differs = ("mount_point", *differs)
        out.append(Change(m.mount_point, "changed" if differs else "same", was, m, differs))
    out.extend(Change(m.mount_point, "removed", m, None) for m in gone)
    # By mount point, as the mounts view sorts (a stack on one point in mount order).
    order = {m.mount_id: i for i, m in enumerate(before)}
    order.update({m.mount_id: len(before) + i for i, m in enumerate(after)
                  if m.mount_id not in order})
    out.sort(key=lambda c: (c.point, order[(c.before or c.after).mount_id]))
    return out


def changed(rows: list[Change]) -> list[Change]:
    return [r for r in rows if r.status != "same"]


def counts(rows: list[Change]) -> dict[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    for r in rows:
        out[r.status] += 1
    return out
