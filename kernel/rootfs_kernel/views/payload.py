"""One JSON-able payload per comparison: the single source of every rendering.

The payload is also published as the MIME type ``application/vnd.rootfs-kernel.compare+json``
for a JupyterLab renderer. Schema, version 1::

    {
      "version": 1,
      "kind": "mounts" | "listing" | "changes" | "ns",
      "title": "Mounts: cell vs host",
      "sides": ["cell", "host"],          # ["cell"] for "changes" (one-sided)
      "key": {"name": "mount_point", "label": "mount point"},
      "columns": [{"name": "fstype", "label": "fs type"}, ...],
      "legend": [["+", "only in cell"], ["-", "only on host"], ["~", "differs"], [" ", "same"]],
      "rows": [ROW, ...],
      "summary": {"same": 40, "only-cell": 1, "only-host": 0, "differs": 2, "total": 43},
      "truncated": false,                 # a snapshot was cut (budget or depth)
      "note": null | "why and where it was cut",
      "notes": {"cell": "...", "host": "..."}    # per-side remarks (listings only)
    }

    ROW = {
      "key": "/tmp",                      # value of the key column (mount point, name, path)
      "status": "same" | "only-cell" | "only-host" | "differs",
      "mark": " " | "+" | "-" | "~",
      "cell": {"fstype": "tmpfs", ...} | null,   # column name -> value (str/int/null)
      "host": {"fstype": "ext4", ...} | null,
      "differs": {"fstype": true, "source": true, ...},   # one flag per column
      # listings only:
      "children": {"rows": [ROW, ...], "summary": {...}},  # directories whose content
                                                           # was read on either side
      "notes": {"cell": "Permission denied"}               # unread/cut directories
    }

Example (kind "ns", one namespace shown)::

    {"version": 1, "kind": "ns", "title": "Namespaces: cell vs host",
     "sides": ["cell", "host"], "key": {"name": "ns", "label": "namespace"},
     "columns": [{"name": "id", "label": "id"}], "legend": [...],
     "rows": [{"key": "mnt", "status": "differs", "mark": "~",
               "cell": {"id": "mnt:[4026532201]"}, "host": {"id": "mnt:[4026531841]"},
               "differs": {"id": true}}],
     "summary": {"same": 0, "only-cell": 0, "only-host": 0, "differs": 1, "total": 1},
     "truncated": false, "note": null}

For "changes" the statuses mean: only-cell = added (A), only-host = deleted (D),
differs = changed (C); the values sit under "cell" and "differs" is all false.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..inspect.mounts import COMPARED_FIELDS, MountRow
from ..inspect.ns import NsRow

MIME_TYPE = "application/vnd.rootfs-kernel.compare+json"
VERSION = 1
STATUSES = ("same", "only-cell", "only-host", "differs")
MARKS = {"same": " ", "only-cell": "+", "only-host": "-", "differs": "~"}
COMPARE_LEGEND = [["+", "only in cell"], ["-", "only on host"], ["~", "differs"], [" ", "same"]]
CHANGES_LEGEND = [["+", "added"], ["-", "deleted"], ["~", "changed"]]

_MOUNT_LABELS = {
    "fstype": "fs type",
    "source": "source",
    "options": "options",
    "super_options": "super options",
    "propagation": "propagation",
    "root": "root",
}
_LISTING_COLUMNS = [("type", "type"), ("mode", "mode"), ("owner", "owner"),
                    ("size", "size"), ("target", "link target")]


def _columns(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": n, "label": lbl} for n, lbl in pairs]


def summarize(rows: Sequence[dict]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for r in rows:
        counts[r["status"]] += 1
    counts["total"] = len(rows)
    return counts


def _envelope(kind: str, title: str, key: tuple[str, str], columns: list[dict],
              rows: list[dict], *, sides: list[str] | None = None,
              legend: list[list[str]] | None = None, truncated: bool = False,
              note: str | None = None) -> dict:
    return {
        "version": VERSION,
        "kind": kind,
        "title": title,
        "sides": sides or ["cell", "host"],
        "key": {"name": key[0], "label": key[1]},
        "columns": columns,
        "legend": legend or COMPARE_LEGEND,
        "rows": rows,
        "summary": summarize(rows),
        "truncated": truncated,
        "note": note,
    }


def _flags(names: Sequence[str], differing: Iterable[str]) -> dict[str, bool]:
    d = set(differing)
    return {n: n in d for n in names}


def mounts_payload(rows: Sequence[MountRow], title: str = "Mounts: cell vs host") -> dict:
    """Payload from diff_mounts() rows."""
    names = COMPARED_FIELDS

    def side(m) -> dict | None:
        if m is None:
            return None
        return {"fstype": m.fstype, "source": m.source, "options": m.options,
                "super_options": m.super_options, "propagation": m.propagation,
                "root": m.root}

    out = [
        {"key": r.mount_point, "status": r.status, "mark": MARKS[r.status],
         "cell": side(r.cell), "host": side(r.host), "differs": _flags(names, r.differs)}
        for r in rows
    ]
    return _envelope("mounts", title, ("mount_point", "mount point"),
                     _columns((n, _MOUNT_LABELS[n]) for n in names), out)


def _listing_rows(rows: Sequence[dict]) -> list[dict]:
    names = [n for n, _ in _LISTING_COLUMNS]
    out = []
    for r in rows:
        row = {"key": r["name"], "status": r["status"], "mark": MARKS[r["status"]],
               "cell": r["cell"], "host": r["host"],
               "differs": _flags(names, r["differs"])}
        if "contents" in r["differs"]:
            row["contents_differ"] = True
        if "children" in r:
            kids = _listing_rows(r["children"])
            row["children"] = {"rows": kids, "summary": summarize(kids)}
        if "notes" in r:
            row["notes"] = r["notes"]
        out.append(row)
    return out


def listing_payload(diff: dict, title: str | None = None) -> dict:
    """Payload from diff_listings(); directories carry their aligned children."""
    cell_path, host_path = diff.get("cell_path"), diff.get("host_path")
    if title is None:
        where = cell_path if cell_path == host_path else f"{cell_path} vs host {host_path}"
        title = f"Listing of {where}: cell vs host"
    notes = diff.get("notes") or {}
    note = "; ".join(f"{side}: {text}" for side, text in notes.items()) or None
    p = _envelope("listing", title, ("name", "name"), _columns(_LISTING_COLUMNS),
                  _listing_rows(diff["rows"]), truncated=bool(diff.get("truncated")),
                  note=note)
    p["paths"] = {"cell": cell_path, "host": host_path}
    p["notes"] = notes
    return p


_CHANGE_STATUS = {"A": "only-cell", "D": "only-host", "C": "differs"}


def changes_payload(scan: dict, title: str = "Changes to the root filesystem") -> dict:
    """Payload from scan_upper(): one-sided, like `docker diff`."""
    names = ["change", "type", "size", "opaque"]
    rows = []
    for c in scan["changes"]:
        status = _CHANGE_STATUS[c["kind"]]
        values = {"change": c["kind"], "type": c["type"], "size": c["size"],
                  "opaque": "opaque" if c.get("opaque") else None}
        rows.append({"key": c["path"], "status": status, "mark": MARKS[status],
                     "cell": values, "host": None, "differs": _flags(names, ())})
    return _envelope("changes", title, ("path", "path"),
                     _columns([("change", "change"), ("type", "type"), ("size", "size"),
                               ("opaque", "replaced dir")]),
                     rows, sides=["cell"], legend=CHANGES_LEGEND,
                     truncated=bool(scan.get("truncated")), note=scan.get("note"))


def ns_payload(rows: Sequence[NsRow], title: str = "Namespaces: cell vs host") -> dict:
    """Payload from diff_ns() rows."""
    out = [
        {"key": r.name, "status": r.status, "mark": MARKS[r.status],
         "cell": None if r.cell is None else {"id": r.cell},
         "host": None if r.host is None else {"id": r.host},
         "differs": {"id": r.status == "differs"}}
        for r in rows
    ]
    return _envelope("ns", title, ("ns", "namespace"), _columns([("id", "id")]), out)


# --- navigation and filtering shared by every renderer ------------------------------------


def level(payload: dict, path: Sequence[str] = ()) -> dict:
    """The rows at `path` (a sequence of directory names; listings only).

    Raises KeyError naming the first component that is not an opened directory.
    """
    node = {"rows": payload["rows"], "summary": payload["summary"]}
    for name in path:
        by_key = {r["key"]: r for r in node["rows"]}
        row = by_key.get(name)
        if row is None or "children" not in row:
            raise KeyError(f"{name!r} is not a directory with recorded children here")
        node = row["children"]
    return node


def subdirectories(rows: Sequence[dict]) -> list[str]:
    """Names of rows that can be opened (they carry children)."""
    return [r["key"] for r in rows if "children" in r]


def _row_text(row: dict) -> str:
    parts = [str(row["key"])]
    for side in ("cell", "host"):
        values = row.get(side)
        if values:
            parts.extend(str(v) for v in values.values() if v is not None)
    return "\0".join(parts).lower()


def select_rows(rows: Sequence[dict], query: str = "", differences_only: bool = False
                ) -> list[dict]:
    """Rows matching a case-insensitive substring `query` (key or any value), and not
    "same" when differences_only."""
    q = query.strip().lower()
    return [
        r for r in rows
        if not (differences_only and r["status"] == "same")
        and (not q or q in _row_text(r))
    ]
