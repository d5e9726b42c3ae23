"""A saved, executed rootfs notebook, as a write-up reopened later would be: each output
holds the compare MIME bundle, text/html, text/plain and a widget-view entry whose model
was never saved (no widget state in the notebook metadata)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from fixtures.samples import listing, mounts
from nbformat.v4 import new_code_cell, new_notebook, new_output

from rootfs_kernel.views import (
    WIDGET_MIME_TYPE,
    changes_payload,
    view_bundle,
)


def changes() -> dict:
    scan = {"changes": [
        {"kind": "A", "path": "/tmp/new", "type": "file", "size": 3},
        {"kind": "C", "path": "/etc/hosts", "type": "file", "size": 40},
        {"kind": "D", "path": "/etc/motd", "type": "file", "size": 0},
        {"kind": "A", "path": "/opt", "type": "dir", "size": 0, "opaque": True},
    ], "truncated": True, "note": "cut at 4 entries (budget)"}
    return changes_payload(scan)


def bundle(payload: dict, n: int) -> dict:
    data, _ = view_bundle(payload, widget=False)
    # What the kernel saved beside it: a view of a model that is nowhere in the notebook.
    data[WIDGET_MIME_TYPE] = {"model_id": f"0000000000000000000000000000000{n}",
                              "version_major": 2, "version_minor": 0}
    return data


def write_notebook(path: Path, work: Path) -> dict:
    """Write the notebook; returns the payloads by name, in output order."""
    future = dict(mounts(), version=3, title="From a future kernel")
    payloads = {"mounts": mounts(), "listing": listing(work), "changes": changes(),
                "future": future}
    sources = {"mounts": "%show mounts\nmount -t tmpfs tmpfs /tmp",
               "listing": "%show ls /etc\ntouch /etc/added",
               "changes": "%show changes\ntouch /tmp/new",
               "future": "%show mounts\ntrue"}
    cells = [
        new_code_cell(source=sources[name], execution_count=i + 1, outputs=[
            new_output("display_data", data=bundle(p, i), metadata={})])
        for i, (name, p) in enumerate(payloads.items())
    ]
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "rootfs", "display_name": "Rootfs (sh)", "language": "sh"},
        "language_info": {"name": "sh", "mimetype": "text/x-sh", "file_extension": ".sh"},
    })
    nbformat.validate(nb)
    nbformat.write(nb, str(path))
    return payloads
