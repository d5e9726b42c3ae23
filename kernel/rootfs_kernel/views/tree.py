"""%show tree: the cell's mount tree next to the host's, drawn by Graphviz.

The payload (application/vnd.rootfs-kernel.tree+json, shape in tree.schema.json) holds
both trees and their propagation links as data, Graphviz's SVG of them and a
`findmnt --tree`-style text. The display bundle carries the picture as image/svg+xml
(GitHub, nbviewer and nbconvert show it with no kernel), as text/html drawn in
JupyterLab's theme colours, and the text as text/plain. Without Graphviz (`dot`), the
text alone, and the payload's note says why.

Graphviz lays the picture out; colours are given as a few fixed values that the HTML
copy, the JupyterLab renderer (extension/src/tree.ts) and the SVG's own dark-mode style
map onto theme colours by the class names written on each node and edge.
"""

from __future__ import annotations

import functools
import hashlib
import re
import shutil
import subprocess
from html import escape

from ..inspect import mounttree
from ..inspect.mounts import Mount

TREE_MIME_TYPE = "application/vnd.rootfs-kernel.tree+json"
TREE_VERSION = 1
NO_DOT = ("Graphviz is not installed (no `dot` on PATH): the mount trees are shown as text "
          "only; install it (Debian: apt-get install graphviz) for the picture")
DOT_SECONDS = 20

# Graphviz colour -> (theme variable, light value, dark value). The light values are the
# picture's own; the HTML copy uses the variables, the SVG's style the dark values.
COLOURS = {
    "#fffffe": ("--jp-layout-color0", "#ffffff", "#111111"),       # node fill
    "#1f2329": ("--jp-content-font-color1", "#1f2328", "#e6e6e6"),  # text, borders
    "#8c959f": ("--jp-border-color1", "#8c959f", "#6e7681"),        # tree edges
    "#0969da": ("--jp-brand-color1", "#0969da", "#58a6ff"),         # peers (shared:N)
    "#bc4c00": ("--jp-warn-color1", "#bc4c00", "#f0883e"),          # master -> slave
    "#f6f8fa": ("--jp-layout-color2", "#f6f8fa", "#1c2128"),        # cluster fill
}
_FILL, _TEXT, _EDGE, _PEER, _MASTER, _CLUSTER = COLOURS


def under(table: list[Mount], path: str) -> list[Mount]:
    """The mounts at or below `path`, and every mount they sit on (to the root), in the
    table's order: `%show tree PATH`."""
    inside = path.rstrip("/") + "/"
    by_id = {m.mount_id: m for m in table}
    keep: set[int] = set()
    for m in table:
        if m.mount_point == path or m.mount_point.startswith(inside) or path == "/":
            while m is not None and m.mount_id not in keep:
                keep.add(m.mount_id)
                m = by_id.get(m.parent_id) if m.parent_id != m.mount_id else None
    return [m for m in table if m.mount_id in keep]


def tree_payload(cell: list[Mount], host: list[Mount], title: str | None = None, *,
                 draw: bool = True, other: str | None = None,
                 path: str | None = None) -> dict:
    """`other`: the name of the earlier cell whose tree `host` is (`%show tree vs NAME`):
    labelled so, and not linked to this cell's (the two are not of one moment); `path`:
    only the mounts at and below it and those they sit on (`%show tree PATH`)."""
    if path is not None:
        cell, host = under(cell, path), under(host, path)
    graph = mounttree.build(cell, host, across=other is None)
    labels = {"cell": "cell", "host": "host"} if other is None else \
        {"cell": "this cell", "host": other}
    notes = [f"{labels[side['name']]}: {side['left_out']} mounts past the first "
             f"{mounttree.MAX_MOUNTS} (breadth first) are not drawn"
             for side in graph["sides"] if side["left_out"]]
    svg = None
    if draw:
        svg = render_svg(to_dot(graph, labels))
        if svg is None:
            notes.append(NO_DOT)
    if title is None:
        title = "Mount trees: the cell's and the host's, with propagation" if other is None \
            else f"Mount trees: this cell's and cell {other}'s"
        if path is not None:
            title += f", at and below {path}"
    payload = {
        "version": TREE_VERSION, "kind": "tree", "title": title,
        "sides": [{"name": s["name"], "label": labels[s["name"]], "nodes": s["nodes"],
                   "left_out": s["left_out"]} for s in graph["sides"]],
        "links": graph["links"], "hidden_groups": graph["hidden_groups"],
        "folds": graph["folds"], "svg": svg, "note": "; ".join(notes) or None,
    }
    payload["text"] = render_tree_text(payload)
    return payload


# --- the text tree ---------------------------------------------------------------------------


def _tags(n: dict) -> str:
    return n["propagation"]


def render_tree_text(payload: dict) -> str:
    """findmnt --tree's layout: TARGET SOURCE FSTYPE OPTIONS, plus the propagation."""
    out = [payload["title"]]
    labels = _labels(payload)
    for side in payload["sides"]:
        rows = [("TARGET", "SOURCE", "FSTYPE", "PROPAGATION", "OPTIONS")]
        nodes = side["nodes"]
        for i, n in enumerate(nodes):
            rows.append((_branch(nodes, i) + n["mount_point"], n["source"], n["fstype"],
                         _tags(n), n["options"]))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        out.append("")
        out.append(f"{side['label']} ({len(nodes)} mounts)")
        out.extend("  ".join(c.ljust(widths[k]) if k < 4 else c
                             for k, c in enumerate(r)).rstrip() for r in rows)
    if payload["links"]:
        out.append("")
        out.append("propagation:")
        for link in payload["links"]:
            a, b = labels.get(link["from"], link["from"]), labels[link["to"]]
            if link["kind"] == "peer":
                out.append(f"  shared:{link['group']}  {a} <-> {b}  (peers: mounts and "
                           "unmounts travel both ways)")
            else:
                out.append(f"  master:{link['group']}  {a} -> {b}  (slave: receives, "
                           "sends nothing back)")
    if payload.get("note"):
        out.append("")
        out.append(f"note: {payload['note']}")
    return "\n".join(out)


def _branch(nodes: list[dict], i: int) -> str:
    """The ├─ └─ │ prefix of node i in a depth-first list."""
    depth = nodes[i]["depth"]
    if depth == 0:
        return ""
    parts = []
    for d in range(1, depth + 1):
        # Is there a later sibling at depth d before the subtree ends?
        more = False
        for n in nodes[i + 1:]:
            if n["depth"] < d:
                break
            if n["depth"] == d:
                more = True
                break
        if d == depth:
            parts.append("├─" if more else "└─")
        else:
            parts.append("│ " if more else "  ")
    return "".join(parts)


def _labels(payload: dict) -> dict[str, str]:
    out = {f"group:{g}": f"peer group {g} (no mount of it is visible)"
           for g in payload.get("hidden_groups", [])}
    for side in payload["sides"]:
        for n in side["nodes"]:
            out[n["id"]] = f"{side['label']} {n['mount_point']}"
    sides = {side["name"]: side["label"] for side in payload["sides"]}
    for f in payload.get("folds", []):
        out[f["id"]] = f"{sides[f['side']]} {f['label']}"
    return out


# --- Graphviz --------------------------------------------------------------------------------


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _cut(text: str, n: int = 44) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def to_dot(graph: dict, labels: dict[str, str] | None = None) -> str:
    """The DOT source: one cluster per namespace, the cell's above the host's, mounts
    under their parents, runs of alike sibling leaves folded into one node, peer groups
    and master links drawn across the two."""
    labels = labels or {"cell": "cell", "host": "host"}
    folded = {m: f for f in graph.get("folds", []) for m in f["members"]}
    lines = ["digraph mounts {", "  rankdir=LR; newrank=true; nodesep=0.12; ranksep=0.35;",
             f'  graph [fontname="monospace" fontsize=11 fontcolor="{_TEXT}" bgcolor="{_FILL}"];',
             f'  node [shape=box style="rounded,filled" fillcolor="{_FILL}" color="{_TEXT}" '
             f'fontcolor="{_TEXT}" fontname="monospace" fontsize=9 margin="0.08,0.03"];',
             f'  edge [color="{_EDGE}" arrowsize=0.5 fontname="monospace"];']
    # The cell's tree on top: in a left-to-right layout Graphviz stacks the clusters
    # bottom-up in the order they are written, so the host's comes first.
    for side in reversed(graph["sides"]):
        lines.append(f"  subgraph cluster_{side['name']} {{")
        lines.append(f'    label={_q(labels[side["name"]] + " mount namespace")}; '
                     f'style="rounded,filled"; fillcolor="{_CLUSTER}"; color="{_EDGE}"; '
                     'class="rfk-cluster";')
        for n in side["nodes"]:
            if n["id"] in folded:
                continue
            prop = n["propagation"]
            cls = "rfk-mount" + (" rfk-shared" if n["shared"] is not None else "") + \
                (" rfk-slave" if n["master"] is not None else "")
            colour = _PEER if n["shared"] is not None else _MASTER if n["master"] is not None \
                else _TEXT
            label = (f"<<b>{escape(_cut(n['mount_point']))}</b><br/>"
                     f"{escape(_cut(n['fstype'] + ' ' + n['source']))}<br/>"
                     f"{escape(_cut(n['options']))}<br/><i>{escape(prop)}</i>>")
            lines.append(f"    {_q(n['id'])} [label={label} color=\"{colour}\" "
                         f'class="{cls}" tooltip={_q(n["mount_point"])}];')
        for f in graph.get("folds", []):
            if f["side"] != side["name"]:
                continue
            names, _, what = f["text"].partition(" — ")
            label = (f"<<b>{escape(_cut(f['label']))}</b><br/>{escape(_cut(names))}<br/>"
                     f"{escape(_cut(what))}>")
            lines.append(f'    {_q(f["id"])} [label={label} class="rfk-mount rfk-fold" '
                         f'style="rounded,filled,dashed" tooltip={_q(f["text"])}];')
            lines.append(f'    {_q(f["parent"])} -> {_q(f["id"])} [class="rfk-parent"];')
        for n in side["nodes"]:
            if n["parent"] is not None and n["id"] not in folded:
                lines.append(f"    {_q(side['name'] + ':' + str(n['parent']))} -> "
                             f'{_q(n["id"])} [class="rfk-parent"];')
        lines.append("  }")
    for g in graph.get("hidden_groups", []):
        lines.append(f'  "group:{g}" [label="peer group {g}\\n(not visible here)" '
                     f'shape=ellipse style=dashed color="{_MASTER}" class="rfk-group"];')
    for link in graph["links"]:
        a, b = folded.get(link["from"], {}).get("id", link["from"]), \
            folded.get(link["to"], {}).get("id", link["to"])
        if link["kind"] == "peer":
            lines.append(f"  {_q(a)} -> {_q(b)} [dir=both style=dashed "
                         f'color="{_PEER}" fontcolor="{_PEER}" constraint=false penwidth=1.4 '
                         f'label="shared:{link["group"]}" fontsize=8 class="rfk-peer"];')
        else:
            lines.append(f"  {_q(a)} -> {_q(b)} [style=dotted "
                         f'color="{_MASTER}" fontcolor="{_MASTER}" constraint=false penwidth=1.4 '
                         f'label="master:{link["group"]}" fontsize=8 class="rfk-master"];')
    lines.append("}")
    return "\n".join(lines)


@functools.cache
def dot_program() -> str | None:
    return shutil.which("dot")


_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)


def render_svg(dot_source: str) -> str | None:
    """Graphviz's SVG of the DOT source, with a dark-mode style; None without `dot`."""
    program = dot_program()
    if program is None:
        return None
    done = subprocess.run([program, "-Tsvg"], input=dot_source.encode(), capture_output=True,
                          timeout=DOT_SECONDS, check=False)
    if done.returncode:
        raise RuntimeError(f"dot failed: {done.stderr.decode(errors='replace').strip()}")
    svg = _COMMENT.sub("", _PROLOG.sub("", done.stdout.decode()))
    # Graphviz writes '-' in class names as an entity; renderers select on the names.
    svg = re.sub(r'class="[^"]*"', lambda m: m.group(0).replace("&#45;", "-"), svg)
    dark = "".join(f'[fill="{k}"]{{fill:{v[2]}}}[stroke="{k}"]{{stroke:{v[2]}}}'
                   for k, v in COLOURS.items())
    style = f"<style>@media (prefers-color-scheme: dark){{{dark}}}</style>"
    return re.sub(r"(<svg\b[^>]*>)", lambda m: m.group(1) + style, svg, count=1)


def themed_svg(svg: str) -> str:
    """The picture for inline HTML: its fixed colours as JupyterLab's theme variables
    (with the light values as fallbacks), its own dark-mode style dropped."""
    svg = re.sub(r"<style>.*?</style>", "", svg, flags=re.S)

    def tag(m: re.Match) -> str:
        styles = []

        def swap(a: re.Match) -> str:
            value = a.group(2).lower()
            if value not in COLOURS:
                return a.group(0)
            var, light, _ = COLOURS[value]
            styles.append(f"{a.group(1)}:var({var},{light})")
            return ""

        text = _ATTR.sub(swap, m.group(0))
        if not styles:
            return text
        return re.sub(r"\s*(/?>)$", lambda e: f' style="{";".join(styles)}"{e.group(1)}', text)

    return re.sub(r"<[a-z]+\b[^<>]*>", tag, svg)


_ATTR = re.compile(r'\s\b(fill|stroke)="(#[0-9a-fA-F]{6})"')


_SIZE = re.compile(r'<svg\b[^>]*?\swidth="([\d.]+)pt"\s+height="([\d.]+)pt"')


def fit_width(svg: str) -> tuple[str, str]:
    """The picture scaled to its box's width (its viewBox keeps the proportions), and its
    own width as CSS, for the zoom's 100%."""
    m = _SIZE.search(svg)
    if m is None:
        return svg, "auto"
    head = m.group(0).replace(f'width="{m.group(1)}pt"', 'width="100%"').replace(
        f' height="{m.group(2)}pt"', "")
    return svg[:m.start()] + head + svg[m.end():], f"{float(m.group(1)) * 4 / 3:.0f}px"


def tree_parts(payload: dict) -> dict[str, str]:
    """The picture fit to the width, the cell's tree on top, zoomed by three radio
    buttons the stylesheet reads (no script); the text below it, folded. In two pieces
    around the widget's mount picker: "heading" (with the stylesheet) and "body"."""
    from .html import stylesheet

    root = '<div class="rfk-static rfk-tree">'
    heading = (f'{root}{stylesheet("tree")}<div class="rfk-heading"><div class="rfk-title">'
               f'{escape(payload["title"])}</div></div></div>')
    body = ""
    if payload.get("svg"):
        svg, width = fit_width(themed_svg(payload["svg"]))
        name = "rfk-z" + hashlib.sha1(payload["svg"].encode()).hexdigest()[:10]
        zoom = "".join(f'<label><input type="radio" name="{name}"{extra}> {text}</label>'
                       for extra, text in ((" checked", "fit width"),
                                           (' class="rfk-zoom-1"', "100%"),
                                           (' class="rfk-zoom-2"', "200%")))
        body = (f'<div class="rfk-zoom">zoom: {zoom}</div><div class="rfk-scroll rfk-picture"'
                f' style="--rfk-w:{width}">{svg}</div>')
    text = (f'<details{"" if payload.get("svg") else " open"}><summary>as text '
            f'(findmnt --tree)</summary><pre style="margin:0">{escape(payload["text"])}'
            "</pre></details>")
    note = (f'<div class="rfk-note">note: {escape(payload["note"])}</div>'
            if payload.get("note") else "")
    return {"heading": heading, "body": root + body + text + note + "</div>"}


def render_tree_html(payload: dict, parts: dict | None = None) -> str:
    parts = parts or tree_parts(payload)
    return parts["heading"][:-len("</div>")] + parts["body"][len('<div class="rfk-static '
                                                                 'rfk-tree">'):]


def tree_bundle(payload: dict, parts: dict | None = None) -> dict:
    data = {"text/plain": payload["text"], "text/html": render_tree_html(payload, parts),
            TREE_MIME_TYPE: payload}
    if payload.get("svg"):
        data["image/svg+xml"] = payload["svg"]
    return data


def mount_details(payload: dict, node_id: str) -> str:
    """One mount in words: where it is, what it is, and what it propagates to and from
    (the widget's and the renderer's detail line)."""
    labels = _labels(payload)
    fold = next((f for f in payload.get("folds", []) if f["id"] == node_id), None)
    if fold is not None:   # a folded run of alike mounts, drawn as one node
        return f"{labels[node_id]}: {fold['text']}"
    node = next((n for s in payload["sides"] for n in s["nodes"] if n["id"] == node_id), None)
    if node is None:
        return ""
    parts = [f"{labels[node_id]}: {node['fstype']} from {node['source']} ({node['options']}), "
             f"{node['propagation']}"]
    for link in payload["links"]:
        if link["kind"] == "peer" and node_id in (link["from"], link["to"]):
            other = link["to"] if link["from"] == node_id else link["from"]
            parts.append(f"peer of {labels.get(other, other)} (shared:{link['group']})")
        elif link["kind"] == "master" and link["to"] == node_id:
            parts.append(f"slave of {labels.get(link['from'], link['from'])} "
                         f"(master:{link['group']})")
        elif link["kind"] == "master" and link["from"] == node_id:
            parts.append(f"master of {labels[link['to']]}")
    return "; ".join(parts)
