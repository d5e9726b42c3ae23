#!/usr/bin/env python3
"""Execute every notebook in notebooks/ on the installed `rootfs` kernel and write it back.

    python scripts/run-notebooks.py                 # all notebooks, in place
    python scripts/run-notebooks.py notebooks/02-tmpfs-over-tmp.ipynb
    python scripts/run-notebooks.py --out DIR       # write the executed copies to DIR

The executed copies keep their outputs, so GitHub and a notebook opened without a kernel
show what the cells printed (the comparisons: the renderer, else their HTML). Cells
tagged `raises-exception` may
fail (the Debian cell when that image is not built); any other error stops that notebook,
leaves its file untouched and makes the command exit with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

HERE = Path(__file__).resolve().parent.parent
NOTEBOOKS = HERE / "notebooks"
KERNEL = "rootfs"


def execute(path: Path, timeout: int = 300, kernel: str = KERNEL) -> nbformat.NotebookNode:
    """Run one notebook top to bottom in a new kernel; return the executed notebook."""
    nb = nbformat.read(path, as_version=4)
    # No widget state: each comparison's rows are saved once, in its compare+json payload
    # (drawn by the JupyterLab renderer), beside its bounded HTML (GitHub, nbconvert); a
    # saved widget would be a third copy of that HTML.
    client = NotebookClient(nb, kernel_name=kernel, timeout=timeout, startup_timeout=120,
                            store_widget_state=False, record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def strip_volatile(nb: nbformat.NotebookNode) -> None:
    """Drop what changes on every run without meaning anything (keeps diffs small)."""
    nb.metadata.pop("widgets", None)   # an earlier run's widget state (see execute)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to run (default: every notebooks/*.ipynb)")
    parser.add_argument("--out", type=Path, help="write here instead of in place")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    parser.add_argument("--kernel", default=KERNEL, help="kernelspec name (default: rootfs)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
    if not paths:
        parser.error(f"no notebooks found in {NOTEBOOKS}")
    # The cells' mount tables name the image store's layers: notebooks saved in place
    # should name the default store (what a reader's own run shows), not a private one.
    if not args.out and os.environ.get("XDG_DATA_HOME"):
        parser.error("XDG_DATA_HOME is set: the saved outputs would name that image store's "
                     "paths; unset it to write the notebooks in place, or use --out DIR")
    failed = []
    for path in paths:
        start = time.monotonic()
        print(f"{path.name}: running ...", end="", flush=True)
        try:
            nb = execute(path, args.timeout, args.kernel)
        except CellExecutionError as err:
            print(f" FAILED\n{err}", file=sys.stderr)
            failed.append(path.name)
            continue
        strip_volatile(nb)
        dest = (args.out / path.name) if args.out else path
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest)
        print(f" ok ({time.monotonic() - start:.1f} s) -> {dest}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
