"""Plain-text rendering: aligned columns with a mark column and a legend line."""

from __future__ import annotations

from collections.abc import Sequence

from ._lines import key_label, legend_text, level_title, lines, summary_text
from .payload import level, select_rows


def render_text(payload: dict, *, path: Sequence[str] = (), query: str = "",
                differences_only: bool = False) -> str:
    node = level(payload, path)
    rows = select_rows(node["rows"], query, differences_only)
    names = [c["name"] for c in payload["columns"]]
    two_sided = len(payload["sides"]) == 2

    header = ["", payload["key"]["label"]] + (["side"] if two_sided else [])
    header += [c["label"] for c in payload["columns"]]
    table = [header]
    for ln in lines(rows, names, two_sided):
        prefix = [ln.row["mark"], key_label(ln.row)]
        table.append(prefix + ([ln.side] if two_sided else []) + ln.values)

    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    out = [level_title(payload, path)]
    out += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in table]
    if not rows:
        out.append("(no matching rows)")
    out.append(summary_text(payload, node["summary"]))
    if payload.get("note"):
        out.append(f"note: {payload['note']}")
    out.append(legend_text(payload))
    return "\n".join(out)
