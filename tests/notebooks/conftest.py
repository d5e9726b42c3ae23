"""Execute the notebooks of notebooks/ (temp copies) once per session."""

from __future__ import annotations

import os
import shutil

import nbformat
import pytest
from nbclient import NotebookClient
from nbhelpers import NOTEBOOKS, Executed


@pytest.fixture(scope="session")
def notebook(tmp_path_factory):
    """notebook("02-tmpfs-over-tmp") -> Executed, run once in a temp copy."""
    if not NOTEBOOKS.is_dir():
        pytest.skip(f"no notebooks/ next to the tests ({NOTEBOOKS})")
    workdir = tmp_path_factory.mktemp("notebooks")
    os.chmod(workdir, 0o755)
    done: dict[str, Executed] = {}

    def run(name: str) -> Executed:
        if name not in done:
            copy = workdir / f"{name}.ipynb"
            shutil.copy(NOTEBOOKS / f"{name}.ipynb", copy)
            nb = nbformat.read(copy, as_version=4)
            # Any error in a cell not tagged raises-exception fails the test here.
            NotebookClient(nb, kernel_name="rootfs", timeout=300, startup_timeout=120,
                           store_widget_state=True,
                           resources={"metadata": {"path": str(workdir)}}).execute()
            nbformat.write(nb, copy)
            done[name] = Executed(nb)
        return done[name]

    return run
