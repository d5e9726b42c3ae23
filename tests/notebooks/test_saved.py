"""The notebooks as saved: what GitHub, the book and Binder show without running them."""

from __future__ import annotations

import json

from nbhelpers import NOTEBOOKS

MAX_BYTES = 300 * 1024   # GitHub and nbconvert render it; a reader downloads it


def saved() -> list[tuple[str, dict]]:
    return [(p.name, json.loads(p.read_text())) for p in sorted(NOTEBOOKS.glob("*.ipynb"))]


def test_only_cells_that_say_they_fail_saved_an_error():
    for name, nb in saved():
        for n, cell in enumerate(nb["cells"]):
            if cell["cell_type"] != "code":
                continue
            errors = [o for o in cell.get("outputs", []) if o["output_type"] == "error"]
            tags = cell["metadata"].get("tags", [])
            source = "".join(cell["source"])
            if "raises-exception" in tags:
                # nbclient's convention, and a reader's: the cell's own text says so.
                assert "Expected error:" in source, (name, n, source[:120])
                assert errors, f"{name} cell {n} is tagged raises-exception but saved no error"
            else:
                assert not errors, (name, n, [(e["ename"], e["evalue"][:200]) for e in errors])


def test_every_saved_notebook_is_small():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        assert path.stat().st_size <= MAX_BYTES, (path.name, path.stat().st_size)
