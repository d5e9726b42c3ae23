"""Self-contained HTML view: inline styles only, no script, every string escaped.

It has to read the same in JupyterLab (any theme), in nbconvert HTML, on GitHub and in a
notebook reopened without a kernel, so it relies on nothing but the markup: colours are
JupyterLab's theme variables with light fallbacks, tints are mixed into the page's own
background, the mark and key columns stay put while the table scrolls sideways, and the
table scrolls inside a bounded height. Lines come from model.display().
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from .model import State, display, two_sided

# Static copies (text/html, text/plain) show at most this many lines; the renderer and
# the live widget show every line.
MAX_STATIC_LINES = 400

TEXT = "var(--jp-content-font-color1,#1f2328)"
BG = "var(--jp-layout-color0,#ffffff)"
MUTED = f"color-mix(in srgb,{TEXT} 72%,{BG})"
BORDER = "var(--jp-border-color2,#d0d7de)"
HEAD_BG = "var(--jp-layout-color2,#eeeeee)"
_HUE = {"only-cell": "var(--jp-success-color1,#1a7f37)",
        "only-host": "var(--jp-error-color1,#cf222e)",
        "differs": "var(--jp-warn-color1,#bf8700)"}
ROW_BG = {"same": BG, **{s: f"color-mix(in srgb,{h} 14%,{BG})" for s, h in _HUE.items()}}
MARK_FG = {"same": TEXT, **{s: f"color-mix(in srgb,{h} 60%,{TEXT})" for s, h in _HUE.items()}}
CELL_DIFF_BG = f"color-mix(in srgb,{_HUE['differs']} 40%,{BG})"
MARK_WIDTH = "2em"

_FONT = "font-family:var(--jp-code-font-family,ui-monospace,SFMono-Regular,Menlo,monospace);" \
        "font-size:12px;line-height:1.35"
_BOX = f"{_FONT};color:{TEXT};text-align:left"
_SCROLL = f"overflow:auto;max-height:min(80vh,60em);border:1px solid {BORDER};max-width:100%"
_TABLE = "border-collapse:separate;border-spacing:0;margin:0"
_CELL = f"padding:0 8px;border-bottom:1px solid {BORDER};vertical-align:top;" \
        "text-align:left;white-space:nowrap"
_TH = f"{_CELL};position:sticky;top:0;z-index:2;background:{HEAD_BG};color:{TEXT}"
_WRAP = "display:inline-block;white-space:normal;overflow-wrap:break-word"
_HL = f"background:{CELL_DIFF_BG};color:{TEXT};font-weight:bold;border-radius:2px"


def _sticky(left: str, bg: str) -> str:
    return f"position:sticky;left:{left};z-index:1;background:{bg}"


def _value(parts: list[list], split: str | None) -> str:
    out = []
    for text, hl in parts:
        t = escape(text)
        out.append(f'<span class="rfk-hl" style="{_HL}">{t}</span>' if hl and text else t)
        if split and text == split:
            out.append("<wbr>")
    html = "".join(out)
    # A list value (mount options) wraps after its separators instead of widening.
    return f'<span style="{_WRAP};max-width:48ch">{html}</span>' if split else html


def render_html(payload: dict, *, path: Sequence[str] = (), query: str = "",
                differences_only: bool = False, expanded: bool = False,
                max_lines: int | None = MAX_STATIC_LINES, view: dict | None = None,
                static_extras: bool = True) -> str:
    """`view`: model.display() of the same state, when the caller has it already;
    `static_extras`: what only a copy without navigation needs (%show steps: each
    step's changes, folded)."""
    if view is None:
        view = display(payload, State(tuple(path), query, differences_only, expanded),
                       max_lines)
    both = two_sided(payload)
    columns = view["columns"]
    ncols = 3 + int(both) + len(columns)

    out = [f'<div class="rfk-static" style="{_BOX}">',
           f'<div class="rfk-title" style="padding:2px 0"><b>{escape(view["title"])}</b></div>']
    if view["headline"]:
        out.append(f'<div class="rfk-headline" style="padding:2px 0;font-weight:bold">'
                   f"{escape(view['headline'])}</div>")
    out.append(f'<div class="rfk-summary" style="padding:2px 0 4px;color:{MUTED}">'
               f"{escape(view['summary'])} &nbsp;·&nbsp; {escape(view['legend'])}</div>")
    out.append(f'<div style="{_SCROLL}"><table class="rfk-table" style="{_TABLE}"><thead><tr>')
    head = [("", f";{_sticky('0', HEAD_BG)};z-index:3;width:{MARK_WIDTH};"
                 f"min-width:{MARK_WIDTH};max-width:{MARK_WIDTH};box-sizing:border-box"),
            (view["key"]["label"], f";{_sticky(MARK_WIDTH, HEAD_BG)};z-index:3")]
    if both:
        head.append(("side", ""))
    head += [(c["label"], "") for c in columns]
    head.append(("note", ""))
    out.extend(f'<th style="{_TH}{extra}">{escape(h)}</th>' for h, extra in head)
    out.append("</tr></thead><tbody>")

    lines = view["lines"]
    cut = len(lines) < view["total_lines"]
    for ln in lines:
        status = ln["status"]
        bg = ROW_BG[status]
        out.append(f'<tr data-status="{status}" style="background:{bg};color:{TEXT}">')
        mark_td = (f'<td{{span}} class="rfk-mark" style="{_CELL};{_sticky("0", bg)};'
                   f'font-weight:bold;color:{MARK_FG[status]};width:{MARK_WIDTH};'
                   f'min-width:{MARK_WIDTH};max-width:{MARK_WIDTH};box-sizing:border-box">'
                   f'{escape(ln["mark"])}</td>')
        key_td = f'<td{{span}} class="rfk-key" style="{_CELL};{_sticky(MARK_WIDTH, bg)}">'
        if ln["kind"] == "group":
            out.append(mark_td.format(span=""))
            out.append(key_td.format(span="") + f"{escape(ln['key'])}</td>")
            out.append(f'<td class="rfk-group" colspan="{ncols - 2}" style="{_CELL};'
                       f'white-space:normal">{escape(ln["text"])}</td></tr>')
            continue
        if ln["first"]:
            span = f' rowspan="{ln["span"]}"' if ln["span"] > 1 else ""
            out.append(mark_td.format(span=span))
            out.append(key_td.format(span=span) + f"{escape(ln['key'])}</td>")
        if both:
            out.append(f'<td class="rfk-side" style="{_CELL};color:{MUTED}">'
                       f"{escape(ln['side'])}</td>")
        for col, parts in zip(columns, ln["values"], strict=True):
            out.append(f'<td style="{_CELL}">{_value(parts, col.get("split"))}</td>')
        if ln["first"]:
            span = f' rowspan="{ln["span"]}"' if ln["span"] > 1 else ""
            note = (f'<span style="{_WRAP};min-width:20em;max-width:48ch">'
                    f'{escape(ln["note"])}</span>') if ln["note"] else ""
            out.append(f'<td{span} class="rfk-row-note" style="{_CELL};color:{MUTED};'
                       f'font-style:italic">{note}</td>')
        out.append("</tr>")
    if view["empty"]:
        out.append(f'<tr><td colspan="{ncols}" class="rfk-empty" style="{_CELL};'
                   f'font-style:italic;color:{MUTED}">{escape(view["empty"])}</td></tr>')
    out.append("</tbody></table></div>")
    below = []
    if cut:
        below.append(f"the first {len(lines)} of {view['total_lines']} lines")
    if view["footer"] and view["footer"]["text"]:
        below.append(view["footer"]["text"])
    if cut or view["collapsed"]:
        below.append(f"every row: {view['footer']['action'] if view['footer'] else 'all rows'}"
                     " in the rootfs-kernel renderer (JupyterLab, Notebook 7) or the live "
                     "widget")
    if below:
        out.append(f'<div class="rfk-footer" style="padding:2px 0;color:{MUTED}">'
                   f'{escape("; ".join(below))}</div>')
    if view["note"]:
        out.append(f'<div class="rfk-note" style="padding:2px 0;color:{MUTED};'
                   f'font-style:italic;white-space:normal">{escape(view["note"])}</div>')
    out.append("</div>")
    html = "".join(out)
    if payload["kind"] == "steps" and not path and not query and static_extras:
        return with_step_tables(html, payload, max_lines)
    return html


def with_step_tables(table: str, payload: dict,
                     max_lines: int | None = MAX_STATIC_LINES) -> str:
    """%show steps' static copy from its top-level table (render_html without the static
    extras), so the widget's table and the copy are drawn once."""
    return table[:-len("</div>")] + _step_tables(payload, max_lines) + "</div>"


def _step_tables(payload: dict, max_lines: int | None) -> str:
    """%show steps without the renderer or a kernel (GitHub, nbconvert, the book): each
    step that changed the mount table, folded in a <details>, its changes one a line."""
    out = [f'<div class="rfk-step-tables" style="padding:4px 0 2px;color:{MUTED}">'
           "What each step did to the mount table (open one):</div>"]
    room = MAX_STATIC_LINES if max_lines is None else max_lines
    marks = {e["status"]: e["mark"] for e in payload["legend"]}
    cell = "padding:0 6px;white-space:nowrap"
    for row in payload["rows"]:
        kids = row.get("children", {}).get("rows", [])
        if not kids or room <= 0:
            continue
        calls = row["cell"].get("calls") or ""
        calls = calls if len(calls) <= 72 else calls[:71] + "…"   # the whole call: above
        head = f"{row['key']}: {row['cell'].get('mounts') or ''} — {calls}"
        out.append('<details class="rfk-step" style="padding:1px 0"><summary style="'
                   'cursor:pointer;white-space:nowrap;overflow:hidden;text-overflow:ellipsis">'
                   f'{escape(head)}</summary><table style="{_TABLE};margin-left:2em">')
        for kid in kids[:room]:
            status = kid["status"]
            values = kid.get("cell") or {}
            what = " ".join(str(values.get(k) or "") for k in ("fstype", "source"))
            note = kid.get("note")
            out.append(f'<tr data-status="{status}" style="background:{ROW_BG[status]}">'
                       f'<td style="{cell};color:{MARK_FG[status]}"><b>'
                       f'{escape(marks[status])}</b></td><td style="{cell}">'
                       f'{escape(kid["key"])}</td><td style="{cell}">{escape(what)}</td>'
                       + (f'<td style="{cell}"><i>{escape(note)}</i></td>' if note else "")
                       + "</tr>")
        room -= len(kids)
        out.append("</table></details>")
    return "".join(out)
