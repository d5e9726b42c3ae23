"""Self-contained HTML view: one stylesheet, markup styled by class, no script, every
string escaped.

It has to read the same in JupyterLab (any theme), in nbconvert HTML, on GitHub, in the
book and in a notebook reopened without a kernel, so it relies on nothing but the
markup and its one stylesheet (static.css, put once into each view; the widget shows the
same markup, and the JupyterLab renderer builds the same markup with the same sheet).
Where a sanitizer drops the stylesheet, the markup is still a plain table with its marks.
Lines come from model.draw().
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from html import escape
from pathlib import Path

from .model import State, draw, initial_state, level_legend, two_sided

# Static copies (text/html, text/plain) show at most this many lines; the renderer and
# the live widget show every line.
MAX_STATIC_LINES = 400
STYLESHEET = Path(__file__).with_name("static.css")
# Values may break after these (a path after "/", a name after "-", a list after "," or
# "|"), and a long run without any (a digest) every few characters: the table then fits
# the width of the output area it is drawn in.
_AFTER = re.compile(r"(?<=[/,|-])")
_RUN = re.compile(r"\S{16,}")
_CUT = re.compile(r"[/,|-]|\S{16}")   # where pieces() has anything to cut
_CHUNK = 10


# The parts of static.css ("@part KIND") each kind of view takes besides the rest.
_PARTS = {"steps": ("steps",), "layers": ("layers",), "tree": ("tree",)}


@functools.cache
def stylesheet(kind: str | None = None) -> str:
    """static.css without its comments and spaces (it goes into every view): the parts
    every view needs, and `kind`'s own (None: all of it)."""
    base, *rest = re.split(r"/\* @part (\w+) \*/", STYLESHEET.read_text())
    parts = dict(zip(rest[::2], rest[1::2], strict=True))
    wanted = parts if kind is None else _PARTS.get(kind, ())
    css = base + "".join(parts[name] for name in wanted)
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    css = re.sub(r"\s+", " ", css)
    css = re.sub(r"\s*([{};,>])\s*", r"\1", css)
    css = re.sub(r":\s+", ":", css)
    return f"<style>{css.replace(';}', '}').strip()}</style>"


def pieces(text: str) -> list[str]:
    """`text` cut where it may wrap (no character is lost or added)."""
    out = []
    for part in _AFTER.split(text):
        at = 0
        for run in _RUN.finditer(part):   # in pieces of about equal length
            n = -(-len(run[0]) // _CHUNK)
            size = -(-len(run[0]) // n)
            for cut in range(run.start() + size, run.end(), size):
                out.append(part[at:cut])
                at = cut
        out.append(part[at:])
    return [p for p in out if p]


@functools.lru_cache(maxsize=4096)   # a table repeats its values (private, rw,relatime)
def breakable(text: str) -> str:
    """Escaped text that may wrap where pieces() cuts it (and where it would anyway),
    also after a separator it ends with (a list's parts come one by one)."""
    if not _CUT.search(text):
        return escape(text)
    out = "<wbr>".join(escape(p) for p in pieces(text))
    return out + "<wbr>" if text[-1:] in ("/", ",", "|", "-") else out


def _value(parts: list[list]) -> str:
    return "".join(f'<span class="rfk-hl">{breakable(t)}</span>' if hl and t else breakable(t)
                   for t, hl in parts)


def _bar(bar: list[int] | None) -> str:
    if not bar:
        return ""
    left, width = bar
    return (f'<span class="rfk-bar"><i style="left:{left / 10:g}%;width:{width / 10:g}%">'
            "</i></span>")


def _root(more_on: bool = False) -> str:
    return f'<div class="rfk-static{" rfk-more-on" if more_on else ""}">'


def heading_html(view: dict) -> str:
    """Title, headline, the names rows use, the opened row's details, the counts."""
    out = ['<div class="rfk-heading">',
           f'<div class="rfk-title">{breakable(view["title"])}</div>']
    if view["headline"]:
        out.append(f'<div class="rfk-headline">{escape(view["headline"])}</div>')
    out.extend(f'<div class="rfk-names">{breakable(n)}</div>' for n in view["names"])
    detail = view["detail"]
    if detail:
        out.append('<div class="rfk-detail">')
        out.extend(f'<div><span class="rfk-label">{escape(label)}:</span> {breakable(text)}'
                   "</div>" for label, text in detail["fields"])
        if detail["note"]:
            out.append(f'<div class="rfk-detail-note">{breakable(detail["note"])}</div>')
        out.append("</div>")
    legend = f" · {escape(view['legend'])}" if view["legend"] else ""
    out.append(f'<div class="rfk-summary">{escape(view["summary"])}{legend}</div></div>')
    return "".join(out)


def switch_html(view: dict) -> str:
    """The "more columns" switch of a copy without a kernel (a checkbox the stylesheet
    reads): nothing where every column is shown."""
    if not view["more"]:
        return ""
    return ('<label class="rfk-switch"><input type="checkbox" class="rfk-more-switch"> '
            f"more columns: {escape(', '.join(view['more']))}</label>")


def table_html(payload: dict, view: dict) -> str:
    """The table of the view's lines, in its scrolling box."""
    both = two_sided(payload)
    columns = view["columns"]
    marked, notes = view["marks"], view["notes"]
    ncols = int(marked) + 1 + int(notes) + int(both) + len(columns)
    classes = "rfk-table" + (" rfk-marked" if marked else "") + \
        (" rfk-notes-under" if payload["kind"] == "steps" else "") + \
        (" rfk-whole-keys" if whole_keys(payload, view) else "")
    out = [f'<div class="rfk-scroll"><table class="{classes}"><thead><tr>']
    if marked:
        out.append('<th class="rfk-mark"></th>')
    out.append(f'<th class="rfk-key">{escape(view["key"]["label"])}</th>')
    if both:
        out.append('<th class="rfk-side">side</th>')
    out.extend(f'<th{_more(c)}>{escape(c["label"])}</th>' for c in columns)
    out.append(('<th class="rfk-row-note">note</th>' if notes else "") + "</tr></thead><tbody>")
    plain = [c for c in columns if not c.get("more")]
    extra = [c for c in columns if c.get("more")]
    mark_td = '<td class="rfk-mark"{span}>{mark}</td>' if marked else ""
    for ln in view["lines"]:
        if ln["kind"] == "section":
            out.append(f'<tr class="rfk-section"><td colspan="{ncols}">'
                       f'{escape(ln["text"])}</td></tr>')
            continue
        status = ln["status"]
        if ln["kind"] == "group":
            out.append(f'<tr class="rfk-row rfk-group-row rfk-{status}" data-status="{status}">'
                       + mark_td.format(span="", mark=escape(ln["mark"]))
                       + f'<td class="rfk-key">{breakable(ln["key"])}</td>'
                       f'<td class="rfk-group" colspan="{int(both) + len(plain)}">'
                       f'{escape(ln["text"])}</td>'
                       + "".join('<td class="rfk-more"></td>' for _ in extra)
                       + ('<td class="rfk-row-note"></td>' if notes else "") + "</tr>")
            continue
        row_class = f'rfk-row rfk-{status}{"" if ln["first"] else " rfk-second"}'
        out.append(f'<tr class="{row_class}" data-status="{status}">')
        span = f' rowspan="{ln["span"]}"' if ln["span"] > 1 else ""
        if ln["first"]:
            out.append(mark_td.format(span=span, mark=escape(ln["mark"])))
            indent = f' style="padding-left:calc(var(--rfk-pad) + {ln["depth"] * 2}ch)"' \
                if ln["depth"] else ""
            out.append(f'<td class="rfk-key"{span}{indent}>{breakable(ln["key"])}</td>')
        if both:
            out.append(f'<td class="rfk-side">{escape(ln["side"])}</td>')
        for col, parts in zip(columns, ln["values"], strict=True):
            if col.get("bar"):
                out.append(f'<td class="rfk-took">{_bar(ln["bar"])}{_value(parts)}</td>')
            else:
                out.append(f"<td{_more(col)}>{_value(parts)}</td>")
        if ln["first"] and notes:
            note = f"<span>{breakable(ln['note'])}</span>" if ln["note"] else ""
            out.append(f'<td class="rfk-row-note"{span}>{note}</td>')
        out.append("</tr>")
        last = ln["span"] == 1 or not ln["first"]   # the row's last line
        if last and ln["row"].get("note"):
            out.append(_noteline(status, ln["row"]["note"], marked, ncols))
    if view["empty"]:
        out.append(f'<tr><td colspan="{ncols}" class="rfk-empty">{escape(view["empty"])}'
                   "</td></tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def whole_keys(payload: dict, view: dict) -> bool:
    """Keys that are names, not paths ("step 12", "mnt", "layer 1"): never wrapped."""
    return payload["kind"] in ("steps", "steps-vs", "ns") or (payload["kind"] == "layers"
                                                   and not view["choices"]
                                                   and view["key"]["name"] == "layer")


def _more(col: dict) -> str:
    return ' class="rfk-more"' if col.get("more") else ""


def _noteline(status: str, note: str, marked: bool, ncols: int) -> str:
    """The row's note as a line of its own under it (shown where the note column would
    not fit)."""
    lead = '<td class="rfk-mark"></td>' if marked else ""
    return (f'<tr class="rfk-noteline rfk-{status}">{lead}<td colspan="{ncols - int(marked)}">'
            f"{breakable(note)}</td></tr>")


def choices_html(view: dict) -> str:
    """%show layers: the stack beside the opened layer (dive's left pane)."""
    items = []
    for c in view["choices"]:
        cls = ' class="rfk-current"' if c["current"] else ""
        lines = "".join(f"<div>{breakable(t)}</div>" for t in c["lines"] if t)
        items.append(f'<li{cls}><span class="rfk-choice-key">{escape(c["key"])}</span>'
                     f"{lines}</li>")
    return f'<ol class="rfk-choices">{"".join(items)}</ol>'


def body_html(payload: dict, view: dict) -> str:
    """The table (beside the stack, for layers), what was left out, and the note."""
    table = table_html(payload, view)
    if view["choices"]:
        table = f'<div class="rfk-panes">{choices_html(view)}<div>{table}</div></div>'
    out = [table]
    lines = view["lines"]
    cut = len(lines) < view["total_lines"]
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
        out.append(f'<div class="rfk-footer">{escape("; ".join(below))}</div>')
    if view["note"]:
        out.append(f'<div class="rfk-note">{breakable(view["note"])}</div>')
    return "".join(out)


def static_view(payload: dict, max_lines: int | None = MAX_STATIC_LINES) -> dict:
    """draw() of where the view opens, every column drawn (the stylesheet hides the
    "more" ones until asked)."""
    return draw(payload, State(initial_state(payload).path, more_columns=True), max_lines)


def view_parts(payload: dict, view: dict, *, more_on: bool = False) -> dict[str, str]:
    """The view as the widget shows it, in two pieces around its controls: "heading"
    (with the stylesheet) and "body"; "switch" is what a copy without a kernel has in
    their place."""
    return {"heading": _root() + stylesheet(payload["kind"]) + heading_html(view) + "</div>",
            "switch": switch_html(view),
            "body": _root(more_on) + body_html(payload, view) + "</div>"}


def compose(parts: dict[str, str]) -> str:
    """The static copy: one root holding the stylesheet, heading, switch and body."""
    root = _root()
    return (parts["heading"][:-len("</div>")] + parts["switch"]
            + parts["body"][len(root):])


def render_html(payload: dict, *, path: Sequence[str] | None = None, query: str = "",
                differences_only: bool = False, expanded: bool = False,
                max_lines: int | None = MAX_STATIC_LINES, view: dict | None = None,
                static_extras: bool = True) -> str:
    """The whole view with its stylesheet. `path` None: where the view opens. `view`:
    model.draw() of the same state, when the caller has it already; `static_extras`:
    what only a copy without navigation needs (%show steps: each step's changes,
    folded)."""
    if path is None:
        path = initial_state(payload).path
    if view is None:
        view = draw(payload, State(tuple(path), query, differences_only, expanded, True),
                       max_lines)
    html = compose(view_parts(payload, view))
    if payload["kind"] == "steps" and not path and not query and static_extras:
        return with_step_tables(html, payload, max_lines)
    return html


def with_step_tables(table: str, payload: dict,
                     max_lines: int | None = MAX_STATIC_LINES) -> str:
    """%show steps' static copy from its top-level view (render_html without the static
    extras), so the widget's table and the copy are drawn once."""
    return table[:-len("</div>")] + _step_tables(payload, max_lines) + "</div>"


def _step_tables(payload: dict, max_lines: int | None) -> str:
    """%show steps without the renderer or a kernel (GitHub, nbconvert, the book): each
    step that changed the mount table, folded in a <details>: its call, its note and its
    changes one a line."""
    out = ['<div class="rfk-footer">What each step did to the mount table (open one):</div>']
    room = MAX_STATIC_LINES if max_lines is None else max_lines
    for row in payload["rows"]:
        level = row.get("children", {})
        kids = level.get("rows", [])
        if not kids or room <= 0:
            continue
        marks = {e["status"]: e["mark"] for e in level_legend(payload, level)}
        values = row["cell"]
        head = f"{row['key']}: {values.get('mounts') or ''}"
        out.append(f'<details class="rfk-step"><summary>{escape(head)}</summary>'
                   f'<div class="rfk-detail"><div>{breakable(values.get("calls") or "")}</div>')
        if row.get("note"):
            out.append(f'<div class="rfk-detail-note">{breakable(row["note"])}</div>')
        out.append("</div><table>")
        for kid in kids[:room]:
            status = kid["status"]
            v = kid.get("cell") or {}
            what = " ".join(str(v.get(k) or "") for k in ("fstype", "source"))
            note = kid.get("note")
            out.append(f'<tr class="rfk-{status}" data-status="{status}">'
                       f'<td class="rfk-mark">{escape(marks[status])}</td>'
                       f"<td>{breakable(kid['key'])}</td><td>{breakable(what)}</td>"
                       + (f'<td class="rfk-row-note">{breakable(note)}</td>' if note else "")
                       + "</tr>")
        room -= len(kids)
        out.append("</table></details>")
    return "".join(out)
