"""Keyword arguments -> header lines of the cell language, and where each line came from.

Options are written as header lines so the kernel's own parser (cell.py) validates them;
errors are then relabelled to name the argument instead of a line number.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .. import cell
from ..cell import HeaderError


def _words(item: object, what: str, maxsplit: int = -1) -> list[str]:
    """'tmpfs:/tmp:size=1m', 'tmpfs /tmp size=1m', ('tmpfs', '/tmp') -> words."""
    if isinstance(item, str):
        if any(c.isspace() for c in item):
            return shlex.split(item)
        return item.split(":", maxsplit)
    if isinstance(item, tuple | list):
        return [str(w) for w in item]
    raise TypeError(f"{what}: expected a string or a tuple, got {item!r}")


def _mount_words(item: object) -> list[str]:
    if isinstance(item, cell.Mount):
        return [item.fstype, item.target] + ([item.options] if item.options else [])
    return _words(item, "mounts", 2)


def _bind_words(item: object) -> list[str]:
    if isinstance(item, cell.Bind):
        return [item.source, item.target] + (["ro"] if item.readonly else [])
    return _words(item, "binds")


def _show_words(item: object) -> list[str]:
    if isinstance(item, cell.Show):
        return [item.kind] + [p for p in (item.path, item.host_path) if p]
    return _words(item, "show")


def header_lines(*, image: str | None = "minimal", root: str | None = "pivot",
                 mounts: Iterable = (), binds: Iterable = (), show: Iterable = (),
                 keep: bool = False, timeout: float | None = None,
                 env: Mapping[str, str] | None = None,
                 limits: Mapping[str, object] | str | None = None,
                 propagation: str | None = None,
                 unshare: str | Iterable[str] | None = None,
                 net: str | None = None) -> list[tuple[str, str]]:
    """(header line, the argument it came from) for each option that was given."""
    out: list[tuple[str, str]] = []

    def add(magic: str, words: list[str], origin: str) -> None:
        out.append((f"%{magic} " + shlex.join(words) if words else f"%{magic}", origin))

    if image not in (None, "minimal"):
        add("image", [image], f"image={image!r}")
    if root not in (None, "pivot"):
        add("root", [root], f"root={root!r}")
    if propagation is not None:
        add("propagation", [propagation], f"propagation={propagation!r}")
    if unshare is not None:
        names = unshare if isinstance(unshare, str) else ",".join(unshare)
        add("unshare", [names], f"unshare={unshare!r}")
    if net is not None:
        add("net", [net], f"net={net!r}")
    for i, item in enumerate(mounts):
        add("mount", _mount_words(item), f"mounts[{i}]={item!r}")
    for i, item in enumerate(binds):
        add("bind", _bind_words(item), f"binds[{i}]={item!r}")
    for i, item in enumerate(show):
        add("show", _show_words(item), f"show[{i}]={item!r}")
    if keep:
        add("keep", [], "keep=True")
    if timeout is not None:
        add("timeout", [f"{timeout:g}" if isinstance(timeout, float) else str(timeout)],
            f"timeout={timeout!r}")
    for name, value in (env or {}).items():
        add("env", [f"{name}={value}"], f"env[{name!r}]")
    if limits:
        words = limits.split() if isinstance(limits, str) else \
            [f"{k}={v}" for k, v in limits.items()]
        add("limit", words, f"limits={limits!r}")
    for line, origin in out:
        if "\n" in line or "\r" in line:
            err = HeaderError(0, line, "a value cannot contain a line break")
            err.args = (f"{origin}: a header value cannot contain a line break",)
            raise err
    return out


@dataclass
class Code:
    """The cell text, and where each of its lines came from (argument or script line)."""

    text: str
    origins: list[str | int]     # per line: an argument's description, or a script lineno

    @classmethod
    def build(cls, script: str, lines: list[tuple[str, str]]) -> Code:
        body = script.split("\n")
        first: list[str] = []
        if lines and body and body[0].strip().startswith("%%"):
            first, body = body[:1], body[1:]   # %%host / %%c must stay the first line
        origins: list[str | int] = [1] * len(first) + [o for _, o in lines]
        origins += list(range(len(first) + 1, len(first) + len(body) + 1))
        return cls("\n".join(first + [ln for ln, _ in lines] + body), origins)

    def relabel(self, err: HeaderError) -> HeaderError:
        """The parser's error, naming the argument or the script's own line number."""
        origin = self.origins[err.lineno - 1] if 0 < err.lineno <= len(self.origins) else 0
        if isinstance(origin, int):
            return HeaderError(origin or err.lineno, err.line, err.problem, err.usage)
        new = HeaderError(0, err.line, err.problem, err.usage)
        hint = f"\n  expected: {err.usage}" if err.usage else ""
        new.args = (f"{origin}: `{cell.visible(err.line.strip())}`: {err.problem}{hint}",)
        return new

    def origin_of(self, lineno: int) -> str | int:
        return self.origins[lineno - 1] if 0 < lineno <= len(self.origins) else lineno



