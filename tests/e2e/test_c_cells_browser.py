"""`%%c` cells are highlighted as C in JupyterLab (the extension's editor plugin), every
other cell of a rootfs notebook as shell: read from CodeMirror's own `data-language` of
each cell's editor, in a real JupyterLab in chromium."""

from __future__ import annotations

import pytest
from jupyter_e2e import code_cell, lab_page, missing_requirements, open_notebook, write_notebook

reason = missing_requirements("lab")
pytestmark = [pytest.mark.skipif(reason is not None, reason=reason or ""),
              pytest.mark.timeout(240)]

C_CELL = ("%%c\n/* until it's done: the seed's escape */\n#include <unistd.h>\n"
          "int main(void) { return chroot(\".\"); }")
SHELL_CELL = "%mount tmpfs /tmp\nmount -l | grep ' /tmp '"


# JupyterLab highlights C (text/x-csrc) with CodeMirror's C/C++ language, named "cpp".
C = "cpp"


def language(page, index: int) -> str | None:
    return code_cell(page, index).locator(".cm-content").get_attribute("data-language")


def test_c_cells_are_c_and_the_rest_shell_also_when_typed(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / "c.ipynb", [C_CELL, SHELL_CELL, ""])
    with lab_page(root, tmp_path / "work") as (server, page):
        open_notebook(page, server, "c.ipynb", kernel=False)
        page.wait_for_function(
            "() => document.querySelectorAll('.jp-CodeCell .cm-content[data-language]')"
            ".length >= 3", timeout=30_000)
        assert language(page, 0) == C
        assert language(page, 1) == "shell"
        # Typing %%c on the first line of a shell cell switches it; removing it, back.
        editor = code_cell(page, 2).locator(".cm-content")
        editor.click()
        page.keyboard.type("%%c\nint main(void) { return 0; }")
        page.wait_for_function(
            "() => document.querySelectorAll('.jp-CodeCell .cm-content')[2]"
            ".getAttribute('data-language') === 'cpp'", timeout=10_000)
        page.keyboard.press("Control+Home")
        page.keyboard.press("Delete")
        page.wait_for_function(
            "() => document.querySelectorAll('.jp-CodeCell .cm-content')[2]"
            ".getAttribute('data-language') === 'shell'", timeout=10_000)
