"""Self-contained HTML table: inline styles only, no script, every string escaped.

It has to read the same in JupyterLab, in nbconvert HTML, on GitHub and in a notebook
reopened without a kernel, so it relies on nothing but the markup itself. Colours carry
an explicit text colour so they stay legible under dark themes.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ._lines import key_label, legend_text, level_title, lines, summary_text
from .payload import level, select_rows

TEXT = "#1f2328"
ROW_BG = {"same": "", "only-cell": "#e6ffec", "only-host": "#ffebe9", "differs": "#fff8c5"}
MARK_FG = {"same": TEXT, "only-cell": "#1a7f37", "only-host": "#cf222e", "differs": "#9a6700"}
CELL_DIFF_BG = "#ffd33d"

_TABLE = ("border-collapse:collapse;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;"
          "font-size:12px;line-height:1.4")
_CAPTION = f"caption-side:top;text-align:left;padding:4px 0;color:{TEXT}"
_TH = (f"text-align:left;padding:2px 8px;border-bottom:2px solid #d0d7de;"
       f"background:#f6f8fa;color:{TEXT}")
_TD = "padding:1px 8px;border-bottom:1px solid #eaeef2;vertical-align:top;white-space:pre"
_NOTE = f"padding:4px 8px;color:{TEXT};font-style:italic"


def _row_style(status: str) -> str:
    bg = ROW_BG[status]
    return f' style="background:{bg};color:{TEXT}"' if bg else ""


def render_html(payload: dict, *, path: Sequence[str] = (), query: str = "",
                differences_only: bool = False) -> str:
    node = level(payload, path)
    rows = select_rows(node["rows"], query, differences_only)
    names = [c["name"] for c in payload["columns"]]
    two_sided = len(payload["sides"]) == 2
    ncols = 2 + int(two_sided) + len(names)

    title = level_title(payload, path)
    out = [
        f'<table style="{_TABLE}">',
        f'<caption style="{_CAPTION}"><b>{escape(title)}</b><br>'
        f"{escape(summary_text(payload, node['summary']))}"
        f" &nbsp;·&nbsp; {escape(legend_text(payload))}</caption>",
        "<thead><tr>",
    ]
    header = ["", payload["key"]["label"]] + (["side"] if two_sided else [])
    header += [c["label"] for c in payload["columns"]]
    out.extend(f'<th style="{_TH}">{escape(h)}</th>' for h in header)
    out.append("</tr></thead><tbody>")

    for ln in lines(rows, names, two_sided):
        row, status = ln.row, ln.row["status"]
        out.append(f'<tr data-status="{status}"{_row_style(status)}>')
        if ln.first:
            span = ' rowspan="2"' if two_sided and status == "differs" else ""
            out.append(
                f'<td{span} style="{_TD};font-weight:bold;color:{MARK_FG[status]}">'
                f"{escape(row['mark'])}</td>"
                f'<td{span} style="{_TD}">{escape(key_label(row))}</td>'
            )
        if two_sided:
            out.append(f'<td style="{_TD};color:#59636e">{ln.side}</td>')
        flags = row["differs"]
        for name, value in zip(names, ln.values, strict=True):
            hl = f";background:{CELL_DIFF_BG};font-weight:bold" if flags.get(name) else ""
            out.append(f'<td style="{_TD}{hl}">{escape(value)}</td>')
        out.append("</tr>")
    if not rows:
        out.append(f'<tr><td colspan="{ncols}" style="{_NOTE}">no matching rows</td></tr>')
    out.append("</tbody>")
    if payload.get("note"):
        out.append(f'<tfoot><tr><td colspan="{ncols}" style="{_NOTE}">'
                   f"note: {escape(payload['note'])}</td></tr></tfoot>")
    out.append("</table>")
    return "".join(out)
