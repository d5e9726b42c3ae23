"""The README's examples run as written, and say what they print (issue 22).

Each code block of "A short session" is one cell, sent through jupyter_client as a
reader would type it; the comment on its last line is the claim checked here. The Python
block of "From Python" runs as written too, its commented result compared literally.
"""

from __future__ import annotations

import ast
import os
import re
import tempfile
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
pytestmark = pytest.mark.skipif(not README.is_file(), reason="no README.md beside tests/")


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def blocks(title: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section(title), re.S)


def as_root_sees_it(text: str) -> str:
    """An ordinary user's tmpfs also names the uid and gid it belongs to (the README's
    output is root's, and says so)."""
    return re.sub(r",uid=\d+,gid=\d+", "", text) if os.geteuid() else text


def claim(block: str) -> str:
    return block.rstrip("\n").rsplit("\n", 1)[-1].split("#", 1)[1].strip()


def test_the_short_session_runs_as_written_and_prints_what_it_says(kernel):
    cells = blocks("A short session", "sh")
    # If the README's session changes, this test must learn the new claims: it checks
    # each block's own comment, in this order.
    assert [claim(c).split(":")[0].split(" ...")[0] for c in cells] == [
        "none on /tmp type tmpfs (rw,relatime)", "not on the host", "the host's /tmp",
        "kept for the next cell", "hello", "No such file"]
    fd, marker = tempfile.mkstemp(prefix="rootfs-readme-", dir="/tmp")
    os.close(fd)
    try:
        results = [kernel.run(c) for c in cells]
    finally:
        os.unlink(marker)
    for cell, res in zip(cells, results, strict=True):
        assert res.ok, (cell, res.errors, res.stderr)
    tmpfs, host, root_none, keep, kept, gone = results
    # In the cell: its tmpfs on /tmp, that line exactly, and its %show mounts view.
    assert as_root_sees_it(tmpfs.stdout) == "none on /tmp type tmpfs (rw,relatime)\n"
    assert tmpfs.displays, "the %show mounts view"
    # On the host: no such mount.
    assert host.stdout == "not on the host\n"
    # %root none: the host's own /tmp, a file made there a moment ago included.
    assert os.path.basename(marker) in root_none.stdout.split()
    # %keep: the next cell reads the file, the one after it no longer does.
    assert keep.stdout == "" and kept.stdout == "hello\n"
    assert gone.stdout == "" and "No such file" in gone.stderr


def test_the_python_example_returns_what_its_comment_says():
    (code,) = blocks("From Python, and in a Python notebook", "python")
    lines = code.strip().split("\n")
    expected = {}
    for n, line in enumerate(lines):
        expr, _, comment = line.partition("#")
        if comment.strip().startswith("("):
            expected[n] = (expr.strip(), ast.literal_eval(comment.strip()))
    assert expected, "the README's Python block claims a result"
    scope: dict = {}
    exec("\n".join(line.partition("#")[0] for line in lines), scope)  # noqa: S102
    for expr, value in expected.values():
        got = eval(expr, scope)  # noqa: S307
        if isinstance(got, tuple):
            got = tuple(as_root_sees_it(v) if isinstance(v, str) else v for v in got)
        assert got == value, expr
    # The comment after differences() promises rows that differ from the host's.
    assert scope["r"].mounts.differences()
