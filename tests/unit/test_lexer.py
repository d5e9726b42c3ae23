"""The kernel's Pygments lexer: what nbconvert and the book highlight a cell with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name
from pygments.lexers.shell import BashLexer
from pygments.token import Comment, Error, Keyword, Operator

from rootfs_kernel import cell
from rootfs_kernel.kernel import RootfsKernel
from rootfs_kernel.lexer import split_header

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
C_CELL = ("%%c -O2\n%root chroot\n/* until it's done: the classic escape */\n"
          "#include <unistd.h>\nint main(void) { return chroot(\".\"); }\n")


def tokens(text: str) -> list[tuple[object, str]]:
    # As written: no newline stripped or added (Pygments does both by default).
    return list(get_lexer_by_name("rootfs", stripnl=False, ensurenl=False).get_tokens(text))


def test_the_kernel_names_the_lexer_pygments_finds_through_its_entry_point():
    assert RootfsKernel.language_info["pygments_lexer"] == "rootfs"
    assert type(get_lexer_by_name("rootfs")).__name__ == "RootfsLexer"


def test_a_c_cell_is_lexed_as_c_after_its_header_lines():
    toks = tokens(C_CELL)
    assert "".join(v for _, v in toks) == C_CELL            # nothing lost or added
    assert (Operator, "%%") in toks and (Keyword, "c") in toks and (Keyword, "root") in toks
    # The C comment is one comment (as shell, "until" is a keyword and "'s" opens a
    # string that runs to the end of the cell).
    comments = [v for t, v in toks if t in Comment]
    assert any(v.startswith("/* until it's done") for v in comments), comments
    assert not [v for t, v in toks if t is Error]
    shell = list(BashLexer().get_tokens(C_CELL))
    assert (Keyword, "until") in shell   # what a shell lexer makes of the same text


def test_a_shell_cell_keeps_shell_and_the_header_is_magics():
    text = "%mount tmpfs /tmp size=10m\n%show mounts\nmount -l | grep ' /tmp '\n"
    toks = tokens(text)
    assert [v for t, v in toks if t is Keyword][:2] == ["mount", "show"]
    assert any(t in Comment or v == "mount" for t, v in toks[12:])
    assert "".join(v for _, v in toks) == text


@pytest.mark.parametrize("text", [
    "%%host\nls /\n", "%%c\nint main(void){return 0;}\n", "\n%keep\n", "true\n%keep\n",
    "%env A='x y'\n%limit pids=10\necho hi", "%", "%%c -O2", ""])
def test_the_header_ends_where_the_parser_says(text: str):
    body, is_c = split_header(text)
    spec = cell.parse(text) if text.strip() != "%" else None
    if spec is not None:
        assert text[body:].rstrip("\n") == spec.script.rstrip("\n") or not spec.script
        assert is_c == (spec.c_flags is not None)
    assert "".join(v for _, v in tokens(text)) == text


def test_no_saved_notebook_cell_lexes_with_an_error():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = json.loads(path.read_text())
        assert nb["metadata"]["language_info"]["pygments_lexer"] == "rootfs", path.name
        for c in nb["cells"]:
            if c["cell_type"] == "code":
                source = "".join(c["source"])
                bad = [v for t, v in tokens(source) if t is Error]
                assert not bad, (path.name, source[:80], bad)
