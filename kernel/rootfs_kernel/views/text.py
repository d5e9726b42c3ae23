"""Plain-text rendering: aligned columns with a mark column, the summary and legend."""

from __future__ import annotations

from collections.abc import Sequence

from .html import MAX_STATIC_LINES
from .model import State, display, two_sided


def render_text(payload: dict, *, path: Sequence[str] = (), query: str = "",
                differences_only: bool = False, expanded: bool = False,
                max_lines: int | None = MAX_STATIC_LINES, view: dict | None = None) -> str:
    """`view`: model.display() of the same state, when the caller has it already."""
    if view is None:
        view = display(payload, State(tuple(path), query, differences_only, expanded),
                       max_lines)
    both = two_sided(payload)
    header = ["", view["key"]["label"]] + (["side"] if both else [])
    header += [c["label"] for c in view["columns"]]
    lines = view["lines"]
    table: list[list[str]] = [header]
    groups: dict[int, str] = {}
    for ln in lines:
        if ln["kind"] == "group":
            groups[len(table)] = ln["text"]
            table.append([ln["mark"], ln["key"]])
            continue
        cells = [ln["mark"] if ln["first"] else "", ln["key"] if ln["first"] else ""]
        cells += [ln["side"]] if both else []
        cells += ["".join(t for t, _ in v) for v in ln["values"]]
        if ln["note"]:
            cells.append(f"({ln['note']})")
        table.append(cells)

    widths = [max((len(r[i]) for r in table if i < len(r)), default=0)
              for i in range(len(header))]
    out = [view["title"]]
    if view["headline"]:
        out.append(view["headline"])
    for n, r in enumerate(table):
        if n in groups:  # a folded run: its names and what they share, after the key
            out.append(f"{r[0].ljust(widths[0])}  {r[1]}  {groups[n]}".rstrip())
            continue
        out.append("  ".join(c.ljust(widths[i]) if i < len(widths) else c
                             for i, c in enumerate(r)).rstrip())
    if view["empty"]:
        out.append(f"({view['empty']})")
    if len(lines) < view["total_lines"]:
        out.append(f"(the first {len(lines)} of {view['total_lines']} lines)")
    if view["footer"] and view["footer"]["text"]:
        out.append(f"({view['footer']['text']})")
    out.append(view["summary"])
    if view["note"]:
        out.append(view["note"])
    out.append(view["legend"])
    if payload["kind"] == "steps" and not path and not query:
        out += _step_changes(payload, max_lines)
    return "\n".join(out)


def _step_changes(payload: dict, max_lines: int | None) -> list[str]:
    """%show steps: what each step did to the mount table, one line a mount."""
    out = ["", "What each step did to the mount table:"]
    room = MAX_STATIC_LINES if max_lines is None else max_lines
    marks = {e["status"]: e["mark"] for e in payload["legend"]}
    for row in payload["rows"]:
        for kid in row.get("children", {}).get("rows", []):
            if kid["status"] == "same":
                continue
            if room <= 0:
                out.append("(more in the renderer or the live widget)")
                return out
            room -= 1
            values = kid.get("cell") or {}
            what = " ".join(str(values[k]) for k in ("fstype", "source") if values.get(k))
            note = f" ({kid['note']})" if kid.get("note") else ""
            out.append(f"{row['key']:>8}  {marks[kid['status']]} {kid['key']}  {what}{note}")
    return out
