"""What one cell may put on IOPub, and what a front-end that stops reading may cost (pure).

Runs in: the kernel (kernel.py counts a cell's output, app.py and backlog.py what waits).

Each cell has an output budget, `%limit output=SIZE` (settings.DEFAULT_BOUNDS unless the
kernel says otherwise): the bytes it prints and the files it displays. Past it the cell
goes on, what it writes is counted and dropped, and the kernel says what was cut.

What waits in the kernel for a subscriber that does not read is bounded whatever the
cells: no IOPub message is larger than MAX_MESSAGE (app.py sends a short error in the
place of a larger one; a stream message holds at most kernel._Stream.FLUSH_BYTES of output,
at most 6 times that once JSON-escaped, a display at most a 16 MiB file, 21.3 MiB as an
image's base64), and a subscriber more than BACKLOG behind is disconnected (backlog.py).
So a stalled front-end costs the kernel at most BACKLOG plus one message.
"""

from __future__ import annotations

from dataclasses import dataclass

# Nothing else at import: ports.py reads it before the kernel's ports are bound.

MAX_MESSAGE = 24 << 20   # a 16 MiB image in base64 (21.3 MiB) and its envelope
BACKLOG = 64 << 20       # bytes one subscriber may be behind: a 16 MiB display with room


@dataclass
class Budget:
    """One cell's output budget: `limit` bytes (None: no bound), shared by its stdout and
    stderr. Once something does not fit, nothing after it is shown either."""

    limit: float | None = None
    used: int = 0
    cut_bytes: int = 0           # text not shown
    cut_displays: int = 0        # displays not shown, and their files' bytes
    cut_display_bytes: int = 0
    told: bool = False           # the cut was said where it is

    @property
    def cut(self) -> bool:
        return bool(self.cut_bytes or self.cut_displays)

    def text(self, n: int) -> int:
        """How many of n bytes of text may be shown; the rest is counted as cut."""
        if self.cut:
            room = 0
        elif self.limit is None:
            room = n
        else:
            room = max(0, min(n, int(self.limit) - self.used))
        self.used += room
        self.cut_bytes += n - room
        return room

    def display(self, n: int) -> bool:
        """Whether a display of an n-byte file may be shown (all of it or nothing)."""
        if self.cut or (self.limit is not None and self.used + n > self.limit):
            self.cut_displays += 1
            self.cut_display_bytes += n
            return False
        self.used += n
        return True

    def _limit_text(self) -> str:
        from .cell import format_size

        return f"%limit output={format_size(self.limit or 0)}"

    def reached(self) -> str:
        """Said where the cut is, once."""
        return (f"this cell's output reached its budget ({self._limit_text()}): what it "
                "writes from here on is not shown; the cell goes on")

    def summary(self) -> str:
        """Said when the cell ends: what was cut and how to get more."""
        from . import settings
        from .cell import format_size

        parts = []
        if self.cut_bytes:
            parts.append(f"{format_size(self.cut_bytes)} of output")
        if self.cut_displays:
            parts.append(f"{self.cut_displays} display{'s' if self.cut_displays > 1 else ''}"
                         f" ({format_size(self.cut_display_bytes)})")
        return (f"not shown: {' and '.join(parts)} past this cell's budget "
                f"({self._limit_text()}); raise it for a cell with `%limit output=SIZE` "
                "(`output=none` lifts it), for the kernel with "
                f"{settings.BY_NAME['default_limits'].env}=\"output=SIZE\"")
