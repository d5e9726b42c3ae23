"""Renderings of the inspect diffs. One way through: diff -> payload -> view model
(model.py) -> text, HTML, widget (and the JupyterLab renderer, from the same payload).

view_bundle() gives one display_data (data, metadata) carrying every rendering, so a
client picks the richest it can show: the widget, else the HTML table, else plain text.
"""

from __future__ import annotations

from .html import (
    MAX_STATIC_LINES,
    compose,
    render_html,
    static_view,
    view_parts,
    with_step_tables,
)
from .limits import LIMITS_MIME_TYPE, limits_bundle, limits_payload
from .payload import (
    MIME_TYPE,
    changes_payload,
    layers_payload,
    listing_payload,
    mounts_payload,
    ns_payload,
)
from .steps import steps_payload
from .text import render_text
from .tree import TREE_MIME_TYPE, tree_bundle, tree_parts, tree_payload

WIDGET_MIME_TYPE = "application/vnd.jupyter.widget-view+json"


def widget_view(widget: object) -> dict:
    """The display data entry that shows an ipywidgets model (widget protocol 2.0)."""
    return {WIDGET_MIME_TYPE: {"model_id": widget.model_id, "version_major": 2,
                               "version_minor": 0}}


def view_bundle(payload: dict, *, widget: bool = True,
                   keep: object = None) -> tuple[dict, dict]:
    """(data, metadata) for a display_data message of one comparison payload.

    With widget=True an ipywidgets model is created, which needs a comm implementation
    (the kernel's, or the comm package's DummyComm outside a kernel); `keep` is called
    with it, so a caller can bound how many stay alive.
    """
    view = None
    if payload.get("kind") == "tree":  # a picture, not a table (tree.schema.json)
        parts = tree_parts(payload)
        data = tree_bundle(payload, parts)
    elif payload.get("kind") == "limits":  # figures, not a diff (limits.schema.json)
        data = limits_bundle(payload)
        parts = None
    else:
        # Where the view opens, drawn once for the static copies and the widget (bounded:
        # MAX_STATIC_LINES); %show steps' static copy adds each step's changes, folded
        # below its table (the widget opens a step instead).
        view = static_view(payload, MAX_STATIC_LINES)
        parts = view_parts(payload, view)
        html = compose(parts)
        data = {
            "text/plain": render_text(payload, view=view),
            "text/html": with_step_tables(html, payload) if payload["kind"] == "steps"
            else html,
            MIME_TYPE: payload,
        }
    if widget:
        from .widget import build_widget  # ipywidgets only when a widget is asked for

        w = build_widget(payload, parts, view)
        if keep is not None:
            keep(w)
        data.update(widget_view(w))
    return data, {}


__all__ = [
    "LIMITS_MIME_TYPE",
    "MIME_TYPE",
    "TREE_MIME_TYPE",
    "WIDGET_MIME_TYPE",
    "changes_payload",
    "view_bundle",
    "layers_payload",
    "limits_payload",
    "listing_payload",
    "mounts_payload",
    "ns_payload",
    "render_html",
    "render_text",
    "steps_payload",
    "tree_payload",
    "widget_view",
]
