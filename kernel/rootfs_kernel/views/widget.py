"""Interactive view: filter box, "differences only" toggle, "show all N rows" for a
collapsed table, the HTML table, and for listings a breadcrumb plus a subdirectory picker
to open recorded children (a layer, a step of %show steps, with buttons to the step
before and after).

Every refresh recomputes the table from (payload, path, filter text, toggles): no state
lives outside the widget, so the view can be rebuilt from the payload at any time.
"""

from __future__ import annotations

import ipywidgets as w
from traitlets import List, Unicode

from .html import render_html
from .model import State, display, navigable, neighbours, top_label, two_sided
from .payload import subdirectories

_PICK = "open…"


class CompareWidget(w.VBox):
    """A VBox (same front-end model) holding the controls and the table."""

    # Path of opened directory names below the listing's top; widget state, not synced.
    path = List(Unicode())

    def __init__(self, payload: dict, html: str | None = None, **kwargs) -> None:
        """`html`: the payload's unfiltered table when the caller rendered it already."""
        self.payload = payload
        self.filter_box = w.Text(placeholder="filter rows (substring)", description="Filter",
                                 continuous_update=True)
        # A one-sided view (changes, layers, steps) has no "same" rows to hide: no toggle
        # (every model is a message to the front-end).
        self.diff_toggle = w.ToggleButton(
            value=False, description="differences only",
            tooltip="hide rows that are the same on both sides") if two_sided(payload) else None
        # "show all N rows" unfolds a collapsed table (model.display's footer).
        self.all_toggle = w.ToggleButton(value=False, description="show all rows",
                                         tooltip="every row, runs of alike rows unfolded")
        # Born with its table: one comm_open carrying the HTML, not an empty model and
        # then an update of the same size.
        self.table = w.HTML(value=html if html is not None else
                            render_html(payload, static_extras=False))
        controls: list[w.Widget] = [self.filter_box]
        if self.diff_toggle is not None:
            controls.append(self.diff_toggle)
        controls.append(self.all_toggle)
        children: list[w.Widget] = [w.HBox(controls)]
        self.crumbs: w.HBox | None = None
        self.subdir: w.Dropdown | None = None
        self.step_buttons: tuple[w.Button, w.Button] | None = None
        self.nav: w.HBox | None = None
        if navigable(payload):
            # Navigation models exist only where they are shown.
            self.crumbs = w.HBox()
            self.subdir = w.Dropdown(options=[(_PICK, "")], value="")
            self.nav = w.HBox([self.crumbs, self.subdir])
            children.append(self.nav)
            self.subdir.observe(self._open_subdir, names="value")
            self.observe(self._new_path, names="path")
        super().__init__(children=children + [self.table], **kwargs)

        self.filter_box.observe(self._refresh, names="value")
        if self.diff_toggle is not None:
            self.diff_toggle.observe(self._refresh, names="value")
        self.all_toggle.observe(self._refresh, names="value")
        self._new_path(initial=True)

    # --- pure derivations of (payload, widget state) -----------------------------------

    def state(self) -> State:
        return State(tuple(self.path), self.filter_box.value,
                     self.diff_toggle is not None and self.diff_toggle.value,
                     self.all_toggle.value)

    def table_html(self) -> str:
        st = self.state()
        # (the static copy's folded list of each step's changes: here, open the step)
        return render_html(self.payload, path=st.path, query=st.query,
                           differences_only=st.differences_only, expanded=st.expanded,
                           static_extras=False)

    def openable(self) -> list[str]:
        if self.subdir is None:
            return []
        rows = [ln["row"] for ln in display(self.payload, self.state())["lines"]
                if ln["kind"] == "row" and ln["first"]]
        return subdirectories(rows)

    def _show_step_buttons(self) -> None:
        """%show steps: buttons to the opened step's neighbours (made when first needed)."""
        keys = neighbours(self.payload, self.path)
        if self.step_buttons is None:
            if not any(keys):
                return
            self.step_buttons = (w.Button(description="◀ previous step",
                                          layout=w.Layout(width="auto")),
                                 w.Button(description="next step ▶",
                                          layout=w.Layout(width="auto")))
            for b, side in zip(self.step_buttons, (0, 1), strict=True):
                b.on_click(lambda _b, side=side: self._step(side))
            self.nav.children = (*self.nav.children, *self.step_buttons)
        for b, key in zip(self.step_buttons, keys, strict=True):
            b.layout.display = None if key else "none"
            b.tooltip = key or ""

    def _step(self, side: int) -> None:
        key = neighbours(self.payload, self.path)[side]
        if key:
            self.path = [key]

    def _show_all_button(self) -> None:
        footer = display(self.payload, State(tuple(self.path)), max_lines=0)["footer"]
        self.all_toggle.layout.display = None if footer else "none"
        if footer:
            self.all_toggle.description = ("collapse to the differences"
                                           if self.all_toggle.value else footer["action"])

    # --- callbacks ------------------------------------------------------------------------

    def _refresh(self, _change: object = None) -> None:
        self.table.value = self.table_html()
        self._refresh_picker()
        self._show_all_button()

    def _refresh_picker(self) -> None:
        if self.subdir is None:
            return
        # Reset the picker without re-entering _open_subdir.
        self.subdir.unobserve(self._open_subdir, names="value")
        self.subdir.options = [(_PICK, ""), *((f"{n}/", n) for n in self.openable())]
        self.subdir.value = ""
        self.subdir.observe(self._open_subdir, names="value")

    def _new_path(self, _change: object = None, initial: bool = False) -> None:
        """Rebuild the breadcrumb (only when the path changes: a filter keystroke must
        not create widget models), closing the old buttons' models, then the table."""
        if self.crumbs is not None:
            old = self.crumbs.children
            names = [top_label(self.payload), *self.path]
            buttons = []
            for depth, name in enumerate(names):
                b = w.Button(description=name if depth == 0 else f"{name}/",
                             layout=w.Layout(width="auto"),
                             disabled=depth == len(names) - 1)
                b.on_click(lambda _b, d=depth: self._go_up(d))
                buttons.append(b)
            self.crumbs.children = buttons
            for b in old:
                b.layout.close()
                b.style.close()
                b.close()
        self._show_step_buttons()
        if initial:  # the table is already the unfiltered top level
            self._refresh_picker()
            self._show_all_button()
        else:
            self._refresh()

    def close_all(self) -> None:
        """Close this view and every widget model inside it (frees the kernel side)."""
        def close(widget: w.Widget) -> None:
            for child in getattr(widget, "children", ()):
                close(child)
            for part in ("layout", "style"):
                sub = getattr(widget, part, None)
                if isinstance(sub, w.Widget):
                    sub.close()
            widget.close()

        close(self)

    def _open_subdir(self, change: dict) -> None:
        if change["new"]:
            self.path = [*self.path, change["new"]]

    def _go_up(self, depth: int) -> None:
        self.path = list(self.path[:depth])


class TreeWidget(w.VBox):
    """The mount-tree picture and a mount picker: the picked mount in words, with its
    peers and masters across the two namespaces."""

    def __init__(self, payload: dict, html: str | None = None, **kwargs) -> None:
        from .tree import mount_details, render_tree_html

        self.payload = payload
        self._details = mount_details
        options = [("pick a mount…", "")] + [
            (f"{s['label']} {n['mount_point']} ({n['propagation']})", n["id"])
            for s in payload["sides"] for n in s["nodes"]]
        self.picker = w.Dropdown(options=options, value="", description="Mount")
        self.details = w.HTML(value="")
        self.picture = w.HTML(value=html if html is not None else render_tree_html(payload))
        self.picker.observe(self._pick, names="value")
        super().__init__(children=[self.picker, self.details, self.picture], **kwargs)

    def _pick(self, change: dict) -> None:
        from html import escape

        text = self._details(self.payload, change["new"]) if change["new"] else ""
        self.details.value = f"<code>{escape(text)}</code>" if text else ""

    def close_all(self) -> None:
        for widget in (self.picker, self.details, self.picture, self):
            for part in ("layout", "style"):
                sub = getattr(widget, part, None)
                if isinstance(sub, w.Widget):
                    sub.close()
            widget.close()


def build_widget(payload: dict, html: str | None = None) -> CompareWidget | TreeWidget:
    """The interactive view of one payload (needs a comm implementation to exist)."""
    if payload.get("kind") == "tree":
        return TreeWidget(payload, html)
    return CompareWidget(payload, html)
