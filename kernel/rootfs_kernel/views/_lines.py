"""Rows -> display lines, shared by the text and HTML renderers.

A "same" row is one line (side "both"); a one-sided row is one line for its side; a
"differs" row is two lines, the cell's values then the host's, so values line up
under one header instead of doubling every column.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple


class Line(NamedTuple):
    row: dict
    side: str  # "both" | "cell" | "host"
    values: list[str]
    first: bool  # first line of its row


def fmt(value: object) -> str:
    return "" if value is None else str(value)


def lines(rows: Sequence[dict], names: Sequence[str], two_sided: bool) -> Iterator[Line]:
    for row in rows:
        status = row["status"]
        if not two_sided:
            sides = ["cell"]
        elif status == "same":
            sides = ["both"]
        elif status == "only-cell":
            sides = ["cell"]
        elif status == "only-host":
            sides = ["host"]
        else:
            sides = ["cell", "host"]
        for i, side in enumerate(sides):
            values = row["cell" if side == "both" else side] or {}
            yield Line(row, side, [fmt(values.get(n)) for n in names], i == 0)


def key_label(row: dict) -> str:
    """Key as displayed: directories that can be opened end with '/'."""
    return f"{row['key']}/" if "children" in row else fmt(row["key"])


def summary_text(payload: dict, summary: dict) -> str:
    if payload["kind"] == "changes":
        parts = [(summary["only-cell"], "added"), (summary["differs"], "changed"),
                 (summary["only-host"], "deleted")]
    else:
        parts = [(summary["only-cell"], "only in cell"), (summary["only-host"], "only on host"),
                 (summary["differs"], "differ"), (summary["same"], "same")]
    return ", ".join(f"{n} {what}" for n, what in parts)


def legend_text(payload: dict) -> str:
    return "legend: " + "   ".join(
        f"{mark if mark.strip() else '(blank)'} {meaning}" for mark, meaning in payload["legend"]
    )


def level_title(payload: dict, path: Sequence[str]) -> str:
    """The payload's title, plus the opened subdirectory when not at the top."""
    return f"{payload['title']}, in {'/'.join(path)}/" if path else payload["title"]
