"""Two mount tables as trees, and the propagation links between them (pure).

A mount's parent is the mount it sits on (mountinfo's parent id); a table's roots are
the mounts whose parent is not in it (the namespace's root, or mounts above the process's
root after chroot). Peer group and master ids are global to the system, so a mount of the
cell and a mount of the host that print the same `shared:N` are peers: a mount or
unmount under one shows up under the other. `master:N` makes a mount a slave of group N:
it receives from N and sends nothing back. `propagate_from:N` names the nearest group
that dominates it and is visible from this root.
"""

from __future__ import annotations

from .mounts import Mount

MAX_MOUNTS = 150   # per side; a bigger table is cut (breadth first) and says so
FOLD_MIN = 3       # a run of fewer alike sibling leaves is drawn mount by mount
FOLD_NAMES = 12    # names spelled out in a fold's text


def _order(mounts: list[Mount]) -> tuple[list[tuple[Mount, int]], int]:
    """Mounts depth first with their depth (children sorted by mount point), at most
    MAX_MOUNTS of them taken breadth first; returns how many were left out."""
    ids = {m.mount_id for m in mounts}
    children: dict[int, list[Mount]] = {}
    roots = []
    for m in mounts:
        if m.parent_id in ids and m.parent_id != m.mount_id:
            children.setdefault(m.parent_id, []).append(m)
        else:
            roots.append(m)
    for kids in children.values():
        kids.sort(key=lambda m: (m.mount_point, m.mount_id))
    roots.sort(key=lambda m: (m.mount_point, m.mount_id))
    keep: set[int] = set()
    level = roots
    while level and len(keep) < MAX_MOUNTS:
        nxt = []
        for m in level:
            if len(keep) >= MAX_MOUNTS:
                break
            keep.add(m.mount_id)
            nxt.extend(children.get(m.mount_id, []))
        level = nxt
    out: list[tuple[Mount, int]] = []

    def visit(m: Mount, depth: int) -> None:
        out.append((m, depth))
        for kid in children.get(m.mount_id, []):
            if kid.mount_id in keep:
                visit(kid, depth + 1)

    for r in roots:
        if r.mount_id in keep:
            visit(r, 0)
    return out, len(mounts) - len(out)


def _node(side: str, m: Mount, depth: int, parent: int | None) -> dict:
    return {"id": f"{side}:{m.mount_id}", "mount_id": m.mount_id, "parent": parent,
            "depth": depth, "mount_point": m.mount_point, "fstype": m.fstype,
            "source": m.source, "options": m.options, "root": m.root,
            "propagation": m.propagation, "shared": m.shared, "master": m.master,
            "propagate_from": m.propagate_from}


def build(cell: list[Mount], host: list[Mount], *, across: bool = True) -> dict:
    """{"sides": [{"name", "nodes": [...] depth first, "left_out": n}], "links": [...]}.

    links: {"kind": "peer", "group": N, "from": id, "to": id} chains the members of one
    peer group (in both trees); {"kind": "master", "group": N, "from": id of a member of
    N (the other namespace's first, when it has one), "to": the slave's id}; a group
    with no mount in either tree is a node of its own ("group:N"). across=False: the two
    tables are not of one moment (an earlier cell's, `vs`), so no link joins them.
    """
    sides = []
    for name, table in (("cell", cell), ("host", host)):
        ordered, left = _order(table)
        ids = {m.mount_id for m, _ in ordered}
        nodes = [_node(name, m, d, m.parent_id if m.parent_id in ids and
                       m.parent_id != m.mount_id else None) for m, d in ordered]
        sides.append({"name": name, "nodes": nodes, "left_out": left})
    members: dict[tuple, list[dict]] = {}
    for side in sides:
        for n in side["nodes"]:
            if n["shared"] is not None:
                members.setdefault((n["shared"], across or side["name"]), []).append(n)
    links: list[dict] = []
    for (group, _), peers in sorted(members.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        for a, b in zip(peers, peers[1:], strict=False):
            links.append({"kind": "peer", "group": group, "from": a["id"], "to": b["id"]})
    groups: list[int] = []
    for side in sides:
        for n in side["nodes"]:
            if n["master"] is None:
                continue
            own = across or side["name"]
            masters = members.get((n["master"], own)) or \
                members.get((n["propagate_from"] or -1, own))
            if masters:
                other = [m for m in masters if not m["id"].startswith(side["name"] + ":")]
                source = (other or masters)[0]["id"]
            else:
                source = f"group:{n['master']}"
                if n["master"] not in groups:
                    groups.append(n["master"])
            links.append({"kind": "master", "group": n["master"], "from": source,
                          "to": n["id"]})
    linked = {end for link in links for end in (link["from"], link["to"])}
    folds = [f for side in sides for f in fold_runs(side["name"], side["nodes"], linked)]
    return {"sides": sides, "links": links, "hidden_groups": groups, "folds": folds}


def fold_runs(side: str, nodes: list[dict], linked: set[str] = frozenset()) -> list[dict]:
    """Runs of at least FOLD_MIN sibling mounts that are alike (the cgroup fan-out): leaves
    of one parent, one after another, of the same filesystem type, options and
    propagation, none an end of a propagation link. Each is drawn as one node
    {"id": "fold:SIDE:N", "side", "parent": the parent's id, "members": [ids], "label",
    "text"}, as the tables fold such runs."""
    parents = {n["parent"] for n in nodes}
    by_parent: dict[int, list[dict]] = {}
    for n in nodes:
        if n["parent"] is not None:
            by_parent.setdefault(n["parent"], []).append(n)

    def alike(n: dict) -> tuple | None:
        if n["mount_id"] in parents or n["id"] in linked:
            return None
        return (n["fstype"], n["options"], n["propagation"])

    out: list[dict] = []
    for parent, kids in by_parent.items():
        i = 0
        while i < len(kids):
            sig = alike(kids[i])
            j = i + 1
            while sig is not None and j < len(kids) and alike(kids[j]) == sig:
                j += 1
            if sig is not None and j - i >= FOLD_MIN:
                run = kids[i:j]
                names = [n["mount_point"].rsplit("/", 1)[-1] or n["mount_point"] for n in run]
                home = run[0]["mount_point"].rsplit("/", 1)[0]
                shown = ", ".join(names[:FOLD_NAMES]) + (", …" if len(names) > FOLD_NAMES
                                                        else "")
                out.append({"id": f"fold:{side}:{len(out)}", "side": side,
                            "parent": f"{side}:{parent}", "members": [n["id"] for n in run],
                            "label": f"{home}/*",
                            "text": f"{len(run)} mounts: {shown} — {sig[0]} {sig[1]}"})
            i = j
    return out
