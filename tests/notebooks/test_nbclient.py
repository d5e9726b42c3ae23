"""Notebooks executed on the `rootfs` kernel with nbclient, as papermill and nbconvert do."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_notebook

from rootfs_kernel.views import MIME_TYPE, WIDGET_MIME_TYPE

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def execute(cells: list[str]) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    NotebookClient(nb, kernel_name="rootfs", store_widget_state=True, timeout=120).execute()
    return nb


def displays(cell) -> list[dict]:
    return [o["data"] for o in cell.outputs if o["output_type"] == "display_data"]


def test_views_and_widget_state_are_stored_in_the_notebook():
    nb = execute([
        "%mount tmpfs /tmp\n%show mounts\necho mounted",
        "%show ls /etc\n%show ns\ntrue",
    ])
    first, second = nb.cells
    assert [o["text"] for o in first.outputs if o["output_type"] == "stream"] == ["mounted\n"]
    (mounts,) = displays(first)
    payload = mounts[MIME_TYPE]
    tmp = {r["key"]: r for r in payload["rows"]}["/tmp"]
    assert tmp["cell"]["fstype"] == "tmpfs" and tmp["status"] in ("only-cell", "differs")
    assert mounts["text/html"].startswith('<div class="rfk-static"') and \
        'data-status="only-cell"' in mounts["text/html"]
    assert "/tmp" in mounts["text/plain"]
    assert [d[MIME_TYPE]["kind"] for d in displays(second)] == ["listing", "ns"]

    # Every displayed widget, and every model it refers to, is in the saved state, with
    # the table filled in: the notebook renders its widgets without a kernel.
    state = nb.metadata.widgets[WIDGET_STATE]["state"]
    for data in displays(first) + displays(second):
        top = state[data[WIDGET_MIME_TYPE]["model_id"]]
        assert top["model_name"] == "VBoxModel"
        seen, todo = set(), [data[WIDGET_MIME_TYPE]["model_id"]]
        while todo:
            model_id = todo.pop()
            seen.add(model_id)
            refs = []
            for value in state[model_id]["state"].values():
                items = value if isinstance(value, list) else [value]
                refs += [v[len("IPY_MODEL_"):] for v in items
                         if isinstance(v, str) and v.startswith("IPY_MODEL_")]
            todo += [r for r in refs if r not in seen]  # KeyError above if one is missing
        # The heading (with the stylesheet) and the table: the static copy's two halves.
        html = [state[m]["state"]["value"] for m in seen
                if state[m]["model_name"] == "HTMLModel"]
        (heading,) = [h for h in html if "<style>" in h]
        (table,) = [h for h in html if h is not heading]
        assert data["text/html"].startswith(heading.removesuffix("</div>"))
        assert table.removeprefix('<div class="rfk-static">') in data["text/html"]


def test_a_failing_cell_stops_the_run_with_cell_execution_error():
    nb = new_notebook(cells=[new_code_cell("%show ns\necho before; exit 3"),
                             new_code_cell("echo never")])
    client = NotebookClient(nb, kernel_name="rootfs", store_widget_state=True, timeout=120)
    with pytest.raises(CellExecutionError) as info:
        client.execute()
    assert "ExitStatus" in str(info.value) and "status 3" in str(info.value)
    failed, never = nb.cells
    kinds = [o["output_type"] for o in failed.outputs]
    assert kinds == ["display_data", "stream", "error"] or \
        kinds == ["stream", "display_data", "error"]
    assert displays(failed)[0][MIME_TYPE]["kind"] == "ns"
    assert never.outputs == [] and never.get("execution_count") is None
