"""Issue 21, the SVG item: what a cell displays as SVG carries nothing that runs or loads.

JupyterLab and Notebook 7 draw image/svg+xml as an image, where scripts never run; nbconvert,
the book and other front-ends put the SVG into their page, where they would. Each hostile
SVG below is written by a cell and shown with `display`, as a notebook would get it; what
reaches the notebook is sanitized (display.svg_image, Cloudflare's svg-hush), and an
ordinary drawing comes through whole.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import pytest

NS = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
EVIL = "evil.example"   # another site
HOSTILE = {
    "script": f'<svg {NS}><script>alert(1)</script><script href="https://{EVIL}/x.js"/>'
              '<rect width="5" height="5"/></svg>',
    "onload": f'<svg {NS} onload="alert(1)"><rect onclick="alert(2)" ONMOUSEOVER="alert(3)" '
              'width="5" height="5"/><set attributeName="onmouseover" to="alert(4)"/></svg>',
    "javascript-href": f'<svg {NS}><a xlink:href="javascript:alert(1)"><text>x</text></a>'
                       '<a href=" JaVaScRiPt:alert(2)"><text>y</text></a><a><animate '
                       'attributeName="href" values="javascript:alert(3)"/><text>z</text>'
                       '</a></svg>',
    "foreignObject": f'<svg {NS}><foreignObject width="90" height="90"><div xmlns="http://'
                     'www.w3.org/1999/xhtml"><img src="x" onerror="alert(1)"/><iframe src='
                     '"javascript:alert(2)"/></div></foreignObject><rect width="5" '
                     'height="5"/></svg>',
    "external-use": f'<svg {NS}><use href="https://{EVIL}/sprites.svg#a"/><use xlink:href='
                    f'"//{EVIL}/s.svg#b"/><image href="http://{EVIL}/track.png"/><image '
                    'href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="/>'
                    '<rect width="5" height="5"/></svg>',
    "css-url": f'<svg {NS}><style>@import url(https://{EVIL}/a.css); rect {{ fill: url('
               f'"https://{EVIL}/f.svg#g") }} text {{ background: url(javascript:alert(1)) }}'
               f'</style><rect style="fill: url(http://{EVIL}/p#q)" width="5" height="5"/>'
               '</svg>',
}
SVG = "{http://www.w3.org/2000/svg}"


def runs_or_loads(svg: str) -> list[str]:
    """What in an SVG document could run code or load something from elsewhere: scripts,
    foreign content, event handlers, animations of a link or a handler, and references
    (href, CSS url(), @import) that are not to the document itself or a path of the
    page's own site (svg-hush keeps those: a drawing may use the site's own files)."""
    found = []
    for el in ET.fromstring(svg).iter():
        if not el.tag.startswith(SVG) or el.tag[len(SVG):] in ("script", "foreignObject"):
            found.append(f"element {el.tag}")
        for name, value in el.attrib.items():
            local = name.rsplit("}", 1)[-1].lower()
            if local.startswith("on"):
                found.append(f"handler {name}")
            if local == "attributename" and (value.lower().startswith("on") or
                                             "href" in value.lower()):
                found.append(f"animation of {value}")
            if local == "href" and not _same_site(value):
                found.append(f"href {value}")
        for css in (el.get("style") or "", el.text if el.tag == f"{SVG}style" else ""):
            css = (css or "").lower()
            if "@import" in css:
                found.append("@import")
            found += [f"url({u})" for u in _urls(css) if not _same_site(u)]
    return found


def _same_site(url: str) -> bool:
    """A fragment or a path: no scheme (javascript:, data:, https:), no host."""
    parts = urlsplit(url.strip().strip("'\""))
    return not parts.scheme and not parts.netloc


def _urls(css: str) -> list[str]:
    return [part.split(")", 1)[0] for part in css.split("url(")[1:]]


def _display(kernel, name: str, svg: str):
    return kernel.ok(f"cat > /tmp/{name}.svg <<'EOF'\n{svg}\nEOF\ndisplay /tmp/{name}.svg")


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_svg_reaches_the_notebook_with_nothing_that_runs_or_loads(kernel, name):
    res = _display(kernel, name, HOSTILE[name])
    (data,) = [d["data"] for d in res.displays]
    svg = data["image/svg+xml"]
    assert runs_or_loads(svg) == [], svg
    # No text of the original's hostile parts is left where a page could take it up.
    assert "<script" not in svg and "<div" not in svg and "data:text" not in svg
    if name != "onload":   # what draws stays
        assert "<rect" in svg or "<text" in svg, svg
    assert data["text/plain"].startswith(f"[display: {name}.svg, image/svg+xml, ")


def test_what_is_no_svg_document_is_refused_with_what_to_do(kernel):
    res = kernel.run("printf '<svg><rect></svg>' > /tmp/bad.svg\ndisplay /tmp/bad.svg; "
                     "echo next")
    assert res.ok and res.displays == [] and res.stdout == "next\n"
    assert ("display: bad.svg is not an SVG image (XML parsing error): it must be "
            "well-formed XML whose root is <svg xmlns=\"http://www.w3.org/2000/svg\">"
            ) in res.stderr


def test_notebook_09s_mount_table_still_draws(kernel):
    """The cell of notebook 09 that draws the cell's own mount table with sh and shows it:
    every row's bar and label come through."""
    nb = json.loads(Path(__file__).parents[2].joinpath(
        "notebooks", "09-how-a-container-is-built.ipynb").read_text())
    (code,) = ["".join(c["source"]) for c in nb["cells"]
               if c["cell_type"] == "code" and "display /tmp/mounts.svg" in "".join(c["source"])]
    res = kernel.ok(code + "\nwc -l < /proc/self/mountinfo")
    rows = int(res.stdout.split()[-1])
    (data,) = [d["data"] for d in res.displays]
    root = ET.fromstring(data["image/svg+xml"])
    assert root.tag == f"{SVG}svg" and root.get("font-family") == "monospace"
    rects, texts = root.findall(f"{SVG}rect"), root.findall(f"{SVG}text")
    assert len(rects) == len(texts) == rows
    assert texts[0].text == "/  overlay" and rects[0].get("fill") == "#0969da"
