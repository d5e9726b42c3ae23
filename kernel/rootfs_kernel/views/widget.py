"""Interactive view: the heading (title, headline, counts), then the controls (filter
box, "differences only", "more columns", "show all N rows" for a collapsed table), for
listings a breadcrumb plus a picker to open recorded children (a layer, a step of %show
steps, with buttons to the step before and after), then the HTML table.

Every refresh recomputes the table from (payload, path, filter text, toggles): no state
lives outside the widget, so the view can be rebuilt from the payload at any time.
"""

from __future__ import annotations

from dataclasses import replace

import ipywidgets as w
from traitlets import List, Unicode

from .html import view_parts
from .model import (
    State,
    crumb_label,
    draw,
    initial_state,
    navigable,
    neighbours,
    top_label,
    two_sided,
)
from .payload import subdirectories

_PICK = "open…"

# Layouts and styles that no view ever changes, made once for all the views of a process:
# every model is a comm_open message, and these would be the same in every %show cell.
_SHARED: dict[str, w.Widget] = {}


def _style(of: type) -> type:
    """The style model class widgets of class `of` take (not all are exported)."""
    return of.class_traits()["style"].klass


# The buttons keep their labels whole; the filter box gives way first, so the controls
# stay on one line in a narrow output area (466 px: JupyterLab at 900 px).
_PARTS = {"box": w.Layout, "auto": lambda: w.Layout(width="auto", flex="0 0 auto"),
          "filter": lambda: w.Layout(width="auto", max_width="16em", flex="1 1 5em"),
          "row": lambda: w.Layout(flex_flow="row wrap"), "text": _style(w.Text),
          "html": _style(w.HTML), "picker": _style(w.Dropdown), "button": w.ButtonStyle,
          "toggle": _style(w.ToggleButton)}


def shared(name: str) -> w.Widget:
    """The shared layout or style `name` (_PARTS), made again if it was closed."""
    part = _SHARED.get(name)
    if part is None or part.comm is None:
        part = _SHARED[name] = _PARTS[name]()
    return part


class CompareWidget(w.VBox):
    """A VBox (same front-end model) holding the controls and the table.

    Every model is a comm_open message to the front-end, built for each %show cell: the
    parts use the shared layouts and styles (shared()), what only some states need (the
    step buttons, "show all rows") is made when first needed, and each model is born
    with its first state (no update right after its open).
    """

    # Path of opened directory names below the listing's top; widget state, not synced.
    path = List(Unicode())

    def __init__(self, payload: dict, parts: dict | None = None, view: dict | None = None,
                 **kwargs) -> None:
        """`parts`: html.view_parts() of where the view opens, and `view` its draw(),
        when the caller drew them already (the static copy is made of the same pieces)."""
        self.payload = payload
        box = shared("box")
        start = initial_state(payload)
        # The first state's lines (its picker; its footer, which any max_lines gives).
        first = view if view is not None and len(view["lines"]) == view["total_lines"] \
            else draw(payload, replace(start, more_columns=True),
                         None if navigable(payload) else 0)
        if parts is None:
            parts = view_parts(payload, draw(payload, replace(start, more_columns=True)))
        self._made: list[w.Widget] = []   # the models of this view, closed with it
        self.heading = self._make(w.HTML, value=parts["heading"], layout=box,
                                  style=shared("html"))
        self.filter_box = self._make(w.Text, placeholder="filter rows (substring)",
                                     continuous_update=True, layout=shared("filter"),
                                     style=shared("text"))
        # A one-sided view (changes, layers, steps) has no "same" rows to hide: no toggle.
        self.diff_toggle = self._make(
            w.ToggleButton, value=False, description="differences only",
            tooltip="hide rows that are the same on both sides", layout=shared("auto"),
            style=shared("toggle")) if two_sided(payload) else None
        # The columns a reader needs second (mounts: super options, root).
        self.more_toggle = self._make(
            w.ToggleButton, value=False, description="more columns",
            tooltip=", ".join(first["more"]), layout=shared("auto"),
            style=shared("toggle")) if first["more"] else None
        # "show all N rows" unfolds a collapsed table (model.draw's footer): made when
        # a table first has one.
        self.all_toggle: w.ToggleButton | None = None
        self.controls = self._make(w.HBox, [c for c in (self.filter_box, self.diff_toggle,
                                                        self.more_toggle) if c],
                                   layout=shared("row"))
        # Born with its table: one comm_open carrying the HTML.
        self.table = self._make(w.HTML, value=parts["body"], layout=box,
                                style=shared("html"))
        self.crumb_buttons: list[w.Button] = []
        self.subdir: w.Dropdown | None = None
        self.step_buttons: tuple[w.Button, w.Button] | None = None
        self.nav: w.HBox | None = None
        children: list[w.Widget] = [self.heading, self.controls]
        if navigable(payload):
            # Navigation models exist only where they are shown: the breadcrumb's buttons,
            # the picker and the step buttons share one row.
            self.path = list(start.path)
            self.subdir = self._make(w.Dropdown, options=self._picker_options(first), value="",
                                     layout=shared("auto"), style=shared("picker"))
            self.nav = self._make(w.HBox, [*self._crumbs(), self.subdir], layout=shared("row"))
            children.append(self.nav)
            self.subdir.observe(self._open_subdir, names="value")
            self.observe(self._new_path, names="path")
        # (its class: its controls are styled by the views' stylesheet too)
        super().__init__(children=[*children, self.table], layout=box,
                         _dom_classes=("rfk-widget",), **kwargs)
        self._show_all_button(first)

        self.filter_box.observe(self._refresh, names="value")
        for toggle in (self.diff_toggle, self.more_toggle):
            if toggle is not None:
                toggle.observe(self._refresh, names="value")

    def _make(self, cls: type, *args, **kwargs) -> w.Widget:
        """A model of this view, remembered to close with it."""
        widget = cls(*args, **kwargs)
        self._made.append(widget)
        return widget

    # --- pure derivations of (payload, widget state) -----------------------------------

    def state(self) -> State:
        return State(tuple(self.path), self.filter_box.value,
                     self.diff_toggle is not None and self.diff_toggle.value,
                     self.all_toggle is not None and self.all_toggle.value,
                     self.more_toggle is not None and self.more_toggle.value)

    def parts(self) -> dict[str, str]:
        """The heading and table of the current state (every column drawn: the "more"
        ones are shown by the table's class, as the static copy's switch does)."""
        st = self.state()
        # (the static copy's folded list of each step's changes: here, open the step)
        return view_parts(self.payload, draw(self.payload, replace(st, more_columns=True)),
                          more_on=st.more_columns)

    def table_html(self) -> str:
        return self.parts()["body"]

    def openable(self, view: dict | None = None) -> list[str]:
        """What the picker opens: `view`, draw() of the current state if drawn already."""
        if not navigable(self.payload):
            return []
        if self.payload.get("selected") and self.path:
            # %show layers: from one layer to another, as dive's list does.
            return [r["key"] for r in self.payload["rows"] if r["key"] != self.path[0]]
        view = view or draw(self.payload, self.state())
        return subdirectories([ln["row"] for ln in view["lines"]
                               if ln["kind"] == "row" and ln["first"]])

    def _picker_options(self, view: dict | None = None) -> list[tuple[str, str]]:
        return [(_PICK, ""), *((crumb_label(self.payload, n), n)
                               for n in self.openable(view))]

    def _crumbs(self) -> list[w.Button]:
        """The breadcrumb of the path, its buttons kept for the next path (a path change
        relabels them instead of opening new models)."""
        names = [top_label(self.payload), *self.path]
        for depth, name in enumerate(names):
            look = {"description": name if depth == 0 else crumb_label(self.payload, name),
                    "disabled": depth == len(names) - 1}
            if depth < len(self.crumb_buttons):
                b = self.crumb_buttons[depth]
                b.description, b.disabled = look["description"], look["disabled"]
                continue
            b = self._make(w.Button, layout=shared("auto"), style=shared("button"), **look)
            b.on_click(lambda _b, d=depth: self._go_up(d))
            self.crumb_buttons.append(b)
        return self.crumb_buttons[:len(names)]

    def _show_step_buttons(self) -> None:
        """%show steps: buttons to the opened step's neighbours (made when first needed)."""
        keys = neighbours(self.payload, self.path)
        if self.step_buttons is None:
            if not any(keys):
                return
            self.step_buttons = tuple(
                self._make(w.Button, description=label, style=shared("button"),
                           layout=w.Layout(width="auto"))   # its own: hidden at the ends
                for label in ("◀ previous step", "next step ▶"))
            for b, side in zip(self.step_buttons, (0, 1), strict=True):
                b.on_click(lambda _b, side=side: self._step(side))
            self._made += [b.layout for b in self.step_buttons]
        for b, key in zip(self.step_buttons, keys, strict=True):
            b.layout.display = None if key else "none"
            b.tooltip = key or ""

    def _step(self, side: int) -> None:
        key = neighbours(self.payload, self.path)[side]
        if key:
            self.path = [key]

    def _show_all_button(self, view: dict | None = None) -> None:
        """`view`: draw() of the path's unfiltered, folded state if drawn already."""
        footer = (view or draw(self.payload, State(tuple(self.path)), max_lines=0))["footer"]
        if self.all_toggle is None:
            if not footer:
                return
            self.all_toggle = self._make(
                w.ToggleButton, value=False, description=footer["action"],
                tooltip="every row, runs of alike rows unfolded",
                layout=w.Layout(width="auto", flex="0 0 auto"),
                style=shared("toggle"))
            self._made.append(self.all_toggle.layout)
            self.all_toggle.observe(self._refresh, names="value")
            self.controls.children = (*self.controls.children, self.all_toggle)
        self.all_toggle.layout.display = None if footer else "none"
        if footer:
            self.all_toggle.description = ("collapse to the differences"
                                           if self.all_toggle.value else footer["action"])

    # --- callbacks ------------------------------------------------------------------------

    def _refresh(self, _change: object = None, *, heading: bool = False) -> None:
        parts = self.parts()
        if heading:
            self.heading.value = parts["heading"]
        self.table.value = parts["body"]
        self._refresh_picker()
        self._show_all_button()

    def _refresh_picker(self) -> None:
        if self.subdir is None:
            return
        # Reset the picker without re-entering _open_subdir.
        self.subdir.unobserve(self._open_subdir, names="value")
        self.subdir.options = self._picker_options()
        self.subdir.value = ""
        self.subdir.observe(self._open_subdir, names="value")

    def _new_path(self, _change: object = None) -> None:
        """Relabel the breadcrumb (only when the path changes: a filter keystroke must
        not touch it), then the heading and the table."""
        self._show_step_buttons()
        steps = self.step_buttons or ()
        self.nav.children = (*self._crumbs(), self.subdir, *steps)
        self._refresh(heading=True)

    def close_all(self) -> None:
        """Close this view and every widget model it made (frees the kernel side); the
        shared layouts and styles stay for the other views."""
        for widget in (*self._made, self):
            widget.close()

    def _open_subdir(self, change: dict) -> None:
        if change["new"]:
            switch = self.payload.get("selected") and self.path   # another layer
            self.path = [change["new"]] if switch else [*self.path, change["new"]]

    def _go_up(self, depth: int) -> None:
        self.path = list(self.path[:depth])


class TreeWidget(w.VBox):
    """The mount-tree picture under its title and a mount picker: the picked mount in
    words, with its peers and masters across the two namespaces."""

    def __init__(self, payload: dict, parts: dict | None = None, **kwargs) -> None:
        """`parts`: tree.tree_parts(), when the caller drew them already."""
        from .tree import mount_details, tree_parts

        self.payload = payload
        self._details = mount_details
        parts = parts or tree_parts(payload)
        options = [("pick a mount…", "")] + [
            (f"{s['label']} {n['mount_point']} ({n['propagation']})", n["id"])
            for s in payload["sides"] for n in s["nodes"]]
        box = shared("box")   # (shared layouts and styles: as CompareWidget's)
        self.heading = w.HTML(value=parts["heading"], layout=box, style=shared("html"))
        self.picker = w.Dropdown(options=options, value="", description="Mount", layout=box,
                                 style=shared("picker"))
        self.details = w.HTML(value="", layout=box, style=shared("html"))
        self.picture = w.HTML(value=parts["body"], layout=box, style=shared("html"))
        self.picker.observe(self._pick, names="value")
        super().__init__(children=[self.heading, self.picker, self.details, self.picture],
                         layout=box, **kwargs)

    def _pick(self, change: dict) -> None:
        from html import escape

        text = self._details(self.payload, change["new"]) if change["new"] else ""
        self.details.value = f"<code>{escape(text)}</code>" if text else ""

    def close_all(self) -> None:
        for widget in (self.heading, self.picker, self.details, self.picture, self):
            widget.close()


def build_widget(payload: dict, parts: dict | None = None,
                 view: dict | None = None) -> CompareWidget | TreeWidget:
    """The interactive view of one payload (needs a comm implementation to exist);
    `parts` (its HTML in the widget's pieces) and `view` (their draw()), when the
    caller drew them already."""
    if payload.get("kind") == "tree":
        return TreeWidget(payload, parts)
    if payload.get("kind") == "limits":
        from .limits import limits_widget

        return limits_widget(payload)
    return CompareWidget(payload, parts, view)
