"""The view model: (payload, view state) -> the lines every rendering shows.

text.py, html.py and the widget draw this model; the JupyterLab renderer has the same
functions in TypeScript (extension/src/model.ts). The golden fixtures in
tests/fixtures/payloads/ hold the expected lines of each, as written by line_text(), and
both test suites compare against them, so the two cannot disagree.

A long table (more than COLLAPSE_OVER rows at its level, with "same" rows of a
comparison to hide or runs of alike rows to fold) starts collapsed: its differences
only, each run folded into one line, and "show all N rows" to unfold. A filter searches
every row, unfolded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .payload import MARKS, level, side_values

COLLAPSE_OVER = 20


@dataclass(frozen=True)
class State:
    path: Sequence[str] = field(default_factory=tuple)
    query: str = ""
    differences_only: bool = False
    expanded: bool = False
    more_columns: bool = False    # the columns marked "more" (mounts: super options, root)


def initial_state(payload: dict) -> State:
    """Where a view opens: %show layers on its selected layer (the cell's own), the
    rest at the top."""
    selected = payload.get("selected")
    return State(path=(selected,)) if selected else State()


def fmt(value: object) -> str:
    return "" if value is None else str(value)


def two_sided(payload: dict) -> bool:
    return len(payload["sides"]) == 2


def side_label(payload: dict, side: str) -> str:
    if side == "both":
        return "both"
    return next((s["label"] for s in payload["sides"] if s["name"] == side), side)


def level_legend(payload: dict, node: dict) -> list[dict]:
    """A level's legend: its own (a step's mount changes, a layer's entries), else the
    payload's."""
    return node.get("legend") or _level(payload).get("legend") or payload["legend"]


def _level(payload: dict) -> dict:
    """What every row's children share when they do not say it themselves (a payload's
    "level": %show steps' mount changes)."""
    return payload.get("level") or {}


def marks(payload: dict, legend: list[dict] | None = None) -> dict[str, str]:
    return {**MARKS, **{e["status"]: e["mark"] for e in legend or payload["legend"]}}


def navigable(payload: dict) -> bool:
    """Rows that open onto a level below: a listing's directories, a stack's layers, the
    setup's steps."""
    return payload["kind"] in ("listing", "layers", "steps")


def top_label(payload: dict) -> str:
    """The first breadcrumb: the listed directory, or what a stack's top level holds."""
    if payload["kind"] in ("layers", "steps"):
        return payload["kind"]
    return (payload.get("paths") or {}).get("cell") or "/"


def crumb_label(payload: dict, name: str) -> str:
    """An opened row in the breadcrumb: a directory ends with '/', a layer or a step
    does not ("step 3", not a directory "step 3/")."""
    return f"{name}/" if payload["kind"] == "listing" else name


def neighbours(payload: dict, path: Sequence[str]) -> tuple[str | None, str | None]:
    """The steps before and after the opened one (%show steps), to step through them:
    (None, None) anywhere else."""
    if payload["kind"] != "steps" or len(path) != 1:
        return None, None
    keys = [r["key"] for r in payload["rows"] if "children" in r]
    if path[0] not in keys:
        return None, None
    i = keys.index(path[0])
    return (keys[i - 1] if i > 0 else None), (keys[i + 1] if i + 1 < len(keys) else None)


def key_label(payload: dict, row: dict) -> str:
    """Key as displayed: directories that can be opened end with '/' (a listing's)."""
    return f"{row['key']}/" if "children" in row and payload["kind"] == "listing" \
        else fmt(row["key"])


def tree_keys(rows: Sequence[dict]) -> dict[str, tuple[str, int]]:
    """A level of absolute paths drawn as a file tree (dive's): each key -> (its name
    below the nearest listed ancestor, how many listed ancestors it has); a directory's
    name ends with '/'."""
    present = {r["key"] for r in rows}
    out: dict[str, tuple[str, int]] = {}
    for r in rows:
        key = r["key"]
        parts = key.strip("/").split("/")
        depth, cut = 0, 0
        for i in range(1, len(parts)):
            if "/" + "/".join(parts[:i]) in present:
                depth += 1
                cut = i
        name = "/".join(parts[cut:]) if cut else key
        if (r.get("cell") or {}).get("type") == "dir":
            name += "/"
        out[key] = (name, depth)
    return out


def line_sides(row: dict, both: bool) -> list[str]:
    status = row["status"]
    if not both:
        return ["cell"]
    return {"same": ["both"], "only-cell": ["cell"], "only-host": ["host"]}.get(
        status, ["cell", "host"])


def segments(row: dict, column: dict, side: str) -> list[list]:
    """One value as [text, highlighted] parts: a split column highlights only its parts
    that the other side lacks; another column is highlighted whole when it differs."""
    values = side_values(row, "cell" if side == "both" else side) or {}
    text = fmt(values.get(column["name"]))
    if column["name"] not in row.get("differs", ()):
        return [[text, False]]
    sep = column.get("split")
    if not sep or row["status"] != "differs":
        return [[text, True]]
    other = side_values(row, "host" if side == "cell" else "cell") or {}
    theirs = set(fmt(other.get(column["name"])).split(sep))
    out: list[list] = []
    for i, part in enumerate(text.split(sep)):
        if i:
            out.append([sep, False])
        out.append([part, part not in theirs])
    return out


def row_text(payload: dict, row: dict) -> str:
    """What a filter searches: the key, every value, the side labels and the note."""
    parts = [fmt(row["key"])]
    for side in ("cell", "host"):
        values = row.get(side)
        if values:
            parts.extend(str(v) for v in values.values() if v is not None)
    parts.extend(side_label(payload, s) for s in line_sides(row, two_sided(payload)))
    if row.get("note"):
        parts.append(row["note"])
    return "\0".join(parts).lower()


def summary_text(payload: dict, summary: dict, legend: list[dict] | None = None) -> str:
    # A one-sided view counts its "same" rows (a stack's layers, the steps) only where it
    # has some.
    return ", ".join(f"{summary[e['status']]} {e['text']}" for e in legend or payload["legend"]
                     if e["status"] != "same" or summary["same"] or two_sided(payload))


def legend_text(payload: dict, legend: list[dict] | None = None) -> str:
    """The marks in words; "" where no entry has a mark (the steps, the layers)."""
    entries = legend or payload["legend"]
    if not any(e["mark"].strip() for e in entries):
        return ""
    return "legend: " + "   ".join(
        f"{e['mark'] if e['mark'].strip() else '(blank)'} {e['text']}" for e in entries)


def level_title(payload: dict, path: Sequence[str]) -> str:
    """The payload's title, plus the opened row when not at the top ("in etc/ssl/" of a
    listing, ": step 3" of the steps, ": cell" of the layers)."""
    if not path:
        return payload["title"]
    if payload["kind"] == "listing":
        return f"{payload['title']}, in {'/'.join(path)}/"
    return f"{payload['title']}: {' / '.join(path)}"


def note_text(payload: dict) -> str | None:
    if payload.get("note"):
        return f"note: {payload['note']}"
    return "note: a snapshot was truncated; not every entry is shown" \
        if payload.get("truncated") else None


def level_columns(payload: dict, node: dict) -> list[dict]:
    """A level's value columns: its own (the layers of %show layers open onto paths),
    else the payload's."""
    return node.get("columns") or _level(payload).get("columns") or payload["columns"]


def names_text(payload: dict) -> list[str]:
    """The names the rows use for long paths, said once: "$CELL = /tmp/...". """
    return [f"{name} = {value}" for name, value in (payload.get("names") or {}).items()]


def opened_detail(payload: dict, path: Sequence[str]) -> dict | None:
    """The opened step, repeated above its table: its calls, time and mount table, and
    its note ({"key", "fields": [[label, text]], "note"}); None elsewhere (an opened
    layer is shown in the stack beside it: choices())."""
    if not path or payload["kind"] != "steps":
        return None
    row = next((r for r in payload["rows"] if r["key"] == path[0]), None)
    if row is None:
        return None
    values = row.get("cell") or {}
    fields = [[c["label"], fmt(values.get(c["name"]))] for c in payload["columns"]
              if fmt(values.get(c["name"]))]
    return {"key": row["key"], "fields": fields, "note": fmt(row.get("note"))}


def choices(payload: dict, path: Sequence[str]) -> list[dict]:
    """%show layers (a payload with "selected"): the stack beside the opened layer, as
    dive lists it: each layer's key, a line of figures and what made it."""
    if not payload.get("selected") or not path:
        return []
    out = []
    for row in payload["rows"]:
        v = row.get("cell") or {}
        figures = " · ".join(fmt(v.get(n)) for n in ("changes", "size", "digest")
                             if v.get(n))
        made = " · ".join(fmt(v.get(n)) for n in ("created_by", "role") if v.get(n))
        out.append({"key": row["key"], "current": row["key"] == path[0],
                    "lines": [figures, made]})
    return out


def _row_lines(payload: dict, row: dict, mark: str, columns: list[dict],
               tree: dict | None) -> list[dict]:
    both = two_sided(payload)
    sides = line_sides(row, both)
    key, depth = tree[row["key"]] if tree else (key_label(payload, row), 0)
    return [{"kind": "row", "status": row["status"], "mark": mark, "key": key,
             "depth": depth, "side": side_label(payload, side) if both else "",
             "values": [segments(row, c, side) for c in columns],
             "bar": row.get("bar") if i == 0 else None,
             "note": fmt(row.get("note")) if i == 0 else "", "first": i == 0,
             "span": len(sides), "row": row}
            for i, side in enumerate(sides)]


def draw(payload: dict, state: State = State(), max_lines: int | None = None) -> dict:
    """The lines of one level of a payload in one state, with every text around them.

    `max_lines` builds only the first lines (a static copy shows no more); the counts,
    footer and `total_lines` still cover every line."""
    node = level(payload, state.path)
    rows = node["rows"]
    summary = node["summary"]
    groups = node.get("groups") or []
    legend = level_legend(payload, node)
    query = state.query.strip().lower()
    # Only a comparison hides its "same" rows (in a one-sided view they are the content).
    collapsible = len(rows) > COLLAPSE_OVER and (
        (summary["same"] > 0 and two_sided(payload)) or bool(groups))
    collapsed = collapsible and not state.expanded and not query
    hide_same = state.differences_only or collapsed
    folds = {g["start"]: g for g in groups} if collapsed else {}
    sections = {s["start"]: s for s in payload.get("sections") or []} \
        if not state.path else {}
    mark = marks(payload, legend)
    every = level_columns(payload, node)
    more = [c["label"] for c in every if c.get("more")]
    # The columns a reader needs first, then (switched on) the rest.
    columns = [c for c in every if not c.get("more")] + \
        ([c for c in every if c.get("more")] if state.more_columns else [])
    tree = tree_keys(rows) if node.get("tree") else None
    room = len(rows) * 3 if max_lines is None else max_lines

    lines: list[dict] = []
    total = shown = folded = n_groups = 0
    section: dict | None = None   # the section whose heading is still to be drawn
    i = 0
    while i < len(rows):
        row = rows[i]
        section = sections.get(i, section)
        g = folds.get(i)
        if g is not None:
            if total < room:
                lines.append({"kind": "group", "status": row["status"],
                              "mark": mark[row["status"]], "key": g["label"],
                              "text": g["text"], "count": g["count"]})
            total += 1
            n_groups += 1
            shown += g["count"]
            folded += g["count"]
            i += g["count"]
            continue
        i += 1
        if (hide_same and row["status"] == "same") or (query and query not in
                                                        row_text(payload, row)):
            continue
        if section is not None:
            if total < room:
                lines.append({"kind": "section", "text": section["text"]})
            total += 1
            section = None
        shown += 1
        if total < room:
            lines.extend(_row_lines(payload, row, mark[row["status"]], columns, tree))
        total += 1 if row["status"] != "differs" or len(payload["sides"]) == 1 else 2

    empty = None
    if not shown:
        if query or state.differences_only:
            empty = "no matching rows"
        elif collapsed:
            empty = f"no differences: the {len(rows)} rows are the same"
        elif payload["kind"] == "listing":
            empty = "empty directory" if not payload.get("note") or state.path else \
                "nothing was read (see the note)"
        elif payload["kind"] == "layers" and state.path:
            empty = "no path is in more than one layer" if node is payload["rows"][-1].get(
                "children") else "an empty layer"
        elif payload["kind"] == "steps" and state.path:
            empty = "no change to the mount table"
        else:
            empty = "no rows"
    footer = None
    if collapsible:
        if collapsed:
            parts = []
            if len(rows) - shown:
                n = len(rows) - shown
                parts.append(f"{n} same row{'' if n == 1 else 's'} hidden")
            if folded:
                parts.append(f"{folded} alike rows folded into {n_groups} lines")
            footer = {"text": "; ".join(parts), "action": f"show all {len(rows)} rows"}
        else:
            footer = {"text": "", "action": "collapse to the differences"}
    return {
        "title": level_title(payload, state.path),
        "key": node.get("key") or _level(payload).get("key") or payload["key"],
        "columns": columns,
        "more": more,
        "marks": any(summary[e["status"]] and e["mark"].strip() for e in legend),
        "notes": any(r.get("note") for r in rows),
        # (the stack's headline stays beside its opened layer)
        "headline": None if state.path and not payload.get("selected")
        else payload.get("headline") or None,
        "names": names_text(payload),
        "detail": opened_detail(payload, state.path),
        "choices": choices(payload, state.path),
        "summary": summary_text(payload, summary, legend),
        "legend": legend_text(payload, legend),
        "note": note_text(payload),
        "lines": lines,
        "total_lines": total,
        "empty": empty,
        "footer": footer,
        "collapsed": collapsed,
    }


def line_text(line: dict, both: bool) -> str:
    """One line as a test reads it: cells joined by " | ", highlighted parts in «», a
    tree's depth as leading dots."""
    if line["kind"] == "group":
        return f"group: {line['mark']} | {line['key']} | {line['text']}"
    if line["kind"] == "section":
        return f"section: {line['text']}"
    key = "." * line["depth"] + line["key"]
    cells = [line["mark"] if line["first"] else "", key if line["first"] else ""]
    if both:
        cells.append(line["side"])
    cells += ["".join(f"«{t}»" if hl else t for t, hl in v) for v in line["values"]]
    cells.append(line["note"])
    return " | ".join(cells)
