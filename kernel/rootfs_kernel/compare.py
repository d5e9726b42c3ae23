"""Cell snapshots + the other side, read once -> one Comparison per `%show` line.

The cell's side is what its init kept when the script ended (sandbox/snapshots.py). The
other side is the host's, read here in the kernel process when the cell ends, or for a
`%show ls PATH` of a cell with an image, the image as it was before the cell (its layers,
read by snapshots.py while the cell's init still held them), or for `%show KIND vs NAME`
what the cell labelled NAME kept (labels.py). Each comparison is computed here once: the
kernel shows its payload, the Python API hands out the same rows.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from . import labels as labelled
from .inspect import listing, mounts, ns
from .sandbox.plan import Plan
from .views import (
    changes_payload,
    layers_payload,
    limits_payload,
    listing_payload,
    mounts_payload,
    ns_payload,
    steps_payload,
    tree_payload,
)
from .views.calls import describe as describe_steps


@dataclass
class Comparison:
    """One `%show` view as Python objects.

    cell / host: the parsed sides (mounts: list[inspect.Mount]; ls: listing snapshots,
    host being the image's when it was compared with the image; ns: {kind: id}; changes:
    the overlay scan, host None; layers: the layer scans and their labels, host None;
    tree: both mount tables; steps: the setup's steps (views.calls.Step), host the
    host's mount table; limits: the kernel's record of the bounds and peaks, host None).
    rows: the diff rows (inspect.MountRow, listing row dicts, inspect.NsRow, change dicts;
    layers: one row per layer; steps: one per step; limits: one per limit; tree: none).
    payload: what the views render, made from the same rows. error: why the view could not be taken
    (then payload is {"error": ...}).
    """

    kind: str
    cell: object
    host: object
    rows: list
    payload: dict = field(repr=False)
    error: str | None = None
    path: str | None = None   # ls: the listed path

    def differences(self) -> list:
        """Rows that are not the same on both sides (every change for `changes`)."""
        return [r for r in self.rows if _status(r) != "same"]

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        from .views import view_bundle

        if self.error:
            return {"text/plain": self.error}
        return view_bundle(self.payload, widget=False)[0]


def _status(row: object) -> str | None:
    return row.get("status") if isinstance(row, dict) else getattr(row, "status", None)


def compare(snapshots: list[dict], *, image: str | None = None,
            stack: list[dict] | None = None, plan: Plan | None = None,
            labels: dict[str, labelled.Labelled] | None = None) -> list[Comparison]:
    """One comparison per `%show` line, in header order; a failed snapshot becomes one
    whose error says why. `image`: the cell's image name, for the headings. `stack`: what
    %show layers labels the overlay's layers with (session.layer_stack), bottom first.
    `plan`: the cell's, whose operations %show steps names. `labels`: the cells a
    `vs NAME` may name (labels.check said before the cell ran that each is there)."""
    out = []
    for snap in snapshots:
        if "error" in snap:
            why = f"%show {snap['kind']}: {snap['error']}"
            out.append(Comparison(snap["kind"], None, None, [], {"error": why}, why,
                                  snap.get("path")))
            continue
        if snap.get("against"):
            out.append(_versus(snap, labels[snap["against"]], plan, image))
            continue
        if snap["kind"] == "layers":
            snap = {**snap, "data": {**snap["data"], "stack": stack or []}}
        if snap["kind"] == "steps":
            snap = {**snap, "data": {**snap["data"], "plan": plan}}
        out.append(_compare(snap, image))
    return out


def _versus(snap: dict, other: labelled.Labelled, plan: Plan | None,
            image: str | None) -> Comparison:
    """This cell's view next to the same view of the cell labelled `other.name`."""
    from .views.steps import steps_vs_payload

    kind, data, name = snap["kind"], snap["data"], other.name
    where = labelled.cell_dir(plan) if plan is not None else None
    if kind in ("mounts", "tree"):
        cell = mounts.renamed(mounts.parse_mountinfo(data), where, labelled.CELL)
        if kind == "tree":
            return Comparison(kind, cell, other.mounts, [],
                              tree_payload(cell, other.mounts, other=name,
                                           path=snap.get("path")))
        rows = mounts.diff_mounts(cell, other.mounts)
        roots = (labelled.root_mode(plan), other.root) if plan is not None else None
        return Comparison(kind, cell, other.mounts, rows,
                          mounts_payload(rows, image=image, other=name, roots=roots))
    if kind == "ls":
        base = other.listings[snap["path"]]
        diff = listing.diff_listings(data, base)
        return Comparison(kind, data, base, diff["rows"], listing_payload(diff, against=name),
                          path=snap["path"])
    if kind == "steps":
        _, steps_ = describe_steps(plan, data["records"], ended=data.get("ended"),
                                   notes=data.get("notes"))
        payload = steps_vs_payload(steps_, where, other.steps, other.cell_dir, name)
        return Comparison(kind, steps_, other.steps, payload["rows"], payload)
    raise ValueError(f"%show {kind} has no vs")


def _host_mountinfo() -> str:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return f.read()


def _compare(snap: dict, image: str | None) -> Comparison:
    kind, data = snap["kind"], snap["data"]
    if kind == "mounts":
        host = mounts.parse_mountinfo(_host_mountinfo())
        cell = mounts.parse_mountinfo(data)
        rows = mounts.diff_mounts(cell, host)
        return Comparison(kind, cell, host, rows, mounts_payload(rows, image=image))
    if kind == "ls":
        base = snap.get("image")
        if snap.get("host_path") or base is None:
            # An explicit host path, or no image to compare with (%root none).
            base = listing.snapshot(snap.get("host_path") or snap["path"])
            image = None
        diff = listing.diff_listings(data, base)
        return Comparison(kind, data, base, diff["rows"], listing_payload(diff, image=image),
                          path=snap["path"])
    if kind == "ns":
        host = ns.read_namespaces()
        rows = ns.diff_ns(data, host)
        return Comparison(kind, data, host, rows, ns_payload(rows))
    if kind == "changes":
        return Comparison(kind, data, None, list(data.get("changes", [])),
                          changes_payload(data))
    if kind == "layers":
        payload = layers_payload(data, image=image)
        return Comparison(kind, data, None, payload["rows"], payload)
    if kind == "steps":
        host, steps_ = describe_steps(data["plan"], data["records"], ended=data.get("ended"),
                                      notes=data.get("notes"))
        root = data["plan"].root if data["plan"] is not None else "/"
        payload = steps_payload(host, steps_, cell_dir=posixpath.dirname(root.rstrip("/"))
                                if root != "/" else None)
        return Comparison(kind, steps_, host, payload["rows"], payload)
    if kind == "limits":
        payload = limits_payload(data)
        return Comparison(kind, data, None, payload["rows"], payload)
    if kind == "tree":
        cell = mounts.parse_mountinfo(data)
        host = mounts.parse_mountinfo(_host_mountinfo())
        payload = tree_payload(cell, host, path=snap.get("path"))
        return Comparison(kind, cell, host, [], payload)
    raise ValueError(f"unknown view {kind!r}")
