"""Plain-text rendering: aligned columns with a mark column, the summary and legend."""

from __future__ import annotations

from collections.abc import Sequence

from .html import MAX_STATIC_LINES
from .model import State, draw, initial_state, level_legend, two_sided

PAD_CAP = 64


def render_text(payload: dict, *, path: Sequence[str] | None = None, query: str = "",
                differences_only: bool = False, expanded: bool = False,
                max_lines: int | None = MAX_STATIC_LINES, view: dict | None = None) -> str:
    """Every column (text has no switch); `path` None: where the view opens (%show
    layers: its selected layer). `view`: model.draw() of the same state, when the
    caller has it already."""
    if path is None:
        path = initial_state(payload).path
    if view is None:
        view = draw(payload, State(tuple(path), query, differences_only, expanded, True),
                       max_lines)
    both = two_sided(payload)
    header = ["", view["key"]["label"]] + (["side"] if both else [])
    header += [c["label"] for c in view["columns"]]
    lines = view["lines"]
    table: list[list[str]] = [header]
    groups: dict[int, str] = {}
    for ln in lines:
        if ln["kind"] == "section":
            groups[len(table)] = f"-- {ln['text']}"
            table.append(["", ""])
            continue
        if ln["kind"] == "group":
            groups[len(table)] = ln["text"]
            table.append([ln["mark"], ln["key"]])
            continue
        key = "  " * ln["depth"] + ln["key"]
        cells = [ln["mark"] if ln["first"] else "", key if ln["first"] else ""]
        cells += [ln["side"]] if both else []
        cells += ["".join(t for t, _ in v) for v in ln["values"]]
        if ln["note"]:
            cells.append(f"({ln['note']})")
        table.append(cells)

    # A column is padded to at most PAD_CAP: a longer value (a step's system calls, a mount's
    # options) runs into the next column on its row alone, instead of every row of the
    # table carrying its width in spaces.
    widths = [min(PAD_CAP, max((len(r[i]) for r in table if i < len(r)), default=0))
              for i in range(len(header))]
    out = [view["title"]]
    if view["headline"]:
        out.append(view["headline"])
    out += view["names"]
    if view["detail"]:
        out += [f"{label}: {text}" for label, text in view["detail"]["fields"]]
        if view["detail"]["note"]:
            out.append(f"({view['detail']['note']})")
    for n, r in enumerate(table):
        if n in groups and not r[1]:   # a section's heading
            out.append(groups[n])
            continue
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
    if view["legend"]:
        out.append(view["legend"])
    if payload["kind"] == "steps" and not path and not query:
        out += _step_changes(payload, max_lines)
    return "\n".join(out)


def _step_changes(payload: dict, max_lines: int | None) -> list[str]:
    """%show steps: what each step did to the mount table, one line a mount."""
    out = ["", "What each step did to the mount table:"]
    room = MAX_STATIC_LINES if max_lines is None else max_lines
    for row in payload["rows"]:
        marks = {e["status"]: e["mark"] for e in level_legend(payload, row.get("children", {}))}
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
