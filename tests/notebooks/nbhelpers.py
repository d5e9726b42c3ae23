"""Helpers for the notebook tests: find cells by tag, read their outputs and views."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
MIME = "application/vnd.rootfs-kernel.compare+json"
LIMITS_MIME = "application/vnd.rootfs-kernel.limits+json"
ROOT = os.geteuid() == 0


class Executed:
    """One executed notebook, with helpers to read a tagged cell's outputs."""

    def __init__(self, nb: nbformat.NotebookNode):
        self.nb = nb

    def cell(self, tag: str) -> nbformat.NotebookNode:
        found = [c for c in self.nb.cells if tag in c.metadata.get("tags", [])]
        assert len(found) == 1, f"expected one cell tagged {tag!r}, found {len(found)}"
        return found[0]

    def stream(self, tag: str, name: str = "stdout") -> str:
        return "".join(o.text for o in self.cell(tag).outputs
                       if o.output_type == "stream" and o.name == name)

    def errors(self, tag: str) -> list[nbformat.NotebookNode]:
        return [o for o in self.cell(tag).outputs if o.output_type == "error"]

    def payloads(self, tag: str, kind: str | None = None) -> list[dict]:
        out = [o.data[MIME] for o in self.cell(tag).outputs
               if o.output_type == "display_data" and MIME in o.data]
        return [p for p in out if kind is None or p["kind"] == kind]

    def limits(self, tag: str) -> dict:
        """The cell's %show limits payload (a MIME type of its own)."""
        [found] = [o.data[LIMITS_MIME] for o in self.cell(tag).outputs
                   if o.output_type == "display_data" and LIMITS_MIME in o.data]
        return found

    def payload(self, tag: str, kind: str) -> dict:
        found = self.payloads(tag, kind)
        assert len(found) == 1, f"cell {tag!r}: expected one {kind} view, got {len(found)}"
        return found[0]


def rows(payload: dict, key: str | None = None, status: str | None = None) -> list[dict]:
    return [r for r in payload["rows"] if (key is None or r["key"] == key)
            and (status is None or r["status"] == status)]
