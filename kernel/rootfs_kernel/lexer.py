"""A Pygments lexer for the kernel's language: header lines as magics, the body as shell
or, after `%%c`, as C.

Runs in: nbconvert, Sphinx/Jupyter Book and anything else that highlights a saved
notebook (the kernel's language_info names it: "pygments_lexer": "rootfs"; the package
registers it under the `pygments.lexers` entry point). Pure: it reads text only.

It splits a cell the way cell.parse does (the first line `%%host` or `%%c [FLAGS]`, then
leading lines that start with `%`), so highlighting never disagrees with what runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pygments.lexer import Lexer
from pygments.lexers.c_cpp import CLexer
from pygments.lexers.shell import BashLexer
from pygments.token import Keyword, Name, Operator, String, Text, Whitespace

__all__ = ["RootfsLexer", "split_header"]

_WORD = re.compile(r"""\s+|"(?:[^"\\]|\\.)*"?|'[^']*'?|[^\s"']+""")


def split_header(text: str) -> tuple[int, bool]:
    """(where the body starts, whether the body is C) for a cell's text."""
    pos, is_c, first = 0, False, True
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end + 1
        line = text[pos:end].strip()
        if first and (line == "%%c" or line.startswith("%%c ")):
            is_c = True
        elif not line.startswith("%"):
            break
        first = False
        pos = end
    return pos, is_c


class RootfsLexer(Lexer):
    """Rootfs (sh) cells: `%`/`%%` header lines, then shell, or C after `%%c`."""

    name = "Rootfs (sh)"
    aliases = ["rootfs"]
    filenames: list[str] = []
    mimetypes = ["text/x-rootfs"]
    url = "https://pypi.org/project/rootfs-kernel/"

    def get_tokens_unprocessed(self, text: str) -> Iterator[tuple[int, object, str]]:
        body, is_c = split_header(text)
        yield from _header_tokens(text[:body])
        lexer = (CLexer if is_c else BashLexer)(**self.options)
        for index, token, value in lexer.get_tokens_unprocessed(text[body:]):
            yield index + body, token, value


def _header_tokens(header: str) -> Iterator[tuple[int, object, str]]:
    pos = 0
    for line in header.splitlines(keepends=True):
        start = pos
        stripped = line.lstrip()
        lead = len(line) - len(stripped)
        if lead:
            yield start, Whitespace, line[:lead]
        percent = len(stripped) - len(stripped.lstrip("%"))
        yield start + lead, Operator, stripped[:percent]
        at = start + lead + percent
        words = list(_WORD.finditer(line, at - start))
        for n, m in enumerate(words):
            value = m.group(0)
            where = start + m.start()
            if value.isspace():
                yield where, Whitespace if "\n" in value else Text, value
            elif n == 0:
                yield where, Keyword, value
            elif value[0] in "\"'":
                yield where, String, value
            elif value.startswith("-"):
                yield where, Name.Attribute, value
            elif "=" in value:
                key, _, rest = value.partition("=")
                yield where, Name.Attribute, key
                yield where + len(key), Operator, "="
                if rest:
                    yield where + len(key) + 1, String, rest
            else:
                yield where, Text, value
        pos += len(line)
