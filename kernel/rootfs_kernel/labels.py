"""`%label NAME` and `%show KIND vs NAME`: an earlier cell's side of a comparison.

A labelled cell's container is gone when a later cell asks for it, so the labelled cell
keeps what a later `vs` reads: its mount table as its script saw it (mounts, tree), the
record of its setup (steps) and the listings its own `%show ls PATH` lines took (ls).
The label asks for the mount table and the record itself; a listing it did not take is
named as missing before the later cell runs. A cell's own directory ($CELL) is written
the same in both sides, so two cells compare by what their containers are, not by where
each was built.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from . import cell
from .inspect import mounts as mountinfo
from .sandbox.plan import Plan

MAX_LABELS = 32    # the oldest label is dropped past this many
CELL = "$CELL"


@dataclass
class Labelled:
    """What `%label NAME` kept of a cell for `%show ... vs NAME` later."""

    name: str
    root: str                                   # pivot, chroot or none
    cell_dir: str | None                        # its container's directory ($CELL)
    mounts: list[mountinfo.Mount] | None = None  # its script's mount table, $CELL written
    steps: list | None = None                   # its setup (views.calls.Step)
    listings: dict[str, dict] = field(default_factory=dict)   # %show ls PATH: snapshot


def cell_dir(plan: Plan) -> str | None:
    """A container's own directory: where its root was built (None for %root none)."""
    return posixpath.dirname(plan.root.rstrip("/")) if plan.root != "/" else None


def shows_for(spec: cell.CellSpec) -> tuple[cell.Show, ...]:
    """The cell's views, and what its label keeps without a view of it: the mount table
    and the setup's record (each snapshot taken once)."""
    if not spec.label:
        return spec.show
    kinds = {s.kind for s in spec.show if s.against is None}
    extra = [] if kinds & {"mounts", "tree"} else [cell.Show("mounts")]
    if "steps" not in kinds:
        extra.append(cell.Show("steps"))
    return spec.show + tuple(extra)


def check(spec: cell.CellSpec, labels: dict[str, Labelled]) -> None:
    """Every `vs NAME` of the cell names a labelled cell that kept that view: said at its
    line, before the cell runs."""
    for show in spec.show:
        if show.against is None:
            continue
        line = f"%show {show.kind}{' ' + show.path if show.path else ''} vs {show.against}"
        other = labels.get(show.against)
        if other is None:
            known = ", ".join(labels) or "none yet"
            raise cell.HeaderError(
                show.lineno, line, f"no cell is labelled {show.against}: run a cell with "
                f"`%label {show.against}` first (labels: {known})")
        if show.kind == "ls" and show.path not in other.listings:
            raise cell.HeaderError(
                show.lineno, line, f"the cell labelled {show.against} listed no {show.path}: "
                f"add `%show ls {show.path}` to it and run it again")
        if show.kind in ("mounts", "tree") and other.mounts is None or \
                show.kind == "steps" and other.steps is None:
            raise cell.HeaderError(
                show.lineno, line, f"the cell labelled {show.against} kept no "
                f"{'steps' if show.kind == 'steps' else 'mount table'} (its container was "
                "not made): run it again")


def keep(name: str, plan: Plan, snapshots: list[dict]) -> Labelled:
    """A labelled cell's side of later comparisons, from its snapshots (its own views'
    and shows_for()'s)."""
    from .views.calls import describe

    where = cell_dir(plan)
    kept = Labelled(name, root_mode(plan), where)
    for snap in snapshots:
        if "error" in snap or snap.get("against"):
            continue
        data = snap["data"]
        if snap["kind"] in ("mounts", "tree") and kept.mounts is None:
            kept.mounts = mountinfo.renamed(mountinfo.parse_mountinfo(data), where, CELL)
        elif snap["kind"] == "steps":
            kept.steps = describe(plan, data["records"], ended=data.get("ended"),
                                  notes=data.get("notes"))[1]
        elif snap["kind"] == "ls":
            kept.listings[snap["path"]] = data
    return kept


def remember(labels: dict[str, Labelled], kept: Labelled) -> None:
    """Keep `kept` under its name (a cell labelled again replaces the earlier one)."""
    labels.pop(kept.name, None)
    labels[kept.name] = kept
    while len(labels) > MAX_LABELS:
        labels.pop(next(iter(labels)))


def root_mode(plan: Plan) -> str:
    """How the cell switched its root: pivot, chroot or none."""
    from .sandbox import ops

    if plan.root == "/":
        return "none"
    chroot = any(isinstance(op, ops.Chroot) for op in (*plan.ops, *plan.script_ops))
    return "chroot" if chroot else "pivot"

