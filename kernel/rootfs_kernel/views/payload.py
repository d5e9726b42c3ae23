"""One JSON-able payload per comparison: the single store of its rows.

Published as ``application/vnd.rootfs-kernel.compare+json``; its shape is defined once,
in ``compare.schema.json`` beside this file (version 2), which the tests validate every
payload against and the JupyterLab renderer's TypeScript types are generated from. The
text, HTML and widget renderings are all drawn from it through model.py.

A row stores what differs and no more: a "same" row has only its cell values (the other
side's are equal), a one-sided row only its own side, marks come from the legend.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from pathlib import Path

from ..cell import format_size
from ..inspect.mounts import COMPARED_FIELDS, MountRow
from ..inspect.ns import NsRow

MIME_TYPE = "application/vnd.rootfs-kernel.compare+json"
VERSION = 2
SCHEMA_PATH = Path(__file__).with_name("compare.schema.json")
STATUSES = ("same", "only-cell", "only-host", "differs")
MARKS = {"same": " ", "only-cell": "+", "only-host": "-", "differs": "~"}
# Rows a listing's payload keeps (breadth first: a whole level or none of it): enough to
# read, few enough that a saved notebook stays small (a row costs ~0.4 KB saved).
LISTING_ROWS = 400
GROUP_MIN = 3          # a run of fewer alike rows is not folded
GROUP_NAMES = 12       # names spelled out in a group's text

_MOUNT_LABELS = {
    "fstype": "fs type",
    "source": "source",
    "options": "options",
    "super_options": "super options",
    "propagation": "propagation",
    "root": "root",
}
_MOUNT_SPLIT = {"options": ",", "super_options": ",", "propagation": " "}
# What a reader needs second: the superblock's options and the mount's root in its
# filesystem, behind the "more columns" switch.
_MOUNT_MORE = ("super_options", "root")
_LISTING_COLUMNS = [("type", "type"), ("mode", "mode"), ("owner", "owner"),
                    ("size", "size"), ("target", "link target")]


@cache
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def _columns(pairs: Iterable[tuple[str, str]], split: dict[str, str] | None = None,
             more: Iterable[str] = ()) -> list[dict]:
    """Value columns; those in `more` are shown behind the "more columns" switch."""
    out = []
    more = set(more)
    for name, label in pairs:
        col: dict = {"name": name, "label": label}
        if split and name in split:
            col["split"] = split[name]
        if name in more:
            col["more"] = True
        out.append(col)
    return out


def _sides(other: str = "host", this: str = "cell") -> list[dict[str, str]]:
    return [{"name": "cell", "label": this}, {"name": "host", "label": other}]


def compare_legend(other: str = "host", on: str = "on", this: str = "cell"
                   ) -> list[dict[str, str]]:
    return [{"status": "only-cell", "mark": "+", "text": f"only in {this}"},
            {"status": "only-host", "mark": "-", "text": f"only {on} {other}"},
            {"status": "differs", "mark": "~", "text": "differs"},
            {"status": "same", "mark": " ", "text": "same"}]


def summarize(rows: Sequence[dict]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for r in rows:
        counts[r["status"]] += 1
    counts["total"] = len(rows)
    return counts


def _envelope(kind: str, title: str, key: tuple[str, str], columns: list[dict],
              rows: list[dict], *, sides: list[dict] | None = None,
              legend: list[dict] | None = None, truncated: bool = False,
              note: str | None = None) -> dict:
    return {
        "version": VERSION,
        "kind": kind,
        "title": title,
        "sides": sides or _sides(),
        "key": {"name": key[0], "label": key[1]},
        "columns": columns,
        "legend": legend or compare_legend(),
        "rows": rows,
        "summary": summarize(rows),
        "truncated": truncated,
        "note": note,
    }


def _row(key: str, status: str, cell: dict | None, host: dict | None,
         differs: Iterable[str] = ()) -> dict:
    row: dict = {"key": key, "status": status}
    if cell is not None:
        row["cell"] = cell
    if host is not None and status != "same":
        row["host"] = host
    d = list(differs)
    if d:
        row["differs"] = d
    return row


def side_values(row: dict, side: str) -> dict | None:
    """A row's values on one side ("cell" or "host"), None where it has none."""
    if side == "host" and row["status"] == "same":
        return row.get("cell")
    return row.get(side)


# --- mounts ----------------------------------------------------------------------------------


def _mount_values(m) -> dict:
    return {"fstype": m.fstype, "source": m.source, "options": m.options,
            "super_options": m.super_options, "propagation": m.propagation, "root": m.root}


THIS = "this cell"   # the cell's side next to an earlier cell's (`vs NAME`)


def mounts_payload(rows: Sequence[MountRow], title: str | None = None, *,
                   image: str | None = None, other: str | None = None,
                   roots: tuple[str, str] | None = None) -> dict:
    """Payload from diff_mounts() rows, with a headline and folded runs of alike rows.
    `other`: the label of the earlier cell the rows compare with (`%show mounts vs NAME`)
    instead of the host; `roots`: how this cell and that one switched their roots."""
    names = COMPARED_FIELDS
    out = []
    for r in rows:
        row = _row(r.mount_point, r.status, None if r.cell is None else _mount_values(r.cell),
                   None if r.host is None else _mount_values(r.host), r.differs)
        if r.covered:
            row["note"] = "covered by the mount above it (hidden, still mounted)"
        out.append(row)
    columns = _columns(((n, _MOUNT_LABELS[n]) for n in names), _MOUNT_SPLIT, _MOUNT_MORE)
    if other is None:
        p = _envelope("mounts", title or "Mounts: cell vs host",
                      ("mount_point", "mount point"), columns, out)
        p["headline"] = mounts_headline(rows, image)
    else:
        p = _envelope("mounts", title or f"Mounts: this cell vs cell {other}",
                      ("mount_point", "mount point"), columns, out,
                      sides=_sides(other, THIS), legend=compare_legend(other, "in", THIS))
        p["headline"] = vs_headline(rows, other, "mounts", roots)
    groups = find_groups(out, columns, p["sides"], parent=posixpath.dirname,
                         alike=("fstype", "options"), noun="mounts")
    if groups:
        p["groups"] = groups
    return p


_SWITCH = {"pivot": "pivot_root", "chroot": "chroot", "none": "no root switch"}


def vs_headline(rows: Sequence, other: str, noun: str,
                roots: tuple[str, str] | None = None) -> str:
    """This cell against the cell labelled `other`, in one line: which rows differ (and,
    where the two switched their roots differently, that the script saw them alike)."""
    top = [r for r in rows if not getattr(r, "covered", False)]
    odd = [r for r in top if r.status != "same"]
    if not odd:
        text = f"the same {len(top)} {noun} as cell {other}'s"
        if roots and roots[0] != roots[1]:
            text += (f", though its root was switched by {_SWITCH[roots[0]]} and cell "
                     f"{other}'s by {_SWITCH[roots[1]]}: a script sees only the mounts "
                     f"under its root (`%show steps vs {other}`: where the two part)")
        return text
    what = {"only-cell": "only here", "only-host": f"only in {other}", "differs": "differs"}
    parts = []
    for status in ("only-cell", "only-host", "differs"):
        keys = [_key(r) for r in odd if r.status == status]
        if keys:
            parts.append(f"{what[status]}: {_some(keys, 4)}")
    return (f"{len(odd)} of {len(top)} {noun} differ from cell {other}'s ("
            + "; ".join(parts) + ")")


def _key(row: object) -> str:
    differs = ", ".join(getattr(row, "differs", ()) or ())
    key = getattr(row, "mount_point", None) or getattr(row, "name", "")
    return f"{key} ({differs})" if differs else key


def _tokens(value: object, sep: str = ",") -> set[str]:
    return set(str(value or "").split(sep)) - {""}


_OWN = ("/proc", "/dev", "/sys")


def mounts_headline(rows: Sequence[MountRow], image: str | None = None) -> str:
    """What the container did to its mount table, in one line."""
    top = {r.mount_point: r for r in rows if not r.covered}
    facts = []
    root = top.get("/")
    if root is not None and root.cell is not None:
        if root.status == "same":
            facts.append("/ is the host's /")
        elif root.cell.fstype == "overlay":
            facts.append(f"/ is an overlay of image {image}" if image else "/ is an overlay")
        else:
            facts.append(f"/ is {root.cell.fstype} from {root.cell.source}")
    own = [p for p in _OWN if p in top and top[p].cell is not None and top[p].status != "same"]
    if own:
        facts.append(f"{', '.join(own)} {'is' if len(own) == 1 else 'are'} the cell's own")
    masked, devices, read_only, added = [], [], [], []
    for r in top.values():
        c, h = r.cell, r.host
        if c is None:
            continue
        ro = "ro" in _tokens(c.options) and (h is None or "ro" not in _tokens(h.options))
        if h is None and r.mount_point.startswith(("/proc/", "/sys/")) and (
                c.root == "/null" or (c.fstype == "tmpfs" and ro)):
            masked.append(r.mount_point)
        elif h is None and r.mount_point.startswith("/dev/") and c.fstype == "devtmpfs":
            devices.append(r.mount_point)
        elif ro:
            read_only.append(r.mount_point)
        elif h is None and r.mount_point not in _OWN:
            added.append(f"{r.mount_point} ({c.fstype})")
    if added:
        facts.append("added " + _some(added, 3))
    if read_only:
        facts.append(_count(len(read_only), "mount") + " read-only")
    if masked:
        facts.append(_count(len(masked), "path") + " masked")
    if devices:
        facts.append(_count(len(devices), "device") + " bound from the host")
    gone = [r for r in top.values() if r.status == "only-host"]
    if gone:
        facts.append(_count(len(gone), "host mount") + " gone")
    return "; ".join(facts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _some(items: Sequence[str], n: int) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


# --- folding runs of alike rows --------------------------------------------------------------


def _signature(row: dict, columns: list[dict], alike: Sequence[str]) -> tuple | None:
    status = row["status"]
    if status == "same":
        return None
    if status == "differs":
        cell, host = row.get("cell") or {}, row.get("host") or {}
        parts: list[tuple] = []
        for col in columns:
            name = col["name"]
            if name not in row.get("differs", ()):
                continue
            if "split" in col:
                c, h = _tokens(cell.get(name), col["split"]), _tokens(host.get(name), col["split"])
                parts.append((name, tuple(sorted(c - h)), tuple(sorted(h - c))))
            else:
                parts.append((name, cell.get(name), host.get(name)))
        return (status, "note" in row, row.get("contents_differ", False), tuple(parts))
    values = row.get("cell") if status == "only-cell" else row.get("host")
    return (status, "note" in row, tuple((values or {}).get(n) for n in alike))


def _describe(row: dict, columns: list[dict], alike: Sequence[str], other: str) -> str:
    """What the rows of a group share, in words."""
    if row["status"] != "differs":
        values = row.get("cell") if row["status"] == "only-cell" else row.get("host")
        return " ".join(str(v) for n in alike if (v := (values or {}).get(n)) not in (None, ""))
    cell, host = row.get("cell") or {}, row.get("host") or {}
    out = []
    for col in columns:
        name = col["name"]
        if name not in row.get("differs", ()):
            continue
        if "split" in col:
            sep = col["split"]
            c, h = _tokens(cell.get(name), sep), _tokens(host.get(name), sep)
            mine = sep.join(sorted(c - h)) or "(none)"
            theirs = sep.join(sorted(h - c)) or "(none)"
            out.append(f"{col['label']} {mine} ({other}: {theirs})")
        else:
            out.append(f"{col['label']} {cell.get(name)} ({other}: {host.get(name)})")
    if row.get("contents_differ"):
        out.append("contents differ")
    return "; ".join(out)


def find_groups(rows: list[dict], columns: list[dict], sides: list[dict], *,
                parent: Callable[[str], str], alike: Sequence[str] = (),
                noun: str = "entries") -> list[dict]:
    """Runs of at least GROUP_MIN consecutive sibling rows that differ the same way."""
    other = sides[-1]["label"]
    groups = []
    # Each row's signature once (the same rows are compared with both neighbours).
    sigs = [None if r["status"] == "same" else (parent(r["key"]), _signature(r, columns, alike))
            for r in rows]
    i = 0
    while i < len(rows):
        sig = sigs[i]
        j = i + 1
        if sig is not None:
            home = sig[0]
            while j < len(rows) and sigs[j] == sig:
                j += 1
        if sig is not None and j - i >= GROUP_MIN:
            members = rows[i:j]
            names = [posixpath.basename(r["key"]) or r["key"] for r in members]
            shown = ", ".join(names[:GROUP_NAMES]) + (", …" if len(names) > GROUP_NAMES else "")
            what = _describe(rows[i], columns, alike, other)
            groups.append({
                "start": i, "count": j - i,
                "label": f"{home.rstrip('/')}/*" if home else f"{j - i} {noun}",
                "text": (f"{j - i} {noun}: " if home else "") + shown
                + (f" — {what}" if what else ""),
            })
        i = j
    return groups


# --- listings --------------------------------------------------------------------------------


def _legend_text(legend: list[dict]) -> dict[str, str]:
    return {e["status"]: e["text"] for e in legend}


def _inside(summary: dict, texts: dict[str, str]) -> str:
    parts = [f"{summary[s]} {texts[s]}" for s in ("only-cell", "only-host", "differs")
             if summary[s]]
    return "inside: " + ", ".join(parts) if parts else ""


def _listing_rows(rows: Sequence[dict], texts: dict[str, str], labels: dict[str, str]
                  ) -> list[dict]:
    names = [n for n, _ in _LISTING_COLUMNS]
    out = []
    for r in rows:
        row = _row(r["name"], r["status"], r["cell"], r["host"],
                   (n for n in names if n in r["differs"]))
        notes = []
        if "contents" in r["differs"]:
            row["contents_differ"] = True
        if "children" in r:
            kids = _listing_rows(r["children"], texts, labels)
            row["children"] = {"rows": kids, "summary": summarize(kids)}
            if row.get("contents_differ"):
                notes.append(_inside(row["children"]["summary"], texts))
        for side, why in (r.get("notes") or {}).items():
            notes.append(f"{labels[side]}: {why}")
        if notes:
            row["note"] = "; ".join(n for n in notes if n)
        out.append(row)
    return out


def _keep_budget(rows: list[dict], budget: int) -> int:
    """Drop the children of directories past `budget` rows, breadth first (the top level
    is always kept). Returns how many rows were dropped."""
    kept = len(rows)
    dropped = 0
    queue = [r for r in rows if "children" in r]
    while queue:
        nxt = []
        for r in queue:
            kids = r["children"]["rows"]
            if kept + len(kids) > budget:
                dropped += _count_rows(kids)
                del r["children"]
                why = f"not kept: the view's budget of {budget:,} rows is spent"
                r["note"] = f"{r['note']}; {why}" if r.get("note") else why
            else:
                kept += len(kids)
                nxt.extend(k for k in kids if "children" in k)
        queue = nxt
    return dropped


def _count_rows(rows: list[dict]) -> int:
    return sum(1 + _count_rows(r.get("children", {}).get("rows", [])) for r in rows)


def listing_payload(diff: dict, title: str | None = None, *, image: str | None = None,
                    budget: int = LISTING_ROWS, against: str | None = None) -> dict:
    """Payload from diff_listings(); directories carry their aligned children.

    With `image`, the other side is that image as it was before the cell (its layers),
    not the host; with `against`, the same path of the cell labelled so (`vs NAME`)."""
    cell_path, host_path = diff.get("cell_path"), diff.get("host_path")
    other = against or ("image" if image else "host")
    on = "in" if image or against else "on"
    this = THIS if against else "cell"
    if title is None:
        if against:
            title = f"Listing of {cell_path}: this cell vs cell {against}"
        elif image:
            title = f"Listing of {cell_path}: the cell vs image {image} before the cell"
        elif cell_path == host_path:
            title = f"Listing of {cell_path}: the cell vs the host"
        else:
            title = f"{cell_path} in the cell vs {host_path} on the host"
    legend = compare_legend(other, on, this)
    labels = {"cell": this, "host": other}
    notes = {side: text for side, text in (diff.get("notes") or {}).items()}
    rows = _listing_rows(diff["rows"], _legend_text(legend), labels)
    dropped = _keep_budget(rows, budget)
    parts = [f"{labels[side]}: {text}" for side, text in notes.items()]
    if dropped:
        parts.append(f"the view keeps {budget:,} rows, breadth first: {dropped:,} deeper "
                     "rows were read but not kept")
        title += f" (first {budget:,} rows)"
    p = _envelope("listing", title, ("name", "name"), _columns(_LISTING_COLUMNS), rows,
                  sides=_sides(other, this), legend=legend,
                  truncated=bool(diff.get("truncated")) or bool(dropped),
                  note="; ".join(parts) or None)
    p["paths"] = {"cell": cell_path, "host": None if image or against else host_path}
    if notes:
        p["notes"] = notes
    _add_groups(p, rows)
    return p


def _add_groups(node: dict, rows: list[dict]) -> None:
    """Fold runs in every level of a listing (all rows of a level are siblings)."""
    groups = find_groups(rows, _columns(_LISTING_COLUMNS), _sides(), parent=lambda _k: "")
    if groups:
        node["groups"] = groups
    for r in rows:
        if "children" in r:
            _add_groups(r["children"], r["children"]["rows"])


# --- changes and namespaces ------------------------------------------------------------------

_CHANGE_STATUS = {"A": "only-cell", "D": "only-host", "C": "differs"}
CHANGES_LEGEND = [{"status": "only-cell", "mark": "+", "text": "added"},
                  {"status": "differs", "mark": "~", "text": "changed"},
                  {"status": "only-host", "mark": "-", "text": "deleted"}]


def changes_payload(scan: dict, title: str = "Changes to the root filesystem") -> dict:
    """Payload from scan_upper(): one-sided, like `docker diff`."""
    rows = []
    for c in scan["changes"]:
        values = {"change": c["kind"], "type": c["type"], "size": c["size"],
                  "opaque": "opaque" if c.get("opaque") else None}
        rows.append(_row(c["path"], _CHANGE_STATUS[c["kind"]], values, None))
    return _envelope("changes", title, ("path", "path"),
                     _columns([("change", "change"), ("type", "type"), ("size", "size"),
                               ("opaque", "replaced dir")]),
                     rows, sides=[{"name": "cell", "label": "cell"}], legend=CHANGES_LEGEND,
                     truncated=bool(scan.get("truncated")), note=scan.get("note"))


def ns_payload(rows: Sequence[NsRow], title: str = "Namespaces: cell vs host") -> dict:
    """Payload from diff_ns() rows."""
    out = [_row(r.name, r.status, None if r.cell is None else {"id": r.cell},
                None if r.host is None else {"id": r.host},
                ["id"] if r.status == "differs" else [])
           for r in rows]
    p = _envelope("ns", title, ("ns", "namespace"), _columns([("id", "id")]), out)
    own = [r.name for r in rows if r.status == "differs"]
    shared = [r.name for r in rows if r.status == "same"]
    facts = []
    if own:
        facts.append(f"the cell's own {', '.join(own)} namespace{'' if len(own) == 1 else 's'}")
    if shared:
        facts.append(f"the host's {', '.join(shared)}")
    p["headline"] = "; ".join(facts)
    return p


# --- navigation shared by every renderer ----------------------------------------------------


def level(payload: dict, path: Sequence[str] = ()) -> dict:
    """The level at `path` (a sequence of directory names; listings only): its rows,
    summary and groups.

    Raises KeyError naming the first component that is not an opened directory.
    """
    node = payload
    for name in path:
        row = next((r for r in node["rows"] if r["key"] == name), None)
        if row is None or "children" not in row:
            raise KeyError(f"{name!r} is not a directory with recorded children here")
        node = row["children"]
    return node


def subdirectories(rows: Sequence[dict]) -> list[str]:
    """Names of rows that can be opened (they carry children)."""
    return [r["key"] for r in rows if "children" in r]


# --- layers ----------------------------------------------------------------------------------

# The top level lists the layers; a layer opens onto what it added, changed and removed.
LAYERS_LEGEND = [{"status": "same", "mark": " ", "text": "layers"}]
ENTRIES_LEGEND = [{"status": "only-cell", "mark": "+", "text": "added"},
                  {"status": "differs", "mark": "~", "text": "changed"},
                  {"status": "only-host", "mark": "-", "text": "removed"}]
_LAYER_COLUMNS = [("digest", "digest"), ("size", "size"), ("created_by", "created by"),
                  ("changes", "changes"), ("role", "in the overlay")]
_ENTRY_COLUMNS = [("change", "change"), ("type", "type"), ("size", "size"),
                  ("opaque", "replaced dir"), ("shadows", "shadows"), ("hidden_by", "hidden by")]
_ENTRY_MORE = ("change", "type")   # the mark and a directory's '/' say them already
_OVERLAY_LABEL = "overlay"
_PATH_KEY = {"name": "path", "label": "path"}
OVERLAY_COLUMNS = [("from", "seen from"), ("shadows", "shadows"), ("seen", "visible")]
_HOW = {"shadowed": "shadowed by", "removed": "removed by", "replaced": "replaced by"}


def _size(size: int | None) -> str | None:
    return None if size is None else format_size(size, decimals=1)


def short_digest(digest: str | None) -> str | None:
    return None if not digest else digest.split(":", 1)[-1][:12]


def _change_counts(counts: dict) -> str:
    text = f"+{counts['A']} ~{counts['C']} -{counts['D']}"
    return text + (f", {counts['opaque']} opaque" if counts.get("opaque") else "")


def layers_payload(data: dict, title: str | None = None, *, image: str | None = None) -> dict:
    """Payload from a layers snapshot ({"scan": inspect.layers.scan_layers(), "stack":
    [{"label", "digest", "size", "created_by", "role"}]}, both bottom first).

    One row per layer, bottom to top, each opening onto what it added, changed and
    removed against the layers below; then "overlay": every kept path that more than one
    layer holds, with the layer it is seen from and the layers it shadows."""
    scan, stack = data["scan"], data["stack"]
    labels = [s["label"] for s in stack]
    rows, cut = [], []
    holders: dict[str, list[tuple[int, dict]]] = {}
    for i, (layer, meta) in enumerate(zip(scan, stack, strict=True)):
        kids = []
        for e in layer["entries"]:
            holders.setdefault(e["path"], []).append((i, e))
            values = {"change": e["change"], "type": e["type"],
                      "size": _size(e["size"]) if e["type"] == "file" else None,
                      "opaque": "opaque" if e["opaque"] else None,
                      "shadows": ", ".join(labels[j] for j in reversed(e["below"])) or None,
                      "hidden_by": ", ".join(f"{_HOW[how]} {labels[k]}"
                                             for k, how in e["above"]) or None}
            kids.append(_row(e["path"], _CHANGE_STATUS[e["change"]], values, None))
        entry_columns = _columns(_ENTRY_COLUMNS, more=_ENTRY_MORE)
        level_ = {"key": dict(_PATH_KEY), "columns": entry_columns, "legend": ENTRIES_LEGEND,
                  "tree": True, "rows": kids, "summary": summarize(kids)}
        groups = find_groups(kids, entry_columns, [{"name": "cell", "label": "cell"}],
                             parent=posixpath.dirname, alike=("change", "type"))
        if groups:
            level_["groups"] = groups
        size = meta.get("size")
        row = _row(meta["label"], "same", {
            "digest": short_digest(meta.get("digest")),
            "size": _size(layer["bytes"] if size is None else size),
            "created_by": meta.get("created_by"), "changes": _change_counts(layer["counts"]),
            "role": meta.get("role")}, None)
        row["children"] = level_
        if layer["total"] > len(layer["entries"]):
            row["note"] = (f"the first {len(layer['entries']):,} of {layer['total']:,} "
                           "entries, in path order")
            cut.append(meta["label"])
        rows.append(row)
    # Paths more than one layer holds: seen from the top one, shadowing the others.
    over = []
    for path in sorted(holders):
        held = holders[path]
        if len(held) < 2:
            continue
        top, entry = held[-1]
        gone = entry["change"] == "D"
        hidden = next((f"{_HOW[how]} {labels[k]}" for k, how in entry["above"]), None)
        values = {"from": None if gone else labels[top],
                  "shadows": ", ".join(labels[j] for j, _ in reversed(held[:-1])),
                  "seen": hidden or (f"removed by {labels[top]}" if gone else "yes")}
        over.append(_row(path, "only-host" if gone else "differs", values, None))
    rows.append({"key": _OVERLAY_LABEL, "status": "same",
                 "cell": {"digest": None, "size": None,
                          "created_by": "the layers merged, top first",
                          "changes": f"{len(over)} paths in more than one layer",
                          "role": "mounted on /"},
                 "note": "open it to see where each such path comes from",
                 "children": {"key": dict(_PATH_KEY), "columns": _columns(OVERLAY_COLUMNS),
                              "legend": ENTRIES_LEGEND, "tree": True,
                              "rows": over, "summary": summarize(over)}})
    n = len(scan) - 1
    if title is None:
        title = (f"Layers of image {image} and this cell's" if image else "Layers") + \
            " (bottom to top)"
    p = _envelope("layers", title, ("layer", "layer"), _columns(_LAYER_COLUMNS), rows,
                  sides=[{"name": "cell", "label": "cell"}], legend=LAYERS_LEGEND,
                  truncated=bool(cut),
                  note=(f"{', '.join(cut)}: only the first entries are kept (every entry is "
                        "counted)") if cut else None)
    # dive's way: the top layer (the cell's own writes) is the one shown first.
    p["selected"] = stack[-1]["label"]
    top = stack[-1]
    if top.get("role") == "upperdir":
        p["headline"] = (f"{n} lower layer{'' if n == 1 else 's'} (lowerdir, top first: "
                         f"{':'.join(reversed(labels[:-1]))}) and {top['label']} "
                         f"({top['role']}): {_change_counts(scan[-1]['counts'])}")
    else:  # the image alone (rootfs-kernel image inspect NAME --layers)
        p["headline"] = (f"{n + 1} layer{'' if n == 0 else 's'}, mounted as lowerdir="
                         f"{':'.join(reversed(labels))} (top first) under a cell's upperdir")
    return p

