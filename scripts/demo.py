"""Execute a notebook on the rootfs kernel and print what each cell showed, as text.

Usage: python scripts/demo.py [NOTEBOOK] [--output EXECUTED.ipynb]
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main() -> int:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    default = (sorted(glob.glob(os.path.join(here, "notebooks", "02-*.ipynb"))) or [None])[0]
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebook", nargs="?", default=default)
    parser.add_argument("--output", help="also save the executed notebook here")
    args = parser.parse_args()
    if not args.notebook:
        parser.error("no notebook given and notebooks/02-*.ipynb not found")
    nb = nbformat.read(args.notebook, as_version=4)
    client = NotebookClient(nb, kernel_name="rootfs", timeout=600, store_widget_state=True,
                            resources={"metadata": {"path": os.path.dirname(args.notebook)}})
    failed = None
    try:
        client.execute()
    except CellExecutionError as err:
        failed = err
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            title = next((line for line in cell.source.splitlines() if line.startswith("#")), "")
            if title:
                print(f"\n{title}")
            continue
        print("\n" + "\n".join(f"  | {line}" for line in cell.source.splitlines()))
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                print(out.text.rstrip("\n"))
            elif out.output_type in ("display_data", "execute_result"):
                print(out.data.get("text/plain", "").rstrip("\n"))
            elif out.output_type == "error":
                print(f"{out.ename}: {out.evalue}")
    if args.output:
        nbformat.write(nb, args.output)
    if failed:
        print(f"\nthe notebook stopped at an error: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
